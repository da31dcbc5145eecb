/**
 * `aoegw status` and `aoegw top` against a real `aoegw run`: one gateway with two built-in exports
 * on a veth in a namespace, our initiator on the other end.
 * - status --json: after a known number of single-frame writes and reads, the export's and the
 *   initiator's counters equal the I/O this test did (exact bytes; exact counts unless the
 *   initiator retransmitted, which it reports); the table shows the export and the initiator.
 * - top in a detached 80×24 tmux pane during an I/O loop: the export and initiator rows show
 *   non-zero IOPS, `s` changes the sort, `q` ends it with status 0.
 * - No daemon: one clear message and exit 1.
 * - Service time, against what the initiator measured for the same requests (a second daemon, with
 *   an export on slow-fs whose fdatasync sleeps 50 ms and a memory export): in status --json and
 *   on /metrics, every write to the slow export took ≥ 50 ms at the target and no percentile is
 *   above the initiator's own round trip (a bucket's upper edge is at most 25 % above its values).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMac } from '../../src/aoe/mac.js';
import type { Initiator } from '../../src/initiator/initiator.js';
import { identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import type { TargetClient } from '../../src/initiator/target-client.js';
import { parsePromText, promValue } from '../../support/prom-text.js';
import { AOEGW, aoegwSync, statusJson } from '../helpers/aoegw.js';
import { sparseImage } from '../helpers/images.js';
import { type LanGateway, startLanGateway } from '../helpers/lan-gateway.js';
import { netnsSkipReason, uniqueId } from '../helpers/netns.js';
import { hasCommand, type Spawned } from '../helpers/processes.js';
import { mountSlowFs, type SlowFs, slowFsSkipReason } from '../helpers/slow-fs.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();
const tmuxSkip = hasCommand('tmux') ? undefined : 'tmux is not installed (scripts/setup.sh installs it)';

const WRITES = 40; // one sector each
const READS = 60; // two sectors each: one frame at MTU 1500

type Json = Record<string, unknown>;

const aoegw = aoegwSync;

const exportOf = (s: Record<string, Json>, target: string) =>
  (s.exports!.exports as Json[]).find((e) => e.target === target)!;

describe.skipIf(skip)('aoegw status and top', () => {
  let g: LanGateway;
  let dir: string;
  let daemon: Spawned;
  let config: string;
  let ini: Initiator;
  let client: TargetClient;
  let mac: string;

  beforeAll(async () => {
    g = await startLanGateway('st', (d) => ({
      name: 'st-gw',
      exports: [
        { target: '5.1', path: sparseImage(d, 'disk.img', 16 << 20) },
        { target: '5.2', path: 'memory:1m', readOnly: true },
      ],
    }));
    ({ dir, daemon, config, ini } = g);
    mac = formatMac(ini.link.mac);
    const [advert] = await ini.queryConfig(500, { major: 5, minor: 1 });
    client = ini.client(advert!);
    await identify(ini, client);
  });

  afterAll(() => g?.close());

  it('status --json counts exactly the I/O done', async () => {
    const before = exportOf(statusJson(config), 'e5.1');
    expect(before).toMatchObject({ reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0 });
    const retransmitsBefore = client.stats.retransmits;
    for (let i = 0; i < WRITES; i++) await writeSectors(ini, client, i, Buffer.alloc(512, i + 1));
    const buf = Buffer.alloc(1024);
    for (let i = 0; i < READS; i++) await readSectors(ini, client, i * 2, buf);
    // A retransmitted request may reach the target twice: counts are exact only without one.
    const slack = client.stats.retransmits - retransmitsBefore;

    const s = statusJson(config);
    expect(s.status).toMatchObject({
      ok: true,
      name: 'st-gw',
      pid: daemon.child.pid,
      links: { up: 1, down: 0 },
      peers: { total: 0, up: 0 },
      exports: 2,
    });
    expect(typeof s.status!.sampledAtMs).toBe('number');
    const e = exportOf(s, 'e5.1');
    expect(e).toMatchObject({ readOnly: false, errors: 0, drops: 0, pending: 0 });
    expect(e.writes).toBeGreaterThanOrEqual(WRITES);
    expect(e.writes).toBeLessThanOrEqual(WRITES + slack);
    expect(e.reads).toBeGreaterThanOrEqual(READS);
    expect(e.reads).toBeLessThanOrEqual(READS + slack);
    if (slack === 0) {
      expect(e).toMatchObject({
        reads: READS,
        writes: WRITES,
        bytesRead: READS * 1024,
        bytesWritten: WRITES * 512,
      });
    }
    const inis = e.initiators as Json[];
    expect(inis).toHaveLength(1);
    expect(inis[0]).toMatchObject({ principal: mac, peer: '', mac });
    // Every AoE request of the initiator: the writes, reads, IDENTIFY and its Query Config.
    expect(inis[0]!.requests).toBeGreaterThanOrEqual(WRITES + READS + 1);
    if (slack === 0) expect(inis[0]).toMatchObject({ bytesRead: READS * 1024, bytesWritten: WRITES * 512 });
    expect(exportOf(s, 'e5.2')).toMatchObject({ readOnly: true, reads: 0, writes: 0, initiators: [] });
    expect(s.peers).toMatchObject({ peers: [], tunnel: null });
    expect(s.links!.links).toEqual([expect.objectContaining({ name: 'lan', state: 'up' })]);

    const table = aoegw('status', '--config', config);
    expect(table.status).toBe(0);
    expect(table.stdout).toMatch(/^st-gw {2}pid \d+/);
    expect(table.stdout).toMatch(new RegExp(`e5\\.1\\s+rw\\s+${e.reads}\\s+${e.writes}`));
    expect(table.stdout).toContain(`  ${mac}`);
  });

  it('an edit with a mistake, not reloaded, does not hide the running daemon; a file that is not JSON says so', () => {
    const good = readFileSync(config, 'utf8');
    try {
      writeFileSync(config, JSON.stringify({ ...JSON.parse(good), exports: [{ target: '5.1' }], bogus: 1 }));
      expect(aoegw('config', 'check', config).status).toBe(1);
      const r = aoegw('status', '--config', config, '--json');
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).status).toMatchObject({ ok: true, name: 'st-gw', exports: 2 });
      writeFileSync(config, `${good.slice(0, -1)},`);
      const bad = aoegw('status', '--config', config);
      expect(bad.status).toBe(3);
      expect(bad.stderr).toContain(`${config}: not a JSON object`);
    } finally {
      writeFileSync(config, good);
    }
  });

  it('without a daemon: one clear message, exit 1', () => {
    const other = join(dir, 'other.json');
    writeFileSync(
      other,
      JSON.stringify({
        name: 'idle',
        stateFile: join(dir, 'idle-state.json'),
        controlSocket: join(dir, 'idle.sock'),
        links: [{ name: 'lan', iface: 'eth0' }],
      }),
    );
    for (const cmd of ['status', 'top']) {
      const r = aoegw(cmd, '--config', other);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/no daemon running for .*other\.json/);
    }
  });

  it.skipIf(tmuxSkip)('top in an 80×24 tmux pane: live rows during I/O, s sorts, q quits', async () => {
    const server = `aoegw-top-${uniqueId()}`;
    const tmux = (...args: string[]) => spawnSync('tmux', ['-L', server, ...args], { encoding: 'utf8' });
    const rcFile = join(dir, 'top.rc');
    let running = true;
    const loop = (async () => {
      const buf = Buffer.alloc(1024);
      for (let i = 0; running; i = (i + 1) % 1000) await readSectors(ini, client, i * 2, buf);
    })();
    try {
      const cmd = `'${process.execPath}' '${AOEGW}' top --config '${config}'; echo $? > '${rcFile}'`;
      const started = tmux('new-session', '-d', '-s', 'top', '-x', '80', '-y', '24', cmd);
      expect(started.status, started.stderr).toBe(0);
      // The first frame has no rates; two more refreshes (1 s each) give two.
      await sleep(3500);
      const screen = tmux('capture-pane', '-p', '-t', 'top').stdout;
      const lines = screen.split('\n');
      expect(lines.every((l) => l.length <= 80)).toBe(true);
      expect(lines[0]).toMatch(/^st-gw {2}pid \d+ .*sort: iops/);
      const row = lines.find((l) => l.startsWith('e5.1 rw'));
      const iniRow = lines.find((l) => l.startsWith(`  ${mac}`));
      expect(row, screen).toBeDefined();
      expect(iniRow, screen).toBeDefined();
      // IOPS, READ/s of the export; IOPS and RD MB/s of the initiator: a loop of 1 KiB reads runs.
      const cells = row!.trim().split(/\s+/);
      expect(Number(cells[2])).toBeGreaterThan(10);
      expect(Number(cells[3])).toBeGreaterThan(10);
      const iniCells = iniRow!.trim().split(/\s+/);
      expect(Number(iniCells[1])).toBeGreaterThan(10);
      expect(Number(iniCells[4])).toBeGreaterThan(0);
      // The p99 service time of the interval (ms), for the export and its initiator.
      expect(lines[2]).toContain('P99 ms');
      expect(Number(cells[7])).toBeGreaterThan(0);
      expect(Number(cells[7])).toBeLessThan(1000);
      expect(Number(iniCells[6])).toBeGreaterThan(0);
      expect(lines.find((l) => l.startsWith('e5.2 ro'))).toBeDefined();

      tmux('send-keys', '-t', 'top', 's');
      await sleep(300);
      expect(tmux('capture-pane', '-p', '-t', 'top').stdout).toMatch(/sort: mbps/);
      tmux('send-keys', '-t', 'top', 'q');
      expect(await waitFor(() => existsSync(rcFile), 5000)).toBe(true);
      expect(readFileSync(rcFile, 'utf8').trim()).toBe('0');
    } finally {
      running = false;
      await loop;
      // Our own tmux server (its own socket), whatever state it is in.
      tmux('kill-server');
    }
  });
});

/** The value at or below which fraction q of `ms` falls (the same rank rule as the target's). */
function quantile(ms: readonly number[], q: number): number {
  const sorted = [...ms].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
}

