/**
 * The asynchronous data path: a store that completes later (MemoryStore in deferred mode stands
 * for a slow disk) holds only its own export's requests; writes are acknowledged only after the
 * sync that covers them; writes arriving while a group is in flight form the next group; the
 * per-export queue is bounded; completions outside a receive batch are answered and flushed.
 */
import { describe, expect, it } from 'vitest';
import { AtaErrorBit, AtaStatus } from '../../../src/aoe/constants.js';
import type { AtaMessage } from '../../../src/aoe/index.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import { ata, pattern, type RecordingSink, read, setup, tagOf, write } from './helpers.js';

const FAULT = AtaStatus.DRDY | AtaStatus.DF | AtaStatus.ERR;

/** Setup with export e1.0 on a deferred (slow) store and e1.1 on an immediate one. */
function slowAndFast(o: { queueLimit?: number } = {}) {
  const s = setup({ storeOpts: { deferred: true }, exp: o.queueLimit ? { queueLimit: o.queueLimit } : {} });
  const fast = new MemoryStore(pattern(64, 5));
  s.engine.addExport({ shelf: 1, slot: 1, store: fast });
  let flushes = 0;
  (s.sink as RecordingSink & { flush(): void }).flush = () => {
    flushes++;
  };
  return { ...s, fast, flushes: () => flushes };
}

