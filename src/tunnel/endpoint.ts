/**
 * TunnelEndpoint: the sans-I/O tunnel protocol core (docs/protocol.md). It holds our static key
 * pair and the peers, takes datagrams with their source address and the time, and produces
 * datagrams (through a DatagramSink) and events (through TunnelEvents). No sockets, no timers: the
 * driver calls receive() per datagram, flush() after each receive batch and tick() periodically.
 *
 * The receive path never throws and changes protocol state only on authenticated input; every
 * datagram gets one outcome (Rx) that is also counted. The transport path seals records straight
 * into the sink's buffer and opens into one preallocated buffer: no per-packet objects.
 */

import { AoegwError } from '../errors.js';
import {
  DEFAULT_ADDRESS_LENGTH,
  DEFAULT_MTU,
  DEFAULT_PAD_MULTIPLE,
  KEEPALIVE_TIMEOUT,
  REJECT_AFTER_TIME,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME,
  REKEY_ATTEMPT_TIME,
  REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX,
} from './constants.js';
import { CookieChecker } from './cookie.js';
import {
  type CryptoBackend,
  DH_LEN,
  isSmallOrderX25519Public,
  isWeakX25519Secret,
  type X25519KeyPair,
} from './crypto.js';
import { readInitiation, readResponse, writeInitiation, writeResponse } from './handshake.js';
import {
  COOKIE_RECEIVER,
  classify,
  compareBytes,
  DATA_COUNTER,
  DATA_OVERHEAD,
  DATA_PAYLOAD,
  DATA_RECEIVER,
  ENROLL_LEN,
  ENROLL_MAC1,
  ENROLL_MAC2,
  INIT_LEN,
  INIT_MAC1,
  INIT_MAC2,
  INIT_SENDER,
  MSG_COOKIE_REPLY,
  MSG_ENROLL,
  MSG_INITIATION,
  MSG_RESPONSE,
  MSG_TRANSPORT,
  RESP_LEN,
  RESP_MAC1,
  RESP_MAC2,
  RESP_RECEIVER,
  RESP_SENDER,
  readU32,
  readU64,
  TIMESTAMP_LEN,
  writeHeader,
  writeTai64n,
  writeU32,
  writeU64,
} from './messages.js';
import { Peer, type PeerOptions, PendingHandshake } from './peer.js';
import { LoadMonitor, type RateLimitOptions, sourceKey, TokenBucketLimiter } from './ratelimit.js';
import { MAX_RECORD_VALUE, RECORD_HEADER_LEN, RecordReader } from './records.js';
import { ENTRY_HANDSHAKE, ENTRY_SESSION, Session } from './session.js';

/** Where the endpoint writes outgoing datagrams; maps onto UdpLink.txSlot()/txCommitTo(). */
export interface DatagramSink {
  /**
   * A buffer of at least `mtu` bytes for the next datagram, written from offset 0. It must not
   * share memory with a datagram being passed to receive() (replies are written while it is read).
   */
  buffer(): Uint8Array;
  /** Send the first `length` bytes of the last buffer() to the address at addr[addrOff, +addressLength). */
  send(length: number, addr: Uint8Array, addrOff: number): void;
}

/** Callbacks; all optional. They run synchronously inside receive()/tick()/flush(). */
export interface TunnelEvents {
  /**
   * One record from an authenticated transport message. buf[off, off + len) is only valid during
   * the call. Unknown record types are delivered too (the application ignores what it does not know).
   */
  record?(peer: Peer, type: number, buf: Uint8Array, off: number, len: number): void;
  /**
   * A new session became current: as initiator when the response arrived, as responder when the
   * initiator's first transport message arrived (only then is its PSK proven).
   */
  handshakeComplete?(peer: Peer, initiator: boolean): void;
  /** A handshake attempt gave up after REKEY_ATTEMPT_TIME without a response. */
  handshakeFailed?(peer: Peer): void;
  /** The peer's endpoint address changed (roaming) after an authenticated packet. */
  endpointChanged?(peer: Peer): void;
  /**
   * An enrollment initiation (MSG_ENROLL) from a static key that is not a peer names an invite:
   * return the invite's PSK (and a name for logs) to answer it, or null to drop it (unknown,
   * expired or used invite). Compare the id in constant time. The initiator becomes a provisional
   * peer: it receives nothing and is dropped after ENROLL_PROOF_TIMEOUT unless its first transport
   * message proves the PSK, which raises `enrolled`.
   */
  admitEnrollment?(inviteId: Uint8Array, publicKey: Uint8Array): EnrollmentAdmission | null;
  /**
   * A provisional peer proved its invite's PSK: it is a peer from now on (its PSK is zeroed, so
   * later handshakes use the zero PSK like any peer without one). Return false to refuse it after
   * all (e.g. the invite could not be burned): the peer is removed and the message dropped.
   * handshakeComplete follows for an accepted peer.
   */
  enrolled?(peer: Peer, inviteId: Uint8Array): boolean;
}

export interface EnrollmentAdmission {
  /** The invite's PSK (32 bytes; copied). */
  readonly psk: Uint8Array;
  /** For logs and status. */
  readonly name?: string;
}

/** A provisional peer that has not proven its invite's PSK this long after admission is dropped (ms). */
export const ENROLL_PROOF_TIMEOUT = 15_000;
/** Keys proving one invite at once (the token holder's retries from new hosts, or replays). */
export const MAX_PROVISIONAL_PER_INVITE = 4;

