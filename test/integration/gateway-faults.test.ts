/**
 * The gateway pair under the faults a routed network has, injected for real: every tunnel datagram
 * crosses the fault relay on the router (support/fault-relay.ts: loss, duplication, reordering,
 * delay, blackouts; the router drops any routed tunnel UDP, so nothing bypasses it). Behind B:
 * vblade (a forward, e1.0 → A's 7.0) and a durable built-in export (e1.1 → 7.1). Our initiator and
 * the real Linux aoe driver write and read through A; every check of data is made on the images
 * themselves, on the host. Issue 9's fault tests; docs/gateway.md "Failure behaviour" says what an
 * operator sees for each.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECTOR_SIZE } from '../../src/aoe/constants.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { identify, writeSectors } from '../../src/initiator/operations.js';
import { checkPattern } from '../../src/initiator/pattern.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { NO_FAULTS } from '../../support/fault-plan.js';
import {
  type GatewayPair,
  gatewayRunSkipReason,
  gatewayStats,
  startGatewayPair,
} from '../../support/gateway-pair.js';
import { createTwoSite, type TwoSite } from '../../support/two-site.js';
import { type FaultRelay, type FaultSettings, startFaultRelay } from '../helpers/fault-relay.js';
import { liWriteStream } from '../helpers/li-stream.js';
import { linuxInitiatorSkipReason, runLinuxInitiator } from '../helpers/linux-initiator.js';
import { netnsSkipReason } from '../helpers/netns.js';
import { hasCommand, type Spawned, startVblade } from '../helpers/processes.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip =
  netnsSkipReason() ??
  (hasCommand('vblade') ? undefined : 'vblade is not installed') ??
  (hasCommand('iptables') ? undefined : 'iptables is not installed') ??
  gatewayRunSkipReason();
const liSkip = linuxInitiatorSkipReason();
const IMAGE = 64 << 20;
const RELAY_PORT = 7000;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const NONE: FaultSettings = { ...NO_FAULTS };
/** The profiles of issue 9, each applied to both directions of the routed hop. */
const PROFILES: Record<string, Partial<FaultSettings>> = {
  loss: { dropPercent: 5 },
  reorder: { reorderPercent: 20, reorderAfter: 4, reorderDelayMs: 30 },
  dup: { duplicatePercent: 5 },
  delay: { delayMs: 10, jitterMs: 10 }, // 20 ms ± 10 ms added round trip
};

interface Bed {
  site: TwoSite;
  dir: string;
  vbladeImage: string;
  diskImage: string;
  vblade: Spawned;
  relay: FaultRelay;
  pair: GatewayPair;
}

function sparse(dir: string, name: string): string {
  const p = join(dir, name);
  writeFileSync(p, '');
  truncateSync(p, IMAGE);
  return p;
}

