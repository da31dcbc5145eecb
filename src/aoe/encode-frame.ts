import { AoegwError } from '../errors.js';
import { encodeAta } from './ata.js';
import { copyBytes, padToMinFrame } from './bytes.js';
import {
  ATA_DATA_OFFSET,
  AtaFlag,
  AtaStatus,
  COMMON_HEADER_END,
  CONFIG_STRING_OFFSET,
  Command,
  Flag,
  LBA28_MAX,
  LBA48_MAX,
  MAX_CONFIG_STRING,
  MAX_LIST_ENTRIES,
  MIN_FRAME,
  SECTOR_SIZE,
} from './constants.js';
import { decodeFrame } from './decode-frame.js';
import { type HeaderFields, writeHeader } from './header.js';
import { macFromString } from './mac.js';
import { directiveOffset, encodeMacMask, type MacDirective } from './mac-mask.js';
import type { AoeMessage, AtaMessage } from './message.js';
import { encodeQueryConfig } from './query-config.js';
import { encodeReserve, reserveMacOffset } from './reserve.js';

function bad(msg: string): AoegwError {
  return new AoegwError('ERR_AOE_BAD_ARGUMENT', msg);
}

function uint(name: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw bad(`${name} must be an integer in 0..${max}, got ${String(v)}`);
  }
  return v;
}

function bytes(name: string, v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(`${name} must be a Uint8Array`);
  return v;
}

function mac(name: string, s: unknown): Buffer {
  const b = typeof s === 'string' ? macFromString(s) : null;
  if (!b) throw bad(`${name} must be a MAC like 'aa:bb:cc:dd:ee:ff', got ${String(s)}`);
  return b;
}

function headerOf(msg: AoeMessage, command: number): HeaderFields {
  return {
    dst: mac('dst', msg.dst),
    src: mac('src', msg.src),
    flags: (msg.response ? Flag.RESPONSE : 0) | (msg.errorFlag ? Flag.ERROR : 0),
    error: uint('error', msg.error, 0xff),
    major: uint('major', msg.major, 0xffff),
    minor: uint('minor', msg.minor, 0xff),
    command,
    tag: uint('tag', msg.tag, 0xffffffff),
  };
}

/** Data the decoder will attribute to this ATA message; anything else would not round-trip. */
function checkAtaData(m: AtaMessage, dataLen: number): void {
  const full = m.sectorCount * SECTOR_SIZE;
  if (!m.response) {
    if (m.write ? dataLen !== full : dataLen !== 0) {
      throw bad(`ATA ${m.write ? 'write' : 'non-write'} request needs ${m.write ? full : 0} data bytes`);
    }
    return;
  }
  const mayCarry = !m.errorFlag && !m.write && (m.cmdStatus & AtaStatus.FAIL_MASK) === 0;
  if (mayCarry ? dataLen !== 0 && dataLen !== full : dataLen !== 0) {
    throw bad(`ATA response data must be ${mayCarry ? `0 or ${full}` : '0'} bytes, got ${dataLen}`);
  }
}

/**
 * Encodes a message into a new Buffer (padded to 60 bytes) via the hot-path encoders. For tools
 * and tests. Throws AoegwError (ERR_AOE_BAD_ARGUMENT, ERR_AOE_STRING_TOO_LONG, or the decode
 * error) rather than truncate a field or produce a frame that decodeFrame would not return as an
 * equal message (vendor arguments shorter than 36 bytes excepted: they come back padded).
 */