export interface TunnelEndpointOptions {
  readonly crypto: CryptoBackend;
  /** Our static key pair (copied). */
  readonly staticKeyPair: X25519KeyPair;
  readonly sink: DatagramSink;
  readonly events?: TunnelEvents;
  /** Largest datagram produced (UDP payload bytes). Default 1452. */
  readonly mtu?: number;
  /** Pad transport plaintext to a multiple of this (within the MTU); 0 or 1: no padding. Default 16. */
  readonly padMultiple?: number;
  /** Bytes in a source address (opaque to the tunnel). Default 24, the io layer's UDP address slot. */
  readonly addressLength?: number;
  /** Per-source handshake rate limit, or false for none. */
  readonly rateLimit?: RateLimitOptions | false;
  /** Rate-limit key of a source address (default: all its bytes). */
  readonly rateLimitKey?: (addr: Uint8Array, off: number, len: number) => string;
  /** Handshake messages per second (with valid mac1) above which cookies are required. */
  readonly loadThreshold?: number;
  /** Added to `now` to get Unix-epoch milliseconds for initiation timestamps. Default 0. */
  readonly clockOffsetMs?: number;
  /**
   * Override protocol timers (ms). The defaults are the constants of docs/protocol.md; overriding
   * them breaks nothing on the wire but is meant for tests and benchmarks (e.g. a 1 s rekey).
   */
  readonly timers?: Partial<TunnelTimers>;
}

/** The protocol timers TunnelEndpointOptions.timers can override (REJECT_AFTER_TIME cannot). */
export interface TunnelTimers {
  /** REKEY_AFTER_TIME: the initiator of a session rekeys when sending with it once this old. */
  readonly rekeyAfterTime: number;
  /** REKEY_TIMEOUT: retry interval, and the least time between automatic initiations. */
  readonly rekeyTimeout: number;
  /** REKEY_ATTEMPT_TIME: give up a handshake this long after its first attempt. */
  readonly rekeyAttemptTime: number;
  /** KEEPALIVE_TIMEOUT: answer data with a keepalive when nothing was sent for this long. */
  readonly keepaliveTimeout: number;
}

/** Outcome of receive(): what happened to one datagram. Counted in stats.rx. */
export const Rx = {
  /** Authenticated transport message with records (delivered). */
  DATA: 0,
  /** Authenticated empty transport message. */
  KEEPALIVE: 1,
  /** Valid initiation: response sent. */
  INITIATION: 2,
  /** Valid response: handshake complete (we initiated). */
  RESPONSE: 3,
  /** Valid cookie reply: cookie stored for the next initiation. */
  COOKIE: 4,
  /** Under load without a valid mac2: answered with a cookie reply, no DH done. */
  COOKIE_SENT: 5,
  /** Wrong size, type, version or reserved bytes. */
  MALFORMED: 6,
  /** Handshake message with a wrong mac1 (before any DH). */
  BAD_MAC1: 7,
  /** Handshake message refused by the per-source rate limit (before any DH). */
  RATE_LIMITED: 8,
  /** Handshake message failed Noise authentication. */
  HANDSHAKE_FAILED: 9,
  /** Initiation from a static key that is not a peer. */
  UNKNOWN_PEER: 10,
  /** Initiation whose timestamp is not newer than the last one accepted from that peer (replay). */
  STALE_TIMESTAMP: 11,
  /** Receiver index that names nothing (or the wrong kind of thing). */
  UNKNOWN_INDEX: 12,
  /** Transport message for a session older than REJECT_AFTER_TIME. */
  EXPIRED: 13,
  /** Transport counter already seen, too old for the window, or past the limit. */
  REPLAY: 14,
  /** Transport message failed AEAD authentication. */
  BAD_AUTH: 15,
  /** Authenticated transport message whose records are malformed (nothing delivered). */
  BAD_RECORDS: 16,
  /** Cookie reply that does not authenticate or answers nothing we sent. */
  BAD_COOKIE: 17,
  /** A bug or a throwing event handler; the datagram is dropped. */
  INTERNAL: 18,
  /**
   * Enrollment initiation naming no live invite, or from a key that is already a peer; or a
   * provisional peer's proof refused by the application (enrolled returned false).
   */
  UNKNOWN_INVITE: 19,
} as const;
export type RxOutcome = (typeof Rx)[keyof typeof Rx];
export const RX_NAMES: readonly string[] = Object.keys(Rx).map((k) => k.toLowerCase());

/** Result of the sending methods. */
export const Send = {
  OK: 0,
  /** No usable session: a handshake was started (or is under way); the data was not sent. */
  NO_SESSION: 1,
  /** A record larger than fits one datagram at this MTU. */
  TOO_LARGE: 2,
  /** The peer has no endpoint address yet. */
  NO_ENDPOINT: 3,
} as const;
export type SendResult = (typeof Send)[keyof typeof Send];

export interface TunnelStats {
  /** Datagrams received, indexed by Rx outcome. */
  readonly rx: Float64Array;
  txData: number;
  txKeepalive: number;
  txInitiation: number;
  txResponse: number;
  txCookieReply: number;
  /** Records refused by queueRecord/dropped at flush for lack of a session or endpoint. */
  txDropped: number;
  handshakesCompleted: number;
  handshakesFailed: number;
  /** Exceptions thrown by event handlers (caught; the last one is in lastHandlerError). */
  handlerErrors: number;
}

const EMPTY = new Uint8Array(0);
/** Minimum MTU: a transport message with one 1-byte record. */
const MIN_MTU = DATA_OVERHEAD + RECORD_HEADER_LEN + 1;

type IndexEntry = Session | PendingHandshake;

export class TunnelEndpoint {
  readonly crypto: CryptoBackend;
  readonly publicKey: Uint8Array;
  readonly mtu: number;
  readonly addressLength: number;
  /** Largest record value queueRecord() accepts at this MTU. */
  readonly maxRecord: number;
  readonly stats: TunnelStats;
  readonly load: LoadMonitor;
  lastHandlerError: unknown = undefined;
  lastInternalError: unknown = undefined;

