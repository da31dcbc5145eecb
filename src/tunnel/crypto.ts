/**
 * The tunnel's view of cryptography: exactly the primitives Noise_IKpsk2_25519_ChaChaPoly_BLAKE2b and
 * the WireGuard-shaped wire protocol need, behind one small interface with three implementations
 * (openssl-native: sodium-native with ChaCha20-Poly1305 over OpenSSL in our addon, for the data path;
 * sodium-native; libsodium-wrappers as the portable fallback). All must produce identical bytes; the
 * unit tests hold them to that.
 */
import { AoegwError } from '../errors.js';

/** X25519 public key, secret key and shared secret length. */
export const DH_LEN = 32;
/** ChaCha20-Poly1305 / XChaCha20-Poly1305 key length. */
export const KEY_LEN = 32;
/** Poly1305 tag length appended by every seal. */
export const TAG_LEN = 16;
/** XChaCha20-Poly1305 nonce length (the cookie reply carries a random one). */
export const XNONCE_LEN = 24;
/** BLAKE2b-512 output length: Noise's HASHLEN for this suite. */
export const HASH_LEN = 64;
/** BLAKE2b block length: HMAC's pad length (Noise's BLOCKLEN). */
export const BLOCK_LEN = 128;
/** Keyed BLAKE2b key length bounds (libsodium's crypto_generichash). */
export const BLAKE2B_KEY_MIN = 16;
export const BLAKE2B_KEY_MAX = 64;
/** BLAKE2b output length bounds (libsodium's crypto_generichash). */
export const BLAKE2B_OUT_MIN = 16;
export const BLAKE2B_OUT_MAX = 64;
/** Largest AEAD counter that fits the 64-bit nonce field. */
export const MAX_COUNTER = 0xffff_ffff_ffff_ffffn;

export type BackendName = 'openssl-native' | 'sodium-native' | 'libsodium-wrappers';

export interface X25519KeyPair {
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** One message for BLAKE2b/HMAC: a single buffer, or parts hashed as if concatenated. */
export type HashInput = Uint8Array | readonly Uint8Array[];

export interface CryptoBackend {
  readonly name: BackendName;

  /** Fill `out` with cryptographically secure random bytes. */
  randomBytes(out: Uint8Array): void;
  /** Overwrite `buf` with zeros in a way the optimiser cannot elide (for key material). */
  memzero(buf: Uint8Array): void;
  /** Constant-time equality; buffers of different lengths are unequal (length is not secret). */
  equal(a: Uint8Array, b: Uint8Array): boolean;

  /** Public key for a 32-byte X25519 secret (the secret is clamped by X25519 itself). */
  x25519PublicKey(out: Uint8Array, secretKey: Uint8Array): void;
  /**
   * A key pair from a 32-byte secret taken as-is (the "seed" is the X25519 scalar, as in Noise test
   * vectors and `wg genkey`), or from fresh random bytes. The caller owns and must zero `secretKey`.
   */
  x25519KeyPair(secretKey?: Uint8Array): X25519KeyPair;
  /** X25519(secretKey, publicKey) into `out`; throws ERR_CRYPTO when the result is all zeros. */
  x25519(out: Uint8Array, secretKey: Uint8Array, publicKey: Uint8Array): void;

  /** BLAKE2b with output length `out.length` (16..64) and an optional key (16..64 bytes). */
  blake2b(out: Uint8Array, input: HashInput, key?: Uint8Array): void;
  /** HMAC (RFC 2104) over BLAKE2b-512 with a 128-byte block, as Noise defines HMAC-HASH. */
  hmacBlake2b(out: Uint8Array, key: Uint8Array, data: HashInput): void;
  /**
   * Noise's HKDF(chainingKey, ikm): two outputs, or three when `out3` is given. Every output is
   * HASH_LEN bytes. Outputs may alias `chainingKey` (MixKey overwrites ck in place).
   */
  hkdf(chainingKey: Uint8Array, ikm: Uint8Array, out1: Uint8Array, out2: Uint8Array, out3?: Uint8Array): void;

