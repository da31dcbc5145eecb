/**
 * A configured peer and all per-peer protocol state: up to three sessions (previous, current,
 * next), the handshake we are waiting on, the last accepted initiation timestamp, timers, the
 * cookie state for messages we send it and the record batch being filled for it. The endpoint owns
 * and mutates it; applications read it (status) and pass it back to the endpoint's methods.
 */
import { AoegwError } from '../errors.js';
import { CookieMaker } from './cookie.js';
import { type CryptoBackend, DH_LEN } from './crypto.js';
import { INVITE_ID_LEN, TIMESTAMP_LEN } from './messages.js';
import { type HandshakeState, PSK_LEN } from './noise.js';
import { RecordWriter } from './records.js';
import { ENTRY_HANDSHAKE, type Session } from './session.js';

export interface PeerOptions {
  /** The peer's X25519 static public key (32 bytes). */
  readonly publicKey: Uint8Array;
  /** Pre-shared key mixed into the handshake (32 bytes); all zeros when absent. */
  readonly psk?: Uint8Array;
  /** Where to send until the peer is heard from (then roaming takes over); address bytes. */
  readonly endpoint?: Uint8Array;
  /** Send a keepalive when nothing was sent for this long (ms); 0 or absent: off. For NAT. */
  readonly persistentKeepaliveMs?: number;
  /** For logs and status only. */
  readonly name?: string;
  /**
   * Enrolling with an invite (16 bytes): our initiations to this peer are enrollment initiations
   * naming it (docs/protocol.md, "Enrollment"). The invite's PSK goes in `psk`.
   */
  readonly inviteId?: Uint8Array;
}

/** A handshake we initiated and are waiting to see answered. */
export class PendingHandshake {
  readonly kind = ENTRY_HANDSHAKE;
  constructor(
    readonly peer: Peer,
    readonly localIndex: number,
    readonly state: HandshakeState,
    readonly sentAt: number,
    /** Sent at once in answer to a cookie reply (not by the timer): the next reply waits. */
    readonly cookieResend = false,
  ) {}
}

export class Peer {
  readonly publicKey: Uint8Array;
  readonly name: string;
  /** Hex of the public key: the key of the endpoint's peer table. */
  readonly id: string;
  /** Free for the application (e.g. its per-peer policy object). */
  userData: unknown = undefined;

  /** @internal */ readonly psk = new Uint8Array(PSK_LEN);
  /** Current address bytes (valid when hasEndpoint); the source of the last authenticated packet. */
  readonly endpoint: Uint8Array;
  hasEndpoint = false;
  persistentKeepaliveMs: number;

  /** @internal */ readonly cookie: CookieMaker;
  /** @internal */ previous: Session | null = null;
  /** @internal */ current: Session | null = null;
  /** @internal Responder side: a session waiting for the initiator's first transport message. */
  next: Session | null = null;
  /** @internal */ pending: PendingHandshake | null = null;
  /** @internal Initiator side: the invite our initiations name (MSG_ENROLL), or null. */
  readonly inviteId: Uint8Array | null;
  /**
   * Responder side: admitted by an enrollment initiation naming this invite, and not yet proven
   * (the first transport message on its session proves the invite's PSK); null for a peer proper.
   * A provisional peer receives no records and is dropped if it does not prove itself in time.
   */
  provisional: { readonly inviteId: Uint8Array; readonly admittedAt: number } | null = null;
  /** @internal Greatest initiation timestamp accepted from this peer (all zero: none yet). */
  readonly lastTimestamp = new Uint8Array(TIMESTAMP_LEN);

  // Timers, all in the endpoint's clock (ms); -Infinity means "never".
  /** @internal */ attemptStartedAt = Number.NEGATIVE_INFINITY;
  /** @internal */ lastInitiationAt = Number.NEGATIVE_INFINITY;
  /** @internal */ retryAt = Number.POSITIVE_INFINITY;
  /** Last completed handshake (the session became current). */
  lastHandshakeAt = Number.NEGATIVE_INFINITY;
  /** Last transport message sent / authenticated transport message received. */
  lastSentAt = Number.NEGATIVE_INFINITY;
  lastReceivedAt = Number.NEGATIVE_INFINITY;
  /** @internal Data arrived and nothing was sent since: a keepalive is due at keepaliveAt. */
  keepaliveAt = Number.POSITIVE_INFINITY;
  /** @internal First data sent since we last heard from the peer (-Infinity: none outstanding). */
  unansweredSince = Number.NEGATIVE_INFINITY;

  /** @internal Records queued for this peer's next transport message. */
  readonly writer: RecordWriter;
  /** @internal Listed in the endpoint's dirty list. */
  dirty = false;

  // Counters for status.
  rxBytes = 0;
  txBytes = 0;
  rxRecords = 0;
  txRecords = 0;

  /** @internal Created by TunnelEndpoint.addPeer(). */
  constructor(crypto: CryptoBackend, opts: PeerOptions, addressLength: number, maxPlaintext: number) {
    if (!(opts.publicKey instanceof Uint8Array) || opts.publicKey.length !== DH_LEN) {
      throw new AoegwError('ERR_TUNNEL_PEER', 'peer public key must be 32 bytes');
    }
    if (opts.psk !== undefined && opts.psk.length !== PSK_LEN)
      throw new AoegwError('ERR_TUNNEL_PEER', 'psk must be 32 bytes');
    if (opts.inviteId !== undefined && opts.inviteId.length !== INVITE_ID_LEN)
      throw new AoegwError('ERR_TUNNEL_PEER', `invite id must be ${INVITE_ID_LEN} bytes`);
    if (opts.endpoint !== undefined && opts.endpoint.length !== addressLength) {
      throw new AoegwError('ERR_TUNNEL_PEER', `endpoint address must be ${addressLength} bytes`);
    }
    this.publicKey = Uint8Array.from(opts.publicKey);
    this.id = Buffer.from(this.publicKey).toString('hex');
    this.name = opts.name ?? this.id.slice(0, 8);
    if (opts.psk !== undefined) this.psk.set(opts.psk);
    this.inviteId = opts.inviteId === undefined ? null : Uint8Array.from(opts.inviteId);
    this.endpoint = new Uint8Array(addressLength);
    if (opts.endpoint !== undefined) {
      this.endpoint.set(opts.endpoint);
      this.hasEndpoint = true;
    }
    this.persistentKeepaliveMs = opts.persistentKeepaliveMs ?? 0;
    this.cookie = new CookieMaker(crypto, this.publicKey);
    this.writer = new RecordWriter(new Uint8Array(maxPlaintext));
  }

  /** Is there a session we can send with now? */
  hasSession(now: number): boolean {
    return this.current?.canSend(now) ?? false;
  }

  /** Is a handshake we initiated waiting for its response? */
  get handshakeInProgress(): boolean {
    return this.pending !== null;
  }
}
