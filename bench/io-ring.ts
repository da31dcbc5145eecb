/**
 * npx tsx bench/io-ring.ts — IoRing against the synchronous calls it replaces, per batch of 16
 * positioned ops from the page cache: 1 KiB and 8 KiB, reads and writes, on the disk (ext4 under
 * /var/tmp) and on tmpfs (/dev/shm). Ring: queue 16 ops, one submit(), wait for the 16
 * completions (inline, or through the event loop). Sync: 16 readvSync/writevSync calls.
 * "in submit" is the part of a ring batch that blocks the event loop. Rounds are interleaved;
 * medians reported. Prints a table; writes nothing.
 */
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readvSync,
  rmSync,
  writeFileSync,
  writevSync,
} from 'node:fs';
import { join } from 'node:path';
import { IoRing } from '../src/io/io-ring.js';
import { machineLine, median, table } from './lib.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const BATCHES = Number(process.env.BENCH_BATCHES ?? 2000);
const OPS = 16;
const FILE_BYTES = 16 << 20;

type Op = 'read' | 'write';

interface RingSample {
  usPerBatch: number;
  usInSubmit: number;
  inlineShare: number;
}

/** Positions of batch b: 16 ops spread over the file, a different stretch per batch. */
function position(b: number, i: number, size: number): number {
  return ((b * OPS + i) * size * 4) % (FILE_BYTES - size);
}

async function ringRound(ring: IoRing, fd: number, op: Op, size: number): Promise<RingSample> {
  const bufs = Array.from({ length: OPS }, (_, i) => [ring.arena.subarray(i * size, (i + 1) * size)]);
  let pending = 0;
  let wake: (() => void) | undefined;
  ring.onCompletions((_t, results, n) => {
    for (let i = 0; i < n; i++) if (results[i] !== size) throw new Error(`op result ${results[i]}`);
    pending -= n;
    if (pending === 0 && wake) {
      const w = wake;
      wake = undefined;
      w();
    }
  });
  const inlineBefore = ring.stats().inlineCompletions;
  let inSubmit = 0;
  const t0 = performance.now();
  for (let b = 0; b < BATCHES; b++) {
    for (let i = 0; i < OPS; i++) {
      const pos = position(b, i, size);
      if (op === 'read') ring.readv(fd, pos, bufs[i]!, 1, i);
      else ring.writev(fd, pos, bufs[i]!, 1, i);
    }
    pending = OPS;
    const s0 = performance.now();
    ring.submit();
    inSubmit += performance.now() - s0;
    if (pending > 0) {
      await new Promise<void>((r) => {
        wake = r;
      });
    }
  }
  const total = performance.now() - t0;
  return {
    usPerBatch: (total * 1000) / BATCHES,
    usInSubmit: (inSubmit * 1000) / BATCHES,
    inlineShare: (ring.stats().inlineCompletions - inlineBefore) / (BATCHES * OPS),
  };
}

function syncRound(fd: number, op: Op, size: number, bufs: Buffer[][]): number {
  const t0 = performance.now();
  for (let b = 0; b < BATCHES; b++) {
    for (let i = 0; i < OPS; i++) {
      const pos = position(b, i, size);
      const n = op === 'read' ? readvSync(fd, bufs[i]!, pos) : writevSync(fd, bufs[i]!, pos);
      if (n !== size) throw new Error(`short ${op}: ${n}`);
    }
  }
  return ((performance.now() - t0) * 1000) / BATCHES;
}

async function main(): Promise<void> {
  const avail = IoRing.available();
  if (!avail.ok) throw new Error(`io_uring unavailable: ${avail.reason}`);
  console.log(machineLine());
  console.log(`${OPS} ops per batch, ${BATCHES} batches per round, ${ROUNDS} rounds, medians\n`);
  const dirs = {
    disk: mkdtempSync('/var/tmp/aoegw-bench-ring-'),
    tmpfs: mkdtempSync('/dev/shm/aoegw-bench-ring-'),
  };
  const ring = IoRing.open({ arenaBytes: 1 << 20, entries: 64 });
  const rows: (string | number)[][] = [];
  try {
    for (const [fs, dir] of Object.entries(dirs)) {
      const path = join(dir, 'image');
      writeFileSync(path, Buffer.alloc(FILE_BYTES, 1));
      readFileSync(path); // in the page cache
      const fd = openSync(path, 'r+');
      for (const op of ['read', 'write'] as const) {
        for (const size of [1024, 8192]) {
          const bufs = Array.from({ length: OPS }, () => [Buffer.alloc(size, 2)]);
          const sync: number[] = [];
          const rings: RingSample[] = [];
          await ringRound(ring, fd, op, size); // warm-up: tables, workers, JIT
          syncRound(fd, op, size, bufs);
          for (let r = 0; r < ROUNDS; r++) {
            rings.push(await ringRound(ring, fd, op, size));
            sync.push(syncRound(fd, op, size, bufs));
          }
          const syncUs = median(sync);
          const ringUs = median(rings.map((s) => s.usPerBatch));
          rows.push([
            fs,
            op,
            `${size / 1024} KiB`,
            syncUs.toFixed(1),
            ringUs.toFixed(1),
            median(rings.map((s) => s.usInSubmit)).toFixed(1),
            `${(median(rings.map((s) => s.inlineShare)) * 100).toFixed(0)} %`,
            (syncUs / ringUs).toFixed(2),
          ]);
        }
      }
      closeSync(fd);
    }
  } finally {
    ring.close();
    for (const dir of Object.values(dirs)) rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    table(
      ['fs', 'op', 'size', 'sync µs/batch', 'ring µs/batch', 'ring µs in submit', 'inline', 'sync/ring'],
      rows,
    ),
  );
  const s = ring.stats();
  console.log(
    `\nring: ${s.submits} submits, ${s.ops} ops, ${s.wakeups} wakeups (${s.spuriousWakeups} empty)`,
  );
}

await main();
