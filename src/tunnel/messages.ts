/**
 * Wire layouts of the five tunnel messages (docs/protocol.md, "Messages"). Every message starts with
 * a 4-byte header: byte 0 type, byte 1 version (1), bytes 2..3 reserved (zero). Integers are
 * little-endian except inside the TAI64N timestamp. Checks are size-first and nothing here throws
 * on bytes from the wire: classify() returns a negative code, decode*() return null.
 */

import { PROTOCOL_VERSION } from './constants.js';
import { DH_LEN, TAG_LEN, XNONCE_LEN } from './crypto.js';

export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;
/** An initiation that also names an enrollment invite (docs/protocol.md, "Enrollment"). */
export const MSG_ENROLL = 5;
export type MessageType = 1 | 2 | 3 | 4 | 5;

export const HEADER_LEN = 4;
export const MAC_LEN = 16;
export const COOKIE_LEN = 16;
export const TIMESTAMP_LEN = 12;

/** Handshake initiation: 148 bytes. */
export const INIT_SENDER = 4;
export const INIT_EPHEMERAL = 8;
export const INIT_STATIC = INIT_EPHEMERAL + DH_LEN; // 40
export const INIT_TIMESTAMP = INIT_STATIC + DH_LEN + TAG_LEN; // 88
export const INIT_MAC1 = INIT_TIMESTAMP + TIMESTAMP_LEN + TAG_LEN; // 116
export const INIT_MAC2 = INIT_MAC1 + MAC_LEN; // 132
export const INIT_LEN = INIT_MAC2 + MAC_LEN; // 148
/** The Noise message 1 (e, encrypted s, encrypted timestamp) inside the initiation. */
export const INIT_NOISE = INIT_EPHEMERAL;
export const INIT_NOISE_LEN = INIT_MAC1 - INIT_EPHEMERAL; // 108

/** Invite ids in enrollment initiations: 16 random bytes. */
export const INVITE_ID_LEN = 16;

/**
 * Enrollment initiation: 164 bytes. An initiation whose encrypted payload is the timestamp followed
 * by the invite id, so everything after the payload moves by INVITE_ID_LEN.
 */
export const ENROLL_MAC1 = INIT_MAC1 + INVITE_ID_LEN; // 132
export const ENROLL_MAC2 = ENROLL_MAC1 + MAC_LEN; // 148
export const ENROLL_LEN = ENROLL_MAC2 + MAC_LEN; // 164
export const ENROLL_NOISE_LEN = ENROLL_MAC1 - INIT_EPHEMERAL; // 124

/** Handshake response: 92 bytes. */
export const RESP_SENDER = 4;
export const RESP_RECEIVER = 8;
export const RESP_EPHEMERAL = 12;
export const RESP_EMPTY = RESP_EPHEMERAL + DH_LEN; // 44
export const RESP_MAC1 = RESP_EMPTY + TAG_LEN; // 60
export const RESP_MAC2 = RESP_MAC1 + MAC_LEN; // 76
export const RESP_LEN = RESP_MAC2 + MAC_LEN; // 92
export const RESP_NOISE = RESP_EPHEMERAL;
export const RESP_NOISE_LEN = RESP_MAC1 - RESP_EPHEMERAL; // 48

/** Cookie reply: 64 bytes. */
export const COOKIE_RECEIVER = 4;
export const COOKIE_NONCE = 8;
export const COOKIE_SEALED = COOKIE_NONCE + XNONCE_LEN; // 32
export const COOKIE_REPLY_LEN = COOKIE_SEALED + COOKIE_LEN + TAG_LEN; // 64

/** Transport data: 16-byte header, then the sealed records (at least the 16-byte tag). */
export const DATA_RECEIVER = 4;
export const DATA_COUNTER = 8;
export const DATA_PAYLOAD = 16;
export const DATA_MIN_LEN = DATA_PAYLOAD + TAG_LEN; // 32
/** Bytes a transport message adds around its plaintext. */
export const DATA_OVERHEAD = DATA_PAYLOAD + TAG_LEN;

