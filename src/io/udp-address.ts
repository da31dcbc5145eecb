/**
 * UDP endpoint addresses in the fixed 24-byte slot layout the native addon reads and writes
 * (no per-datagram objects): [0] family 4|6, [1] reserved, [2..3] port big-endian,
 * [4..19] address (IPv4 in the first 4 bytes), [20..23] IPv6 scope id little-endian.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { AoegwError } from '../errors.js';

export const ADDR_SLOT = 24;

export interface UdpEndpoint {
  address: string;
  port: number;
}

export function writeUdpAddress(out: Uint8Array, off: number, ep: UdpEndpoint): void {
  out.fill(0, off, off + ADDR_SLOT);
  if (!Number.isInteger(ep.port) || ep.port < 0 || ep.port > 65535) {
    throw new AoegwError('ERR_BIND', `port ${ep.port} is not 0..65535`);
  }
  out[off + 2] = ep.port >> 8;
  out[off + 3] = ep.port & 0xff;
  if (isIPv4(ep.address)) {
    out[off] = 4;
    const parts = ep.address.split('.');
    for (let i = 0; i < 4; i++) out[off + 4 + i] = Number(parts[i]);
    return;
  }
  const [addr, scope] = ep.address.split('%');
  if (!addr || !isIPv6(addr))
    throw new AoegwError('ERR_BIND', `'${ep.address}' is not an IPv4 or IPv6 address`);
  out[off] = 6;
  const groups = expandIPv6(addr);
  for (let i = 0; i < 8; i++) {
    out[off + 4 + 2 * i] = groups[i]! >> 8;
    out[off + 5 + 2 * i] = groups[i]! & 0xff;
  }
  const sc = scope && /^\d+$/.test(scope) ? Number(scope) : 0;
  out[off + 20] = sc & 0xff;
  out[off + 21] = (sc >>> 8) & 0xff;
  out[off + 22] = (sc >>> 16) & 0xff;
  out[off + 23] = (sc >>> 24) & 0xff;
}

export function encodeUdpAddress(ep: UdpEndpoint): Buffer {
  const b = Buffer.alloc(ADDR_SLOT);
  writeUdpAddress(b, 0, ep);
  return b;
}

export function readUdpAddress(buf: Uint8Array, off: number): UdpEndpoint {
  const port = (buf[off + 2]! << 8) | buf[off + 3]!;
  if (buf[off] === 4) {
    return { address: `${buf[off + 4]}.${buf[off + 5]}.${buf[off + 6]}.${buf[off + 7]}`, port };
  }
  if (buf[off] === 6) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++)
      groups.push(((buf[off + 4 + 2 * i]! << 8) | buf[off + 5 + 2 * i]!).toString(16));
    return { address: compressIPv6(groups), port };
  }
  return { address: '', port: 0 };
}

/** Constant-shape comparison of two address slots (family, port, address, scope). */
export function sameUdpAddress(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < ADDR_SLOT; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

function expandIPv6(addr: string): number[] {
  let text = addr;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const p = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, -v4[1]!.length)}${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => Number.parseInt(g, 16));
}

function compressIPv6(groups: string[]): string {
  // Longest run of zero groups becomes '::' (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
