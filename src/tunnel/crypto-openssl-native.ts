/**
 * CryptoBackend whose ChaCha20-Poly1305 seal/open run in our addon over the process's OpenSSL
 * (native/aead.c: EVP, faster than libsodium's ChaCha20 at the tunnel's sizes; docs/benchmarks.md
 * section (f)). Everything else — XChaCha20-Poly1305 (OpenSSL has none), X25519, BLAKE2b, random
 * bytes, memzero, equal — is sodium-native's. Created only when the addon's AEAD is there and passes
 * a self-test; otherwise it throws ERR_CRYPTO_UNAVAILABLE and loadCrypto falls back.
 */
import { AoegwError } from '../errors.js';
import { fromNative, type NativeAead, nativeAddon } from '../io/native.js';
import type { CryptoBackend } from './crypto.js';
import { createSodiumNativeBackend } from './crypto-sodium-native.js';

const unhex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

/** RFC 8439 section 2.8.2: the AEAD_CHACHA20_POLY1305 test vector. */
const RFC8439_KEY = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
const RFC8439_NONCE = unhex('070000004041424344454647');
const RFC8439_AD = unhex('50515253c0c1c2c3c4c5c6c7');
const RFC8439_PT = new TextEncoder().encode(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);
const RFC8439_CT_TAG = unhex(
  'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
    '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
    '3ff4def08e4b7a9de576d26586cec64b6116' +
    '1ae10b594f09e26a7e902ecbd0600691',
);

/**
 * Why the native AEAD must not be used, or null: the RFC 8439 vector (seal and open), a tampered tag
 * rejected with the plaintext range zeroed, and the Noise nonce (counter) giving sodium-native's bytes.
 */
export function selfTestFailure(seal: NativeAead, open: NativeAead, sodium: CryptoBackend): string | null {
  const n = RFC8439_PT.length;
  const ct = new Uint8Array(n + 16);
  if (seal(ct, 0, RFC8439_KEY, RFC8439_NONCE, RFC8439_AD, RFC8439_PT, 0, n) !== ct.length) {
    return 'seal returned a wrong length';
  }
  if (!sodium.equal(ct, RFC8439_CT_TAG)) return 'seal does not give the RFC 8439 2.8.2 ciphertext';
  const pt = new Uint8Array(n);
  if (
    open(pt, 0, RFC8439_KEY, RFC8439_NONCE, RFC8439_AD, ct, 0, ct.length) !== n ||
    !sodium.equal(pt, RFC8439_PT)
  ) {
    return 'open does not recover the RFC 8439 2.8.2 plaintext';
  }
  ct[n + 15]! ^= 1;
  pt.fill(0xee);
  if (open(pt, 0, RFC8439_KEY, RFC8439_NONCE, RFC8439_AD, ct, 0, ct.length) !== -1) {
    return 'open accepts a tampered tag';
  }
  if (pt.some((b) => b !== 0)) return 'a rejected open leaves bytes in the output';
  const counter = 0x0102_0304_0506_0708n;
  const ours = new Uint8Array(n + 16);
  const theirs = new Uint8Array(n + 16);
  seal(ours, 0, RFC8439_KEY, counter, RFC8439_AD, RFC8439_PT, 0, n);
  sodium.seal(theirs, 0, RFC8439_KEY, counter, RFC8439_AD, RFC8439_PT, 0, n);
  if (!sodium.equal(ours, theirs)) return "seal with a counter does not match sodium-native's nonce";
  return null;
}

export function createOpenSslNativeBackend(): CryptoBackend {
  const sodium = createSodiumNativeBackend();
  let aead: { seal: NativeAead; open: NativeAead };
  try {
    const addon = nativeAddon();
    const info = addon.aeadInfo();
    if (!info.available || !addon.aeadSeal || !addon.aeadOpen) throw new Error(info.why ?? 'no aeadSeal');
    aead = { seal: addon.aeadSeal, open: addon.aeadOpen };
    const why = selfTestFailure(aead.seal, aead.open, sodium);
    if (why !== null) throw new Error(`self-test: ${why}`);
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new AoegwError('ERR_CRYPTO_UNAVAILABLE', `OpenSSL ChaCha20-Poly1305 not usable: ${why}`, { cause });
  }
  const { seal: sealFn, open: openFn } = aead;
  return {
    ...sodium,
    name: 'openssl-native',
    // The addon checks every argument as crypto-args.ts does; its errors carry code ERR_CRYPTO.
    seal(out, outOff, key, counter, ad, pt, ptOff, ptLen): number {
      try {
        return sealFn(out, outOff, key, counter, ad, pt, ptOff, ptLen);
      } catch (e) {
        throw fromNative(e);
      }
    },
    open(out, outOff, key, counter, ad, ct, ctOff, ctLen): number {
      try {
        return openFn(out, outOff, key, counter, ad, ct, ctOff, ctLen);
      } catch (e) {
        throw fromNative(e);
      }
    },
  };
}
