/**
 * The fault relay's wiring on in-memory datagram links: what arrives on one side leaves from the
 * other to that side's peer, with the relay's address as source; per-direction settings, delays,
 * duplicates and blackouts act on the right direction; the stats add up.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type FakeDatagramLink, FakeDatagramNetwork } from '../../../src/io/fake-datagram.js';
import { encodeUdpAddress, readUdpAddress } from '../../../src/io/udp-address.js';
import type { PoolClass } from '../../../support/datagram-pool.js';
import type { FaultSettings } from '../../../support/fault-plan.js';
import { FaultRelayEngine } from '../../../support/fault-relay-engine.js';
import { sleep, waitFor } from '../../../support/wait.js';

interface Got {
  seq: number;
  from: string;
  atMs: number;
}

function collect(link: FakeDatagramLink): Got[] {
  const got: Got[] = [];
  link.onBatch((d, l, a, n) => {
    for (let i = 0; i < n; i++) {
      const src = readUdpAddress(a, i * 24);
      if (l[i]! >= 4)
        got.push({ seq: d[i]!.readUInt32BE(0), from: `${src.address}:${src.port}`, atMs: performance.now() });
    }
  });
  return got;
}

function send(
  from: FakeDatagramLink,
  to: { address: string; port: number },
  seqs: number[],
  size = 100,
): void {
  const addr = encodeUdpAddress(to);
  for (const s of seqs) {
    const slot = from.txSlot();
    slot.fill(0, 0, size);
    slot.writeUInt32BE(s, 0);
    from.txCommitTo(size, addr);
  }
  from.flush();
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

describe('FaultRelayEngine', () => {
  let engine: FaultRelayEngine | undefined;
  afterEach(() => engine?.close());

  const setup = (faults: Partial<FaultSettings> = {}, pool?: PoolClass[]) => {
    const net = new FakeDatagramNetwork();
    const gwA = net.open({ address: '10.0.1.2', port: 7788 });
    const gwB = net.open({ address: '10.0.2.2', port: 7788 });
    const relayA = { address: '10.0.1.1', port: 7790 };
    const relayB = { address: '10.0.2.1', port: 7790 };
    engine = new FaultRelayEngine({
      aLink: net.open(relayA),
      bLink: net.open(relayB),
      aPeer: { address: '10.0.1.2', port: 7788 },
      bPeer: { address: '10.0.2.2', port: 7788 },
      seed: 1,
      faults,
      ...(pool ? { pool } : {}),
    });
    engine.start();
    return { e: engine, gwA, gwB, relayA, relayB, atA: collect(gwA), atB: collect(gwB) };
  };

  it('relays both ways, from the relay side facing the receiver', async () => {
    const { e, gwA, gwB, relayA, relayB, atA, atB } = setup();
    send(gwA, relayA, range(200));
    send(gwB, relayB, range(50, 1000));
    expect(await waitFor(() => atB.length === 200 && atA.length === 50, 2000, 1)).toBe(true);
    expect(atB.map((g) => g.seq)).toEqual(range(200));
    expect(new Set(atB.map((g) => g.from))).toEqual(new Set(['10.0.2.1:7790']));
    expect(atA.map((g) => g.seq)).toEqual(range(50, 1000));
    expect(new Set(atA.map((g) => g.from))).toEqual(new Set(['10.0.1.1:7790']));
    const s = e.stats();
    expect(s.a2b).toMatchObject({ in: 200, out: 200, pending: 0, sendDropped: 0 });
    expect(s.b2a).toMatchObject({ in: 50, out: 50 });
  });

  it('applies settings per direction at run time', async () => {
    const { e, gwA, gwB, relayA, relayB, atA, atB } = setup();
    e.set({ a2b: { dropPercent: 100 }, b2a: { duplicatePercent: 100 } });
    send(gwA, relayA, range(20));
    send(gwB, relayB, range(20));
    expect(await waitFor(() => atA.length === 40, 2000, 1)).toBe(true);
    await sleep(20);
    expect(atB).toEqual([]);
    expect(atA.map((g) => g.seq)).toEqual(range(20).flatMap((s) => [s, s]));
    e.set({ both: { dropPercent: 0, duplicatePercent: 0 } });
    send(gwA, relayA, [7]);
    expect(await waitFor(() => atB.length === 1, 2000, 1)).toBe(true);
    expect(e.stats().a2b).toMatchObject({ in: 21, dropped: 20, out: 1 });
  });

  it('holds delayed copies in the pool and sends them when due, in order', async () => {
    const { e, gwA, relayA, atB } = setup({ delayMs: 100 });
    const t0 = performance.now();
    send(gwA, relayA, range(100));
    expect(await waitFor(() => e.stats().a2b.in === 100, 2000, 1)).toBe(true);
    expect(atB).toEqual([]);
    expect(e.stats()).toMatchObject({ poolInUse: 100, a2b: { pending: 100, delayed: 100 } });
    expect(await waitFor(() => atB.length === 100, 2000, 1)).toBe(true);
    expect(atB.map((g) => g.seq)).toEqual(range(100));
    expect(Math.min(...atB.map((g) => g.atMs - t0))).toBeGreaterThanOrEqual(100);
    expect(e.stats()).toMatchObject({ poolInUse: 0, a2b: { pending: 0, out: 100 } });
  });

  it('blacks out both directions, also for copies due during the blackout', async () => {
    const { e, gwA, gwB, relayA, relayB, atA, atB } = setup({ delayMs: 20 });
    send(gwA, relayA, [1]);
    await sleep(5);
    e.blackout(40);
    send(gwA, relayA, [2]);
    send(gwB, relayB, [3]);
    await sleep(80);
    expect(atA).toEqual([]);
    expect(atB).toEqual([]);
    send(gwA, relayA, [4]);
    expect(await waitFor(() => atB.length === 1, 2000, 1)).toBe(true);
    expect(atB[0]!.seq).toBe(4);
    const s = e.stats();
    expect(s.a2b.blackholed + s.b2a.blackholed).toBe(3);
    expect(s.poolInUse).toBe(0);
  });

  it('counts what the bounded pool cannot hold as overflow', async () => {
    const { e, gwA, relayA, atB } = setup({ delayMs: 10 }, [{ slotBytes: 128, slots: 4 }]);
    send(gwA, relayA, range(10));
    send(gwA, relayA, [10], 129);
    expect(await waitFor(() => atB.length === 4, 2000, 1)).toBe(true);
    await sleep(20);
    expect(atB.map((g) => g.seq)).toEqual(range(4));
    expect(e.stats().a2b).toMatchObject({ in: 11, out: 4, overflow: 7, pending: 0 });
  });
});
