/**
 * Path MTU towards one peer (docs/protocol.md, 13.9-13.10). The configured tunnel MTU is an upper bound:
 * a routed path with a smaller MTU (or an operator's wrong setting) drops larger datagrams without
 * a word, and Node gives us no ICMP. So we probe: a PROBE record fills a datagram of the size under
 * test, the peer acks it, and the size we fragment and pack to (`current`) follows what arrives.
 *
 * - Start at the configured MTU (optimistic) and confirm it soon after session up, then every
 *   probeEveryMs.
 * - A probe counts as lost only when the peer was demonstrably alive meanwhile: the small liveness
 *   probe sent with it was acked, or the caller heard from the peer after the probe went out. A
 *   silent peer is an outage, not an MTU. After `lossesToLower` consecutive losses at a size, that
 *   size is bad: if data uses it, drop at once to the largest size known good (at least minMtu, the
 *   floor we assume always works), then binary-search upwards between good and bad, raising
 *   `current` on every acked step, down to `precisionBytes`.
 * - Every raiseEveryMs below the configured MTU, search again from the configured MTU down (a path
 *   that heals, or a false lowering under heavy loss, recovers).
 * Sizes are datagram sizes (UDP payload bytes), as tunnel.mtu. Sans-I/O: time is an argument.
 */
import { randomInt } from 'node:crypto';
import { AoegwError } from '../errors.js';
import { datagramBytesForRecord, PROBE_MIN_VALUE_BYTES } from './probe-records.js';

export const PATH_MTU_DEFAULTS = {
  minMtu: 1280,
  firstProbeAfterMs: 1_000,
  probeEveryMs: 60_000,
  probeTimeoutMs: 2_000,
  lossesToLower: 3,
  raiseEveryMs: 600_000,
  precisionBytes: 16,
} as const;

/** Datagram size of the liveness probe: a PROBE with a bare 4-byte value. */
export const LIVENESS_PROBE_BYTES = datagramBytesForRecord(PROBE_MIN_VALUE_BYTES);

export interface PathMtuChange {
  readonly kind: 'lowered' | 'raised';
  readonly fromMtu: number;
  readonly toMtu: number;
  /** lowered: probes at a size data used were lost; raised: a larger size was acked. */
  readonly reason: 'probe-loss' | 'probe-ack';
  readonly atMs: number;
}

export interface PathMtuEvents {
  /** `current` changed (log it). */
  changed?(change: PathMtuChange): void;
  /** Probes at minMtu itself are lost while the peer answers: nothing lower to go to (log it). */
  floorLost?(minMtu: number, atMs: number): void;
}

export interface PathMtuOptions {
  /** tunnel.mtu: the largest datagram we ever send to this peer. */
  readonly configuredMtu: number;
  /** Never go below this; assumed to work (default 1280). */
  readonly minMtu?: number;
  readonly firstProbeAfterMs?: number;
  /** Confirm the current size this often (default 60 s). */
  readonly probeEveryMs?: number;
  /** An unanswered probe is judged after this (default 2 s; several tunnel RTTs). */
  readonly probeTimeoutMs?: number;
  /** Consecutive judged losses that make a size bad (default 3). */
  readonly lossesToLower?: number;
  /** Below the configured MTU, search upwards again this often (default 10 min). */
  readonly raiseEveryMs?: number;
  /** Stop the search when bad - good <= this (default 16: the tunnel pads to 16 bytes). */
  readonly precisionBytes?: number;
  readonly firstProbeId?: number;
  readonly events?: PathMtuEvents;
}

/**
 * Send now: a PROBE whose record alone fills a datagram of `sizeBytes` (value length
 * sizeBytes - 35), and a minimal PROBE (4-byte value, may share a datagram) with `livenessProbeId`.
 */
export interface PathMtuProbe {
  readonly probeId: number;
  readonly sizeBytes: number;
  readonly livenessProbeId: number;
}

