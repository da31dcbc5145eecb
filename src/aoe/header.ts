import { AoegwError } from '../errors.js';
import { isValidLength, readU16, readU32, writeU16, writeU32 } from './bytes.js';
import {
  AOE_ETHERTYPE,
  AOE_VERSION,
  COMMON_HEADER_END,
  ETH_HEADER_SIZE,
  Flag,
  isVendorCommand,
  MAC_SIZE,
  Off,
} from './constants.js';
import { DecodeError, DecodeFlags } from './decode-error.js';

/** What the encoders need from a header; an AoeHeader view satisfies it, so it can be reused. */
export interface HeaderFields {
  /** 6 bytes. */
  readonly dst: Uint8Array;
  /** 6 bytes. */
  readonly src: Uint8Array;
  /** Low nibble of byte 14; only R (0x08) and E (0x04) are written, reserved bits go out as zero. */
  flags: number;
  error: number;
  major: number;
  minor: number;
  command: number;
  tag: number;
}

/** Reusable, mutable view of the Ethernet + AoE common header. MACs are copied into own buffers. */
export class AoeHeader implements HeaderFields {
  readonly dst: Buffer = Buffer.alloc(MAC_SIZE);
  readonly src: Buffer = Buffer.alloc(MAC_SIZE);
  version = AOE_VERSION;
  /** Raw low nibble, reserved bits included (they are ignored unless decoding strictly). */
  flags = 0;
  error = 0;
  major = 0;
  minor = 0;
  command = 0;
  tag = 0;

  get isResponse(): boolean {
    return (this.flags & Flag.RESPONSE) !== 0;
  }

  get isError(): boolean {
    return (this.flags & Flag.ERROR) !== 0;
  }
}

/**
 * Decodes bytes [0, 24). Returns 0 or a DecodeError. Once the frame is known to be AoE and 24 bytes
 * long, every field of `out` is filled before version/reserved/command checks, so a target can
 * still answer BAD_VERSION with AoE error 5 and UNKNOWN_COMMAND with error 1 (tag and addresses
 * are valid). Vendor commands 0xF0-0xFF are accepted; their argument is opaque.
 */
export function decodeHeader(buf: Uint8Array, len: number, out: AoeHeader, flags: number = 0): number {
  if (!isValidLength(buf, len)) return DecodeError.BAD_INPUT;
  if (len < ETH_HEADER_SIZE) return DecodeError.TRUNCATED;
  if (readU16(buf, Off.ETHERTYPE) !== AOE_ETHERTYPE) return DecodeError.NOT_AOE;
  if (len < COMMON_HEADER_END) return DecodeError.TRUNCATED;
  for (let i = 0; i < MAC_SIZE; i++) {
    out.dst[i] = buf[Off.DST + i]!;
    out.src[i] = buf[Off.SRC + i]!;
  }
  const vf = buf[Off.VER_FLAGS]!;
  out.version = vf >>> 4;
  out.flags = vf & 0x0f;
  out.error = buf[Off.ERROR]!;
  out.major = readU16(buf, Off.MAJOR);
  out.minor = buf[Off.MINOR]!;
  out.command = buf[Off.COMMAND]!;
  out.tag = readU32(buf, Off.TAG);
  if (out.version !== AOE_VERSION) return DecodeError.BAD_VERSION;
  // Linux and vblade ignore these bits on receive; nothing in r11 depends on them, so only
  // strict callers (conformance checks) reject them.
  if ((flags & DecodeFlags.STRICT) !== 0 && (out.flags & Flag.RESERVED) !== 0)
    return DecodeError.RESERVED_BITS;
  if (out.command > 3 && !isVendorCommand(out.command)) return DecodeError.UNKNOWN_COMMAND;
  return DecodeError.OK;
}

export function ensureSpace(out: Uint8Array, need: number): void {
  if (out.length < need) {
    throw new AoegwError('ERR_AOE_ENCODE_SPACE', `frame needs ${need} bytes, buffer has ${out.length}`);
  }
}

/**
 * Writes bytes [0, 24) from `h` with the given flag nibble (reserved bits cleared, version 1).
 * Other fields are truncated to their wire width. Returns 24.
 */
export function writeHeaderWithFlags(out: Uint8Array, h: HeaderFields, flags: number): number {
  ensureSpace(out, COMMON_HEADER_END);
  for (let i = 0; i < MAC_SIZE; i++) {
    out[Off.DST + i] = h.dst[i]!;
    out[Off.SRC + i] = h.src[i]!;
  }
  writeU16(out, Off.ETHERTYPE, AOE_ETHERTYPE);
  out[Off.VER_FLAGS] = (AOE_VERSION << 4) | (flags & (Flag.RESPONSE | Flag.ERROR));
  out[Off.ERROR] = h.error & 0xff;
  writeU16(out, Off.MAJOR, h.major);
  out[Off.MINOR] = h.minor & 0xff;
  out[Off.COMMAND] = h.command & 0xff;
  writeU32(out, Off.TAG, h.tag >>> 0);
  return COMMON_HEADER_END;
}

/** Writes bytes [0, 24) from `h`, flags from h.flags. Returns 24. */
export function writeHeader(out: Uint8Array, h: HeaderFields): number {
  return writeHeaderWithFlags(out, h, h.flags);
}

/**
 * Turns a received request into its response header in place (target side): destination becomes
 * the requester, source becomes `ownMac` (never the broadcast address the request may have been
 * sent to), R set, E set iff `error` != 0, and the real shelf/slot written because Linux matches
 * replies on them and rejects broadcast addresses. Tag and command stay as received.
 */
export function writeResponseHeader(
  buf: Uint8Array,
  ownMac: Uint8Array,
  major: number,
  minor: number,
  error: number = 0,
): void {
  ensureSpace(buf, COMMON_HEADER_END);
  for (let i = 0; i < MAC_SIZE; i++) {
    buf[Off.DST + i] = buf[Off.SRC + i]!;
    buf[Off.SRC + i] = ownMac[i]!;
  }
  buf[Off.VER_FLAGS] = (AOE_VERSION << 4) | Flag.RESPONSE | (error !== 0 ? Flag.ERROR : 0);
  buf[Off.ERROR] = error & 0xff;
  writeU16(buf, Off.MAJOR, major);
  buf[Off.MINOR] = minor & 0xff;
}