async function bed(o: { lanMtu?: number; wanMtu?: number; tunnelMtu?: number; failAfterMs?: number } = {}) {
  const site = createTwoSite({ lanMtu: o.lanMtu ?? 1500, wanMtu: o.wanMtu ?? o.lanMtu ?? 1500 });
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-faults-'));
  const closers: (() => unknown)[] = [
    () => site.close(),
    () => rmSync(dir, { recursive: true, force: true }),
  ];
  try {
    const vbladeImage = sparse(dir, 'vblade.img');
    const diskImage = sparse(dir, 'disk.img');
    const vblade = startVblade(site.ns.tgt.name, 1, 0, site.iface.tgt, vbladeImage);
    closers.push(() => vblade.stop());
    const relay = await startFaultRelay({
      netns: site.ns.router.name,
      aSide: { address: site.ip.routerA, port: RELAY_PORT },
      aPeer: { address: site.ip.gwAWan, port: 7788 },
      bSide: { address: site.ip.routerB, port: RELAY_PORT },
      bPeer: { address: site.ip.gwBWan, port: 7788 },
      seed: 9,
    });
    closers.push(() => relay.stop());
    const tunnel = {
      mtu: o.tunnelMtu ?? (o.wanMtu ?? o.lanMtu ?? 1500) - 48,
      ...(o.failAfterMs ? { failAfterMs: o.failAfterMs } : {}),
    };
    mkdirSync(join(dir, 'gw'));
    const pair = await startGatewayPair(site, {
      dir: join(dir, 'gw'),
      relay: { port: RELAY_PORT },
      a: {
        imports: [
          { remote: '1.0', local: '7.0' },
          { remote: 'disk-b1', local: '7.1' },
        ],
        extra: { tunnel },
      },
      b: {
        exports: [{ target: '1.1', path: diskImage, name: 'disk-b1', durability: 'sync' }],
        forwards: [{ link: 'lan', targets: ['1.0'] }],
        allow: [{ targets: ['1.0', 'disk-b1'], access: 'rw' }],
        extra: { tunnel },
      },
    });
    closers.push(() => pair.stop());
    const usable = await waitFor(
      () =>
        /import e7\.1 .*: usable/.test(pair.a.output()) && /import e7\.0 .*: usable/.test(pair.a.output()),
      20_000,
    );
    if (!usable) throw new Error(`imports never became usable:\n${pair.a.output()}\n${pair.b.output()}`);
    const b: Bed = { site, dir, vbladeImage, diskImage, vblade, relay, pair };
    return {
      ...b,
      close: async () => {
        for (const c of closers.reverse()) await c();
      },
    };
  } catch (e) {
    for (const c of closers.reverse()) await c();
    throw e;
  }
}

type TestBed = Awaited<ReturnType<typeof bed>>;

/** A bed for one describe block: built before its tests (then `got` sees it), closed after them. */
function useBed(o: Parameters<typeof bed>[0], got: (b: TestBed) => void | Promise<void>): void {
  let b: TestBed | undefined;
  beforeAll(async () => {
    b = await bed(o);
    await got(b);
  }, 60_000);
  afterAll(async () => {
    await b?.close();
  });
}

/** The sectors [lba, lba + n) of an image hold the verify pattern of `seed`. */
function imageHoldsPattern(image: string, lba: number, n: number, seed: number): number {
  const data = readFileSync(image).subarray(lba * SECTOR_SIZE, (lba + n) * SECTOR_SIZE);
  return checkPattern(data, 0, lba, n, seed).length;
}

function setFaults(relay: FaultRelay, f: Partial<FaultSettings>) {
  return relay.set({ both: { ...NONE, ...f } });
}

