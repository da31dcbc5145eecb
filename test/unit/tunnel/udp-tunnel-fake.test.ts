/**
 * The tunnel driver over an injected DatagramLink (issue 8 item 1): two UdpTunnels on the
 * in-memory FakeDatagramNetwork handshake and exchange records over IPv4 and IPv6, the end-of-batch
 * hook runs once per receive batch after its records (and what it queues leaves in that batch's
 * flush), and the network's loss/duplication/reorder/delay injection works. Plus the layering
 * rule: the tunnel carries opaque records (peer messages are the gateway's).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DatagramLink } from '../../../src/io/datagram-link.js';
import { FakeDatagramNetwork } from '../../../src/io/fake-datagram.js';
import { ADDR_SLOT, encodeUdpAddress, readUdpAddress } from '../../../src/io/udp-address.js';
import { Send } from '../../../src/tunnel/endpoint.js';
import { MSG_INITIATION } from '../../../src/tunnel/messages.js';
import type { Peer } from '../../../src/tunnel/peer.js';
import { UdpTunnel, type UdpTunnelOptions } from '../../../src/tunnel/udp-tunnel.js';
import { waitFor } from '../../helpers/wait.js';
import { sodiumNative as crypto } from './backends.js';

const open: UdpTunnel[] = [];
afterEach(() => {
  for (const t of open.splice(0)) t.close();
});

interface Side {
  t: UdpTunnel;
  peer: Peer;
  log: string[];
  got: Buffer[];
}

type Extra = Partial<Omit<UdpTunnelOptions, 'crypto' | 'staticKeyPair'>>;

function tunnel(
  link: DatagramLink,
  extra: Extra,
  side: Omit<Side, 't' | 'peer'>,
  keys = crypto.x25519KeyPair(),
) {
  const t = UdpTunnel.open({
    crypto,
    staticKeyPair: keys,
    port: 0,
    link,
    tickMs: 20,
    load: false,
    ...extra,
    events: {
      record: (_p, type, buf, off, len) => {
        side.log.push(`rec${type}`);
        side.got.push(Buffer.from(buf.subarray(off, off + len)));
      },
    },
  });
  open.push(t);
  return { t, keys };
}

/** A (knows B's address) and B (learns A's from the handshake) on `net`. */
function pair(net: FakeDatagramNetwork, addrA: string, addrB: string, ea: Extra = {}, eb: Extra = {}) {
  const la = net.open({ address: addrA, ...(ea.batch !== undefined ? { batch: ea.batch } : {}) });
  const lb = net.open({ address: addrB, ...(eb.batch !== undefined ? { batch: eb.batch } : {}) });
  const sa = { log: [] as string[], got: [] as Buffer[] };
  const sb = { log: [] as string[], got: [] as Buffer[] };
  const ta = tunnel(la, ea, sa);
  const tb = tunnel(lb, eb, sb);
  const a: Side = {
    ...sa,
    t: ta.t,
    peer: ta.t.addPeer({ publicKey: tb.keys.publicKey, endpoint: { address: addrB, port: lb.localPort } }),
  };
  const b: Side = { ...sb, t: tb.t, peer: tb.t.addPeer({ publicKey: ta.keys.publicKey }) };
  return { a, b, la, lb };
}

async function handshake(a: Side, b: Side): Promise<void> {
  a.t.connect(a.peer);
  expect(await waitFor(() => a.peer.hasSession(a.t.now()) && b.peer.hasSession(b.t.now()), 3000, 2)).toBe(
    true,
  );
}