  private readonly keys: X25519KeyPair;
  private readonly sink: DatagramSink;
  private events: TunnelEvents;
  private readonly padMultiple: number;
  private readonly maxPlaintext: number;
  private readonly clockOffsetMs: number;
  private readonly timers: TunnelTimers;
  private readonly checker: CookieChecker;
  private readonly limiter: TokenBucketLimiter | null;
  private readonly rateKey: (addr: Uint8Array, off: number, len: number) => string;
  private readonly peersById = new Map<string, Peer>();
  private readonly index = new Map<number, IndexEntry>();
  private readonly dirty: Peer[] = [];
  private readonly rxPlain: Uint8Array;
  private readonly reader = new RecordReader();
  private readonly rnd = new Uint8Array(4);
  private readonly stamp = new Uint8Array(TIMESTAMP_LEN);
  private lastTai = 0n;
  private lastSweep = Number.NEGATIVE_INFINITY;

  constructor(opts: TunnelEndpointOptions) {
    this.crypto = opts.crypto;
    const kp = opts.staticKeyPair;
    if (kp.secretKey.length !== DH_LEN || kp.publicKey.length !== DH_LEN) {
      throw new AoegwError('ERR_TUNNEL_CONFIG', 'static key pair must be 32-byte keys');
    }
    // A well-known scalar (all zero after clamping) authenticates nobody: anyone can be us.
    if (isWeakX25519Secret(kp.secretKey)) {
      throw new AoegwError(
        'ERR_TUNNEL_CONFIG',
        'static private key is all zero (or the same X25519 scalar as the all-zero key): refused',
      );
    }
    this.keys = { secretKey: Uint8Array.from(kp.secretKey), publicKey: Uint8Array.from(kp.publicKey) };
    this.publicKey = Uint8Array.from(kp.publicKey);
    this.sink = opts.sink;
    this.events = opts.events ?? {};
    this.mtu = opts.mtu ?? DEFAULT_MTU;
    if (!Number.isInteger(this.mtu) || this.mtu < MIN_MTU || this.mtu > 65507) {
      throw new AoegwError('ERR_TUNNEL_CONFIG', `mtu must be an integer in ${MIN_MTU}..65507`);
    }
    this.padMultiple = opts.padMultiple ?? DEFAULT_PAD_MULTIPLE;
    this.addressLength = opts.addressLength ?? DEFAULT_ADDRESS_LENGTH;
    if (!Number.isInteger(this.addressLength) || this.addressLength < 1) {
      throw new AoegwError('ERR_TUNNEL_CONFIG', 'addressLength must be a positive integer');
    }
    this.maxPlaintext = this.mtu - DATA_OVERHEAD;
    this.maxRecord = Math.min(MAX_RECORD_VALUE, this.maxPlaintext - RECORD_HEADER_LEN);
    this.clockOffsetMs = opts.clockOffsetMs ?? 0;
    this.timers = {
      rekeyAfterTime: opts.timers?.rekeyAfterTime ?? REKEY_AFTER_TIME,
      rekeyTimeout: opts.timers?.rekeyTimeout ?? REKEY_TIMEOUT,
      rekeyAttemptTime: opts.timers?.rekeyAttemptTime ?? REKEY_ATTEMPT_TIME,
      keepaliveTimeout: opts.timers?.keepaliveTimeout ?? KEEPALIVE_TIMEOUT,
    };
    for (const [k, v] of Object.entries(this.timers)) {
      if (!(Number.isFinite(v) && v > 0))
        throw new AoegwError('ERR_TUNNEL_CONFIG', `timers.${k} must be > 0`);
    }
    this.checker = new CookieChecker(this.crypto, this.publicKey, this.addressLength);
    this.limiter = opts.rateLimit === false ? null : new TokenBucketLimiter(opts.rateLimit ?? {});
    // One bucket per source host: a port is free to change, so it must not buy a fresh bucket.
    this.rateKey = opts.rateLimitKey ?? ((a, o, l) => sourceKey(a, o, l, true));
    this.load = new LoadMonitor(opts.loadThreshold);
    // A datagram of any size can arrive; its plaintext is at most 64 KiB.
    this.rxPlain = new Uint8Array(65536);
    this.stats = {
      rx: new Float64Array(Object.keys(Rx).length),
      txData: 0,
      txKeepalive: 0,
      txInitiation: 0,
      txResponse: 0,
      txCookieReply: 0,
      txDropped: 0,
      handshakesCompleted: 0,
      handshakesFailed: 0,
      handlerErrors: 0,
    };
  }

  setEvents(events: TunnelEvents): void {
    this.events = events;
  }

  /** Force (true/false) or release (null) the "under load" state, e.g. from the driver's queue depth. */
  setUnderLoad(force: boolean | null): void {
    this.load.force = force;
  }

  // ---------------------------------------------------------------- peers

  addPeer(opts: PeerOptions): Peer {
    const peer = new Peer(this.crypto, opts, this.addressLength, this.maxPlaintext);
    if (this.crypto.equal(peer.publicKey, this.publicKey))
      throw new AoegwError('ERR_TUNNEL_PEER', 'a peer cannot have our own key');
    // Every DH with a small-order point is all zero: such a peer could never complete a handshake.
    if (isSmallOrderX25519Public(peer.publicKey))
      throw new AoegwError('ERR_TUNNEL_PEER', 'peer public key is a small-order X25519 point: refused');
    if (this.peersById.has(peer.id))
      throw new AoegwError('ERR_TUNNEL_PEER', `peer ${peer.id} already exists`);
    this.peersById.set(peer.id, peer);
    return peer;
  }

  /** Forget a peer, zeroing its sessions, handshake state and PSK. */
  removePeer(peer: Peer): void {
    if (this.peersById.get(peer.id) !== peer) return;
    this.peersById.delete(peer.id);
    this.dropSession(peer.previous);
    this.dropSession(peer.current);
    this.dropSession(peer.next);
    peer.previous = peer.current = peer.next = null;
    this.dropPending(peer);
    peer.writer.reset();
    this.crypto.memzero(peer.psk);
    peer.cookie.destroy();
  }

