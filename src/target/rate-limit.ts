/**
 * Token buckets per source MAC, in a fixed table: the engine asks "may this source do one more X
 * now?" without allocating, whatever the number of (spoofed) sources.
 *
 * The table is set-associative (4 ways per set, sets a power of two): a source maps to one set by a
 * hash of its MAC; a new source takes a free way or the least recently seen one. An evicted source
 * comes back with a full bucket, so a flood from many spoofed MACs is not bounded per source: the
 * global bucket, shared by every source, bounds it instead. A source is refused when either its own
 * bucket or the global one is empty; a refusal costs neither.
 */

const WAYS = 4;

export interface RateLimit {
  /** Tokens per second per source. */
  rate: number;
  /** Bucket size per source (the burst a quiet source may send at once). */
  burst: number;
  /** Tokens per second for all sources together. */
  globalRate: number;
  globalBurst: number;
  /** Sources tracked (rounded up to a multiple of 4 ways × a power of two). Default 1024. */
  sources?: number;
}

export class SourceRateLimiter {
  private readonly sets: number;
  private readonly nss: Int32Array;
  private readonly his: Int32Array;
  private readonly los: Int32Array;
  private readonly tokens: Float64Array;
  private readonly stamp: Float64Array;
  private readonly used: Uint8Array;
  /**
   * [tokens, stamp] of the global bucket: fractional numbers kept in a Float64Array, because a
   * class field that V8 ever saw holding another kind of value boxes every double stored into it
   * (an allocation per request under a flood).
   */
  private readonly bucket = new Float64Array(2);
  private readonly perMs: number;
  private readonly globalPerMs: number;
  /** Refusals because the source's own bucket was empty, and because the global one was. */
  refusedSource = 0;
  refusedGlobal = 0;

  constructor(readonly limit: RateLimit) {
    let sets = 1;
    while (sets * WAYS < (limit.sources ?? 1024)) sets *= 2;
    this.sets = sets;
    const n = sets * WAYS;
    this.nss = new Int32Array(n);
    this.his = new Int32Array(n);
    this.los = new Int32Array(n);
    this.tokens = new Float64Array(n);
    this.stamp = new Float64Array(n);
    this.used = new Uint8Array(n);
    this.bucket[0] = limit.globalBurst;
    this.bucket[1] = Number.NEGATIVE_INFINITY;
    this.perMs = limit.rate / 1000;
    this.globalPerMs = limit.globalRate / 1000;
  }

  /** Sources the table can hold. */
  get capacity(): number {
    return this.sets * WAYS;
  }

  /**
   * Takes one token for the source (MAC halves and principal namespace id, see mac-list.ts) at
   * `now` ms; false = refused. The same MAC in another namespace is another source.
   */
  take(hi: number, lo: number, now: number, ns = 0): boolean {
    const l = this.limit;
    const g = this.bucket;
    if (now > g[1]!) {
      g[0] =
        g[1] === Number.NEGATIVE_INFINITY
          ? l.globalBurst
          : Math.min(l.globalBurst, g[0]! + (now - g[1]!) * this.globalPerMs);
      g[1] = now;
    }
    const i = this.slot(ns, hi, lo, now);
    const t = Math.min(l.burst, this.tokens[i]! + (now - this.stamp[i]!) * this.perMs);
    this.tokens[i] = t;
    this.stamp[i] = now;
    if (t < 1) {
      this.refusedSource++;
      return false;
    }
    if (g[0]! < 1) {
      this.refusedGlobal++;
      return false;
    }
    this.tokens[i] = t - 1;
    g[0] = g[0]! - 1;
    return true;
  }

  /** The way that holds the source, claimed (full bucket) if it is new. */
  private slot(ns: number, hi: number, lo: number, now: number): number {
    // Multiplicative hash of both halves; the low bits of a MAC vary most, but spoofers pick them.
    const h =
      (Math.imul(hi ^ Math.imul(lo ^ Math.imul(ns, 0x27d4eb2d), 0x9e3779b1), 0x85ebca6b) >>> 16) &
      (this.sets - 1);
    const base = h * WAYS;
    let victim = base;
    for (let w = base; w < base + WAYS; w++) {
      if (this.used[w] === 0) {
        victim = w;
        break;
      }
      if (this.his[w] === hi && this.los[w] === lo && this.nss[w] === ns) return w;
      if (this.stamp[w]! < this.stamp[victim]!) victim = w;
    }
    this.used[victim] = 1;
    this.nss[victim] = ns;
    this.his[victim] = hi;
    this.los[victim] = lo;
    this.tokens[victim] = this.limit.burst;
    this.stamp[victim] = now;
    return victim;
  }
}
