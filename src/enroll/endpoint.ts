/**
 * Endpoints a token carries: "IPv4:PORT" or "[IPv6]:PORT", literal addresses only (the enrolling
 * side must not resolve names an inviter wrote), no IPv6 zone (meaningless on another host), no
 * wildcard address and no port 0 (neither can be sent to).
 */
import { isIPv4, isIPv6 } from 'node:net';

export const ENDPOINT_RULE = '"IPv4:PORT" or "[IPv6]:PORT" with a literal, non-wildcard address';

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** True for 0.0.0.0 and :: (any spelling): a listen address, never a destination. */
export function isWildcardAddress(address: string): boolean {
  if (isIPv4(address)) return address === '0.0.0.0';
  return isIPv6(address) && /^[0:]+$/.test(address);
}

export function parseEndpoint(s: string): Endpoint | null {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(s) ?? /^([0-9.]+):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const address = m[1]!;
  const port = Number(m[2]);
  const v6 = s.startsWith('[');
  if (v6 ? !isIPv6(address) : !isIPv4(address)) return null;
  if (isWildcardAddress(address) || port < 1 || port > 65535 || m[2] !== String(port)) return null;
  return { address, port };
}

export function formatEndpoint(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}
