/**
 * Write a deterministic pattern over a region, flush, read it back, and report every LBA whose
 * content differs. Used by `aoegw verify`, the demo and the integration tests.
 */
import { SECTOR_SIZE } from '../aoe/constants.js';
import type { IdentifyParsed } from '../aoe/identify.js';
import type { Initiator } from './initiator.js';
import { flushCache, readSectors, writeSectors } from './operations.js';
import { checkPattern, fillPattern } from './pattern.js';
import type { TargetClient } from './target-client.js';

export interface VerifyOptions {
  startLba: number;
  sectors: number;
  /** Sectors per I/O (default 256 = 128 KiB). */
  chunk?: number;
  /** I/Os in flight (default 8). */
  qd?: number;
  seed: number;
  /** Skip the write phase (check a pattern written earlier). */
  readOnly?: boolean;
  /** The target's IDENTIFY data: decides which FLUSH CACHE command to send. */
  identity: IdentifyParsed;
}

export interface VerifyResult {
  sectors: number;
  written: boolean;
  flushed: boolean;
  mismatches: number;
  firstMismatches: number[];
  seconds: number;
}

async function forEachChunk(o: VerifyOptions, fn: (lba: number, n: number) => Promise<void>): Promise<void> {
  const chunk = o.chunk ?? 256;
  let next = o.startLba;
  const end = o.startLba + o.sectors;
  const worker = async () => {
    while (next < end) {
      const lba = next;
      const n = Math.min(chunk, end - lba);
      next += n;
      await fn(lba, n);
    }
  };
  await Promise.all(Array.from({ length: o.qd ?? 8 }, worker));
}

export async function verifyPattern(
  ini: Initiator,
  c: TargetClient,
  o: VerifyOptions,
): Promise<VerifyResult> {
  const t0 = performance.now();
  let flushed = false;
  if (!o.readOnly) {
    await forEachChunk(o, async (lba, n) => {
      const buf = Buffer.alloc(n * SECTOR_SIZE);
      fillPattern(buf, 0, lba, n, o.seed);
      await writeSectors(ini, c, lba, buf);
    });
    flushed = await flushCache(ini, c, o.identity);
  }
  const bad: number[] = [];
  await forEachChunk(o, async (lba, n) => {
    const buf = Buffer.alloc(n * SECTOR_SIZE);
    await readSectors(ini, c, lba, buf);
    bad.push(...checkPattern(buf, 0, lba, n, o.seed));
  });
  bad.sort((a, b) => a - b);
  return {
    sectors: o.sectors,
    written: !o.readOnly,
    flushed,
    mismatches: bad.length,
    firstMismatches: bad.slice(0, 20),
    seconds: (performance.now() - t0) / 1000,
  };
}
