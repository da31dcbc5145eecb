/**
 * CryptoBackend over libsodium-wrappers (libsodium compiled to WebAssembly): the portable fallback
 * when the sodium-native prebuild cannot load. It calls the module's raw functions on one arena in
 * the WASM heap that is zeroed after every call (see RawSodium); slower, byte-identical.
 */
import sodium from 'libsodium-wrappers';
import { AoegwError } from '../errors.js';
import {
  type CryptoBackend,
  DH_LEN,
  type HashInput,
  TAG_LEN,
  type X25519KeyPair,
  XNONCE_LEN,
} from './crypto.js';
import {
  assertBlake2bArgs,
  assertLength,
  assertSealArgs,
  checkOpenArgs,
  hashParts,
  NonceBuffer,
} from './crypto-args.js';
import { HmacBlake2b } from './hmac-blake2b.js';

/**
 * The raw Emscripten module inside libsodium-wrappers. Its high-level API copies every argument
 * (keys included) into the WebAssembly heap with malloc and releases it with free() without
 * zeroing, so keys and plaintext would linger in freed heap memory until reused. This backend
 * therefore calls the raw functions on one arena it allocates once and zeroes after every call:
 * secrets are in the WASM heap only for the duration of one call.
 */
interface RawSodium {
  HEAPU8: Uint8Array;
  _malloc(n: number): number;
  _free(p: number): void;
  _crypto_aead_chacha20poly1305_ietf_encrypt(...a: (number | null)[]): number;
  _crypto_aead_chacha20poly1305_ietf_decrypt(...a: (number | null)[]): number;
  _crypto_aead_xchacha20poly1305_ietf_encrypt(...a: (number | null)[]): number;
  _crypto_aead_xchacha20poly1305_ietf_decrypt(...a: (number | null)[]): number;
  _crypto_generichash_init(state: number, key: number, keyLen: number, outLen: number): number;
  _crypto_generichash_update(state: number, input: number, lenLo: number, lenHi: number): number;
  _crypto_generichash_final(state: number, out: number, outLen: number): number;
  _crypto_generichash_statebytes(): number;
  _crypto_scalarmult(q: number, n: number, p: number): number;
  _crypto_scalarmult_base(q: number, n: number): number;
  _randombytes_buf(buf: number, n: number): void;
}

/** Bytes of message data copied into the arena per step (hash input is streamed through it). */
const MSG_CAP = 65536 + 64;
const AD_CAP = 1024;

/**
 * Fixed regions in one malloc'd block: key (64), nonce (24), two X25519 points (32 each), hash
 * output (64), hash state (64-byte aligned), associated data, message (in place for AEAD).
 */
class WasmArena {
  private base: number;
  readonly key: number;
  readonly nonce: number;
  readonly p: number;
  readonly q: number;
  readonly hout: number;
  readonly state: number;
  readonly stateLen: number;
  readonly ad: number;
  readonly msg: number;
  readonly size: number;

  constructor(private readonly raw: RawSodium) {
    this.stateLen = raw._crypto_generichash_statebytes();
    const layout = 64 + 24 + 32 + 32 + 64;
    // +64 so the state can be aligned to 64 bytes whatever malloc returns.
    this.size = 64 + layout + this.stateLen + 64 + AD_CAP + MSG_CAP;
    this.base = raw._malloc(this.size);
    if (this.base === 0)
      throw new AoegwError('ERR_CRYPTO_UNAVAILABLE', 'libsodium: cannot allocate its arena');
    let o = this.base;
    this.key = o;
    o += 64;
    this.nonce = o;
    o += 24;
    this.p = o;
    o += 32;
    this.q = o;
    o += 32;
    this.hout = o;
    o += 64;
    o = (o + 63) & ~63;
    this.state = o;
    o += this.stateLen;
    this.ad = o;
    o += AD_CAP;
    this.msg = o;
    this.heap().fill(0, this.base, this.base + this.size);
  }

  /** The heap view now (it is replaced when the WASM memory grows). */
  heap(): Uint8Array {
    return this.raw.HEAPU8;
  }

  put(at: number, src: Uint8Array, off = 0, len = src.length - off): void {
    this.heap().set(src.subarray(off, off + len), at);
  }

  get(at: number, dst: Uint8Array, dstOff: number, len: number): void {
    dst.set(this.heap().subarray(at, at + len), dstOff);
  }

