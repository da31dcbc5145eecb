/**
 * The kernel's worker pool for blocking ring ops (io-wq) belongs to the process's task and is
 * sized by the first ring the task ever creates: min(its SQ entries, 4 × online CPUs) workers for
 * ops on regular files. The availability probe (IoRing.available(), a 1-entry ring) ran before the
 * real ring, so the target had ONE worker: a slow fdatasync of one export held the reads and writes
 * of every other export (target-durability.test.ts measures it). A ring raises the cap back.
 *
 * In a file of its own: vitest runs each file in a fresh process, so the probe below is the first
 * ring this task creates, as in `aoegw serve`.
 */
import { cpus } from 'node:os';
import { describe, expect, it } from 'vitest';
import { IoRing } from '../../../src/io/io-ring.js';

const probe = IoRing.available();

describe.skipIf(!probe.ok)('io-wq workers of a ring opened after the availability probe', () => {
  it('are min(SQ entries, 4 × online CPUs), not the 1 the probe ring would leave', () => {
    const ring = IoRing.open({ arenaBytes: 4096 });
    try {
      expect(ring.ioWorkers).toBeGreaterThanOrEqual(Math.min(ring.sqEntries, 4 * cpus().length));
      expect(ring.ioWorkers).toBeGreaterThan(1);
    } finally {
      ring.close();
    }
  });
});
