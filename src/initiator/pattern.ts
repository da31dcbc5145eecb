/**
 * Deterministic per-sector data pattern for `aoegw verify`: every 512-byte sector is a function of
 * (seed, LBA), so a mismatch names the exact LBA and a stale or misplaced sector is detected (its
 * content encodes the LBA it was written for).
 */
import { SECTOR_SIZE } from '../aoe/constants.js';

/** Fills `out[off, off + sectors*512)` with the pattern for `lba`..`lba+sectors-1`. */
export function fillPattern(out: Uint8Array, off: number, lba: number, sectors: number, seed: number): void {
  for (let s = 0; s < sectors; s++) {
    const base = off + s * SECTOR_SIZE;
    const sectorLba = lba + s;
    // xorshift32 seeded from (seed, lba): cheap, and different for every sector and seed.
    let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(sectorLba % 0x100000000, 0xc2b2ae35)) | 0;
    x ^= Math.floor(sectorLba / 0x100000000);
    if (x === 0) x = 0x6d2b79f5;
    // The first 16 bytes carry the LBA and seed in clear, for humans reading a hex dump.
    writeU32LE(out, base, sectorLba % 0x100000000);
    writeU32LE(out, base + 4, Math.floor(sectorLba / 0x100000000));
    writeU32LE(out, base + 8, seed >>> 0);
    writeU32LE(out, base + 12, 0x616f6567); // "geoa"
    for (let i = 16; i < SECTOR_SIZE; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      writeU32LE(out, base + i, x >>> 0);
    }
  }
}

/** Returns the LBAs in [lba, lba+sectors) whose content differs from the pattern. */
export function checkPattern(
  data: Uint8Array,
  off: number,
  lba: number,
  sectors: number,
  seed: number,
): number[] {
  const expect = new Uint8Array(SECTOR_SIZE);
  const bad: number[] = [];
  for (let s = 0; s < sectors; s++) {
    fillPattern(expect, 0, lba + s, 1, seed);
    const base = off + s * SECTOR_SIZE;
    for (let i = 0; i < SECTOR_SIZE; i++) {
      if (data[base + i] !== expect[i]) {
        bad.push(lba + s);
        break;
      }
    }
  }
  return bad;
}

function writeU32LE(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}
