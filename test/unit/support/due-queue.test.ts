/**
 * DueQueue against a sorted-array model: any mix of pushes, pops and removals yields ids in due
 * order, equal due times first in, first out.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DueQueue } from '../../../support/due-queue.js';

describe('DueQueue', () => {
  it('pops in due order, ties in push order, like a sorted model, through removals', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('push' as const), id: fc.nat(31), due: fc.integer({ min: 0, max: 8 }) }),
      fc.record({ k: fc.constant('pop' as const) }),
      fc.record({ k: fc.constant('remove' as const), id: fc.nat(31) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const q = new DueQueue(32);
        let model: { id: number; due: number; order: number }[] = [];
        let order = 0;
        for (const o of ops) {
          if (o.k === 'push') {
            if (model.some((m) => m.id === o.id)) {
              expect(() => q.push(o.id, o.due)).toThrow(/already queued/);
              continue;
            }
            q.push(o.id, o.due);
            model.push({ id: o.id, due: o.due, order: order++ });
            model.sort((a, b) => a.due - b.due || a.order - b.order);
          } else if (o.k === 'pop') {
            expect(q.peekDueMs()).toBe(model[0]?.due ?? Number.POSITIVE_INFINITY);
            expect(q.pop()).toBe(model.shift()?.id ?? -1);
          } else {
            const had = model.some((m) => m.id === o.id);
            expect(q.remove(o.id)).toBe(had);
            model = model.filter((m) => m.id !== o.id);
          }
          expect(q.size).toBe(model.length);
          for (const m of model) expect(q.has(m.id)).toBe(true);
        }
      }),
    );
  });

  it('refuses ids outside its range', () => {
    const q = new DueQueue(4);
    expect(() => q.push(4, 0)).toThrow(/id 4 is not in 0..3/);
    expect(() => q.push(-1, 0)).toThrow(/not in/);
    expect(() => new DueQueue(0)).toThrow(/capacity/);
    expect(q.pop()).toBe(-1);
    expect(q.remove(3)).toBe(false);
  });
});
