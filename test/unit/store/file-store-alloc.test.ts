/**
 * FileStore on the hot path: the engine passes its long reusable vector with a count; serving a
 * call must not allocate a sliced copy of it per call (V8 heap sampling, as engine-alloc does).
 */
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../../src/target/file-store.js';
import { sampleUntilUnder } from '../../helpers/heap-sampling.js';

const dir = mkdtempSync(join(tmpdir(), 'aoegw-fsa-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('FileStore allocation', () => {
  it('read/write with count < bufs.length allocate no vector per call', async () => {
    const p = join(dir, 'a.img');
    writeFileSync(p, '');
    truncateSync(p, 1 << 20);
    const store = new FileStore({ path: p, durability: 'writeback' });
    let failed = 0;
    store.attach((_t, r) => {
      if (r < 0) failed++;
    });
    const bufs = Array.from({ length: 64 }, () => Buffer.alloc(4096, 1));
    for (let i = 0; i < 2000; i++) {
      store.write(i % 200, bufs, 1 + (i % 8), i, false);
      store.read(i % 200, bufs, 1 + (i % 8), i);
    }
    try {
      // 40k calls a pass: a slice (≥ 32 bytes + elements) per call would be over a megabyte. Node's
      // own readvSync/writevSync are not ours to fix: everything else below FileStore's frames counts.
      const r = await sampleUntilUnder(
        () => {
          for (let i = 0; i < 20_000; i++) {
            store.write(i % 200, bufs, 1 + (i % 8), i, false);
            store.read(i % 200, bufs, 1 + (i % 8), i);
          }
        },
        64 * 1024,
        { skip: (f) => f.functionName === 'readvSync' || f.functionName === 'writevSync' },
      );
      expect(r.best, r.report).toBeLessThan(64 * 1024);
      expect(failed).toBe(0);
    } finally {
      store.close();
    }
  });
});