export interface PathMtuCounters {
  probesSent: number;
  probesAcked: number;
  /** Judged lost: unanswered while the peer was alive, or reported by onProbeLost. */
  probesLost: number;
  /** Unanswered while the peer was silent: not counted against the size. */
  probesUnjudged: number;
  /** Acks of probes already judged (a slow path); they still prove their size. */
  acksLate: number;
  acksUnknown: number;
  /** An ack whose echoed length is not the probe's: ignored. */
  acksMismatched: number;
  lowered: number;
  raised: number;
  raiseAttempts: number;
  floorLost: number;
}

const RING = 8;
/** Probe-size marker of a liveness probe in the ring. */
const LIVENESS = 0;

export class PathMtu {
  readonly configuredMtu: number;
  readonly minMtu: number;
  readonly counters: PathMtuCounters = {
    probesSent: 0,
    probesAcked: 0,
    probesLost: 0,
    probesUnjudged: 0,
    acksLate: 0,
    acksUnknown: 0,
    acksMismatched: 0,
    lowered: 0,
    raised: 0,
    raiseAttempts: 0,
    floorLost: 0,
  };
  private readonly o: Required<Omit<PathMtuOptions, 'events' | 'firstProbeId'>>;
  private readonly events: PathMtuEvents;
  private cur: number;
  private searching = false;
  /** Largest size known (or assumed: minMtu) to arrive. */
  private goodMtu: number;
  /** Smallest size known not to arrive; `unknownBad` when none. */
  private badMtu: number;
  private readonly unknownBad: number;
  /** Consecutive judged losses at `lossSize`. */
  private losses = 0;
  private lossSize = 0;
  private nextProbeAtMs: number;
  private nextRaiseAtMs = Number.POSITIVE_INFINITY;
  private nextId: number;
  /** The probe awaiting its answer (inFlight false: none). */
  private inFlight = false;
  private flightId = 0;
  private flightSize = 0;
  private flightSentMs = 0;
  private flightLivenessId = -1;
  private flightAlive = false;
  /** Recent probe ids and sizes (LIVENESS for liveness probes), for late acks. */
  private readonly ringIds = new Uint32Array(RING);
  private readonly ringSizes = new Uint32Array(RING);
  private ringUsed = 0;
  private ringNext = 0;

  constructor(opts: PathMtuOptions, nowMs: number) {
    const D = PATH_MTU_DEFAULTS;
    this.o = {
      configuredMtu: opts.configuredMtu,
      minMtu: opts.minMtu ?? D.minMtu,
      firstProbeAfterMs: opts.firstProbeAfterMs ?? D.firstProbeAfterMs,
      probeEveryMs: opts.probeEveryMs ?? D.probeEveryMs,
      probeTimeoutMs: opts.probeTimeoutMs ?? D.probeTimeoutMs,
      lossesToLower: opts.lossesToLower ?? D.lossesToLower,
      raiseEveryMs: opts.raiseEveryMs ?? D.raiseEveryMs,
      precisionBytes: opts.precisionBytes ?? D.precisionBytes,
    };
    checkOptions(this.o);
    this.events = opts.events ?? {};
    this.configuredMtu = this.o.configuredMtu;
    this.minMtu = this.o.minMtu;
    this.cur = this.configuredMtu;
    this.goodMtu = this.minMtu;
    this.unknownBad = this.configuredMtu + 1;
    this.badMtu = this.unknownBad;
    this.nextId = (opts.firstProbeId ?? randomInt(0x1_0000_0000)) >>> 0;
    this.nextProbeAtMs = nowMs + this.o.firstProbeAfterMs;
  }

  /** The datagram size to pack and fragment to now. */
  get current(): number {
    return this.cur;
  }

  get isSearching(): boolean {
    return this.searching;
  }

  /**
   * A new session with the peer: forget the probe in flight (its answer may never come) and
   * confirm the current size soon. What was learned about the path stays.
   */
  sessionUp(nowMs: number): void {
    this.inFlight = false;
    this.losses = 0;
    this.nextProbeAtMs = nowMs + this.o.firstProbeAfterMs;
  }

  /** Probe at the next tick (the caller suspects large datagrams are being lost). */
  probeSoon(nowMs: number): void {
    if (!this.inFlight) this.nextProbeAtMs = Math.min(this.nextProbeAtMs, nowMs);
  }

