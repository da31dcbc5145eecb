/**
 * `aoegw status` and `aoegw top` against a real `aoegw run`: one gateway with two built-in exports
 * on a veth in a namespace, our initiator on the other end.
 * - status --json: after a known number of single-frame writes and reads, the export's and the
 *   initiator's counters equal the I/O this test did (exact bytes; exact counts unless the
 *   initiator retransmitted, which it reports); the table shows the export and the initiator.
 * - top in a detached 80×24 tmux pane during an I/O loop: the export and initiator rows show
 *   non-zero IOPS, `s` changes the sort, `q` ends it with status 0.
 * - No daemon: one clear message and exit 1.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMac } from '../../src/aoe/mac.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import type { TargetClient } from '../../src/initiator/target-client.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { AOEGW } from '../helpers/aoegw.js';
import { sparseImage } from '../helpers/images.js';
import { Netns, netnsSkipReason, uniqueId, vethPair } from '../helpers/netns.js';
import { hasCommand, type Spawned, spawnTracked } from '../helpers/processes.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();
const tmuxSkip = hasCommand('tmux') ? undefined : 'tmux is not installed (scripts/setup.sh installs it)';

const WRITES = 40; // one sector each
const READS = 60; // two sectors each: one frame at MTU 1500

type Json = Record<string, unknown>;

function aoegw(...args: string[]) {
  return spawnSync(process.execPath, [AOEGW, ...args], { encoding: 'utf8', timeout: 30_000 });
}

function statusJson(config: string): Record<string, Json> {
  const r = aoegw('status', '--config', config, '--json');
  if (r.status !== 0) throw new Error(`aoegw status failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, Json>;
}

const exportOf = (s: Record<string, Json>, target: string) =>
  (s.exports!.exports as Json[]).find((e) => e.target === target)!;

describe.skipIf(skip)('aoegw status and top', () => {
  let dir: string;
  let nsI: Netns;
  let nsT: Netns;
  let daemon: Spawned;
  let config: string;
  let ini: Initiator;
  let client: TargetClient;
  let mac: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-status-'));
    nsI = new Netns('sti');
    nsT = new Netns('stt');
    const v = vethPair(nsI, nsT, 1500);
    config = join(dir, 'gw.json');
    writeFileSync(
      config,
      JSON.stringify({
        name: 'st-gw',
        stateFile: join(dir, 'state.json'),
        links: [{ name: 'lan', iface: v.b, netns: nsT.name }],
        exports: [
          { target: '5.1', path: sparseImage(dir, 'disk.img', 16 << 20) },
          { target: '5.2', path: 'memory:1m', readOnly: true },
        ],
      }),
    );
    daemon = spawnTracked(process.execPath, [AOEGW, 'run', '--config', config]);
    const ready = await waitFor(
      () => /ready: /.test(daemon.output()) || daemon.child.exitCode !== null,
      15_000,
    );
    if (!ready || daemon.child.exitCode !== null)
      throw new Error(`aoegw run did not start: ${daemon.output()}`);
    ini = new Initiator(PacketLink.open({ iface: v.a, netns: nsI.name }));
    mac = formatMac(ini.link.mac);
    const [advert] = await ini.queryConfig(500, { major: 5, minor: 1 });
    client = ini.client(advert!);
    await identify(ini, client);
  });

  afterAll(async () => {
    ini?.close();
    await daemon?.stop();
    nsI?.delete();
    nsT?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

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