/** Negative results of classify(). */
export const PARSE_TOO_SHORT = -1;
export const PARSE_UNKNOWN_TYPE = -2;
export const PARSE_BAD_VERSION = -3;
export const PARSE_RESERVED = -4;
export const PARSE_BAD_LENGTH = -5;

/**
 * The message type of `len` bytes at the start of `buf`, or a negative PARSE_* code: header too short,
 * unknown type, other version, non-zero reserved bytes, or a length that type never has
 * (handshake messages and cookie replies have one exact length; transport has a minimum).
 */
export function classify(buf: Uint8Array, len: number): MessageType | number {
  if (!(len >= HEADER_LEN) || len > buf.length) return PARSE_TOO_SHORT;
  const type = buf[0]!;
  if (type < MSG_INITIATION || type > MSG_ENROLL) return PARSE_UNKNOWN_TYPE;
  if (buf[1] !== PROTOCOL_VERSION) return PARSE_BAD_VERSION;
  if (buf[2] !== 0 || buf[3] !== 0) return PARSE_RESERVED;
  switch (type) {
    case MSG_INITIATION:
      return len === INIT_LEN ? type : PARSE_BAD_LENGTH;
    case MSG_RESPONSE:
      return len === RESP_LEN ? type : PARSE_BAD_LENGTH;
    case MSG_COOKIE_REPLY:
      return len === COOKIE_REPLY_LEN ? type : PARSE_BAD_LENGTH;
    case MSG_ENROLL:
      return len === ENROLL_LEN ? type : PARSE_BAD_LENGTH;
    default:
      return len >= DATA_MIN_LEN ? type : PARSE_BAD_LENGTH;
  }
}

export function writeHeader(out: Uint8Array, off: number, type: MessageType): void {
  out[off] = type;
  out[off + 1] = PROTOCOL_VERSION;
  out[off + 2] = 0;
  out[off + 3] = 0;
}

