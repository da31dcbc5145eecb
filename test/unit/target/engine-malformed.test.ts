/**
 * Hostile and broken input: a table of malformed frames (never a throw, never a reply, always
 * counted), and a property: arbitrary frames interleaved with valid requests leave every valid
 * request answered exactly once and correctly.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AtaMessage } from '../../../src/aoe/index.js';
import { TargetEngine } from '../../../src/target/engine.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import {
  ata,
  INI_MAC,
  LINK,
  mac,
  mask,
  pattern,
  qc,
  RecordingSink,
  read,
  reserve,
  setup,
  TARGET_MAC,
  write,
} from './helpers.js';

function aoeHeader(len: number, command = 0): Buffer {
  const f = Buffer.alloc(len);
  mac(TARGET_MAC).copy(f, 0);
  mac(INI_MAC).copy(f, 6);
  f.writeUInt16BE(0x88a2, 12);
  if (len > 14) f[14] = 0x10;
  if (len > 17) f.writeUInt16BE(1, 16);
  if (len > 19) f[19] = command;
  return f;
}

interface Case {
  name: string;
  frame: () => Buffer;
  len?: number;
  counter: 'malformed' | 'notAoe';
}

const cases: Case[] = [
  { name: 'length 0', frame: () => read(0, 1), len: 0, counter: 'malformed' },
  {
    name: 'negative length (truncated by the kernel)',
    frame: () => read(0, 1),
    len: -1,
    counter: 'malformed',
  },
  { name: 'NaN length', frame: () => read(0, 1), len: Number.NaN, counter: 'malformed' },
  { name: 'length beyond the buffer', frame: () => read(0, 1), len: 100_000, counter: 'malformed' },
  { name: '10 bytes', frame: () => Buffer.alloc(10, 0xff), counter: 'malformed' },
  {
    name: 'IPv4 frame',
    frame: () => {
      const f = aoeHeader(60);
      f.writeUInt16BE(0x0800, 12);
      return f;
    },
    counter: 'notAoe',
  },
  { name: 'AoE header cut at 20 bytes', frame: () => aoeHeader(20), counter: 'malformed' },
  { name: 'ATA argument cut at 30 bytes', frame: () => aoeHeader(30, 0), counter: 'malformed' },
  {
    name: 'write announcing 4 sectors carrying 1',
    frame: () => write(0, Buffer.alloc(4 * 512)).subarray(0, 36 + 512),
    counter: 'malformed',
  },
  {
    name: 'Query Config string longer than the frame',
    frame: () => {
      const f = qc({ config: 'abc' });
      f.writeUInt16BE(200, 30);
      return f;
    },
    counter: 'malformed',
  },
  { name: 'Query Config cut at 28 bytes', frame: () => aoeHeader(28, 1), counter: 'malformed' },
  {
    name: 'Mac Mask List with more directives than the frame',
    frame: () => {
      const f = mask({ mcmd: 1 });
      f[27] = 20;
      return f;
    },
    counter: 'malformed',
  },
  {
    name: 'Reserve with more MACs than the frame',
    frame: () => {
      const f = reserve({ rcmd: 1 });
      f[25] = 50;
      return f;
    },
    counter: 'malformed',
  },
];

describe('malformed frames', () => {
  for (const c of cases) {
    it(`${c.name}: dropped, counted as ${c.counter}, no reply`, () => {
      const s = setup();
      const f = c.frame();
      const slot = Buffer.alloc(9014);
      f.copy(slot);
      const lens = [c.len ?? f.length];
      expect(() => s.engine.handleBatch(LINK, [slot], lens, 1, s.sink, 0)).not.toThrow();
      expect(s.sink.sent).toHaveLength(0);
      const link = s.engine.stats().links[String(LINK)]!;
      expect(link.framesIn).toBe(1);
      expect(link[c.counter]).toBe(1);
      expect(s.store.readvCalls + s.store.writevCalls + s.store.syncs).toBe(0);
    });
  }

  it('a count larger than the frames array is clamped', () => {
    const s = setup();
    const f = Buffer.alloc(9014);
    read(0, 1).copy(f);
    s.engine.handleBatch(LINK, [f], Int32Array.of(read(0, 1).length, 60, 60), 10, s.sink, 0);
    expect(s.sink.sent).toHaveLength(1);
  });
});

// ---- property ----------------------------------------------------------------------------------

const REGION_B = 32; // reads in [0, 32), writes in [32, 64)

const validArb = fc.array(
  fc.oneof(
    fc.record({
      kind: fc.constant('read' as const),
      lba: fc.integer({ min: 0, max: REGION_B - 1 }),
      n: fc.integer({ min: 1, max: 17 }),
    }),
    fc.record({
      kind: fc.constant('write' as const),
      lba: fc.integer({ min: REGION_B, max: 63 }),
      n: fc.integer({ min: 1, max: 17 }),
      seed: fc.integer({ min: 0, max: 255 }),
    }),
  ),
  { maxLength: 20 },
);

/** Frames shaped like AoE (most pass the header check) with random content, or raw bytes. */
const junkArb = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 120 }).map((u) => Buffer.from(u)),
  fc
    .record({
      dstOurs: fc.boolean(),
      verFlags: fc.oneof(fc.constant(0x10), fc.integer({ min: 0, max: 255 })),
      major: fc.oneof(fc.constant(2), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })),
      minor: fc.oneof(fc.constant(0), fc.constant(0xff), fc.integer({ min: 0, max: 255 })),
      command: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 })),
      body: fc.uint8Array({ minLength: 0, maxLength: 1100 }),
      src: fc.uint8Array({ minLength: 6, maxLength: 6 }),
    })
    .map((j) => {
      const f = Buffer.alloc(24 + j.body.length);
      (j.dstOurs ? mac(TARGET_MAC) : Buffer.alloc(6, 0xff)).copy(f, 0);
      Buffer.from(j.src).copy(f, 6);
      f.writeUInt16BE(0x88a2, 12);
      f[14] = j.verFlags;
      // Junk may reach export 2.0 (or nothing) but never 1.0, whose answers are checked exactly.
      let { major, minor } = j;
      if ((major === 1 || major === 0xffff) && (minor === 0 || minor === 0xff)) {
        major = 2;
        minor = 0;
      }
      f.writeUInt16BE(major, 16);
      f[18] = minor;
      f[19] = j.command;
      f.writeUInt32BE(0x7fff0000, 20);
      Buffer.from(j.body).copy(f, 24);
      return f;
    }),
);

