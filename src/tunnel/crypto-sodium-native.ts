/**
 * CryptoBackend over sodium-native: libsodium called in place on the caller's buffers. openssl-native
 * is this backend with its ChaCha20-Poly1305 replaced; this one is the data path's fallback when our
 * addon's OpenSSL AEAD is unavailable. The only per-call allocations are subarray views.
 */
import sodium from 'sodium-native';
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

type AeadFn = typeof sodium.crypto_aead_chacha20poly1305_ietf_encrypt;

function sealWith(
  encrypt: AeadFn,
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
  const c = out.subarray(outOff, outOff + ptLen + TAG_LEN);
  const m = pt.subarray(ptOff, ptOff + ptLen);
  return encrypt(c, m, ad, null, nonce, key);
}

type AeadOpenFn = typeof sodium.crypto_aead_chacha20poly1305_ietf_decrypt;

function openWith(
  decrypt: AeadOpenFn,
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
  try {
    // All arguments were validated above, so the only possible throw is a failed tag check.
    return decrypt(
      out.subarray(outOff, outOff + ptLen),
      null,
      ct.subarray(ctOff, ctOff + ctLen),
      ad,
      nonce,
      key,
    );
  } catch {
    return -1;
  }
}

export function createSodiumNativeBackend(): CryptoBackend {
  const nonce = new NonceBuffer();
  const blake2bParts = (out: Uint8Array, parts: readonly Uint8Array[]): void => {
    sodium.crypto_generichash_batch(out, parts);
  };
  const hmac = new HmacBlake2b(blake2bParts, (b) => sodium.sodium_memzero(b));

  const backend: CryptoBackend = {
    name: 'sodium-native',

    randomBytes(out: Uint8Array): void {
      sodium.randombytes_buf(out);
    },

    memzero(buf: Uint8Array): void {
      sodium.sodium_memzero(buf);
    },

    equal(a: Uint8Array, b: Uint8Array): boolean {
      return a.length === b.length && sodium.sodium_memcmp(a, b);
    },

    x25519PublicKey(out: Uint8Array, secretKey: Uint8Array): void {
      assertLength(out, DH_LEN, 'X25519 public key output');
      assertLength(secretKey, DH_LEN, 'X25519 secret key');
      sodium.crypto_scalarmult_base(out, secretKey);
    },

    x25519KeyPair(secretKey?: Uint8Array): X25519KeyPair {
      const sk = new Uint8Array(DH_LEN);
      if (secretKey === undefined) sodium.randombytes_buf(sk);
      else {
        assertLength(secretKey, DH_LEN, 'X25519 secret key');
        sk.set(secretKey);
      }
      const pk = new Uint8Array(DH_LEN);
      sodium.crypto_scalarmult_base(pk, sk);
      return { secretKey: sk, publicKey: pk };
    },

    x25519(out: Uint8Array, secretKey: Uint8Array, publicKey: Uint8Array): void {
      assertLength(out, DH_LEN, 'X25519 output');
      assertLength(secretKey, DH_LEN, 'X25519 secret key');
      assertLength(publicKey, DH_LEN, 'X25519 public key');
      try {
        // libsodium returns -1 (sodium-native throws) when the shared secret is all zeros.
        sodium.crypto_scalarmult(out, secretKey, publicKey);
      } catch (cause) {
        sodium.sodium_memzero(out);
        throw new AoegwError('ERR_CRYPTO', 'X25519 produced an all-zero shared secret', { cause });
      }
      // Belt and braces: do not depend on the library version for the low-order check.
      if (sodium.sodium_is_zero(out)) {
        throw new AoegwError('ERR_CRYPTO', 'X25519 produced an all-zero shared secret');
      }
    },

    blake2b(out: Uint8Array, input: HashInput, key?: Uint8Array): void {
      assertBlake2bArgs(out, key);
      if (key === undefined) sodium.crypto_generichash_batch(out, hashParts(input));
      else sodium.crypto_generichash_batch(out, hashParts(input), key);
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