export function encodeFrame(msg: AoeMessage): Buffer {
  if (typeof msg !== 'object' || msg === null) throw bad('message must be an object');
  let out: Buffer;
  let n: number;
  switch (msg.command) {
    case 'ata': {
      const h = headerOf(msg, Command.ATA);
      const lba48 = msg.lba48 === true;
      const a = {
        aflags:
          (lba48 ? AtaFlag.LBA48 : 0) |
          (msg.device ? AtaFlag.DEVICE : 0) |
          (msg.async ? AtaFlag.ASYNC : 0) |
          (msg.write ? AtaFlag.WRITE : 0),
        errFeature: uint('errFeature', msg.errFeature, 0xff),
        sectorCount: uint('sectorCount', msg.sectorCount, 0xff),
        cmdStatus: uint('cmdStatus', msg.cmdStatus, 0xff),
        lba: uint('lba', msg.lba, lba48 ? LBA48_MAX : LBA28_MAX),
      };
      const data = bytes('data', msg.data);
      checkAtaData(msg, data.length);
      out = Buffer.alloc(Math.max(MIN_FRAME, ATA_DATA_OFFSET + data.length));
      n = encodeAta(out, h, a, data);
      break;
    }
    case 'query-config': {
      const h = headerOf(msg, Command.QUERY_CONFIG);
      const q = {
        bufferCount: uint('bufferCount', msg.bufferCount, 0xffff),
        firmwareVersion: uint('firmwareVersion', msg.firmwareVersion, 0xffff),
        sectorCount: uint('sectorCount', msg.sectorCount, 0xff),
        aoeVersion: uint('aoeVersion', msg.aoeVersion, 0x0f),
        ccmd: uint('ccmd', msg.ccmd, 0x0f),
      };
      const config = bytes('config', msg.config);
      if (config.length > MAX_CONFIG_STRING) {
        throw new AoegwError(
          'ERR_AOE_STRING_TOO_LONG',
          `config string of ${config.length} bytes exceeds 1024`,
        );
      }
      out = Buffer.alloc(Math.max(MIN_FRAME, CONFIG_STRING_OFFSET + config.length));
      n = encodeQueryConfig(out, h, q, config);
      break;
    }
    case 'mac-mask': {
      const h = headerOf(msg, Command.MAC_MASK);
      const list = msg.directives;
      if (!Array.isArray(list) || list.length > MAX_LIST_ENTRIES)
        throw bad('directives: array of at most 255');
      const directives: MacDirective[] = list.map((d, i) => ({
        dcmd: uint(`directives[${i}].dcmd`, d?.dcmd, 0xff),
        mac: mac(`directives[${i}].mac`, d?.mac),
      }));
      out = Buffer.alloc(Math.max(MIN_FRAME, directiveOffset(directives.length)));
      n = encodeMacMask(
        out,
        h,
        { mcmd: uint('mcmd', msg.mcmd, 0xff), merror: uint('merror', msg.merror, 0xff) },
        directives,
      );
      break;
    }
    case 'reserve': {
      const h = headerOf(msg, Command.RESERVE);
      const list = msg.macs;
      if (!Array.isArray(list) || list.length > MAX_LIST_ENTRIES) throw bad('macs: array of at most 255');
      const macs = list.map((s, i) => mac(`macs[${i}]`, s));
      out = Buffer.alloc(Math.max(MIN_FRAME, reserveMacOffset(macs.length)));
      n = encodeReserve(out, h, uint('rcmd', msg.rcmd, 0xff), macs);
      break;
    }
    case 'vendor': {
      const code = uint('code', msg.code, Command.VENDOR_LAST);
      if (code < Command.VENDOR_FIRST) throw bad(`vendor code must be 0xF0..0xFF, got ${code}`);
      const h = headerOf(msg, code);
      const arg = bytes('argument', msg.argument);
      const end = COMMON_HEADER_END + arg.length;
      out = Buffer.alloc(Math.max(MIN_FRAME, end));
      writeHeader(out, h);
      copyBytes(arg, 0, out, COMMON_HEADER_END, arg.length);
      n = padToMinFrame(out, end, MIN_FRAME);
      break;
    }
    default:
      throw bad(`unknown message command ${String((msg as { command?: unknown }).command)}`);
  }
  // Semantic rules (ccmd, mcmd, dcmd, rcmd ranges, inner version) live in the decoders only;
  // running them here keeps one definition and guarantees encodeFrame output decodes.
  const check = decodeFrame(out, n);
  if (!check.ok) {
    throw new AoegwError(
      check.error.code,
      `encoded ${msg.command} frame would not decode: ${check.error.message}`,
    );
  }
  return n === out.length ? out : out.subarray(0, n);
}
