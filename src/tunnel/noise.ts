/**
 * Noise HandshakeState (spec rev 34, sections 5.3 and 9) for the 25519_ChaChaPoly_BLAKE2b suite:
 * pattern-driven, so IK and IKpsk2 (the tunnel's handshake) share code with NN/XX used in tests.
 *
 * Built so a WireGuard-shaped handshake can sit on top: writeMessage() returns exactly the Noise
 * bytes (e, encrypted s, encrypted payload) that the wire layer frames with type, indices and
 * mac1/mac2 outside Noise; a responder learns the initiator's static key from readMessage() and can
 * look up that peer, check its timestamp payload and only then supply the peer's PSK (setPsk) before
 * writing the response, since IKpsk2 mixes the PSK in the second message only.
 */
import { AoegwError, isAoegwError } from '../errors.js';
import { type CryptoBackend, DH_LEN, KEY_LEN, TAG_LEN, type X25519KeyPair } from './crypto.js';
import type { CipherState } from './noise-cipher.js';
import { type HandshakePattern, parseProtocolName, type Token } from './noise-patterns.js';
import { SymmetricState } from './noise-symmetric.js';

export { CipherState } from './noise-cipher.js';
export { type HandshakePattern, handshakePattern, parseProtocolName, type Token } from './noise-patterns.js';
export { SymmetricState } from './noise-symmetric.js';

/** Noise's maximum message length (section 3). */
export const MAX_MESSAGE_LEN = 65535;
export const PSK_LEN = 32;

export interface HandshakeOptions {
  readonly crypto: CryptoBackend;
  /** e.g. 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2b'. */
  readonly protocolName: string;
  readonly initiator: boolean;
  readonly prologue?: Uint8Array;
  /** Local static key pair (copied; the caller keeps ownership of its own copy). */
  readonly staticKeyPair?: X25519KeyPair;
  /** Remote static public key known in advance (the responder's key for an IK initiator). */
  readonly remoteStatic?: Uint8Array;
  /** Fixed ephemeral secret, for test vectors only; otherwise drawn from crypto.randomBytes. */
  readonly ephemeralSecret?: Uint8Array;
  /** PSKs consumed in order by psk tokens; more can be supplied later with setPsk(). */
  readonly psks?: readonly Uint8Array[];
}

/** Transport cipher states after the handshake, oriented for this side. */
export interface TransportKeys {
  readonly send: CipherState;
  readonly recv: CipherState;
}

export class HandshakeState {
  readonly pattern: HandshakePattern;
  readonly initiator: boolean;
  private readonly crypto: CryptoBackend;
  private readonly ss: SymmetricState;
  private s: X25519KeyPair | null = null;
  private e: X25519KeyPair | null = null;
  private rs: Uint8Array | null = null;
  private re: Uint8Array | null = null;
  private readonly psks: Uint8Array[] = [];
  private readonly fixedEphemeral: Uint8Array | null;
  private readonly dh = new Uint8Array(DH_LEN);
  private next = 0;
  private failed = false;

  constructor(opts: HandshakeOptions) {
    this.crypto = opts.crypto;
    this.initiator = opts.initiator;
    this.pattern = parseProtocolName(opts.protocolName);
    this.ss = new SymmetricState(opts.crypto, opts.protocolName);
    this.fixedEphemeral =
      opts.ephemeralSecret === undefined ? null : checkedKey(opts.ephemeralSecret, 'ephemeral secret');
    try {
      if (opts.staticKeyPair !== undefined) this.s = copyKeyPair(opts.staticKeyPair);
      if (opts.remoteStatic !== undefined) this.rs = checkedKey(opts.remoteStatic, 'remote static key');
      for (const psk of opts.psks ?? []) this.setPsk(psk);
      this.ss.mixHash(opts.prologue ?? new Uint8Array(0));
      // Pre-messages: the initiator's first, then the responder's (section 7.1).
      for (const token of this.pattern.initiatorPre) this.mixPreMessage(token, this.initiator);
      for (const token of this.pattern.responderPre) this.mixPreMessage(token, !this.initiator);
    } catch (err) {
      // Do not leave copies of secrets behind in a state nobody will ever destroy().
      throw this.fail(err);
    }
  }

  /** Queue the PSK for the next psk token (a responder supplies it once it knows the peer). */
  setPsk(psk: Uint8Array): void {
    this.psks.push(checkedKey(psk, 'psk', PSK_LEN));
  }

