/**
 * The daemon's logs (docs/operations.md, "Logs"), from a real `aoegw serve` in a namespace:
 * - stderr not a terminal: one JSON object per line (level, time, msg, component);
 * - garbage AoE frames sent at it: one warning per interval saying how many, never one per frame;
 * - --log-level warn: only the warnings;
 * - a log that cannot be written does not stop the daemon;
 * - on a terminal (a pty from script(1)): the human `aoegw: …` lines.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PacketLink } from '../../src/io/packet-link.js';
import { AOEGW, startServe } from '../helpers/aoegw.js';
import { Netns, netnsSkipReason, type VethPair, vethPair } from '../helpers/netns.js';
import { hasCommand, type Spawned, spawnTracked } from '../helpers/processes.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();

interface Line {
  level: string;
  time: string;
  msg: string;
  [k: string]: unknown;
}

/** Every line of `out` as JSON (throws on one that is not). */
function jsonLines(out: string): Line[] {
  return out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Line;
      } catch {
        throw new Error(`not a JSON line: ${l}\n${out}`);
      }
    });
}

/** AoE-typed frames too short for an AoE header: malformed, counted, never answered. */
function garbage(dst: Buffer, src: Buffer): Buffer {
  const f = Buffer.alloc(16);
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(0x88a2, 12);
  f[14] = 0x10;
  return f;
}

describe.skipIf(skip)('daemon logs', () => {
  let dir: string;
  let nsI: Netns;
  let nsT: Netns;
  let v: VethPair;
  const daemons: Spawned[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-logs-'));
    nsI = new Netns('lgi');
    nsT = new Netns('lgt');
    v = vethPair(nsI, nsT);
  });
  afterAll(async () => {
    for (const d of daemons) await d.stop('SIGKILL');
    nsI?.delete();
    nsT?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const serveArgs = (target: string, state: string) => [
    '--iface',
    v.b,
    '--netns',
    nsT.name,
    '--export',
    `${target}=memory:1m`,
    '--state',
    join(dir, state),
  ];

  it('JSON lines off a terminal; garbage frames: one warning per interval with the count; --log-level warn', async () => {
    const env = { ...process.env, AOEGW_LOG_FORMAT: '', AOEGW_LOG_LEVEL: '' };
    const d = await startServe(serveArgs('1.1', 'a.json'));
    daemons.push(d);
    const quiet = spawnTracked(
      process.execPath,
      [AOEGW, 'serve', ...serveArgs('2.1', 'b.json'), '--log-level', 'warn'],
      {
        env,
      },
    );
    daemons.push(quiet);
    const ready = jsonLines(d.output()).find((l) => l.msg.startsWith('ready: '));
    expect(ready).toMatchObject({ level: 'info', component: 'daemon', pid: d.child.pid });
    expect(Number.isNaN(Date.parse(ready!.time))).toBe(false);
    expect(jsonLines(d.output()).find((l) => l.msg.startsWith(`link ${v.b}: serving`))).toMatchObject({
      component: 'target',
      link: v.b,
    });

    const mac = Buffer.from(
      nsT
        .ip('-j', 'link', 'show', v.b)
        .match(/"address":"([0-9a-f:]+)"/)![1]!
        .split(':')
        .map((h) => Number.parseInt(h, 16)),
    );
    const attacker = PacketLink.open({ iface: v.a, netns: nsI.name });
    const warnings = (out: string) => jsonLines(out).filter((l) => l.component === 'input');
    try {
      // Two bursts, each well inside one 10 s interval: 50 frames, then 30.
      const f = garbage(mac, attacker.mac);
      const burst = async (n: number) => {
        for (let i = 0; i < n; i += 10) {
          for (let j = 0; j < 10; j++) attacker.send(f);
          attacker.flush();
          await sleep(20);
        }
      };
      await burst(50);
      expect(await waitFor(() => warnings(d.output()).length >= 1, 15_000), d.output()).toBe(true);
      await burst(30);
      expect(await waitFor(() => warnings(d.output()).length >= 2, 15_000), d.output()).toBe(true);
    } finally {
      attacker.close();
    }
    const w = warnings(d.output());
    expect(w).toHaveLength(2);
    expect(w[0]).toMatchObject({
      level: 'warn',
      reason: 'malformed',
      link: v.b,
      count: 50,
      msg: `dropped 50 malformed AoE frames on link ${v.b} in the last 10 s`,
    });
    expect(w[1]).toMatchObject({ level: 'warn', count: 30 });
    // Nothing per frame: 80 frames, two lines in all that mention them.
    expect(jsonLines(d.output()).filter((l) => /malformed/.test(l.msg))).toHaveLength(2);

    // The quiet daemon saw the second burst at least, and logged nothing below warn.
    expect(await waitFor(() => warnings(quiet.output()).length >= 1, 12_000), quiet.output()).toBe(true);
    await quiet.stop('SIGTERM');
    const q = jsonLines(quiet.output());
    expect(q.length).toBeGreaterThanOrEqual(1);
    expect(q.every((l) => l.level === 'warn')).toBe(true);
    expect(quiet.output()).not.toMatch(/ready: |stopped/);
  }, 60_000);

  it('a log that cannot be written (stderr on /dev/full: ENOSPC) does not stop the daemon', async () => {
    const full = openSync('/dev/full', 'w');
    const child = spawn(process.execPath, [AOEGW, 'serve', ...serveArgs('4.1', 'd.json')], {
      stdio: ['ignore', 'ignore', full],
    });
    closeSync(full);
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    try {
      // Nothing to read: it serves once its packet socket is open (its signal handlers follow in
      // the same tick).
      const hasSocket = () => {
        try {
          return readdirSync(`/proc/${child.pid}/fd`).some((f) => {
            try {
              return readlinkSync(`/proc/${child.pid}/fd/${f}`).startsWith('socket:');
            } catch {
              return false;
            }
          });
        } catch {
          return false;
        }
      };
      expect(await waitFor(() => hasSocket() || child.exitCode !== null, 10_000)).toBe(true);
      await sleep(300);
      expect(child.exitCode).toBeNull();
      // Every line it logged failed (ready, the stopping lines): it still stops cleanly.
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  const noScript = hasCommand('script') ? undefined : 'script(1) is not installed';
  it.skipIf(noScript)('on a terminal: the human lines', () => {
    const cmd = [
      'timeout',
      '--preserve-status',
      '-s',
      'INT',
      '3',
      process.execPath,
      AOEGW,
      'serve',
      ...serveArgs('3.1', 'c.json'),
    ].join(' ');
    const env = { ...process.env, AOEGW_LOG_FORMAT: '', AOEGW_LOG_LEVEL: '' };
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env, timeout: 20_000 });
    const out = r.stdout.replace(/\r/g, '');
    expect(r.status, out + r.stderr).toBe(0);
    expect(out).toMatch(/^aoegw: ready: 1 exports on 1 links \(pid \d+\)$/m);
    expect(out).toMatch(/^aoegw: SIGINT: stopping, completing writes$/m);
    expect(out).toMatch(/^aoegw: stopped$/m);
    expect(out).not.toContain('{"level"');
  });
});