  /**
   * Advance to `nowMs`; `lastHeardMs` is when the last authenticated datagram from the peer
   * arrived (any record). Returns the probe to send now, or null.
   */
  tick(nowMs: number, lastHeardMs = Number.NEGATIVE_INFINITY): PathMtuProbe | null {
    if (this.inFlight && nowMs >= this.flightSentMs + this.o.probeTimeoutMs) {
      this.inFlight = false;
      if (this.flightAlive || lastHeardMs > this.flightSentMs) {
        this.lost(nowMs);
      } else {
        this.counters.probesUnjudged++;
        this.nextProbeAtMs = nowMs + this.o.probeTimeoutMs;
      }
    }
    if (this.inFlight) return null;
    if (!this.searching && this.cur < this.configuredMtu && nowMs >= this.nextRaiseAtMs) {
      this.counters.raiseAttempts++;
      this.searching = true;
      this.goodMtu = Math.max(this.goodMtu, this.cur);
      this.badMtu = this.unknownBad;
      this.losses = 0;
      this.nextRaiseAtMs = Number.POSITIVE_INFINITY;
      this.nextProbeAtMs = nowMs;
    }
    if (nowMs < this.nextProbeAtMs) return null;
    let size = this.cur;
    if (this.searching) {
      size = this.candidate();
      if (size < 0) {
        this.settle(nowMs);
        return null;
      }
    }
    return this.send(size, nowMs);
  }

  /** The peer acked `probeId` (echoing `probeValueBytes`, when given, as the probe's value length). */
  onAck(probeId: number, nowMs: number, probeValueBytes?: number): void {
    if (probeId === this.flightLivenessId) {
      // The peer is alive; after the probe's own ack or its judgement this says nothing more.
      if (this.inFlight) this.flightAlive = true;
      return;
    }
    const inFlight = this.inFlight && probeId === this.flightId;
    const size = inFlight ? this.flightSize : this.ringSize(probeId);
    if (size < 0) {
      this.counters.acksUnknown++;
      return;
    }
    if (size === LIVENESS) {
      this.counters.acksLate++;
      return;
    }
    if (probeValueBytes !== undefined && datagramBytesForRecord(probeValueBytes) !== size) {
      this.counters.acksMismatched++;
      return;
    }
    if (inFlight) {
      this.inFlight = false;
      this.counters.probesAcked++;
      this.losses = 0;
      // Next step of the search, or the next confirmation.
      this.nextProbeAtMs = this.searching ? nowMs : nowMs + this.o.probeEveryMs;
    } else {
      this.counters.acksLate++;
      // The size we have been losing probes at (or a larger one) does arrive, only slowly.
      if (size >= this.lossSize) this.losses = 0;
    }
    this.good(size, nowMs);
  }

  /** The probe certainly did not leave or arrive (e.g. the socket said EMSGSIZE): a loss now. */
  onProbeLost(probeId: number, nowMs: number): void {
    if (!this.inFlight || probeId !== this.flightId) return;
    this.inFlight = false;
    this.lost(nowMs);
  }

  private send(size: number, nowMs: number): PathMtuProbe {
    const probeId = this.nextId;
    const livenessProbeId = (probeId + 1) >>> 0;
    this.nextId = (probeId + 2) >>> 0;
    this.inFlight = true;
    this.flightId = probeId;
    this.flightSize = size;
    this.flightSentMs = nowMs;
    this.flightLivenessId = livenessProbeId;
    this.flightAlive = false;
    this.remember(probeId, size);
    this.remember(livenessProbeId, LIVENESS);
    this.counters.probesSent++;
    return { probeId, sizeBytes: size, livenessProbeId };
  }

  /** The next size to try in a search, or -1 when the search is done. */
  private candidate(): number {
    if (this.badMtu === this.unknownBad) return this.configuredMtu > this.goodMtu ? this.configuredMtu : -1;
    const gap = this.badMtu - this.goodMtu;
    return gap <= this.o.precisionBytes ? -1 : this.goodMtu + Math.floor(gap / 2);
  }

