/**
 * Noise SymmetricState (spec rev 34, section 5.2) for HASH = BLAKE2b-512: chaining key ck, handshake
 * hash h and the handshake CipherState. HASHLEN is 64, so HKDF outputs used as cipher keys are
 * truncated to 32 bytes, as the spec requires.
 */
import { AoegwError } from '../errors.js';
import { type CryptoBackend, HASH_LEN, KEY_LEN } from './crypto.js';
import { CipherState } from './noise-cipher.js';

const EMPTY = new Uint8Array(0);

export class SymmetricState {
  private readonly ck = new Uint8Array(HASH_LEN);
  private readonly h = new Uint8Array(HASH_LEN);
  private readonly cs: CipherState;
  // HKDF outputs; they hold key material only between a mix and the wipe that follows it.
  private readonly t1 = new Uint8Array(HASH_LEN);
  private readonly t2 = new Uint8Array(HASH_LEN);
  private readonly t3 = new Uint8Array(HASH_LEN);
  private spent = false;

  /** InitializeSymmetric(protocol_name). */
  constructor(
    private readonly crypto: CryptoBackend,
    protocolName: string,
  ) {
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= HASH_LEN) this.h.set(name);
    else crypto.blake2b(this.h, name);
    this.ck.set(this.h);
    this.cs = new CipherState(crypto);
  }

  mixKey(ikm: Uint8Array): void {
    this.crypto.hkdf(this.ck, ikm, this.t1, this.t2);
    this.ck.set(this.t1);
    this.cs.initializeKey(this.t2.subarray(0, KEY_LEN));
    this.wipeTemps();
  }

  mixHash(data: Uint8Array): void {
    this.crypto.blake2b(this.t1, [this.h, data]);
    this.h.set(this.t1);
    this.crypto.memzero(this.t1);
  }

  /** Used for the psk token. */
  mixKeyAndHash(ikm: Uint8Array): void {
    this.crypto.hkdf(this.ck, ikm, this.t1, this.t2, this.t3);
    this.ck.set(this.t1);
    this.mixHash(this.t2);
    this.cs.initializeKey(this.t3.subarray(0, KEY_LEN));
    this.wipeTemps();
  }

  hasKey(): boolean {
    return this.cs.hasKey();
  }

  /** A copy of h: channel binding, and the final value the test vectors check. */
  handshakeHash(): Uint8Array {
    return Uint8Array.from(this.h);
  }

  encryptAndHash(pt: Uint8Array): Uint8Array {
    const ct = this.cs.encryptWithAd(this.h, pt);
    this.mixHash(ct);
    return ct;
  }

  /** Throws ERR_CRYPTO on authentication failure; h is then unchanged. */
  decryptAndHash(ct: Uint8Array): Uint8Array {
    const pt = this.cs.decryptWithAd(this.h, ct);
    this.mixHash(ct);
    return pt;
  }

  /** The two transport CipherStates: [initiator→responder, responder→initiator]. Wipes ck. */
  split(): [CipherState, CipherState] {
    if (this.spent) throw new AoegwError('ERR_HANDSHAKE', 'symmetric state already split or destroyed');
    this.spent = true;
    this.crypto.hkdf(this.ck, EMPTY, this.t1, this.t2);
    const c1 = new CipherState(this.crypto, this.t1.subarray(0, KEY_LEN));
    const c2 = new CipherState(this.crypto, this.t2.subarray(0, KEY_LEN));
    this.wipeTemps();
    this.crypto.memzero(this.ck);
    this.cs.destroy();
    return [c1, c2];
  }

  /** An independent copy of ck, h and the cipher state (the caller destroys whichever it drops). */
  fork(): SymmetricState {
    const copy = Object.create(SymmetricState.prototype) as SymmetricState;
    // Every instance field, as the constructor would create it, then this state's values.
    return Object.assign(copy, {
      crypto: this.crypto,
      ck: Uint8Array.from(this.ck),
      h: Uint8Array.from(this.h),
      cs: this.cs.fork(),
      t1: new Uint8Array(HASH_LEN),
      t2: new Uint8Array(HASH_LEN),
      t3: new Uint8Array(HASH_LEN),
      spent: this.spent,
    });
  }

  /** Zeroes every secret; h is kept (it is public transcript data, useful after the handshake). */
  destroy(): void {
    this.spent = true;
    this.crypto.memzero(this.ck);
    this.cs.destroy();
    this.wipeTemps();
  }

  private wipeTemps(): void {
    this.crypto.memzero(this.t1);
    this.crypto.memzero(this.t2);
    this.crypto.memzero(this.t3);
  }
}
