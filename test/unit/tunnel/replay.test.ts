/**
 * Anti-replay window: an edge table in the spirit of the Linux WireGuard counter selftest (window
 * edges, duplicates, far jumps, counter 0, the reject limit, ring wraparound), a fast-check property
 * against a reference model (a Set of accepted counters and their maximum), and check() purity.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  COUNTER_BITS_TOTAL,
  REJECT_AFTER_MESSAGES,
  REPLAY_WINDOW,
  ReplayWindow,
} from '../../../src/tunnel/replay.js';

const W = BigInt(REPLAY_WINDOW);
/** One past the window: with last = T, counter 0 is exactly too old. */
const T = W + 1n;
const REJECT = REJECT_AFTER_MESSAGES;

/** What the data path does: check before decrypting, update after authenticating. */
function accept(w: ReplayWindow, counter: bigint): boolean {
  const ok = w.check(counter);
  const updated = ok && w.update(counter);
  // A plain throw, not expect(): the sweeps call this tens of thousands of times.
  if (updated !== ok) throw new Error(`check() accepted ${counter} but update() refused it`);
  return updated;
}

/** Counters in [from, to] (stepping by `step`) whose outcome differs from `expected`. */
function mismatches(
  from: bigint,
  to: bigint,
  step: bigint,
  expected: boolean,
  f: (c: bigint) => boolean,
): bigint[] {
  const bad: bigint[] = [];
  for (let c = from; step > 0n ? c <= to : c >= to; c += step) if (f(c) !== expected) bad.push(c);
  return bad;
}

/** Reference model: accepted once, below the reject limit, and no more than W below the maximum. */
class Model {
  private readonly seen = new Set<bigint>();
  private max = 0n;
  check(c: bigint): boolean {
    return c >= 0n && c < REJECT && !this.seen.has(c) && c + W >= this.max;
  }
  update(c: bigint): boolean {
    if (!this.check(c)) return false;
    this.seen.add(c);
    if (c > this.max) this.max = c;
    return true;
  }
}

describe('constants', () => {
  it('window of at least 8128 (DESIGN.md), reject limit 2^64 - 2^13 - 1', () => {
    expect(REPLAY_WINDOW).toBeGreaterThanOrEqual(8128);
    expect(REPLAY_WINDOW).toBe(COUNTER_BITS_TOTAL - 32);
    expect(REJECT).toBe(18446744073709543423n);
  });
});

describe('edge table (one window, in order)', () => {
  const table: [bigint, boolean, string][] = [
    [0n, true, 'counter 0 is valid once'],
    [1n, true, 'next'],
    [1n, false, 'duplicate'],
    [9n, true, 'skip ahead'],
    [8n, true, 'late, inside the window'],
    [7n, true, 'late, inside the window'],
    [7n, false, 'late duplicate'],
    [T, true, 'jump to one past the window'],
    [T - 1n, true, 'late'],
    [T - 1n, false, 'duplicate'],
    [T - 2n, true, 'late'],
    [2n, true, 'oldest still inside the window (2 + W = T + 1)'],
    [2n, false, 'duplicate of the oldest'],
    [0n, false, 'counter 0 now just too old'],
    [T + 16n, true, 'forward'],
    [3n, false, 'fell out of the window'],
    [T + 16n, false, 'duplicate of the highest'],
    [4n * T, true, 'far jump'],
    [4n * T - (T - 1n), true, 'exactly W below the highest: accepted'],
    [4n * T - (T - 1n), false, '...once'],
    [4n * T - T, false, 'W + 1 below the highest: just too old'],
    [4n * T - (T + 1n), false, 'older still'],
    [4n * T - (T - 2n), true, 'W - 1 below the highest'],
    [10n, false, 'ancient'],
    [4n * T + 1n, true, 'next after the jump'],
    [4n * T - (T - 1n), false, 'now too old'],
    [2n ** 53n + 1n, true, 'beyond double precision'],
    [2n ** 53n, true, 'one below, distinct bigint'],
    [2n ** 53n + 1n, false, 'duplicate beyond double precision'],
    [REJECT, false, 'REJECT_AFTER_MESSAGES itself is refused'],
    [REJECT - 1n, true, 'the last valid counter'],
    [REJECT - 1n, false, 'duplicate'],
    [REJECT - 2n, true, 'late'],
    [REJECT + 1n, false, 'above the limit'],
    [2n ** 64n - 1n, false, 'largest u64'],
    [2n ** 64n, false, 'outside u64'],
    [-1n, false, 'negative'],
    [REJECT - 2n, false, 'duplicate at the top'],
    [0n, false, 'counter 0 long gone'],
  ];
  const w = new ReplayWindow();
  const cases = table.map(([c, ok, why], i) => [i, c, ok, why] as const);
  it.each(cases)('#%i counter %s → %s (%s)', (_i, c, ok) => {
    expect(accept(w, c)).toBe(ok);
  });
});

