/**
 * The exporter's replies to one peer's completed requests that must not run twice (writes,
 * config sets, mask edits, reservations), kept so a duplicate of such a request is answered
 * without running it again. Bounded twice: a byte ring (older replies are overwritten by newer
 * ones) and an age limit. Entries are direct-mapped by seq, so a lookup is one comparison and
 * nothing is allocated per reply.
 */

export interface ReplyCacheOptions {
  /** Bytes of replies kept (default 1 MiB: over 20 000 write replies). */
  readonly bytes?: number;
  /** Entries (default 16384, the request window: an entry is displaced only by a seq out of it). */
  readonly entries?: number;
  /**
   * A reply older than this is forgotten (default 180 s: longer than any importer keeps resending,
   * tunnel.failAfterMs ≤ 170 s, so a resend of a finished write always finds its reply).
   */
  readonly maxAgeMs?: number;
}

export class ReplyCache {
  private readonly ring: Buffer;
  private readonly size: number;
  private readonly entries: number;
  private readonly maxAgeMs: number;
  private readonly eSeq: Float64Array;
  private readonly eStart: Float64Array;
  private readonly eLen: Int32Array;
  private readonly eAt: Float64Array;
  /** Bytes ever consumed in the ring (including tails skipped to keep entries contiguous). */
  private total = 0;
  stored = 0;
  hits = 0;
  misses = 0;

  constructor(opts: ReplyCacheOptions = {}) {
    this.size = opts.bytes ?? 1024 * 1024;
    this.entries = opts.entries ?? 16384;
    this.maxAgeMs = opts.maxAgeMs ?? 180_000;
    this.ring = Buffer.alloc(this.size);
    this.eSeq = new Float64Array(this.entries).fill(-1);
    this.eStart = new Float64Array(this.entries);
    this.eLen = new Int32Array(this.entries);
    this.eAt = new Float64Array(this.entries);
  }

  /** Keeps buf[off, off + len) as the reply to `seq`; false when it cannot be kept (too large). */
  put(seq: number, buf: Uint8Array, off: number, len: number, now: number): boolean {
    if (len > this.size >> 2) return false;
    let head = this.total % this.size;
    if (head + len > this.size) {
      this.total += this.size - head; // skip the tail: entries stay contiguous
      head = 0;
    }
    const i = seq % this.entries;
    this.eSeq[i] = seq;
    this.eStart[i] = this.total;
    this.eLen[i] = len;
    this.eAt[i] = now;
    this.ring.set(buf.subarray(off, off + len), head);
    this.total += len;
    this.stored++;
    return true;
  }

  /**
   * The kept reply to `seq` as a view into the ring (valid until the next put), or null when it
   * was never kept, was overwritten or is too old.
   */
  get(seq: number, now: number): Buffer | null {
    const i = seq % this.entries;
    if (
      this.eSeq[i] !== seq ||
      this.total - this.eStart[i]! > this.size ||
      now - this.eAt[i]! > this.maxAgeMs
    ) {
      this.misses++;
      return null;
    }
    this.hits++;
    const start = this.eStart[i]! % this.size;
    return this.ring.subarray(start, start + this.eLen[i]!);
  }

  /** Forgets everything (a new importer epoch: seqs start again). */
  clear(): void {
    this.eSeq.fill(-1);
  }
}
