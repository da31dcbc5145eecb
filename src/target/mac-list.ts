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

/** The principal namespace of local links (an initiator on a segment the target is on). */
export const LOCAL_NS = '';

/** '' (local) or lowercase hex (a peer gateway's public key): what a link may name as its namespace. */
export function isNamespace(ns: unknown): ns is string {
  return typeof ns === 'string' && (ns === LOCAL_NS || /^(?:[0-9a-f]{2}){1,64}$/.test(ns));
}

/**
 * Principal namespaces interned as small integers (local = 0), so a principal on the hot path is
 * three Smis (namespace id, MAC halves) and comparing one allocates nothing. Ids are never reused:
 * the set is bounded by the configured peers and the state file.
 */
export class Namespaces {
  private readonly ids = new Map<string, number>([[LOCAL_NS, 0]]);
  private readonly names: string[] = [LOCAL_NS];

  intern(ns: string): number {
    let id = this.ids.get(ns);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(ns, id);
      this.names.push(ns);
    }
    return id;
  }

  name(id: number): string {
    return this.names[id] ?? LOCAL_NS;
  }
}

/**
 * Ordered set of principals (namespace id, MAC); insertion order is the order replies list them
 * in. Small: ≤ 255 entries.
 */
export class PrincipalList {
  private nss: number[] = [];
  private macs: number[] = [];
  private his: number[] = [];
  private los: number[] = [];

  get size(): number {
    return this.macs.length;
  }

  /** Allocation-free membership test. */
  has(ns: number, hi: number, lo: number): boolean {
    const n = this.nss;
    const h = this.his;
    const l = this.los;
    for (let i = 0; i < h.length; i++) if (h[i] === hi && l[i] === lo && n[i] === ns) return true;
    return false;
  }

  nsAt(i: number): number {
    return this.nss[i]!;
  }

  macAt(i: number): number {
    return this.macs[i]!;
  }

  /** Entries in namespace `ns`. */
  countIn(ns: number): number {
    let k = 0;
    for (let i = 0; i < this.nss.length; i++) if (this.nss[i] === ns) k++;
    return k;
  }

  /** Replaces the content (duplicates dropped, first occurrence kept). */
  setAll(nss: readonly number[], macs: readonly number[]): void {
    const n: number[] = [];
    const m: number[] = [];
    for (let i = 0; i < macs.length; i++) {
      let dup = false;
      for (let j = 0; j < m.length && !dup; j++) dup = m[j] === macs[i] && n[j] === nss[i];
      if (dup) continue;
      n.push(nss[i]!);
      m.push(macs[i]!);
    }
    this.nss = n;
    this.macs = m;
    this.his = m.map((x) => Math.floor(x / HALF));
    this.los = m.map((x) => x % HALF);
  }

  /** Copies of the namespace ids and MACs (off the hot path). */
  toArrays(): { nss: number[]; macs: number[] } {
    return { nss: this.nss.slice(), macs: this.macs.slice() };
  }

  equals(nss: readonly number[], macs: readonly number[]): boolean {
    if (macs.length !== this.macs.length) return false;
    for (let i = 0; i < macs.length; i++)
      if (macs[i] !== this.macs[i] || nss[i] !== this.nss[i]) return false;
    return true;
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
