/**
 * RequestWindow: the exporter's at-most-once rule for one peer (docs/protocol.md 13.8, "Exporter").
 * A table pins each verdict and the effects of done() and forget(); the edges of the window, slot
 * reuse and the fence are spelled out; a model test drives random admit/done/forget sequences
 * against a Map-based reference written straight from the eight steps of 13.8.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REQUEST_WINDOW, RequestWindow, Verdict } from '../../../src/gateway/request-window.js';

const W = REQUEST_WINDOW;

type Op =
  | { admit: [epoch: number, seq: number, fence: number]; expect: Verdict }
  | { done: [epoch: number, seq: number, kept: boolean] }
  | { forget: [epoch: number, seq: number] };

const run = (ops: readonly Op[]): RequestWindow => {
  const w = new RequestWindow();
  ops.forEach((op, i) => {
    if ('admit' in op) expect(w.admit(...op.admit), `step ${i}: admit(${op.admit})`).toBe(op.expect);
    else if ('done' in op) w.done(...op.done);
    else w.forget(...op.forget);
  });
  return w;
};

const V = Verdict;
const cases: [string, Op[]][] = [
  ['a first request is new', [{ admit: [1, 1, 0], expect: V.NEW }]],
  [
    'a copy of a running request is in progress',
    [
      { admit: [1, 1, 0], expect: V.NEW },
      { admit: [1, 1, 0], expect: V.IN_PROGRESS },
    ],
  ],
  [
    'a copy of a request done with its reply kept is answered from the cache, every time',
    [
      { admit: [1, 1, 0], expect: V.NEW },
      { done: [1, 1, true] },
      { admit: [1, 1, 0], expect: V.DONE_CACHED },
      { admit: [1, 1, 0], expect: V.DONE_CACHED },
    ],
  ],
  [
    'a copy of a request done without a kept reply (a read) runs again, and is running while it does',
    [
      { admit: [1, 1, 0], expect: V.NEW },
      { done: [1, 1, false] },
      { admit: [1, 1, 0], expect: V.RERUN },
      { admit: [1, 1, 0], expect: V.IN_PROGRESS },
      { done: [1, 1, false] },
      { admit: [1, 1, 0], expect: V.RERUN },
    ],
  ],
  [
    'an older epoch is refused once a newer one was seen',
    [
      { admit: [5, 1, 0], expect: V.NEW },
      { admit: [4, 9, 0], expect: V.STALE_EPOCH },
      { admit: [4, 1, 0], expect: V.STALE_EPOCH },
    ],
  ],
  [
    'a seq below the fence that never arrived is refused',
    [
      { admit: [1, 5, 4], expect: V.NEW },
      { admit: [1, 3, 0], expect: V.STALE_FENCE },
      { admit: [1, 4, 0], expect: V.NEW }, // the fence itself may still run
    ],
  ],
  [
    'a seq exactly WINDOW below the highest is too old; one above it is judged',
    [
      { admit: [1, W + 10, 0], expect: V.NEW },
      { admit: [1, 10, 0], expect: V.STALE_OLD },
      { admit: [1, 11, 0], expect: V.NEW },
    ],
  ],
  [
    'done() and forget() for another epoch change nothing',
    [
      { admit: [2, 1, 0], expect: V.NEW },
      { done: [1, 1, true] },
      { forget: [1, 1] },
      { admit: [2, 1, 0], expect: V.IN_PROGRESS },
    ],
  ],
  [
    'forget() lets a later copy run; a forgotten seq below the fence does not',
    [
      { admit: [1, 1, 0], expect: V.NEW },
      { forget: [1, 1] },
      { admit: [1, 1, 0], expect: V.NEW },
      { forget: [1, 1] },
      { admit: [1, 2, 2], expect: V.NEW },
      { admit: [1, 1, 0], expect: V.STALE_FENCE },
    ],
  ],
  [
    'forget() of a finished request changes nothing (it may have reached a store)',
    [
      { admit: [1, 1, 0], expect: V.NEW },
      { done: [1, 1, true] },
      { forget: [1, 1] },
      { admit: [1, 1, 0], expect: V.DONE_CACHED },
      { admit: [1, 2, 0], expect: V.NEW },
      { done: [1, 2, false] },
      { forget: [1, 2] },
      { admit: [1, 2, 0], expect: V.RERUN },
    ],
  ],
  [
    'done() and forget() of a seq never admitted change nothing',
    [{ done: [1, 3, true] }, { forget: [1, 3] }, { admit: [1, 3, 0], expect: V.NEW }],
  ],
];

describe('RequestWindow verdicts', () => {
  it.each(cases)('%s', (_name, ops) => {
    run(ops);
  });

  it('a newer epoch starts over: seqs, highest and fence of the old one are forgotten', () => {
    const w = run([
      { admit: [1, W + 5, 7], expect: V.NEW },
      { done: [1, W + 5, true] },
      { admit: [1, 3, 0], expect: V.STALE_OLD },
    ]);
    expect([w.epoch, w.highest, w.fence]).toEqual([1, W + 5, 7]);
    // The new epoch's seq 1 is new although the old epoch had a fence of 7 and a window far above.
    expect(w.admit(2, 1, 0)).toBe(V.NEW);
    expect([w.epoch, w.highest, w.fence]).toEqual([2, 1, 0]);
    // W + 5 was done (kept) in epoch 1: in epoch 2 it is a different request.
    expect(w.admit(2, W + 5, 0)).toBe(V.NEW);
    // The old epoch's done() arriving late does not touch the new epoch's state.
    w.done(1, W + 5, true);
    expect(w.admit(2, W + 5, 0)).toBe(V.IN_PROGRESS);
    expect(w.admit(1, 2, 0)).toBe(V.STALE_EPOCH);
  });

  it('the fence only rises, learned from any record of the epoch (even one it refuses)', () => {
    const w = new RequestWindow();
    expect(w.admit(1, 10, 6)).toBe(V.NEW);
    expect(w.admit(1, 11, 2)).toBe(V.NEW); // a delayed record with an older fence
    expect(w.fence).toBe(6);
    expect(w.admit(1, 5, 0)).toBe(V.STALE_FENCE);
    // A refused too-old record still carries the importer's newest fence.
    expect(w.admit(1, 20 + W, 0)).toBe(V.NEW);
    expect(w.admit(1, 1, 15)).toBe(V.STALE_OLD);
    expect(w.fence).toBe(15);
    expect(w.admit(1, 14, 0)).toBe(V.STALE_OLD);
  });

  it('the window edge: highest − WINDOW is refused, highest − WINDOW + 1 still judged by its state', () => {
    const w = new RequestWindow();
    const lo = 100;
    expect(w.admit(1, lo, 0)).toBe(V.NEW);
    expect(w.admit(1, lo + 1, 0)).toBe(V.NEW);
    w.done(1, lo + 1, true);
    expect(w.admit(1, lo + W, 0)).toBe(V.NEW); // highest = lo + W
    expect(w.highest).toBe(lo + W);
    expect(w.admit(1, lo, 0)).toBe(V.STALE_OLD); // exactly highest − W (and its slot is reused)
    expect(w.admit(1, lo + 1, 0)).toBe(V.DONE_CACHED); // highest − W + 1: still known
    expect(w.admit(1, lo + W + 1, 0)).toBe(V.NEW); // one more: lo + 1 falls out
    expect(w.admit(1, lo + 1, 0)).toBe(V.STALE_OLD);
    // Unseen seqs just inside the window run; just outside they do not.
    expect(w.admit(1, lo + 2, 0)).toBe(V.NEW);
  });

  it('a seq reusing a slot (seq and seq + WINDOW) is a new request, and the old one is then too old', () => {
    const w = new RequestWindow();
    expect(w.admit(1, 7, 0)).toBe(V.NEW);
    w.done(1, 7, true);
    expect(w.admit(1, 7 + W, 0)).toBe(V.NEW); // same slot, not taken for the kept 7
    expect(w.admit(1, 7 + W, 0)).toBe(V.IN_PROGRESS);
    expect(w.admit(1, 7, 0)).toBe(V.STALE_OLD);
    // 7's late done() does not mark 7 + W (the slot's owner now).
    w.done(1, 7, true);
    expect(w.admit(1, 7 + W, 0)).toBe(V.IN_PROGRESS);
    w.done(1, 7 + W, false);
    expect(w.admit(1, 7 + W, 0)).toBe(V.RERUN);
    // A seq two windows up evicts everything below it.
    expect(w.admit(1, 7 + 2 * W, 0)).toBe(V.NEW);
    expect(w.admit(1, 7 + W, 0)).toBe(V.STALE_OLD);
  });

  it('a slot still owned by an older seq does not make a new seq a duplicate', () => {
    const w = new RequestWindow();
    expect(w.admit(1, 3, 0)).toBe(V.NEW); // owns slot 3
    w.done(1, 3, true);
    expect(w.admit(1, W - 1, 0)).toBe(V.NEW); // highest = W − 1: 3 still inside
    // 3 + W shares 3's slot; it was never seen: new, although the slot says "done, kept".
    expect(w.admit(1, 3 + W, 0)).toBe(V.NEW);
  });

  it('a fence raised by a later request makes an unseen older seq stale, a seen one stays a duplicate', () => {
    const w = new RequestWindow();
    expect(w.admit(1, 1, 0)).toBe(V.NEW); // seen, running
    expect(w.admit(1, 2, 0)).toBe(V.NEW); // seen, done (kept)
    w.done(1, 2, true);
    expect(w.admit(1, 3, 0)).toBe(V.NEW); // seen, done (read)
    w.done(1, 3, false);
    // 4 and 5 never arrive; the importer fails 5 and sends 6 with fence 6.
    expect(w.admit(1, 6, 6)).toBe(V.NEW);
    expect(w.admit(1, 4, 0)).toBe(V.STALE_FENCE);
    expect(w.admit(1, 5, 0)).toBe(V.STALE_FENCE);
    expect(w.admit(1, 1, 0)).toBe(V.IN_PROGRESS);
    expect(w.admit(1, 2, 0)).toBe(V.DONE_CACHED);
    expect(w.admit(1, 3, 0)).toBe(V.RERUN);
  });
});

// ---- model --------------------------------------------------------------------------------------

type ModelState = 'running' | 'kept' | 'rerun' | 'none';

/** docs/protocol.md 13.8, "Exporter", steps 1–8, over a Map of every seq seen in the epoch. */
class WindowModel {
  epoch = 0;
  highest = 0;
  fence = 0;
  /** seq → state; 'none' = admitted once, then forgotten (never reached a store). */
  readonly seen = new Map<number, ModelState>();

