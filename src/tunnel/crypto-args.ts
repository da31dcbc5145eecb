/**
 * Argument checks shared by both crypto backends. libsodium's own checks are C asserts compiled out
 * of the native prebuilds, and subarray() silently clamps, so a wrong length would otherwise turn
 * into a short write or an over-read instead of an error.
 */
import { AoegwError } from '../errors.js';
import {
  BLAKE2B_KEY_MAX,
  BLAKE2B_KEY_MIN,
  BLAKE2B_OUT_MAX,
  BLAKE2B_OUT_MIN,
  type HashInput,
  KEY_LEN,
  MAX_COUNTER,
  TAG_LEN,
} from './crypto.js';

export function assertLength(buf: Uint8Array, length: number, what: string): void {
  if (buf.length !== length) {
    throw new AoegwError('ERR_CRYPTO', `${what} must be ${length} bytes, got ${buf.length}`);
  }
}

/** `[off, off + len)` must lie inside `buf`. */
export function assertRange(buf: Uint8Array, off: number, len: number, what: string): void {
  if (!Number.isInteger(off) || !Number.isInteger(len) || off < 0 || len < 0 || off + len > buf.length) {
    throw new AoegwError('ERR_CRYPTO', `${what}: range [${off}, +${len}) outside ${buf.length} bytes`);
  }
}

/**
 * libsodium supports exact in-place AEAD but not a partial overlap (the stream would overwrite
 * input it has not read yet), so reject that programming error.
 */
export function assertNoPartialOverlap(
  a: Uint8Array,
  aOff: number,
  b: Uint8Array,
  bOff: number,
  len: number,
): void {
  if (a.buffer !== b.buffer) return;
  const x = a.byteOffset + aOff;
  const y = b.byteOffset + bOff;
  if (x !== y && x < y + len && y < x + len) {
    throw new AoegwError('ERR_CRYPTO', 'AEAD output partially overlaps its input');
  }
}

/** Everything an AEAD seal must check before calling libsodium (both backends use this). */
export function assertSealArgs(
  out: Uint8Array,
  outOff: number,
  key: Uint8Array,
  pt: Uint8Array,
  ptOff: number,
  ptLen: number,
): void {
  assertLength(key, KEY_LEN, 'AEAD key');
  assertRange(pt, ptOff, ptLen, 'plaintext');
  assertRange(out, outOff, ptLen + TAG_LEN, 'ciphertext output');
  assertNoPartialOverlap(out, outOff, pt, ptOff, ptLen);
}

/**
 * Everything an AEAD open must check before calling libsodium. Returns the plaintext length, or -1
 * when the ciphertext is too short to hold a tag (wire input: a rejection, not an error).
 */
export function checkOpenArgs(
  out: Uint8Array,
  outOff: number,
  key: Uint8Array,
  ct: Uint8Array,
  ctOff: number,
  ctLen: number,
): number {
  assertLength(key, KEY_LEN, 'AEAD key');
  assertRange(ct, ctOff, ctLen, 'ciphertext');
  if (ctLen < TAG_LEN) return -1;
  const ptLen = ctLen - TAG_LEN;
  assertRange(out, outOff, ptLen, 'plaintext output');
  assertNoPartialOverlap(out, outOff, ct, ctOff, ptLen);
  return ptLen;
}

export function assertCounter(counter: bigint): void {
  if (counter < 0n || counter > MAX_COUNTER) {
    throw new AoegwError('ERR_CRYPTO', `AEAD counter ${counter} outside 64 bits`);
  }
}

export function assertBlake2bArgs(out: Uint8Array, key: Uint8Array | undefined): void {
  if (out.length < BLAKE2B_OUT_MIN || out.length > BLAKE2B_OUT_MAX) {
    throw new AoegwError('ERR_CRYPTO', `BLAKE2b output must be ${BLAKE2B_OUT_MIN}..${BLAKE2B_OUT_MAX} bytes`);
  }
  if (key !== undefined && (key.length < BLAKE2B_KEY_MIN || key.length > BLAKE2B_KEY_MAX)) {
    throw new AoegwError('ERR_CRYPTO', `BLAKE2b key must be ${BLAKE2B_KEY_MIN}..${BLAKE2B_KEY_MAX} bytes`);
  }
}

export function hashParts(input: HashInput): readonly Uint8Array[] {
  return input instanceof Uint8Array ? [input] : input;
}

/**
 * The 96-bit ChaCha20-Poly1305 nonce of Noise (and WireGuard): 32 zero bits, then the counter as a
 * little-endian u64. Written into a reusable buffer so the data path allocates nothing.
 */
export class NonceBuffer {
  readonly bytes = new Uint8Array(12);
  private readonly view = new DataView(this.bytes.buffer);

  set(counter: bigint): Uint8Array {
    assertCounter(counter);
    this.view.setBigUint64(4, counter, true);
    return this.bytes;
  }
}