  /** True when this side sends the next handshake message. */
  get isMyTurn(): boolean {
    return !this.isComplete && this.next % 2 === (this.initiator ? 0 : 1);
  }

  get isComplete(): boolean {
    return this.next >= this.pattern.messages.length;
  }

  /** The peer's static public key once known (pre-message or read from a handshake message). */
  get remoteStatic(): Uint8Array | null {
    return this.rs === null ? null : Uint8Array.from(this.rs);
  }

  get remoteEphemeral(): Uint8Array | null {
    return this.re === null ? null : Uint8Array.from(this.re);
  }

  /** The local ephemeral public key once generated. */
  get localEphemeral(): Uint8Array | null {
    return this.e === null ? null : Uint8Array.from(this.e.publicKey);
  }

  handshakeHash(): Uint8Array {
    return this.ss.handshakeHash();
  }

  /** WriteMessage: the next handshake message carrying `payload` (encrypted once a key exists). */
  writeMessage(payload: Uint8Array): Uint8Array {
    this.assertUsable();
    if (!this.isMyTurn) throw new AoegwError('ERR_HANDSHAKE', 'not this side’s turn to write');
    try {
      const parts: Uint8Array[] = [];
      for (const token of this.pattern.messages[this.next]!) {
        if (token === 'e') {
          if (this.e !== null) throw new AoegwError('ERR_HANDSHAKE', 'ephemeral key already set');
          this.e = this.makeEphemeral();
          parts.push(Uint8Array.from(this.e.publicKey));
          this.mixEphemeral(this.e.publicKey);
        } else if (token === 's') {
          parts.push(this.ss.encryptAndHash(this.requireKey(this.s, 'local static key').publicKey));
        } else {
          this.mixToken(token);
        }
      }
      parts.push(this.ss.encryptAndHash(payload));
      const msg = concat(parts);
      if (msg.length > MAX_MESSAGE_LEN) throw new AoegwError('ERR_HANDSHAKE', 'handshake message too long');
      this.next++;
      return msg;
    } catch (err) {
      throw this.fail(err);
    }
  }

  /** ReadMessage: processes the peer's next message and returns its decrypted payload. */
  readMessage(message: Uint8Array): Uint8Array {
    this.assertUsable();
    if (this.isComplete || this.isMyTurn) throw new AoegwError('ERR_HANDSHAKE', 'not expecting a message');
    try {
      if (message.length > MAX_MESSAGE_LEN)
        throw new AoegwError('ERR_HANDSHAKE', 'handshake message too long');
      let off = 0;
      const take = (len: number): Uint8Array => {
        if (off + len > message.length) throw new AoegwError('ERR_HANDSHAKE', 'handshake message truncated');
        const part = message.subarray(off, off + len);
        off += len;
        return part;
      };
      for (const token of this.pattern.messages[this.next]!) {
        if (token === 'e') {
          if (this.re !== null) throw new AoegwError('ERR_HANDSHAKE', 'remote ephemeral key already set');
          this.re = Uint8Array.from(take(DH_LEN));
          this.mixEphemeral(this.re);
        } else if (token === 's') {
          if (this.rs !== null) throw new AoegwError('ERR_HANDSHAKE', 'remote static key already set');
          const enc = take(DH_LEN + (this.ss.hasKey() ? TAG_LEN : 0));
          this.rs = this.ss.decryptAndHash(enc);
        } else {
          this.mixToken(token);
        }
      }
      const payload = this.ss.decryptAndHash(message.subarray(off));
      this.next++;
      return payload;
    } catch (err) {
      throw this.fail(err);
    }
  }

  /**
   * Split(): the transport cipher states, oriented (send/recv) for this side, once the last message
   * has been written or read. Wipes every handshake secret; handshakeHash() stays available.
   */
  split(): TransportKeys {
    this.assertUsable();
    if (!this.isComplete) throw new AoegwError('ERR_HANDSHAKE', 'handshake not complete');
    const [c1, c2] = this.ss.split();
    this.wipeKeys();
    this.failed = true; // spent: no further use
    return this.initiator ? { send: c1, recv: c2 } : { send: c2, recv: c1 };
  }

