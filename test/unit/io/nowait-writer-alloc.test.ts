/**
 * NoWaitWriter's write with nothing queued (the common case: the reader keeps up) allocates
 * nothing per line in the writer itself: the line is encoded into one reused buffer and written
 * with writeNoWait (V8 heap sampling, as io-ring-alloc does). /dev/null takes RWF_NOWAIT, so
 * nothing ever queues here.
 */
import { closeSync, openSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NoWaitWriter } from '../../../src/io/nowait-writer.js';
import { sampleUntilUnder } from '../../helpers/heap-sampling.js';

describe('NoWaitWriter allocation', () => {
  it('writes a line without allocating per line when nothing is queued', async () => {
    const fd = openSync('/dev/null', 'w');
    try {
      const w = new NoWaitWriter(fd);
      const line = `{"level":"info","time":"2026-01-01T00:00:00.000Z","pid":1,"msg":"${'x'.repeat(120)}"}\n`;
      const LINES = 50_000;
      for (let i = 0; i < LINES; i++) w.write(line); // warm-up
      const r = await sampleUntilUnder(
        () => {
          for (let i = 0; i < LINES; i++) w.write(line);
        },
        // A per-line allocation of even 16 bytes would be 800 KB here.
        32 * 1024,
      );
      expect(r.best, r.report).toBeLessThan(32 * 1024);
      expect(w.stats()).toMatchObject({ linesQueued: 0, linesDropped: 0 });
    } finally {
      closeSync(fd);
    }
  });
});
