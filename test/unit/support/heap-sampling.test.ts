/**
 * The allocation tests' own measure, checked both ways (a standing positive control): a pass whose
 * hot loop allocates through a tiny function the optimizing compiler inlines into the loop is
 * caught in every pass (counting below the function under test missed exactly this: V8 charges an
 * inlined callee's allocation to its caller); a pass that allocates nothing stays under the bound.
 */
import { describe, expect, it } from 'vitest';
import { sampleUntilUnder } from '../../helpers/heap-sampling.js';

class Sink {
  last: { n: number } | null = null;
  total = 0;
  /** Small enough to be inlined wherever it is hot; keeps its object, so it cannot be optimized away. */
  keep(n: number): void {
    this.last = { n };
  }
  add(n: number): void {
    this.total = (this.total + n) & 0xffff;
  }
}

describe('sampleUntilUnder', () => {
  it('catches an allocation per iteration inlined into the test’s own loop, in every pass', async () => {
    const s = new Sink();
    const loop = () => {
      for (let i = 0; i < 100_000; i++) s.keep(i);
    };
    for (let i = 0; i < 20; i++) loop(); // optimized, keep() inlined
    const r = await sampleUntilUnder(loop, 64 * 1024, { maxPasses: 3 });
    expect(r.passes, r.report).toHaveLength(3);
    // 100k objects of ≥ 16 bytes a pass.
    expect(Math.min(...r.passes), r.report).toBeGreaterThan(1 << 20);
  });

  it('a loop that allocates nothing passes', async () => {
    const s = new Sink();
    const loop = () => {
      for (let i = 0; i < 100_000; i++) s.add(i);
    };
    for (let i = 0; i < 20; i++) loop();
    const r = await sampleUntilUnder(loop, 64 * 1024);
    expect(r.best, r.report).toBeLessThan(64 * 1024);
  });
});
