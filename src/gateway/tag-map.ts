/**
 * A bounded table of requests in flight across one hop, keyed by the tag this side put on the
 * wire. The import side maps an initiator's (MAC, tag, link) to a request id for the tunnel; the
 * forward side maps a request id from a peer to its own tag towards a native target. Both need the
 * same thing: a fixed number of slots, a tag that names a slot and a generation (so a late reply to
 * a freed and reused slot is recognised and dropped), expiry, and no allocation per request.
 *
 * A tag is (generation << SLOT_BITS | slot) with bit 31 clear: the Linux initiator drops replies
 * whose tag has bit 31 set, and the forward side's tags reach native targets and come back.
 */
import { randomInt } from 'node:crypto';
import { AoegwError } from '../errors.js';

export const NO_SLOT = -1;

export class TagMap {
  readonly capacity: number;
  private readonly slotBits: number;
  private readonly slotMask: number;
  private readonly genLimit: number;
  private readonly gen: Uint32Array;
  private readonly live: Uint8Array;
  /** Time each slot was taken (ms), for expiry. */
  readonly sentAt: Float64Array;
  private readonly free: Int32Array;
  private nFree: number;
  private inUse = 0;

  /** `capacity` is rounded up to a power of two (at most 2^16). */
  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 16) {
      throw new AoegwError('ERR_GATEWAY_CONFIG', `tag map capacity ${capacity} is not in 1..65536`);
    }
    let bits = 0;
    while (1 << bits < capacity) bits++;
    this.slotBits = bits;
    this.capacity = 1 << bits;
    this.slotMask = this.capacity - 1;
    this.genLimit = 2 ** (31 - bits);
    // Random first generations: a restarted process does not hand out the tags its previous one
    // used, so a late reply to the old process cannot match a new request's tag.
    this.gen = new Uint32Array(this.capacity);
    for (let i = 0; i < this.capacity; i++) this.gen[i] = randomInt(this.genLimit);
    this.live = new Uint8Array(this.capacity);
    this.sentAt = new Float64Array(this.capacity);
    this.free = new Int32Array(this.capacity);
    // Hand out low slots first (a stack popped from the end).
    for (let i = 0; i < this.capacity; i++) this.free[i] = this.capacity - 1 - i;
    this.nFree = this.capacity;
  }

  get size(): number {
    return this.inUse;
  }

  /** Takes a slot; returns it, or NO_SLOT when the table is full. */
  take(now: number): number {
    if (this.nFree === 0) return NO_SLOT;
    const s = this.free[--this.nFree]!;
    this.gen[s] = (this.gen[s]! + 1) % this.genLimit;
    this.live[s] = 1;
    this.sentAt[s] = now;
    this.inUse++;
    return s;
  }

  /** The wire tag of a live slot (bit 31 clear). */
  tagOf(slot: number): number {
    return ((this.gen[slot]! << this.slotBits) | slot) >>> 0;
  }

  /** The live slot a tag names, or NO_SLOT (unknown, stale generation, or bit 31 set). */
  find(tag: number): number {
    if (tag < 0 || tag > 0x7fffffff) return NO_SLOT;
    const s = tag & this.slotMask;
    if (this.live[s] !== 1 || this.gen[s] !== Math.floor(tag / this.capacity)) return NO_SLOT;
    return s;
  }

  release(slot: number): void {
    if (this.live[slot] !== 1) return;
    this.live[slot] = 0;
    this.free[this.nFree++] = slot;
    this.inUse--;
  }

  /** Releases every slot taken before `cutoff`; calls `onExpire(slot)` first for each. Returns the count. */
  expire(cutoff: number, onExpire?: (slot: number) => void): number {
    if (this.inUse === 0) return 0;
    let n = 0;
    for (let s = 0; s < this.capacity; s++) {
      if (this.live[s] === 1 && this.sentAt[s]! < cutoff) {
        onExpire?.(s);
        this.release(s);
        n++;
      }
    }
    return n;
  }

  isLive(slot: number): boolean {
    return this.live[slot] === 1;
  }
}
