import { AoegwError } from '../errors.js';
import { copyBytes, isValidLength, padToMinFrame } from './bytes.js';
import {
  ARG_OFFSET,
  ATA_DATA_OFFSET,
  ATA_HEADER_END,
  AtaFlag,
  AtaStatus,
  Flag,
  LBA28_MAX,
  LBA48_MAX,
  MIN_FRAME,
  Off,
  SECTOR_SIZE,
} from './constants.js';
import { DecodeError, DecodeFlags } from './decode-error.js';
import { ensureSpace, type HeaderFields, writeHeaderWithFlags } from './header.js';

/** ATA argument (command 0). In a request cmdStatus is the opcode, in a response the status. */
export interface AtaFields {
  aflags: number;
  errFeature: number;
  sectorCount: number;
  cmdStatus: number;
  /** 28-bit (aflags E clear) or 48-bit (E set) address; 48 bits fit a JS number exactly. */
  lba: number;
}

/** Reusable view of the ATA argument. Data is not copied: it is buf[dataOffset, +dataLength). */
export class AtaArg implements AtaFields {
  aflags = 0;
  errFeature = 0;
  sectorCount = 0;
  cmdStatus = 0;
  lba = 0;
  dataOffset = ATA_DATA_OFFSET;
  dataLength = 0;
}

const A = ARG_OFFSET;

/**
 * Decodes the ATA argument of a frame whose header decodeHeader() accepted (R and E are read from
 * byte 14 here). Data rules, so that padding is never taken for data:
 * - request with W: carries exactly sectorCount × 512 bytes; fewer → SECTOR_COUNT.
 * - request without W: no data, whatever follows is padding.
 * - response with E, with W, or with a failing status (status & 0xA9): no data.
 * - other responses (a read, IDENTIFY, or a no-data command: the codec cannot tell, the opcode is
 *   not in the reply): sectorCount × 512 bytes if the frame holds them; else, if the frame is at
 *   most 60 bytes, no data (e.g. CHECK POWER MODE replies with count 0xFF); else SECTOR_COUNT.
 *   The initiator, which knows what it asked for, must still check dataLength.
 */
export function decodeAta(buf: Uint8Array, len: number, out: AtaArg, flags: number = 0): number {
  if (!isValidLength(buf, len)) return DecodeError.BAD_INPUT;
  if (len < ATA_HEADER_END) return DecodeError.TRUNCATED;
  const aflags = buf[A]!;
  out.aflags = aflags;
  out.errFeature = buf[A + 1]!;
  out.sectorCount = buf[A + 2]!;
  out.cmdStatus = buf[A + 3]!;
  // LBA0..LBA5 are little-endian, unlike every other AoE field.
  const lo = (buf[A + 4]! | (buf[A + 5]! << 8) | (buf[A + 6]! << 16) | (buf[A + 7]! << 24)) >>> 0;
  if ((aflags & AtaFlag.LBA48) !== 0) {
    out.lba = (buf[A + 8]! | (buf[A + 9]! << 8)) * 0x1_0000_0000 + lo;
  } else {
    // Linux puts 0xE0 (LBA mode + obsolete bits) in LBA3 of 28-bit commands.
    out.lba = lo & LBA28_MAX;
  }
  out.dataOffset = ATA_DATA_OFFSET;
  out.dataLength = 0;
  if ((flags & DecodeFlags.STRICT) !== 0 && (aflags & AtaFlag.RESERVED) !== 0) {
    return DecodeError.RESERVED_BITS;
  }
  const vf = buf[Off.VER_FLAGS]!;
  const avail = len - ATA_DATA_OFFSET;
  const need = out.sectorCount * SECTOR_SIZE;
  if ((vf & Flag.RESPONSE) === 0) {
    if ((aflags & AtaFlag.WRITE) !== 0) {
      if (avail < need) return DecodeError.SECTOR_COUNT;
      out.dataLength = need;
    }
  } else if (
    (vf & Flag.ERROR) === 0 &&
    (aflags & AtaFlag.WRITE) === 0 &&
    (out.cmdStatus & AtaStatus.FAIL_MASK) === 0
  ) {
    if (avail >= need) out.dataLength = need;
    else if (len > MIN_FRAME) return DecodeError.SECTOR_COUNT;
  }
  return DecodeError.OK;
}

function badArg(msg: string): AoegwError {
  return new AoegwError('ERR_AOE_BAD_ARGUMENT', msg);
}

