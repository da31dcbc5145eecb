// sodium-native ships no type declarations. This declares only the functions the tunnel's crypto
// backend calls, with the signatures of sodium-native 5 (index.js). Failures throw.
declare module 'sodium-native' {
  type Bytes = Uint8Array;
  interface SodiumNative {
    randombytes_buf(buf: Bytes): void;
    sodium_memzero(buf: Bytes): void;
    /** Constant-time; both buffers must have the same length. */
    sodium_memcmp(a: Bytes, b: Bytes): boolean;
    sodium_is_zero(buf: Bytes, length?: number): boolean;
    crypto_scalarmult_base(q: Bytes, n: Bytes): void;
    crypto_scalarmult(q: Bytes, n: Bytes, p: Bytes): void;
    crypto_generichash(out: Bytes, input: Bytes, key?: Bytes): void;
    crypto_generichash_batch(out: Bytes, batch: readonly Bytes[], key?: Bytes): void;
    crypto_aead_chacha20poly1305_ietf_encrypt(
      c: Bytes,
      m: Bytes,
      ad: Bytes | null,
      nsec: null,
      npub: Bytes,
      k: Bytes,
    ): number;
    crypto_aead_chacha20poly1305_ietf_decrypt(
      m: Bytes,
      nsec: null,
      c: Bytes,
      ad: Bytes | null,
      npub: Bytes,
      k: Bytes,
    ): number;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
      c: Bytes,
      m: Bytes,
      ad: Bytes | null,
      nsec: null,
      npub: Bytes,
      k: Bytes,
    ): number;
    crypto_aead_xchacha20poly1305_ietf_decrypt(
      m: Bytes,
      nsec: null,
      c: Bytes,
      ad: Bytes | null,
      npub: Bytes,
      k: Bytes,
    ): number;
  }
  const sodium: SodiumNative;
  export default sodium;
}