  peer(publicKey: Uint8Array): Peer | undefined {
    return this.peersById.get(Buffer.from(publicKey).toString('hex'));
  }

  peers(): IterableIterator<Peer> {
    return this.peersById.values();
  }

  /** Set (or replace) where the peer is sent to; roaming overrides it on authenticated packets. */
  setPeerEndpoint(peer: Peer, addr: Uint8Array, addrOff = 0): void {
    peer.endpoint.set(addr.subarray(addrOff, addrOff + this.addressLength));
    peer.hasEndpoint = true;
  }

  /** Zero every secret and forget all peers. The endpoint is unusable afterwards. */
  destroy(): void {
    for (const peer of [...this.peersById.values()]) this.removePeer(peer);
    this.crypto.memzero(this.keys.secretKey);
    this.checker.destroy();
  }

  // ---------------------------------------------------------------- handshakes

  /**
   * Start a handshake with `peer` now: sends an initiation (to its endpoint address) and retries
   * from tick() until answered or REKEY_ATTEMPT_TIME passes. Replaces a handshake in progress.
   */
  initiate(peer: Peer, now: number): SendResult {
    if (!peer.hasEndpoint) return Send.NO_ENDPOINT;
    peer.attemptStartedAt = now;
    return this.sendInitiation(peer, now);
  }

  private sendInitiation(peer: Peer, now: number, cookieResend = false): SendResult {
    if (!peer.hasEndpoint) return Send.NO_ENDPOINT;
    this.dropPending(peer);
    const localIndex = this.newIndex();
    this.nextTimestamp(now);
    const out = this.sink.buffer();
    const state = writeInitiation(
      this.crypto,
      this.keys,
      peer.publicKey,
      peer.psk,
      localIndex,
      this.stamp,
      out,
      peer.inviteId,
    );
    const enroll = peer.inviteId !== null;
    peer.cookie.stamp(out, enroll ? ENROLL_MAC1 : INIT_MAC1, now);
    const pending = new PendingHandshake(peer, localIndex, state, now, cookieResend);
    this.index.set(localIndex, pending);
    peer.pending = pending;
    peer.lastInitiationAt = now;
    peer.retryAt = now + this.timers.rekeyTimeout + this.jitter();
    this.stats.txInitiation++;
    this.sink.send(enroll ? ENROLL_LEN : INIT_LEN, peer.endpoint, 0);
    return Send.OK;
  }

  /** Start a handshake unless one is under way or the last initiation was under REKEY_TIMEOUT ago. */
  private wantHandshake(peer: Peer, now: number): void {
    if (peer.pending !== null || !peer.hasEndpoint) return;
    if (now - peer.lastInitiationAt < this.timers.rekeyTimeout) return;
    peer.attemptStartedAt = now;
    this.sendInitiation(peer, now);
  }

  /** A TAI64N strictly greater than any this endpoint wrote before, from the injected clock. */
  private nextTimestamp(now: number): void {
    const ms = now + this.clockOffsetMs;
    let ns = Number.isFinite(ms) && ms > 0 ? BigInt(Math.floor(ms * 1000)) * 1000n : 0n;
    if (ns <= this.lastTai) ns = this.lastTai + 1n;
    this.lastTai = ns;
    writeTai64n(this.stamp, 0, ns);
  }

  private jitter(): number {
    this.crypto.randomBytes(this.rnd);
    return readU32(this.rnd, 0) % (REKEY_TIMEOUT_JITTER_MAX + 1);
  }

  /** A random 32-bit index not in use. */
  private newIndex(): number {
    for (;;) {
      this.crypto.randomBytes(this.rnd);
      const i = readU32(this.rnd, 0);
      if (!this.index.has(i)) return i;
    }
  }

  // ---------------------------------------------------------------- receive

  /**
   * Process one datagram: buf[0, len) from the source address addr[addrOff, +addressLength) at time
   * `now` (ms). Never throws; returns the outcome (also counted in stats.rx). Not re-entrant: event
   * handlers must not call receive().
   */
  receive(buf: Uint8Array, len: number, addr: Uint8Array, addrOff: number, now: number): RxOutcome {
    let r: RxOutcome;
    try {
      r = this.dispatch(buf, len, addr, addrOff, now);
    } catch (err) {
      this.lastInternalError = err;
      r = Rx.INTERNAL;
    }
    this.stats.rx[r]!++;
    return r;
  }

  private dispatch(buf: Uint8Array, len: number, addr: Uint8Array, addrOff: number, now: number): RxOutcome {
    if (addrOff < 0 || addrOff + this.addressLength > addr.length) return Rx.MALFORMED;
    switch (classify(buf, len)) {
      case MSG_TRANSPORT:
        return this.onTransport(buf, len, addr, addrOff, now);
      case MSG_INITIATION:
      case MSG_ENROLL:
        return this.onInitiation(buf.subarray(0, len), addr, addrOff, now);
      case MSG_RESPONSE:
        return this.onResponse(buf.subarray(0, len), addr, addrOff, now);
      case MSG_COOKIE_REPLY:
        return this.onCookieReply(buf.subarray(0, len), now);
      default:
        return Rx.MALFORMED;
    }
  }

  /**
   * Is buf[0, len) a handshake initiation or response carrying a valid mac1 for us? No state
   * changes. Lets a driver measure handshake load without being fooled by junk of the right size.
   */
  isAuthenticHandshake(buf: Uint8Array, len: number): boolean {
    if (len === INIT_LEN && buf[0] === MSG_INITIATION) return this.checker.checkMac1(buf, INIT_MAC1);
    if (len === ENROLL_LEN && buf[0] === MSG_ENROLL) return this.checker.checkMac1(buf, ENROLL_MAC1);
    if (len === RESP_LEN && buf[0] === MSG_RESPONSE) return this.checker.checkMac1(buf, RESP_MAC1);
    return false;
  }

