/**
 * Prometheus metrics of `aoegw run` on a real two-site pair: B exports `disk` (1.1) to A, which
 * presents it as 7.1; B serves /metrics on loopback (the default), A on its WAN address (logged
 * with a warning). Our initiator does a few single-sector writes and reads through the tunnel;
 * each daemon's /metrics, scraped from inside its namespace and parsed as text, must show at least
 * that I/O on every side it crossed, and the handshake. A reload that moves metrics is refused.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECTOR_SIZE } from '../../src/aoe/constants.js';
import { formatMac } from '../../src/aoe/mac.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { type GatewayPair, gatewayRunSkipReason, startGatewayPair } from '../../support/gateway-pair.js';
import { sparseImage } from '../../support/images.js';
import { netnsSkipReason } from '../../support/netns.js';
import { type PromScrape, parsePromText, promSum, promValue } from '../../support/prom-text.js';
import { createTwoSite, type TwoSite } from '../../support/two-site.js';
import { waitFor } from '../../support/wait.js';

const skip = netnsSkipReason() ?? gatewayRunSkipReason();
const METRICS_PORT = 9588;
const WRITES = 12;
const READS = 6;

/** GET `url` from inside namespace `ns` (the daemons' addresses are reachable only there). */
function httpGet(ns: string, url: string): { status: number; type: string; body: string } {
  const script =
    'fetch(process.argv[1]).then(async (r) => process.stdout.write(JSON.stringify(' +
    "{ status: r.status, type: r.headers.get('content-type'), body: await r.text() })))" +
    '.catch((e) => { process.stderr.write(String(e)); process.exit(1); })';
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script, url], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (r.status !== 0) throw new Error(`GET ${url} in ${ns}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe.skipIf(skip)('gateway metrics (Prometheus)', () => {
  let dir = '';
  let site: TwoSite | undefined;
  let pair: GatewayPair | undefined;
  let ini: Initiator | undefined;
  const scrapeB = () =>
    parsePromText(httpGet(site!.ns.gwB.name, `http://127.0.0.1:${METRICS_PORT}/metrics`).body);
  const scrapeA = () =>
    parsePromText(httpGet(site!.ns.gwA.name, `http://${site!.ip.gwAWan}:${METRICS_PORT}/metrics`).body);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-metrics-'));
    site = createTwoSite({ lanMtu: 1500 });
    pair = await startGatewayPair(site, {
      dir,
      a: {
        imports: [{ remote: 'disk', local: '7.1', links: ['lan'] }],
        extra: { metrics: { listen: `${site.ip.gwAWan}:${METRICS_PORT}` } },
      },
      b: {
        exports: [{ target: '1.1', path: sparseImage(dir, 'disk.img', 8 << 20), name: 'disk' }],
        allow: [{ targets: ['disk'], access: 'rw' }],
        extra: { metrics: {} },
      },
    });
    const a = pair.a;
    if (!(await waitFor(() => /import e7\.1 .*: usable/.test(a.output()), 15_000)))
      throw new Error(`import never became usable:\n${a.output()}\n${pair.b.output()}`);
    ini = new Initiator(PacketLink.open({ iface: site.iface.ini, netns: site.ns.ini.name }));
  });

  afterAll(async () => {
    ini?.close();
    await pair?.stop();
    site?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('logs where it serves, and warns when that is not loopback', () => {
    expect(pair!.b.output()).toContain(`metrics: http://127.0.0.1:${METRICS_PORT}/metrics`);
    expect(pair!.b.output()).not.toMatch(/metrics: .*not a loopback address/);
    expect(pair!.a.output()).toContain(`metrics: ${site!.ip.gwAWan} is not a loopback address`);
  });

  it(
    'counts the I/O the initiator did on every side it crossed, and the handshake',
    { timeout: 60_000 },
    async () => {
      const b0 = scrapeB();
      const a0 = scrapeA();
      const adverts = await ini!.queryConfig(1000, { major: 7, minor: 1 });
      expect(adverts.length).toBeGreaterThan(0);
      const c = ini!.client(adverts[0]!, { giveUpMs: 15_000 });
      await identify(ini!, c);
      // One sector each: one ATA command each, whatever the path's frame size.
      for (let i = 0; i < WRITES; i++) await writeSectors(ini!, c, 100 + i, Buffer.alloc(SECTOR_SIZE, i + 1));
      const back = Buffer.alloc(SECTOR_SIZE);
      for (let i = 0; i < READS; i++) {
        await readSectors(ini!, c, 100 + i, back);
        expect(back[0]).toBe(i + 1);
      }
      const b1 = scrapeB();
      const a1 = scrapeA();
      const delta = (s0: PromScrape, s1: PromScrape, name: string, labels: Record<string, string> = {}) =>
        promSum(s1, name, labels) - promSum(s0, name, labels);
      const disk = { export: 'e1.1' };

      // B: the built-in export, its initiator (behind peer a), the export side, the tunnel.
      expect(delta(b0, b1, 'aoegw_export_writes_total', disk)).toBeGreaterThanOrEqual(WRITES);
      expect(delta(b0, b1, 'aoegw_export_written_bytes_total', disk)).toBeGreaterThanOrEqual(
        WRITES * SECTOR_SIZE,
      );
      expect(delta(b0, b1, 'aoegw_export_reads_total', disk)).toBeGreaterThanOrEqual(READS);
      expect(delta(b0, b1, 'aoegw_export_read_bytes_total', disk)).toBeGreaterThanOrEqual(
        READS * SECTOR_SIZE,
      );
      expect(delta(b0, b1, 'aoegw_initiator_requests_total', disk)).toBeGreaterThanOrEqual(WRITES + READS);
      // The initiator is behind peer a: named by it.
      const initiators = b1.samples.filter((x) => x.name === 'aoegw_initiator_requests_total');
      expect(initiators.map((x) => x.labels.initiator)).toEqual([`a/${formatMac(ini!.link.mac)}`]);
      expect(delta(b0, b1, 'aoegw_export_side_requests_total')).toBeGreaterThanOrEqual(WRITES + READS);
      expect(promValue(b1, 'aoegw_export_pending', disk)).toBe(0);
      expect(promValue(b1, 'aoegw_export_side_in_flight')).toBe(0);
      expect(delta(b0, b1, 'aoegw_tunnel_rx_datagrams_total', { outcome: 'data' })).toBeGreaterThanOrEqual(
        WRITES + READS,
      );
      expect(promValue(b1, 'aoegw_tunnel_handshakes_total', { result: 'completed' })).toBeGreaterThanOrEqual(
        1,
      );
      expect(promValue(b1, 'aoegw_peer_up', { peer: 'a' })).toBe(1);
      expect(promValue(b1, 'aoegw_peer_handshake_age_seconds', { peer: 'a' })).toBeGreaterThanOrEqual(0);
      expect(delta(b0, b1, 'aoegw_peer_bytes_total', { peer: 'a', direction: 'rx' })).toBeGreaterThanOrEqual(
        WRITES * SECTOR_SIZE,
      );
      // Nothing was rejected on this clean path.
      for (const outcome of ['replay', 'bad_auth', 'bad_mac1', 'unknown_peer', 'stale_timestamp'])
        expect(promValue(b1, 'aoegw_tunnel_rx_datagrams_total', { outcome }), outcome).toBe(0);

      // A: the import side relayed the requests and delivered the replies; nothing pending now.
      expect(delta(a0, a1, 'aoegw_import_relayed_total')).toBeGreaterThanOrEqual(WRITES + READS);
      expect(delta(a0, a1, 'aoegw_import_replies_total')).toBeGreaterThanOrEqual(WRITES + READS);
      expect(promValue(a1, 'aoegw_import_pending')).toBe(0);
      expect(promValue(a1, 'aoegw_import_usable', { import: 'e7.1', peer: 'b' })).toBe(1);
      expect(promValue(a1, 'aoegw_tunnel_handshakes_total', { result: 'completed' })).toBeGreaterThanOrEqual(
        1,
      );
      expect(promValue(a1, 'aoegw_peer_up', { peer: 'b' })).toBe(1);
      expect(
        delta(a0, a1, 'aoegw_link_frames_total', { link: 'lan', direction: 'rx' }),
      ).toBeGreaterThanOrEqual(WRITES + READS);
      // A gateway with a tunnel serves invites: no enrollment yet.
      expect(promValue(a1, 'aoegw_enrollment_invites_pending')).toBe(0);
      expect(promValue(a1, 'aoegw_reloads_total', { result: 'applied' })).toBe(0);
    },
  );

  it('a reload that moves metrics is refused (restart to change metrics) and counted', async () => {
    const b = pair!.b;
    const c = JSON.parse(readFileSync(pair!.configB, 'utf8')) as Record<string, unknown>;
    c.metrics = { listen: `127.0.0.1:${METRICS_PORT + 1}` };
    writeFileSync(pair!.configB, `${JSON.stringify(c, null, 2)}\n`);
    b.child.kill('SIGHUP');
    expect(await waitFor(() => /restart to change metrics/.test(b.output()), 5000), b.output()).toBe(true);
    const s = scrapeB();
    expect(promValue(s, 'aoegw_reloads_total', { result: 'refused' })).toBe(1);
    expect(promValue(s, 'aoegw_reloads_total', { result: 'applied' })).toBe(0);
  });

  it('answers /metrics only', () => {
    const ns = site!.ns.gwB.name;
    const ok = httpGet(ns, `http://127.0.0.1:${METRICS_PORT}/metrics`);
    expect(ok.status).toBe(200);
    expect(ok.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(httpGet(ns, `http://127.0.0.1:${METRICS_PORT}/`).status).toBe(404);
  });
});