describe.skipIf(skip)('gateway pair through a lossy, reordering, duplicating, delaying routed hop', () => {
  let t: TestBed | undefined;
  let ini: Initiator | undefined;
  useBed({}, (b) => {
    t = b;
    ini = new Initiator(PacketLink.open({ iface: b.site.iface.ini, netns: b.site.ns.ini.name }));
  });
  afterAll(() => ini?.close());

  it('our initiator: each fault profile, both targets, zero I/O errors, the images verify on the host', async () => {
    const found = await ini!.queryConfig(2000);
    const e70 = found.find((a) => a.major === 7 && a.minor === 0)!;
    const e71 = found.find((a) => a.major === 7 && a.minor === 1)!;
    expect(e70 && e71).toBeTruthy();
    let k = 0;
    for (const [name, profile] of Object.entries(PROFILES)) {
      await setFaults(t!.relay, profile);
      for (const [adv, image] of [
        [e71, t!.diskImage],
        [e70, t!.vbladeImage],
      ] as const) {
        const c = ini!.client(adv);
        const identity = await identify(ini!, c);
        const startLba = 2048 + k * 4096;
        const seed = 100 + k;
        const r = await verifyPattern(ini!, c, { startLba, sectors: 2048, seed, identity });
        expect(r.mismatches, `${name} on e${adv.major}.${adv.minor}`).toBe(0);
        expect(c.stats.ataErrors + c.stats.aoeErrors + c.stats.timeouts, name).toBe(0);
        expect(imageHoldsPattern(image, startLba, 2048, seed), `${name}: image on the host`).toBe(0);
        k++;
      }
    }
    await setFaults(t!.relay, {});
    const rs = await t!.relay.stats();
    // The faults really happened, both ways.
    expect(rs.a2b.dropped + rs.b2a.dropped).toBeGreaterThan(50);
    expect(rs.a2b.duplicated + rs.b2a.duplicated).toBeGreaterThan(50);
    expect(rs.a2b.reordered + rs.b2a.reordered).toBeGreaterThan(50);
    const a = await gatewayStats(t!.pair.a);
    const b = await gatewayStats(t!.pair.b);
    expect(a.imports.retransmits).toBeGreaterThan(0);
    expect(a.imports.failed).toBe(0);
    expect(b.exportSide.dupAnswered + b.exportSide.dupInProgress + b.exportSide.dupRerun).toBeGreaterThan(0);
  }, 180_000);

  it('write after write: the last of many writes to the same sectors wins, with duplicates delayed past the timeout', async () => {
    // A tenth of the datagrams held back 250 ms — far beyond A's resend timeout on this path — and
    // a fifth duplicated: old copies of earlier writes keep arriving after newer writes landed.
    await setFaults(t!.relay, {
      duplicatePercent: 20,
      reorderPercent: 10,
      reorderAfter: 1000,
      reorderDelayMs: 250,
    });
    const [adv] = await ini!.queryConfig(2000, { major: 7, minor: 1 });
    const c = ini!.client(adv!);
    const lba = 60_000;
    let last = Buffer.alloc(0);
    for (let i = 0; i < 150; i++) {
      last = Buffer.alloc(4 * SECTOR_SIZE, i & 0xff);
      last.writeUInt32BE(i, 0);
      await writeSectors(ini!, c, lba, last);
    }
    // Let every held copy arrive.
    await sleep(1000);
    await setFaults(t!.relay, {});
    const onDisk = readFileSync(t!.diskImage).subarray(lba * SECTOR_SIZE, (lba + 4) * SECTOR_SIZE);
    expect(onDisk.readUInt32BE(0)).toBe(149);
    expect(sha(onDisk)).toBe(sha(last));
    const b = await gatewayStats(t!.pair.b);
    // Late copies reached B and were answered without running again.
    expect(b.exportSide.dupAnswered + b.exportSide.dupInProgress).toBeGreaterThan(0);
  }, 120_000);

  it.skipIf(liSkip)(
    'the real Linux aoe initiator: each fault profile in one boot, zero I/O errors, data verifies on the host',
    { timeout: 300_000 },
    async () => {
      const relay = t!.relay;
      const before = await relay.stats();
      const offset = 32 << 20;
      const bytes = 2 << 20;
      const phases = Object.keys(PROFILES);
      let pending: Promise<void> = Promise.resolve();
      const r = await runLinuxInitiator({
        netns: t!.site.ns.ini.name,
        iface: t!.site.iface.ini,
        script: readFileSync(join(import.meta.dirname, '..', 'fixtures', 'li', 'gateway-phases.sh'), 'utf8'),
        env: { LI_TARGET: 'e7.1', LI_PHASES: phases.join(' '), LI_BYTES: bytes, LI_OFFSET: offset },
        timeoutS: 280,
        onLine: (line) => {
          const m = /LI-DATA: phase=(\S+)/.exec(line);
          if (m) pending = pending.then(() => setFaults(relay, PROFILES[m[1]!] ?? {}));
        },
      });
      await pending;
      expect(r.failed, r.log.slice(-4000)).toEqual([]);
      expect(r.result).toBe('PASS');
      expect(r.data.ioerrors).toBe('0');
      // The VM's I/O really crossed each fault.
      const after = await relay.stats();
      const d = (k: 'dropped' | 'duplicated' | 'reordered' | 'delayed') =>
        after.a2b[k] + after.b2a[k] - before.a2b[k] - before.b2a[k];
      expect(d('dropped')).toBeGreaterThan(10);
      expect(d('duplicated')).toBeGreaterThan(10);
      expect(d('reordered')).toBeGreaterThan(10);
      expect(d('delayed')).toBeGreaterThan(10);
      const img = readFileSync(t!.diskImage);
      phases.forEach((p, k) => {
        const region = img.subarray(offset + k * bytes, offset + (k + 1) * bytes);
        expect(sha(region), `${p}: image on the host`).toBe(r.data[`sha.${p}`]);
      });
    },
  );
});

