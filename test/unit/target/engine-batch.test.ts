/**
 * Batch behaviour: read/write coalescing into one store call per contiguous run, zero-copy and
 * copying transmit paths, write acknowledgements only after commit, buffer-count drops.
 */
import { describe, expect, it } from 'vitest';
import { type AtaMessage, AtaStatus } from '../../../src/aoe/index.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import { DataViews } from '../../../src/target/tx-sink.js';
import { ata, INI2_MAC, pattern, RecordingSink, read, runBatch, setup, tagOf, write } from './helpers.js';

function expectReadsCorrect(replies: AtaMessage[], requests: Buffer[], data: Buffer): void {
  expect(replies).toHaveLength(requests.length);
  for (const req of requests) {
    const tag = tagOf(req);
    const r = replies.find((x) => x.tag === tag)!;
    expect(r.cmdStatus).toBe(AtaStatus.DRDY);
    expect(r.data.equals(data.subarray(r.lba * 512, (r.lba + r.sectorCount) * 512))).toBe(true);
  }
}

describe('read coalescing', () => {
  it('8 contiguous reads in one batch → 1 readv', () => {
    const s = setup();
    const reqs = Array.from({ length: 8 }, (_, i) => read(i * 2, 2));
    const replies = s.run(reqs) as AtaMessage[];
    expect(s.store.readvCalls).toBe(1);
    expect(s.log).toEqual(['readv:0+16', ...reqs.map((r) => `tx:${tagOf(r)}`)]);
    expectReadsCorrect(replies, reqs, pattern(64));
    const st = s.engine.stats().exports['e1.0']!;
    expect(st.store.readv).toBe(1);
    expect(st.reads).toBe(8);
    expect(st.bytesRead).toBe(8 * 1024);
  });

  it('reads arriving out of order are sorted into one run', () => {
    const s = setup();
    const reqs = [read(8, 4), read(0, 4), read(12, 4), read(4, 4)];
    expectReadsCorrect(s.run(reqs) as AtaMessage[], reqs, pattern(64));
    expect(s.log.filter((e) => e.startsWith('readv'))).toEqual(['readv:0+16']);
  });

  it('a gap splits a run; two exports interleaved coalesce separately', () => {
    const s = setup();
    const other = new MemoryStore(pattern(64, 99));
    s.engine.addExport({ shelf: 1, slot: 1, store: other });
    const reqs = [read(0, 2), read(0, 2, { minor: 1 }), read(2, 2), read(2, 2, { minor: 1 }), read(10, 2)];
    const replies = s.run(reqs) as AtaMessage[];
    expect(s.store.readvCalls).toBe(2); // [0..4) and [10..12)
    expect(other.readvCalls).toBe(1);
    expectReadsCorrect(
      replies.filter((r) => r.minor === 0),
      reqs.filter((r) => r[18] === 0),
      pattern(64),
    );
    expectReadsCorrect(
      replies.filter((r) => r.minor === 1),
      reqs.filter((r) => r[18] === 1),
      pattern(64, 99),
    );
  });

  it('a sink with fewer slots than the run still gets one read and every reply', () => {
    const s = setup({ slots: 3 });
    const reqs = Array.from({ length: 8 }, (_, i) => read(i, 1));
    expectReadsCorrect(s.run(reqs) as AtaMessage[], reqs, pattern(64));
    expect(s.store.readvCalls).toBe(1);
  });

  it('reads land in staging slots (stable until completion), not in transmit slots', () => {
    const s = setup();
    const seen: Uint8Array[] = [];
    const store = s.store;
    const orig = store.read.bind(store);
    store.read = (lba, bufs, n, token) => {
      for (let i = 0; i < n; i++) seen.push(bufs[i]!);
      orig(lba, bufs, n, token);
    };
    const slot0 = s.sink.txSlot();
    s.run([read(0, 1), read(1, 1)]);
    expect(seen).toHaveLength(2);
    expect((seen[0] as Buffer).buffer).not.toBe(slot0.buffer);
    expect(seen[0]!.buffer).toBe(seen[1]!.buffer);
    expect(seen[0]!.length).toBe(512);
  });
});

