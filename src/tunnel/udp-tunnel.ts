/**
 * UdpTunnel: the I/O driver of one TunnelEndpoint over one batched DatagramLink (docs/protocol.md,
 * section 12): a UdpLink it opens itself, or a link (or link factory) it is given, e.g. the
 * in-memory FakeDatagramNetwork. It owns the link, the endpoint, the timer that runs the protocol
 * timers and a load signal that forces cookie mode when handshake messages arrive faster than the
 * node wants to do Diffie-Hellman for.
 *
 * Per receive batch: every datagram goes to ep.receive() (with its source address slot), then the
 * onBatchEnd hook, then one ep.flush(), so the records and replies a batch produces (including what
 * the application queued from the hook) leave in one sendmmsg. Records queued with
 * send() outside a receive batch are flushed at the end of the current microtask checkpoint. Nothing
 * thrown below the batch handler escapes it (the endpoint never throws; the sink can, e.g. on a closed
 * link): it is counted and reported to onError.
 */
import { AoegwError } from '../errors.js';
import type { DatagramLink, DatagramLinkFactory } from '../io/datagram-link.js';
import type { LinkStats } from '../io/frame-link.js';
import { ADDR_SLOT, readUdpAddress, type UdpEndpoint, writeUdpAddress } from '../io/udp-address.js';
import { UdpLink } from '../io/udp-link.js';
import { DEFAULT_LOAD_THRESHOLD, DEFAULT_MTU } from './constants.js';
import type { CryptoBackend, X25519KeyPair } from './crypto.js';
import {
  type DatagramSink,
  type SendResult,
  TunnelEndpoint,
  type TunnelEvents,
  type TunnelStats,
  type TunnelTimers,
} from './endpoint.js';
import { INIT_LEN, RESP_LEN } from './messages.js';
import type { Peer, PeerOptions } from './peer.js';
import { type RateLimitOptions, sourceKey } from './ratelimit.js';
import { RECORD_AOE } from './records.js';

/**
 * When the driver forces the endpoint's "under load" (cookie) mode, on top of the endpoint's own
 * per-second counter of handshake messages with a valid mac1 (which has no hysteresis).
 */
export interface LoadSignalOptions {
  /** Handshake-type datagrams per second (mac1 not yet checked) that turn cookie mode on. Default 128. */
  readonly enterPerSecond?: number;
  /** Once on, it stays on while the rate is at least this. Default enterPerSecond / 4. */
  readonly exitPerSecond?: number;
  /** ... and for holdMs after the rate last was. Default 3000. */
  readonly holdMs?: number;
  /** Rate measurement window. Default 250 ms. */
  readonly windowMs?: number;
}

/** Smallest full receive batch taken as a sign of a socket backlog by the load signal. */
const MIN_BACKLOG_BATCH = 16;

export interface UdpTunnelOptions {
  readonly crypto: CryptoBackend;
  readonly staticKeyPair: X25519KeyPair;
  /** Socket family (one socket per family, IPV6_V6ONLY). Default 4. */
  readonly family?: 4 | 6;
  /** Local address to bind; default the wildcard of the family. */
  readonly address?: string;
  /** Local port; 0 picks one. */
  readonly port: number;
  /** Network namespace (name under /var/run/netns or a path) to open the socket in. */
  readonly netns?: string;
  /** Largest datagram the endpoint sends. Default 1452. */
  readonly mtu?: number;
  /** recvmmsg/sendmmsg vector length. Default 64. */
  readonly batch?: number;
  readonly maxBatchesPerWakeup?: number;
  /** Keep polling the socket this many µs after the last datagram before sleeping (0 = off). */
  readonly busyPollUs?: number;
  readonly rcvbuf?: number;
  readonly sndbuf?: number;
  /** UDP GSO on send / GRO on receive (UdpLinkOptions.gso, .gro). Default on. */
  readonly gso?: boolean;
  readonly gro?: boolean;
  /** Protocol timer period (ms). Default 250 (the endpoint wants 100 ms..1 s). */
  readonly tickMs?: number;
  readonly events?: TunnelEvents;
  readonly padMultiple?: number;
  readonly rateLimit?: RateLimitOptions | false;
  /** The endpoint's own threshold (mac1-valid handshake messages per second). Default 128. */
  readonly loadThreshold?: number;
  /** The driver's load signal, or false to leave cookie mode to the endpoint alone. */
  readonly load?: LoadSignalOptions | false;
  readonly timers?: Partial<TunnelTimers>;
  /** Monotonic clock in ms. Default performance.now(). */
  readonly clock?: () => number;
  /** Link errors and exceptions caught in the receive path or timer. */
  readonly onError?: (err: Error) => void;
  /**
   * Use this link instead of opening a UdpLink (family, address, port, netns and the socket options
   * are then ignored). The tunnel owns it from here on and closes it; rebind() needs linkFactory.
   */
  readonly link?: DatagramLink;
  /**
   * Open the link (and the one rebind() moves to) with this instead of UdpLink.open. Called with the
   * family, address and port of these options (or of the rebind) and the receive slot size.
   */
  readonly linkFactory?: DatagramLinkFactory;
  /**
   * Called once per receive batch, after all records of the batch were delivered (events.record)
   * and before the endpoint's flush: an application can treat one UDP batch as one unit of work
   * and queue replies (send()) that leave in the same flush. Exceptions are caught and reported.
   */
  readonly onBatchEnd?: () => void;
}

