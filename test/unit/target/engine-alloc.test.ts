/**
 * Steady-state allocation of the engine, measured with V8's sampling heap profiler: after warm-up,
 * handling the same mix of batches again must allocate (almost) nothing. A per-frame allocation
 * of even one 16-byte heap number would show up as megabytes here.
 */
import { describe, expect, it } from 'vitest';
import { TargetEngine } from '../../../src/target/engine.js';
import type { TxSink } from '../../../src/target/tx-sink.js';
import {
  ata,
  expectNoAllocationPerFrame,
  INI2_MAC,
  mac,
  nullStore as makeNullStore,
  qc,
  read,
  TARGET_MAC,
  write,
} from './helpers.js';

const nullStore = makeNullStore();

function sinkOf(): TxSink {
  const slots = Array.from({ length: 64 }, () => Buffer.alloc(9014));
  let p = 0;
  return {
    txSlot: () => slots[p]!,
    txCommit: (_n: number) => {
      p = (p + 1) & 63;
    },
  };
}

describe('steady-state allocation', () => {
  it('handleBatch allocates nothing per frame', async () => {
    const engine = new TargetEngine({
      exports: [
        { shelf: 1, slot: 0, store: nullStore, allowMacs: [mac('52:54:00:00:00:01'), mac(INI2_MAC)] },
      ],
      // The driver's clock, read once per batch of completions: performance.now() boxes its
      // result (a heap number per read, as the driver's own `now` per receive batch); a small-integer
      // clock here, so what is measured is the engine's own allocation per frame.
      clock: () => 0,
    });
    engine.addLink(1, { mac: mac(TARGET_MAC), mtu: 9000, name: 't' });
    const reqs = [
      read(0, 8),
      read(8, 8),
      read(100, 2),
      write(16, Buffer.alloc(4096, 3), { src: INI2_MAC }),
      write(24, Buffer.alloc(1024, 3), { src: INI2_MAC }),
      ata({ op: 0xe5 }),
      ata({ op: 0xec, count: 1 }),
      ata({ op: 0x99 }),
      read(1 << 21, 1),
      qc(),
    ];
    const frames = reqs.map((f) => {
      const b = Buffer.alloc(9014);
      f.copy(b);
      return b;
    });
    const lens = Int32Array.from(reqs.map((f) => f.length));
    const sink = sinkOf();
    // Per batch 10 frames; one stray heap number per frame would be ≥ 3 MB in every pass.
    const batches = await expectNoAllocationPerFrame((i) =>
      engine.handleBatch(1, frames, lens, frames.length, sink, i),
    );
    expect(engine.stats().exports['e1.0']!.reads).toBe(batches * 3);
  });

  it('a flood from ever-new (spoofed) source MACs allocates nothing after warm-up', async () => {
    // An accepted config change allocates its new string (rare by design: rate-limited). The global
    // limit keeps them to a handful here, so what is measured is the per-MAC state of the flood.
    const engine = new TargetEngine({
      exports: [{ shelf: 1, slot: 0, store: nullStore }],
      stateChangeLimit: { rate: 10, burst: 20, globalRate: 1, globalBurst: 2 },
      // The driver's clock, read once per batch of completions: performance.now() boxes its
      // result (a heap number per read, as the driver's own `now` per receive batch); a small-integer
      // clock here, so what is measured is the engine's own allocation per frame.
      clock: () => 0,
    });
    engine.addExport({ shelf: 1, slot: 1, store: nullStore });
    engine.addLink(1, { mac: mac(TARGET_MAC), mtu: 9000, name: 't' });
    const reqs = [
      read(0, 8),
      qc(),
      qc({ dst: 'ff:ff:ff:ff:ff:ff', major: 0xffff, minor: 0xff }),
      qc({ ccmd: 4, config: 'x' }),
      qc({ ccmd: 4, config: 'y' }),
    ];
    const frames = reqs.map((f) => {
      const b = Buffer.alloc(9014);
      f.copy(b);
      return b;
    });
    const lens = Int32Array.from(reqs.map((f) => f.length));
    const sink = sinkOf();
    let n = 0;
    // A new source MAC for every frame, written in place (the test itself allocates nothing).
    const batch = (now: number) => {
      for (const f of frames) {
        n++;
        f[9] = (n >>> 16) & 0xff;
        f[10] = (n >>> 8) & 0xff;
        f[11] = n & 0xff;
      }
      engine.handleBatch(1, frames, lens, frames.length, sink, now);
    };
    // 5 frames from 5 new MACs a batch: one table entry per new MAC would be megabytes a pass.
    await expectNoAllocationPerFrame(batch);
    const st = engine.stats().exports['e1.0']!;
    expect(Object.keys(st.initiators).length).toBeLessThanOrEqual(33);
    expect(st.drops.stateRate).toBeGreaterThan(0);
  });
});
