/**
 * Handshake rate limiting and load detection (docs/protocol.md, "Rate limits and load"). Both only
 * ever see messages that already passed the mac1 check, and neither does any cryptography.
 */
import { AoegwError } from '../errors.js';
import {
  DEFAULT_HANDSHAKE_BURST,
  DEFAULT_HANDSHAKE_RATE,
  DEFAULT_LOAD_THRESHOLD,
  DEFAULT_RATE_TABLE_SIZE,
  UNDER_LOAD_HOLD,
} from './constants.js';

/** Length of the io layer's UDP address slot (src/io/udp-address.ts ADDR_SLOT; no import: core stays io-free). */
const UDP_SLOT_LEN = 24;

export interface RateLimitOptions {
  /** Tokens added per second (sustained handshake messages per second per source). */
  readonly ratePerSecond?: number;
  /** Bucket size: messages a quiet source may send at once. */
  readonly burst?: number;
  /** Most sources tracked; beyond it the least recently seen source is forgotten. */
  readonly maxEntries?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Per-source token buckets in a bounded table. A forgotten source starts again with a full bucket,
 * which is what a source that was idle long enough to be refilled would have anyway; entries whose
 * bucket is full are the ones swept first. Keys are opaque strings (see sourceKey()).
 */
export class TokenBucketLimiter {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly maxEntries: number;
  // Map order is insertion order; touching an entry re-inserts it, so the first key is the LRU one.
  private readonly buckets = new Map<string, Bucket>();

  constructor(opts: RateLimitOptions = {}) {
    this.ratePerSecond = opts.ratePerSecond ?? DEFAULT_HANDSHAKE_RATE;
    this.burst = opts.burst ?? DEFAULT_HANDSHAKE_BURST;
    this.maxEntries = opts.maxEntries ?? DEFAULT_RATE_TABLE_SIZE;
    if (!(this.ratePerSecond > 0) || !(this.burst >= 1) || !(this.maxEntries >= 1)) {
      throw new AoegwError(
        'ERR_TUNNEL_CONFIG',
        'rate limit: ratePerSecond > 0, burst >= 1 and maxEntries >= 1 required',
      );
    }
  }

  /** Number of sources tracked. */
  get size(): number {
    return this.buckets.size;
  }

  /** Take one token for `key` at time `now` (ms); false when its bucket is empty. */
  allow(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxEntries) this.makeRoom(now);
      b = { tokens: this.burst, at: now };
    } else {
      this.buckets.delete(key);
      // A clock that went backwards refills nothing (and does not drain either).
      const elapsed = Math.max(0, now - b.at);
      b.tokens = Math.min(this.burst, b.tokens + (elapsed * this.ratePerSecond) / 1000);
      b.at = now;
    }
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Drop the entries whose bucket has refilled completely (they carry no information). */
  sweep(now: number): void {
    const full = (this.burst * 1000) / this.ratePerSecond;
    for (const [key, b] of this.buckets) {
      if (now - b.at >= full) this.buckets.delete(key);
    }
  }

  clear(): void {
    this.buckets.clear();
  }

  private makeRoom(now: number): void {
    this.sweep(now);
    while (this.buckets.size >= this.maxEntries) {
      const oldest = this.buckets.keys().next();
      if (oldest.done) break;
      this.buckets.delete(oldest.value);
    }
  }
}

/**
 * The rate-limit key of a source address: its bytes as a latin1 string. For the io layer's 24-byte
 * UDP address slot ([0] family, [2..3] port, [4..19] address, [20..23] scope), `ignorePort` keys by
 * host only, so one host cannot escape its bucket by changing source ports. In that mode an IPv6
 * source is keyed by its /64 (and scope), as WireGuard does: one host or LAN normally holds a
 * whole /64 and can pick any of its 2^64 addresses, so a /128 key would give it unlimited buckets.
 * IPv4 stays keyed by the full /32.
 */
export function sourceKey(addr: Uint8Array, off: number, len: number, ignorePort = false): string {
  const v6Prefix = ignorePort && len === UDP_SLOT_LEN && addr[off] === 6;
  let s = '';
  for (let i = 0; i < len; i++) {
    if (ignorePort && (i === 2 || i === 3)) continue;
    // Bytes 12..19 are the interface identifier (the low 64 bits) of an IPv6 address.
    if (v6Prefix && i >= 12 && i < 20) continue;
    s += String.fromCharCode(addr[off + i]!);
  }
  return s;
}

/**
 * "Under load" detector: counts handshake messages (with a valid mac1) per one-second bucket; at
 * `threshold` or more the endpoint is under load until UNDER_LOAD_HOLD after the last such second.
 * The driver can also force the state (e.g. from its own queue depth) with `force`.
 */
export class LoadMonitor {
  threshold: number;
  /** Set by the driver: true forces "under load", false forces "not", null lets the counter decide. */
  force: boolean | null = null;
  private windowStart = Number.NEGATIVE_INFINITY;
  private count = 0;
  private overloadedAt = Number.NEGATIVE_INFINITY;

  constructor(threshold = DEFAULT_LOAD_THRESHOLD) {
    this.threshold = threshold;
  }

  /** Count one handshake message at `now` and say whether we are under load. */
  record(now: number): boolean {
    if (!(now - this.windowStart < 1000) || now < this.windowStart) {
      this.windowStart = now;
      this.count = 0;
    }
    this.count++;
    if (this.count > this.threshold) this.overloadedAt = now;
    return this.underLoad(now);
  }

  underLoad(now: number): boolean {
    if (this.force !== null) return this.force;
    return now - this.overloadedAt < UNDER_LOAD_HOLD && now >= this.overloadedAt;
  }

  /** Handshake messages counted in the current one-second window. */
  get recent(): number {
    return this.count;
  }
}