/** A peer as configured through the driver: the endpoint given as address and port. */
export interface UdpPeerOptions extends Omit<PeerOptions, 'endpoint'> {
  readonly endpoint?: UdpEndpoint;
}

export interface UdpTunnelDriverStats {
  rxBatches: number;
  rxDatagrams: number;
  /** Datagrams longer than a receive slot (cut by the kernel): dropped. */
  rxTruncated: number;
  /** Exceptions caught in the receive path, the timer or the deferred flush. */
  errors: number;
  /** Times the load signal turned cookie mode on. */
  loadEntered: number;
}

export interface UdpTunnelStats {
  readonly driver: Readonly<UdpTunnelDriverStats>;
  readonly tunnel: TunnelStats;
  readonly link: LinkStats;
}

export class UdpTunnel {
  readonly endpoint: TunnelEndpoint;
  readonly family: 4 | 6;
  private link: DatagramLink;
  private readonly opts: UdpTunnelOptions;
  private readonly clock: () => number;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly driverStats: UdpTunnelDriverStats = {
    rxBatches: 0,
    rxDatagrams: 0,
    rxTruncated: 0,
    errors: 0,
    loadEntered: 0,
  };
  private closed = false;
  private flushScheduled = false;
  private lastError: Error | undefined;
  private readonly scratchAddr = new Uint8Array(ADDR_SLOT);

  // Load signal state.
  private readonly loadOn: boolean;
  private readonly enterRate: number;
  private readonly exitRate: number;
  private readonly holdMs: number;
  private readonly windowMs: number;
  private windowStart: number;
  private windowCount = 0;
  private forced = false;
  private lastHotAt = Number.NEGATIVE_INFINITY;

  private readonly flushBound = () => {
    this.flushScheduled = false;
    if (this.closed) return;
    try {
      this.endpoint.flush(this.clock());
    } catch (err) {
      this.fail(err);
    }
  };

