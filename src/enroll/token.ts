/**
 * Invite tokens (`aoegw invite` prints one, `aoegw enroll` reads it): "aoegw-invite1." + base64url
 * (no padding) of a protobuf message; the fields and the rules are in docs/enrollment.md.
 *
 * Version 1 is strict, so a token has exactly one encoding: fields in ascending order (the
 * endpoints together), no unknown or repeated fields, minimal varints. Decoding checks the
 * structure, then the check (so a damaged token says "damaged or altered" rather than whatever a
 * flipped byte happens to look like), then each field, then the expiry. Pure: time is an argument.
 * Messages never quote the token or the PSK.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { AoegwError } from '../errors.js';
import { ENDPOINT_RULE, parseEndpoint } from './endpoint.js';
import { isPeerName, PEER_NAME_RULE } from './peer-name.js';
import {
  pushBytes,
  pushTag,
  pushVarint,
  readFields,
  WIRE_LEN,
  WIRE_VARINT,
  WireError,
} from './protobuf-wire.js';

export const TOKEN_PREFIX = 'aoegw-invite1.';
export const KEY_BYTES = 32;
export const INVITE_ID_BYTES = 16;
export const PSK_BYTES = 32;
export const CHECK_BYTES = 8;
/** More would not fit a paste comfortably; an inviter has a few addresses, not dozens. */
export const MAX_ENDPOINTS = 8;
export const MAX_GATEWAY_NAME_BYTES = 255;
/** Far above any valid token (about 300 characters with 8 IPv6 endpoints). */
const MAX_TOKEN_CHARS = 2048;

export interface InviteToken {
  /** The inviter's X25519 static public key. */
  readonly inviterPublicKey: Uint8Array;
  /** Where the inviter listens, "IPv4:PORT" / "[IPv6]:PORT" (at least one). */
  readonly endpoints: readonly string[];
  readonly inviteId: Uint8Array;
  /** The invite's pre-shared key: secret; the caller zeroes it when done. */
  readonly psk: Uint8Array;
  readonly expiresUnixSec: number;
  /** The inviter's gateway name (its config's `name`). */
  readonly inviterName: string;
  /** The name the inviter gives the new peer (`--name`). */
  readonly peerName: string;
}

const F = {
  publicKey: 1,
  endpoint: 2,
  inviteId: 3,
  psk: 4,
  expires: 5,
  inviterName: 6,
  peerName: 7,
  check: 15,
} as const;

const FIELD_NAMES: Record<number, string> = {
  1: 'inviter public key',
  2: 'endpoint',
  3: 'invite id',
  4: 'PSK',
  5: 'expiry',
  6: 'inviter name',
  7: 'peer name',
  15: 'check',
};

function label(num: number): string {
  return `field ${num} (${FIELD_NAMES[num]})`;
}

function tokenError(why: string): AoegwError {
  return new AoegwError('ERR_TOKEN', `invite token: ${why}`);
}

function checkOf(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest().subarray(0, CHECK_BYTES);
}

function isGatewayName(s: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
  return s.length > 0 && Buffer.byteLength(s) <= MAX_GATEWAY_NAME_BYTES && !/[\u0000-\u001f\u007f]/.test(s);
}

