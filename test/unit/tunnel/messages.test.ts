/** Wire layouts: sizes and offsets as docs/protocol.md states them, classify() tables, TAI64N. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  COOKIE_NONCE,
  COOKIE_RECEIVER,
  COOKIE_REPLY_LEN,
  COOKIE_SEALED,
  classify,
  compareBytes,
  DATA_COUNTER,
  DATA_MIN_LEN,
  DATA_PAYLOAD,
  DATA_RECEIVER,
  decodeCookieReply,
  decodeInitiation,
  decodeResponse,
  decodeTransportHeader,
  INIT_EPHEMERAL,
  INIT_LEN,
  INIT_MAC1,
  INIT_MAC2,
  INIT_SENDER,
  INIT_STATIC,
  INIT_TIMESTAMP,
  PARSE_BAD_LENGTH,
  PARSE_BAD_VERSION,
  PARSE_RESERVED,
  PARSE_TOO_SHORT,
  PARSE_UNKNOWN_TYPE,
  RESP_EMPTY,
  RESP_EPHEMERAL,
  RESP_LEN,
  RESP_MAC1,
  RESP_MAC2,
  RESP_RECEIVER,
  RESP_SENDER,
  readTai64n,
  readU32,
  readU64,
  writeTai64n,
  writeU32,
  writeU64,
} from '../../../src/tunnel/messages.js';

function msg(type: number, len: number, version = 1, r2 = 0, r3 = 0): Uint8Array {
  const m = new Uint8Array(len);
  if (len > 0) m[0] = type;
  if (len > 1) m[1] = version;
  if (len > 2) m[2] = r2;
  if (len > 3) m[3] = r3;
  return m;
}

describe('layouts (docs/protocol.md)', () => {
  it('offsets and sizes', () => {
    expect([
      INIT_SENDER,
      INIT_EPHEMERAL,
      INIT_STATIC,
      INIT_TIMESTAMP,
      INIT_MAC1,
      INIT_MAC2,
      INIT_LEN,
    ]).toEqual([4, 8, 40, 88, 116, 132, 148]);
    expect([RESP_SENDER, RESP_RECEIVER, RESP_EPHEMERAL, RESP_EMPTY, RESP_MAC1, RESP_MAC2, RESP_LEN]).toEqual([
      4, 8, 12, 44, 60, 76, 92,
    ]);
    expect([COOKIE_RECEIVER, COOKIE_NONCE, COOKIE_SEALED, COOKIE_REPLY_LEN]).toEqual([4, 8, 32, 64]);
    expect([DATA_RECEIVER, DATA_COUNTER, DATA_PAYLOAD, DATA_MIN_LEN]).toEqual([4, 8, 16, 32]);
  });
});

describe('classify', () => {
  it.each([
    ['empty', msg(1, 0), PARSE_TOO_SHORT],
    ['3 bytes', msg(1, 3), PARSE_TOO_SHORT],
    ['type 0', msg(0, 148), PARSE_UNKNOWN_TYPE],
    ['type 6', msg(6, 164), PARSE_UNKNOWN_TYPE],
    ['type 255', msg(255, 148), PARSE_UNKNOWN_TYPE],
    ['version 0', msg(1, 148, 0), PARSE_BAD_VERSION],
    ['version 2', msg(1, 148, 2), PARSE_BAD_VERSION],
    ['reserved byte 2', msg(1, 148, 1, 1), PARSE_RESERVED],
    ['reserved byte 3', msg(4, 64, 1, 0, 0x80), PARSE_RESERVED],
    ['initiation 147', msg(1, 147), PARSE_BAD_LENGTH],
    ['initiation 149', msg(1, 149), PARSE_BAD_LENGTH],
    ['initiation', msg(1, 148), 1],
    ['response 91', msg(2, 91), PARSE_BAD_LENGTH],
    ['response', msg(2, 92), 2],
    ['cookie 65', msg(3, 65), PARSE_BAD_LENGTH],
    ['cookie', msg(3, 64), 3],
    ['enrollment 148', msg(5, 148), PARSE_BAD_LENGTH],
    ['enrollment 165', msg(5, 165), PARSE_BAD_LENGTH],
    ['enrollment', msg(5, 164), 5],
    ['transport 31', msg(4, 31), PARSE_BAD_LENGTH],
    ['transport 32', msg(4, 32), 4],
    ['transport 9000', msg(4, 9000), 4],
  ])('%s', (_name, m, expected) => {
    expect(classify(m, m.length)).toBe(expected);
  });

  it('a length beyond the buffer or negative/NaN is too short, never a throw', () => {
    expect(classify(msg(1, 10), 148)).toBe(PARSE_TOO_SHORT);
    expect(classify(msg(1, 148), -1)).toBe(PARSE_TOO_SHORT);
    expect(classify(msg(1, 148), Number.NaN)).toBe(PARSE_TOO_SHORT);
  });

  it('never throws on arbitrary bytes and lengths (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: -5, max: 400 }), (b, len) => {
        const r = classify(b, len);
        expect(r === 1 || r === 2 || r === 3 || r === 4 || r < 0).toBe(true);
      }),
    );
  });

  it('decoders return null for anything that is not their message', () => {
    expect(decodeInitiation(msg(2, 148))).toBeNull();
    expect(decodeResponse(msg(2, 93))).toBeNull();
    expect(decodeCookieReply(msg(3, 63))).toBeNull();
    expect(decodeTransportHeader(msg(4, 31))).toBeNull();
    const i = msg(1, 148);
    writeU32(i, INIT_SENDER, 0xdeadbeef);
    expect(decodeInitiation(i)!.senderIndex).toBe(0xdeadbeef);
    const t = msg(4, 40);
    writeU64(t, DATA_COUNTER, 0x0102030405060708n);
    expect(decodeTransportHeader(t)!.counter).toBe(0x0102030405060708n);
    expect(decodeTransportHeader(t)!.sealed.length).toBe(24);
  });
});

describe('integers', () => {
  it('u32 and u64 little-endian round trips (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        (a, b) => {
          const buf = new Uint8Array(12);
          writeU32(buf, 0, a);
          writeU64(buf, 4, b);
          expect(readU32(buf, 0)).toBe(a);
          expect(readU64(buf, 4)).toBe(b);
          expect(buf[4]).toBe(Number(b & 0xffn));
        },
      ),
    );
  });
});

describe('TAI64N', () => {
  it('encodes the Unix epoch as 2^62 seconds, big-endian', () => {
    const b = new Uint8Array(12);
    writeTai64n(b, 0, 0n);
    expect(Buffer.from(b).toString('hex')).toBe('400000000000000000000000');
    writeTai64n(b, 0, 1_700_000_000_123_456_789n);
    expect(Buffer.from(b).toString('hex')).toBe('400000006553f100075bcd15');
    expect(readTai64n(b, 0)).toBe(1_700_000_000_123_456_789n);
  });

  it('byte order is time order, round trips (property)', () => {
    const ns = fc.bigInt({ min: 0n, max: 2n ** 62n });
    fc.assert(
      fc.property(ns, ns, (x, y) => {
        const a = new Uint8Array(12);
        const b = new Uint8Array(12);
        writeTai64n(a, 0, x);
        writeTai64n(b, 0, y);
        expect(Math.sign(compareBytes(a, b))).toBe(x < y ? -1 : x > y ? 1 : 0);
        expect(readTai64n(a, 0)).toBe(x);
      }),
    );
  });

  it('readTai64n refuses values no writer produces', () => {
    const b = new Uint8Array(12).fill(0xff);
    expect(readTai64n(b, 0)).toBeNull(); // nanoseconds ≥ 10^9
    expect(readTai64n(new Uint8Array(12), 0)).toBeNull(); // before 1970
    expect(readTai64n(new Uint8Array(11), 0)).toBeNull();
  });
});
