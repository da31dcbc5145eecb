import { AoegwError } from '../errors.js';
import { copyBytes, isValidLength, padToMinFrame, readU16, writeU16 } from './bytes.js';
import {
  AOE_VERSION,
  ARG_OFFSET,
  CONFIG_STRING_OFFSET,
  ConfigCmd,
  Flag,
  MAX_CONFIG_STRING,
  MIN_FRAME,
  Off,
} from './constants.js';
import { DecodeError } from './decode-error.js';
import { ensureSpace, type HeaderFields, writeHeader } from './header.js';

/** Query Config argument (command 1) without its string. */
export interface QueryConfigFields {
  bufferCount: number;
  firmwareVersion: number;
  /** Max sectors per ATA command; 0 means 2. */
  sectorCount: number;
  /** Inner version nibble: 1 in responses, 0 in Linux requests (it zeroes the argument). */
  aoeVersion: number;
  ccmd: number;
}

/** Reusable view; the config string is buf[configOffset, +configLength), not copied. */
export class QueryConfigArg implements QueryConfigFields {
  bufferCount = 0;
  firmwareVersion = 0;
  sectorCount = 0;
  aoeVersion = 0;
  ccmd = 0;
  configOffset = CONFIG_STRING_OFFSET;
  configLength = 0;
}

const A = ARG_OFFSET;

/**
 * Decodes the Query Config argument. The string length field, never the frame length, bounds the
 * string, so padding is not read as config. The inner version must be 0 (Linux) or 1 and ccmd
 * 0..4, except in error replies (E set), which echo the offending request unchecked.
 */
export function decodeQueryConfig(buf: Uint8Array, len: number, out: QueryConfigArg): number {
  if (!isValidLength(buf, len)) return DecodeError.BAD_INPUT;
  if (len < CONFIG_STRING_OFFSET) return DecodeError.TRUNCATED;
  out.bufferCount = readU16(buf, A);
  out.firmwareVersion = readU16(buf, A + 2);
  out.sectorCount = buf[A + 4]!;
  const vc = buf[A + 5]!;
  out.aoeVersion = vc >>> 4;
  out.ccmd = vc & 0x0f;
  const strLen = readU16(buf, A + 6);
  out.configOffset = CONFIG_STRING_OFFSET;
  out.configLength = strLen;
  if (strLen > MAX_CONFIG_STRING) return DecodeError.STRING_TOO_LONG;
  if (CONFIG_STRING_OFFSET + strLen > len) return DecodeError.TRUNCATED;
  if ((buf[Off.VER_FLAGS]! & Flag.ERROR) === 0) {
    if (out.aoeVersion > AOE_VERSION) return DecodeError.BAD_VERSION;
    if (out.ccmd > ConfigCmd.FORCE_SET) return DecodeError.BAD_ARGUMENT;
  }
  return DecodeError.OK;
}

/**
 * Full Query Config frame (request or response per h.flags). `config` is copied after the
 * argument; with `config = null` and `configLen` > 0 the string is assumed already at offset 32.
 * Pads to 60 bytes and returns the frame length.
 */
export function encodeQueryConfig(
  out: Uint8Array,
  h: HeaderFields,
  q: QueryConfigFields,
  config: Uint8Array | null = null,
  configOff = 0,
  configLen: number = config ? config.length - configOff : 0,
): number {
  if (!Number.isInteger(configLen) || configLen < 0) {
    throw new AoegwError('ERR_AOE_BAD_ARGUMENT', `bad config length ${configLen}`);
  }
  if (configLen > MAX_CONFIG_STRING) {
    throw new AoegwError('ERR_AOE_STRING_TOO_LONG', `config string of ${configLen} bytes exceeds 1024`);
  }
  if (config && (!Number.isInteger(configOff) || configOff < 0 || configOff + configLen > config.length)) {
    throw new AoegwError('ERR_AOE_BAD_ARGUMENT', 'config range outside the config buffer');
  }
  const end = CONFIG_STRING_OFFSET + configLen;
  ensureSpace(out, Math.max(end, MIN_FRAME));
  writeHeader(out, h);
  writeU16(out, A, q.bufferCount);
  writeU16(out, A + 2, q.firmwareVersion);
  out[A + 4] = q.sectorCount & 0xff;
  out[A + 5] = ((q.aoeVersion & 0x0f) << 4) | (q.ccmd & 0x0f);
  writeU16(out, A + 6, configLen);
  if (config && configLen > 0) copyBytes(config, configOff, out, CONFIG_STRING_OFFSET, configLen);
  return padToMinFrame(out, end, MIN_FRAME);
}