/** Encodes a token. Throws ERR_TOKEN naming the field when an argument is out of its range. */
export function encodeToken(t: InviteToken): string {
  const need = (ok: boolean, why: string): void => {
    if (!ok) throw tokenError(`cannot encode: ${why}`);
  };
  need(t.inviterPublicKey.length === KEY_BYTES, `the inviter public key must be ${KEY_BYTES} bytes`);
  need(t.inviteId.length === INVITE_ID_BYTES, `the invite id must be ${INVITE_ID_BYTES} bytes`);
  need(t.psk.length === PSK_BYTES, `the PSK must be ${PSK_BYTES} bytes`);
  need(
    t.endpoints.length >= 1 && t.endpoints.length <= MAX_ENDPOINTS,
    `1..${MAX_ENDPOINTS} endpoints are needed, got ${t.endpoints.length}`,
  );
  for (const e of t.endpoints)
    need(parseEndpoint(e) !== null, `endpoint ${JSON.stringify(e)} is not ${ENDPOINT_RULE}`);
  need(
    Number.isSafeInteger(t.expiresUnixSec) && t.expiresUnixSec > 0,
    'the expiry must be a positive integer',
  );
  need(
    isGatewayName(t.inviterName),
    `the inviter name must be 1..${MAX_GATEWAY_NAME_BYTES} bytes, no control characters`,
  );
  need(isPeerName(t.peerName), `the peer name must be ${PEER_NAME_RULE}`);

  const out: number[] = [];
  pushBytes(out, F.publicKey, t.inviterPublicKey);
  for (const e of t.endpoints) pushBytes(out, F.endpoint, Buffer.from(e, 'utf8'));
  pushBytes(out, F.inviteId, t.inviteId);
  pushBytes(out, F.psk, t.psk);
  pushTag(out, F.expires, WIRE_VARINT);
  pushVarint(out, t.expiresUnixSec);
  pushBytes(out, F.inviterName, Buffer.from(t.inviterName, 'utf8'));
  pushBytes(out, F.peerName, Buffer.from(t.peerName, 'utf8'));
  // Buffer.alloc, not Buffer.from: an unpooled buffer holding the PSK, zeroed below.
  const body = Buffer.alloc(out.length + 2 + CHECK_BYTES);
  body.set(out);
  out.fill(0);
  const check = checkOf(body.subarray(0, out.length));
  const tail: number[] = [];
  pushBytes(tail, F.check, check);
  body.set(tail, out.length);
  const text = TOKEN_PREFIX + body.toString('base64url');
  body.fill(0);
  return text;
}

/** base64url without padding, canonical (unused trailing bits zero), into an unpooled buffer. */
function decodeBase64Url(s: string): Buffer {
  const bad = s.search(/[^A-Za-z0-9_-]/);
  if (bad >= 0) {
    const what =
      s[bad] === '=' ? 'padding "=" (tokens have none)' : 'a character outside base64url (A-Z a-z 0-9 - _)';
    throw tokenError(`bad base64url: character ${TOKEN_PREFIX.length + bad + 1} is ${what}`);
  }
  if (s.length % 4 === 1)
    throw tokenError('bad base64url: its length is impossible (characters lost or added in copying?)');
  const buf = Buffer.alloc(Math.floor((s.length * 3) / 4));
  buf.write(s, 'base64url');
  // A last character with nonzero unused bits decodes like the canonical one: refuse it.
  if (buf.toString('base64url') !== s) {
    buf.fill(0);
    throw tokenError(
      'bad base64url: the last character has bits set that encode nothing (characters lost or added in copying?)',
    );
  }
  return buf;
}

function utf8(buf: Uint8Array, num: number): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw tokenError(`${label(num)} is not valid UTF-8`);
  }
}

/**
 * Decodes and checks a token (surrounding whitespace ignored). Throws ERR_TOKEN with a message
 * that says which rule it breaks; `nowMs` decides expiry.
 */
export function decodeToken(text: string, nowMs: number): InviteToken {
  const s = text.trim();
  if (!s.startsWith(TOKEN_PREFIX)) {
    const v = /^aoegw-invite(\d+)\./.exec(s);
    if (v) throw tokenError(`version ${v[1]} token; this aoegw reads version 1 (${TOKEN_PREFIX}…)`);
    throw tokenError(`not an invite token (expected it to start with "${TOKEN_PREFIX}")`);
  }
  if (s.length > MAX_TOKEN_CHARS) throw tokenError(`longer than ${MAX_TOKEN_CHARS} characters: not a token`);
  const body = decodeBase64Url(s.slice(TOKEN_PREFIX.length));
  try {
    return decodeBody(body, nowMs);
  } finally {
    body.fill(0);
  }
}

