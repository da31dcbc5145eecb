/**
 * The CryptoBackends against known answers and independent implementations (node:crypto's
 * BLAKE2b-512, HMAC-BLAKE2b512 and ChaCha20-Poly1305), and against each other byte for byte on fixed
 * and random inputs.
 */
import { createCipheriv, createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAoegwError } from '../../../src/errors.js';
import { type NativeAead, nativeAddon } from '../../../src/io/native.js';
import { type CryptoBackend, HASH_LEN, loadCrypto, TAG_LEN } from '../../../src/tunnel/crypto.js';
import { selfTestFailure } from '../../../src/tunnel/crypto-openssl-native.js';
import { backends, hex, libsodium, opensslNative, sodiumNative, unhex } from './backends.js';

const each = describe.each(backends.map((b) => [b.name, b] as const));

function expectCryptoError(fn: () => unknown): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(isAoegwError(caught, 'ERR_CRYPTO'), String(caught)).toBe(true);
}

/** Noise HKDF built from node:crypto's HMAC, as an independent reference. */
function refHkdf(ck: Uint8Array, ikm: Uint8Array, n: 2 | 3): string[] {
  const temp = createHmac('blake2b512', ck).update(ikm).digest();
  const outs: Buffer[] = [];
  let prev = Buffer.alloc(0);
  for (let i = 1; i <= n; i++) {
    prev = createHmac('blake2b512', temp)
      .update(Buffer.concat([prev, Buffer.of(i)]))
      .digest();
    outs.push(prev);
  }
  return outs.map((b) => b.toString('hex'));
}

/** ChaCha20-Poly1305 via node:crypto with the Noise nonce: 4 zero bytes || u64le counter. */
function refSeal(key: Uint8Array, counter: bigint, ad: Uint8Array, pt: Uint8Array): string {
  const iv = Buffer.alloc(12);
  iv.writeBigUInt64LE(counter, 4);
  const c = createCipheriv('chacha20-poly1305', key, iv, { authTagLength: TAG_LEN });
  c.setAAD(ad, { plaintextLength: pt.length });
  return Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]).toString('hex');
}

function seal(
  crypto: CryptoBackend,
  key: Uint8Array,
  counter: bigint,
  ad: Uint8Array | null,
  pt: Uint8Array,
) {
  const out = new Uint8Array(pt.length + TAG_LEN);
  expect(crypto.seal(out, 0, key, counter, ad, pt, 0, pt.length)).toBe(out.length);
  return out;
}

function xseal(
  crypto: CryptoBackend,
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array | null,
  pt: Uint8Array,
) {
  const out = new Uint8Array(pt.length + TAG_LEN);
  expect(crypto.xseal(out, 0, key, nonce, ad, pt, 0, pt.length)).toBe(out.length);
  return out;
}

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const key32 = bytes(32, 32);
const counter = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

describe('loadCrypto', () => {
  it('picks openssl-native by default (this Node exports OpenSSL and the addon passes its self-test)', async () => {
    expect((await loadCrypto()).name).toBe('openssl-native');
    expect(sodiumNative.name).toBe('sodium-native');
    expect(libsodium.name).toBe('libsodium-wrappers');
    expect(opensslNative.name).toBe('openssl-native');
  });

  it("openssl-native's load-time self-test passes the addon and fails broken AEADs", () => {
    const { aeadSeal, aeadOpen } = nativeAddon();
    const seal = aeadSeal!;
    const open = aeadOpen!;
    expect(selfTestFailure(seal, open, sodiumNative)).toBeNull();
    const flips: NativeAead = (out, outOff, ...rest) => {
      const n = seal(out, outOff, ...rest);
      out[outOff]! ^= 1;
      return n;
    };
    expect(selfTestFailure(flips, open, sodiumNative)).toMatch(/RFC 8439/);
    const accepts: NativeAead = (...args) => {
      const r = open(...args);
      return r < 0 ? args[7] - TAG_LEN : r;
    };
    expect(selfTestFailure(seal, accepts, sodiumNative)).toMatch(/tampered/);
    const leaves: NativeAead = (...args) => {
      const r = open(...args);
      if (r < 0) args[0][args[1]] = 1;
      return r;
    };
    expect(selfTestFailure(seal, leaves, sodiumNative)).toMatch(/leaves bytes/);
    // A nonce with the counter in the wrong half.
    const bigEndian: NativeAead = (out, outOff, key, counter, ...rest) => {
      if (typeof counter !== 'bigint') return seal(out, outOff, key, counter, ...rest);
      const nonce = new Uint8Array(12);
      new DataView(nonce.buffer).setBigUint64(4, counter, false);
      return seal(out, outOff, key, nonce, ...rest);
    };
    expect(selfTestFailure(bigEndian, open, sodiumNative)).toMatch(/nonce/);
  });
});