export function readU32(buf: Uint8Array, off: number): number {
  return (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
}

export function writeU32(out: Uint8Array, off: number, v: number): void {
  out[off] = v & 0xff;
  out[off + 1] = (v >>> 8) & 0xff;
  out[off + 2] = (v >>> 16) & 0xff;
  out[off + 3] = (v >>> 24) & 0xff;
}

/** The transport counter (u64 LE) at `off`. */
export function readU64(buf: Uint8Array, off: number): bigint {
  const lo = readU32(buf, off);
  const hi = readU32(buf, off + 4);
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

export function writeU64(out: Uint8Array, off: number, v: bigint): void {
  writeU32(out, off, Number(v & 0xffff_ffffn));
  writeU32(out, off + 4, Number((v >> 32n) & 0xffff_ffffn));
}

// ---- TAI64N timestamps (big-endian, so byte order is time order) ----

/** TAI64 label of the Unix epoch (2^62); leap seconds are ignored, as in WireGuard practice. */
const TAI64_EPOCH = 1n << 62n;
const NS_PER_S = 1_000_000_000n;

/** 12-byte TAI64N of `ns` nanoseconds since the Unix epoch. */
export function writeTai64n(out: Uint8Array, off: number, ns: bigint): void {
  const secs = ns / NS_PER_S + TAI64_EPOCH;
  const nanos = Number(ns % NS_PER_S);
  for (let i = 7; i >= 0; i--) out[off + 7 - i] = Number((secs >> BigInt(8 * i)) & 0xffn);
  out[off + 8] = (nanos >>> 24) & 0xff;
  out[off + 9] = (nanos >>> 16) & 0xff;
  out[off + 10] = (nanos >>> 8) & 0xff;
  out[off + 11] = nanos & 0xff;
}

/** Nanoseconds since the Unix epoch, or null for a value no writer produces (nanos ≥ 10^9, pre-1970). */
export function readTai64n(buf: Uint8Array, off: number): bigint | null {
  if (off < 0 || off + TIMESTAMP_LEN > buf.length) return null;
  let secs = 0n;
  for (let i = 0; i < 8; i++) secs = (secs << 8n) | BigInt(buf[off + i]!);
  const nanos =
    ((buf[off + 8]! << 24) | (buf[off + 9]! << 16) | (buf[off + 10]! << 8) | buf[off + 11]!) >>> 0;
  if (nanos >= 1_000_000_000 || secs < TAI64_EPOCH) return null;
  return (secs - TAI64_EPOCH) * NS_PER_S + BigInt(nanos);
}

/** Unsigned big-endian comparison of two equal-length byte strings: <0, 0, >0. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

// ---- Friendly decoders (tests, tools, logs); the endpoint reads fields in place ----

export interface Initiation {
  readonly senderIndex: number;
  readonly ephemeral: Uint8Array;
  readonly encryptedStatic: Uint8Array;
  readonly encryptedTimestamp: Uint8Array;
  readonly mac1: Uint8Array;
  readonly mac2: Uint8Array;
}

export interface Response {
  readonly senderIndex: number;
  readonly receiverIndex: number;
  readonly ephemeral: Uint8Array;
  readonly encryptedEmpty: Uint8Array;
  readonly mac1: Uint8Array;
  readonly mac2: Uint8Array;
}

export interface CookieReply {
  readonly receiverIndex: number;
  readonly nonce: Uint8Array;
  readonly encryptedCookie: Uint8Array;
}

export interface TransportHeader {
  readonly receiverIndex: number;
  readonly counter: bigint;
  /** Ciphertext and tag (a view). */
  readonly sealed: Uint8Array;
}

/** Copies of the fields, or null when `buf` is not a well-formed initiation. */
export function decodeInitiation(buf: Uint8Array): Initiation | null {
  if (classify(buf, buf.length) !== MSG_INITIATION) return null;
  return {
    senderIndex: readU32(buf, INIT_SENDER),
    ephemeral: buf.slice(INIT_EPHEMERAL, INIT_STATIC),
    encryptedStatic: buf.slice(INIT_STATIC, INIT_TIMESTAMP),
    encryptedTimestamp: buf.slice(INIT_TIMESTAMP, INIT_MAC1),
    mac1: buf.slice(INIT_MAC1, INIT_MAC2),
    mac2: buf.slice(INIT_MAC2, INIT_LEN),
  };
}

export function decodeResponse(buf: Uint8Array): Response | null {
  if (classify(buf, buf.length) !== MSG_RESPONSE) return null;
  return {
    senderIndex: readU32(buf, RESP_SENDER),
    receiverIndex: readU32(buf, RESP_RECEIVER),
    ephemeral: buf.slice(RESP_EPHEMERAL, RESP_EMPTY),
    encryptedEmpty: buf.slice(RESP_EMPTY, RESP_MAC1),
    mac1: buf.slice(RESP_MAC1, RESP_MAC2),
    mac2: buf.slice(RESP_MAC2, RESP_LEN),
  };
}

export function decodeCookieReply(buf: Uint8Array): CookieReply | null {
  if (classify(buf, buf.length) !== MSG_COOKIE_REPLY) return null;
  return {
    receiverIndex: readU32(buf, COOKIE_RECEIVER),
    nonce: buf.slice(COOKIE_NONCE, COOKIE_SEALED),
    encryptedCookie: buf.slice(COOKIE_SEALED, COOKIE_REPLY_LEN),
  };
}

export function decodeTransportHeader(buf: Uint8Array): TransportHeader | null {
  if (classify(buf, buf.length) !== MSG_TRANSPORT) return null;
  return {
    receiverIndex: readU32(buf, DATA_RECEIVER),
    counter: readU64(buf, DATA_COUNTER),
    sealed: buf.subarray(DATA_PAYLOAD),
  };
}