describe('UdpTunnel over a FakeDatagramNetwork', () => {
  for (const [family, addrA, addrB] of [
    [4, '10.0.0.1', '10.0.0.2'],
    [6, 'fd00::1', 'fd00::2'],
  ] as const) {
    it(`completes a handshake and exchanges records both ways over IPv${family}`, async () => {
      const net = new FakeDatagramNetwork();
      const { a, b, la } = pair(net, addrA, addrB);
      expect(a.t.family).toBe(family);
      await handshake(a, b);
      // B learnt A's address from the authenticated handshake.
      expect(b.t.peerEndpoint(b.peer)).toEqual({ address: addrA, port: la.localPort });
      for (let i = 0; i < 20; i++) {
        expect(a.t.send(a.peer, 1, Buffer.from(`a→b ${i}`))).toBe(Send.OK);
        expect(b.t.send(b.peer, 7, Buffer.from(`b→a ${i}`))).toBe(Send.OK);
      }
      expect(await waitFor(() => a.got.length === 20 && b.got.length === 20, 2000, 2)).toBe(true);
      expect(b.got.map(String)).toEqual(Array.from({ length: 20 }, (_, i) => `a→b ${i}`));
      expect(a.got.map(String)).toEqual(Array.from({ length: 20 }, (_, i) => `b→a ${i}`));
      expect(new Set(a.log)).toEqual(new Set(['rec7']));
      expect(a.t.stats().link.rxFrames).toBeGreaterThan(0);
    });
  }

  it('onBatchEnd runs once per receive batch, after its records; replies it queues leave in that flush', async () => {
    const net = new FakeDatagramNetwork();
    const la = net.open({ address: '10.0.0.1' });
    // B receives in batches of 4 datagrams.
    const lb = net.open({ address: '10.0.0.2', batch: 4 });
    // Count what B commits for sending while its batch handler runs (the tunnel's seal + commit).
    let committed = 0;
    const commit = lb.txCommitTo.bind(lb);
    lb.txCommitTo = (n, addr, off) => {
      committed++;
      commit(n, addr, off);
    };
    const commitsAtBatchEnd: number[] = [];
    const onBatch = lb.onBatch.bind(lb);
    lb.onBatch = (h) =>
      onBatch((d, l, addrs, count) => {
        const before = committed;
        h(d, l, addrs, count);
        commitsAtBatchEnd.push(committed - before);
      });
    const sa = { log: [] as string[], got: [] as Buffer[] };
    const sb = { log: [] as string[], got: [] as Buffer[] };
    const ta = tunnel(la, {}, sa);
    let bPeer: Peer | undefined;
    let tbRef: UdpTunnel | undefined;
    const tb = tunnel(
      lb,
      {
        onBatchEnd: () => {
          const records = sb.log.length - sb.log.lastIndexOf('end') - 1;
          sb.log.push('end');
          // One summary reply per batch that carried records.
          if (records > 0) tbRef!.send(bPeer!, 9, Buffer.from(`batch of ${records}`));
        },
      },
      sb,
    );
    tbRef = tb.t;
    const aPeer = ta.t.addPeer({
      publicKey: tb.keys.publicKey,
      endpoint: { address: '10.0.0.2', port: lb.localPort },
    });
    bPeer = tb.t.addPeer({ publicKey: ta.keys.publicKey });
    const a: Side = { ...sa, t: ta.t, peer: aPeer };
    const b: Side = { ...sb, t: tb.t, peer: bPeer };
    await handshake(a, b);
    await waitFor(() => false, 50, 10); // let the handshake's keepalive batches pass
    sb.log.length = 0;
    commitsAtBatchEnd.length = 0;
    const batchesBefore = b.t.stats().driver.rxBatches;
    // 10 records of 1000 bytes: one per datagram (MTU 1452), sent in one flush.
    for (let i = 0; i < 10; i++) a.t.send(a.peer, 1, Buffer.alloc(1000, i));
    a.t.flush();
    expect(await waitFor(() => a.got.length === 3, 2000, 2)).toBe(true);
    expect(sb.log).toEqual([...'rrrre', ...'rrrre', ...'rre'].map((c) => (c === 'r' ? 'rec1' : 'end')));
    expect(b.t.stats().driver.rxBatches - batchesBefore).toBe(3);
    expect(a.got.map(String)).toEqual(['batch of 4', 'batch of 4', 'batch of 2']);
    // Each batch's reply was sealed and committed inside that batch's handler (its own flush).
    expect(commitsAtBatchEnd).toEqual([1, 1, 1]);
  });

  it('an onBatchEnd that throws is reported and the batch still flushes', async () => {
    const net = new FakeDatagramNetwork();
    const errors: Error[] = [];
    const { a, b } = pair(
      net,
      '10.0.0.1',
      '10.0.0.2',
      {},
      {
        onBatchEnd: () => {
          throw new Error('hook failed');
        },
        onError: (e) => errors.push(e),
      },
    );
    await handshake(a, b);
    expect(errors.some((e) => e.message === 'hook failed')).toBe(true);
    expect(b.t.stats().driver.errors).toBeGreaterThan(0);
  });

  it('loss injection: a lost initiation is retried; lost transport datagrams are exactly the missing records', async () => {
    const net = new FakeDatagramNetwork(7);
    const { a, b } = pair(net, '10.0.0.1', '10.0.0.2', { timers: { rekeyTimeout: 100 } });
    let initiations = 0;
    net.intercept = (data) => !(data[0] === MSG_INITIATION && initiations++ === 0);
    a.t.connect(a.peer);
    expect(await waitFor(() => a.peer.hasSession(a.t.now()) && b.peer.hasSession(b.t.now()), 3000, 5)).toBe(
      true,
    );
    expect(net.stats.intercepted).toBe(1);
    expect(initiations).toBe(2);
    net.intercept = undefined;
    await waitFor(() => false, 30, 10);
    net.faults = { loss: 0.3 };
    const lostBefore = net.stats.lost;
    for (let i = 0; i < 200; i++) {
      a.t.send(a.peer, 1, Buffer.alloc(1000, i));
      a.t.flush();
    }
    await waitFor(() => false, 200, 20);
    const lost = net.stats.lost - lostBefore;
    // B's acknowledgements (keepalives) can be lost too; every record datagram is one record.
    expect(lost).toBeGreaterThan(30);
    expect(lost).toBeLessThan(100);
    expect(b.got.length).toBeGreaterThan(200 - lost - 1);
    expect(b.got.length).toBeLessThan(200);
  });

  it('rebind goes through the link factory; a fixed link cannot rebind', async () => {
    const net = new FakeDatagramNetwork();
    const la = net.open({ address: '10.0.0.1' });
    const side = { log: [] as string[], got: [] as Buffer[] };
    const fixed = tunnel(la, {}, side).t;
    expect(() => fixed.rebind()).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_CONFIG' }));
    const t = UdpTunnel.open({
      crypto,
      staticKeyPair: crypto.x25519KeyPair(),
      port: 45000,
      linkFactory: net.factory('10.0.0.9'),
    });
    open.push(t);
    expect([t.localAddress, t.localPort]).toEqual(['10.0.0.9', 45000]);
    t.rebind({ port: 45001 });
    expect(t.localPort).toBe(45001);
    // The old port is free again.
    net.open({ address: '10.0.0.9', port: 45000 }).close();
  });
});