describe('property: junk interleaved with valid requests', () => {
  it('every valid request is answered once and correctly; nothing throws', () => {
    fc.assert(
      fc.property(
        validArb,
        fc.array(junkArb, { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 50 }),
        (valid, junk, mix) => {
          const initial = pattern(64);
          const store = new MemoryStore(Buffer.from(initial));
          const junkStore = new MemoryStore(64);
          const engine = new TargetEngine({
            exports: [
              { shelf: 1, slot: 0, store },
              { shelf: 2, slot: 0, store: junkStore },
            ],
          });
          engine.addLink(LINK, { mac: mac(TARGET_MAC), mtu: 9000, name: 't' });
          const model = Buffer.from(initial);
          const frames: Buffer[] = [];
          const expected = new Map<number, { kind: 'read' | 'write'; lba: number; n: number }>();
          valid.forEach((v, i) => {
            const tag = 0x100 + i;
            const n = Math.min(v.n, (v.kind === 'read' ? REGION_B : 64) - v.lba);
            if (v.kind === 'read') {
              frames.push(read(v.lba, n, { tag }));
            } else {
              const data = Buffer.alloc(n * 512, v.seed);
              frames.push(write(v.lba, data, { tag }));
            }
            expected.set(tag, { kind: v.kind, lba: v.lba, n });
          });
          // Interleave junk at pseudo-random positions; valid requests keep their relative order.
          for (let j = 0; j < junk.length; j++)
            frames.splice((mix[j] ?? 0) % (frames.length + 1), 0, junk[j]!);
          // Apply the writes to the model in arrival order (the engine's rule for overlapping writes).
          for (const f of frames) {
            if (f.length < 60 || f.readUInt16BE(16) !== 1 || f[18] !== 0 || f[19] !== 0 || f[24 + 3] !== 0x34)
              continue;
            const lba = f.readUIntLE(28, 6);
            const n = f[26]!;
            f.copy(model, lba * 512, 36, 36 + n * 512);
          }
          const sink = new RecordingSink();
          const slots = frames.map((f) => {
            const b = Buffer.alloc(9014);
            f.copy(b);
            return b;
          });
          engine.handleBatch(
            LINK,
            slots,
            Int32Array.from(frames.map((f) => f.length)),
            frames.length,
            sink,
            0,
          );
          const mine = sink.sent.filter((f) => f.readUInt16BE(16) === 1 && f[18] === 0);
          const answered = new Map<number, Buffer>();
          for (const f of mine) {
            const tag = f.readUInt32BE(20);
            expect(answered.has(tag)).toBe(false);
            answered.set(tag, f);
          }
          expect([...answered.keys()].sort()).toEqual([...expected.keys()].sort());
          for (const [tag, e] of expected) {
            const f = answered.get(tag)!;
            expect(f[14]).toBe(0x18); // version 1, R, no E
            expect(f[27]).toBe(0x40); // DRDY
            if (e.kind === 'read') {
              expect(f.length).toBe(36 + e.n * 512);
              expect(f.subarray(36).equals(initial.subarray(e.lba * 512, (e.lba + e.n) * 512))).toBe(true);
            } else {
              expect(f.length).toBe(60);
            }
          }
          expect(store.data.equals(model)).toBe(true);
          expect(engine.stats().links[String(LINK)]!.framesIn).toBe(frames.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('pure junk on every export and link never throws', () => {
    fc.assert(
      fc.property(fc.array(junkArb, { maxLength: 64 }), (junk) => {
        const s = setup({ exp: { bufferCount: 2 } });
        s.engine.addExport({ shelf: 2, slot: 0, store: new MemoryStore(16) });
        const slots = junk.map((f) => {
          const b = Buffer.alloc(Math.max(9014, f.length));
          f.copy(b);
          return b;
        });
        s.engine.handleBatch(LINK, slots, Int32Array.from(junk.map((f) => f.length)), junk.length, s.sink, 0);
        for (const f of s.sink.sent) {
          expect(f.length).toBeGreaterThanOrEqual(60);
          expect(f.readUInt16BE(16)).not.toBe(0xffff);
          expect(f[18]).not.toBe(0xff);
          expect(f.subarray(6, 12).equals(mac(TARGET_MAC))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('an ATA frame with every field random is answered or dropped, never thrown', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ minLength: 6, maxLength: 6 }),
        (aflags, count, op, lba) => {
          const s = setup();
          const f = ata({ op: 0xe5 });
          const g = Buffer.alloc(36 + 255 * 512);
          f.copy(g);
          g[24] = aflags;
          g[26] = count;
          g[27] = op;
          Buffer.from(lba).copy(g, 28);
          const replies = s.run([g]);
          expect(replies.length).toBeLessThanOrEqual(1);
          for (const r of replies as AtaMessage[]) expect(r.major).toBe(1);
        },
      ),
      { numRuns: 500 },
    );
  });
});
