/**
 * RttEstimator: the importer's resend timeout (docs/protocol.md 13.8: RFC 6298 from the measured
 * round trip, 200 ms before the first sample, at least 10 ms, doubled per resend, at most 1 s).
 */
import { describe, expect, it } from 'vitest';
import { RttEstimator } from '../../../src/initiator/rtt-estimator.js';

describe('RttEstimator', () => {
  it('before any sample: the initial timeout, doubled per resend up to the ceiling', () => {
    const r = new RttEstimator();
    expect(r.samples).toBe(0);
    expect(r.rtoMs()).toBe(200);
    expect(r.rtoMs(1)).toBe(200);
    expect(r.rtoMs(2)).toBe(400);
    expect(r.rtoMs(3)).toBe(800);
    expect(r.rtoMs(4)).toBe(1000);
    expect(new RttEstimator({ initialRtoMs: 50 }).rtoMs()).toBe(50);
    // The ceiling bounds even a configured initial timeout above it.
    expect(new RttEstimator({ initialRtoMs: 3000 }).rtoMs()).toBe(1000);
  });

  it('follows RFC 6298: SRTT = R, RTTVAR = R/2 on the first sample, then the 1/8 and 1/4 gains', () => {
    const r = new RttEstimator({ maxRtoMs: 10_000 });
    r.sample(100);
    expect([r.srttMs, r.rttvarMs]).toEqual([100, 50]);
    expect(r.rtoMs()).toBe(100 + 4 * 50);
    r.sample(200);
    // RTTVAR uses the SRTT before this sample: 3/4·50 + 1/4·|100 − 200|.
    expect(r.rttvarMs).toBe(62.5);
    expect(r.srttMs).toBe(112.5);
    expect(r.rtoMs()).toBe(112.5 + 4 * 62.5);
    r.sample(50);
    expect(r.rttvarMs).toBe(0.75 * 62.5 + 0.25 * 62.5);
    expect(r.srttMs).toBe(0.875 * 112.5 + 0.125 * 50);
    expect(r.rtoMs()).toBeCloseTo(104.6875 + 250, 10);
    expect(r.samples).toBe(3);
  });

  it('the variation term is at least the clock granularity (1 ms), and the timeout at least the floor', () => {
    const fine = new RttEstimator({ minRtoMs: 0 });
    fine.sample(0);
    expect(fine.rtoMs()).toBe(1);
    for (let i = 0; i < 50; i++) fine.sample(4);
    expect(fine.rttvarMs).toBeLessThan(0.25);
    expect(fine.rtoMs()).toBeCloseTo(fine.srttMs + 1, 10);
    const r = new RttEstimator();
    r.sample(0);
    expect(r.rtoMs()).toBe(10);
    r.sample(1);
    expect(r.rtoMs()).toBe(10);
    expect(new RttEstimator({ minRtoMs: 25 }).rtoMs()).toBe(200); // the floor is for measured timeouts
  });

  it('a slow round trip is capped at the ceiling', () => {
    const r = new RttEstimator();
    r.sample(5000);
    expect(r.rtoMs()).toBe(1000);
    const wide = new RttEstimator({ maxRtoMs: 60_000 });
    wide.sample(5000);
    expect(wide.rtoMs()).toBe(5000 + 4 * 2500);
  });

  it('backoff doubles per resend from the measured timeout, capped at the ceiling; tries ≤ 1 is the base', () => {
    const r = new RttEstimator();
    r.sample(100); // base 300
    expect([0, 1, 2, 3, 4].map((t) => r.rtoMs(t))).toEqual([300, 300, 600, 1000, 1000]);
    expect(r.rtoMs(255)).toBe(1000);
    // The doubling itself stops at 2^16 (no overflow to Infinity for a huge ceiling).
    const big = new RttEstimator({ maxRtoMs: Number.MAX_VALUE });
    big.sample(100);
    expect(big.rtoMs(17)).toBe(300 * 2 ** 16);
    expect(big.rtoMs(255)).toBe(300 * 2 ** 16);
  });

  it('ignores NaN, negative and infinite samples', () => {
    const r = new RttEstimator();
    for (const bad of [Number.NaN, -1, -0.001, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      r.sample(bad);
    }
    expect(r.samples).toBe(0);
    expect(r.rtoMs()).toBe(200);
    r.sample(40);
    r.sample(Number.NaN);
    r.sample(-5);
    expect(r.samples).toBe(1);
    expect([r.srttMs, r.rttvarMs]).toEqual([40, 20]);
  });
});