function decodeBody(body: Buffer, nowMs: number): InviteToken {
  let fields: ReturnType<typeof readFields>;
  try {
    fields = readFields(body);
  } catch (e) {
    if (e instanceof WireError) throw tokenError(`malformed (damaged or truncated?): ${e.message}`);
    throw e;
  }

  const last = fields[fields.length - 1];
  if (last === undefined) throw tokenError('empty');
  const checkAt = fields.findIndex((f) => f.num === F.check);
  if (checkAt < 0) throw tokenError(`missing ${label(F.check)} (truncated?)`);
  if (checkAt !== fields.length - 1) throw tokenError(`${label(F.check)} is not the last field`);
  if (last.wire !== WIRE_LEN) throw tokenError(`${label(F.check)} is not length-delimited`);
  if (last.end - last.start !== CHECK_BYTES) {
    throw tokenError(`${label(F.check)} is ${last.end - last.start} bytes, expected ${CHECK_BYTES}`);
  }
  if (!timingSafeEqual(checkOf(body.subarray(0, last.tagAt)), body.subarray(last.start, last.end))) {
    throw tokenError('damaged or altered (its check does not match): copy it again from the inviter');
  }

  let prev = 0;
  for (const f of fields) {
    if (FIELD_NAMES[f.num] === undefined) {
      throw tokenError(`unknown field ${f.num} (version 1 tokens have fields 1-7 and 15)`);
    }
    const wantWire = f.num === F.expires ? WIRE_VARINT : WIRE_LEN;
    if (f.wire !== wantWire) {
      throw tokenError(`${label(f.num)} has wire type ${f.wire}, expected ${wantWire}`);
    }
    if (f.num === prev && f.num !== F.endpoint) throw tokenError(`${label(f.num)} appears twice`);
    if (f.num < prev) throw tokenError(`fields out of order: ${label(f.num)} after field ${prev}`);
    prev = f.num;
  }
  const one = (num: number) => {
    const f = fields.find((x) => x.num === num);
    if (f === undefined) throw tokenError(`missing ${label(num)}`);
    return f;
  };
  const bytes = (num: number, len: number): Uint8Array => {
    const f = one(num);
    if (f.end - f.start !== len)
      throw tokenError(`${label(num)} is ${f.end - f.start} bytes, expected ${len}`);
    return new Uint8Array(body.subarray(f.start, f.end)); // a copy: the body is zeroed after
  };

  const inviterPublicKey = bytes(F.publicKey, KEY_BYTES);
  if (inviterPublicKey.every((b) => b === 0)) throw tokenError(`${label(F.publicKey)} is all zeros`);
  const endpointFields = fields.filter((f) => f.num === F.endpoint);
  if (endpointFields.length === 0) throw tokenError(`missing ${label(F.endpoint)} (at least one)`);
  if (endpointFields.length > MAX_ENDPOINTS) {
    throw tokenError(`${endpointFields.length} endpoints (field 2), at most ${MAX_ENDPOINTS}`);
  }
  const endpoints = endpointFields.map((f, i) => {
    const e = utf8(body.subarray(f.start, f.end), F.endpoint);
    if (parseEndpoint(e) === null) {
      throw tokenError(
        `endpoint ${i + 1} (field 2) ${JSON.stringify(e.slice(0, 80))} is not ${ENDPOINT_RULE}`,
      );
    }
    return e;
  });
  const inviteId = bytes(F.inviteId, INVITE_ID_BYTES);
  const pskField = one(F.psk);
  if (pskField.end - pskField.start !== PSK_BYTES) {
    throw tokenError(`${label(F.psk)} is ${pskField.end - pskField.start} bytes, expected ${PSK_BYTES}`);
  }
  const expiresUnixSec = one(F.expires).varint;
  const nameField = one(F.inviterName);
  const inviterName = utf8(body.subarray(nameField.start, nameField.end), F.inviterName);
  if (!isGatewayName(inviterName)) {
    throw tokenError(
      `${label(F.inviterName)} must be 1..${MAX_GATEWAY_NAME_BYTES} bytes, no control characters`,
    );
  }
  const peerField = one(F.peerName);
  const peerName = utf8(body.subarray(peerField.start, peerField.end), F.peerName);
  if (!isPeerName(peerName)) throw tokenError(`${label(F.peerName)} must be ${PEER_NAME_RULE}`);

  const expiresAtMs = expiresUnixSec * 1000;
  if (expiresAtMs <= nowMs) {
    const ago = Math.floor((nowMs - expiresAtMs) / 60_000);
    throw tokenError(
      `expired at ${new Date(expiresAtMs).toISOString()} (${ago} min ago): ask the inviter for a new one`,
    );
  }
  // Copied last, once nothing can fail, so no error path leaves a copy of it behind.
  const psk = new Uint8Array(body.subarray(pskField.start, pskField.end));
  return { inviterPublicKey, endpoints, inviteId, psk, expiresUnixSec, inviterName, peerName };
}