/** The Linux-initiator write stream against A's e7.1 (through the tunnel to B's durable export). */
function stream(
  t: TestBed,
  o: { chunks: number; marks: number[]; offset: number; onMark: (k: number) => Promise<void>; mtu?: number },
) {
  return liWriteStream({
    netns: t.site.ns.ini.name,
    iface: t.site.iface.ini,
    image: t.diskImage,
    target: 'e7.1',
    ...o,
  });
}

describe.skipIf(skip || liSkip)('gateway restarts and outages during a Linux initiator write stream', () => {
  let t: TestBed | undefined;
  useBed({}, (b) => {
    t = b;
  });

  it(
    'restart A for 2 s, B for 2 s, then kill -9 B: no I/O error, every acknowledged write is in the image',
    { timeout: 300_000 },
    async () => {
      const s = await stream(t!, {
        chunks: 36,
        marks: [5, 15, 25],
        offset: 4 << 20,
        onMark: async (k) => {
          if (k === 0) {
            await t!.pair.a.stop();
            await sleep(2000);
            await t!.pair.restart('a');
          } else if (k === 1) {
            await t!.pair.b.stop();
            await sleep(2000);
            await t!.pair.restart('b');
          } else {
            await t!.pair.b.stop('SIGKILL');
            await sleep(1000);
            await t!.pair.restart('b');
          }
        },
      });
      expect(s.r.failed, s.r.log.slice(-4000)).toEqual([]);
      expect(s.errors).toBe(0);
      expect(s.acked).toBe(36);
    },
  );

  it(
    'restart A for 30 s, then B for 30 s: no I/O error, the device stays up, data verifies',
    { timeout: 300_000 },
    async () => {
      const s = await stream(t!, {
        chunks: 16,
        marks: [3, 9],
        offset: 24 << 20,
        onMark: async (k) => {
          const side = k === 0 ? 'a' : 'b';
          await t!.pair[side].stop();
          await sleep(30_000);
          await t!.pair.restart(side);
        },
      });
      expect(s.r.failed, s.r.log.slice(-4000)).toEqual([]);
      expect(s.errors).toBe(0);
      expect(s.acked).toBe(16);
    },
  );
});

describe.skipIf(skip || liSkip)('an outage past tunnel.failAfterMs', () => {
  let t: TestBed | undefined;
  useBed({ failAfterMs: 5000 }, (b) => {
    t = b;
  });

  it(
    'ATA errors reach the VM, and the same open device works again after the blackout by itself',
    { timeout: 300_000 },
    async () => {
      const s = await stream(t!, {
        chunks: 12,
        marks: [3],
        offset: 40 << 20,
        onMark: async () => {
          await t!.relay.blackout(12_000);
        },
      });
      expect(s.r.failed, s.r.log.slice(-4000)).toEqual([]);
      expect(s.errors, s.r.log.slice(-3000)).toBeGreaterThan(0);
      expect(s.acked).toBe(12 - s.errors);
      const a = await gatewayStats(t!.pair.a);
      expect(a.imports.failed).toBeGreaterThan(0);
    },
  );
});