  /** Zero `len` bytes at `at` (a plain store loop over WASM memory cannot be optimised away). */
  wipe(at: number, len: number): void {
    this.heap().fill(0, at, at + len);
  }

  /** Zero every region that may hold secrets (key, points, hash output and state). */
  wipeSmall(): void {
    this.wipe(this.key, this.ad - this.key);
  }
}

export async function createLibsodiumBackend(): Promise<CryptoBackend> {
  await sodium.ready;
  const raw = (sodium as unknown as { libsodium: RawSodium }).libsodium;
  const arena = new WasmArena(raw);
  const nonce = new NonceBuffer();

  const blake2bParts = (out: Uint8Array, parts: readonly Uint8Array[], key?: Uint8Array): void => {
    const a = arena;
    try {
      if (key !== undefined) a.put(a.key, key);
      if (
        raw._crypto_generichash_init(a.state, key !== undefined ? a.key : 0, key?.length ?? 0, out.length) !==
        0
      )
        throw new AoegwError('ERR_CRYPTO', 'BLAKE2b init failed');
      for (const part of parts) {
        for (let off = 0; off < part.length; off += MSG_CAP) {
          const n = Math.min(MSG_CAP, part.length - off);
          a.put(a.msg, part, off, n);
          raw._crypto_generichash_update(a.state, a.msg, n, 0);
          // Hash inputs are often keys (HMAC pads, HKDF chaining keys).
          a.wipe(a.msg, n);
        }
      }
      raw._crypto_generichash_final(a.state, a.hout, out.length);
      a.get(a.hout, out, 0, out.length);
    } finally {
      a.wipeSmall();
    }
  };
  const hmac = new HmacBlake2b(blake2bParts, (b) => sodium.memzero(b));

  /** One AEAD call in place on the arena: plaintext/ciphertext, ad, nonce and key copied in, then wiped. */
  const aead = (
    seal: boolean,
    x: boolean,
    out: Uint8Array,
    outOff: number,
    key: Uint8Array,
    npub: Uint8Array,
    ad: Uint8Array | null,
    input: Uint8Array,
    inOff: number,
    inLen: number,
  ): number => {
    const a = arena;
    const adLen = ad?.length ?? 0;
    const outLen = seal ? inLen + TAG_LEN : inLen - TAG_LEN;
    if (adLen > AD_CAP || Math.max(inLen, outLen) > MSG_CAP) {
      throw new AoegwError('ERR_CRYPTO', `AEAD input too large for the libsodium fallback (${inLen} bytes)`);
    }
    try {
      a.put(a.key, key);
      a.put(a.nonce, npub);
      if (ad !== null) a.put(a.ad, ad);
      a.put(a.msg, input, inOff, inLen);
      const adPtr = ad !== null ? a.ad : 0;
      let rc: number;
      if (seal) {
        const f = x
          ? raw._crypto_aead_xchacha20poly1305_ietf_encrypt
          : raw._crypto_aead_chacha20poly1305_ietf_encrypt;
        rc = f(a.msg, null, a.msg, inLen, 0, adPtr, adLen, 0, null, a.nonce, a.key);
      } else {
        const f = x
          ? raw._crypto_aead_xchacha20poly1305_ietf_decrypt
          : raw._crypto_aead_chacha20poly1305_ietf_decrypt;
        rc = f(a.msg, null, null, a.msg, inLen, 0, adPtr, adLen, 0, a.nonce, a.key);
      }
      if (rc !== 0) {
        if (seal) throw new AoegwError('ERR_CRYPTO', 'AEAD seal failed');
        // Same observable result as native libsodium, which zeroes m when the tag does not verify.
        out.fill(0, outOff, outOff + outLen);
        return -1;
      }
      a.get(a.msg, out, outOff, outLen);
      return outLen;
    } finally {
      a.wipe(a.msg, Math.max(inLen, outLen));
      if (ad !== null) a.wipe(a.ad, adLen);
      a.wipeSmall();
    }
  };

  const isZero = (b: Uint8Array): boolean => {
    let acc = 0;
    for (let i = 0; i < b.length; i++) acc |= b[i]!;
    return acc === 0;
  };

  const backend: CryptoBackend = {
    name: 'libsodium-wrappers',

    randomBytes(out: Uint8Array): void {
      const a = arena;
      for (let off = 0; off < out.length; off += MSG_CAP) {
        const n = Math.min(MSG_CAP, out.length - off);
        raw._randombytes_buf(a.msg, n);
        a.get(a.msg, out, off, n);
        // Random bytes become ephemeral and static keys.
        a.wipe(a.msg, n);
      }
    },

    memzero(buf: Uint8Array): void {
      sodium.memzero(buf);
    },

    equal(a: Uint8Array, b: Uint8Array): boolean {
      if (a.length !== b.length) return false;
      // Constant time in JS: no early exit, so the heap never sees (possibly secret) operands.
      let d = 0;
      for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
      return d === 0;
    },

    x25519PublicKey(out: Uint8Array, secretKey: Uint8Array): void {
      assertLength(out, DH_LEN, 'X25519 public key output');
      assertLength(secretKey, DH_LEN, 'X25519 secret key');
      try {
        arena.put(arena.key, secretKey);
        raw._crypto_scalarmult_base(arena.q, arena.key);
        arena.get(arena.q, out, 0, DH_LEN);
      } finally {
        arena.wipeSmall();
      }
    },

    x25519KeyPair(secretKey?: Uint8Array): X25519KeyPair {
      const sk = new Uint8Array(DH_LEN);
      if (secretKey === undefined) backend.randomBytes(sk);
      else {
        assertLength(secretKey, DH_LEN, 'X25519 secret key');
        sk.set(secretKey);
      }
      const pk = new Uint8Array(DH_LEN);
      backend.x25519PublicKey(pk, sk);
      return { secretKey: sk, publicKey: pk };
    },

    x25519(out: Uint8Array, secretKey: Uint8Array, publicKey: Uint8Array): void {
      assertLength(out, DH_LEN, 'X25519 output');
      assertLength(secretKey, DH_LEN, 'X25519 secret key');
      assertLength(publicKey, DH_LEN, 'X25519 public key');
      let rc: number;
      try {
        arena.put(arena.key, secretKey);
        arena.put(arena.p, publicKey);
        // libsodium refuses (-1) when the shared secret is all zeros.
        rc = raw._crypto_scalarmult(arena.q, arena.key, arena.p);
        if (rc === 0) arena.get(arena.q, out, 0, DH_LEN);
      } finally {
        arena.wipeSmall();
      }
      if (rc !== 0 || isZero(out)) {
        sodium.memzero(out);
        throw new AoegwError('ERR_CRYPTO', 'X25519 produced an all-zero shared secret');
      }
    },

    blake2b(out: Uint8Array, input: HashInput, key?: Uint8Array): void {
      assertBlake2bArgs(out, key);
      blake2bParts(out, hashParts(input), key);
    },

    hmacBlake2b(out: Uint8Array, key: Uint8Array, data: HashInput): void {
      hmac.hmac(out, key, data);
    },

    hkdf(chainingKey, ikm, out1, out2, out3?): void {
      hmac.hkdf(chainingKey, ikm, out1, out2, out3);
    },

    seal(out, outOff, key, counter, ad, pt, ptOff, ptLen): number {
      assertSealArgs(out, outOff, key, pt, ptOff, ptLen);
      return aead(true, false, out, outOff, key, nonce.set(counter), ad, pt, ptOff, ptLen);
    },

    open(out, outOff, key, counter, ad, ct, ctOff, ctLen): number {
      if (checkOpenArgs(out, outOff, key, ct, ctOff, ctLen) < 0) return -1;
      return aead(false, false, out, outOff, key, nonce.set(counter), ad, ct, ctOff, ctLen);
    },

    xseal(out, outOff, key, xnonce, ad, pt, ptOff, ptLen): number {
      assertLength(xnonce, XNONCE_LEN, 'XChaCha20 nonce');
      assertSealArgs(out, outOff, key, pt, ptOff, ptLen);
      return aead(true, true, out, outOff, key, xnonce, ad, pt, ptOff, ptLen);
    },

    xopen(out, outOff, key, xnonce, ad, ct, ctOff, ctLen): number {
      assertLength(xnonce, XNONCE_LEN, 'XChaCha20 nonce');
      if (checkOpenArgs(out, outOff, key, ct, ctOff, ctLen) < 0) return -1;
      return aead(false, true, out, outOff, key, xnonce, ad, ct, ctOff, ctLen);
    },
  };
  return backend;
}