describe('FakeDatagramNetwork', () => {
  function collect(link: DatagramLink) {
    const got: { data: string; from: string; batch: number }[] = [];
    let batches = 0;
    link.onBatch((d, lens, addrs, count) => {
      batches++;
      for (let i = 0; i < count; i++) {
        const from = readUdpAddress(addrs, i * ADDR_SLOT);
        got.push({
          data: lens[i]! < 0 ? '<truncated>' : d[i]!.subarray(0, lens[i]!).toString(),
          from: `${from.address}:${from.port}`,
          batch: batches,
        });
      }
    });
    return got;
  }

  function send(from: DatagramLink, to: DatagramLink, text: string): void {
    const slot = from.txSlot();
    const n = slot.write(text);
    from.txCommitTo(n, encodeUdpAddress({ address: to.localAddress, port: to.localPort }));
  }

  it('delivers asynchronously in batches with the source address; refuses taken and wildcard binds', async () => {
    const net = new FakeDatagramNetwork();
    const a = net.open({ address: '192.0.2.1', port: 1000 });
    const b = net.open({ address: '192.0.2.2', port: 2000, batch: 8 });
    const got = collect(b);
    for (let i = 0; i < 20; i++) send(a, b, `m${i}`);
    a.flush();
    expect(got).toEqual([]); // not synchronously
    expect(await waitFor(() => got.length === 20, 1000, 2)).toBe(true);
    expect(got.map((g) => g.data)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    expect(got.every((g) => g.from === '192.0.2.1:1000')).toBe(true);
    expect(got.map((g) => g.batch)).toEqual([...Array(8).fill(1), ...Array(8).fill(2), ...Array(4).fill(3)]);
    expect(() => net.open({ address: '192.0.2.2', port: 2000 })).toThrow(
      expect.objectContaining({ code: 'ERR_BIND' }),
    );
    expect(() => net.open({ address: '0.0.0.0' })).toThrow(/wildcard/);
    expect(() => net.open({ address: '::' })).toThrow(/wildcard/);
    // Other family and unbound destinations go nowhere.
    const v6 = net.open({ address: 'fd00::5' });
    send(a, v6, 'x');
    send(a, { localAddress: '192.0.2.77', localPort: 1 } as DatagramLink, 'y');
    a.flush();
    expect(a.stats().txErrors).toBe(1);
    expect(net.stats.unroutable).toBe(1);
  });

  it('truncates datagrams longer than the receiver slot (length -1)', async () => {
    const net = new FakeDatagramNetwork();
    const a = net.open({ address: '192.0.2.1' });
    const b = net.open({ address: '192.0.2.2', maxDatagram: 100 });
    const got = collect(b);
    send(a, b, 'x'.repeat(100));
    send(a, b, 'y'.repeat(101));
    expect(await waitFor(() => got.length === 2, 1000, 2)).toBe(true);
    expect(got.map((g) => g.data)).toEqual(['x'.repeat(100), '<truncated>']);
    expect(b.stats().rxTruncated).toBe(1);
  });

  it('injects loss, duplication, reordering and delay', async () => {
    const net = new FakeDatagramNetwork(42);
    const a = net.open({ address: 'fd00::1' });
    const b = net.open({ address: 'fd00::2' });
    const got = collect(b);
    const N = 1000;
    // Faults are decided at send time (the stats count them then); delivery is asynchronous, so
    // wait for the count the stats predict (a loaded machine delivers late, never differently),
    // then a little longer for anything beyond it.
    const burst = async (faults: typeof net.faults) => {
      got.length = 0;
      net.faults = faults;
      const before = { ...net.stats };
      for (let i = 0; i < N; i++) {
        send(a, b, String(i));
        if (i % 50 === 49) a.flush();
      }
      a.flush();
      const expected = N - (net.stats.lost - before.lost) + (net.stats.duplicated - before.duplicated);
      await waitFor(() => got.length >= expected, 5000, 10);
      await waitFor(() => false, 50, 10);
      return got.map((g) => Number(g.data));
    };
    const s0 = { ...net.stats };
    const lossy = await burst({ loss: 0.25 });
    const lost = net.stats.lost - s0.lost;
    expect(lost).toBeGreaterThan(150);
    expect(lost).toBeLessThan(350);
    expect(lossy.length).toBe(N - lost);
    expect(lossy).toEqual([...lossy].sort((x, y) => x - y)); // still in order

    const s1 = { ...net.stats };
    const dup = await burst({ duplicate: 0.1 });
    const dups = net.stats.duplicated - s1.duplicated;
    expect(dups).toBeGreaterThan(50);
    expect(dup.length).toBe(N + dups);
    expect(new Set(dup).size).toBe(N);

    const s2 = { ...net.stats };
    const reordered = await burst({ reorder: 0.1 });
    expect(net.stats.reordered - s2.reordered).toBeGreaterThan(50);
    expect(reordered.length).toBe(N);
    expect(reordered).not.toEqual([...reordered].sort((x, y) => x - y));
    expect(new Set(reordered).size).toBe(N);

    got.length = 0;
    net.faults = { delayMs: 120 };
    const t0 = Date.now();
    send(a, b, 'late');
    a.flush();
    expect(await waitFor(() => got.length === 1, 2000, 5)).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(110);
  });
});

describe('layering', () => {
  it('the tunnel carries opaque records: nothing in it encodes peer messages (the gateway does)', () => {
    const dir = join(import.meta.dirname, '..', '..', '..', 'src', 'tunnel');
    const users = readdirSync(dir)
      .filter((f) => f.endsWith('.ts'))
      .filter((f) => /protobufjs|from '\.\/control\.js'/.test(readFileSync(join(dir, f), 'utf8')));
    expect(users).toEqual([]);
  });
});
