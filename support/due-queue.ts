/**
 * A time-ordered queue of small integer ids (an indexed binary min-heap): earliest due time first,
 * equal due times in push order, so datagrams given the same delay keep their arrival order. Any
 * id can be removed in O(log n) (a held datagram released early). Preallocated for ids
 * 0..capacity-1: nothing is allocated after construction.
 */
export class DueQueue {
  readonly capacity: number;
  /** Ids in heap order. */
  private readonly heap: Int32Array;
  /** Heap index of each id, -1 when the id is not queued. */
  private readonly pos: Int32Array;
  private readonly dueMs: Float64Array;
  /** Push counter of each id: the tie-break that keeps equal due times first in, first out. */
  private readonly order: Float64Array;
  private n = 0;
  private pushes = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity ${capacity} is not >= 1`);
    this.capacity = capacity;
    this.heap = new Int32Array(capacity);
    this.pos = new Int32Array(capacity).fill(-1);
    this.dueMs = new Float64Array(capacity);
    this.order = new Float64Array(capacity);
  }

  get size(): number {
    return this.n;
  }

  has(id: number): boolean {
    return (this.pos[id] ?? -1) >= 0;
  }

  push(id: number, dueMs: number): void {
    if (!(id >= 0 && id < this.capacity) || !Number.isInteger(id)) {
      throw new RangeError(`id ${id} is not in 0..${this.capacity - 1}`);
    }
    if (this.pos[id]! >= 0) throw new Error(`id ${id} is already queued`);
    this.dueMs[id] = dueMs;
    this.order[id] = this.pushes++;
    this.heap[this.n] = id;
    this.pos[id] = this.n;
    this.n++;
    this.up(this.n - 1);
  }

  /** Due time of the first id, Infinity when empty. */
  peekDueMs(): number {
    return this.n === 0 ? Number.POSITIVE_INFINITY : this.dueMs[this.heap[0]!]!;
  }

  /** Removes and returns the first id, -1 when empty. */
  pop(): number {
    if (this.n === 0) return -1;
    const id = this.heap[0]!;
    this.removeAt(0);
    return id;
  }

  /** Removes `id` if it is queued; returns whether it was. */
  remove(id: number): boolean {
    const i = this.pos[id];
    if (i === undefined || i < 0) return false;
    this.removeAt(i);
    return true;
  }

  private removeAt(i: number): void {
    const id = this.heap[i]!;
    this.pos[id] = -1;
    this.n--;
    if (i === this.n) return;
    const last = this.heap[this.n]!;
    this.heap[i] = last;
    this.pos[last] = i;
    // The moved id may belong above or below its new place.
    if (i > 0 && this.less(i, (i - 1) >> 1)) this.up(i);
    else this.down(i);
  }

  private less(i: number, j: number): boolean {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    const da = this.dueMs[a]!;
    const db = this.dueMs[b]!;
    return da < db || (da === db && this.order[a]! < this.order[b]!);
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    this.heap[i] = b;
    this.heap[j] = a;
    this.pos[a] = j;
    this.pos[b] = i;
  }

  private up(i: number): void {
    let k = i;
    while (k > 0) {
      const p = (k - 1) >> 1;
      if (!this.less(k, p)) break;
      this.swap(k, p);
      k = p;
    }
  }

  private down(i: number): void {
    let k = i;
    for (;;) {
      const l = 2 * k + 1;
      if (l >= this.n) break;
      const r = l + 1;
      const c = r < this.n && this.less(r, l) ? r : l;
      if (!this.less(c, k)) break;
      this.swap(k, c);
      k = c;
    }
  }
}
