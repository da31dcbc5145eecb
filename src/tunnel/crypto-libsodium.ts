/**
 * CryptoBackend over libsodium-wrappers (libsodium compiled to WebAssembly): the portable fallback
 * when the sodium-native prebuild cannot load. Its API returns fresh arrays, so results are copied
 * into the caller's buffers and secret temporaries are zeroed; slower, byte-identical.
 */
import sodium from 'libsodium-wrappers';
import { AoegwError } from '../errors.js';
import { type CryptoBackend, DH_LEN, type HashInput, type X25519KeyPair, XNONCE_LEN } from './crypto.js';
import {
  assertBlake2bArgs,
  assertLength,
  assertSealArgs,
  checkOpenArgs,
  hashParts,
  NonceBuffer,
} from './crypto-args.js';
import { HmacBlake2b } from './hmac-blake2b.js';

type Encrypt = typeof sodium.crypto_aead_chacha20poly1305_ietf_encrypt;
type Decrypt = typeof sodium.crypto_aead_chacha20poly1305_ietf_decrypt;

function sealWith(
  encrypt: Encrypt,
  out: Uint8Array,
  outOff: number,
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array | null,
  pt: Uint8Array,
  ptOff: number,
  ptLen: number,
): number {
  assertSealArgs(out, outOff, key, pt, ptOff, ptLen);
  const c = encrypt(pt.subarray(ptOff, ptOff + ptLen), ad, null, nonce, key);
  out.set(c, outOff);
  return c.length;
}

function openWith(
  decrypt: Decrypt,
  out: Uint8Array,
  outOff: number,
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array | null,
  ct: Uint8Array,
  ctOff: number,
  ctLen: number,
): number {
  const ptLen = checkOpenArgs(out, outOff, key, ct, ctOff, ctLen);
  if (ptLen < 0) return -1;
  let m: Uint8Array;
  try {
    // Arguments are validated above, so a throw here means the tag did not verify.
    m = decrypt(null, ct.subarray(ctOff, ctOff + ctLen), ad, nonce, key);
  } catch {
    // Same observable result as native libsodium, which zeroes m when the tag does not verify.
    out.fill(0, outOff, outOff + ptLen);
    return -1;
  }
  out.set(m, outOff);
  sodium.memzero(m);
  return ptLen;
}

export async function createLibsodiumBackend(): Promise<CryptoBackend> {
  await sodium.ready;
  const nonce = new NonceBuffer();

  const blake2bParts = (out: Uint8Array, parts: readonly Uint8Array[], key?: Uint8Array): void => {
    let h: Uint8Array;
    if (parts.length === 1) {
      h = sodium.crypto_generichash(out.length, parts[0]!, key ?? null);
    } else {
      const state = sodium.crypto_generichash_init(key ?? null, out.length);
      for (const p of parts) sodium.crypto_generichash_update(state, p);
      h = sodium.crypto_generichash_final(state, out.length);
    }
    out.set(h);
    // Hash outputs are often keys (HMAC inner state, HKDF outputs).
    sodium.memzero(h);
  };
  const hmac = new HmacBlake2b(blake2bParts, (b) => sodium.memzero(b));

  const backend: CryptoBackend = {
    name: 'libsodium-wrappers',

    randomBytes(out: Uint8Array): void {
      const r = sodium.randombytes_buf(out.length);
      out.set(r);
      sodium.memzero(r);
    },

    memzero(buf: Uint8Array): void {
      sodium.memzero(buf);
    },

    equal(a: Uint8Array, b: Uint8Array): boolean {
      return a.length === b.length && sodium.memcmp(a, b);
    },

    x25519PublicKey(out: Uint8Array, secretKey: Uint8Array): void {
      assertLength(out, DH_LEN, 'X25519 public key output');
      assertLength(secretKey, DH_LEN, 'X25519 secret key');
      out.set(sodium.crypto_scalarmult_base(secretKey));
    },

    x25519KeyPair(secretKey?: Uint8Array): X25519KeyPair {
      const sk = new Uint8Array(DH_LEN);
      if (secretKey === undefined) backend.randomBytes(sk);
      else {
        assertLength(secretKey, DH_LEN, 'X25519 secret key');
        sk.set(secretKey);
      }
      return { secretKey: sk, publicKey: sodium.crypto_scalarmult_base(sk) };
    },

    x25519(out: Uint8Array, secretKey: Uint8Array, publicKey: Uint8Array): void {
      assertLength(out, DH_LEN, 'X25519 output');
      assertLength(secretKey, DH_LEN, 'X25519 secret key');
      assertLength(publicKey, DH_LEN, 'X25519 public key');
      let shared: Uint8Array;
      try {
        // libsodium refuses ("weak public key") when the shared secret is all zeros.
        shared = sodium.crypto_scalarmult(secretKey, publicKey);
      } catch (cause) {
        sodium.memzero(out);
        throw new AoegwError('ERR_CRYPTO', 'X25519 produced an all-zero shared secret', { cause });
      }
      out.set(shared);
      sodium.memzero(shared);
      if (sodium.is_zero(out)) {
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
      return sealWith(
        sodium.crypto_aead_chacha20poly1305_ietf_encrypt,
        out,
        outOff,
        key,
        nonce.set(counter),
        ad,
        pt,
        ptOff,
        ptLen,
      );
    },

    open(out, outOff, key, counter, ad, ct, ctOff, ctLen): number {
      return openWith(
        sodium.crypto_aead_chacha20poly1305_ietf_decrypt,
        out,
        outOff,
        key,
        nonce.set(counter),
        ad,
        ct,
        ctOff,
        ctLen,
      );
    },

    xseal(out, outOff, key, xnonce, ad, pt, ptOff, ptLen): number {
      assertLength(xnonce, XNONCE_LEN, 'XChaCha20 nonce');
      return sealWith(
        sodium.crypto_aead_xchacha20poly1305_ietf_encrypt,
        out,
        outOff,
        key,
        xnonce,
        ad,
        pt,
        ptOff,
        ptLen,
      );
    },

    xopen(out, outOff, key, xnonce, ad, ct, ctOff, ctLen): number {
      assertLength(xnonce, XNONCE_LEN, 'XChaCha20 nonce');
      return openWith(
        sodium.crypto_aead_xchacha20poly1305_ietf_decrypt,
        out,
        outOff,
        key,
        xnonce,
        ad,
        ct,
        ctOff,
        ctLen,
      );
    },
  };
  return backend;
}
