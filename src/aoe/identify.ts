import { AoegwError } from '../errors.js';
import { LBA28_MAX, LBA48_MAX, SECTOR_SIZE } from './constants.js';

/**
 * IDENTIFY DEVICE data: 256 little-endian 16-bit words. Word values follow vblade plus FLUSH
 * CACHE EXT (AOE-FACTS), because Linux reads capacity and LBA48 support from them.
 */

export const IDENTIFY_SIZE = SECTOR_SIZE;

export interface IdentifyInfo {
  /** Capacity in 512-byte sectors, 0..2^48-1. */
  sectors: number;
  /** ASCII; truncated to 20 / 40 / 8 characters, space-padded. */
  serial: string;
  model: string;
  firmware: string;
  /** World wide name (64 bits; words 108-111), or absent. */
  wwn?: bigint;
}

export interface IdentifyParsed {
  sectors: number;
  lba48: boolean;
  serial: string;
  model: string;
  firmware: string;
  flushCache: boolean;
  flushCacheExt: boolean;
  /** World wide name when words 84/87 bit 8 say it is present. */
  wwn: bigint | null;
}

/** [first word, word count] of each string field. */
const SERIAL: readonly [number, number] = [10, 10];
const FIRMWARE: readonly [number, number] = [23, 4];
const MODEL: readonly [number, number] = [27, 20];

const W83_W86_LBA48 = 1 << 10;
const W83_W86_FLUSH = 1 << 12;
const W83_W86_FLUSH_EXT = 1 << 13;
/** Words 84 and 87 bit 8: the world wide name in words 108-111 is supported / valid. */
const W84_W87_WWN = 1 << 8;

/** Fixed words: [word, value]. */
const WORDS: readonly (readonly [number, number])[] = [
  [47, 0x8000],
  [49, 0x0200], // LBA supported
  [50, 0x4000],
  [83, 0x4000 | W83_W86_FLUSH_EXT | W83_W86_FLUSH | W83_W86_LBA48], // 0x7400; bit 14 = word valid
  [84, 0x4000],
  [86, W83_W86_FLUSH_EXT | W83_W86_FLUSH | W83_W86_LBA48], // 0x3400: the same features enabled
  [87, 0x4000],
  [93, 0x400b],
];

function setWord(b: Uint8Array, off: number, w: number, v: number): void {
  b[off + 2 * w] = v & 0xff;
  b[off + 2 * w + 1] = (v >>> 8) & 0xff;
}

function getWord(b: Uint8Array, off: number, w: number): number {
  return b[off + 2 * w]! | (b[off + 2 * w + 1]! << 8);
}

/** ATA strings put the first character of each pair in the word's high byte. */
function setString(b: Uint8Array, off: number, field: readonly [number, number], s: string): void {
  const [w, words] = field;
  for (let i = 0; i < words * 2; i++) {
    let c = i < s.length ? s.charCodeAt(i) : 0x20;
    if (c < 0x20 || c > 0x7e) c = 0x3f; // '?': the field is printable ASCII only
    b[off + 2 * w + (i ^ 1)] = c;
  }
}

function getString(b: Uint8Array, off: number, field: readonly [number, number]): string {
  const [w, words] = field;
  let s = '';
  for (let i = 0; i < words * 2; i++) s += String.fromCharCode(b[off + 2 * w + (i ^ 1)]!);
  return s.replace(/^[\s\0]+|[\s\0]+$/g, '');
}

/** Writes 512 bytes of IDENTIFY data at out[off]. Throws on a bad capacity or too small a buffer. */
export function buildIdentify(out: Uint8Array, info: IdentifyInfo, off = 0): void {
  const { sectors } = info;
  if (!Number.isInteger(sectors) || sectors < 0 || sectors > LBA48_MAX) {
    throw new AoegwError('ERR_AOE_BAD_ARGUMENT', `capacity ${sectors} sectors out of range`);
  }
  if (!Number.isInteger(off) || off < 0 || off + IDENTIFY_SIZE > out.length) {
    throw new AoegwError('ERR_AOE_ENCODE_SPACE', 'IDENTIFY data needs 512 bytes');
  }
  out.fill(0, off, off + IDENTIFY_SIZE);
  for (const [w, v] of WORDS) setWord(out, off, w, v);
  setString(out, off, SERIAL, info.serial);
  setString(out, off, FIRMWARE, info.firmware);
  setString(out, off, MODEL, info.model);
  // LBA28 capacity saturates: a larger disk is reached through LBA48.
  const lba28 = Math.min(sectors, LBA28_MAX);
  setWord(out, off, 60, lba28 & 0xffff);
  setWord(out, off, 61, lba28 >>> 16);
  const lo = sectors >>> 0;
  const hi = Math.floor(sectors / 0x1_0000_0000);
  setWord(out, off, 100, lo & 0xffff);
  setWord(out, off, 101, lo >>> 16);
  setWord(out, off, 102, hi & 0xffff);
  setWord(out, off, 103, 0);
  if (info.wwn !== undefined) {
    if (info.wwn < 0n || info.wwn >= 1n << 64n)
      throw new AoegwError('ERR_AOE_BAD_ARGUMENT', 'WWN must be 64 bits');
    setWord(out, off, 84, getWord(out, off, 84) | W84_W87_WWN);
    setWord(out, off, 87, getWord(out, off, 87) | W84_W87_WWN);
    // Most significant word first.
    for (let i = 0; i < 4; i++)
      setWord(out, off, 108 + i, Number((info.wwn >> BigInt(48 - 16 * i)) & 0xffffn));
  }
}

/** Reads what an initiator needs. Like Linux, LBA48 (and the capacity words used) from (w83|w86) bit 10. */
export function parseIdentify(data: Uint8Array, off = 0): IdentifyParsed {
  if (!Number.isInteger(off) || off < 0 || off + IDENTIFY_SIZE > data.length) {
    throw new AoegwError('ERR_AOE_TRUNCATED', 'IDENTIFY data shorter than 512 bytes');
  }
  const features = getWord(data, off, 83) | getWord(data, off, 86);
  const lba48 = (features & W83_W86_LBA48) !== 0;
  const sectors = lba48
    ? getWord(data, off, 100) +
      getWord(data, off, 101) * 0x1_0000 +
      getWord(data, off, 102) * 0x1_0000_0000 +
      getWord(data, off, 103) * 0x1_0000_0000_0000
    : getWord(data, off, 60) + getWord(data, off, 61) * 0x1_0000;
  return {
    sectors,
    lba48,
    serial: getString(data, off, SERIAL),
    model: getString(data, off, MODEL),
    firmware: getString(data, off, FIRMWARE),
    flushCache: (features & W83_W86_FLUSH) !== 0,
    flushCacheExt: (features & W83_W86_FLUSH_EXT) !== 0,
    wwn:
      (getWord(data, off, 87) & W84_W87_WWN) !== 0
        ? [108, 109, 110, 111].reduce((acc, w) => (acc << 16n) | BigInt(getWord(data, off, w)), 0n)
        : null,
  };
}