  private settle(nowMs: number): void {
    this.searching = false;
    this.losses = 0;
    this.nextProbeAtMs = nowMs + this.o.probeEveryMs;
    this.nextRaiseAtMs =
      this.cur < this.configuredMtu ? nowMs + this.o.raiseEveryMs : Number.POSITIVE_INFINITY;
  }

  /** `sizeBytes` arrived. */
  private good(sizeBytes: number, nowMs: number): void {
    if (sizeBytes > this.goodMtu) this.goodMtu = sizeBytes;
    // A size we had judged bad arrived: the path grew (or the losses were bad luck).
    if (sizeBytes >= this.badMtu) this.badMtu = this.unknownBad;
    if (sizeBytes > this.cur) this.setCurrent(sizeBytes, nowMs);
  }

  /** The probe in flight was judged lost. */
  private lost(nowMs: number): void {
    const c = this.counters;
    c.probesLost++;
    this.nextProbeAtMs = nowMs;
    if (this.flightSize !== this.lossSize) {
      this.lossSize = this.flightSize;
      this.losses = 0;
    }
    if (++this.losses < this.o.lossesToLower) return;
    this.losses = 0;
    const size = this.flightSize;
    if (size <= this.minMtu) {
      c.floorLost++;
      this.events.floorLost?.(this.minMtu, nowMs);
      this.searching = false;
      this.nextProbeAtMs = nowMs + this.o.probeEveryMs;
      return;
    }
    this.badMtu = Math.min(this.badMtu, size);
    // What we believed good is not (the path shrank): only the floor is left.
    if (this.goodMtu >= size) this.goodMtu = this.minMtu;
    if (this.cur >= size) this.setCurrent(this.goodMtu, nowMs);
    this.searching = true;
  }

  private setCurrent(mtu: number, nowMs: number): void {
    const from = this.cur;
    if (mtu === from) return;
    this.cur = mtu;
    const lowered = mtu < from;
    if (lowered) this.counters.lowered++;
    else this.counters.raised++;
    this.events.changed?.({
      kind: lowered ? 'lowered' : 'raised',
      fromMtu: from,
      toMtu: mtu,
      reason: lowered ? 'probe-loss' : 'probe-ack',
      atMs: nowMs,
    });
  }

  private remember(id: number, size: number): void {
    this.ringIds[this.ringNext] = id;
    this.ringSizes[this.ringNext] = size;
    this.ringNext = (this.ringNext + 1) % RING;
    if (this.ringUsed < RING) this.ringUsed++;
  }

  private ringSize(id: number): number {
    for (let i = 0; i < this.ringUsed; i++) if (this.ringIds[i] === id) return this.ringSizes[i]!;
    return -1;
  }
}

function checkOptions(o: Required<Omit<PathMtuOptions, 'events' | 'firstProbeId'>>): void {
  const int = (n: number) => Number.isInteger(n);
  const pos = (n: number) => Number.isFinite(n) && n > 0;
  let why: string | null = null;
  if (!int(o.minMtu) || o.minMtu < LIVENESS_PROBE_BYTES) why = `minMtu ${o.minMtu} too small`;
  else if (!int(o.configuredMtu) || o.configuredMtu < o.minMtu || o.configuredMtu > 65507)
    why = `configuredMtu ${o.configuredMtu} is not in ${o.minMtu}..65507`;
  else if (!(Number.isFinite(o.firstProbeAfterMs) && o.firstProbeAfterMs >= 0)) why = 'firstProbeAfterMs';
  else if (!pos(o.probeEveryMs)) why = 'probeEveryMs';
  else if (!pos(o.probeTimeoutMs)) why = 'probeTimeoutMs';
  else if (!int(o.lossesToLower) || o.lossesToLower < 1) why = 'lossesToLower';
  else if (!pos(o.raiseEveryMs)) why = 'raiseEveryMs';
  else if (!int(o.precisionBytes) || o.precisionBytes < 1) why = 'precisionBytes';
  if (why !== null) throw new AoegwError('ERR_GATEWAY_CONFIG', `path MTU: ${why}`);
}