  private constructor(opts: UdpTunnelOptions, link: DatagramLink) {
    this.opts = opts;
    this.family = link.family;
    this.link = link;
    this.clock = opts.clock ?? (() => performance.now());
    const now0 = this.clock();
    const sink: DatagramSink = {
      buffer: () => this.link.txSlot(),
      send: (n, a, o) => this.link.txCommitTo(n, a, o),
    };
    this.endpoint = new TunnelEndpoint({
      crypto: opts.crypto,
      staticKeyPair: opts.staticKeyPair,
      sink,
      mtu: opts.mtu ?? DEFAULT_MTU,
      addressLength: ADDR_SLOT,
      rateLimitKey: (a, o, l) => sourceKey(a, o, l, true),
      clockOffsetMs: Date.now() - now0,
      ...(opts.events !== undefined ? { events: opts.events } : {}),
      ...(opts.padMultiple !== undefined ? { padMultiple: opts.padMultiple } : {}),
      ...(opts.rateLimit !== undefined ? { rateLimit: opts.rateLimit } : {}),
      ...(opts.loadThreshold !== undefined ? { loadThreshold: opts.loadThreshold } : {}),
      ...(opts.timers !== undefined ? { timers: opts.timers } : {}),
    });
    const load = opts.load === false ? null : (opts.load ?? {});
    this.loadOn = load !== null;
    this.enterRate = load?.enterPerSecond ?? DEFAULT_LOAD_THRESHOLD;
    this.exitRate = load?.exitPerSecond ?? this.enterRate / 4;
    this.holdMs = load?.holdMs ?? 3000;
    this.windowMs = load?.windowMs ?? 250;
    if (!(this.enterRate > 0 && this.exitRate >= 0 && this.holdMs >= 0 && this.windowMs > 0)) {
      throw new AoegwError('ERR_TUNNEL_CONFIG', 'load signal: enterPerSecond > 0, windowMs > 0 required');
    }
    this.windowStart = now0;
    const tickMs = opts.tickMs ?? 250;
    if (!(tickMs >= 10 && tickMs <= 1000))
      throw new AoegwError('ERR_TUNNEL_CONFIG', 'tickMs must be 10..1000');
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
    this.attach(link);
  }

  /**
   * Bind the socket (or take the given link) and start receiving. Throws AoegwError ERR_BIND
   * (address in use, not local, wrong family), ERR_NETNS, ERR_TUNNEL_CONFIG (bad options).
   */
  static open(opts: UdpTunnelOptions): UdpTunnel {
    const mtu = opts.mtu ?? DEFAULT_MTU;
    if (!Number.isInteger(mtu) || mtu > 65507) {
      throw new AoegwError('ERR_TUNNEL_CONFIG', `mtu ${mtu} is not an integer up to 65507`);
    }
    if (opts.link !== undefined && opts.linkFactory !== undefined) {
      throw new AoegwError('ERR_TUNNEL_CONFIG', 'give either link or linkFactory, not both');
    }
    const link = opts.link ?? UdpTunnel.openLink(opts, opts.address, opts.port);
    try {
      return new UdpTunnel(opts, link);
    } catch (err) {
      link.close();
      throw err;
    }
  }

  private static openLink(opts: UdpTunnelOptions, address: string | undefined, port: number): DatagramLink {
    const mtu = opts.mtu ?? DEFAULT_MTU;
    // Receive slots take any datagram a peer with a larger MTU may send, not only our own MTU.
    const maxDatagram = Math.max(9216, mtu);
    if (opts.linkFactory !== undefined) {
      return opts.linkFactory({ family: opts.family ?? 4, address, port, maxDatagram });
    }
    return UdpLink.open({
      family: opts.family ?? 4,
      port,
      maxDatagram,
      ...(address !== undefined ? { address } : {}),
      ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
      ...(opts.batch !== undefined ? { batch: opts.batch } : {}),
      ...(opts.maxBatchesPerWakeup !== undefined ? { maxBatchesPerWakeup: opts.maxBatchesPerWakeup } : {}),
      ...(opts.busyPollUs !== undefined ? { busyPollUs: opts.busyPollUs } : {}),
      ...(opts.rcvbuf !== undefined ? { rcvbuf: opts.rcvbuf } : {}),
      ...(opts.sndbuf !== undefined ? { sndbuf: opts.sndbuf } : {}),
      ...(opts.gso !== undefined ? { gso: opts.gso } : {}),
      ...(opts.gro !== undefined ? { gro: opts.gro } : {}),
    });
  }

  private attach(link: DatagramLink): void {
    link.onError((err) => this.report(err));
    link.onBatch((datagrams, lengths, addrs, count) => this.onBatch(datagrams, lengths, addrs, count));
  }

  get localPort(): number {
    return this.link.localPort;
  }

  get localAddress(): string {
    return this.link.localAddress;
  }

  /** The monotonic time the endpoint runs on (ms). */
  now(): number {
    return this.clock();
  }

  /** Is the driver currently forcing cookie mode? */
  get underLoad(): boolean {
    return this.forced;
  }

  get lastReportedError(): Error | undefined {
    return this.lastError;
  }

  // ---------------------------------------------------------------- peers

