/**
 * The routed two-site topology (support/two-site.ts) and its capture: vblade in `tgt`, a plain
 * VXLAN bridge across the router, our initiator in `ini` discovers, writes, reads and verifies
 * e1.0. Captures prove both directions of what the gateway tests will assert: on the routed hop
 * AoE exists only inside VXLAN (zero 0x88A2 frames) and, VXLAN being plaintext, the data written
 * is found there; inside wireguard-go neither the VXLAN port nor the data is visible.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SECTOR_SIZE } from '../../src/aoe/constants.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { discover, identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { sparseImage } from '../../support/images.js';
import { netnsSkipReason, uniqueId } from '../../support/netns.js';
import {
  VXLAN_PORT,
  vxlanBridge,
  WIREGUARD_PORT,
  wireguardSkipReason,
  wireguardTunnel,
} from '../../support/overlays.js';
import { hasCommand, type Spawned, startVblade } from '../../support/processes.js';
import {
  type Capture,
  type CaptureResult,
  capture,
  captureSkipReason,
  createTwoSite,
  netemSkipReason,
} from '../../support/two-site.js';
import { sleep } from '../../support/wait.js';

const AOE = 0x88a2;
const skip =
  netnsSkipReason() ??
  captureSkipReason() ??
  (hasCommand('vblade') ? undefined : 'vblade is not installed (apt-get install vblade)');

function readImage(path: string, off: number, len: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(len);
    readSync(fd, b, 0, len, off);
    return b;
  } finally {
    closeSync(fd);
  }
}

/** 8 sectors whose every 64 bytes carry a marker that is unique to this run. */
function markerData(): { marker: string; data: Buffer } {
  const marker = `AOEGW-PLAINTEXT-${uniqueId()}-MARK`;
  const data = Buffer.alloc(8 * SECTOR_SIZE);
  for (let o = 0; o + 64 <= data.length; o += 64) data.write(marker.padEnd(64, '.'), o);
  return { marker, data };
}