  admit(epoch: number, seq: number, fence: number): Verdict {
    if (epoch < this.epoch) return V.STALE_EPOCH; // 1
    if (epoch > this.epoch) {
      // 2
      this.epoch = epoch;
      this.highest = 0;
      this.fence = 0;
      this.seen.clear();
    }
    this.fence = Math.max(this.fence, fence);
    if (seq <= this.highest - W) return V.STALE_OLD; // 3
    const st = this.seen.get(seq) ?? 'none';
    if (st === 'running') return V.IN_PROGRESS; // 4
    if (st === 'kept') return V.DONE_CACHED; // 5
    if (st === 'rerun') {
      this.seen.set(seq, 'running'); // 6
      return V.RERUN;
    }
    if (seq < this.fence) return V.STALE_FENCE; // 7
    this.seen.set(seq, 'running'); // 8
    this.highest = Math.max(this.highest, seq);
    return V.NEW;
  }

  done(epoch: number, seq: number, kept: boolean): void {
    if (epoch === this.epoch && this.seen.get(seq) === 'running') this.seen.set(seq, kept ? 'kept' : 'rerun');
  }

  forget(epoch: number, seq: number): void {
    if (epoch === this.epoch && this.seen.get(seq) === 'running') this.seen.set(seq, 'none');
  }