describe('window sweeps', () => {
  it('fill 1..W ascending, then 0 sits exactly on the edge', () => {
    const w = new ReplayWindow();
    expect(mismatches(1n, W, 1n, true, (c) => accept(w, c))).toEqual([]);
    expect(accept(w, 0n)).toBe(true);
    expect(accept(w, 0n)).toBe(false);
  });

  it('fill 2..W+1 ascending: 1 on the edge, 0 just too old', () => {
    const w = new ReplayWindow();
    expect(mismatches(2n, W + 1n, 1n, true, (c) => accept(w, c))).toEqual([]);
    expect(accept(w, 1n)).toBe(true);
    expect(accept(w, 0n)).toBe(false);
  });

  it('fill W..0 descending (all late), then every one is a duplicate', () => {
    const w = new ReplayWindow();
    expect(mismatches(W, 0n, -1n, true, (c) => accept(w, c))).toEqual([]);
    expect(mismatches(0n, W, 1n, false, (c) => accept(w, c))).toEqual([]);
  });

  it('fill W+1..1 descending: 0 too old afterwards', () => {
    const w = new ReplayWindow();
    expect(mismatches(W + 1n, 1n, -1n, true, (c) => accept(w, c))).toEqual([]);
    expect(accept(w, 0n)).toBe(false);
  });

  it('three laps of the ring in order: the whole window is remembered, nothing older', () => {
    const w = new ReplayWindow();
    const last = 3n * BigInt(COUNTER_BITS_TOTAL) + 5n;
    expect(mismatches(0n, last, 1n, true, (c) => w.update(c))).toEqual([]);
    expect(mismatches(last - W, last, 1n, false, (c) => w.check(c))).toEqual([]);
    expect(w.check(last - W - 1n)).toBe(false);
    expect(w.check(last + 1n)).toBe(true);
    expect(w.highest).toBe(last);
  });

  it('sparse laps (every 33rd counter) leave the skipped ones acceptable', () => {
    const w = new ReplayWindow();
    let c = 0n;
    for (; c < 4n * BigInt(COUNTER_BITS_TOTAL); c += 33n) expect(accept(w, c)).toBe(true);
    const last = c - 33n;
    const wrong: bigint[] = [];
    for (let i = last - W; i <= last; i++) if (w.check(i) !== (i % 33n !== 0n)) wrong.push(i);
    expect(wrong).toEqual([]);
  });
});

describe('ring wraparound and stale words', () => {
  it('a word kept in the window keeps its bits; once the ring reuses its slot they are gone', () => {
    const w = new ReplayWindow();
    for (let i = 0n; i < 32n; i++) expect(accept(w, i)).toBe(true); // word 0
    expect(accept(w, W)).toBe(true); // word 255: word 0 is still the oldest word in the window
    for (let i = 0n; i < 32n; i++) expect(w.check(i)).toBe(false);
    expect(accept(w, W + 32n)).toBe(true); // word 256 reuses slot 0
    for (let i = 0n; i < 32n; i++) expect(w.check(i)).toBe(false); // now too old
    for (let i = 32n; i < 64n; i++) expect(w.check(i)).toBe(true); // word 1: inside, never seen
    expect(w.check(W + 32n + 1n)).toBe(true);
    // Counters of word 256 must not inherit word 0's bits.
    for (let i = W + 33n; i < W + 64n; i++) expect(accept(w, i)).toBe(true);
  });

  it('check() ahead of the window ignores stale bits of the slot it will reuse', () => {
    const w = new ReplayWindow();
    expect(accept(w, 3n)).toBe(true);
    const ahead = BigInt(COUNTER_BITS_TOTAL) + 3n; // same slot and bit as 3
    expect(w.check(ahead)).toBe(true);
    expect(w.check(3n)).toBe(false);
    expect(accept(w, ahead)).toBe(true);
    expect(accept(w, ahead)).toBe(false);
    expect(w.check(3n)).toBe(false);
  });

  it('jumps of exactly one ring, one ring minus a word, and far beyond', () => {
    const ring = BigInt(COUNTER_BITS_TOTAL);
    const w = new ReplayWindow();
    expect(accept(w, 5n)).toBe(true);
    expect(accept(w, 5n + ring)).toBe(true);
    expect(accept(w, 5n)).toBe(false);
    expect(accept(w, 5n + ring - W)).toBe(true);
    expect(accept(w, 5n + ring - 32n)).toBe(true);
    expect(accept(w, 2n ** 62n)).toBe(true);
    expect(accept(w, 5n + ring + 1n)).toBe(false);
    expect(accept(w, 2n ** 62n - W)).toBe(true);
    expect(accept(w, 2n ** 62n - W - 1n)).toBe(false);
  });
});

