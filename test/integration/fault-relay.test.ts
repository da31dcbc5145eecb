/**
 * The fault relay in the router namespace of the two-site topology, between two plain batched UDP
 * sockets standing where the gateways' tunnel endpoints are (gwA 10.91.1.2:7788, gwB
 * 10.91.2.2:7788). Each test starts its own relay (fresh generator) and checks what arrives against
 * the settings: exactly the losses and duplicates a local replay of the seeded plan predicts,
 * reordering, one-way delay (send time in the payload, same clock), blackout, the size limit, and
 * that the relay's counters add up. The router drops routed tunnel UDP, so only the relay passes.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readUdpAddress, type UdpEndpoint } from '../../src/io/udp-address.js';
import { UdpLink } from '../../src/io/udp-link.js';
import { FaultPlan, type FaultSettings, Verdict } from '../../support/fault-plan.js';
import { type DirectionStats, type FaultRelay, startFaultRelay } from '../../support/fault-relay.js';
import { directionSeed } from '../../support/fault-relay-protocol.js';
import { netnsSkipReason } from '../../support/netns.js';
import {
  blockRoutedUdp,
  createTwoSite,
  iptablesSkipReason,
  type RoutedUdpBlock,
  type TwoSite,
} from '../../support/two-site.js';
import { sleep, waitFor } from '../../support/wait.js';

const skip = netnsSkipReason() ?? iptablesSkipReason();

const TUNNEL_PORT = 7788;
const RELAY_PORT = 7790;

/** Payload: [0..3] run id, [4..7] sequence number, [8..15] send time (performance.now, ms). */
const HEADER = 16;

interface Arrival {
  seq: number;
  sentMs: number;
  atMs: number;
  len: number;
}

/** A plain batched UDP socket in a namespace that stamps what it sends and logs what it gets. */
class Endpoint {
  readonly link: UdpLink;
  readonly got: Arrival[] = [];
  readonly sources = new Set<string>();
  run = 0;

  constructor(netns: string, address: string, port: number) {
    this.link = UdpLink.open({ address, port, netns, maxDatagram: 65535 });
    this.link.onBatch((d, l, a, n) => {
      const atMs = performance.now();
      for (let i = 0; i < n; i++) {
        const len = l[i]!;
        if (len < HEADER || d[i]!.readUInt32BE(0) !== this.run) continue;
        const src = readUdpAddress(a, i * 24);
        this.sources.add(`${src.address}:${src.port}`);
        this.got.push({ seq: d[i]!.readUInt32BE(4), sentMs: d[i]!.readDoubleBE(8), atMs, len });
      }
    });
  }

  /** Starts a new run: what is still in flight from the last one is ignored. */
  reset(): void {
    this.run++;
    this.got.length = 0;
    this.sources.clear();
  }

