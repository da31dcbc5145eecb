/**
 * MACs on the hot path as two 24-bit halves: both are small integers (V8 Smis), so comparing and
 * looking them up allocates nothing. A whole MAC as one number (hi × 2^24 + lo, exact in a
 * double) is used off the hot path: persistence, snapshots, list order.
 */
import { MAC_SIZE } from '../aoe/constants.js';

const HALF = 0x100_0000;

/** Bytes 0..2 of the MAC at buf[off]. */
export function macHi(buf: Uint8Array, off = 0): number {
  return (buf[off]! << 16) | (buf[off + 1]! << 8) | buf[off + 2]!;
}

/** Bytes 3..5 of the MAC at buf[off]. */
export function macLo(buf: Uint8Array, off = 0): number {
  return (buf[off + 3]! << 16) | (buf[off + 4]! << 8) | buf[off + 5]!;
}

/** The 6 bytes at buf[off] as an integer in [0, 2^48). */
export function macToNumber(buf: Uint8Array, off = 0): number {
  return macHi(buf, off) * HALF + macLo(buf, off);
}

/** Writes the MAC number `n` as 6 bytes at out[off]. */
export function macFromNumber(n: number, out: Uint8Array, off = 0): void {
  const hi = Math.floor(n / HALF);
  const lo = n - hi * HALF;
  out[off] = (hi >>> 16) & 0xff;
  out[off + 1] = (hi >>> 8) & 0xff;
  out[off + 2] = hi & 0xff;
  out[off + 3] = (lo >>> 16) & 0xff;
  out[off + 4] = (lo >>> 8) & 0xff;
  out[off + 5] = lo & 0xff;
}

export function macBuffer(n: number): Buffer {
  const b = Buffer.alloc(MAC_SIZE);
  macFromNumber(n, b);
  return b;
}

/** Ordered set of MACs (insertion order is the order replies list them in). Small: ≤ 255 entries. */
export class MacList {
  private items: number[] = [];
  private his: number[] = [];
  private los: number[] = [];

  get size(): number {
    return this.items.length;
  }

  /** Allocation-free membership test by halves. */
  hasMac(hi: number, lo: number): boolean {
    const h = this.his;
    const l = this.los;
    for (let i = 0; i < h.length; i++) if (h[i] === hi && l[i] === lo) return true;
    return false;
  }

  at(i: number): number {
    return this.items[i]!;
  }

  /** Replaces the content (duplicates dropped, first occurrence kept). */
  setAll(macs: readonly number[]): void {
    const next: number[] = [];
    for (const m of macs) if (!next.includes(m)) next.push(m);
    this.items = next;
    this.his = next.map((m) => Math.floor(m / HALF));
    this.los = next.map((m) => m % HALF);
  }

  toArray(): number[] {
    return this.items.slice();
  }

  equals(macs: readonly number[]): boolean {
    if (macs.length !== this.items.length) return false;
    for (let i = 0; i < macs.length; i++) if (macs[i] !== this.items[i]) return false;
    return true;
  }

  toBuffers(): Buffer[] {
    return this.items.map(macBuffer);
  }
}

interface MacEntry<T> {
  hi: number;
  value: T;
  next: MacEntry<T> | null;
}

/** Map from MAC to T keyed by the low half, chained on the high half: lookups allocate nothing. */
export class MacTable<T> {
  private readonly map = new Map<number, MacEntry<T>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(hi: number, lo: number): T | undefined {
    let e: MacEntry<T> | null = this.map.get(lo) ?? null;
    while (e !== null) {
      if (e.hi === hi) return e.value;
      e = e.next;
    }
    return undefined;
  }

  set(hi: number, lo: number, value: T): void {
    const head = this.map.get(lo);
    for (let e = head ?? null; e !== null; e = e.next) {
      if (e.hi === hi) {
        e.value = value;
        return;
      }
    }
    this.map.set(lo, { hi, value, next: head ?? null });
    this.count++;
  }

  /** Every entry with its MAC as a number (off the hot path). */
  forEach(fn: (mac: number, value: T) => void): void {
    for (const [lo, head] of this.map) {
      for (let e: MacEntry<T> | null = head; e !== null; e = e.next) fn(e.hi * HALF + lo, e.value);
    }
  }
}

/** MacTable of the given MACs (a set). */
export function macSet(macs: readonly Uint8Array[]): MacTable<true> {
  const t = new MacTable<true>();
  for (const m of macs) t.set(macHi(m), macLo(m), true);
  return t;
}