each('known answers on %s', (_name, crypto) => {
  it('BLAKE2b-512("abc") and node:crypto agree', () => {
    const out = new Uint8Array(64);
    crypto.blake2b(out, new TextEncoder().encode('abc'));
    expect(hex(out)).toBe(
      'ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923',
    );
    expect(hex(out)).toBe(createHash('blake2b512').update('abc').digest('hex'));
    // Parts hash as their concatenation.
    crypto.blake2b(out, [new TextEncoder().encode('a'), new Uint8Array(0), new TextEncoder().encode('bc')]);
    expect(hex(out)).toBe(createHash('blake2b512').update('abc').digest('hex'));
  });

  it('keyed BLAKE2b: the BLAKE2 reference KAT (key 00..3f, empty input)', () => {
    const key = Uint8Array.from({ length: 64 }, (_, i) => i);
    const out = new Uint8Array(64);
    crypto.blake2b(out, new Uint8Array(0), key);
    expect(hex(out)).toBe(
      '10ebb67700b1868efb4417987acf4690ae9d972fb7a590c2f02871799aaa4786b5e996e8f0f4eb981fc214b005f42d2ff4233499391653df7aefcbc13fc51568',
    );
  });

  it('X25519: RFC 7748 section 6.1', () => {
    const alice = crypto.x25519KeyPair(
      unhex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'),
    );
    const bob = crypto.x25519KeyPair(
      unhex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'),
    );
    expect(hex(alice.publicKey)).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(hex(bob.publicKey)).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const shared = new Uint8Array(32);
    crypto.x25519(shared, alice.secretKey, bob.publicKey);
    expect(hex(shared)).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
    const pub = new Uint8Array(32);
    crypto.x25519PublicKey(pub, bob.secretKey);
    expect(hex(pub)).toBe(hex(bob.publicKey));
  });

  it('X25519 refuses low-order points (all-zero output)', () => {
    const sk = crypto.x25519KeyPair().secretKey;
    const out = new Uint8Array(32);
    for (const p of ['00', '01', 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800']) {
      expectCryptoError(() => crypto.x25519(out, sk, unhex(p.padEnd(64, '0'))));
      expect(out.every((b) => b === 0)).toBe(true);
    }
  });

  it('HMAC-BLAKE2b matches node:crypto for short, block-sized and long keys', () => {
    const out = new Uint8Array(HASH_LEN);
    for (const keyLen of [0, 1, 32, 64, 127, 128, 129, 300]) {
      const key = Uint8Array.from({ length: keyLen }, (_, i) => (i * 7 + keyLen) & 0xff);
      const data = Uint8Array.from({ length: 200 }, (_, i) => i & 0xff);
      crypto.hmacBlake2b(out, key, data);
      expect(hex(out), `key ${keyLen}`).toBe(createHmac('blake2b512', key).update(data).digest('hex'));
    }
  });

  it('HMAC-BLAKE2b is not keyed BLAKE2b', () => {
    const key = new Uint8Array(32).fill(1);
    const a = new Uint8Array(64);
    const b = new Uint8Array(64);
    crypto.hmacBlake2b(a, key, new Uint8Array(3));
    crypto.blake2b(b, new Uint8Array(3), key);
    expect(hex(a)).not.toBe(hex(b));
  });

  it('HKDF with 2 and 3 outputs matches the node:crypto reference, also with out1 aliasing ck', () => {
    const ck = Uint8Array.from({ length: 64 }, (_, i) => i);
    const ikm = new Uint8Array(32).fill(0x42);
    const o = [new Uint8Array(64), new Uint8Array(64), new Uint8Array(64)] as const;
    crypto.hkdf(ck, ikm, o[0], o[1]);
    expect([hex(o[0]), hex(o[1])]).toEqual(refHkdf(ck, ikm, 2));
    crypto.hkdf(ck, ikm, o[0], o[1], o[2]);
    expect(o.map(hex)).toEqual(refHkdf(ck, ikm, 3));
    crypto.hkdf(ck, new Uint8Array(0), o[0], o[1]);
    expect([hex(o[0]), hex(o[1])]).toEqual(refHkdf(ck, new Uint8Array(0), 2));
    const expected = refHkdf(ck, ikm, 2);
    crypto.hkdf(ck, ikm, ck, o[1]);
    expect([hex(ck), hex(o[1])]).toEqual(expected);
  });

  it('ChaCha20-Poly1305 uses the Noise nonce (4 zero bytes, u64le counter): matches node:crypto', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
    const pt = new TextEncoder().encode('Ladies and Gentlemen of the class of 99');
    const ad = Uint8Array.of(0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1);
    for (const n of [0n, 1n, 0x0102030405060708n, 2n ** 32n, 2n ** 64n - 2n, 2n ** 64n - 1n]) {
      expect(hex(seal(crypto, key, n, ad, pt)), `counter ${n}`).toBe(refSeal(key, n, ad, pt));
    }
    expect(hex(seal(crypto, key, 5n, null, pt))).toBe(refSeal(key, 5n, new Uint8Array(0), pt));
  });
});

