/**
 * FaultPlan over many datagrams, driven by a simulated clock and a simulated ticket store: the
 * shares of drops, duplicates and held datagrams match the settings within binomial bounds, the
 * copies really come out twice, held ones really come out behind later ones, delays stay in their
 * window, blackouts drop exactly their window, and the same seed makes the same decisions.
 */
import { describe, expect, it } from 'vitest';
import { checkFaults, FaultPlan, type FaultSettings, Verdict } from '../../../support/fault-plan.js';

/** Drives a plan like the relay does, with a clock that jumps to each due time. */
class Sim {
  /** Sequence numbers in the order they went out, and when. */
  readonly out: number[] = [];
  readonly outMs: number[] = [];
  readonly inMs: number[] = [];
  private readonly free: number[];
  private readonly seqOf: Int32Array;
  private nowMs = 0;
  private nextSeq = 0;

  constructor(
    readonly plan: FaultPlan,
    tickets = plan.capacity,
  ) {
    this.free = Array.from({ length: tickets }, (_, i) => tickets - 1 - i);
    this.seqOf = new Int32Array(plan.capacity);
  }

  get now(): number {
    return this.nowMs;
  }

  /** One datagram arrives at `atMs` (after everything due before then went out). */
  arrive(atMs: number, sizeBytes = 100): number {
    this.advance(atMs);
    const seq = this.nextSeq++;
    this.inMs.push(atMs);
    const v = this.plan.admit(sizeBytes, atMs);
    if (v === Verdict.send || v === Verdict.sendTwice) {
      this.emit(seq);
      if (v === Verdict.sendTwice) this.emit(seq);
    } else if (v === Verdict.queue) {
      const t = this.free.pop();
      if (t === undefined) this.plan.refuse();
      else {
        this.seqOf[t] = seq;
        this.plan.queue(t);
      }
    }
    this.drain();
    return v;
  }

  /** Lets the clock run to `toMs`, sending each copy exactly when it is due. */
  advance(toMs: number): void {
    for (let due = this.plan.nextDueMs(); due <= toMs && due < Infinity; due = this.plan.nextDueMs()) {
      this.nowMs = Math.max(this.nowMs, due);
      this.drain();
    }
    this.nowMs = Math.max(this.nowMs, toMs);
  }

  private drain(): void {
    for (let t = this.plan.nextDue(this.nowMs); t >= 0; t = this.plan.nextDue(this.nowMs)) {
      if (!this.plan.discard) this.emit(this.seqOf[t]!);
      if (this.plan.lastCopy) this.free.push(t);
    }
  }

  private emit(seq: number): void {
    this.out.push(seq);
    this.outMs.push(this.nowMs);
  }
}

const plan = (faults: Partial<FaultSettings>, seed = 1, capacity = 4096) =>
  new FaultPlan({ seed, capacity, faults });

/** Bounds of a binomial count: n*p within `sds` standard deviations. */
function binomial(n: number, percent: number, sds = 5): [number, number] {
  const p = percent / 100;
  const sd = Math.sqrt(n * p * (1 - p));
  return [n * p - sds * sd, n * p + sds * sd];
}

function invariant(p: FaultPlan): void {
  const c = p.counters;
  expect(c.in + c.duplicated).toBe(
    c.out + c.dropped + c.blackholed + c.oversize + c.overflow + c.unforwardable + c.pending,
  );
}

const N = 100_000;

