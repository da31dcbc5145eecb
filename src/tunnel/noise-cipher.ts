/**
 * Noise CipherState (spec rev 34, section 5.1): a ChaCha20-Poly1305 key and a 64-bit nonce counter.
 * The handshake uses the allocating encryptWithAd/decryptWithAd; after split() the transport can use
 * the *Into variants (no allocation) or borrow `key` and supply explicit counters itself.
 */
import { AoegwError } from '../errors.js';
import { type CryptoBackend, KEY_LEN, MAX_COUNTER, TAG_LEN } from './crypto.js';

export class CipherState {
  private k: Uint8Array | null = null;
  private n = 0n;

  constructor(
    private readonly crypto: CryptoBackend,
    key?: Uint8Array,
  ) {
    if (key !== undefined) this.initializeKey(key);
  }

  /** InitializeKey: copies `key` (the caller keeps and wipes its own copy) and resets n. */
  initializeKey(key: Uint8Array): void {
    if (key.length !== KEY_LEN) throw new AoegwError('ERR_CRYPTO', `cipher key must be ${KEY_LEN} bytes`);
    this.destroy();
    this.k = Uint8Array.from(key);
    this.n = 0n;
  }

  hasKey(): boolean {
    return this.k !== null;
  }

  /** Borrowed view of the key (null before MixKey); valid until destroy(). */
  get key(): Uint8Array | null {
    return this.k;
  }

  get nonce(): bigint {
    return this.n;
  }

  setNonce(n: bigint): void {
    if (n < 0n || n > MAX_COUNTER) throw new AoegwError('ERR_CRYPTO', `nonce ${n} outside 64 bits`);
    this.n = n;
  }

  /** Without a key, Noise passes plaintext through unchanged (first message of NN/XX). */
  encryptWithAd(ad: Uint8Array, pt: Uint8Array): Uint8Array {
    if (this.k === null) return Uint8Array.from(pt);
    const out = new Uint8Array(pt.length + TAG_LEN);
    this.encryptInto(out, 0, ad, pt, 0, pt.length);
    return out;
  }

  /** Throws ERR_CRYPTO when authentication fails; the nonce then stays unchanged. */
  decryptWithAd(ad: Uint8Array, ct: Uint8Array): Uint8Array {
    if (this.k === null) return Uint8Array.from(ct);
    if (ct.length < TAG_LEN) throw new AoegwError('ERR_CRYPTO', 'ciphertext shorter than its tag');
    const out = new Uint8Array(ct.length - TAG_LEN);
    if (this.decryptInto(out, 0, ad, ct, 0, ct.length) < 0) {
      throw new AoegwError('ERR_CRYPTO', 'ciphertext failed authentication');
    }
    return out;
  }

  /** Seals with the current nonce, then increments it. Requires a key. Returns bytes written. */
  encryptInto(
    out: Uint8Array,
    outOff: number,
    ad: Uint8Array | null,
    pt: Uint8Array,
    ptOff: number,
    ptLen: number,
  ): number {
    const k = this.requireKey();
    const written = this.crypto.seal(out, outOff, k, this.n, ad, pt, ptOff, ptLen);
    this.n++;
    return written;
  }

  /** Opens with the current nonce; increments it only on success. Returns -1 on failure. */
  decryptInto(
    out: Uint8Array,
    outOff: number,
    ad: Uint8Array | null,
    ct: Uint8Array,
    ctOff: number,
    ctLen: number,
  ): number {
    const k = this.requireKey();
    const len = this.crypto.open(out, outOff, k, this.n, ad, ct, ctOff, ctLen);
    if (len >= 0) this.n++;
    return len;
  }

  /** An independent copy (key and nonce): lets a caller try a step and throw the copy away. */
  fork(): CipherState {
    const copy = new CipherState(this.crypto);
    if (this.k !== null) copy.initializeKey(this.k);
    copy.n = this.n;
    return copy;
  }

  /** Zeroes the key; the state then behaves as keyless. */
  destroy(): void {
    if (this.k !== null) this.crypto.memzero(this.k);
    this.k = null;
  }

  private requireKey(): Uint8Array {
    if (this.k === null) throw new AoegwError('ERR_CRYPTO', 'cipher state has no key');
    // 2^64-1 is reserved by Noise (section 5.1) and would not fit the nonce after increment.
    if (this.n >= MAX_COUNTER) throw new AoegwError('ERR_NONCE_EXHAUSTED', 'cipher nonce exhausted');
    return this.k;
  }
}
