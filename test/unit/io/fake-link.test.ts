import { describe, expect, it } from 'vitest';
import { FakeSegment } from '../../../src/io/fake-link.js';
import { sleep } from '../../helpers/wait.js';

function frame(dst: Buffer, src: Buffer, n: number): Buffer {
  const f = Buffer.alloc(60);
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(0x88a2, 12);
  f.writeUInt32BE(n, 14);
  return f;
}

describe('FakeSegment', () => {
  it('delivers unicast to the owner of the MAC, broadcast to all others, never back to the sender', async () => {
    const seg = new FakeSegment();
    const [a, b, c] = [seg.attach(), seg.attach(), seg.attach()];
    const got = new Map<string, number[]>();
    for (const l of [a, b, c]) {
      got.set(l.name, []);
      l.onBatch((frames, _lens, count) => {
        for (let i = 0; i < count; i++) got.get(l.name)!.push(frames[i]!.readUInt32BE(14));
      });
    }
    a.send(frame(b.mac, a.mac, 1));
    a.send(frame(Buffer.alloc(6, 0xff), a.mac, 2));
    await sleep(10);
    expect(got.get(a.name)).toEqual([]);
    expect(got.get(b.name)).toEqual([1, 2]);
    expect(got.get(c.name)).toEqual([2]);
  });

  it('batches: 200 frames committed in one tick arrive in batches of at most `batch`', async () => {
    const seg = new FakeSegment();
    const a = seg.attach({ batch: 64 });
    const b = seg.attach({ batch: 64 });
    const sizes: number[] = [];
    b.onBatch((_f, _l, count) => sizes.push(count));
    for (let i = 0; i < 200; i++) {
      const slot = a.txSlot();
      frame(b.mac, a.mac, i).copy(slot);
      a.txCommit(60);
    }
    await sleep(10);
    expect(sizes.reduce((x, y) => x + y, 0)).toBe(200);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64);
    expect(a.stats().txFrames).toBe(200);
    expect(b.stats().rxFrames).toBe(200);
  });

  it('a throwing handler is counted and reported, and delivery continues', async () => {
    const seg = new FakeSegment();
    const a = seg.attach();
    const b = seg.attach();
    const errors: Error[] = [];
    let calls = 0;
    b.onError((e) => errors.push(e));
    b.onBatch(() => {
      calls++;
      if (calls === 1) throw new Error('boom');
    });
    a.send(frame(b.mac, a.mac, 1));
    await sleep(5);
    a.send(frame(b.mac, a.mac, 2));
    await sleep(5);
    expect(calls).toBe(2);
    expect(errors.map((e) => e.message)).toEqual(['boom']);
    expect(b.stats().handlerErrors).toBe(1);
  });

  it('rejects frames larger than the MTU and drops what the loss filter says', async () => {
    const seg = new FakeSegment();
    const a = seg.attach({ mtu: 1500 });
    const b = seg.attach();
    expect(() => a.txCommit(1515)).toThrow(expect.objectContaining({ code: 'ERR_FRAME_TOO_LARGE' }));
    let n = 0;
    b.onBatch((_f, _l, count) => {
      n += count;
    });
    seg.dropFilter = (f) => f.readUInt32BE(14) % 2 === 0;
    for (let i = 0; i < 10; i++) a.send(frame(b.mac, a.mac, i));
    await sleep(10);
    expect(n).toBe(5);
  });
});