  /**
   * The checks every handshake message passes before any DH, in this order: mac1; under load, mac2
   * (else a cookie reply and stop); the per-source rate limit. Returns -1 to proceed.
   */
  private gate(
    msg: Uint8Array,
    mac1Off: number,
    mac2Off: number,
    senderIndex: number,
    addr: Uint8Array,
    addrOff: number,
    now: number,
  ): RxOutcome | -1 {
    if (!this.checker.checkMac1(msg, mac1Off)) return Rx.BAD_MAC1;
    if (this.load.record(now) && !this.checker.checkMac2(msg, mac2Off, addr, addrOff, now)) {
      const out = this.sink.buffer();
      const n = this.checker.writeReply(out, senderIndex, msg, mac1Off, addr, addrOff, now);
      this.stats.txCookieReply++;
      this.sink.send(n, addr, addrOff);
      return Rx.COOKIE_SENT;
    }
    if (this.limiter !== null && !this.limiter.allow(this.rateKey(addr, addrOff, this.addressLength), now)) {
      return Rx.RATE_LIMITED;
    }
    return -1;
  }

  private onInitiation(msg: Uint8Array, addr: Uint8Array, addrOff: number, now: number): RxOutcome {
    const enroll = msg[0] === MSG_ENROLL;
    const senderIndex = readU32(msg, INIT_SENDER);
    const gate = enroll
      ? this.gate(msg, ENROLL_MAC1, ENROLL_MAC2, senderIndex, addr, addrOff, now)
      : this.gate(msg, INIT_MAC1, INIT_MAC2, senderIndex, addr, addrOff, now);
    if (gate !== -1) return gate;
    const read = readInitiation(this.crypto, this.keys, msg);
    if (read === null) return Rx.HANDSHAKE_FAILED;
    const { state, remoteStatic, timestamp, inviteId } = read;
    let sent = false;
    try {
      let peer = this.peer(remoteStatic);
      if (inviteId === null) {
        // A provisional peer may only finish its enrollment: its PSK is the invite's.
        if (peer === undefined || peer.provisional !== null) return Rx.UNKNOWN_PEER;
      } else {
        // An invite is for newcomers: a peer proper never needs one (a replayed enrollment of a
        // peer that has since enrolled lands here too).
        if (peer !== undefined && peer.provisional === null) return Rx.UNKNOWN_INVITE;
        if (peer === undefined || !this.crypto.equal(peer.provisional!.inviteId, inviteId)) {
          const admitted = this.admitProvisional(inviteId, remoteStatic, peer, now);
          if (admitted === null) return Rx.UNKNOWN_INVITE;
          peer = admitted;
        }
      }
      if (compareBytes(timestamp, peer.lastTimestamp) <= 0) return Rx.STALE_TIMESTAMP;
      const localIndex = this.newIndex();
      const out = this.sink.buffer();
      const keys = writeResponse(state, peer.psk, localIndex, senderIndex, out);
      peer.cookie.stamp(out, RESP_MAC1, now);
      // Authenticated and answered: commit.
      peer.lastTimestamp.set(timestamp);
      const session = new Session(peer, localIndex, senderIndex, keys, now, false);
      this.index.set(localIndex, session);
      this.dropSession(peer.next);
      peer.next = session;
      this.stats.txResponse++;
      sent = true;
      // Answer the source, but do not move the peer's endpoint yet: an initiation can be a replay
      // (timestamps are not persisted across restarts), and roaming on it would redirect a live
      // session. The endpoint follows the first authenticated transport packet on `next`. Sending
      // before any event handler runs also keeps a reentrant send from reusing this tx slot.
      this.sink.send(RESP_LEN, addr, addrOff);
      return Rx.INITIATION;
    } finally {
      if (!sent) state.destroy();
    }
  }

  /**
   * Adds the initiator of an enrollment as a provisional peer when the application knows the
   * invite. At most MAX_PROVISIONAL_PER_INVITE keys may be proving one invite at once, and a new
   * one never displaces another (a replayed initiation must not evict a genuine enrollee); the
   * first proof wins. An earlier provisional entry of this key for another invite is replaced.
   * Null: no live invite, or the invite's provisional places are taken.
   */
  private admitProvisional(
    inviteId: Uint8Array,
    publicKey: Uint8Array,
    existing: Peer | undefined,
    now: number,
  ): Peer | null {
    let proving = 0;
    for (const other of this.peersById.values()) {
      if (other.provisional !== null && this.crypto.equal(other.provisional.inviteId, inviteId)) proving++;
    }
    if (proving >= MAX_PROVISIONAL_PER_INVITE) return null;
    const admission = this.events.admitEnrollment?.(inviteId, publicKey) ?? null;
    if (admission === null) return null;
    if (existing !== undefined) this.removePeer(existing);
    let peer: Peer;
    try {
      peer = this.addPeer({
        publicKey,
        psk: admission.psk,
        ...(admission.name !== undefined ? { name: admission.name } : {}),
      });
    } catch {
      // Our own key or a small-order point: never a peer.
      return null;
    }
    peer.provisional = { inviteId: Uint8Array.from(inviteId), admittedAt: now };
    return peer;
  }

