import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { pushBytes, pushTag, pushVarint } from '../../../src/enroll/protobuf-wire.js';
import { decodeToken, encodeToken, type InviteToken, TOKEN_PREFIX } from '../../../src/enroll/token.js';

const NOW = Date.parse('2026-12-06T00:00:00.000Z');
const fill = (n: number, b: number) => new Uint8Array(n).fill(b);
const PSK = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + (i % 16));

const sample: InviteToken = {
  inviterPublicKey: fill(32, 7),
  endpoints: ['192.0.2.1:51820', '[2001:db8::1]:51820'],
  inviteId: fill(16, 9),
  psk: PSK,
  expiresUnixSec: NOW / 1000 + 3600,
  inviterName: 'gateway-a ünïcode',
  peerName: 'site-b',
};

/** Every form in which the PSK could leak into a message. */
const pskForms = [
  Buffer.from(PSK).toString('base64'),
  Buffer.from(PSK).toString('base64url'),
  Buffer.from(PSK).toString('hex'),
  Buffer.from(PSK).toString('base64').slice(0, 12),
];

/** A field as the tests build raw messages: [number, varint value | bytes]. */
type RawField = [number, number | Uint8Array | string];

function rawFields(t: InviteToken = sample): RawField[] {
  return [
    [1, t.inviterPublicKey],
    ...t.endpoints.map((e): RawField => [2, e]),
    [3, t.inviteId],
    [4, t.psk],
    [5, t.expiresUnixSec],
    [6, t.inviterName],
    [7, t.peerName],
  ];
}

function encodeRaw(fields: RawField[]): number[] {
  const out: number[] = [];
  for (const [num, v] of fields) {
    if (typeof v === 'number') {
      pushTag(out, num, 0);
      pushVarint(out, v);
    } else pushBytes(out, num, typeof v === 'string' ? Buffer.from(v) : v);
  }
  return out;
}

/** A token of raw bytes, with a correct check appended unless told otherwise. */
function tokenOf(bytes: number[], withCheck = true): string {
  const out = [...bytes];
  if (withCheck) pushBytes(out, 15, createHash('sha256').update(Buffer.from(bytes)).digest().subarray(0, 8));
  return TOKEN_PREFIX + Buffer.from(out).toString('base64url');
}

function bodyOf(token: string): Buffer {
  return Buffer.from(token.slice(TOKEN_PREFIX.length), 'base64url');
}

/** Decodes and returns the ERR_TOKEN message, checking that no form of the PSK is in it. */
function rejection(token: string, now = NOW): string {
  try {
    decodeToken(token, now);
  } catch (e) {
    const err = e as { code?: string; message: string };
    expect(err.code).toBe('ERR_TOKEN');
    for (const f of pskForms) expect(err.message).not.toContain(f);
    return err.message;
  }
  throw new Error('decodeToken accepted it');
}

