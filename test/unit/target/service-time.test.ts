/**
 * The service-time histogram (src/target/service-time.ts): bucket edges against a brute-force
 * definition, percentile math, windows between snapshots, no allocation when recording; and the
 * engine's timing with a fake clock: inline requests take their batch's time, a request waiting
 * for a slow store its completion batch's, per export and per principal.
 */
import { describe, expect, it } from 'vitest';
import type { AtaMessage } from '../../../src/aoe/index.js';
import { InitiatorTable } from '../../../src/target/counters.js';
import {
  SERVICE_TIME_BUCKETS,
  SERVICE_TIME_LIMIT_US,
  ServiceTimeHistogram,
  serviceTimeBucket,
  serviceTimeLowerUs,
  serviceTimeQuantile,
  serviceTimeUpperUs,
  serviceTimeWindow,
} from '../../../src/target/service-time.js';
import { sampleUntilUnder } from '../../helpers/heap-sampling.js';
import { INI2_MAC, read, setup, tagOf, write } from './helpers.js';

describe('service-time buckets', () => {
  it('edges are contiguous, 4 per octave from 4 µs, up to 2^26 µs', () => {
    expect(serviceTimeLowerUs(0)).toBe(0);
    for (let i = 0; i < SERVICE_TIME_BUCKETS - 1; i++)
      expect(serviceTimeUpperUs(i), `bucket ${i}`).toBe(serviceTimeLowerUs(i + 1));
    expect(serviceTimeUpperUs(SERVICE_TIME_BUCKETS - 1)).toBe(SERVICE_TIME_LIMIT_US);
    // Octave edges are bucket edges (Prometheus buckets sum them exactly).
    for (let k = 2; k <= 26; k++) expect(serviceTimeUpperUs(4 * (k - 1) - 1)).toBe(2 ** k);
    // A bucket is at most a quarter of its lower edge wide (above 4 µs).
    for (let i = 4; i < SERVICE_TIME_BUCKETS; i++)
      expect(serviceTimeUpperUs(i) / serviceTimeLowerUs(i)).toBeLessThanOrEqual(1.25);
  });

  it('every value lands in the bucket whose edges hold it', () => {
    const values = [
      0, 0.4, 1, 1.99, 3, 3.99, 4, 4.5, 5, 7.99, 8, 9.99, 10, 100, 999.5, 1000, 1024, 1279, 1280,
    ];
    for (let k = 3; k < 26; k++) values.push(2 ** k - 1, 2 ** k, 2 ** k + 1, 1.3 * 2 ** k);
    for (const v of values) {
      const i = serviceTimeBucket(v);
      expect(serviceTimeLowerUs(i), `${v}`).toBeLessThanOrEqual(v);
      expect(serviceTimeUpperUs(i), `${v}`).toBeGreaterThan(v);
    }
  });

  it('out-of-range values: negatives and NaN in the first bucket, beyond 67 s in the last', () => {
    expect(serviceTimeBucket(-5)).toBe(0);
    expect(serviceTimeBucket(Number.NaN)).toBe(0);
    expect(serviceTimeBucket(SERVICE_TIME_LIMIT_US)).toBe(SERVICE_TIME_BUCKETS - 1);
    expect(serviceTimeBucket(1e12)).toBe(SERVICE_TIME_BUCKETS - 1);
    expect(serviceTimeBucket(Number.POSITIVE_INFINITY)).toBe(SERVICE_TIME_BUCKETS - 1);
  });
});