  private onResponse(msg: Uint8Array, addr: Uint8Array, addrOff: number, now: number): RxOutcome {
    const senderIndex = readU32(msg, RESP_SENDER);
    const gate = this.gate(msg, RESP_MAC1, RESP_MAC2, senderIndex, addr, addrOff, now);
    if (gate !== -1) return gate;
    const entry = this.index.get(readU32(msg, RESP_RECEIVER));
    if (entry === undefined || entry.kind !== ENTRY_HANDSHAKE) return Rx.UNKNOWN_INDEX;
    const keys = readResponse(entry.state, msg);
    if (keys === null) return Rx.HANDSHAKE_FAILED;
    const peer = entry.peer;
    this.index.delete(entry.localIndex);
    peer.pending = null;
    peer.retryAt = Number.POSITIVE_INFINITY;
    const session = new Session(peer, entry.localIndex, senderIndex, keys, now, true);
    this.index.set(session.localIndex, session);
    // The new session is current. A responder-side "next" the peer initiated concurrently is kept
    // only as "previous" (receivable, never promoted), else the old current becomes previous.
    this.dropSession(peer.previous);
    if (peer.next !== null) {
      this.dropSession(peer.current);
      peer.previous = peer.next;
      peer.next = null;
    } else {
      peer.previous = peer.current;
    }
    peer.current = session;
    peer.lastHandshakeAt = now;
    this.stats.handshakesCompleted++;
    this.roam(peer, addr, addrOff);
    this.emitHandshake(peer, true);
    // Confirm the session to the responder at once unless the handler already sent something.
    if (session.sendCounter === 0n && peer.current === session) this.sendKeepalive(peer, now);
    return Rx.RESPONSE;
  }

  private onCookieReply(msg: Uint8Array, now: number): RxOutcome {
    const entry = this.index.get(readU32(msg, COOKIE_RECEIVER));
    if (entry === undefined) return Rx.UNKNOWN_INDEX;
    const peer = entry.peer;
    if (!peer.cookie.consumeReply(msg, now)) return Rx.BAD_COOKIE;
    // The responder is under load and dropped our initiation unprocessed: resend it at once with
    // mac2 rather than on the retry timer (up to 5 s later). Only once per timer-driven initiation:
    // a cookie reply answering such a resend (a rotated secret, or an on-path forger) waits for
    // the timer, so cookie replies can never drive initiations faster than a round trip twice per
    // REKEY_TIMEOUT.
    if (entry.kind === ENTRY_HANDSHAKE && peer.pending === entry && !entry.cookieResend) {
      this.sendInitiation(peer, now, true);
    }
    return Rx.COOKIE;
  }

  private onTransport(
    buf: Uint8Array,
    len: number,
    addr: Uint8Array,
    addrOff: number,
    now: number,
  ): RxOutcome {
    const entry = this.index.get(readU32(buf, DATA_RECEIVER));
    if (entry === undefined || entry.kind !== ENTRY_SESSION) return Rx.UNKNOWN_INDEX;
    const s = entry;
    if (len - DATA_OVERHEAD > this.rxPlain.length) return Rx.MALFORMED;
    if (s.expired(now)) return Rx.EXPIRED;
    const counter = readU64(buf, DATA_COUNTER);
    if (!s.replay.check(counter)) return Rx.REPLAY;
    const ptLen = this.crypto.open(
      this.rxPlain,
      0,
      s.recvKey,
      counter,
      null,
      buf,
      DATA_PAYLOAD,
      len - DATA_PAYLOAD,
    );
    if (ptLen < 0) return Rx.BAD_AUTH;
    if (!s.replay.update(counter)) return Rx.REPLAY;
    // Authenticated from here on.
    const peer = s.peer;
    peer.rxBytes += len;
    peer.lastReceivedAt = now;
    peer.unansweredSince = Number.NEGATIVE_INFINITY;
    this.roam(peer, addr, addrOff);
    if (s === peer.next && !this.confirm(peer, s, now)) return Rx.UNKNOWN_INVITE;
    if (
      s === peer.current &&
      s.initiator &&
      now - s.createdAt >= REJECT_AFTER_TIME - this.timers.keepaliveTimeout - this.timers.rekeyTimeout
    ) {
      this.wantHandshake(peer, now);
    }
    if (ptLen === 0) return Rx.KEEPALIVE;
    if (peer.keepaliveAt === Number.POSITIVE_INFINITY) peer.keepaliveAt = now + this.timers.keepaliveTimeout;
    const r = this.reader.reset(this.rxPlain, 0, ptLen);
    while (r.next()) {
      /* validate the whole list before delivering any of it */
    }
    if (r.malformed) return Rx.BAD_RECORDS;
    const handler = this.events.record;
    r.reset(this.rxPlain, 0, ptLen);
    while (r.next()) {
      peer.rxRecords++;
      if (handler !== undefined) {
        try {
          handler.call(this.events, peer, r.type, this.rxPlain, r.offset, r.length);
        } catch (err) {
          this.handlerError(err);
        }
      }
    }
    return Rx.DATA;
  }

  /**
   * Responder side: the initiator used the "next" session, so it has the keys; promote it. For a
   * provisional peer this is the proof of its invite's PSK: the application pins it (enrolled) or
   * refuses it, and then the peer is removed and false returned.
   */
  private confirm(peer: Peer, s: Session, now: number): boolean {
    this.dropSession(peer.previous);
    peer.previous = peer.current;
    peer.current = s;
    peer.next = null;
    peer.lastHandshakeAt = now;
    // A handshake of our own still waiting (e.g. sent before the peer was up, and retried every
    // REKEY_TIMEOUT) has nothing left to do: this session is as fresh as its would be.
    this.dropPending(peer);
    if (peer.provisional !== null) {
      const inviteId = peer.provisional.inviteId;
      peer.provisional = null;
      // Later handshakes authenticate by the static keys alone, as for any peer without a PSK.
      this.crypto.memzero(peer.psk);
      let accepted = false;
      try {
        accepted = this.events.enrolled?.(peer, inviteId) === true;
      } catch (err) {
        this.handlerError(err);
      }
      this.crypto.memzero(inviteId);
      if (!accepted) {
        this.removePeer(peer);
        return false;
      }
    }
    this.stats.handshakesCompleted++;
    this.emitHandshake(peer, false);
    return true;
  }

