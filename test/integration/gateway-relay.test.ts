/**
 * Two gateways whose tunnel runs through the fault relay on the router (gateway-pair's `relay`
 * option): with loss, duplication, reordering and delay on the path, the initiator in `ini` still
 * writes and reads B's export through A's import intact; every tunnel datagram passed the relay
 * (the router drops routed tunnel UDP, and the relay counted both directions).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SECTOR_SIZE } from '../../src/aoe/constants.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { UdpLink } from '../../src/io/udp-link.js';
import { startTwoSiteRelay } from '../../support/fault-relay.js';
import { GATEWAY_PORT, gatewayRunSkipReason, startGatewayPair } from '../../support/gateway-pair.js';
import { netnsSkipReason } from '../../support/netns.js';
import { createTwoSite, iptablesSkipReason } from '../../support/two-site.js';
import { sleep } from '../../support/wait.js';

const skip = netnsSkipReason() ?? iptablesSkipReason() ?? gatewayRunSkipReason();
const RELAY_PORT = 7790;

describe.skipIf(skip)('gateway pair through the fault relay', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('carries an export intact over a lossy, duplicating, reordering path, and only through the relay', async () => {
    const site = createTwoSite();
    cleanups.push(() => site.close());
    const relay = await startTwoSiteRelay(site, {
      port: RELAY_PORT,
      faults: { dropPercent: 1, duplicatePercent: 1, reorderPercent: 5, delayMs: 2, jitterMs: 2 },
      seed: 3,
    });
    cleanups.push(() => relay.stop());
    const pair = await startGatewayPair(site, {
      relay: { port: RELAY_PORT },
      a: { imports: [{ remote: '1.1', local: '7.1', links: ['lan'] }] },
      b: {
        exports: [{ target: '1.1', path: 'memory:64m', name: 'disk-b1' }],
        allow: [{ targets: ['1.1'], access: 'rw' }],
      },
    });
    cleanups.push(() => pair.stop());

    const ini = new Initiator(PacketLink.open({ iface: site.iface.ini, netns: site.ns.ini.name }));
    cleanups.push(() => ini.close());
    let advert: Awaited<ReturnType<Initiator['queryConfig']>>[number] | undefined;
    const until = Date.now() + 10_000;
    while (!advert && Date.now() < until) [advert] = await ini.queryConfig(300, { major: 7, minor: 1 });
    expect(advert, `7.1 not advertised; A said: ${pair.a.output()}`).toBeDefined();
    const c = ini.client(advert!);
    const id = await identify(ini, c);
    const data = Buffer.alloc(16 * SECTOR_SIZE);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    await writeSectors(ini, c, 100, data);
    const back = Buffer.alloc(data.length);
    await readSectors(ini, c, 100, back);
    expect(back.equals(data)).toBe(true);
    const v = await verifyPattern(ini, c, { startLba: 4096, sectors: 2048, seed: 5, identity: id });
    expect(v.mismatches).toBe(0);

    const s = await relay.stats();
    expect(s.a2b.out).toBeGreaterThan(100);
    expect(s.b2a.out).toBeGreaterThan(100);
    expect(s.a2b.dropped + s.b2a.dropped).toBeGreaterThan(0);
    expect(s.a2b.duplicated + s.b2a.duplicated).toBeGreaterThan(0);

    // The gateways never went around the relay; a datagram that tries is dropped by the router.
    const block = pair.routedBlock!;
    expect(block.droppedPackets()).toBe(0);
    const stray = UdpLink.open({ address: site.ip.gwAWan, port: 0, netns: site.ns.gwA.name });
    try {
      stray.sendTo(Buffer.from('bypass'), { address: site.ip.gwBWan, port: GATEWAY_PORT });
      stray.flush();
      await sleep(100);
    } finally {
      stray.close();
    }
    expect(block.droppedPackets()).toBe(1);
  });
});
