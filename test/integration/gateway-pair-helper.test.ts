/**
 * support/gateway-pair.ts against the real daemon (skipped until `aoegw run` is built): B forwards
 * vblade e1.0 and exports 1.1, A imports them as 7.0 and 7.1; our initiator in `ini` verifies both,
 * a restart of A from its config file keeps working, and the routed hop carries only the tunnel's
 * UDP: zero AoE frames and no plaintext of the data written.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SECTOR_SIZE } from '../../src/aoe/constants.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { GATEWAY_PORT, gatewayRunSkipReason, startGatewayPair } from '../../support/gateway-pair.js';
import { sparseImage } from '../../support/images.js';
import { netnsSkipReason, uniqueId } from '../../support/netns.js';
import { hasCommand, startVblade } from '../../support/processes.js';
import { capture, captureSkipReason, createTwoSite } from '../../support/two-site.js';
import { sleep } from '../../support/wait.js';

const skip =
  netnsSkipReason() ??
  captureSkipReason() ??
  (hasCommand('vblade') ? undefined : 'vblade is not installed') ??
  gatewayRunSkipReason();

describe.skipIf(skip)('gateway pair helper', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('starts both daemons; ini verifies the forward and the export through them; restart works', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aoegw-gwh-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const site = createTwoSite({ lanMtu: 1500 });
    cleanups.push(() => site.close());
    const vb = startVblade(site.ns.tgt.name, 1, 0, site.iface.tgt, sparseImage(dir, 'vb.img', 32 << 20));
    cleanups.push(() => vb.stop());
    await sleep(300);
    const pair = await startGatewayPair(site, {
      a: {
        imports: [
          { remote: '1.0', local: '7.0', links: ['lan'] },
          { remote: '1.1', local: '7.1', links: ['lan'] },
        ],
      },
      b: {
        exports: [{ target: '1.1', path: sparseImage(dir, 'ex.img', 32 << 20), name: 'disk-b1' }],
        forwards: [{ link: 'lan', targets: ['1.0'] }],
        allow: [{ targets: ['1.0', '1.1'], access: 'rw' }],
      },
    });
    cleanups.push(() => pair.stop());
    const caps = [
      await capture(site.ns.router, site.iface.routerA),
      await capture(site.ns.router, site.iface.routerB),
    ];
    cleanups.push(() => Promise.all(caps.map((c) => c.stop())));
    const marker = `AOEGW-PLAINTEXT-${uniqueId()}-MARK`.padEnd(64, '.');
    const data = Buffer.alloc(4 * SECTOR_SIZE);
    for (let o = 0; o < data.length; o += 64) data.write(marker, o);

    const useBoth = async () => {
      const ini = new Initiator(PacketLink.open({ iface: site.iface.ini, netns: site.ns.ini.name }));
      try {
        for (const minor of [0, 1]) {
          let advert: Awaited<ReturnType<Initiator['queryConfig']>>[number] | undefined;
          const until = Date.now() + 5000;
          while (!advert && Date.now() < until) [advert] = await ini.queryConfig(300, { major: 7, minor });
          expect(advert, `7.${minor} not advertised; A said: ${pair.a.output()}`).toBeDefined();
          const c = ini.client(advert!);
          const id = await identify(ini, c);
          await writeSectors(ini, c, 100, data);
          const back = Buffer.alloc(data.length);
          await readSectors(ini, c, 100, back);
          expect(back.equals(data)).toBe(true);
          const v = await verifyPattern(ini, c, { startLba: 4096, sectors: 2048, seed: minor, identity: id });
          expect(v.mismatches).toBe(0);
        }
      } finally {
        ini.close();
      }
    };
    await useBoth();
    const oldPid = pair.a.child.pid;
    await pair.restart('a');
    expect(pair.a.child.pid).not.toBe(oldPid);
    await useBoth();

    for (const r of await Promise.all(caps.map((c) => c.stop()))) {
      expect(r.droppedByKernel).toBe(0);
      expect(r.count(0x88a2)).toBe(0);
      expect(r.udpDstPorts.get(GATEWAY_PORT) ?? 0).toBeGreaterThan(0);
      expect(r.contains(marker)).toBe(false);
    }
  });
});