  /** Endpoint roaming: the source of the last authenticated packet becomes the peer's address. */
  private roam(peer: Peer, addr: Uint8Array, addrOff: number): void {
    const ep = peer.endpoint;
    const n = this.addressLength;
    let same = peer.hasEndpoint;
    for (let i = 0; same && i < n; i++) if (ep[i] !== addr[addrOff + i]) same = false;
    if (same) return;
    for (let i = 0; i < n; i++) ep[i] = addr[addrOff + i]!;
    peer.hasEndpoint = true;
    if (this.events.endpointChanged !== undefined) {
      try {
        this.events.endpointChanged(peer);
      } catch (err) {
        this.handlerError(err);
      }
    }
  }

  private emitHandshake(peer: Peer, initiator: boolean): void {
    if (this.events.handshakeComplete === undefined) return;
    try {
      this.events.handshakeComplete(peer, initiator);
    } catch (err) {
      this.handlerError(err);
    }
  }

  private handlerError(err: unknown): void {
    this.stats.handlerErrors++;
    this.lastHandlerError = err;
  }

  // ---------------------------------------------------------------- send

  /**
   * Queue one record (type 1..255, value src[off, off + len)) for `peer`. Records are packed in
   * order into transport messages of at most `mtu` bytes; a full one is sealed and sent at once,
   * the rest on flush(). Without a usable session the record is refused (NO_SESSION) and a
   * handshake is started: there is no queue across handshakes (AoE initiators retransmit).
   */
  queueRecord(peer: Peer, type: number, src: Uint8Array, off: number, len: number, now: number): SendResult {
    if (len > this.maxRecord) {
      this.stats.txDropped++;
      return Send.TOO_LARGE;
    }
    if (!peer.hasEndpoint) {
      this.stats.txDropped++;
      return Send.NO_ENDPOINT;
    }
    if (peer.current === null || !peer.current.canSend(now)) {
      this.stats.txDropped++;
      this.wantHandshake(peer, now);
      return Send.NO_SESSION;
    }
    const w = peer.writer;
    if (!w.fits(len)) this.flushPeer(peer, now);
    if (!w.add(type, src, off, len)) {
      this.stats.txDropped++;
      return Send.TOO_LARGE;
    }
    if (!peer.dirty) {
      peer.dirty = true;
      this.dirty.push(peer);
    }
    return Send.OK;
  }

  /** Seal and send every peer's queued records. Call after each receive batch. */
  flush(now: number): void {
    const d = this.dirty;
    for (let i = 0; i < d.length; i++) {
      const peer = d[i]!;
      peer.dirty = false;
      this.flushPeer(peer, now);
    }
    d.length = 0;
  }

  /** Seal and send the records queued for one peer (nothing if none). */
  flushPeer(peer: Peer, now: number): void {
    const w = peer.writer;
    if (w.length === 0) return;
    const s = peer.current;
    if (s === null || !s.canSend(now) || !peer.hasEndpoint) {
      this.stats.txDropped += w.count;
      w.reset();
      this.wantHandshake(peer, now);
      return;
    }
    peer.txRecords += w.count;
    this.seal(peer, s, w.buf, w.pad(this.padMultiple), now);
    w.reset();
  }

  /**
   * Packs `peer`'s records into datagrams of at most `mtu` bytes from now on (path MTU detection
   * found the path smaller than the configured MTU); never above the configured MTU. What is
   * queued is sent first, at the old size.
   */
  setPeerMtu(peer: Peer, mtu: number, now: number): void {
    const capacity = Math.max(RECORD_HEADER_LEN + 1, Math.min(this.maxPlaintext, mtu - DATA_OVERHEAD));
    if (peer.writer.length > 0) this.flushPeer(peer, now);
    peer.writer.capacity = capacity;
  }

  /**
   * Sends one record alone in its own datagram, padded to no more than its own size (a path MTU
   * probe must be exactly the size it tests, whatever the peer's current packing limit).
   */
  sendAlone(peer: Peer, type: number, src: Uint8Array, off: number, len: number, now: number): SendResult {
    if (len > this.maxRecord) {
      this.stats.txDropped++;
      return Send.TOO_LARGE;
    }
    this.flushPeer(peer, now);
    const w = peer.writer;
    const capacity = w.capacity;
    w.capacity = RECORD_HEADER_LEN + len;
    try {
      const r = this.queueRecord(peer, type, src, off, len, now);
      this.flushPeer(peer, now);
      return r;
    } finally {
      w.capacity = capacity;
    }
  }

  /** Send an empty transport message (or the queued records, which serve the same purpose). */
  sendKeepalive(peer: Peer, now: number): SendResult {
    if (peer.writer.length > 0) {
      this.flushPeer(peer, now);
      return Send.OK;
    }
    const s = peer.current;
    if (!peer.hasEndpoint) return Send.NO_ENDPOINT;
    if (s === null || !s.canSend(now)) {
      this.wantHandshake(peer, now);
      return Send.NO_SESSION;
    }
    this.seal(peer, s, EMPTY, 0, now);
    return Send.OK;
  }

  private seal(peer: Peer, s: Session, plain: Uint8Array, plainLen: number, now: number): void {
    const out = this.sink.buffer();
    const counter = s.sendCounter;
    writeHeader(out, 0, MSG_TRANSPORT);
    writeU32(out, DATA_RECEIVER, s.remoteIndex);
    writeU64(out, DATA_COUNTER, counter);
    const n =
      DATA_PAYLOAD + this.crypto.seal(out, DATA_PAYLOAD, s.sendKey, counter, null, plain, 0, plainLen);
    s.sendCounter = counter + 1n;
    peer.txBytes += n;
    peer.lastSentAt = now;
    peer.keepaliveAt = Number.POSITIVE_INFINITY;
    if (plainLen > 0) {
      this.stats.txData++;
      if (peer.unansweredSince === Number.NEGATIVE_INFINITY) peer.unansweredSince = now;
    } else {
      this.stats.txKeepalive++;
    }
    this.sink.send(n, peer.endpoint, 0);
    if (
      s.sendCounter >= REKEY_AFTER_MESSAGES ||
      (s.initiator && now - s.createdAt >= this.timers.rekeyAfterTime)
    ) {
      this.wantHandshake(peer, now);
    }
  }

