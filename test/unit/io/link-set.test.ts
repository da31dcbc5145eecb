/**
 * LinkSet: one link, several consumers (target, import side, forward side) through views.
 */
import { describe, expect, it } from 'vitest';
import { FakeSegment } from '../../../src/io/fake-link.js';
import { LinkSet } from '../../../src/io/link-set.js';
import { sleep } from '../../helpers/wait.js';

function frame(dst: Buffer, src: Buffer, n: number): Buffer {
  const f = Buffer.alloc(60);
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(0x88a2, 12);
  f.writeUInt32BE(n, 14);
  return f;
}

function setup() {
  const seg = new FakeSegment();
  const peer = seg.attach({ name: 'peer' });
  const shared = seg.attach({ name: 'eth0', batch: 16 });
  const set = new LinkSet();
  set.add('lan', shared);
  const sendN = (n: number, from = 0) => {
    for (let i = 0; i < n; i++) peer.send(frame(shared.mac, peer.mac, from + i));
  };
  return { seg, peer, shared, set, sendN };
}

/** A consumer that records the numbers it saw, and the batch boundaries. */
function recorder(log?: string[], name = '') {
  const seen: number[] = [];
  const batches: number[] = [];
  const h = (frames: readonly Buffer[], _lens: Int32Array | readonly number[], n: number) => {
    for (let i = 0; i < n; i++) seen.push(frames[i]!.readUInt32BE(14));
    batches.push(n);
    log?.push(name);
  };
  return { seen, batches, h };
}

describe('LinkSet', () => {
  it('hands every batch to every consumer, in order, then the after-batch hooks', async () => {
    const s = setup();
    const log: string[] = [];
    const a = recorder(log, 'a');
    const b = recorder(log, 'b');
    const c = recorder(log, 'c');
    s.set.view('lan').onBatch(a.h);
    s.set.view('lan').onBatch(b.h);
    s.set.view('lan').onBatch(c.h);
    s.set.afterBatch(() => log.push('hook1'));
    s.set.afterBatch(() => log.push('hook2'));
    s.sendN(40);
    await sleep(20);
    const all = Array.from({ length: 40 }, (_, i) => i);
    expect(a.seen).toEqual(all);
    expect(b.seen).toEqual(all);
    expect(c.seen).toEqual(all);
    expect(a.batches.length).toBeGreaterThan(1); // batch of 16: several batches
    expect(b.batches).toEqual(a.batches);
    // Per batch: a, b, c, then the hooks.
    const perBatch = ['a', 'b', 'c', 'hook1', 'hook2'];
    expect(log).toEqual(a.batches.flatMap(() => perBatch));
  });

  it('a throwing consumer does not starve the others and is counted and reported', async () => {
    const s = setup();
    const errors: string[] = [];
    const a = recorder();
    const c = recorder();
    const va = s.set.view('lan');
    va.onBatch(a.h);
    va.onError((e) => errors.push(e.message));
    s.set.view('lan').onBatch(() => {
      throw new Error('boom');
    });
    s.set.view('lan').onBatch(c.h);
    let hooks = 0;
    s.set.afterBatch(() => {
      hooks++;
      throw new Error('hook failure'); // a failing hook must not stop anything either
    });
    s.set.afterBatch(() => hooks++);
    s.sendN(20);
    await sleep(20);
    expect(a.seen).toHaveLength(20);
    expect(c.seen).toHaveLength(20);
    const batches = c.batches.length;
    expect(s.set.stats().lan!.consumerErrors).toBe(batches);
    expect(errors).toEqual(Array(batches).fill('boom'));
    expect(hooks).toBe(2 * batches);
    // The link's own receive loop never saw a throw.
    expect(s.shared.stats().handlerErrors).toBe(0);
  });

  it('a view’s close() unsubscribes it; pause/resume stop and restart only that consumer', async () => {
    const s = setup();
    const a = recorder();
    const b = recorder();
    const va = s.set.view('lan');
    const vb = s.set.view('lan');
    va.onBatch(a.h);
    vb.onBatch(b.h);
    s.sendN(5);
    await sleep(10);
    va.close();
    vb.pause();
    s.sendN(5, 5);
    await sleep(10);
    expect(a.seen).toEqual([0, 1, 2, 3, 4]);
    expect(b.seen).toEqual([0, 1, 2, 3, 4]);
    vb.resume();
    s.sendN(5, 10);
    await sleep(10);
    expect(a.seen).toEqual([0, 1, 2, 3, 4]);
    expect(b.seen).toEqual([0, 1, 2, 3, 4, 10, 11, 12, 13, 14]);
    // A second onBatch on one view replaces its handler, it does not add one.
    const b2 = recorder();
    vb.onBatch(b2.h);
    s.sendN(1, 20);
    await sleep(10);
    expect(b.seen).not.toContain(20);
    expect(b2.seen).toEqual([20]);
  });

  it('views transmit through the shared link and show its identity', async () => {
    const s = setup();
    const got = recorder();
    s.peer.onBatch(got.h);
    const v = s.set.view('lan');
    expect(v.mac).toEqual(s.shared.mac);
    expect(v.mtu).toBe(s.shared.mtu);
    expect(v.maxFrame).toBe(s.shared.maxFrame);
    expect(v.name).toBe('eth0');
    const slot = v.txSlot();
    frame(s.peer.mac, s.shared.mac, 7).copy(slot);
    v.txCommit(60);
    v.send(frame(s.peer.mac, s.shared.mac, 8));
    v.flush();
    await sleep(10);
    expect(got.seen).toEqual([7, 8]);
    expect(s.set.link('lan')).toBe(s.shared);
  });

  it('refuses a name twice and unknown names; close pauses, runs the hooks once more, closes', () => {
    const s = setup();
    expect(() => s.set.add('lan', s.seg.attach())).toThrow(/added twice/);
    expect(() => s.set.view('nope')).toThrow(/no link named nope/);
    expect(s.set.has('lan')).toBe(true);
    expect(s.set.names()).toEqual(['lan']);
    let hooks = 0;
    s.set.afterBatch(() => hooks++);
    s.set.close();
    expect(hooks).toBe(1);
    expect(s.shared.closed).toBe(true);
    s.set.close(); // idempotent
    expect(hooks).toBe(1);
  });

  it('link errors reach every view’s error handler', () => {
    const s = setup();
    const got: string[] = [];
    s.set.view('lan').onError((e) => got.push(`a:${e.message}`));
    const vb = s.set.view('lan');
    vb.onError((e) => got.push(`b1:${e.message}`));
    vb.onError((e) => got.push(`b2:${e.message}`)); // replaces b1
    // FakeLink reports handler errors through onError; the LinkSet installed its own handler.
    (s.shared as unknown as { errorHandler: (e: Error) => void }).errorHandler(new Error('link down'));
    expect(got).toEqual(['a:link down', 'b2:link down']);
  });
});
