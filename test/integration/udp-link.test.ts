/**
 * Batched UDP between two namespaces over IPv4 and IPv6: datagrams and source addresses arrive
 * intact in batches, and bind errors are clear. UDP GSO on send and GRO on receive: runs of equal
 * datagrams leave as GSO messages and arrive split, intact and in order; mixed batches, empty
 * datagrams, the fallback when the kernel refuses GSO, and a GRO message larger than the
 * receiver's batch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeUdpAddress, readUdpAddress } from '../../src/io/udp-address.js';
import { type DatagramHandler, UdpLink } from '../../src/io/udp-link.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();

describe.skipIf(skip)('UdpLink', () => {
  let nsA: Netns;
  let nsB: Netns;
  const links: UdpLink[] = [];
  beforeAll(() => {
    nsA = new Netns('uda');
    nsB = new Netns('udb');
    const v = vethPair(nsA, nsB, 9000);
    nsA.ip('addr', 'add', '10.77.0.1/24', 'dev', v.a);
    nsB.ip('addr', 'add', '10.77.0.2/24', 'dev', v.b);
    // A second path with a 1500-byte MTU: GSO of larger segments is refused on it.
    const small = vethPair(nsA, nsB, 1500);
    nsA.ip('addr', 'add', '10.77.1.1/24', 'dev', small.a);
    nsB.ip('addr', 'add', '10.77.1.2/24', 'dev', small.b);
    nsA.ip('addr', 'add', 'fd77::1/64', 'dev', v.a, 'nodad');
    nsB.ip('addr', 'add', 'fd77::2/64', 'dev', v.b, 'nodad');
  });
  afterAll(() => {
    for (const l of links) l.close();
    nsA?.delete();
    nsB?.delete();
  });

  for (const [family, a, b] of [
    [4, '10.77.0.1', '10.77.0.2'],
    [6, 'fd77::1', 'fd77::2'],
  ] as const) {
    it(`carries 5000 datagrams with their source address over IPv${family}`, async () => {
      const rx = UdpLink.open({ family, address: b, port: 0, netns: nsB.name });
      const tx = UdpLink.open({ family, address: a, port: 0, netns: nsA.name });
      links.push(rx, tx);
      const seen: number[] = [];
      const sources = new Set<string>();
      rx.onBatch((dgrams, lens, addrs, count) => {
        for (let i = 0; i < count; i++) {
          expect(lens[i]).toBe(1100);
          seen.push(dgrams[i]!.readUInt32BE(0));
          const src = readUdpAddress(addrs, i * 24);
          sources.add(`${src.address}|${src.port}`);
        }
      });
      const payload = Buffer.alloc(1100, 0xab);
      for (let burst = 0; burst < 50; burst++) {
        for (let i = 0; i < 100; i++) {
          payload.writeUInt32BE(burst * 100 + i, 0);
          tx.sendTo(payload, { address: b, port: rx.localPort });
        }
        tx.flush();
        await waitFor(() => seen.length >= (burst + 1) * 100, 2000, 2);
      }
      expect(seen).toEqual(Array.from({ length: 5000 }, (_, i) => i));
      expect([...sources]).toEqual([`${a}|${tx.localPort}`]);
      expect(rx.stats().rxBatches).toBeLessThan(5000);
      // 100 equal datagrams per flush to one peer: sent as GSO messages, received coalesced.
      expect(tx.stats().gsoSegments).toBe(5000);
      expect(rx.stats().groSegments).toBeGreaterThan(0);
    });
  }

  /** Datagram i of a test: its index in the first 4 bytes, then a pattern that depends on it. */
  function fill(buf: Buffer, i: number, len: number): void {
    for (let k = 0; k < len; k++) buf[k] = (i * 31 + k * 7) & 0xff;
    if (len >= 4) buf.writeUInt32BE(i, 0);
  }

  function intact(buf: Buffer, len: number): boolean {
    const i = buf.readUInt32BE(0);
    for (let k = 4; k < len; k++) if (buf[k] !== ((i * 31 + k * 7) & 0xff)) return false;
    return true;
  }

  interface Got {
    index: number;
    len: number;
    from: string;
    ok: boolean;
  }

  /** A receiver that records every datagram (index, length, source, content intact). */
  function receiver(opts: { address: string; gro?: boolean; batch?: number; maxBatchesPerWakeup?: number }) {
    const link = UdpLink.open({ family: 4, port: 0, netns: nsB.name, ...opts });
    links.push(link);
    const got: Got[] = [];
    const record: DatagramHandler = (dgrams, lens, addrs, count) => {
      for (let i = 0; i < count; i++) {
        const src = readUdpAddress(addrs, i * 24);
        got.push({
          index: lens[i]! >= 4 ? dgrams[i]!.readUInt32BE(0) : -1,
          len: lens[i]!,
          from: `${src.address}|${src.port}`,
          ok: lens[i]! >= 4 && intact(dgrams[i]!, lens[i]!),
        });
      }
    };
    link.onBatch(record);
    return { link, got, record, to: encodeUdpAddress({ address: opts.address, port: link.localPort }) };
  }

  /**
   * Commits datagrams (index, length, destination) into tx's arena and sends them as one batch (at
   * most the arena's 64: the 64th commit sends by itself); returns how many the kernel took.
   */
  function sendBatch(tx: UdpLink, dgrams: { len: number; to: Buffer }[], first = 0): number {
    const before = tx.stats().txFrames;
    for (const [k, d] of dgrams.entries()) {
      fill(tx.txSlot(), first + k, d.len);
      tx.txCommitTo(d.len, d.to);
    }
    const sent = tx.flush();
    const taken = tx.stats().txFrames - before;
    if (dgrams.length < tx.batch) expect(sent).toBe(taken);
    return taken;
  }

  it('sends a batch of equal datagrams to one peer as GSO messages; they arrive split, intact, in order', async () => {
    const r = receiver({ address: '10.77.0.2' });
    const tx = UdpLink.open({ family: 4, address: '10.77.0.1', port: 0, netns: nsA.name });
    links.push(tx);
    expect(tx.gso).toBe(true);
    expect(r.link.gro).toBe(true);
    // 64 datagrams of 1400 bytes, the last one shorter: 46 + 18 (65,507 bytes at most per message).
    const lens = Array.from({ length: 64 }, (_, i) => (i === 63 ? 333 : 1400));
    expect(
      sendBatch(
        tx,
        lens.map((len) => ({ len, to: r.to })),
      ),
    ).toBe(64);
    await waitFor(() => r.got.length >= 64, 2000, 2);
    expect(r.got.map((g) => g.index)).toEqual(lens.map((_, i) => i));
    expect(r.got.map((g) => g.len)).toEqual(lens);
    expect(r.got.every((g) => g.ok && g.from === `10.77.0.1|${tx.localPort}`)).toBe(true);
    const ts = tx.stats();
    expect(ts).toMatchObject({
      txFrames: 64,
      txBatches: 1,
      txCalls: 1,
      gsoSends: 2,
      gsoSegments: 64,
      txErrors: 0,
    });
    const rs = r.link.stats();
    expect(rs.groSegments).toBe(64);
    expect(rs.groMessages).toBe(2);
    expect(rs.rxFrames).toBe(64);
  });

  it('the same with GRO off at the receiver (the kernel splits) and with GSO off at the sender', async () => {
    const r = receiver({ address: '10.77.0.2', gro: false });
    expect(r.link.gro).toBe(false);
    const tx = UdpLink.open({ family: 4, address: '10.77.0.1', port: 0, netns: nsA.name });
    const plain = UdpLink.open({ family: 4, address: '10.77.0.1', port: 0, netns: nsA.name, gso: false });
    links.push(tx, plain);
    expect(plain.gso).toBe(false);
    expect(
      sendBatch(
        tx,
        Array.from({ length: 40 }, () => ({ len: 1000, to: r.to })),
      ),
    ).toBe(40);
    expect(
      sendBatch(
        plain,
        Array.from({ length: 40 }, () => ({ len: 1000, to: r.to })),
        40,
      ),
    ).toBe(40);
    await waitFor(() => r.got.length >= 80, 2000, 2);
    expect(r.got.map((g) => g.index)).toEqual(Array.from({ length: 80 }, (_, i) => i));
    expect(r.got.every((g) => g.ok && g.len === 1000)).toBe(true);
    expect(tx.stats()).toMatchObject({ gsoSends: 1, gsoSegments: 40 });
    expect(plain.stats()).toMatchObject({ gsoSends: 0, gsoSegments: 0, txFrames: 40, txCalls: 1 });
    expect(r.link.stats()).toMatchObject({ groMessages: 0, groSegments: 0, rxFrames: 80 });
  });

  it('mixed sizes and destinations in one batch: runs become GSO messages, the rest single datagrams', async () => {
    const p = receiver({ address: '10.77.0.2' });
    const q = receiver({ address: '10.77.0.2' });
    const tx = UdpLink.open({ family: 4, address: '10.77.0.1', port: 0, netns: nsA.name });
    links.push(tx);
    const P = p.to;
    const Q = q.to;
    const run = (n: number, len: number, to: Buffer) => Array.from({ length: n }, () => [len, to] as const);
    const plan = [
      ...run(5, 1000, P), // a run of 5
      ...run(3, 500, P), // a run of 3: another size starts another run
      ...run(4, 1000, Q), // a run of 4: another destination too
      ...run(1, 1000, P), // alone: the next one goes elsewhere
      ...run(1, 800, Q), // alone: the next one is longer
      ...run(2, 900, Q),
      ...run(1, 400, Q), // a run of 3, the last one shorter
      ...run(1, 1200, P), // alone: the next one is longer
      ...run(2, 1300, P), // a run of 2
      ...run(1, 8000, Q), // alone
      ...run(1, 100, P),
      ...run(1, 100, Q),
      ...run(1, 100, P), // alternating destinations: all alone
    ];
    const sent = sendBatch(
      tx,
      plan.map(([len, to]) => ({ len, to })),
    );
    expect(sent).toBe(plan.length);
    const forP = plan.flatMap(([len, to], i) => (to === P ? [{ i, len }] : []));
    const forQ = plan.flatMap(([len, to], i) => (to === Q ? [{ i, len }] : []));
    await waitFor(() => p.got.length >= forP.length && q.got.length >= forQ.length, 2000, 2);
    expect(p.got.map((g) => [g.index, g.len])).toEqual(forP.map((x) => [x.i, x.len]));
    expect(q.got.map((g) => [g.index, g.len])).toEqual(forQ.map((x) => [x.i, x.len]));
    expect([...p.got, ...q.got].every((g) => g.ok)).toBe(true);
    // GSO messages: 5, 3, 4, 3, 2 datagrams; everything in one sendmmsg.
    expect(tx.stats()).toMatchObject({ gsoSends: 5, gsoSegments: 17, txFrames: plan.length, txCalls: 1 });
  });

  it('a zero-length datagram in a batch is counted and skipped; the rest of the batch leaves', async () => {
    const r = receiver({ address: '10.77.0.2' });
    const tx = UdpLink.open({ family: 4, address: '10.77.0.1', port: 0, netns: nsA.name });
    links.push(tx);
    const lens = [700, 700, 0, 700, 700, 700];
    expect(
      sendBatch(
        tx,
        lens.map((len) => ({ len, to: r.to })),
      ),
    ).toBe(5);
    await waitFor(() => r.got.length >= 5, 2000, 2);
    expect(r.got.map((g) => g.index)).toEqual([0, 1, 3, 4, 5]);
    expect(r.got.every((g) => g.ok && g.len === 700)).toBe(true);
    expect(tx.stats()).toMatchObject({ txFrames: 5, txErrors: 1, txDropped: 1, gsoSends: 2, gsoSegments: 5 });
    // A batch of nothing but an empty datagram sends nothing and does not throw.
    tx.txSlot();
    tx.txCommitTo(0, r.to);
    expect(tx.flush()).toBe(0);
    expect(tx.stats()).toMatchObject({ txFrames: 5, txErrors: 2, txDropped: 2 });
  });

  it('falls back to single datagrams when the kernel refuses GSO (segments larger than the route MTU), and tries GSO again later', async () => {
    const r = receiver({ address: '10.77.1.2' });
    const tx = UdpLink.open({ family: 4, address: '10.77.1.1', port: 0, netns: nsA.name, gsoRetryMs: 500 });
    links.push(tx);
    // 2000-byte datagrams on a 1500-MTU path: without GSO the kernel fragments them, with GSO it
    // refuses the message (EINVAL).
    expect(
      sendBatch(
        tx,
        Array.from({ length: 10 }, () => ({ len: 2000, to: r.to })),
      ),
    ).toBe(10);
    expect(tx.gso).toBe(false);
    expect(tx.stats()).toMatchObject({ gsoFallbacks: 1, gsoSends: 0, txFrames: 10, txErrors: 0 });
    // For gsoRetryMs this socket sends without GSO, even runs it could have sent.
    expect(
      sendBatch(
        tx,
        Array.from({ length: 10 }, () => ({ len: 1000, to: r.to })),
        10,
      ),
    ).toBe(10);
    await waitFor(() => r.got.length >= 20, 2000, 2);
    expect(r.got.map((g) => g.index)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(r.got.map((g) => g.len)).toEqual([...Array(10).fill(2000), ...Array(10).fill(1000)]);
    expect(r.got.every((g) => g.ok)).toBe(true);
    expect(tx.stats()).toMatchObject({ gsoFallbacks: 1, gsoSends: 0, txFrames: 20 });
    // Then it tries again: runs that fit the route's MTU leave as GSO messages, and another refusal
    // is another fallback.
    await sleep(600);
    expect(
      sendBatch(
        tx,
        Array.from({ length: 10 }, () => ({ len: 1000, to: r.to })),
        20,
      ),
    ).toBe(10);
    expect(tx.stats()).toMatchObject({ gsoFallbacks: 1, gsoSends: 1, gsoSegments: 10 });
    expect(tx.gso).toBe(true);
    expect(
      sendBatch(
        tx,
        Array.from({ length: 10 }, () => ({ len: 2000, to: r.to })),
        30,
      ),
    ).toBe(10);
    expect(tx.stats()).toMatchObject({ gsoFallbacks: 2, gsoSends: 1, txFrames: 40, txErrors: 0 });
    await waitFor(() => r.got.length >= 40, 2000, 2);
    expect(r.got.map((g) => g.index)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(r.got.every((g) => g.ok)).toBe(true);
  });

  it('a bad destination in a GSO run fails alone and does not turn GSO off', async () => {
    const r = receiver({ address: '10.77.0.2' });
    const tx = UdpLink.open({ family: 4, address: '10.77.0.1', port: 0, netns: nsA.name });
    links.push(tx);
    // Port 0 is refused (EINVAL) with or without GSO: it is the datagrams' problem, not GSO's.
    const bad = encodeUdpAddress({ address: '10.77.0.2', port: 0 });
    const plan = [
      ...Array.from({ length: 4 }, () => ({ len: 600, to: bad })),
      ...Array.from({ length: 4 }, () => ({ len: 600, to: r.to })),
    ];
    expect(sendBatch(tx, plan)).toBe(4);
    await waitFor(() => r.got.length >= 4, 2000, 2);
    expect(r.got.map((g) => g.index)).toEqual([4, 5, 6, 7]);
    expect(tx.gso).toBe(true);
    expect(tx.stats()).toMatchObject({ gsoFallbacks: 0, txErrors: 4, txFrames: 4 });
  });

  it('a GRO message with more datagrams than the receive batch has slots loses nothing', async () => {
    // Batch 8, one batch per wakeup: 64 datagrams arrive as two coalesced messages (46 + 18), the
    // rest of which wait in the pool for the following deliveries.
    const r = receiver({ address: '10.77.0.2', batch: 8, maxBatchesPerWakeup: 1 });
    const tx = UdpLink.open({ family: 4, address: '10.77.0.1', port: 0, netns: nsA.name });
    links.push(tx);
    const batches: number[] = [];
    const record = r.record;
    r.link.onBatch((dgrams, lens, addrs, count) => {
      batches.push(count);
      record(dgrams, lens, addrs, count);
    });
    for (let b = 0; b < 4; b++) {
      for (let k = 0; k < 16; k++) {
        fill(tx.txSlot(), b * 16 + k, 1400);
        tx.txCommitTo(1400, r.to);
      }
    }
    tx.flush();
    await waitFor(() => r.got.length >= 64, 2000, 2);
    expect(r.got.map((g) => g.index)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(r.got.every((g) => g.ok && g.len === 1400 && g.from === `10.77.0.1|${tx.localPort}`)).toBe(true);
    expect(batches.every((c) => c <= 8)).toBe(true);
    expect(r.link.stats().groSegments).toBe(64);
    // Paused with datagrams left in the pool: they come after resume(), with nothing new arriving.
    r.got.length = 0;
    batches.length = 0;
    let paused = false;
    r.link.onBatch((dgrams, lens, addrs, count) => {
      record(dgrams, lens, addrs, count);
      if (!paused) {
        paused = true;
        r.link.pause();
      }
    });
    for (let k = 0; k < 40; k++) {
      fill(tx.txSlot(), k, 1400);
      tx.txCommitTo(1400, r.to);
    }
    tx.flush();
    await waitFor(() => r.got.length >= 8, 2000, 2);
    await new Promise((res) => setTimeout(res, 50));
    expect(r.got.length).toBe(8);
    r.link.resume();
    await waitFor(() => r.got.length >= 40, 2000, 2);
    expect(r.got.map((g) => g.index)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('names bind failures: address in use, address not local', () => {
    const first = UdpLink.open({ family: 4, address: '10.77.0.1', port: 0, netns: nsA.name });
    links.push(first);
    expect(() =>
      UdpLink.open({ family: 4, address: '10.77.0.1', port: first.localPort, netns: nsA.name }),
    ).toThrow(expect.objectContaining({ code: 'ERR_BIND', message: expect.stringMatching(/in use/) }));
    expect(() => UdpLink.open({ family: 4, address: '10.99.0.1', port: 0, netns: nsA.name })).toThrow(
      expect.objectContaining({ code: 'ERR_BIND' }),
    );
    expect(() => UdpLink.open({ family: 6, address: '10.77.0.1', port: 0, netns: nsA.name })).toThrow(
      expect.objectContaining({ code: 'ERR_BIND', message: expect.stringMatching(/not an IPv6/) }),
    );
  });
});