interface Latency {
  count: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  buckets: [number, number][];
}

describe.skipIf(skip ?? slowFsSkipReason())("service time against the initiator's round trip", () => {
  const SLOW_WRITES = 12;
  const FAST_READS = 300;
  const FSYNC_MS = 50;
  let g: LanGateway;
  let fs: SlowFs;
  let daemon: Spawned;
  let config: string;
  let ini: Initiator;

  beforeAll(async () => {
    fs = await mountSlowFs({ fsyncDelayMs: FSYNC_MS });
    g = await startLanGateway('sl', () => ({
      name: 'lat-gw',
      exports: [
        { target: '6.1', path: sparseImage(fs.dir, 'slow.img', 16 << 20), durability: 'sync' },
        { target: '6.2', path: 'memory:1m' },
      ],
      metrics: { listen: '127.0.0.1:0', initiatorLatency: true },
    }));
    ({ daemon, config, ini } = g);
  });

  afterAll(async () => {
    await g?.close();
    await fs?.unmount();
  });

  it('slow-fs writes take ≥ 50 ms at the target, and nothing takes longer there than at the initiator', async () => {
    const [slowAd] = await ini.queryConfig(500, { major: 6, minor: 1 });
    const [fastAd] = await ini.queryConfig(500, { major: 6, minor: 2 });
    // No retransmission of a write waiting for its fsync: each would be another commit group,
    // another 50 ms, and the initiator would wait for the reply to its last copy.
    const slow = ini.client(slowAd!, { initialRtoMs: 2000, minRtoMs: 2000 });
    const fast = ini.client(fastAd!);
    await identify(ini, slow);
    await identify(ini, fast);
    const timed = async (io: () => Promise<unknown>) => {
      const t0 = performance.now();
      await io();
      return performance.now() - t0;
    };
    const writeMs: number[] = [];
    for (let i = 0; i < SLOW_WRITES; i++)
      writeMs.push(await timed(() => writeSectors(ini, slow, i, Buffer.alloc(512, i + 1))));
    const readMs: number[] = [];
    const buf = Buffer.alloc(1024);
    for (let i = 0; i < FAST_READS; i++) readMs.push(await timed(() => readSectors(ini, fast, i * 2, buf)));

    const views = statusJson(config);
    const lat = (t: string) => exportOf(views, t).latency as Latency;
    const s = lat('e6.1');
    const f = lat('e6.2');
    const us = (ms: number) => ms * 1000;
    const report = (name: string, l: Latency, ms: number[]) =>
      `${name}: target p50 ${l.p50Us} p99 ${l.p99Us} max ${l.maxUs} mean ${l.meanUs} µs; initiator p50 ${us(quantile(ms, 0.5)).toFixed(0)} p99 ${us(quantile(ms, 0.99)).toFixed(0)} max ${us(Math.max(...ms)).toFixed(0)} mean ${us(ms.reduce((a, b) => a + b, 0) / ms.length).toFixed(0)} µs`;
    console.log(
      `[latency] ${report('slow-fs writes', s, writeMs)}\n[latency] ${report('memory reads', f, readMs)}`,
    );

    // Every request answered was timed, once (a retransmitted one reaches the target twice).
    expect(s.count).toBeGreaterThanOrEqual(SLOW_WRITES);
    expect(s.count).toBeLessThanOrEqual(SLOW_WRITES + slow.stats.retransmits);
    expect(f.count).toBeGreaterThanOrEqual(FAST_READS);
    expect(f.count).toBeLessThanOrEqual(FAST_READS + fast.stats.retransmits);
    // Every write waited for its 50 ms fdatasync: no sample below the bucket that holds 50 ms, and
    // the exact mean is above it.
    expect(s.buckets[0]![0]).toBeGreaterThan(us(FSYNC_MS));
    expect(s.meanUs).toBeGreaterThanOrEqual(us(FSYNC_MS));
    // The target's part is inside the initiator's round trip, request by request; a percentile is
    // its bucket's upper edge, at most 25 % above.
    for (const [l, ms] of [
      [s, writeMs],
      [f, readMs],
    ] as const) {
      if (slow.stats.retransmits + fast.stats.retransmits === 0)
        expect(l.meanUs).toBeLessThanOrEqual(us(ms.reduce((a, b) => a + b, 0) / ms.length));
      expect(l.p50Us).toBeLessThanOrEqual(1.25 * us(quantile(ms, 0.5)) + 1);
      expect(l.p99Us).toBeLessThanOrEqual(1.25 * us(quantile(ms, 0.99)) + 1);
      expect(l.maxUs).toBeLessThanOrEqual(1.25 * us(Math.max(...ms)) + 1);
    }
    // Memory reads are served in this daemon's own batch: far below the 50 ms writes.
    expect(f.p50Us).toBeLessThan(us(FSYNC_MS) / 5);
    // The initiator's row carries its own, the same requests here (one initiator).
    const inis = exportOf(views, 'e6.1').initiators as Json[];
    expect((inis[0]!.latency as Latency).count).toBe(s.count);

    // Prometheus: the same counts as a histogram; nothing of the slow export at or below 32.8 ms.
    const port = /metrics: http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(daemon.output())?.[1];
    expect(port, daemon.output()).toBeDefined();
    const p = parsePromText(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    const bucket = (le: string) =>
      promValue(p, 'aoegw_export_service_seconds_bucket', { export: 'e6.1', le });
    expect(promValue(p, 'aoegw_export_service_seconds_count', { export: 'e6.1' })).toBe(s.count);
    expect(bucket('0.032768')).toBe(0);
    expect(bucket('+Inf')).toBe(s.count);
    expect(promValue(p, 'aoegw_export_service_seconds_sum', { export: 'e6.1' })).toBeGreaterThanOrEqual(
      (s.count * FSYNC_MS) / 1000,
    );
    expect(
      promValue(p, 'aoegw_initiator_service_seconds_count', {
        export: 'e6.2',
        initiator: formatMac(ini.link.mac),
      }),
    ).toBe(f.count);
  });
});
