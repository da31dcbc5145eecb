/**
 * DatagramPool: copies land intact in the smallest free slot that fits, spill to larger classes,
 * and the pool says so (-1) when nothing fits, instead of growing.
 */
import { describe, expect, it } from 'vitest';
import { copyPrefix, DatagramPool } from '../../../support/datagram-pool.js';

describe('DatagramPool', () => {
  const classes = [
    { slotBytes: 1024, slots: 2 },
    { slotBytes: 64, slots: 3 },
  ];

  it('keeps an exact copy, independent of the source buffer', () => {
    const pool = new DatagramPool(classes);
    const src = Buffer.from('hello relay');
    const t = pool.store(src, 5);
    src.fill(0);
    expect(pool.length(t)).toBe(5);
    expect(pool.view(t).subarray(0, 5).toString()).toBe('hello');
    expect(pool.inUse).toBe(1);
  });

  it('takes the smallest fitting class first, spills upwards, and returns -1 when full', () => {
    const pool = new DatagramPool(classes);
    expect(pool.capacity).toBe(5);
    const small = [0, 1, 2].map(() => pool.store(Buffer.alloc(64), 64));
    expect(small.map((t) => pool.view(t).length)).toEqual([64, 64, 64]);
    const spilled = pool.store(Buffer.alloc(10), 10);
    expect(pool.view(spilled).length).toBe(1024);
    expect(pool.store(Buffer.alloc(65), 65)).toBeGreaterThanOrEqual(0);
    expect(pool.store(Buffer.alloc(1), 1)).toBe(-1);
    pool.release(small[1]!);
    expect(pool.store(Buffer.alloc(1025), 1025)).toBe(-1);
    expect(pool.store(Buffer.alloc(3), 3)).toBe(small[1]);
    expect(pool.inUse).toBe(5);
  });

  it('refuses to release a ticket twice', () => {
    const pool = new DatagramPool(classes);
    const t = pool.store(Buffer.alloc(8), 8);
    pool.release(t);
    expect(() => pool.release(t)).toThrow(/not in use/);
    expect(pool.inUse).toBe(0);
  });

  it('copyPrefix copies exactly the first bytes of a longer source and nothing past them', () => {
    const src = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
    const dst = Buffer.alloc(300, 0xee);
    copyPrefix(dst, src, 257);
    expect(dst.subarray(0, 257).equals(src.subarray(0, 257))).toBe(true);
    expect(dst.subarray(257).every((b) => b === 0xee)).toBe(true);
  });
});
