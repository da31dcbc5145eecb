/** mac1/mac2/cookie primitives, the token-bucket rate limiter and the load monitor. */
import { describe, expect, it } from 'vitest';
import {
  COOKIE_REPLY_WINDOW,
  COOKIE_SECRET_LIFETIME,
  LABEL_MAC1,
  UNDER_LOAD_HOLD,
} from '../../../src/tunnel/constants.js';
import { CookieChecker, CookieMaker, deriveLabelKey } from '../../../src/tunnel/cookie.js';
import {
  COOKIE_REPLY_LEN,
  INIT_LEN,
  INIT_MAC1,
  INIT_MAC2,
  INIT_SENDER,
  MSG_INITIATION,
  readU32,
  writeHeader,
  writeU32,
} from '../../../src/tunnel/messages.js';
import { LoadMonitor, sourceKey, TokenBucketLimiter } from '../../../src/tunnel/ratelimit.js';
import { backends, hex } from './backends.js';
import { addr } from './harness.js';

describe.each(backends.map((b) => [b.name, b] as const))('cookies on %s', (_n, crypto) => {
  const responder = crypto.x25519KeyPair();
  const T = 5_000_000;

  function initiation(): Uint8Array {
    const m = new Uint8Array(INIT_LEN);
    crypto.randomBytes(m);
    writeHeader(m, 0, MSG_INITIATION);
    writeU32(m, INIT_SENDER, 0x01020304);
    return m;
  }

  it('mac1 is keyed BLAKE2b-128 over the message up to mac1 with BLAKE2b-256(label || key)', () => {
    const m = initiation();
    new CookieMaker(crypto, responder.publicKey).stamp(m, INIT_MAC1, T);
    const key = new Uint8Array(32);
    crypto.blake2b(key, [LABEL_MAC1, responder.publicKey]);
    expect(hex(deriveLabelKey(crypto, LABEL_MAC1, responder.publicKey))).toBe(hex(key));
    const mac = new Uint8Array(16);
    crypto.blake2b(mac, m.subarray(0, INIT_MAC1), key);
    expect(hex(m.subarray(INIT_MAC1, INIT_MAC2))).toBe(hex(mac));
    // Without a cookie, mac2 is zero.
    expect(m.subarray(INIT_MAC2).every((x) => x === 0)).toBe(true);
    const checker = new CookieChecker(crypto, responder.publicKey, 24);
    expect(checker.checkMac1(m, INIT_MAC1)).toBe(true);
    m[5]! ^= 1;
    expect(checker.checkMac1(m, INIT_MAC1)).toBe(false);
  });

  it('a cookie reply older than COOKIE_REPLY_WINDOW is refused and installs nothing', () => {
    const checker = new CookieChecker(crypto, responder.publicKey, 24);
    const maker = new CookieMaker(crypto, responder.publicKey);
    const m = initiation();
    maker.stamp(m, INIT_MAC1, T);
    const reply = new Uint8Array(COOKIE_REPLY_LEN);
    checker.writeReply(reply, readU32(m, INIT_SENDER), m, INIT_MAC1, addr(5), 0, T);
    expect(maker.consumeReply(reply, T + COOKIE_REPLY_WINDOW + 1)).toBe(false);
    expect(maker.hasCookie(T + COOKIE_REPLY_WINDOW + 1)).toBe(false);
    // Within the window the same reply works.
    expect(maker.consumeReply(reply, T + COOKIE_REPLY_WINDOW)).toBe(true);
  });

  it('cookie reply → mac2 valid from that address only, until the secret rotates', () => {
    const checker = new CookieChecker(crypto, responder.publicKey, 24);
    const maker = new CookieMaker(crypto, responder.publicKey);
    const src = addr(5, 1234);
    const m = initiation();
    maker.stamp(m, INIT_MAC1, T);
    expect(checker.checkMac2(m, INIT_MAC2, src, 0, T)).toBe(false);
    const reply = new Uint8Array(COOKIE_REPLY_LEN);
    expect(checker.writeReply(reply, readU32(m, INIT_SENDER), m, INIT_MAC1, src, 0, T)).toBe(
      COOKIE_REPLY_LEN,
    );
    expect(readU32(reply, 4)).toBe(0x01020304);
    expect(maker.consumeReply(reply, T)).toBe(true);
    expect(maker.hasCookie(T)).toBe(true);
    const m2 = initiation();
    maker.stamp(m2, INIT_MAC1, T + 1);
    expect(checker.checkMac2(m2, INIT_MAC2, src, 0, T + 1)).toBe(true);
    expect(checker.checkMac2(m2, INIT_MAC2, addr(5, 1235), 0, T + 1)).toBe(false);
    // The checker's secret is COOKIE_SECRET_LIFETIME old: rotated, so the same mac2 is now refused.
    expect(checker.checkMac2(m2, INIT_MAC2, src, 0, T + COOKIE_SECRET_LIFETIME - 1)).toBe(true);
    expect(checker.checkMac2(m2, INIT_MAC2, src, 0, T + COOKIE_SECRET_LIFETIME)).toBe(false);
    expect(maker.hasCookie(T + COOKIE_SECRET_LIFETIME)).toBe(false);
  });

  it('a cookie reply is bound to the mac1 it answers and to the responder key', () => {
    const checker = new CookieChecker(crypto, responder.publicKey, 24);
    const maker = new CookieMaker(crypto, responder.publicKey);
    const m = initiation();
    maker.stamp(m, INIT_MAC1, T);
    const other = initiation();
    new CookieMaker(crypto, responder.publicKey).stamp(other, INIT_MAC1, T);
    const reply = new Uint8Array(COOKIE_REPLY_LEN);
    checker.writeReply(reply, 1, other, INIT_MAC1, addr(1), 0, T);
    expect(maker.consumeReply(reply, T)).toBe(false);
    const stranger = new CookieChecker(crypto, crypto.x25519KeyPair().publicKey, 24);
    stranger.writeReply(reply, 1, m, INIT_MAC1, addr(1), 0, T);
    expect(maker.consumeReply(reply, T)).toBe(false);
    checker.writeReply(reply, 1, m, INIT_MAC1, addr(1), 0, T);
    expect(maker.consumeReply(reply, T)).toBe(true);
    // Nothing outstanding any more.
    expect(maker.consumeReply(reply, T)).toBe(false);
  });
});

