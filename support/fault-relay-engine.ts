/**
 * The fault relay's wiring: two batched datagram links (side A, side B), one FaultPlan per
 * direction, one pool of held copies and one timer. A datagram arriving on A leaves from B to B's
 * peer, and the reverse. It works on DatagramLink, so it runs on the real UdpLink in the relay
 * process (fault-relay-main.ts) and on FakeDatagramLink in unit tests.
 *
 * The path with no faults allocates nothing: a datagram is copied once, from the receive slot of
 * one link into a transmit slot of the other, and each receive batch leaves as one sendmmsg.
 * Queued copies wait in the bounded pool; the timer is set to the earliest due time (ms precision).
 */
import { performance } from 'node:perf_hooks';
import type { DatagramLink } from '../src/io/datagram-link.js';
import { encodeUdpAddress, type UdpEndpoint } from '../src/io/udp-address.js';
import { copyPrefix, DatagramPool, type PoolClass } from './datagram-pool.js';
import { FaultPlan, type FaultSettings, Verdict } from './fault-plan.js';
import {
  type DirectionStats,
  directionSeed,
  type FaultRelayStats,
  type FaultUpdate,
} from './fault-relay-protocol.js';

export interface FaultRelayEngineOptions {
  aLink: DatagramLink;
  bLink: DatagramLink;
  /** Where datagrams arriving on B go (out of A). */
  aPeer: UdpEndpoint;
  /** Where datagrams arriving on A go (out of B). */
  bPeer: UdpEndpoint;
  seed: number;
  /** For both directions. */
  faults?: Partial<FaultSettings>;
  pool?: readonly PoolClass[];
  /** Milliseconds on a monotonic clock (default performance.now). */
  now?: () => number;
  /** Socket and internal errors; the relay carries on. */
  onError?: (err: Error) => void;
}

interface Path {
  readonly plan: FaultPlan;
  readonly out: DatagramLink;
  /** Destination address slot of everything this path sends. */
  readonly to: Buffer;
}

export class FaultRelayEngine {
  readonly a2b: FaultPlan;
  readonly b2a: FaultPlan;
  private readonly pool: DatagramPool;
  private readonly pathA2b: Path;
  private readonly pathB2a: Path;
  private readonly now: () => number;
  private readonly onError: (err: Error) => void;
  private socketErrors = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDueMs = Number.POSITIVE_INFINITY;
  private closed = false;
  private readonly onTimerBound = () => this.onTimer();

  constructor(private readonly o: FaultRelayEngineOptions) {
    this.now = o.now ?? (() => performance.now());
    this.onError = o.onError ?? (() => {});
    this.pool = new DatagramPool(o.pool);
    const plan = (dir: 'a2b' | 'b2a') =>
      new FaultPlan({
        seed: directionSeed(o.seed, dir),
        capacity: this.pool.capacity,
        faults: o.faults ?? {},
      });
    this.a2b = plan('a2b');
    this.b2a = plan('b2a');
    this.pathA2b = { plan: this.a2b, out: o.bLink, to: encodeUdpAddress(o.bPeer) };
    this.pathB2a = { plan: this.b2a, out: o.aLink, to: encodeUdpAddress(o.aPeer) };
  }

  start(): void {
    const report = (err: Error) => {
      this.socketErrors++;
      this.onError(err);
    };
    this.o.aLink.onError(report);
    this.o.bLink.onError(report);
    this.o.aLink.onBatch((d, l, _a, n) => this.receive(this.pathA2b, d, l, n));
    this.o.bLink.onBatch((d, l, _a, n) => this.receive(this.pathB2a, d, l, n));
  }

  set(update: FaultUpdate): void {
    if (update.both) {
      this.a2b.set(update.both);
      this.b2a.set(update.both);
    }
    if (update.a2b) this.a2b.set(update.a2b);
    if (update.b2a) this.b2a.set(update.b2a);
  }

  /** Both directions lose everything for `ms` from now (0 ends a blackout). */
  blackout(ms: number): void {
    const until = this.now() + ms;
    this.a2b.blackout(until);
    this.b2a.blackout(until);
  }

  stats(): FaultRelayStats {
    const dir = (p: Path): DirectionStats => {
      const s = p.out.stats();
      return { ...p.plan.stats(), sendDropped: s.txDropped + s.txErrors };
    };
    return {
      a2b: dir(this.pathA2b),
      b2a: dir(this.pathB2a),
      poolInUse: this.pool.inUse,
      socketErrors: this.socketErrors,
    };
  }

  /** Stops the timer and closes both links (what is committed is sent; held copies are lost). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.o.aLink.close();
    this.o.bLink.close();
  }

  private receive(p: Path, datagrams: readonly Buffer[], lengths: Int32Array, count: number): void {
    if (this.closed) return;
    const now = this.now();
    const plan = p.plan;
    for (let i = 0; i < count; i++) {
      // A negative length (truncated on receipt) is unforwardable to the plan, like an empty one.
      const len = lengths[i]!;
      const v = plan.admit(len, now);
      if (v === Verdict.send || v === Verdict.sendTwice) {
        this.forward(p, datagrams[i]!, len);
        if (v === Verdict.sendTwice) this.forward(p, datagrams[i]!, len);
      } else if (v === Verdict.queue) {
        const t = this.pool.store(datagrams[i]!, len);
        if (t < 0) plan.refuse();
        else plan.queue(t);
      }
      // Held datagrams this one was to overtake go out right behind it.
      if (plan.nextDueMs() <= now) this.drain(p, now);
    }
    this.arm(now);
  }

  private forward(p: Path, src: Buffer, len: number): void {
    copyPrefix(p.out.txSlot(), src, len);
    // A whole 24-byte address slot: UdpLink copies it without a view.
    p.out.txCommitTo(len, p.to, 0);
  }

  private drain(p: Path, now: number): void {
    const plan = p.plan;
    for (let t = plan.nextDue(now); t >= 0; t = plan.nextDue(now)) {
      if (!plan.discard) this.forward(p, this.pool.view(t), this.pool.length(t));
      if (plan.lastCopy) this.pool.release(t);
    }
  }

  /** Keeps one timer set to the earliest due copy of either direction. */
  private arm(now: number): void {
    const due = Math.min(this.a2b.nextDueMs(), this.b2a.nextDueMs());
    if (due === Number.POSITIVE_INFINITY || this.closed) return;
    if (this.timer !== undefined && this.timerDueMs <= due) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerDueMs = due;
    // A timer may fire a little early (libuv's loop time is in whole ms): the plan never hands out
    // a copy before its time, and this is armed again for what is left.
    this.timer = setTimeout(this.onTimerBound, Math.max(0, Math.ceil(due - now)));
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerDueMs = Number.POSITIVE_INFINITY;
    if (this.closed) return;
    try {
      const now = this.now();
      this.drain(this.pathA2b, now);
      this.drain(this.pathB2a, now);
      this.arm(now);
    } catch (e) {
      // A throw from a timer would end the process; the relay must outlive any one datagram.
      this.onError(e instanceof Error ? e : new Error(String(e)));
    }
  }
}