describe('FaultPlan', () => {
  it('with no faults sends every datagram at once, in order, without a copy', () => {
    const p = plan({});
    for (let i = 0; i < 1000; i++) expect(p.admit(1400, i)).toBe(Verdict.send);
    expect(p.stats()).toMatchObject({ in: 1000, out: 1000, pending: 0, dropped: 0 });
    expect(p.nextDueMs()).toBe(Number.POSITIVE_INFINITY);
  });

  for (const seed of [1, 2, 3]) {
    it(`drops 5 % of ${N} datagrams within 5 standard deviations (seed ${seed})`, () => {
      const p = plan({ dropPercent: 5 }, seed);
      let dropped = 0;
      for (let i = 0; i < N; i++) if (p.admit(100, i) === Verdict.drop) dropped++;
      const [lo, hi] = binomial(N, 5);
      expect(dropped).toBeGreaterThan(lo);
      expect(dropped).toBeLessThan(hi);
      expect(p.counters.dropped).toBe(dropped);
      expect(p.counters.out).toBe(N - dropped);
      invariant(p);
    });
  }

  it('drops nothing at 0 % and everything at 100 %', () => {
    const none = plan({ dropPercent: 0 });
    const all = plan({ dropPercent: 100 });
    for (let i = 0; i < 10_000; i++) {
      expect(none.admit(100, i)).toBe(Verdict.send);
      expect(all.admit(100, i)).toBe(Verdict.drop);
    }
  });

  it('duplicates 5 %: those come out exactly twice, the others once, on the direct and the queued path', () => {
    for (const delayMs of [0, 2]) {
      const sim = new Sim(plan({ duplicatePercent: 5, delayMs }));
      for (let i = 0; i < N; i++) sim.arrive(i * 0.01);
      sim.advance(Number.POSITIVE_INFINITY);
      const times = new Map<number, number>();
      for (const s of sim.out) times.set(s, (times.get(s) ?? 0) + 1);
      const twice = [...times.values()].filter((n) => n === 2).length;
      expect(times.size).toBe(N);
      expect([...times.values()].every((n) => n === 1 || n === 2)).toBe(true);
      const [lo, hi] = binomial(N, 5);
      expect(twice).toBeGreaterThan(lo);
      expect(twice).toBeLessThan(hi);
      expect(sim.plan.counters.duplicated).toBe(twice);
      expect(sim.out.length).toBe(N + twice);
      invariant(sim.plan);
    }
  });

  it('gives each copy of a duplicate its own jitter', () => {
    const sim = new Sim(plan({ duplicatePercent: 100, delayMs: 1, jitterMs: 10 }));
    for (let i = 0; i < 1000; i++) sim.arrive(i * 20);
    sim.advance(Number.POSITIVE_INFINITY);
    expect(sim.out.length).toBe(2000);
    const apart = Array.from({ length: 1000 }, (_, i) => i).filter((i) => {
      const [t0, t1] = sim.outMs.filter((_, k) => sim.out[k] === i);
      return Math.abs(t0! - t1!) > 0.5;
    });
    // Two independent uniform draws on [0, 10) are more than 0.5 apart 90 % of the time.
    expect(apart.length).toBeGreaterThan(850);
  });

  it('holds 10 % back: each comes out right behind the datagram 3 after it, the rest in order', () => {
    const sim = new Sim(plan({ reorderPercent: 10, reorderAfter: 3, reorderDelayMs: 1000 }));
    const verdicts: number[] = [];
    for (let i = 0; i < N; i++) verdicts.push(sim.arrive(i));
    sim.advance(Number.POSITIVE_INFINITY);
    const held = new Set(verdicts.flatMap((v, i) => (v === Verdict.queue ? [i] : [])));
    const [lo, hi] = binomial(N, 10);
    expect(held.size).toBeGreaterThan(lo);
    expect(held.size).toBeLessThan(hi);
    expect(sim.plan.counters.reordered).toBe(held.size);
    expect(sim.out.length).toBe(N);
    expect(new Set(sim.out).size).toBe(N);
    // Unheld datagrams keep their order.
    const direct = sim.out.filter((s) => !held.has(s));
    expect(direct).toEqual([...direct].sort((a, b) => a - b));
    const pos = new Map(sim.out.map((s, i) => [s, i]));
    // Highest unheld sequence number that went out before each position.
    const directBefore: number[] = [];
    let high = -1;
    for (const s of sim.out) {
      directBefore.push(high);
      if (!held.has(s)) high = Math.max(high, s);
    }
    for (const s of held) {
      if (s + 3 >= N) continue;
      // Never early: a datagram at least 3 after it went out first (it was overtaken)...
      expect(directBefore[pos.get(s)!]).toBeGreaterThanOrEqual(s + 3);
      // ...and never late: when s + 3 went out directly, only other held ones lie between them.
      if (held.has(s + 3)) continue;
      for (let i = pos.get(s + 3)! + 1; i < pos.get(s)!; i++) expect(held.has(sim.out[i]!)).toBe(true);
    }
    invariant(sim.plan);
  });

  it('releases a held datagram after reorderDelayMs when nothing overtakes it', () => {
    const sim = new Sim(plan({ reorderPercent: 100, reorderAfter: 3, reorderDelayMs: 20, delayMs: 5 }));
    sim.arrive(100);
    sim.advance(124.999);
    expect(sim.out).toEqual([]);
    sim.advance(125);
    expect(sim.out).toEqual([0]);
    expect(sim.outMs).toEqual([125]);
    invariant(sim.plan);
  });

  it('delays every datagram by delayMs plus a uniform jitter in [0, jitterMs)', () => {
    const sim = new Sim(plan({ delayMs: 20, jitterMs: 10 }));
    for (let i = 0; i < 20_000; i++) sim.arrive(i * 0.05);
    sim.advance(Number.POSITIVE_INFINITY);
    expect(sim.out.length).toBe(20_000);
    const quarters = [0, 0, 0, 0];
    let sum = 0;
    for (let k = 0; k < sim.out.length; k++) {
      const d = sim.outMs[k]! - sim.inMs[sim.out[k]!]!;
      // (1e-9: the subtraction of two float times)
      expect(d).toBeGreaterThanOrEqual(20 - 1e-9);
      expect(d).toBeLessThan(30);
      sum += d;
      quarters[Math.min(3, Math.max(0, Math.floor((d - 20) / 2.5)))]!++;
    }
    expect(sum / sim.out.length).toBeCloseTo(25, 0);
    // Uniform: each quarter of the window holds a quarter of the datagrams.
    for (const q of quarters) {
      const [lo, hi] = binomial(20_000, 25);
      expect(q).toBeGreaterThan(lo);
      expect(q).toBeLessThan(hi);
    }
    // Jitter larger than the spacing reorders.
    expect(sim.out).not.toEqual([...sim.out].sort((a, b) => a - b));
    expect(sim.plan.counters.delayed).toBe(20_000);
  });

  it('keeps arrival order under a fixed delay without jitter', () => {
    const sim = new Sim(plan({ delayMs: 7 }));
    for (let i = 0; i < 5000; i++) sim.arrive(Math.floor(i / 10));
    sim.advance(Number.POSITIVE_INFINITY);
    expect(sim.out).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    expect(sim.outMs.every((t, k) => t === Math.floor(sim.out[k]! / 10) + 7)).toBe(true);
  });

  it('blackout drops everything arriving or due in its window and nothing after it', () => {
    const sim = new Sim(plan({ delayMs: 5 }));
    for (let t = 0; t < 100; t++) sim.arrive(t);
    sim.plan.blackout(150); // from t = 99: copies due 100..104 are lost too
    for (let t = 100; t < 300; t++) sim.arrive(t);
    sim.advance(Number.POSITIVE_INFINITY);
    const lost = Array.from({ length: 300 }, (_, i) => i).filter((s) => !sim.out.includes(s));
    expect(lost).toEqual(Array.from({ length: 55 }, (_, i) => 95 + i));
    expect(sim.outMs.every((t) => t <= 99 || t >= 150)).toBe(true);
    expect(sim.plan.counters.blackholed).toBe(55);
    invariant(sim.plan);
  });

  it('a blackout in the past, or one ended early, drops nothing', () => {
    const p = plan({});
    p.blackout(50);
    expect(p.admit(100, 60)).toBe(Verdict.send);
    p.blackout(1000);
    expect(p.admit(100, 70)).toBe(Verdict.drop);
    p.blackout(0);
    expect(p.admit(100, 80)).toBe(Verdict.send);
    expect(p.counters.blackholed).toBe(1);
  });

  it('drops datagrams larger than maxSizeBytes, keeps those at the limit; 0 is no limit', () => {
    const p = plan({ maxSizeBytes: 1400 });
    expect(p.admit(1400, 0)).toBe(Verdict.send);
    expect(p.admit(1401, 0)).toBe(Verdict.drop);
    expect(p.admit(65507, 0)).toBe(Verdict.drop);
    expect(p.counters.oversize).toBe(2);
    p.set({ maxSizeBytes: 0 });
    expect(p.admit(65507, 0)).toBe(Verdict.send);
  });

  it('counts empty and truncated datagrams as unforwardable', () => {
    const p = plan({});
    expect(p.admit(0, 0)).toBe(Verdict.drop);
    expect(p.admit(-70000, 0)).toBe(Verdict.drop);
    expect(p.counters.unforwardable).toBe(2);
    invariant(p);
  });

  it('makes the same decisions from the same seed, other ones from another', () => {
    const faults = { dropPercent: 10, duplicatePercent: 10, reorderPercent: 10 };
    const run = (seed: number) => {
      const p = plan(faults, seed);
      const out: number[] = [];
      for (let i = 0; i < 10_000; i++) {
        const v = p.admit(100, i);
        out.push(v);
        if (v === Verdict.queue) p.refuse();
      }
      return out;
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it('gives the n-th datagram the same fate whatever the other settings (five draws each)', () => {
    const drops = (faults: Partial<FaultSettings>) => {
      const sim = new Sim(plan(faults, 42));
      const lost: number[] = [];
      for (let i = 0; i < 20_000; i++) if (sim.arrive(i) === Verdict.drop) lost.push(i);
      return lost;
    };
    const base = drops({ dropPercent: 5 });
    expect(drops({ dropPercent: 5, duplicatePercent: 50, reorderPercent: 30, jitterMs: 3 })).toEqual(base);
  });

  it('counts what does not fit in the store as overflow and keeps the invariant', () => {
    const sim = new Sim(plan({ delayMs: 10 }, 1, 64), 16);
    for (let i = 0; i < 100; i++) sim.arrive(i * 0.1);
    sim.advance(Number.POSITIVE_INFINITY);
    expect(sim.plan.counters.overflow).toBe(84);
    expect(sim.out).toEqual(Array.from({ length: 16 }, (_, i) => i));
    invariant(sim.plan);
  });

  it('keeps the counter invariant at every step of a mixed run with settings changed on the way', () => {
    const sim = new Sim(plan({}, 9, 512), 300);
    const settings: Partial<FaultSettings>[] = [
      { dropPercent: 3, duplicatePercent: 4, reorderPercent: 8, delayMs: 2, jitterMs: 3 },
      { delayMs: 0, jitterMs: 0, reorderAfter: 1 },
      { maxSizeBytes: 500, reorderAfter: 5, reorderDelayMs: 1 },
    ];
    for (let i = 0; i < 30_000; i++) {
      if (i % 5000 === 0) sim.plan.set(settings[(i / 5000) % settings.length]!);
      if (i === 12_345) sim.plan.blackout(sim.now + 30);
      sim.arrive(i * 0.02, 1 + ((i * 37) % 1000));
      invariant(sim.plan);
    }
    sim.advance(Number.POSITIVE_INFINITY);
    invariant(sim.plan);
    expect(sim.plan.counters.pending).toBe(0);
  });

  it('takes settings at run time', () => {
    const p = plan({});
    expect(p.admit(100, 0)).toBe(Verdict.send);
    p.set({ dropPercent: 100 });
    expect(p.admit(100, 1)).toBe(Verdict.drop);
    expect(p.settings.dropPercent).toBe(100);
    expect(p.settings.duplicatePercent).toBe(0);
  });

  it('refuses bad settings and misuse, naming what is wrong', () => {
    expect(() => checkFaults({ dropPercent: 101 })).toThrow(/dropPercent = 101: expected a number in 0..100/);
    expect(() => checkFaults({ drop: 5 })).toThrow(/unknown fault setting 'drop'/);
    expect(() => checkFaults({ reorderAfter: 1.5 })).toThrow(/reorderAfter .* an integer/);
    expect(() => checkFaults({ delayMs: Number.NaN })).toThrow(/delayMs/);
    expect(() => checkFaults([])).toThrow(/must be an object/);
    const p = plan({ delayMs: 1 }, 1, 4);
    expect(() => p.queue(0)).toThrow(/without a Verdict.queue/);
    expect(p.admit(100, 0)).toBe(Verdict.queue);
    expect(() => p.admit(100, 0)).toThrow(/before queue\(\) or refuse\(\)/);
    expect(() => p.queue(4)).toThrow(/ticket 4 is not in 0..3/);
    p.queue(0);
    p.admit(100, 0);
    expect(() => p.queue(0)).toThrow(/ticket 0 is still in use/);
  });
});
