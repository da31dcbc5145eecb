/**
 * Copies of the datagrams the fault relay holds back (delay, jitter, reordering), in preallocated
 * slots of a few sizes, so that room for a 64 KiB datagram does not make every slot that large.
 * Bounded: when no slot that fits is free, store() returns -1 and the caller counts the loss.
 * A slot is named by its ticket, 0..capacity-1, the number FaultPlan schedules.
 */
/**
 * Copies the first `length` bytes of `src` to the start of `dst` without allocating. Buffer#copy
 * with a partial source allocates a Uint8Array view on Node 20 (lib/buffer.js _copyActual), a
 * subarray() does too; fill() with a Buffer value is a native memcpy of min(value, range) bytes.
 */
export function copyPrefix(dst: Buffer, src: Buffer, length: number): void {
  dst.fill(src, 0, length);
}

export interface PoolClass {
  slotBytes: number;
  slots: number;
}

/** 29 MiB of address space; pages are touched only as slots are used. */
export const DEFAULT_POOL: readonly PoolClass[] = [
  // Tunnel datagrams at a 1500-byte MTU: ~8000 in flight is 160k/s for 50 ms.
  { slotBytes: 2048, slots: 8192 },
  // Jumbo frames.
  { slotBytes: 9216, slots: 1024 },
  // Anything UDP over IPv4 can carry (65507 bytes).
  { slotBytes: 65536, slots: 64 },
];

export class DatagramPool {
  readonly capacity: number;
  private readonly views: Buffer[] = [];
  private readonly lengths: Int32Array;
  private readonly classOf: Uint8Array;
  private readonly used: Uint8Array;
  private readonly slotBytes: number[];
  /** Per class, a stack of free tickets and its height. */
  private readonly free: Int32Array[] = [];
  private readonly freeTop: Int32Array;
  private inUse_ = 0;

  constructor(classes: readonly PoolClass[] = DEFAULT_POOL) {
    if (classes.length === 0 || classes.length > 255) throw new RangeError('1..255 slot classes');
    // Smallest first, so store() takes the tightest fit and spills upwards.
    const sorted = [...classes].sort((a, b) => a.slotBytes - b.slotBytes);
    this.slotBytes = sorted.map((c) => c.slotBytes);
    this.capacity = sorted.reduce((n, c) => n + c.slots, 0);
    this.lengths = new Int32Array(this.capacity);
    this.classOf = new Uint8Array(this.capacity);
    this.used = new Uint8Array(this.capacity);
    this.freeTop = new Int32Array(sorted.length);
    let ticket = 0;
    sorted.forEach((c, k) => {
      if (!Number.isInteger(c.slotBytes) || c.slotBytes < 1 || !Number.isInteger(c.slots) || c.slots < 1) {
        throw new RangeError(`slot class ${JSON.stringify(c)} needs positive integers`);
      }
      const arena = Buffer.allocUnsafeSlow(c.slotBytes * c.slots);
      const stack = new Int32Array(c.slots);
      for (let i = 0; i < c.slots; i++) {
        this.views.push(arena.subarray(i * c.slotBytes, (i + 1) * c.slotBytes));
        this.classOf[ticket] = k;
        // Pushed in reverse so the lowest tickets are handed out first (easier to read in tests).
        stack[c.slots - 1 - i] = ticket;
        ticket++;
      }
      this.free.push(stack);
      this.freeTop[k] = c.slots;
    });
  }

  /** Tickets taken now. */
  get inUse(): number {
    return this.inUse_;
  }

  /** Copies `length` bytes of `src` into a free slot; its ticket, or -1 when none that fits is free. */
  store(src: Buffer, length: number): number {
    for (let k = 0; k < this.slotBytes.length; k++) {
      if (this.slotBytes[k]! < length || this.freeTop[k] === 0) continue;
      const top = this.freeTop[k]! - 1;
      this.freeTop[k] = top;
      const t = this.free[k]![top]!;
      copyPrefix(this.views[t]!, src, length);
      this.lengths[t] = length;
      this.used[t] = 1;
      this.inUse_++;
      return t;
    }
    return -1;
  }

  /** The whole slot of `ticket`; its first length(ticket) bytes are the datagram. */
  view(ticket: number): Buffer {
    return this.views[ticket]!;
  }

  length(ticket: number): number {
    return this.lengths[ticket]!;
  }

  release(ticket: number): void {
    if (this.used[ticket] !== 1) throw new Error(`ticket ${ticket} is not in use`);
    this.used[ticket] = 0;
    this.inUse_--;
    const k = this.classOf[ticket]!;
    this.free[k]![this.freeTop[k]!] = ticket;
    this.freeTop[k] = this.freeTop[k]! + 1;
  }
}