  /**
   * An independent copy of this state. The tunnel's initiator reads a handshake response into a
   * fork, so a forged response (anyone can compute mac1) cannot destroy the pending handshake: the
   * fork is dropped and the original keeps waiting for the genuine response.
   */
  fork(): HandshakeState {
    this.assertUsable();
    const copy = Object.create(HandshakeState.prototype) as HandshakeState;
    // Every instance field, as the constructor would create it, with copies of all key material.
    return Object.assign(copy, {
      pattern: this.pattern,
      initiator: this.initiator,
      crypto: this.crypto,
      ss: this.ss.fork(),
      s: this.s === null ? null : copyKeyPair(this.s),
      e: this.e === null ? null : copyKeyPair(this.e),
      rs: this.rs === null ? null : Uint8Array.from(this.rs),
      re: this.re === null ? null : Uint8Array.from(this.re),
      psks: this.psks.map((p) => Uint8Array.from(p)),
      fixedEphemeral: this.fixedEphemeral === null ? null : Uint8Array.from(this.fixedEphemeral),
      dh: new Uint8Array(DH_LEN),
      next: this.next,
      failed: false,
    });
  }

  /** Zeroes every secret this state holds. Idempotent. */
  destroy(): void {
    this.failed = true;
    this.ss.destroy();
    this.wipeKeys();
  }

  /** Pre-message tokens are all "s" in the supported patterns: MixHash of that static key. */
  private mixPreMessage(_token: 's', local: boolean): void {
    const key = local
      ? this.requireKey(this.s, 'local static key').publicKey
      : this.requireKey(this.rs, 'remote static key');
    this.ss.mixHash(key);
  }

  /** "e": MixHash(e.pub), plus MixKey(e.pub) when a psk modifier is in use (section 9.2). */
  private mixEphemeral(pub: Uint8Array): void {
    this.ss.mixHash(pub);
    if (this.pattern.psk) this.ss.mixKey(pub);
  }

  private mixToken(token: Exclude<Token, 'e' | 's'>): void {
    if (token === 'psk') {
      const psk = this.psks.shift();
      if (psk === undefined) throw new AoegwError('ERR_HANDSHAKE', 'psk required but not supplied');
      try {
        this.ss.mixKeyAndHash(psk);
      } finally {
        this.crypto.memzero(psk);
      }
      return;
    }
    // es/se name (initiator key, responder key); each side uses its own secret for its half.
    const [initKey, respKey] = [token[0] === 'e' ? 'e' : 's', token[1] === 'e' ? 'e' : 's'] as const;
    const mine = this.initiator ? initKey : respKey;
    const theirs = this.initiator ? respKey : initKey;
    const local = this.requireKey(mine === 'e' ? this.e : this.s, `local ${mine} key`);
    const remote = this.requireKey(theirs === 'e' ? this.re : this.rs, `remote ${theirs} key`);
    try {
      this.crypto.x25519(this.dh, local.secretKey, remote);
      this.ss.mixKey(this.dh);
    } finally {
      this.crypto.memzero(this.dh);
    }
  }

  private makeEphemeral(): X25519KeyPair {
    return this.fixedEphemeral === null
      ? this.crypto.x25519KeyPair()
      : this.crypto.x25519KeyPair(this.fixedEphemeral);
  }

  private requireKey<T>(key: T | null, what: string): T {
    if (key === null) throw new AoegwError('ERR_HANDSHAKE', `${what} required by the pattern but not set`);
    return key;
  }

  private assertUsable(): void {
    if (this.failed) throw new AoegwError('ERR_HANDSHAKE', 'handshake state failed, split or destroyed');
  }

  /** Any error leaves the transcript inconsistent: wipe everything and report ERR_HANDSHAKE. */
  private fail(err: unknown): AoegwError {
    this.destroy();
    if (isAoegwError(err, 'ERR_HANDSHAKE')) return err;
    return new AoegwError('ERR_HANDSHAKE', `handshake failed: ${(err as Error).message}`, { cause: err });
  }

  private wipeKeys(): void {
    if (this.s !== null) this.crypto.memzero(this.s.secretKey);
    if (this.e !== null) this.crypto.memzero(this.e.secretKey);
    if (this.fixedEphemeral !== null) this.crypto.memzero(this.fixedEphemeral);
    for (const psk of this.psks) this.crypto.memzero(psk);
    this.psks.length = 0;
    this.crypto.memzero(this.dh);
  }
}

function checkedKey(key: Uint8Array, what: string, len = DH_LEN): Uint8Array {
  if (key.length !== len) throw new AoegwError('ERR_HANDSHAKE', `${what} must be ${len} bytes`);
  return Uint8Array.from(key);
}

function copyKeyPair(kp: X25519KeyPair): X25519KeyPair {
  return {
    secretKey: checkedKey(kp.secretKey, 'static secret key', KEY_LEN),
    publicKey: checkedKey(kp.publicKey, 'static public key'),
  };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
