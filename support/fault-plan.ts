/**
 * The fault relay's decisions for one direction, sans-I/O: given a datagram's size and the time,
 * drop it, send it now (once or twice), or queue it to go out later (delay, jitter, held back so
 * later ones overtake it). The driver (fault-relay-main.ts) owns the sockets, the copies of queued
 * datagrams (under small integer tickets it hands in) and the timer; this sees only sizes, tickets
 * and times, so its statistics are unit-tested over many datagrams without sockets or clocks.
 *
 * Reproducible: every datagram takes exactly five draws from a seeded generator, whatever the
 * settings and the outcome, so the n-th datagram's fate depends only on the seed, n and the
 * settings at that time. A test can replay a relay's decisions with a plan of its own.
 *
 * Counters keep one invariant at every moment:
 *   in + duplicated = out + dropped + blackholed + oversize + overflow + unforwardable + pending
 */
import { seededRandom } from '../src/io/fake-datagram.js';
import { DueQueue } from './due-queue.js';

export interface FaultSettings {
  /** Share of datagrams lost, 0..100. */
  dropPercent: number;
  /** Share of datagrams delivered twice, 0..100 (each copy gets its own jitter). */
  duplicatePercent: number;
  /** Share of datagrams held back so that later ones overtake them, 0..100. */
  reorderPercent: number;
  /** A held datagram goes out right after the one admitted this many after it has gone out... */
  reorderAfter: number;
  /** ...or this long after it would have gone out unheld, whichever comes first. */
  reorderDelayMs: number;
  /** Fixed one-way delay. */
  delayMs: number;
  /** Uniform extra delay in [0, jitterMs). */
  jitterMs: number;
  /**
   * Datagrams with more UDP payload bytes than this are dropped, as on a path whose MTU is smaller
   * than the sender believes (IPv4: a path MTU of maxSizeBytes + 28). 0: no limit.
   */
  maxSizeBytes: number;
}

export const NO_FAULTS: Readonly<FaultSettings> = Object.freeze({
  dropPercent: 0,
  duplicatePercent: 0,
  reorderPercent: 0,
  reorderAfter: 3,
  reorderDelayMs: 20,
  delayMs: 0,
  jitterMs: 0,
  maxSizeBytes: 0,
});

const LIMITS: Record<keyof FaultSettings, { min: number; max: number; integer: boolean }> = {
  dropPercent: { min: 0, max: 100, integer: false },
  duplicatePercent: { min: 0, max: 100, integer: false },
  reorderPercent: { min: 0, max: 100, integer: false },
  reorderAfter: { min: 1, max: 1_000_000, integer: true },
  reorderDelayMs: { min: 0, max: 3_600_000, integer: false },
  delayMs: { min: 0, max: 3_600_000, integer: false },
  jitterMs: { min: 0, max: 3_600_000, integer: false },
  maxSizeBytes: { min: 0, max: 65_535, integer: true },
};

/** Checks a partial update (e.g. parsed JSON); throws naming the first bad or unknown key. */
export function checkFaults(update: unknown): Partial<FaultSettings> {
  if (typeof update !== 'object' || update === null || Array.isArray(update)) {
    throw new TypeError(`fault settings must be an object, not ${JSON.stringify(update)}`);
  }
  const out: Partial<FaultSettings> = {};
  for (const [key, value] of Object.entries(update)) {
    const lim = LIMITS[key as keyof FaultSettings];
    if (lim === undefined) {
      throw new RangeError(`unknown fault setting '${key}' (known: ${Object.keys(LIMITS).join(', ')})`);
    }
    const ok =
      typeof value === 'number' &&
      Number.isFinite(value) &&
      value >= lim.min &&
      value <= lim.max &&
      (!lim.integer || Number.isInteger(value));
    if (!ok) {
      const what = lim.integer ? 'an integer' : 'a number';
      throw new RangeError(`${key} = ${JSON.stringify(value)}: expected ${what} in ${lim.min}..${lim.max}`);
    }
    out[key as keyof FaultSettings] = value as number;
  }
  return out;
}

export interface FaultCounters {
  /** Datagrams admitted. */
  in: number;
  /** Copies handed out to be sent. */
  out: number;
  /** Lost to dropPercent. */
  dropped: number;
  /** Datagrams sent (or queued to be sent) twice. */
  duplicated: number;
  /** Datagrams held back for reordering. */
  reordered: number;
  /** Datagrams queued for delay or jitter. */
  delayed: number;
  /** Copies lost to a blackout: arriving in one, or due to go out during one. */
  blackholed: number;
  /** Larger than maxSizeBytes. */
  oversize: number;
  /** Queued datagrams the driver had no room to copy. */
  overflow: number;
  /** Empty (the socket layer cannot send them) or truncated on receipt. */
  unforwardable: number;
  /** Copies queued or held right now. */
  pending: number;
}