describe('TokenBucketLimiter', () => {
  it('allows a burst, then the sustained rate', () => {
    const l = new TokenBucketLimiter({ ratePerSecond: 10, burst: 3 });
    expect([1, 2, 3, 4].map(() => l.allow('a', 0))).toEqual([true, true, true, false]);
    expect(l.allow('a', 99)).toBe(false);
    expect(l.allow('a', 100)).toBe(true);
    expect(l.allow('a', 100)).toBe(false);
    expect(l.allow('b', 100)).toBe(true);
    // Refill caps at the burst.
    expect([1, 2, 3, 4].map(() => l.allow('a', 100_000))).toEqual([true, true, true, false]);
  });

  it('a clock going backwards neither refills nor throws', () => {
    const l = new TokenBucketLimiter({ ratePerSecond: 1, burst: 1 });
    expect(l.allow('a', 1000)).toBe(true);
    expect(l.allow('a', 0)).toBe(false);
  });

  it('bounded table: sweeps full buckets first, then forgets the least recently seen', () => {
    const l = new TokenBucketLimiter({ ratePerSecond: 1, burst: 2, maxEntries: 3 });
    l.allow('a', 0);
    l.allow('b', 0);
    l.allow('c', 0);
    expect(l.size).toBe(3);
    l.allow('a', 10); // a is now the most recently seen
    l.allow('d', 20);
    expect(l.size).toBe(3);
    // b was forgotten: it starts again with a full bucket.
    expect([l.allow('b', 20), l.allow('b', 20), l.allow('b', 20)]).toEqual([true, true, false]);
    // After the buckets refill completely they are swept.
    l.sweep(10_000);
    expect(l.size).toBe(0);
  });

  it('rejects nonsense options', () => {
    expect(() => new TokenBucketLimiter({ ratePerSecond: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_CONFIG' }),
    );
    expect(() => new TokenBucketLimiter({ burst: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_CONFIG' }),
    );
  });

  it('sourceKey can ignore the port of a UDP address slot', () => {
    const a = addr(7, 1000);
    const b = addr(7, 2000);
    expect(sourceKey(a, 0, 24)).not.toBe(sourceKey(b, 0, 24));
    expect(sourceKey(a, 0, 24, true)).toBe(sourceKey(b, 0, 24, true));
  });
});

describe('LoadMonitor', () => {
  it('under load above the threshold in a second, for UNDER_LOAD_HOLD after', () => {
    const m = new LoadMonitor(3);
    expect([0, 1, 2].map((t) => m.record(t))).toEqual([false, false, false]);
    expect(m.record(3)).toBe(true);
    expect(m.underLoad(3 + UNDER_LOAD_HOLD - 1)).toBe(true);
    expect(m.underLoad(3 + UNDER_LOAD_HOLD)).toBe(false);
    // A new second starts a new count.
    expect(m.record(2000)).toBe(false);
  });

  it('the driver can force it either way', () => {
    const m = new LoadMonitor(0);
    m.force = false;
    expect(m.record(0)).toBe(false);
    m.force = true;
    expect(m.underLoad(10_000)).toBe(true);
    m.force = null;
    expect(m.underLoad(0)).toBe(true);
  });
});