describe.skipIf(skip)('jumbo frames over a 1500-byte routed hop', () => {
  let t: TestBed | undefined;
  useBed({ lanMtu: 9000, wanMtu: 1500, tunnelMtu: 1452 }, (b) => {
    t = b;
  });

  it('our initiator gets 17 sectors per frame from A and verifies through the fragmented path', async () => {
    const ini = new Initiator(PacketLink.open({ iface: t!.site.iface.ini, netns: t!.site.ns.ini.name }));
    try {
      const [adv] = await ini.queryConfig(2000, { major: 7, minor: 1 });
      expect(adv!.sectorCount).toBe(17);
      const c = ini.client(adv!);
      const identity = await identify(ini, c);
      const r = await verifyPattern(ini, c, { startLba: 4096, sectors: 4096, seed: 5, identity });
      expect(r.mismatches).toBe(0);
      expect(imageHoldsPattern(t!.diskImage, 4096, 4096, 5)).toBe(0);
      const a = await gatewayStats(t!.pair.a);
      const peer = a.peers[0];
      expect(peer.recordsFragmented).toBeGreaterThan(0);
      expect(peer.pathMtu).toBe(1452);
    } finally {
      ini.close();
    }
  });

  it.skipIf(liSkip)(
    'a Linux VM on the 9000-MTU link gets 17 sectors per frame (payload 8704) and verifies',
    { timeout: 240_000 },
    async () => {
      const r = await runLinuxInitiator({
        netns: t!.site.ns.ini.name,
        iface: t!.site.iface.ini,
        mtu: 9000,
        script: readFileSync(join(import.meta.dirname, '..', 'fixtures', 'li', 'gateway-check.sh'), 'utf8'),
        env: {
          LI_TARGETS: 'e7.1',
          LI_EXPECT_SECTORS: IMAGE / SECTOR_SIZE,
          LI_WRITE_OFFSET: 8 << 20,
          LI_WRITE_BYTES: 2 << 20,
        },
        timeoutS: 200,
      });
      expect(r.failed, r.log.slice(-4000)).toEqual([]);
      expect(r.data['payload.e7.1']).toBe('8704');
      const onDisk = readFileSync(t!.diskImage).subarray(8 << 20, (8 << 20) + (2 << 20));
      expect(sha(onDisk)).toBe(r.data['final.e7.1']);
    },
  );
});

describe.skipIf(skip)('a path MTU smaller than tunnel.mtu', () => {
  let t: TestBed | undefined;
  // Jumbo everywhere and tunnel.mtu 8952, but the routed path (the relay) silently drops UDP
  // payloads above 1472 bytes: a 1500-byte hop somewhere that does not say so.
  useBed({ lanMtu: 9000, wanMtu: 9000, tunnelMtu: 8952 }, async (b) => {
    t = b;
    await setFaults(b.relay, { maxSizeBytes: 1472 });
  });

  it(
    'probes find it, the datagram size is lowered, logged and counted, and jumbo I/O verifies',
    { timeout: 120_000 },
    async () => {
      const ini = new Initiator(PacketLink.open({ iface: t!.site.iface.ini, netns: t!.site.ns.ini.name }));
      try {
        const [adv] = await ini.queryConfig(2000, { major: 7, minor: 1 });
        expect(adv!.sectorCount).toBe(17);
        // Until the probes have found the path, large requests vanish and are resent. On a loaded
        // machine the probe schedule (and so the stall) stretches; the Linux driver rides out
        // 180 s (aoe_deadsecs), so this initiator waits a minute rather than its default 15 s.
        const c = ini.client(adv!, { giveUpMs: 60_000 });
        const identity = await identify(ini, c);
        const r = await verifyPattern(ini, c, { startLba: 8192, sectors: 2048, seed: 11, identity });
        expect(r.mismatches).toBe(0);
        expect(imageHoldsPattern(t!.diskImage, 8192, 2048, 11)).toBe(0);
        for (const side of [t!.pair.a, t!.pair.b]) {
          const peer = (await gatewayStats(side)).peers[0];
          expect(peer.pathMtu).toBeLessThanOrEqual(1472);
          // Lowered at once to 1280 (known to work), then searched upwards towards 1472.
          expect(peer.pathMtu).toBeGreaterThanOrEqual(1280);
          expect(peer.probes.lowered).toBeGreaterThan(0);
        }
        expect(t!.pair.a.output()).toMatch(/path MTU lowered from 8952/);
        const rs = await t!.relay.stats();
        expect(rs.a2b.oversize + rs.b2a.oversize).toBeGreaterThan(0);
      } finally {
        ini.close();
      }
    },
  );
});