  addPeer(opts: UdpPeerOptions): Peer {
    const { endpoint, ...rest } = opts;
    const peer = this.endpoint.addPeer(rest);
    if (endpoint !== undefined) {
      try {
        this.setPeerEndpoint(peer, endpoint);
      } catch (err) {
        this.endpoint.removePeer(peer);
        throw err;
      }
    }
    return peer;
  }

  removePeer(peer: Peer): void {
    this.endpoint.removePeer(peer);
  }

  setPeerEndpoint(peer: Peer, ep: UdpEndpoint): void {
    writeUdpAddress(this.scratchAddr, 0, ep);
    if (this.scratchAddr[0] !== this.family) {
      throw new AoegwError(
        'ERR_TUNNEL_PEER',
        `peer endpoint ${ep.address} is not IPv${this.family} (this tunnel's socket family)`,
      );
    }
    this.endpoint.setPeerEndpoint(peer, this.scratchAddr, 0);
  }

  /** Where the peer is sent to now (the source of its last authenticated packet), or null. */
  peerEndpoint(peer: Peer): UdpEndpoint | null {
    return peer.hasEndpoint ? readUdpAddress(peer.endpoint, 0) : null;
  }

  // ---------------------------------------------------------------- sending

  /** Start a handshake with `peer` now (it also starts by itself when there is data to send). */
  connect(peer: Peer): SendResult {
    return this.endpoint.initiate(peer, this.clock());
  }