  running(): number[] {
    return [...this.seen].filter(([, s]) => s === 'running').map(([q]) => q);
  }
}

/** Seqs that hit the interesting places: small ones, both sides of the window and of slot reuse. */
const seqArb = fc.oneof(
  { weight: 18, arbitrary: fc.integer({ min: 1, max: 24 }) },
  { weight: 6, arbitrary: fc.integer({ min: W - 3, max: W + 26 }) },
  { weight: 3, arbitrary: fc.integer({ min: 2 * W - 3, max: 2 * W + 26 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 ** 53 - 1 }) },
);

type ModelOp =
  | { k: 'admit'; epochDelta: number; seq: number; fence: number }
  /** a copy of the pick-th seq sent so far (the importer's resend, a duplicate, a late copy) */
  | { k: 'again'; pick: number; fence: number }
  /** done/forget of the pick-th running request (the export side's only uses) */
  | { k: 'done'; pick: number; kept: boolean }
  | { k: 'forget'; pick: number }
  /** done/forget that must be ignored: another epoch, or a seq never admitted */
  | { k: 'strayDone'; seq: number; epochDelta: number; kept: boolean }
  | { k: 'strayForget'; seq: number; epochDelta: number };

const opArb: fc.Arbitrary<ModelOp> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      k: fc.constant('admit' as const),
      // mostly the current epoch; sometimes an older process, sometimes a newer one
      epochDelta: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, fc.constant(-1), fc.constant(1)),
      seq: seqArb,
      fence: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.integer({ min: 0, max: 30 }), seqArb),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('again' as const),
      pick: fc.nat(),
      fence: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.integer({ min: 0, max: 30 })),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ k: fc.constant('done' as const), pick: fc.nat(), kept: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('forget' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('strayDone' as const),
      seq: seqArb,
      epochDelta: fc.constantFrom(-1, 0, 1),
      kept: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('strayForget' as const),
      seq: seqArb,
      epochDelta: fc.constantFrom(-1, 0, 1),
    }),
  },
);

