/**
 * `aoegw status --json` on a real two-site pair: B exports `disk` (1.1) to A, which presents it as
 * 7.1 on its LAN; our initiator there does a known number of writes and reads through the tunnel.
 * B's export counts them under the principal `a/MAC` (the peer's name, the initiator's MAC); both
 * sides show the peer's session, handshake age, endpoint and traffic; A shows its import usable.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMac } from '../../src/aoe/mac.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { aoegwSync, statusJson } from '../../support/aoegw.js';
import { type GatewayPair, gatewayRunSkipReason, startGatewayPair } from '../../support/gateway-pair.js';
import { sparseImage } from '../../support/images.js';
import { netnsSkipReason } from '../../support/netns.js';
import { createTwoSite, type TwoSite } from '../../support/two-site.js';
import { waitFor } from '../../support/wait.js';

const skip = netnsSkipReason() ?? gatewayRunSkipReason();
const WRITES = 20; // one sector each
const READS = 30; // two sectors each: one frame at MTU 1500

type Json = Record<string, unknown>;

describe.skipIf(skip)('aoegw status across a gateway pair', () => {
  let dir: string;
  let site: TwoSite;
  let pair: GatewayPair;
  let ini: Initiator;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-status-pair-'));
    site = createTwoSite({ lanMtu: 1500 });
    pair = await startGatewayPair(site, {
      dir,
      a: { imports: [{ remote: 'disk', local: '7.1', links: ['lan'] }] },
      b: {
        exports: [{ target: '1.1', path: sparseImage(dir, 'disk.img', 16 << 20), name: 'disk' }],
        allow: [{ targets: ['disk'], access: 'rw' }],
      },
    });
    const usable = await waitFor(() => /import e7\.1 .*: usable/.test(pair.a.output()), 15_000);
    if (!usable) throw new Error(`import never usable:\n${pair.a.output()}\n${pair.b.output()}`);
    ini = new Initiator(PacketLink.open({ iface: site.iface.ini, netns: site.ns.ini.name }));
  });

  afterAll(async () => {
    ini?.close();
    await pair?.stop();
    site?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('per principal (peer/MAC) counts on the export side, sessions and imports on both', async () => {
    const [advert] = await ini.queryConfig(1000, { major: 7, minor: 1 });
    const c = ini.client(advert!);
    await identify(ini, c);
    for (let i = 0; i < WRITES; i++) await writeSectors(ini, c, i, Buffer.alloc(512, i + 1));
    const buf = Buffer.alloc(1024);
    for (let i = 0; i < READS; i++) await readSectors(ini, c, i * 2, buf);
    const mac = formatMac(ini.link.mac);

    const a = statusJson(pair.configA);
    const b = statusJson(pair.configB);
    // A request resent by the initiator or by A's import side may reach B twice.
    const importCounters = (a.imports!.imports as { counters: Record<string, number> }).counters;
    const slack = c.stats.retransmits + importCounters.retransmits! + importCounters.reissued!;

    expect(b.status).toMatchObject({ peers: { total: 1, up: 1 }, exports: 1 });
    const e = (b.exports!.exports as Json[]).find((x) => x.target === 'e1.1')!;
    expect(e).toMatchObject({ errors: 0, drops: 0, pending: 0 });
    expect(e.writes).toBeGreaterThanOrEqual(WRITES);
    expect(e.writes).toBeLessThanOrEqual(WRITES + slack);
    expect(e.reads).toBeGreaterThanOrEqual(READS);
    expect(e.reads).toBeLessThanOrEqual(READS + slack);
    const principals = e.initiators as Json[];
    expect(principals.map((p) => p.principal)).toEqual([`a/${mac}`]);
    expect(principals[0]).toMatchObject({ peer: 'a', mac });
    if (slack === 0) {
      expect(e).toMatchObject({ reads: READS, writes: WRITES });
      expect(principals[0]).toMatchObject({ bytesRead: READS * 1024, bytesWritten: WRITES * 512 });
    }

    for (const [side, other] of [
      [b, 'a'],
      [a, 'b'],
    ] as const) {
      const peers = side.peers!.peers as Json[];
      expect(peers).toHaveLength(1);
      expect(peers[0]).toMatchObject({ name: other, session: true, reachable: true });
      expect(peers[0]!.handshakeAgeMs).toBeGreaterThanOrEqual(0);
      expect(peers[0]!.handshakeAgeMs).toBeLessThan(180_000);
      expect(peers[0]!.endpoint).toMatch(/^[\d.]+:\d+$/);
      // At least every request (one way) and reply (the other) of the I/O above.
      expect(peers[0]!.rxRecords).toBeGreaterThanOrEqual(WRITES + READS);
      expect(peers[0]!.txRecords).toBeGreaterThanOrEqual(WRITES + READS);
      // A receives the data read, B the data written (sealed: more bytes than the data).
      expect(peers[0]!.rxBytes).toBeGreaterThan(other === 'b' ? READS * 1024 : WRITES * 512);
      const rx = (side.peers!.tunnel as { rx: Record<string, number> }).rx;
      expect(rx.data).toBeGreaterThan(0);
      expect(rx.bad_auth).toBe(0);
      expect(rx.replay).toBe(0);
    }
    expect(a.status).toMatchObject({
      peers: { total: 1, up: 1 },
      imports: { total: 1, usable: 1 },
    });
    expect((a.imports!.imports as Json).list).toEqual([
      expect.objectContaining({ local: 'e7.1', peer: 'b', remote: 'disk', usable: true, pending: 0 }),
    ]);

    const table = aoegwSync('status', '--config', pair.configB);
    expect(table.status).toBe(0);
    expect(table.stdout).toContain(`  a/${mac}`);
    expect(table.stdout).toMatch(/\na\s+up\s+\d+s ago\s+[\d.]+:\d+/);
  });
});