  // ---------------------------------------------------------------- timers

  /**
   * Run the timers at `now`: expire sessions, retry or give up handshakes, send keepalives, start a
   * handshake when data went unanswered. Call every ~100 ms to 1 s (precision of all timers).
   */
  tick(now: number): void {
    for (const peer of this.peersById.values()) {
      try {
        this.tickPeer(peer, now);
      } catch (err) {
        this.lastInternalError = err;
      }
    }
    if (this.limiter !== null && now - this.lastSweep >= 1000) {
      this.limiter.sweep(now);
      this.lastSweep = now;
    }
  }

  private tickPeer(peer: Peer, now: number): void {
    if (peer.provisional !== null && now - peer.provisional.admittedAt >= ENROLL_PROOF_TIMEOUT) {
      this.removePeer(peer);
      return;
    }
    if (peer.previous?.expired(now)) {
      this.dropSession(peer.previous);
      peer.previous = null;
    }
    if (peer.current?.expired(now)) {
      this.dropSession(peer.current);
      peer.current = null;
    }
    if (peer.next?.expired(now)) {
      this.dropSession(peer.next);
      peer.next = null;
    }
    if (peer.pending !== null && now >= peer.retryAt) {
      if (now - peer.attemptStartedAt >= this.timers.rekeyAttemptTime) {
        this.dropPending(peer);
        this.stats.handshakesFailed++;
        if (this.events.handshakeFailed !== undefined) {
          try {
            this.events.handshakeFailed(peer);
          } catch (err) {
            this.handlerError(err);
          }
        }
      } else {
        this.sendInitiation(peer, now);
      }
    }
    if (now >= peer.keepaliveAt) {
      peer.keepaliveAt = Number.POSITIVE_INFINITY;
      this.sendKeepalive(peer, now);
    }
    if (peer.persistentKeepaliveMs > 0 && now - peer.lastSentAt >= peer.persistentKeepaliveMs) {
      this.sendKeepalive(peer, now);
    }
    if (
      peer.unansweredSince !== Number.NEGATIVE_INFINITY &&
      now - peer.unansweredSince >= this.timers.keepaliveTimeout + this.timers.rekeyTimeout
    ) {
      peer.unansweredSince = Number.NEGATIVE_INFINITY;
      this.wantHandshake(peer, now);
    }
  }

  private dropSession(s: Session | null): void {
    if (s === null) return;
    if (this.index.get(s.localIndex) === s) this.index.delete(s.localIndex);
    s.destroy(this.crypto);
  }

  private dropPending(peer: Peer): void {
    const p = peer.pending;
    if (p === null) return;
    if (this.index.get(p.localIndex) === p) this.index.delete(p.localIndex);
    p.state.destroy();
    peer.pending = null;
    peer.retryAt = Number.POSITIVE_INFINITY;
  }

  // ---------------------------------------------------------------- introspection

  /** Number of entries in the index table (sessions and pending handshakes). */
  get indexCount(): number {
    return this.index.size;
  }

  /**
   * All protocol state of one peer as plain data (no key material): for status output, and for
   * tests proving that rejected input changed nothing.
   */
  inspect(peer: Peer): PeerState {
    const sess = (s: Session | null): SessionState | null => {
      if (s === null) return null;
      const snap = s.replay.snapshot();
      return {
        localIndex: s.localIndex,
        remoteIndex: s.remoteIndex,
        initiator: s.initiator,
        createdAt: s.createdAt,
        sendCounter: s.sendCounter,
        replay: { highest: snap.highest, bitmap: Buffer.from(snap.bitmap.buffer).toString('base64') },
      };
    };
    return {
      endpoint: peer.hasEndpoint ? Buffer.from(peer.endpoint).toString('hex') : null,
      lastTimestamp: Buffer.from(peer.lastTimestamp).toString('hex'),
      previous: sess(peer.previous),
      current: sess(peer.current),
      next: sess(peer.next),
      pending:
        peer.pending === null ? null : { localIndex: peer.pending.localIndex, sentAt: peer.pending.sentAt },
      timers: {
        attemptStartedAt: peer.attemptStartedAt,
        lastInitiationAt: peer.lastInitiationAt,
        retryAt: peer.retryAt,
        lastHandshakeAt: peer.lastHandshakeAt,
        lastSentAt: peer.lastSentAt,
        lastReceivedAt: peer.lastReceivedAt,
        keepaliveAt: peer.keepaliveAt,
        unansweredSince: peer.unansweredSince,
      },
      queued: peer.writer.length,
      rxBytes: peer.rxBytes,
      rxRecords: peer.rxRecords,
      indexes: [...this.index.entries()]
        .filter(([, e]) => e.peer === peer)
        .map(([i]) => i)
        .sort((a, b) => a - b),
    };
  }
}

export interface SessionState {
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly initiator: boolean;
  readonly createdAt: number;
  readonly sendCounter: bigint;
  readonly replay: { readonly highest: bigint; readonly bitmap: string };
}

export interface PeerState {
  readonly endpoint: string | null;
  readonly lastTimestamp: string;
  readonly previous: SessionState | null;
  readonly current: SessionState | null;
  readonly next: SessionState | null;
  readonly pending: { readonly localIndex: number; readonly sentAt: number } | null;
  readonly timers: Readonly<Record<string, number>>;
  readonly queued: number;
  readonly rxBytes: number;
  readonly rxRecords: number;
  readonly indexes: readonly number[];
}