each('AEAD buffer contract on %s', (_name, crypto) => {
  const key = new Uint8Array(32).fill(9);

  it('seals and opens at offsets and in place', () => {
    const buf = new Uint8Array(64);
    buf.set([1, 2, 3, 4, 5], 10);
    const n = crypto.seal(buf, 10, key, 77n, null, buf, 10, 5);
    expect(n).toBe(5 + TAG_LEN);
    expect(hex(buf.subarray(10, 10 + n))).toBe(
      refSeal(key, 77n, new Uint8Array(0), Uint8Array.of(1, 2, 3, 4, 5)),
    );
    // Bytes around the written range are untouched.
    expect(buf.subarray(0, 10).every((b) => b === 0) && buf.subarray(10 + n).every((b) => b === 0)).toBe(
      true,
    );
    const out = new Uint8Array(8);
    expect(crypto.open(out, 3, key, 77n, null, buf, 10, n)).toBe(5);
    expect(hex(out)).toBe('0000000102030405');
    expect(crypto.open(buf, 10, key, 77n, null, buf, 10, n)).toBe(5);
    expect(hex(buf.subarray(10, 15))).toBe('0102030405');
  });

  it('open returns -1 on any failure and zeroes exactly the plaintext range of the output', () => {
    const ct = seal(crypto, key, 1n, Uint8Array.of(1), Uint8Array.of(7, 7, 7));
    const out = new Uint8Array(5);
    const attempts: [bigint, Uint8Array, Uint8Array, Uint8Array][] = [
      [2n, key, Uint8Array.of(1), ct],
      [1n, key, Uint8Array.of(2), ct],
      [1n, new Uint8Array(32), Uint8Array.of(1), ct],
    ];
    for (let i = 0; i < ct.length; i++) {
      const bad = Uint8Array.from(ct);
      bad[i]! ^= 0x80;
      attempts.push([1n, key, Uint8Array.of(1), bad]);
    }
    for (const [n, k, ad, c] of attempts) {
      out.fill(0xee);
      expect(crypto.open(out, 1, k, n, ad, c, 0, c.length)).toBe(-1);
      expect(hex(out)).toBe('ee000000ee');
    }
    // Too short to hold a tag: rejected before libsodium is called, nothing written.
    out.fill(0xee);
    expect(crypto.open(out, 0, key, 1n, null, ct, 0, TAG_LEN - 1)).toBe(-1);
    expect(hex(out)).toBe('eeeeeeeeee');
    expect(crypto.open(out, 1, key, 1n, Uint8Array.of(1), ct, 0, ct.length)).toBe(3);
    expect(hex(out)).toBe('ee070707ee');
  });

  it('opens into an output that starts where the tag does (the tag is read first)', () => {
    const buf = new Uint8Array(64);
    buf.set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 0);
    const n = crypto.seal(buf, 0, key, 3n, null, buf, 0, 20);
    expect(crypto.open(buf, 20, key, 3n, null, buf, 0, n)).toBe(20);
    expect(Array.from(buf.subarray(20, 40))).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('an empty plaintext seals to a bare tag', () => {
    const ct = seal(crypto, key, 0n, null, new Uint8Array(0));
    expect(ct.length).toBe(TAG_LEN);
    expect(crypto.open(new Uint8Array(0), 0, key, 0n, null, ct, 0, ct.length)).toBe(0);
  });

  it('rejects programming errors with ERR_CRYPTO', () => {
    const buf = new Uint8Array(64);
    expectCryptoError(() => crypto.seal(buf, 0, new Uint8Array(31), 0n, null, buf, 0, 8));
    expectCryptoError(() => crypto.seal(buf, 50, key, 0n, null, new Uint8Array(8), 0, 8));
    expectCryptoError(() => crypto.seal(buf, 0, key, 0n, null, new Uint8Array(8), 4, 8));
    expectCryptoError(() => crypto.seal(buf, 0, key, -1n, null, new Uint8Array(8), 0, 8));
    expectCryptoError(() => crypto.seal(buf, 0, key, 2n ** 64n, null, new Uint8Array(8), 0, 8));
    // Partial overlap of output and input in the same buffer would corrupt the stream.
    expectCryptoError(() => crypto.seal(buf, 1, key, 0n, null, buf, 0, 8));
    expectCryptoError(() => crypto.open(buf, 2, key, 0n, null, buf, 0, 24));
    expectCryptoError(() => crypto.open(new Uint8Array(4), 0, key, 0n, null, buf, 0, 24));
    expectCryptoError(() => crypto.xseal(buf, 0, key, new Uint8Array(12), null, new Uint8Array(8), 0, 8));
    expectCryptoError(() => crypto.blake2b(new Uint8Array(8), buf));
    expectCryptoError(() => crypto.blake2b(new Uint8Array(65), buf));
    expectCryptoError(() => crypto.blake2b(new Uint8Array(32), buf, new Uint8Array(15)));
    expectCryptoError(() => crypto.blake2b(new Uint8Array(32), buf, new Uint8Array(65)));
    expectCryptoError(() => crypto.hmacBlake2b(new Uint8Array(32), key, buf));
    expectCryptoError(() => crypto.x25519KeyPair(new Uint8Array(31)));
  });

  it('XChaCha20-Poly1305 round trip and tamper detection', () => {
    const nonce = Uint8Array.from({ length: 24 }, (_, i) => i);
    const ct = xseal(crypto, key, nonce, Uint8Array.of(5), new Uint8Array(16).fill(3));
    const out = new Uint8Array(16);
    expect(crypto.xopen(out, 0, key, nonce, Uint8Array.of(5), ct, 0, ct.length)).toBe(16);
    expect(out.every((b) => b === 3)).toBe(true);
    ct[0]! ^= 1;
    expect(crypto.xopen(out, 0, key, nonce, Uint8Array.of(5), ct, 0, ct.length)).toBe(-1);
  });
});

each('utilities on %s', (_name, crypto) => {
  it('equal is length-aware', () => {
    expect(crypto.equal(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
    expect(crypto.equal(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
    expect(crypto.equal(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 3))).toBe(false);
    expect(crypto.equal(new Uint8Array(0), new Uint8Array(0))).toBe(true);
  });

  it('memzero and randomBytes fill the whole view and nothing else', () => {
    const buf = new Uint8Array(48).fill(0xff);
    crypto.memzero(buf.subarray(8, 40));
    expect(hex(buf)).toBe(`${'ff'.repeat(8)}${'00'.repeat(32)}${'ff'.repeat(8)}`);
    crypto.randomBytes(buf.subarray(8, 40));
    expect(hex(buf.subarray(0, 8))).toBe('ff'.repeat(8));
    expect(buf.subarray(8, 40).some((b) => b !== 0)).toBe(true);
    const a = crypto.x25519KeyPair();
    const b = crypto.x25519KeyPair();
    expect(hex(a.secretKey)).not.toBe(hex(b.secretKey));
    const pub = new Uint8Array(32);
    crypto.x25519PublicKey(pub, a.secretKey);
    expect(hex(pub)).toBe(hex(a.publicKey));
  });
});

describe('the backends give identical bytes', () => {
  const [a, b] = [sodiumNative, libsodium];
  const runs = { numRuns: 200 };

  it('blake2b (any length, optional key, parts)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 16, max: 64 }),
        fc.option(bytes(16, 64), { nil: undefined }),
        fc.array(bytes(0, 300), { maxLength: 4 }),
        (len, key, parts) => {
          const x = new Uint8Array(len);
          const y = new Uint8Array(len);
          a.blake2b(x, parts, key);
          b.blake2b(y, parts, key);
          expect(hex(x)).toBe(hex(y));
          if (key === undefined && len === 64) {
            expect(hex(x)).toBe(createHash('blake2b512').update(Buffer.concat(parts)).digest('hex'));
          }
        },
      ),
      runs,
    );
  });

  it('HMAC-BLAKE2b, also against node:crypto', () => {
    fc.assert(
      fc.property(bytes(0, 300), bytes(0, 300), (key, data) => {
        const x = new Uint8Array(64);
        const y = new Uint8Array(64);
        a.hmacBlake2b(x, key, data);
        b.hmacBlake2b(y, key, data);
        expect(hex(x)).toBe(hex(y));
        expect(hex(x)).toBe(createHmac('blake2b512', key).update(data).digest('hex'));
      }),
      runs,
    );
  });

  it('HKDF (2 and 3 outputs), also against the node:crypto reference', () => {
    fc.assert(
      fc.property(bytes(64, 64), bytes(0, 64), fc.boolean(), (ck, ikm, three) => {
        const ox = [new Uint8Array(64), new Uint8Array(64), new Uint8Array(64)] as const;
        const oy = [new Uint8Array(64), new Uint8Array(64), new Uint8Array(64)] as const;
        a.hkdf(ck, ikm, ox[0], ox[1], three ? ox[2] : undefined);
        b.hkdf(ck, ikm, oy[0], oy[1], three ? oy[2] : undefined);
        expect(ox.map(hex)).toEqual(oy.map(hex));
        expect(ox.slice(0, three ? 3 : 2).map(hex)).toEqual(refHkdf(ck, ikm, three ? 3 : 2));
      }),
      runs,
    );
  });

  it('openssl-native gives the same ChaCha20-Poly1305 bytes and opens theirs', () => {
    fc.assert(
      fc.property(
        key32,
        counter,
        fc.option(bytes(0, 64), { nil: null }),
        bytes(0, 9000),
        (key, n, ad, pt) => {
          const x = seal(opensslNative, key, n, ad, pt);
          expect(hex(x)).toBe(hex(seal(a, key, n, ad, pt)));
          const back = new Uint8Array(pt.length);
          expect(a.open(back, 0, key, n, ad, x, 0, x.length)).toBe(pt.length);
          expect(opensslNative.open(back, 0, key, n, ad, seal(b, key, n, ad, pt), 0, x.length)).toBe(
            pt.length,
          );
          expect(hex(back)).toBe(hex(pt));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('ChaCha20-Poly1305 seal, open across backends, and node:crypto', () => {
    fc.assert(
      fc.property(
        key32,
        counter,
        fc.option(bytes(0, 64), { nil: null }),
        bytes(0, 1500),
        (key, n, ad, pt) => {
          const x = seal(a, key, n, ad, pt);
          const y = seal(b, key, n, ad, pt);
          expect(hex(x)).toBe(hex(y));
          expect(hex(x)).toBe(refSeal(key, n, ad ?? new Uint8Array(0), pt));
          const back = new Uint8Array(pt.length);
          expect(b.open(back, 0, key, n, ad, x, 0, x.length)).toBe(pt.length);
          expect(hex(back)).toBe(hex(pt));
          expect(a.open(back, 0, key, n, ad, y, 0, y.length)).toBe(pt.length);
        },
      ),
      runs,
    );
  });

  it('XChaCha20-Poly1305 seal and open across backends', () => {
    fc.assert(
      fc.property(
        key32,
        bytes(24, 24),
        fc.option(bytes(0, 64), { nil: null }),
        bytes(0, 200),
        (key, nonce, ad, pt) => {
          const x = xseal(a, key, nonce, ad, pt);
          const y = xseal(b, key, nonce, ad, pt);
          expect(hex(x)).toBe(hex(y));
          const back = new Uint8Array(pt.length);
          expect(b.xopen(back, 0, key, nonce, ad, x, 0, x.length)).toBe(pt.length);
          expect(hex(back)).toBe(hex(pt));
        },
      ),
      runs,
    );
  });

  it('X25519 key pairs and shared secrets', () => {
    fc.assert(
      fc.property(key32, key32, (s1, s2) => {
        const p1 = a.x25519KeyPair(s1);
        const p2 = b.x25519KeyPair(s2);
        expect(hex(p1.publicKey)).toBe(hex(b.x25519KeyPair(s1).publicKey));
        expect(hex(p2.publicKey)).toBe(hex(a.x25519KeyPair(s2).publicKey));
        const x = new Uint8Array(32);
        const y = new Uint8Array(32);
        a.x25519(x, s1, p2.publicKey);
        b.x25519(y, s2, p1.publicKey);
        expect(hex(x)).toBe(hex(y));
      }),
      runs,
    );
  });

  it('constant-time equal agrees', () => {
    fc.assert(
      fc.property(bytes(0, 40), bytes(0, 40), (x, y) => {
        expect(a.equal(x, y)).toBe(b.equal(x, y));
        expect(a.equal(x, y)).toBe(hex(x) === hex(y));
        expect(a.equal(x, Uint8Array.from(x))).toBe(true);
      }),
      runs,
    );
  });
});