/** Writes the 12-byte argument at offset 24. LBA28 addresses get 0xE0 in LBA3, as Linux sends. */
export function writeAtaArg(out: Uint8Array, a: AtaFields): void {
  ensureSpace(out, ATA_HEADER_END);
  const lba = a.lba;
  const lba48 = (a.aflags & AtaFlag.LBA48) !== 0;
  if (!Number.isInteger(lba) || lba < 0 || lba > (lba48 ? LBA48_MAX : LBA28_MAX)) {
    // Truncating an address would read or write the wrong sector: refuse.
    throw badArg(`LBA ${lba} out of range for ${lba48 ? 'LBA48' : 'LBA28'}`);
  }
  out[A] = a.aflags & 0xff;
  out[A + 1] = a.errFeature & 0xff;
  out[A + 2] = a.sectorCount & 0xff;
  out[A + 3] = a.cmdStatus & 0xff;
  const lo = lba >>> 0;
  out[A + 4] = lo & 0xff;
  out[A + 5] = (lo >>> 8) & 0xff;
  out[A + 6] = (lo >>> 16) & 0xff;
  if (lba48) {
    const hi = Math.floor(lba / 0x1_0000_0000);
    out[A + 7] = lo >>> 24;
    out[A + 8] = hi & 0xff;
    out[A + 9] = (hi >>> 8) & 0xff;
  } else {
    out[A + 7] = 0xe0 | (lo >>> 24);
    out[A + 8] = 0;
    out[A + 9] = 0;
  }
  out[A + 10] = 0;
  out[A + 11] = 0;
}

/**
 * Full ATA frame with flags from h.flags. Data: pass `data` (copied to offset 36), or pass
 * `data = null` with `dataLen` when the bytes are already at offset 36 of `out` (e.g. pread
 * straight into the frame: zero copies). Pads to 60 bytes. Returns the frame length.
 * Throws ERR_AOE_ENCODE_SPACE / ERR_AOE_BAD_ARGUMENT on caller errors.
 */
export function encodeAta(
  out: Uint8Array,
  h: HeaderFields,
  a: AtaFields,
  data: Uint8Array | null = null,
  dataOff = 0,
  dataLen: number = data ? data.length - dataOff : 0,
): number {
  return encodeAtaWithFlags(out, h, a, h.flags, data, dataOff, dataLen);
}

/** encodeAta with R forced clear. */
export function encodeAtaRequest(
  out: Uint8Array,
  h: HeaderFields,
  a: AtaFields,
  data: Uint8Array | null = null,
  dataOff = 0,
  dataLen: number = data ? data.length - dataOff : 0,
): number {
  return encodeAtaWithFlags(out, h, a, h.flags & ~Flag.RESPONSE, data, dataOff, dataLen);
}

/** encodeAta with R forced set. */
export function encodeAtaResponse(
  out: Uint8Array,
  h: HeaderFields,
  a: AtaFields,
  data: Uint8Array | null = null,
  dataOff = 0,
  dataLen: number = data ? data.length - dataOff : 0,
): number {
  return encodeAtaWithFlags(out, h, a, h.flags | Flag.RESPONSE, data, dataOff, dataLen);
}

function encodeAtaWithFlags(
  out: Uint8Array,
  h: HeaderFields,
  a: AtaFields,
  flags: number,
  data: Uint8Array | null,
  dataOff: number,
  dataLen: number,
): number {
  if (!Number.isInteger(dataLen) || dataLen < 0) throw badArg(`bad data length ${dataLen}`);
  if (data && (!Number.isInteger(dataOff) || dataOff < 0 || dataOff + dataLen > data.length)) {
    throw badArg('data range outside the data buffer');
  }
  const end = ATA_DATA_OFFSET + dataLen;
  ensureSpace(out, Math.max(end, MIN_FRAME));
  writeHeaderWithFlags(out, h, flags);
  writeAtaArg(out, a);
  if (data && dataLen > 0) copyBytes(data, dataOff, out, ATA_DATA_OFFSET, dataLen);
  return padToMinFrame(out, end, MIN_FRAME);
}

/**
 * Target side, in place after writeResponseHeader(): fill the ATA status and error registers,
 * keeping aflags, sector count and LBA as echoed from the request.
 */
export function writeAtaStatus(buf: Uint8Array, status: number, error: number): void {
  ensureSpace(buf, ATA_HEADER_END);
  buf[A + 1] = error & 0xff;
  buf[A + 3] = status & 0xff;
}