  /**
   * Queue one record for `peer`; it leaves at the end of this microtask checkpoint together with
   * everything else queued (or at once when a datagram is full). See TunnelEndpoint.queueRecord.
   */
  send(peer: Peer, type: number, data: Uint8Array, off = 0, len = data.length - off): SendResult {
    this.assertOpen();
    const r = this.endpoint.queueRecord(peer, type, data, off, len, this.clock());
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushBound);
    }
    return r;
  }

  /** One record alone in a datagram of exactly its size (path MTU probes). See TunnelEndpoint.sendAlone. */
  sendAlone(peer: Peer, type: number, data: Uint8Array, off = 0, len = data.length - off): SendResult {
    this.assertOpen();
    const r = this.endpoint.sendAlone(peer, type, data, off, len, this.clock());
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushBound);
    }
    return r;
  }

  /** Datagrams to `peer` at most `mtu` bytes from now on. See TunnelEndpoint.setPeerMtu. */
  setPeerMtu(peer: Peer, mtu: number): void {
    this.assertOpen();
    this.endpoint.setPeerMtu(peer, mtu, this.clock());
  }

  /**
   * One AoE frame (from the AoE header on).
   * @deprecated The record-type registry belongs to the gateway layer: use send() with its type.
   */
  sendAoe(peer: Peer, frame: Uint8Array, off = 0, len = frame.length - off): SendResult {
    return this.send(peer, RECORD_AOE, frame, off, len);
  }

  /** Seal everything queued and hand it to the kernel now (instead of at the end of the microtask). */
  flush(): void {
    this.assertOpen();
    this.endpoint.flush(this.clock());
    this.link.flush();
  }

  // ---------------------------------------------------------------- rebinding

  /**
   * Move to another local address and/or port (default: the configured address, a new port), e.g.
   * when the host's address changed. The new socket is opened before the old one is closed, so a
   * failure (ERR_BIND) leaves the tunnel as it was. Sessions are kept: peers follow the new source
   * address on its first authenticated packet. Not from inside an event handler (it closes the
   * socket whose batch is being handled). With an injected link, only with a linkFactory.
   */
  rebind(to: { address?: string; port?: number } = {}): void {
    this.assertOpen();
    if (this.opts.link !== undefined) {
      throw new AoegwError('ERR_TUNNEL_CONFIG', 'rebind() needs linkFactory, not a fixed link');
    }
    const next = UdpTunnel.openLink(this.opts, to.address ?? this.opts.address, to.port ?? 0);
    const old = this.link;
    try {
      old.flush();
    } catch (err) {
      this.report(err as Error);
    }
    this.link = next;
    old.close();
    this.attach(next);
  }

  // ---------------------------------------------------------------- status and shutdown

  stats(): UdpTunnelStats {
    return { driver: { ...this.driverStats }, tunnel: this.endpoint.stats, link: this.link.stats() };
  }

  /** Stop the timer, close the socket (sending what is committed) and zero every key. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    try {
      this.endpoint.flush(this.clock());
    } catch {
      // Closing: what cannot be sealed any more is dropped.
    }
    this.link.close();
    this.endpoint.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ---------------------------------------------------------------- internals

  private assertOpen(): void {
    if (this.closed) throw new AoegwError('ERR_CLOSED', 'tunnel is closed');
  }

  private onBatch(datagrams: readonly Buffer[], lengths: Int32Array, addrs: Buffer, count: number): void {
    if (this.closed) return;
    const ep = this.endpoint;
    try {
      const now = this.clock();
      const st = this.driverStats;
      st.rxBatches++;
      st.rxDatagrams += count;
      if (this.loadOn) this.noteLoad(datagrams, lengths, count, now);
      for (let i = 0; i < count; i++) {
        const len = lengths[i]!;
        if (len < 0) {
          st.rxTruncated++;
          continue;
        }
        ep.receive(datagrams[i]!, len, addrs, i * ADDR_SLOT, now);
      }
      const end = this.opts.onBatchEnd;
      if (end !== undefined) {
        try {
          end();
        } catch (err) {
          // The batch's replies still leave.
          this.fail(err);
        }
      }
      ep.flush(now);
    } catch (err) {
      this.fail(err);
    }
  }

  /**
   * Count handshake-shaped datagrams before the batch is processed, so that a burst turns cookie
   * mode on before its own messages reach the Diffie-Hellman: at once when a full batch (of at
   * least 16) is mostly handshakes (a backlog in the socket), or when the window's count reaches
   * the entry rate.
   */
  private noteLoad(datagrams: readonly Buffer[], lengths: Int32Array, count: number, now: number): void {
    let hs = 0;
    for (let i = 0; i < count; i++) {
      const len = lengths[i]!;
      if (len !== INIT_LEN && len !== RESP_LEN) continue;
      // Count only messages with a valid mac1: junk of the right size and type byte must not be
      // able to force every legitimate handshake through a cookie round trip.
      if (this.endpoint.isAuthenticHandshake(datagrams[i]!, len)) hs++;
    }
    this.windowCount += hs;
    // A full batch means more was waiting in the socket; too small a batch says nothing. And
    // MIN_BACKLOG_BATCH authenticated handshakes in one wakeup is a burst no set of real peers
    // makes (each retries at most every 5 s): that alone is load.
    if (
      (count === this.link.batch && count >= MIN_BACKLOG_BATCH && hs * 2 >= count) ||
      hs >= MIN_BACKLOG_BATCH
    ) {
      this.enterLoad(now);
    }
    if (now - this.windowStart >= this.windowMs) this.evaluateLoad(now);
    else if (this.windowCount >= (this.enterRate * this.windowMs) / 1000) this.enterLoad(now);
  }

  private evaluateLoad(now: number): void {
    const elapsed = now - this.windowStart;
    if (elapsed <= 0) return;
    const rate = (this.windowCount * 1000) / elapsed;
    if (rate >= this.enterRate) this.enterLoad(now);
    else if (this.forced && rate >= this.exitRate) this.lastHotAt = now;
    if (this.forced && now - this.lastHotAt >= this.holdMs) {
      this.forced = false;
      // Back to the endpoint's own counter rather than "never under load".
      this.endpoint.setUnderLoad(null);
    }
    this.windowStart = now;
    this.windowCount = 0;
  }

  private enterLoad(now: number): void {
    this.lastHotAt = now;
    if (this.forced) return;
    this.forced = true;
    this.driverStats.loadEntered++;
    this.endpoint.setUnderLoad(true);
  }

  private tick(): void {
    if (this.closed) return;
    try {
      const now = this.clock();
      if (this.loadOn && now - this.windowStart >= this.windowMs) this.evaluateLoad(now);
      this.endpoint.tick(now);
      this.endpoint.flush(now);
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    this.driverStats.errors++;
    this.report(err instanceof Error ? err : new Error(String(err)));
  }

  private report(err: Error): void {
    this.lastError = err;
    try {
      this.opts.onError?.(err);
    } catch {
      // An error handler that throws must not break the receive loop.
    }
  }
}
