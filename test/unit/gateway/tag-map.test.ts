/**
 * TagMap: the bounded request table both gateway hops use. A tag must name one slot and one
 * generation, so a late reply to a freed and reused slot is never taken for the new request.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NO_SLOT, TagMap } from '../../../src/gateway/tag-map.js';

describe('TagMap', () => {
  it('rounds the capacity up to a power of two and rejects sizes outside 1..65536', () => {
    expect(new TagMap(1).capacity).toBe(1);
    expect(new TagMap(3).capacity).toBe(4);
    expect(new TagMap(4096).capacity).toBe(4096);
    expect(new TagMap(4097).capacity).toBe(8192);
    expect(new TagMap(65536).capacity).toBe(65536);
    for (const bad of [0, -1, 1.5, 65537, Number.NaN]) {
      expect(() => new TagMap(bad)).toThrow(/capacity/);
    }
  });

  it('hands out every slot once, then reports full; a released slot is reusable', () => {
    const m = new TagMap(8);
    const slots = Array.from({ length: 8 }, () => m.take(0));
    expect(new Set(slots).size).toBe(8);
    expect(m.size).toBe(8);
    expect(m.take(0)).toBe(NO_SLOT);
    m.release(slots[3]!);
    expect(m.size).toBe(7);
    expect(m.take(0)).toBe(slots[3]);
    // Releasing twice does not corrupt the free list.
    m.release(slots[0]!);
    m.release(slots[0]!);
    expect(m.size).toBe(7);
    expect(m.take(0)).toBe(slots[0]);
    expect(m.take(0)).toBe(NO_SLOT);
  });

  it('tags have bit 31 clear across many generations, for every table size', () => {
    for (const cap of [1, 2, 16, 4096, 65536]) {
      const m = new TagMap(cap);
      for (let i = 0; i < 1000; i++) {
        const s = m.take(0);
        const tag = m.tagOf(s);
        expect(tag).toBeGreaterThanOrEqual(0);
        expect(tag).toBeLessThanOrEqual(0x7fffffff);
        expect(m.find(tag)).toBe(s);
        m.release(s);
      }
    }
  });

  it('a stale generation is rejected after release and reuse of the slot', () => {
    const m = new TagMap(4);
    const s = m.take(0);
    const old = m.tagOf(s);
    m.release(s);
    expect(m.find(old)).toBe(NO_SLOT);
    // Take everything: the same slot comes back with a new generation.
    const again = [m.take(0), m.take(0), m.take(0), m.take(0)];
    expect(again).toContain(s);
    expect(m.tagOf(s)).not.toBe(old);
    expect(m.find(old)).toBe(NO_SLOT);
    expect(m.find(m.tagOf(s))).toBe(s);
  });

  it('rejects unknown tags, tags with bit 31 set and out-of-range numbers', () => {
    const m = new TagMap(16);
    const s = m.take(0);
    const t = m.tagOf(s);
    expect(m.find((t | 0x80000000) >>> 0)).toBe(NO_SLOT);
    expect(m.find(-1)).toBe(NO_SLOT);
    expect(m.find(2 ** 32)).toBe(NO_SLOT);
    expect(m.find(t + 1)).toBe(NO_SLOT); // a slot never taken
    expect(m.find(t + 16)).toBe(NO_SLOT); // right slot, next generation
  });

  it('expire releases exactly the slots taken before the cutoff and reports each', () => {
    const m = new TagMap(8);
    const early = [m.take(100), m.take(150)];
    const late = [m.take(200), m.take(250)];
    const seen: number[] = [];
    expect(m.expire(200, (s) => seen.push(s))).toBe(2);
    expect(seen.sort()).toEqual([...early].sort());
    for (const s of early) expect(m.isLive(s)).toBe(false);
    for (const s of late) expect(m.isLive(s)).toBe(true);
    expect(m.size).toBe(2);
    expect(m.sentAt[late[0]!]).toBe(200);
    expect(m.expire(1000)).toBe(2);
    expect(m.size).toBe(0);
    expect(m.expire(1e9)).toBe(0);
  });

  it('property: random take/release/find/expire sequences agree with a model', () => {
    type Op =
      | { k: 'take' }
      | { k: 'release'; i: number }
      | { k: 'find'; i: number }
      | { k: 'stale'; i: number }
      | { k: 'expire'; dt: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.constant({ k: 'take' as const }),
      fc.record({ k: fc.constant('release' as const), i: fc.nat(64) }),
      fc.record({ k: fc.constant('find' as const), i: fc.nat(64) }),
      fc.record({ k: fc.constant('stale' as const), i: fc.nat(64) }),
      fc.record({ k: fc.constant('expire' as const), dt: fc.nat(20) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), fc.array(op, { maxLength: 300 }), (cap, ops) => {
        const m = new TagMap(cap);
        // Model: live requests as (slot, tag, takenAt); every tag ever released.
        const live: { slot: number; tag: number; at: number }[] = [];
        const dead: number[] = [];
        let now = 0;
        for (const o of ops) {
          now++;
          if (o.k === 'take') {
            const s = m.take(now);
            if (live.length === m.capacity) {
              expect(s).toBe(NO_SLOT);
              continue;
            }
            expect(s).not.toBe(NO_SLOT);
            expect(live.some((l) => l.slot === s)).toBe(false);
            const tag = m.tagOf(s);
            expect(tag >>> 31).toBe(0);
            expect(live.some((l) => l.tag === tag)).toBe(false);
            live.push({ slot: s, tag, at: now });
          } else if (o.k === 'release' && live.length > 0) {
            const [l] = live.splice(o.i % live.length, 1);
            m.release(l!.slot);
            dead.push(l!.tag);
          } else if (o.k === 'find' && live.length > 0) {
            const l = live[o.i % live.length]!;
            expect(m.find(l.tag)).toBe(l.slot);
          } else if (o.k === 'stale' && dead.length > 0) {
            const tag = dead[o.i % dead.length]!;
            // A released tag never finds a slot unless that exact tag is live again (only
            // possible after the generation counter wraps, far beyond these sequences).
            if (!live.some((l) => l.tag === tag)) expect(m.find(tag)).toBe(NO_SLOT);
          } else if (o.k === 'expire') {
            const cutoff = now - o.dt;
            const gone = live.filter((l) => l.at < cutoff);
            const reported: number[] = [];
            expect(m.expire(cutoff, (s) => reported.push(s))).toBe(gone.length);
            expect(reported.sort()).toEqual(gone.map((l) => l.slot).sort());
            for (const g of gone) {
              live.splice(live.indexOf(g), 1);
              dead.push(g.tag);
            }
          }
          expect(m.size).toBe(live.length);
        }
      }),
      { numRuns: 300 },
    );
  });
});
