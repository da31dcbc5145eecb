/**
 * IoRing on the hot path: after warm-up, queueing, submitting and delivering completions allocate
 * nothing in the wrapper (V8 heap sampling, as engine-alloc and file-store-alloc do). Cached reads
 * on the disk complete inside submit(), so the whole cycle runs synchronously here.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IoRing } from '../../../src/io/io-ring.js';
import { sampleUntilUnder } from '../../helpers/heap-sampling.js';

const dir = mkdtempSync('/var/tmp/aoegw-ring-alloc-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('IoRing allocation', () => {
  it('queues, submits and delivers without allocating per op or per submit', async () => {
    const p = join(dir, 'img');
    writeFileSync(p, Buffer.alloc(1 << 20, 1));
    readFileSync(p); // in the page cache: reads complete inside submit()
    const fd = openSync(p, 'r');
    const ring = IoRing.open({ arenaBytes: 1 << 20, entries: 32 });
    const views = Array.from({ length: 16 }, (_, i) => [
      ring.arena.subarray(i * 8192, i * 8192 + 4096),
      ring.arena.subarray(i * 8192 + 4096, i * 8192 + 8192),
    ]);
    let bytes = 0;
    ring.onCompletions((_t, results, n) => {
      // A count, not a byte sum: a sum past 2^30 would be a heap number per update (everything
      // the pass runs is measured, this handler too).
      for (let i = 0; i < n; i++) if (results[i]! > 0) bytes++;
    });
    const round = (k: number) => {
      for (let i = 0; i < 16; i++) ring.readv(fd, ((k + i) % 120) * 8192, views[i]!, 1 + (i & 1), i, i === 7);
      ring.submit();
    };
    for (let k = 0; k < 2000; k++) round(k);
    let passes = 0;
    try {
      // 160k ops in 10k submits a pass: an object per op or per submit would be megabytes.
      const r = await sampleUntilUnder((pass) => {
        for (let k = 0; k < 10_000; k++) round(2000 + pass * 10_000 + k);
      }, 16 * 1024);
      passes = r.passes.length;
      expect(r.best, r.report).toBeLessThan(16 * 1024);
    } finally {
      ring.close();
      closeSync(fd);
    }
    expect(ring.inFlight).toBe(0);
    expect(ring.stats().ops).toBe((2000 + 10_000 * passes) * 16);
    expect(bytes).toBeGreaterThan(0);
  });
});