describe('invite token', () => {
  it('round-trips every field, and starts with the version prefix', () => {
    const text = encodeToken(sample);
    expect(text.startsWith('aoegw-invite1.')).toBe(true);
    expect(text).toMatch(/^aoegw-invite1\.[A-Za-z0-9_-]+$/);
    const t = decodeToken(`  ${text}\n`, NOW);
    expect({ ...t, psk: [...t.psk] }).toEqual({
      ...sample,
      inviterPublicKey: sample.inviterPublicKey,
      inviteId: sample.inviteId,
      psk: [...PSK],
    });
  });

  it('is the protobuf the design describes (fields in order, check over the preceding bytes)', () => {
    expect(encodeToken(sample)).toBe(tokenOf(encodeRaw(rawFields())));
  });

  it('refuses a wrong prefix and names an unknown version', () => {
    const body = encodeToken(sample).slice(TOKEN_PREFIX.length);
    expect(rejection(`hello.${body}`)).toMatch(/not an invite token .*aoegw-invite1\./);
    expect(rejection(`aoegw-invite2.${body}`)).toMatch(/version 2 token; this aoegw reads version 1/);
    expect(rejection('')).toMatch(/not an invite token/);
  });

  it('refuses bad base64url: foreign characters, padding, impossible length, stray bits', () => {
    const t = encodeToken(sample);
    expect(rejection(`${t.slice(0, 30)}+${t.slice(31)}`)).toMatch(
      /bad base64url: character 31 is a character outside/,
    );
    expect(rejection(`${t}=`)).toMatch(/bad base64url: .*padding/);
    const body = t.slice(TOKEN_PREFIX.length);
    const cut = TOKEN_PREFIX + body.slice(0, body.length - (body.length % 4) - 3);
    expect(rejection(cut)).toMatch(/bad base64url: its length is impossible/);
    // Same bytes, last character with its unused low bits set.
    const n = body.length % 4;
    expect(n).not.toBe(0);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const lastVal = alphabet.indexOf(body[body.length - 1]!);
    const altered = `${t.slice(0, -1)}${alphabet[lastVal | 1]}`;
    expect(rejection(altered)).toMatch(/bad base64url: the last character has bits set/);
  });

  it('says "damaged or altered" when a byte of a field changes', () => {
    const body = bodyOf(encodeToken(sample));
    const pskAt = body.indexOf(Buffer.from(PSK));
    for (const at of [pskAt, pskAt + 31, 3, body.length - 1]) {
      const b = Buffer.from(body);
      b[at]! ^= 0x01;
      expect(rejection(TOKEN_PREFIX + b.toString('base64url'))).toMatch(/damaged or altered/);
    }
  });

  it('refuses every single-bit flip and every truncation with ERR_TOKEN (never a crash or the PSK)', () => {
    const body = bodyOf(encodeToken(sample));
    for (let at = 0; at < body.length; at++) {
      for (const bit of [0x01, 0x80]) {
        const b = Buffer.from(body);
        b[at]! ^= bit;
        rejection(TOKEN_PREFIX + b.toString('base64url'));
      }
    }
    const t = encodeToken(sample);
    for (let n = TOKEN_PREFIX.length; n < t.length; n++) rejection(t.slice(0, n));
  });

  it('names the structural faults: truncated varint, length past the end, wire types, overlong', () => {
    const ok = encodeRaw(rawFields());
    expect(rejection(tokenOf([...ok, 0x28, 0xff], false))).toMatch(
      /malformed .*field 5 value at byte \d+ is truncated/,
    );
    expect(rejection(tokenOf([...ok, 0x0a, 0x20, 1, 2, 3], false))).toMatch(
      /malformed .*field 1 at byte \d+ says 32 bytes but only 3 remain/,
    );
    expect(rejection(tokenOf([0x09, ...ok]))).toMatch(/field 1 at byte 0 has wire type 1; tokens use only/);
    expect(rejection(tokenOf([0x0d, ...ok]))).toMatch(/wire type 5/);
    expect(rejection(tokenOf([0x0b, ...ok]))).toMatch(/wire type 3/);
    expect(rejection(tokenOf([0x28, 0x80, 0x00, ...ok]))).toMatch(/not minimally encoded/);
    expect(rejection(tokenOf([0x02, 0x00, ...ok]))).toMatch(/field number 0 at byte 0 is invalid/);
    expect(rejection(tokenOf([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]))).toMatch(
      /larger than 2\^53/,
    );
  });

  it('needs the check, last and 8 bytes long', () => {
    const ok = encodeRaw(rawFields());
    expect(rejection(tokenOf(ok, false))).toMatch(/missing field 15 \(check\)/);
    expect(rejection(tokenOf([], false))).toMatch(/empty/);
    const withCheck = bodyOf(tokenOf(ok));
    expect(rejection(tokenOf([...withCheck, ...encodeRaw([[7, 'x']])], false))).toMatch(
      /field 15 \(check\) is not the last field/,
    );
    const short = [...ok];
    pushBytes(short, 15, createHash('sha256').update(Buffer.from(ok)).digest().subarray(0, 7));
    expect(rejection(tokenOf(short, false))).toMatch(/field 15 \(check\) is 7 bytes, expected 8/);
    const varintCheck = [...ok];
    pushTag(varintCheck, 15, 0);
    pushVarint(varintCheck, 1);
    expect(rejection(tokenOf(varintCheck, false))).toMatch(/field 15 \(check\) is not length-delimited/);
  });

  it('refuses unknown, duplicate, misplaced and mistyped fields (with a valid check)', () => {
    const f = rawFields();
    expect(rejection(tokenOf(encodeRaw([...f, [8, 'extra']])))).toMatch(
      /unknown field 8 \(version 1 tokens have fields 1-7 and 15\)/,
    );
    expect(rejection(tokenOf(encodeRaw([...f.slice(0, 1), ...f])))).toMatch(
      /field 1 \(inviter public key\) appears twice/,
    );
    expect(rejection(tokenOf(encodeRaw([...f, [7, 'site-c']])))).toMatch(
      /field 7 \(peer name\) appears twice/,
    );
    const swapped = [...f];
    [swapped[3], swapped[4]] = [swapped[4]!, swapped[3]!]; // id and PSK
    expect(rejection(tokenOf(encodeRaw(swapped)))).toMatch(
      /fields out of order: field 3 \(invite id\) after field 4/,
    );
    // The same reordering without a new check is just damage.
    const reorderedBytes = encodeRaw(swapped);
    const origCheck = bodyOf(encodeToken(sample)).subarray(-10);
    expect(
      rejection(TOKEN_PREFIX + Buffer.from([...reorderedBytes, ...origCheck]).toString('base64url')),
    ).toMatch(/damaged or altered/);
    const typed = f.map((x): RawField => (x[0] === 5 ? [5, Buffer.from('soon')] : x));
    expect(rejection(tokenOf(encodeRaw(typed)))).toMatch(/field 5 \(expiry\) has wire type 2, expected 0/);
    const typed2 = f.map((x): RawField => (x[0] === 6 ? [6, 42] : x));
    expect(rejection(tokenOf(encodeRaw(typed2)))).toMatch(
      /field 6 \(inviter name\) has wire type 0, expected 2/,
    );
  });

  it.each([
    [1, 'inviter public key'],
    [2, 'endpoint'],
    [3, 'invite id'],
    [4, 'PSK'],
    [5, 'expiry'],
    [6, 'inviter name'],
    [7, 'peer name'],
  ])('refuses a token without field %i (%s)', (num, name) => {
    const f = rawFields().filter((x) => x[0] !== num);
    expect(rejection(tokenOf(encodeRaw(f)))).toMatch(new RegExp(`missing field ${num} \\(${name}\\)`));
  });

  it.each([
    [1, 31, 'inviter public key', 32],
    [1, 33, 'inviter public key', 32],
    [3, 15, 'invite id', 16],
    [3, 17, 'invite id', 16],
    [4, 31, 'PSK', 32],
    [4, 0, 'PSK', 32],
  ])('refuses field %i with %i bytes', (num, len, name, want) => {
    const f = rawFields().map((x): RawField => (x[0] === num ? [num, fill(len, 5)] : x));
    expect(rejection(tokenOf(encodeRaw(f)))).toMatch(
      new RegExp(`field ${num} \\(${name}\\) is ${len} bytes, expected ${want}`),
    );
  });

  it('refuses an all-zero public key, bad names and bad UTF-8', () => {
    const set = (num: number, v: RawField[1]) =>
      tokenOf(encodeRaw(rawFields().map((x): RawField => (x[0] === num ? [num, v] : x))));
    expect(rejection(set(1, fill(32, 0)))).toMatch(/field 1 \(inviter public key\) is all zeros/);
    expect(rejection(set(7, 'no spaces'))).toMatch(/field 7 \(peer name\) must be letters, digits/);
    expect(rejection(set(7, 'x'.repeat(65)))).toMatch(/field 7 \(peer name\) must be/);
    expect(rejection(set(6, ''))).toMatch(/field 6 \(inviter name\) must be 1\.\.255 bytes/);
    expect(rejection(set(6, 'a\nb'))).toMatch(/no control characters/);
    expect(rejection(set(6, Uint8Array.of(0x61, 0xff)))).toMatch(
      /field 6 \(inviter name\) is not valid UTF-8/,
    );
  });

  it.each([
    'gw.example.com:51820',
    '192.0.2.1',
    '192.0.2.1:0',
    '192.0.2.1:65536',
    '192.0.2.1:051820',
    '0.0.0.0:51820',
    '[::]:51820',
    '[fe80::1%eth0]:51820',
    '2001:db8::1:51820',
    '256.0.0.1:1',
  ])('refuses the endpoint %s', (ep) => {
    const f = rawFields().map((x): RawField => (x[0] === 2 ? [2, ep] : x));
    expect(rejection(tokenOf(encodeRaw(f)))).toMatch(
      /endpoint 1 \(field 2\) .* is not "IPv4:PORT" or "\[IPv6\]:PORT"/,
    );
  });

  it('refuses more than 8 endpoints', () => {
    const eps = Array.from({ length: 9 }, (_, i) => `192.0.2.${i + 1}:1`);
    const f = rawFields({ ...sample, endpoints: eps });
    expect(rejection(tokenOf(encodeRaw(f)))).toMatch(/9 endpoints \(field 2\), at most 8/);
  });

  it('refuses an expired token, saying when and how long ago', () => {
    const t = encodeToken({ ...sample, expiresUnixSec: NOW / 1000 - 300 });
    expect(rejection(t)).toMatch(/expired at 2026-12-05T23:55:00\.000Z \(5 min ago\)/);
    // Expiry is exclusive: at the expiry second it is expired; a second before it is not.
    const exp = encodeToken(sample);
    expect(rejection(exp, sample.expiresUnixSec * 1000)).toMatch(/\(0 min ago\)/);
    expect(decodeToken(exp, sample.expiresUnixSec * 1000 - 1000).peerName).toBe('site-b');
  });

  it('refuses to encode out-of-range arguments', () => {
    const bad: [Partial<InviteToken>, RegExp][] = [
      [{ psk: fill(31, 1) }, /PSK must be 32 bytes/],
      [{ inviteId: fill(8, 1) }, /invite id must be 16 bytes/],
      [{ inviterPublicKey: fill(31, 1) }, /public key must be 32 bytes/],
      [{ endpoints: [] }, /1\.\.8 endpoints/],
      [{ endpoints: ['example.com:1'] }, /endpoint "example\.com:1" is not/],
      [{ expiresUnixSec: 0 }, /expiry must be a positive integer/],
      [{ peerName: 'bad name' }, /peer name must be/],
      [{ inviterName: '' }, /inviter name must be/],
    ];
    for (const [patch, re] of bad) {
      expect(() => encodeToken({ ...sample, ...patch })).toThrow(
        expect.objectContaining({ code: 'ERR_TOKEN', message: expect.stringMatching(re) }),
      );
    }
  });
});
