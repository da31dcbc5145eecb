import { AtaArg, decodeAta } from './ata.js';
import { isValidLength } from './bytes.js';
import { AtaFlag, COMMON_HEADER_END, Command, Flag } from './constants.js';
import { DecodeError, DecodeFlags, decodeErrorToAoegw } from './decode-error.js';
import { AoeHeader, decodeHeader } from './header.js';
import { formatMac } from './mac.js';
import { decodeMacMask, directiveOffset, MacMaskArg } from './mac-mask.js';
import type { AoeMessage, AoeMessageBase, DecodeFrameOptions, Result } from './message.js';
import { decodeQueryConfig, QueryConfigArg } from './query-config.js';
import { decodeReserve, ReserveArg, reserveMacOffset } from './reserve.js';

// Scratch views: decodeFrame is synchronous and copies everything it keeps out of them.
const header = new AoeHeader();
const ata = new AtaArg();
const qc = new QueryConfigArg();
const mask = new MacMaskArg();
const rsv = new ReserveArg();

function fail(code: number, detail?: string): Result<AoeMessage> {
  return { ok: false, error: decodeErrorToAoegw(code, detail) };
}

function view(buf: Uint8Array, off: number, len: number): Buffer {
  return Buffer.from(buf.buffer, buf.byteOffset + off, len);
}

/**
 * Decodes one frame (bytes [0, len), len defaulting to buf.length) into a plain message, built on
 * the hot-path decoders. Never throws: any input, including non-buffers and a len that is NaN,
 * negative, fractional or > buf.length, yields { ok: false } with an ERR_AOE_* code.
 */
export function decodeFrame(buf: Uint8Array, len?: number, options?: DecodeFrameOptions): Result<AoeMessage> {
  if (!(buf instanceof Uint8Array)) return fail(DecodeError.BAD_INPUT, 'input is not a Uint8Array');
  const n = len === undefined ? buf.length : len;
  if (!isValidLength(buf, n))
    return fail(DecodeError.BAD_INPUT, `length ${String(n)} for ${buf.length} bytes`);
  const flags = options?.strict === true ? DecodeFlags.STRICT : DecodeFlags.NONE;
  const he = decodeHeader(buf, n, header, flags);
  if (he !== DecodeError.OK)
    return fail(he, he === DecodeError.UNKNOWN_COMMAND ? `command ${header.command}` : undefined);
  const base: AoeMessageBase = {
    dst: formatMac(header.dst),
    src: formatMac(header.src),
    response: (header.flags & Flag.RESPONSE) !== 0,
    errorFlag: (header.flags & Flag.ERROR) !== 0,
    error: header.error,
    major: header.major,
    minor: header.minor,
    tag: header.tag,
  };
  switch (header.command) {
    case Command.ATA: {
      const e = decodeAta(buf, n, ata, flags);
      if (e !== DecodeError.OK) return fail(e, 'ATA');
      return {
        ok: true,
        value: {
          ...base,
          command: 'ata',
          lba48: (ata.aflags & AtaFlag.LBA48) !== 0,
          device: (ata.aflags & AtaFlag.DEVICE) !== 0,
          async: (ata.aflags & AtaFlag.ASYNC) !== 0,
          write: (ata.aflags & AtaFlag.WRITE) !== 0,
          errFeature: ata.errFeature,
          sectorCount: ata.sectorCount,
          cmdStatus: ata.cmdStatus,
          lba: ata.lba,
          data: view(buf, ata.dataOffset, ata.dataLength),
        },
      };
    }
    case Command.QUERY_CONFIG: {
      const e = decodeQueryConfig(buf, n, qc);
      if (e !== DecodeError.OK) return fail(e, 'Query Config');
      return {
        ok: true,
        value: {
          ...base,
          command: 'query-config',
          bufferCount: qc.bufferCount,
          firmwareVersion: qc.firmwareVersion,
          sectorCount: qc.sectorCount,
          aoeVersion: qc.aoeVersion,
          ccmd: qc.ccmd,
          config: view(buf, qc.configOffset, qc.configLength),
        },
      };
    }
    case Command.MAC_MASK: {
      const e = decodeMacMask(buf, n, mask);
      if (e !== DecodeError.OK) return fail(e, 'Mac Mask List');
      const directives: { dcmd: number; mac: string }[] = [];
      for (let i = 0; i < mask.count; i++) {
        const o = directiveOffset(i);
        directives.push({ dcmd: buf[o + 1]!, mac: formatMac(buf, o + 2) });
      }
      return {
        ok: true,
        value: { ...base, command: 'mac-mask', mcmd: mask.mcmd, merror: mask.merror, directives },
      };
    }
    case Command.RESERVE: {
      const e = decodeReserve(buf, n, rsv);
      if (e !== DecodeError.OK) return fail(e, 'Reserve/Release');
      const macs: string[] = [];
      for (let i = 0; i < rsv.nmacs; i++) macs.push(formatMac(buf, reserveMacOffset(i)));
      return { ok: true, value: { ...base, command: 'reserve', rcmd: rsv.rcmd, macs } };
    }
    default:
      // decodeHeader only lets vendor commands through here.
      return {
        ok: true,
        value: {
          ...base,
          command: 'vendor',
          code: header.command,
          argument: view(buf, COMMON_HEADER_END, n - COMMON_HEADER_END),
        },
      };
  }
}