describe('two-phase use', () => {
  it('two packets with the same counter may both pass check(); only the first update() wins', () => {
    const w = new ReplayWindow();
    expect(w.check(42n)).toBe(true);
    expect(w.check(42n)).toBe(true);
    expect(w.update(42n)).toBe(true);
    expect(w.update(42n)).toBe(false);
  });

  it('a packet that fails authentication (no update) does not burn its counter', () => {
    const w = new ReplayWindow();
    expect(w.check(100n)).toBe(true);
    // ...decryption fails, update() not called...
    expect(w.check(100n)).toBe(true);
    expect(w.update(100n)).toBe(true);
  });

  it('reset() restores the initial state', () => {
    const w = new ReplayWindow();
    w.update(0n);
    w.update(10n * T);
    w.reset();
    expect(w.highest).toBe(0n);
    expect(accept(w, 0n)).toBe(true);
  });
});

/** Counters clustered near interesting places so window edges and ring slots are hit often. */
const counterArb = fc.oneof(
  fc.bigInt({ min: 0n, max: 3n * W }),
  fc.bigInt({ min: 0n, max: 64n }),
  fc.bigInt({ min: REJECT - 3n * W, max: 2n ** 64n + 2n }),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
);
const opsArb = fc.array(fc.record({ counter: counterArb, update: fc.boolean() }), { maxLength: 400 });

/** Counters around the model's maximum (both window edges) and the first few. */
function probes(max: bigint): bigint[] {
  const out: bigint[] = [];
  for (const base of [0n, max - W, max]) {
    for (let d = -40n; d <= 40n; d++) out.push(base + d);
  }
  return out;
}

describe('property: agrees with the reference model', () => {
  it('random interleavings of check and update, with drift through the window', () => {
    fc.assert(
      fc.property(opsArb, fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 300 }), (ops, steps) => {
        const w = new ReplayWindow();
        const m = new Model();
        let c = 0n;
        // A mostly increasing stream with small steps: the realistic case, through many ring laps.
        for (const s of steps) {
          c += BigInt(s * 37);
          expect(w.update(c)).toBe(m.update(c));
          const late = c - BigInt(s * 211);
          expect(w.check(late)).toBe(m.check(late));
          expect(w.update(late)).toBe(m.update(late));
        }
        for (const op of ops) {
          if (op.update) expect(w.update(op.counter)).toBe(m.update(op.counter));
          else expect(w.check(op.counter)).toBe(m.check(op.counter));
        }
        for (const p of probes(w.highest)) expect(w.check(p)).toBe(m.check(p));
      }),
      { numRuns: 300 },
    );
  });

  it('check() never changes state: a twin that saw no checks answers identically', () => {
    fc.assert(
      fc.property(opsArb, fc.array(counterArb, { maxLength: 200 }), (ops, checks) => {
        const probed = new ReplayWindow();
        const twin = new ReplayWindow();
        let k = 0;
        for (const op of ops) {
          // Interleave pure checks on one window only.
          for (let j = 0; j < 3 && k < checks.length; j++, k++) probed.check(checks[k]!);
          probed.check(op.counter);
          if (op.update) expect(probed.update(op.counter)).toBe(twin.update(op.counter));
        }
        for (const c of checks) probed.check(c);
        expect(probed.highest).toBe(twin.highest);
        for (const p of [...probes(twin.highest), ...checks]) expect(probed.check(p)).toBe(twin.check(p));
      }),
      { numRuns: 300 },
    );
  });
});
