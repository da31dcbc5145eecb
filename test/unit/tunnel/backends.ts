/** Shared by the tunnel tests: every crypto backend, loaded explicitly, and hex helpers. */
import { type CryptoBackend, loadCrypto } from '../../../src/tunnel/crypto.js';

export const sodiumNative: CryptoBackend = await loadCrypto('sodium-native');
export const libsodium: CryptoBackend = await loadCrypto('libsodium-wrappers');
export const opensslNative: CryptoBackend = await loadCrypto('openssl-native');
export const backends: readonly CryptoBackend[] = [sodiumNative, libsodium, opensslNative];

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

export function unhex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'hex'));
}
