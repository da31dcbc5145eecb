/**
 * Batched UDP between two namespaces over IPv4 and IPv6: datagrams and source addresses arrive
 * intact in batches, and bind errors are clear.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readUdpAddress } from '../../src/io/udp-address.js';
import { UdpLink } from '../../src/io/udp-link.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

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
    });
  }

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