describe('service-time percentiles', () => {
  it('p50/p90/p99/max are the upper edges of the buckets holding them', () => {
    const h = new ServiceTimeHistogram();
    for (let i = 0; i < 900; i++) h.record(100); // [96, 112)
    for (let i = 0; i < 90; i++) h.record(1000); // [896, 1024)
    for (let i = 0; i < 10; i++) h.record(50_000); // [49152, 57344)
    const s = h.snapshot();
    expect(s.count).toBe(1000);
    expect(s.sumUs).toBe(900 * 100 + 90 * 1000 + 10 * 50_000);
    expect(s.buckets).toEqual([
      [112, 900],
      [1024, 90],
      [57344, 10],
    ]);
    expect(serviceTimeQuantile(s.buckets, 0.5)).toBe(112);
    expect(serviceTimeQuantile(s.buckets, 0.9)).toBe(112);
    expect(serviceTimeQuantile(s.buckets, 0.91)).toBe(1024);
    expect(serviceTimeQuantile(s.buckets, 0.99)).toBe(1024);
    expect(serviceTimeQuantile(s.buckets, 0.991)).toBe(57344);
    expect(serviceTimeQuantile(s.buckets, 1)).toBe(57344);
    expect(serviceTimeQuantile(s.buckets, 0)).toBe(112);
    expect(serviceTimeQuantile([], 0.5)).toBeNaN();
  });

  it('a window between two snapshots holds only the samples between them', () => {
    const h = new ServiceTimeHistogram();
    for (let i = 0; i < 1000; i++) h.record(10);
    const a = h.snapshot();
    for (let i = 0; i < 5; i++) h.record(10);
    for (let i = 0; i < 5; i++) h.record(20_000);
    const b = h.snapshot();
    const w = serviceTimeWindow(b.buckets, a.buckets)!;
    expect(w).toEqual([
      [12, 5],
      [20480, 5],
    ]);
    expect(serviceTimeQuantile(w, 0.99)).toBe(20480);
    // Cumulative since start, the slow tail is under 1 % (5 of 1010): p99 stays small.
    expect(serviceTimeQuantile(b.buckets, 0.99)).toBe(12);
    // Counts that went back (a re-created export): no window.
    expect(serviceTimeWindow(a.buckets, b.buckets)).toBeNull();
    expect(serviceTimeWindow([], a.buckets)).toBeNull();
  });

  it('an initiator aged out into "other" takes its histogram with it', () => {
    const t = new InitiatorTable(1, 10);
    t.get(0, 1, 0).service.record(300);
    const next = t.get(0, 2, 100);
    expect(next.hi).toBe(0);
    expect(next.lo).toBe(2);
    expect(next.service.count).toBe(0);
    expect(t.other.service.snapshot().buckets).toEqual([[320, 1]]);
  });

  it('recording allocates nothing', async () => {
    const h = new ServiceTimeHistogram();
    const many = (n: number) => {
      for (let i = 0; i < n; i++) h.record((i * 7919) % 3_000_000);
    };
    many(100_000);
    const r = await sampleUntilUnder(() => many(2_000_000), 64 * 1024);
    // 2 M samples a pass: one heap number each would be ≥ 32 MB (a few KB are the tier-up).
    expect(r.best, r.report).toBeLessThan(64 * 1024);
    expect(h.count).toBe(100_000 + 2_000_000 * r.passes.length);
  });
});

describe('engine service time', () => {
  it('inline requests take their batch: receive timestamp to the completions clock read', () => {
    let clock = 0;
    const s = setup({ engine: { clock: () => clock } });
    clock = 10.25; // the batch took 250 µs to serve
    s.run([read(0, 1), write(1, Buffer.alloc(512, 1), { src: INI2_MAC })], { now: 10 });
    const e = s.engine.stats().exports['e1.0']!;
    expect(e.serviceTime.count).toBe(2);
    expect(e.serviceTime.sumUs).toBeCloseTo(500, 6);
    expect(e.serviceTime.buckets).toEqual([[256, 2]]);
    const inis = Object.values(e.initiators);
    expect(inis.map((i) => i.serviceTime.count)).toEqual([1, 1]);
    // IDENTIFY, errors and control commands are answered inline and not timed.
    s.run([read(1 << 20, 1)], { now: 11 });
    expect(s.engine.stats().exports['e1.0']!.serviceTime.count).toBe(2);
  });

  it('a request waiting for a slow store is timed to the completion batch that answers it', () => {
    let clock = 0;
    const s = setup({ storeOpts: { deferred: true }, engine: { clock: () => clock } });
    const w = write(0, Buffer.alloc(512, 1));
    clock = 100.01;
    expect(s.run([w], { now: 100 })).toHaveLength(0);
    clock = 150.02; // a 50 ms sync later
    s.store.completeDeferred();
    s.engine.settle();
    const [r] = s.sink.take() as AtaMessage[];
    expect(r!.tag).toBe(tagOf(w));
    const st = s.engine.stats().exports['e1.0']!.serviceTime;
    expect(st.count).toBe(1);
    expect(st.sumUs).toBeCloseTo(50_020, 3);
    expect(serviceTimeQuantile(st.buckets, 0.99)).toBe(57344);
  });
});