  /** Sends datagrams `seqs` of `size` bytes, `perTick` at a time with a ~1 ms pause between. */
  async send(
    to: UdpEndpoint,
    seqs: number[],
    o: { size?: number | ((seq: number) => number); perTick?: number; run?: number } = {},
  ): Promise<void> {
    const perTick = o.perTick ?? 50;
    for (let k = 0; k < seqs.length; k += perTick) {
      for (const seq of seqs.slice(k, k + perTick)) {
        const size = typeof o.size === 'function' ? o.size(seq) : (o.size ?? 100);
        const b = Buffer.alloc(size, seq & 0xff);
        b.writeUInt32BE(o.run ?? this.run, 0);
        b.writeUInt32BE(seq, 4);
        b.writeDoubleBE(performance.now(), 8);
        this.link.sendTo(b, to);
      }
      this.link.flush();
      await sleep(1);
    }
  }
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

/** The relay's counters add up, and nothing is left queued. */
function consistent(s: DirectionStats): void {
  expect(s.in + s.duplicated).toBe(
    s.out + s.dropped + s.blackholed + s.oversize + s.overflow + s.unforwardable + s.pending,
  );
  expect(s.pending).toBe(0);
  expect(s.sendDropped).toBe(0);
}

describe.skipIf(skip)('fault relay in the router namespace', () => {
  let site: TwoSite;
  let block: RoutedUdpBlock;
  let gwA: Endpoint;
  let gwB: Endpoint;
  let relay: FaultRelay | undefined;
  let relayA: UdpEndpoint;
  let relayB: UdpEndpoint;

  beforeAll(() => {
    site = createTwoSite();
    block = blockRoutedUdp(site, TUNNEL_PORT);
    gwA = new Endpoint(site.ns.gwA.name, site.ip.gwAWan, TUNNEL_PORT);
    gwB = new Endpoint(site.ns.gwB.name, site.ip.gwBWan, TUNNEL_PORT);
    relayA = { address: site.ip.routerA, port: RELAY_PORT };
    relayB = { address: site.ip.routerB, port: RELAY_PORT };
  });
  afterEach(async () => {
    await relay?.stop();
    relay = undefined;
  });
  afterAll(() => {
    gwA?.link.close();
    gwB?.link.close();
    block?.remove();
    site?.close();
  });

  const start = async (faults: Partial<FaultSettings> = {}, seed = 1) => {
    gwA.reset();
    gwB.reset();
    relay = await startFaultRelay({
      netns: site.ns.router.name,
      aSide: relayA,
      aPeer: { address: site.ip.gwAWan, port: TUNNEL_PORT },
      bSide: relayB,
      bPeer: { address: site.ip.gwBWan, port: TUNNEL_PORT },
      faults,
      seed,
    });
    return relay;
  };

  it('relays both ways from its own addresses; routed tunnel UDP is dropped, other UDP still routed', async () => {
    const r = await start();
    expect(r.aSide).toEqual(relayA);
    await gwA.send(relayA, range(1000));
    await gwB.send(relayB, range(1000));
    expect(await waitFor(() => gwB.got.length === 1000 && gwA.got.length === 1000, 5000)).toBe(true);
    expect(gwB.got.map((g) => g.seq)).toEqual(range(1000));
    expect(gwA.got.map((g) => g.seq)).toEqual(range(1000));
    expect([...gwB.sources]).toEqual([`${site.ip.routerB}:${RELAY_PORT}`]);
    expect([...gwA.sources]).toEqual([`${site.ip.routerA}:${RELAY_PORT}`]);

    // Straight to the other gateway's tunnel port: the router drops it. One datagram per flush, so
    // none leaves in a GSO message (iptables counts a GSO packet once, whatever it carries).
    const before = block.droppedPackets();
    await gwA.send({ address: site.ip.gwBWan, port: TUNNEL_PORT }, range(200, 5000), { perTick: 1 });
    await gwB.send({ address: site.ip.gwAWan, port: TUNNEL_PORT }, range(200, 5000), { perTick: 1 });
    await sleep(300);
    expect(gwB.got.length).toBe(1000);
    expect(gwA.got.length).toBe(1000);
    expect(block.droppedPackets() - before).toBe(400);
    // The rule is about the tunnel port only: other UDP between the sites is routed.
    const other = new Endpoint(site.ns.gwB.name, site.ip.gwBWan, 7799);
    const sender = new Endpoint(site.ns.gwA.name, site.ip.gwAWan, 7700);
    try {
      other.run = sender.run;
      await sender.send({ address: site.ip.gwBWan, port: 7799 }, range(10));
      expect(await waitFor(() => other.got.length === 10, 2000)).toBe(true);
    } finally {
      other.link.close();
      sender.link.close();
    }
    const s = await r.stats();
    expect(s.a2b).toMatchObject({ in: 1000, out: 1000 });
    expect(s.b2a).toMatchObject({ in: 1000, out: 1000 });
    consistent(s.a2b);
    consistent(s.b2a);
  });

  it('loses and duplicates exactly what the seeded plan says, reorders, and the shares match', async () => {
    const faults = { dropPercent: 5, duplicatePercent: 5, reorderPercent: 10, reorderAfter: 3 };
    const seed = 11;
    const n = 20_000;
    // Replay the relay's a2b plan. Each datagram's fate depends only on the seed and its number
    // (five draws each), so each decision can be replayed with only that fault set.
    const replay = (f: Partial<FaultSettings>) => {
      const p = new FaultPlan({ seed: directionSeed(seed, 'a2b'), capacity: 1, faults: f });
      return range(n).map(() => {
        const v = p.admit(100, 0);
        if (v === Verdict.queue) p.refuse();
        return v;
      });
    };
    const fate = replay({ ...faults, reorderPercent: 0 });
    const holds = replay({ reorderPercent: faults.reorderPercent });
    const dropped = new Set(range(n).filter((i) => fate[i] === Verdict.drop));
    const twice = new Set(range(n).filter((i) => fate[i] === Verdict.sendTwice));
    const held = new Set(range(n).filter((i) => holds[i] === Verdict.queue && !dropped.has(i)));

    const r = await start(faults, seed);
    await gwA.send(relayA, range(n));
    const expected = n - dropped.size + twice.size;
    expect(await waitFor(() => gwB.got.length >= expected, 10_000)).toBe(true);
    await sleep(100); // anything beyond the expected would show now

    const count = new Map<number, number>();
    for (const g of gwB.got) count.set(g.seq, (count.get(g.seq) ?? 0) + 1);
    expect(range(n).filter((i) => !count.has(i))).toEqual([...dropped]);
    expect(range(n).filter((i) => count.get(i) === 2)).toEqual([...twice].filter((i) => !dropped.has(i)));
    expect([...count.values()].every((c) => c === 1 || c === 2)).toBe(true);
    expect(gwB.got.length).toBe(expected);

    // The shares are the settings' (5 standard deviations of a binomial).
    const within = (k: number, pct: number) => {
      const sd = Math.sqrt(n * (pct / 100) * (1 - pct / 100));
      expect(Math.abs(k - (n * pct) / 100)).toBeLessThan(5 * sd);
    };
    within(dropped.size, 5);
    within(twice.size, 5);
    within(held.size, 10 * 0.95);

    // Held datagrams arrive after a later one; the others keep their order.
    const firstAt = new Map<number, number>();
    gwB.got.forEach((g, i) => {
      if (!firstAt.has(g.seq)) firstAt.set(g.seq, i);
    });
    let highest = -1;
    const highestBefore = gwB.got.map((g) => {
      const h = highest;
      highest = Math.max(highest, g.seq);
      return h;
    });
    const overtaken = [...held].filter((s) => s < n - 10 && highestBefore[firstAt.get(s)!]! > s);
    expect(overtaken.length).toBe([...held].filter((s) => s < n - 10).length);
    const direct = gwB.got.filter((g, i) => !held.has(g.seq) && firstAt.get(g.seq) === i).map((g) => g.seq);
    expect(direct).toEqual([...direct].sort((a, b) => a - b));

    const s = await r.stats();
    expect(s.a2b).toMatchObject({
      in: n,
      out: expected,
      dropped: dropped.size,
      duplicated: [...twice].filter((i) => !dropped.has(i)).length,
      reordered: held.size,
    });
    consistent(s.a2b);
  });

  it('delays one way by delayMs plus a uniform jitter', async () => {
    const r = await start({ delayMs: 20, jitterMs: 10 });
    await gwA.send(relayA, range(2000), { perTick: 4 });
    expect(await waitFor(() => gwB.got.length === 2000, 5000)).toBe(true);
    const d = gwB.got.map((g) => g.atMs - g.sentMs);
    // Never early: the relay's clock starts after the send and its timer never fires before due.
    expect(Math.min(...d)).toBeGreaterThanOrEqual(20);
    // Spread over the jitter window; the ms timer and the hop add a little on top, and on a busy
    // two-core machine a descheduled process now and then holds a few ms' worth for 10-20 ms.
    expect(quantile(d, 0.1)).toBeLessThan(23.5);
    expect(quantile(d, 0.5)).toBeGreaterThan(24);
    expect(quantile(d, 0.5)).toBeLessThan(28.5);
    expect(quantile(d, 0.9)).toBeGreaterThan(27);
    expect(quantile(d, 0.9)).toBeLessThan(36);
    expect(Math.max(...d)).toBeLessThan(250);
    const s = await r.stats();
    expect(s.a2b).toMatchObject({ in: 2000, out: 2000, delayed: 2000 });
    consistent(s.a2b);
  });

  it('blackout loses everything for its length, both ways, and nothing after', async () => {
    const r = await start();
    const n = 600;
    const sending = gwA.send(relayA, range(n), { perTick: 1 });
    await sleep(150);
    await r.blackout(200);
    await gwB.send(relayB, range(5, 100));
    await sending;
    await gwB.send(relayB, range(5));
    await sleep(100);
    const seen = new Set(gwB.got.map((g) => g.seq));
    const lost = range(n).filter((i) => !seen.has(i));
    // One run of consecutive datagrams, as long as the blackout by their send times.
    expect(lost.length).toBeGreaterThan(100);
    expect(lost).toEqual(range(lost.length, lost[0]));
    const sent = new Map<number, number>();
    // Send times of the lost ones are not logged by the receiver: interpolate from neighbours.
    for (const g of gwB.got) sent.set(g.seq, g.sentMs);
    const span = sent.get(lost.at(-1)! + 1)! - sent.get(lost[0]! - 1)!;
    expect(span).toBeGreaterThan(190);
    expect(span).toBeLessThan(230);
    expect(gwA.got.map((g) => g.seq)).toEqual(range(5));
    const s = await r.stats();
    expect(s.a2b.blackholed).toBe(lost.length);
    expect(s.b2a.blackholed).toBe(5);
    consistent(s.a2b);
    consistent(s.b2a);
  });

  it('drops datagrams over maxSizeBytes and counts them; carries 64 KiB ones and survives empty ones', async () => {
    const r = await start({ maxSizeBytes: 1400 });
    const sizes = [1400, 1401, 1472, 4000, 1000];
    await gwA.send(relayA, range(100), { size: (i) => sizes[i % sizes.length]! });
    await sleep(200);
    expect(gwB.got.map((g) => g.len)).toEqual(range(40).map((i) => (i % 2 === 0 ? 1400 : 1000)));
    expect((await r.stats()).a2b).toMatchObject({ in: 100, oversize: 60, out: 40 });

    await r.set({ both: { maxSizeBytes: 0 } });
    await gwA.send(relayA, [1000], { size: 65507 });
    // An empty datagram (the batched socket cannot send one, so a one-off dgram socket does).
    const code = `require('node:dgram').createSocket('udp4').send(Buffer.alloc(0), ${RELAY_PORT}, '${relayA.address}', (e) => process.exit(e ? 1 : 0))`;
    const sent = spawnSync('ip', ['netns', 'exec', site.ns.gwA.name, process.execPath, '-e', code]);
    expect(sent.status).toBe(0);
    await gwA.send(relayA, [1001]);
    expect(await waitFor(() => gwB.got.length === 42, 2000)).toBe(true);
    expect(gwB.got.slice(40).map((g) => [g.seq, g.len])).toEqual([
      [1000, 65507],
      [1001, 100],
    ]);
    const s = await r.stats();
    expect(s.a2b).toMatchObject({ in: 103, unforwardable: 1, oversize: 60, out: 42 });
    consistent(s.a2b);
  });

  it('takes settings per direction at run time', async () => {
    const r = await start();
    await r.set({ b2a: { dropPercent: 50 } });
    await gwA.send(relayA, range(2000));
    await gwB.send(relayB, range(2000));
    await sleep(200);
    expect(gwB.got.length).toBe(2000);
    expect(gwA.got.length).toBeGreaterThan(1000 - 5 * Math.sqrt(500));
    expect(gwA.got.length).toBeLessThan(1000 + 5 * Math.sqrt(500));
    await expect(r.set({ both: { dropPercent: 200 } })).rejects.toThrow(/dropPercent = 200/);
    const s = await r.stats();
    expect(s.b2a.dropped).toBe(2000 - gwA.got.length);
    consistent(s.a2b);
    consistent(s.b2a);
  });

  it('exits 0 on SIGTERM and when its stdin closes', async () => {
    const r = await start();
    expect(await r.stop()).toBe(0);
    relay = undefined;
    const r2 = await start();
    r2.process.child.stdin?.end();
    expect(await waitFor(() => r2.process.child.exitCode !== null, 5000)).toBe(true);
    expect(r2.process.child.exitCode).toBe(0);
    await expect(r2.stats()).rejects.toThrow(/exited/);
  });

  it('says why when it cannot bind', async () => {
    await start();
    const taken = startFaultRelay({
      netns: site.ns.router.name,
      aSide: relayA,
      aPeer: { address: site.ip.gwAWan, port: TUNNEL_PORT },
      bSide: relayB,
      bPeer: { address: site.ip.gwBWan, port: TUNNEL_PORT },
    });
    await expect(taken).rejects.toThrow(/fault relay did not start: fault-relay: cannot bind/);
  });
});