  /**
   * ChaCha20-Poly1305 (IETF, nonce = 4 zero bytes || counter as u64 little-endian). Writes
   * ciphertext||tag to `out` at `outOff` and returns ptLen + TAG_LEN. No buffer is allocated.
   * `out` may be the very same bytes as the plaintext (in place) but must not partially overlap it.
   */
  seal(
    out: Uint8Array,
    outOff: number,
    key: Uint8Array,
    counter: bigint,
    ad: Uint8Array | null,
    pt: Uint8Array,
    ptOff: number,
    ptLen: number,
  ): number;
  /**
   * Inverse of seal. Returns the plaintext length, or -1 when the input is too short or fails
   * authentication (never throws for bad input from the wire). On an authentication failure the
   * plaintext range of `out` is zeroed (libsodium does so natively; the fallback copies that), so an
   * in-place open destroys the rejected ciphertext.
   */
  open(
    out: Uint8Array,
    outOff: number,
    key: Uint8Array,
    counter: bigint,
    ad: Uint8Array | null,
    ct: Uint8Array,
    ctOff: number,
    ctLen: number,
  ): number;
  /** XChaCha20-Poly1305 with an explicit 24-byte nonce; same buffer contract as seal. */
  xseal(
    out: Uint8Array,
    outOff: number,
    key: Uint8Array,
    nonce: Uint8Array,
    ad: Uint8Array | null,
    pt: Uint8Array,
    ptOff: number,
    ptLen: number,
  ): number;
  /** XChaCha20-Poly1305 open; same contract as open. */
  xopen(
    out: Uint8Array,
    outOff: number,
    key: Uint8Array,
    nonce: Uint8Array,
    ad: Uint8Array | null,
    ct: Uint8Array,
    ctOff: number,
    ctLen: number,
  ): number;
}

/**
 * The fastest backend that loads: openssl-native (ChaCha20-Poly1305 over OpenSSL in our addon, when
 * it passes its self-test; the rest sodium-native), else sodium-native, else libsodium-wrappers.
 * With `prefer`, that backend or an ERR_CRYPTO_UNAVAILABLE error: tests pin each one explicitly.
 */
export async function loadCrypto(prefer?: BackendName): Promise<CryptoBackend> {
  if (prefer === undefined || prefer === 'openssl-native') {
    try {
      const { createOpenSslNativeBackend } = await import('./crypto-openssl-native.js');
      return createOpenSslNativeBackend();
    } catch (cause) {
      if (prefer === 'openssl-native') {
        if (cause instanceof AoegwError && cause.code === 'ERR_CRYPTO_UNAVAILABLE') throw cause;
        throw new AoegwError('ERR_CRYPTO_UNAVAILABLE', 'openssl-native could not be loaded', { cause });
      }
    }
  }
  if (prefer !== 'libsodium-wrappers') {
    try {
      // Dynamic import: a missing or broken native prebuild must not break loading this module.
      const { createSodiumNativeBackend } = await import('./crypto-sodium-native.js');
      return createSodiumNativeBackend();
    } catch (cause) {
      if (prefer === 'sodium-native') {
        throw new AoegwError('ERR_CRYPTO_UNAVAILABLE', 'sodium-native could not be loaded', { cause });
      }
    }
  }
  try {
    const { createLibsodiumBackend } = await import('./crypto-libsodium.js');
    return await createLibsodiumBackend();
  } catch (cause) {
    throw new AoegwError('ERR_CRYPTO_UNAVAILABLE', 'libsodium-wrappers could not be loaded', { cause });
  }
}

/**
 * Is this X25519 secret worthless: all zero, or zero in every bit X25519 uses (clamping ignores
 * the low 3 bits and the top bit and forces bit 254), so it is the same scalar as the all-zero
 * key everyone can compute? Such a key is a configuration or generation error, never a secret.
 */
export function isWeakX25519Secret(secretKey: Uint8Array): boolean {
  if (secretKey.length !== DH_LEN) return true;
  let acc = secretKey[0]! & 0xf8;
  for (let i = 1; i < 31; i++) acc |= secretKey[i]!;
  acc |= secretKey[31]! & 0x3f;
  return acc === 0;
}

/**
 * The X25519 points of small order (and their non-canonical encodings, top bit ignored), as in
 * libsodium's blacklist: a DH with any of them gives an all-zero shared secret whatever our key.
 */
const SMALL_ORDER_POINTS: readonly Uint8Array[] = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => Uint8Array.from(Buffer.from(h, 'hex')));

/** Is this X25519 public key a small-order point (no DH with it can be secret)? */
export function isSmallOrderX25519Public(publicKey: Uint8Array): boolean {
  if (publicKey.length !== DH_LEN) return true;
  for (const p of SMALL_ORDER_POINTS) {
    let diff = (publicKey[31]! & 0x7f) ^ p[31]!;
    for (let i = 0; i < 31; i++) diff |= publicKey[i]! ^ p[i]!;
    if (diff === 0) return true;
  }
  return false;
}