describe('RequestWindow against a reference model of 13.8', () => {
  it('gives the same verdict as the model for every admit of random admit/done/forget sequences', () => {
    const seen = new Array<number>(7).fill(0);
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 300, size: '+2' }), (ops) => {
        const w = new RequestWindow();
        const m = new WindowModel();
        let epoch = 3;
        const sent: [epoch: number, seq: number][] = [];
        const admit = (e: number, seq: number, fence: number): boolean => {
          const got = w.admit(e, seq, fence);
          const want = m.admit(e, seq, fence);
          seen[got]!++;
          sent.push([e, seq]);
          return got === want;
        };
        for (const op of ops) {
          switch (op.k) {
            case 'admit': {
              const e = Math.max(1, epoch + op.epochDelta);
              if (e > epoch) epoch = e;
              if (!admit(e, op.seq, op.fence)) return false;
              break;
            }
            case 'again': {
              if (sent.length === 0) break;
              const [e, seq] = sent[sent.length - 1 - (op.pick % Math.min(sent.length, 8))]!;
              if (!admit(e, seq, op.fence)) return false;
              break;
            }
            case 'done':
            case 'forget': {
              const r = m.running();
              if (r.length === 0) break;
              const seq = r[op.pick % r.length]!;
              if (op.k === 'done') {
                w.done(m.epoch, seq, op.kept);
                m.done(m.epoch, seq, op.kept);
              } else {
                w.forget(m.epoch, seq);
                m.forget(m.epoch, seq);
              }
              break;
            }
            case 'strayDone':
            case 'strayForget': {
              // Only calls the model calls no-ops: never admitted in this epoch, or another epoch.
              const e = m.epoch + op.epochDelta;
              if (op.epochDelta === 0 && m.seen.has(op.seq)) break;
              if (op.k === 'strayDone') w.done(e, op.seq, op.kept);
              else w.forget(e, op.seq);
              break;
            }
          }
          if (w.epoch !== m.epoch || w.highest !== m.highest || w.fence !== m.fence) return false;
        }
        return true;
      }),
      { numRuns: 400, seed: 0x5eed },
    );
    // The generator reaches every verdict, many times.
    for (const v of Object.values(V)) expect(seen[v], `verdict ${v}`).toBeGreaterThan(100);
  });
});
