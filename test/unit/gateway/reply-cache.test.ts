/**
 * ReplyCache: the exporter's kept replies of requests that must not run twice. What matters is
 * that a lookup never answers with bytes other than the reply kept for that seq (a wrong answer
 * would acknowledge a write with another request's status); a miss is always safe (the duplicate is
 * dropped). Scripted cases pin the ring's wrap at its exact boundary, direct-mapped collisions, the
 * age limit and the size limit; a model test checks random puts and gets byte for byte.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReplyCache } from '../../../src/gateway/reply-cache.js';

/** A reply of `len` bytes, pseudo-random per `id`: another reply's bytes in its place show. */
const reply = (id: number, len: number): Buffer => {
  const b = Buffer.alloc(len);
  let x = (id * 0x9e3779b1) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
};

describe('ReplyCache', () => {
  it('keeps a reply and returns its bytes as a view; the view is valid until the next put', () => {
    const c = new ReplyCache();
    const r = reply(1, 22);
    const framed = Buffer.concat([Buffer.alloc(5, 0xee), r, Buffer.alloc(3, 0xee)]);
    expect(c.put(9, framed, 5, 22, 0)).toBe(true);
    const got = c.get(9, 0)!;
    expect(got).not.toBeNull();
    expect(got.equals(r)).toBe(true);
    // A view into the ring: no copy per hit (the exporter rewrites its tag in place).
    got[0] = 0x77;
    expect(c.get(9, 0)![0]).toBe(0x77);
    // The caller's buffer was copied, not kept.
    framed.fill(0);
    expect(c.get(9, 0)!.subarray(1).equals(r.subarray(1))).toBe(true);
    expect(c.get(10, 0)).toBeNull();
    expect([c.stored, c.hits, c.misses]).toEqual([1, 3, 1]);
  });

  it('a later put for the same seq replaces the earlier reply', () => {
    const c = new ReplyCache();
    c.put(4, reply(1, 22), 0, 22, 0);
    c.put(4, reply(2, 30), 0, 30, 0);
    expect(c.get(4, 0)!.equals(reply(2, 30))).toBe(true);
  });

  it('an entry is a hit until the ring wraps onto its first byte, a miss from exactly then on', () => {
    const c = new ReplyCache({ bytes: 100, entries: 64 });
    for (let k = 0; k < 5; k++) c.put(k, reply(k, 20), 0, 20, 0); // [0,20) … [80,100): ring full
    for (let k = 0; k < 5; k++) expect(c.get(k, 0)!.equals(reply(k, 20))).toBe(true);
    c.put(5, reply(5, 1), 0, 1, 0); // byte 0 again: seq 0's first byte is overwritten
    expect(c.get(0, 0)).toBeNull();
    expect(c.get(1, 0)!.equals(reply(1, 20))).toBe(true);
    expect(c.get(5, 0)!.equals(reply(5, 1))).toBe(true);
    c.put(6, reply(6, 19), 0, 19, 0); // [1,20): up to the last byte before seq 1
    expect(c.get(1, 0)!.equals(reply(1, 20))).toBe(true);
    c.put(7, reply(7, 1), 0, 1, 0); // byte 20: seq 1's first
    expect(c.get(1, 0)).toBeNull();
    expect(c.get(2, 0)!.equals(reply(2, 20))).toBe(true);
  });

  it('a reply that does not fit before the end of the ring starts at 0 (the tail is skipped)', () => {
    const c = new ReplyCache({ bytes: 100, entries: 64 });
    for (let k = 0; k < 4; k++) c.put(k, reply(k, 20), 0, 20, 0); // [0,80)
    c.put(4, reply(4, 25), 0, 25, 0); // 80 + 25 > 100: written at [0,25), [80,100) unused
    expect(c.get(4, 0)!.equals(reply(4, 25))).toBe(true);
    expect(c.get(0, 0)).toBeNull(); // [0,20) overwritten
    expect(c.get(1, 0)).toBeNull(); // [20,40) partly overwritten
    expect(c.get(2, 0)!.equals(reply(2, 20))).toBe(true);
    expect(c.get(3, 0)!.equals(reply(3, 20))).toBe(true);
  });

  it('direct-mapped: seq and seq + entries share an entry, the later one wins', () => {
    const c = new ReplyCache({ entries: 8 });
    c.put(3, reply(1, 22), 0, 22, 0);
    c.put(11, reply(2, 22), 0, 22, 0);
    expect(c.get(3, 0)).toBeNull();
    expect(c.get(11, 0)!.equals(reply(2, 22))).toBe(true);
    expect(c.get(19, 0)).toBeNull(); // the same entry, never put
    c.put(4, reply(3, 22), 0, 22, 0); // a neighbouring entry is untouched by them
    expect(c.get(4, 0)!.equals(reply(3, 22))).toBe(true);
    expect(c.get(11, 0)!.equals(reply(2, 22))).toBe(true);
  });

  it('a reply older than maxAgeMs is a miss; exactly maxAgeMs old is still a hit', () => {
    const c = new ReplyCache({ maxAgeMs: 60_000 });
    c.put(1, reply(1, 22), 0, 22, 1000);
    expect(c.get(1, 61_000)).not.toBeNull();
    expect(c.get(1, 61_001)).toBeNull();
    // Re-putting refreshes the age.
    c.put(1, reply(2, 22), 0, 22, 61_001);
    expect(c.get(1, 121_001)!.equals(reply(2, 22))).toBe(true);
  });

  it('refuses a reply larger than a quarter of the ring (it would evict too much), and keeps nothing for it', () => {
    const c = new ReplyCache({ bytes: 100 });
    expect(c.put(1, reply(1, 25), 0, 25, 0)).toBe(true);
    expect(c.put(2, reply(2, 26), 0, 26, 0)).toBe(false);
    expect(c.get(2, 0)).toBeNull();
    expect(c.get(1, 0)!.equals(reply(1, 25))).toBe(true);
    expect(c.stored).toBe(1);
    // A refused reply for a seq already kept leaves the older reply (the caller marks it not kept).
    expect(c.put(1, reply(3, 26), 0, 26, 0)).toBe(false);
    expect(c.get(1, 0)!.equals(reply(1, 25))).toBe(true);
  });

  it('clear() forgets every entry; the ring keeps working afterwards', () => {
    const c = new ReplyCache({ bytes: 100, entries: 8 });
    for (let k = 0; k < 4; k++) c.put(k, reply(k, 20), 0, 20, 0);
    c.clear();
    for (let k = 0; k < 4; k++) expect(c.get(k, 0)).toBeNull();
    c.put(2, reply(9, 20), 0, 20, 0);
    expect(c.get(2, 0)!.equals(reply(9, 20))).toBe(true);
  });
});