describe('write coalescing and durability', () => {
  it('contiguous writes → 1 writev, 1 sync, acks only after the sync', () => {
    const s = setup();
    const data = pattern(8, 42);
    const reqs = Array.from({ length: 4 }, (_, i) => write(i * 2, data.subarray(i * 1024, (i + 1) * 1024)));
    const replies = s.run(reqs) as AtaMessage[];
    expect(s.store.writevCalls).toBe(1);
    expect(s.store.syncs).toBe(1);
    expect(s.log).toEqual(['writev:0+8', 'sync', ...reqs.map((r) => `tx:${tagOf(r)}`)]);
    expect(replies.every((r) => r.cmdStatus === AtaStatus.DRDY)).toBe(true);
    expect(s.store.data.subarray(0, 8 * 512).equals(data)).toBe(true);
  });

  it('reads and writes in one batch: the commit group (writev, sync) starts first, then the reads', () => {
    const s = setup();
    const w = write(20, Buffer.alloc(1024, 7));
    const r = read(0, 2);
    s.run([w, r]);
    expect(s.log).toEqual(['writev:20+2', 'sync', 'readv:0+2', `tx:${tagOf(w)}`, `tx:${tagOf(r)}`]);
  });

  it('a FLUSH in the batch shares the group sync, acknowledged after it', () => {
    const s = setup();
    const w = write(0, Buffer.alloc(512, 1));
    const f = ata({ op: 0xea });
    s.run([w, f]);
    expect(s.log).toEqual(['writev:0+1', 'sync', `tx:${tagOf(w)}`, `tx:${tagOf(f)}`]);
    expect(s.store.syncs).toBe(1);
    const st = s.engine.stats().exports['e1.0']!.store;
    expect(st.commits).toBe(0);
    expect(st.flushes).toBe(1);
  });

  it('a batch without writes never syncs', () => {
    const s = setup();
    s.run([read(0, 1), ata({ op: 0xec, count: 1 })]);
    expect(s.store.syncs).toBe(0);
  });

  it('non-overlapping writes out of order coalesce; overlapping writes keep arrival order', () => {
    const s = setup();
    s.run([write(4, Buffer.alloc(1024, 2)), write(0, Buffer.alloc(2048, 1))]);
    expect(s.store.writevCalls).toBe(1);
    expect(s.store.data[0]).toBe(1);
    expect(s.store.data[4 * 512]).toBe(2);

    const t = setup();
    // Later write covers an earlier one: the later data must win.
    t.run([write(2, Buffer.alloc(512, 0xa)), write(0, Buffer.alloc(4 * 512, 0xb))]);
    expect(t.store.data.subarray(0, 4 * 512).every((b) => b === 0xb)).toBe(true);
    // Earlier write covers a later one: the later (partial) data wins on its sector only.
    t.run([write(0, Buffer.alloc(4 * 512, 0xc)), write(1, Buffer.alloc(512, 0xd))]);
    expect(t.store.data[0]).toBe(0xc);
    expect(t.store.data[512]).toBe(0xd);
    expect(t.store.data[2 * 512]).toBe(0xc);
    expect(t.store.syncs).toBe(2);
  });

  it('each export with writes syncs once per batch', () => {
    const s = setup();
    const other = new MemoryStore(16);
    s.engine.addExport({ shelf: 1, slot: 1, store: other });
    s.run([
      write(0, Buffer.alloc(512)),
      write(5, Buffer.alloc(512), { minor: 1 }),
      write(9, Buffer.alloc(512)),
    ]);
    expect(s.store.syncs).toBe(1);
    expect(s.store.writevCalls).toBe(2);
    expect(other.syncs).toBe(1);
  });
});

describe('buffer count', () => {
  it('requests beyond the buffer count in one batch are dropped and counted; the next batch is fresh', () => {
    const s = setup({ exp: { bufferCount: 4 } });
    const reqs = Array.from({ length: 6 }, (_, i) => read(i, 1));
    expect(s.run(reqs)).toHaveLength(4);
    expect(s.engine.stats().exports['e1.0']!.drops.bufferFull).toBe(2);
    expect(s.run(reqs.slice(0, 4))).toHaveLength(4);
    // Query Config does not use buffers.
    expect(s.engine.stats().exports['e1.0']!.drops.bufferFull).toBe(2);
  });

  it('is clamped to at least 2 (Linux cannot use less) and advertised', () => {
    const s = setup({ exp: { bufferCount: 1 } });
    expect(s.run([read(0, 1), read(1, 1), read(2, 1)])).toHaveLength(2);
  });
});

describe('allocation-free views', () => {
  it('DataViews returns the same view for the same frame and sector count', () => {
    const v = new DataViews();
    const f = Buffer.alloc(9014);
    const a = v.get(f, 3);
    expect(v.get(f, 3)).toBe(a);
    expect(a.length).toBe(1536);
    expect(a.byteOffset).toBe(f.byteOffset + 36);
    expect(v.get(f, 4)).not.toBe(a);
  });

  it('handles the same batch repeatedly with the same arena (steady state)', () => {
    const s = setup();
    const reqs = [read(0, 8), write(8, Buffer.alloc(4096, 3), { src: INI2_MAC }), ata({ op: 0xe5 })];
    const frames = reqs.map((f) => {
      const b = Buffer.alloc(9014);
      f.copy(b);
      return b;
    });
    const lens = Int32Array.from(reqs.map((f) => f.length));
    const sink = new RecordingSink();
    for (let i = 0; i < 200; i++) s.engine.handleBatch(1, frames, lens, frames.length, sink, i);
    expect(sink.sent).toHaveLength(600);
    const st = s.engine.stats().exports['e1.0']!;
    expect(st.initiators[INI2_MAC]).toMatchObject({
      requests: 200,
      bytesRead: 0,
      bytesWritten: 200 * 4096,
      lastSeen: 199,
    });
    runBatch(s.engine, [], sink);
  });
});