describe.skipIf(skip)('two-site topology', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** Topology + vblade e1.0 in tgt; returns what the cases need. */
  function setUp(wanMtu: number, netem?: { delayMs: number }) {
    const dir = mkdtempSync(join(tmpdir(), 'aoegw-2site-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const site = createTwoSite({ lanMtu: 1500, wanMtu, ...(netem ? { netem } : {}) });
    cleanups.push(() => site.close());
    const image = sparseImage(dir, 'disk.img', 32 << 20);
    return { site, image };
  }

  async function startTarget(site: ReturnType<typeof createTwoSite>, image: string): Promise<Spawned> {
    const vb = startVblade(site.ns.tgt.name, 1, 0, site.iface.tgt, image);
    cleanups.push(() => vb.stop());
    await sleep(300);
    return vb;
  }

  async function captures(site: ReturnType<typeof createTwoSite>): Promise<Capture[]> {
    const caps = [
      await capture(site.ns.router, site.iface.routerA),
      await capture(site.ns.router, site.iface.routerB),
    ];
    cleanups.push(() => Promise.all(caps.map((c) => c.stop())));
    return caps;
  }

  /** Discover e1.0 from ini, write the marker, read it back, verify a region. */
  async function exercise(site: ReturnType<typeof createTwoSite>, image: string, vb: Spawned) {
    const ini = new Initiator(PacketLink.open({ iface: site.iface.ini, netns: site.ns.ini.name }));
    try {
      const found = await discover(ini, 1000);
      const row = found.find((r) => r.target === 'e1.0');
      expect(row, `discovery found ${JSON.stringify(found)}; vblade said: ${vb.output()}`).toBeDefined();
      expect(row!.model).toContain('vblade');
      const [advert] = await ini.queryConfig(500, { major: 1, minor: 0 });
      const c = ini.client(advert!);
      const id = await identify(ini, c);
      const { marker, data } = markerData();
      await writeSectors(ini, c, 2048, data);
      const back = Buffer.alloc(data.length);
      await readSectors(ini, c, 2048, back);
      expect(back.equals(data)).toBe(true);
      expect(readImage(image, 2048 * SECTOR_SIZE, data.length).equals(data)).toBe(true);
      const v = await verifyPattern(ini, c, { startLba: 8192, sectors: 4096, seed: 7, identity: id });
      expect(v.mismatches).toBe(0);
      return marker;
    } finally {
      ini.close();
    }
  }

  it('plain VXLAN: ini verifies e1.0 in tgt; the router sees AoE only inside VXLAN, in clear', async () => {
    const { site, image } = setUp(1500 + 100);
    const br = vxlanBridge(site);
    cleanups.push(() => br.close());
    const vb = await startTarget(site, image);
    const routed = await captures(site);
    const lan = await capture(site.ns.gwA, site.iface.gwALan);
    cleanups.push(() => lan.stop());

    const marker = await exercise(site, image, vb);

    const results: CaptureResult[] = await Promise.all(routed.map((c) => c.stop()));
    for (const r of results) {
      expect(r.droppedByKernel).toBe(0);
      expect(r.count(AOE)).toBe(0);
      expect(r.udpDstPorts.get(VXLAN_PORT) ?? 0).toBeGreaterThan(0);
      // VXLAN is unencrypted: the data crosses the routed hop readable. (Positive control for
      // the "not found" assertions of the encrypted paths.)
      expect(r.contains(marker)).toBe(true);
    }
    // Positive control for the EtherType count: on the LAN the same traffic is raw AoE.
    const l = await lan.stop();
    expect(l.count(AOE)).toBeGreaterThan(0);
    expect(l.contains(marker)).toBe(true);
    expect(l.udpDstPorts.get(VXLAN_PORT) ?? 0).toBe(0);
  });

  it.skipIf(wireguardSkipReason())(
    'VXLAN inside wireguard-go: ini verifies e1.0; the router sees neither AoE, VXLAN nor the data',
    async () => {
      // wg carries VXLAN: the WAN needs lanMtu + 50 (VXLAN) + 60 (WireGuard).
      const { site, image } = setUp(1500 + 160);
      const wg = await wireguardTunnel(site);
      cleanups.push(() => wg.close());
      const br = vxlanBridge(site, { underlay: wg.underlay });
      cleanups.push(() => br.close());
      const vb = await startTarget(site, image);
      const routed = await captures(site);

      const marker = await exercise(site, image, vb);

      for (const r of await Promise.all(routed.map((c) => c.stop()))) {
        expect(r.droppedByKernel).toBe(0);
        expect(r.count(AOE)).toBe(0);
        expect(r.udpDstPorts.get(VXLAN_PORT) ?? 0).toBe(0);
        expect(r.udpDstPorts.get(WIREGUARD_PORT) ?? 0).toBeGreaterThan(0);
        expect(r.contains(marker)).toBe(false);
      }
    },
  );

  // This kernel may lack sch_netem (then skipped); where it exists, the router must delay both ways.
  it.skipIf(netemSkipReason())('netem on the router delays every request and reply crossing it', async () => {
    const { site, image } = setUp(1500 + 100, { delayMs: 25 });
    const br = vxlanBridge(site);
    cleanups.push(() => br.close());
    await startTarget(site, image);
    const ini = new Initiator(PacketLink.open({ iface: site.iface.ini, netns: site.ns.ini.name }));
    cleanups.push(() => ini.close());
    const [advert] = await ini.queryConfig(1000, { major: 1, minor: 0 });
    expect(advert).toBeDefined();
    const c = ini.client(advert!);
    const t0 = performance.now();
    await readSectors(ini, c, 0, Buffer.alloc(SECTOR_SIZE));
    // Request crosses wanB's egress, the reply wanA's: two delays per round trip.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(2 * 25 - 1);
  });
});