describe('asynchronous data path', () => {
  it('a slow export holds only its own requests: the fast export answers in the same batch', () => {
    const s = slowAndFast();
    const slowW = write(0, Buffer.alloc(512, 1));
    const slowR = read(1, 1);
    const fastR = read(2, 1, { minor: 1 });
    const fastW = write(3, Buffer.alloc(512, 2), { minor: 1 });
    const replies = s.run([slowW, slowR, fastR, fastW]) as AtaMessage[];
    expect(replies.map((r) => r.tag).sort()).toEqual([tagOf(fastR), tagOf(fastW)].sort());
    expect(replies.every((r) => r.cmdStatus === AtaStatus.DRDY)).toBe(true);
    expect(s.engine.pendingRequests).toBe(2);
    // The slow store completes later, outside any receive batch.
    s.store.completeDeferred();
    s.engine.settle();
    const late = s.sink.take() as AtaMessage[];
    expect(late.map((r) => r.tag).sort()).toEqual([tagOf(slowW), tagOf(slowR)].sort());
    expect(s.engine.pendingRequests).toBe(0);
    expect(s.flushes()).toBeGreaterThan(0);
  });

  it('a write is acknowledged only after its sync completed, never after the write alone', () => {
    const s = slowAndFast();
    const w = write(4, Buffer.alloc(512, 9));
    expect(s.run([w])).toHaveLength(0);
    expect(s.store.pending).toBe(2); // the write and its linked sync
    s.store.completeDeferred(1); // the write reached the "page cache"
    s.engine.settle();
    expect(s.sink.take()).toHaveLength(0);
    s.store.completeDeferred(1); // the sync
    s.engine.settle();
    const [r] = s.sink.take() as AtaMessage[];
    expect(r!.tag).toBe(tagOf(w));
    expect(r!.cmdStatus).toBe(AtaStatus.DRDY);
    expect(s.store.data[4 * 512]).toBe(9);
  });

  it('the acknowledgements of a finished group are sent before the next group goes to the kernel', () => {
    // A ring's submit: the kernel may complete the next group's writes in its workers at once, so
    // an acknowledgement sent after that submit would leave while newer writes sit unsynced (and
    // it would wait for the submit for nothing).
    const order: string[] = [];
    const s = setup({
      storeOpts: { deferred: true },
      engine: { dataPath: { submit: () => order.push('submit') } },
    });
    (s.sink as RecordingSink & { flush(): void }).flush = () => order.push(`flush:${s.sink.sent.length}`);
    const w1 = write(0, Buffer.alloc(512, 1));
    s.run([w1]);
    s.run([write(1, Buffer.alloc(512, 2))]); // queued behind the first group
    expect(order).toEqual(['submit']);
    order.length = 0;
    s.store.completeDeferred(); // the first group's write and sync
    s.engine.settle();
    // w1's acknowledgement is flushed, then the second group (write + sync) is submitted.
    expect(order).toEqual(['flush:1', 'submit']);
    expect((s.sink.take() as AtaMessage[]).map((r) => r.tag)).toEqual([tagOf(w1)]);
    expect(s.store.pending).toBe(2);
  });

  it('writes arriving while a group is in flight start together as the next group (one sync)', () => {
    const s = slowAndFast();
    s.run([write(0, Buffer.alloc(512, 1))]);
    s.run([write(1, Buffer.alloc(512, 2))]);
    s.run([write(2, Buffer.alloc(512, 3)), ata({ op: 0xea })]);
    // Only the first group went to the store; the rest waits in the export's queue.
    expect(s.store.pending).toBe(2);
    s.store.completeDeferred();
    s.engine.settle();
    expect(s.sink.take()).toHaveLength(1);
    // The next group: both queued writes coalesced into one run, and one sync for them and the FLUSH.
    expect(s.store.pending).toBe(2);
    s.store.completeDeferred();
    s.engine.settle();
    const replies = s.sink.take() as AtaMessage[];
    expect(replies).toHaveLength(3);
    expect(replies.every((r) => r.cmdStatus === AtaStatus.DRDY)).toBe(true);
    expect(s.store.writevCalls).toBe(2);
    expect(s.store.syncs).toBe(2);
  });

  it('a failed sync fails every write of its group; the next group is unaffected', () => {
    const s = slowAndFast();
    s.run([write(0, Buffer.alloc(512, 1)), write(1, Buffer.alloc(512, 2))]);
    s.store.fault = (op) => op === 'sync';
    s.store.completeDeferred();
    s.engine.settle();
    const bad = s.sink.take() as AtaMessage[];
    expect(bad.map((r) => [r.cmdStatus, r.errFeature])).toEqual([
      [FAULT, AtaErrorBit.ABRT],
      [FAULT, AtaErrorBit.ABRT],
    ]);
    s.store.fault = undefined;
    s.run([write(0, Buffer.alloc(512, 3))]);
    s.store.completeDeferred();
    s.engine.settle();
    expect((s.sink.take() as AtaMessage[])[0]!.cmdStatus).toBe(AtaStatus.DRDY);
    expect(s.engine.stats().exports['e1.0']!.writes).toBe(1);
  });

  it('the per-export queue is bounded: beyond queueLimit requests are dropped and counted, others unaffected', () => {
    const s = slowAndFast({ queueLimit: 4 });
    const reqs = Array.from({ length: 6 }, (_, i) => read(i, 1));
    expect(s.run(reqs)).toHaveLength(0);
    expect(s.engine.stats().exports['e1.0']!.drops.bufferFull).toBe(2);
    expect(s.engine.pendingRequests).toBe(4);
    expect(s.run([read(0, 1, { minor: 1 })])).toHaveLength(1);
    s.store.completeDeferred();
    s.engine.settle();
    expect(s.sink.take()).toHaveLength(4);
    expect(s.engine.pendingRequests).toBe(0);
  });

  it('the staging pool is shared fairly: exports backed up on slow disks cannot starve another', () => {
    // 32 slots, three exports: a share of min(16, 32 / (2 × 3)) = 5 slots each is always theirs.
    const s = setup({
      storeOpts: { deferred: true },
      exp: { queueLimit: 64 },
      engine: { dataPath: { slots: 32 } },
    });
    const slow2 = new MemoryStore(pattern(64, 3), { deferred: true });
    const late = new MemoryStore(pattern(64, 4), { deferred: true });
    s.engine.addExport({ shelf: 1, slot: 1, store: slow2, queueLimit: 64 });
    s.engine.addExport({ shelf: 1, slot: 2, store: late, queueLimit: 64 });
    // e1.0 and e1.1 flood: each gets its share, then the shared half first come first served.
    s.run(Array.from({ length: 40 }, (_, i) => read(i % 64, 1)));
    s.run(Array.from({ length: 40 }, (_, i) => read(i % 64, 1, { minor: 1 })));
    const ex = () => s.engine.stats().exports;
    expect(ex()['e1.0']!.pending + ex()['e1.1']!.pending).toBe(32 - 5);
    // e1.2 arrives last and still gets its share (before: 0 slots, every request dropped).
    s.run(Array.from({ length: 8 }, (_, i) => read(i, 1, { minor: 2 })));
    expect(ex()['e1.2']!.pending).toBe(5);
    expect(ex()['e1.2']!.drops.bufferFull).toBe(3);
    expect(s.engine.pendingRequests).toBe(32);
    // Everything completes and frees its slot; a retired export's share goes back to the others.
    for (const st of [s.store, slow2, late]) st.completeDeferred();
    s.engine.settle();
    expect(s.engine.pendingRequests).toBe(0);
    s.engine.retireExport('e1.2');
    s.run(Array.from({ length: 40 }, (_, i) => read(i, 1)));
    // Two members now: 8 slots each are reserved; e1.0 may hold everything but e1.1's share.
    expect(ex()['e1.0']!.pending).toBe(32 - 8);
  });

  it('an export never reserves more staging slots than it may queue', () => {
    // 32 slots, two exports: shares of 8, but e1.1 may queue only 2, so it reserves only 2.
    const s = setup({
      storeOpts: { deferred: true },
      exp: { queueLimit: 64 },
      engine: { dataPath: { slots: 32 } },
    });
    s.engine.addExport({
      shelf: 1,
      slot: 1,
      store: new MemoryStore(pattern(64, 3), { deferred: true }),
      queueLimit: 2,
    });
    s.run(Array.from({ length: 40 }, (_, i) => read(i, 1)));
    expect(s.engine.stats().exports['e1.0']!.pending).toBe(30);
  });

  it('a reply whose link was removed meanwhile is counted, not sent', () => {
    const s = slowAndFast();
    s.run([read(0, 1)]);
    s.engine.removeLink(1);
    s.store.completeDeferred();
    s.engine.settle();
    expect(s.sink.take()).toHaveLength(0);
    expect(s.engine.dataPathStats()).toMatchObject({ pending: 0, replyLost: 1 });
  });

  it('read data comes from the store at completion time, into the reply', () => {
    const s = slowAndFast();
    const r = read(5, 2);
    s.run([r]);
    s.store.data.fill(0x5a, 5 * 512, 7 * 512); // the disk changes before the read runs
    s.store.completeDeferred();
    s.engine.settle();
    const [reply] = s.sink.take() as AtaMessage[];
    expect(reply!.data.equals(Buffer.alloc(1024, 0x5a))).toBe(true);
  });
});
