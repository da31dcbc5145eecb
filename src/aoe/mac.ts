import { MAC_SIZE } from './constants.js';

/**
 * MAC helpers. The hot path keeps MACs as 6 raw bytes; the friendly layer uses lowercase
 * 'aa:bb:cc:dd:ee:ff' strings because they compare with === and read well in logs and tests.
 */

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

const HEX = '0123456789abcdef';

export function formatMac(b: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < MAC_SIZE; i++) {
    const v = b[off + i] ?? 0;
    if (i > 0) s += ':';
    s += HEX[v >>> 4]! + HEX[v & 0x0f]!;
  }
  return s;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function isMacString(s: unknown): s is string {
  return typeof s === 'string' && MAC_RE.test(s);
}

/** Writes the 6 bytes of `s` at out[off]; returns false (writing nothing) if `s` is not a MAC. */
export function parseMacInto(s: string, out: Uint8Array, off = 0): boolean {
  if (!isMacString(s)) return false;
  for (let i = 0; i < MAC_SIZE; i++) out[off + i] = Number.parseInt(s.slice(i * 3, i * 3 + 2), 16);
  return true;
}

/** Fresh 6-byte Buffer for a MAC string, or null if it is not one. */
export function macFromString(s: string): Buffer | null {
  const b = Buffer.alloc(MAC_SIZE);
  return parseMacInto(s, b) ? b : null;
}

export function isBroadcastMac(b: Uint8Array, off = 0): boolean {
  for (let i = 0; i < MAC_SIZE; i++) if (b[off + i] !== 0xff) return false;
  return true;
}