export function emptyFaultCounters(): FaultCounters {
  return {
    in: 0,
    out: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
    delayed: 0,
    blackholed: 0,
    oversize: 0,
    overflow: 0,
    unforwardable: 0,
    pending: 0,
  };
}

/** What admit() decided. */
export const Verdict = {
  /** Nothing goes out (the counters say why). */
  drop: 0,
  /** Send the datagram now; no copy is needed. */
  send: 1,
  /** Send the datagram now, twice. */
  sendTwice: 2,
  /** Keep a copy under a free ticket and call queue(ticket), or refuse() when there is no room. */
  queue: 3,
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

export interface FaultPlanOptions {
  seed: number;
  /** Tickets the driver hands in are 0..capacity-1 (one per datagram copy it keeps). */
  capacity: number;
  faults?: Partial<FaultSettings>;
}

export class FaultPlan {
  readonly capacity: number;
  readonly counters: FaultCounters = emptyFaultCounters();
  /** Set by nextDue(): that was the ticket's last copy, so its storage can be reused. */
  lastCopy = false;
  /** Set by nextDue(): do not send this copy (it is due during a blackout). */
  discard = false;
  private settings_: FaultSettings;
  private readonly random: () => number;
  private blackoutUntilMs = Number.NEGATIVE_INFINITY;
  private seq = 0;
  // The decision admit() returned Verdict.queue for, until queue() or refuse().
  private decided = false;
  private dSeq = 0;
  private dCopies = 0;
  private dHeld = false;
  private dDelayed = false;
  private dDue0 = 0;
  private dDue1 = 0;
  private dTimeoutMs = 0;
  private dReleaseSeq = 0;
  // Per ticket.
  private readonly copies: Uint8Array;
  private readonly ticketSeq: Float64Array;
  private readonly releaseSeq: Float64Array;
  private readonly held: Uint8Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  /** Held tickets in admission order (a linked list: a timed-out one leaves from the middle). */
  private heldHead = -1;
  private heldTail = -1;
  /** Ids ticket*2 + copy; a held ticket has only its time-out, id ticket*2. */
  private readonly due: DueQueue;
  /** Copies released from holding, to go out next (ticket per copy). */
  private readonly ready: Int32Array;
  private readyHead = 0;
  private readyCount = 0;

  constructor(o: FaultPlanOptions) {
    if (!Number.isInteger(o.capacity) || o.capacity < 1) {
      throw new RangeError(`capacity ${o.capacity} is not >= 1`);
    }
    this.capacity = o.capacity;
    this.random = seededRandom(o.seed);
    this.settings_ = { ...NO_FAULTS, ...checkFaults(o.faults ?? {}) };
    this.copies = new Uint8Array(o.capacity);
    this.ticketSeq = new Float64Array(o.capacity);
    this.releaseSeq = new Float64Array(o.capacity);
    this.held = new Uint8Array(o.capacity);
    this.prev = new Int32Array(o.capacity).fill(-1);
    this.next = new Int32Array(o.capacity).fill(-1);
    this.due = new DueQueue(2 * o.capacity);
    this.ready = new Int32Array(2 * o.capacity);
  }

  get settings(): Readonly<FaultSettings> {
    return { ...this.settings_ };
  }

  /** Changes some settings; queued datagrams keep the times they were given. */
  set(update: Partial<FaultSettings>): void {
    this.settings_ = { ...this.settings_, ...checkFaults(update) };
  }

  /** Everything arriving, or due to go out, before `untilMs` is lost (a past time ends a blackout). */
  blackout(untilMs: number): void {
    this.blackoutUntilMs = untilMs;
  }

  get blackoutUntil(): number {
    return this.blackoutUntilMs;
  }

  admit(sizeBytes: number, nowMs: number): Verdict {
    if (this.decided) throw new Error('admit() before queue() or refuse() of the previous Verdict.queue');
    const c = this.counters;
    const s = this.settings_;
    const seq = this.seq++;
    c.in++;
    // Always five draws, in this order: see the file comment.
    const uDrop = this.random();
    const uDup = this.random();
    const uHold = this.random();
    const uJitter0 = this.random();
    const uJitter1 = this.random();
    if (!(sizeBytes > 0)) {
      c.unforwardable++;
      return Verdict.drop;
    }
    if (nowMs < this.blackoutUntilMs) {
      c.blackholed++;
      return Verdict.drop;
    }
    if (s.maxSizeBytes > 0 && sizeBytes > s.maxSizeBytes) {
      c.oversize++;
      return Verdict.drop;
    }
    if (uDrop * 100 < s.dropPercent) {
      c.dropped++;
      return Verdict.drop;
    }
    const twice = uDup * 100 < s.duplicatePercent;
    const hold = uHold * 100 < s.reorderPercent;
    const delayed = s.delayMs > 0 || s.jitterMs > 0;
    if (!hold && !delayed) {
      // Goes out before anything released by it (the driver drains after sending it).
      this.delivered(seq);
      if (twice) {
        c.duplicated++;
        c.out += 2;
        return Verdict.sendTwice;
      }
      c.out++;
      return Verdict.send;
    }
    this.decided = true;
    this.dSeq = seq;
    this.dCopies = twice ? 2 : 1;
    this.dHeld = hold;
    this.dDelayed = delayed;
    this.dDue0 = nowMs + s.delayMs + uJitter0 * s.jitterMs;
    this.dDue1 = nowMs + s.delayMs + uJitter1 * s.jitterMs;
    this.dTimeoutMs = this.dDue0 + s.reorderDelayMs;
    this.dReleaseSeq = seq + s.reorderAfter;
    return Verdict.queue;
  }

  /** After Verdict.queue: the driver keeps a copy under `ticket` until its last copy is due. */
  queue(ticket: number): void {
    if (!this.decided) throw new Error('queue() without a Verdict.queue to carry out');
    if (!(ticket >= 0 && ticket < this.capacity) || !Number.isInteger(ticket)) {
      throw new RangeError(`ticket ${ticket} is not in 0..${this.capacity - 1}`);
    }
    if (this.copies[ticket] !== 0) throw new Error(`ticket ${ticket} is still in use`);
    this.decided = false;
    const c = this.counters;
    const t = ticket;
    this.copies[t] = this.dCopies;
    this.ticketSeq[t] = this.dSeq;
    c.pending += this.dCopies;
    if (this.dCopies === 2) c.duplicated++;
    if (this.dDelayed) c.delayed++;
    if (this.dHeld) {
      c.reordered++;
      this.held[t] = 1;
      this.releaseSeq[t] = this.dReleaseSeq;
      this.prev[t] = this.heldTail;
      this.next[t] = -1;
      if (this.heldTail >= 0) this.next[this.heldTail] = t;
      else this.heldHead = t;
      this.heldTail = t;
      this.due.push(2 * t, this.dTimeoutMs);
      return;
    }
    this.due.push(2 * t, this.dDue0);
    if (this.dCopies === 2) this.due.push(2 * t + 1, this.dDue1);
  }

  /** After Verdict.queue: the driver had no room for a copy; the datagram is lost (overflow). */
  refuse(): void {
    if (!this.decided) throw new Error('refuse() without a Verdict.queue to carry out');
    this.decided = false;
    this.counters.overflow++;
  }

  /**
   * The ticket of the next copy to go out at `nowMs`, or -1 when nothing more is due. Call until
   * -1; after each ticket, `discard` says not to send it, `lastCopy` that its storage is free.
   */
  nextDue(nowMs: number): number {
    for (;;) {
      let t: number;
      if (this.readyCount > 0) {
        t = this.ready[this.readyHead]!;
        this.readyHead = (this.readyHead + 1) % this.ready.length;
        this.readyCount--;
      } else {
        if (this.due.peekDueMs() > nowMs) return -1;
        t = this.due.pop() >> 1;
        if (this.held[t] === 1) {
          // Held long enough without being overtaken: out it goes (through `ready`).
          this.release(t);
          continue;
        }
      }
      const c = this.counters;
      this.copies[t] = this.copies[t]! - 1;
      c.pending--;
      this.lastCopy = this.copies[t] === 0;
      this.discard = nowMs < this.blackoutUntilMs;
      if (this.discard) c.blackholed++;
      else {
        c.out++;
        this.delivered(this.ticketSeq[t]!);
      }
      return t;
    }
  }

  /** When the earliest queued copy is due (-Infinity: now; Infinity: nothing is queued). */
  nextDueMs(): number {
    return this.readyCount > 0 ? Number.NEGATIVE_INFINITY : this.due.peekDueMs();
  }

  stats(): FaultCounters {
    return { ...this.counters };
  }

  /** Datagram `seq` went out: held ones it was to overtake follow it now. */
  private delivered(seq: number): void {
    while (this.heldHead >= 0 && this.releaseSeq[this.heldHead]! <= seq) this.release(this.heldHead);
  }

  private release(t: number): void {
    this.held[t] = 0;
    const p = this.prev[t]!;
    const n = this.next[t]!;
    if (p >= 0) this.next[p] = n;
    else this.heldHead = n;
    if (n >= 0) this.prev[n] = p;
    else this.heldTail = p;
    this.prev[t] = -1;
    this.next[t] = -1;
    this.due.remove(2 * t);
    for (let k = 0; k < this.copies[t]!; k++) {
      this.ready[(this.readyHead + this.readyCount) % this.ready.length] = t;
      this.readyCount++;
    }
  }
}