// ---- model --------------------------------------------------------------------------------------

describe('ReplyCache against a model', () => {
  it('never returns bytes other than the latest reply put for that seq, and hits whenever it must', () => {
    const counts = { hits: 0, mustHit: 0, misses: 0 };
    fc.assert(
      fc.property(
        fc.record({
          bytes: fc.integer({ min: 8, max: 120 }),
          entries: fc.integer({ min: 1, max: 12 }),
          maxAgeMs: fc.integer({ min: 0, max: 300 }),
        }),
        fc.array(
          fc.oneof(
            fc.record({
              k: fc.constant('put' as const),
              seq: fc.integer({ min: 0, max: 30 }),
              // short replies make exact wrap points common; some do not fit a quarter of the ring
              len: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 40 })),
              dt: fc.integer({ min: 0, max: 20 }),
            }),
            fc.record({
              k: fc.constant('get' as const),
              seq: fc.integer({ min: 0, max: 30 }),
              dt: fc.integer({ min: 0, max: 20 }),
            }),
            fc.record({
              // a seq put before: recent ones, and the oldest still kept (the next to be overwritten)
              k: fc.constant('getPut' as const),
              back: fc.oneof(fc.nat({ max: 10 }), fc.constant(-1)),
              dt: fc.integer({ min: 0, max: 20 }),
            }),
          ),
          { minLength: 1, maxLength: 200, size: '+1' },
        ),
        (o, ops) => {
          const c = new ReplyCache(o);
          // Every put accepted, in order: what it wrote, when, and how many bytes the ring has
          // taken since (an upper bound on what could have been overwritten after it).
          const puts: { seq: number; bytes: Buffer; at: number; after: number }[] = [];
          const latest = new Map<number, number>(); // seq → index in puts
          let now = 0;
          let id = 0;
          for (const op of ops) {
            now += op.dt;
            if (op.k === 'put') {
              const r = reply(++id, op.len);
              const framed = Buffer.concat([Buffer.alloc(3, 0xee), r]);
              const ok = c.put(op.seq, framed, 3, op.len, now);
              if (ok !== op.len <= o.bytes >> 2) return false;
              if (!ok) continue;
              for (const p of puts) p.after += op.len;
              puts.push({ seq: op.seq, bytes: r, at: now, after: 0 });
              latest.set(op.seq, puts.length - 1);
              continue;
            }
            let seq = op.k === 'get' ? op.seq : -1;
            if (op.k === 'getPut') {
              if (puts.length === 0) continue;
              const oldest = puts.findIndex((p, i) => latest.get(p.seq) === i);
              seq = puts[op.back < 0 ? oldest : Math.max(0, puts.length - 1 - op.back)]!.seq;
            }
            const got = c.get(seq, now);
            const i = latest.get(seq);
            if (got !== null) {
              // Safety: the bytes of this seq's latest reply, nothing else.
              if (i === undefined || !got.equals(puts[i]!.bytes)) return false;
              counts.hits++;
            } else counts.misses++;
            if (i === undefined) continue;
            const p = puts[i]!;
            // It must be a hit when nothing can have displaced it: no later put mapped to its entry,
            // not too old, and its bytes plus everything put since fit in three quarters of the ring
            // (one skipped tail is shorter than a quarter).
            const sameEntry = puts.slice(i + 1).some((q) => q.seq % o.entries === seq % o.entries);
            const mustHit =
              !sameEntry && now - p.at <= o.maxAgeMs && p.bytes.length + p.after <= o.bytes - (o.bytes >> 2);
            if (mustHit) {
              counts.mustHit++;
              if (got === null) return false;
            }
          }
          return true;
        },
      ),
      { numRuns: 500, seed: 0xcac4e },
    );
    expect(counts.hits).toBeGreaterThan(1000);
    expect(counts.mustHit).toBeGreaterThan(500);
    expect(counts.misses).toBeGreaterThan(1000);
  });
});
