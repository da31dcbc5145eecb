/**
 * A log reader that stays connected but stops reading (docs/operations.md, "Logs"; finding M2):
 * `aoegw serve` with 1000 exports logs a line for each at start, far more than its stderr pipe
 * holds. The pipe is a shell's pipe(2) into a reader that stopped itself (SIGSTOP) before reading:
 * - the daemon still starts and answers AoE while the pipe is full;
 * - after SIGTERM it waits for a slow reader, which then gets every line in order, the last ones
 *   (the stop) included;
 * - with a reader that never reads it exits once its 2 s flush time is over.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Initiator } from '../../src/initiator/initiator.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { AOEGW } from '../helpers/aoegw.js';
import { Netns, netnsSkipReason, type VethPair, vethPair } from '../helpers/netns.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();
const EXPORTS = 1000;
/** shelf.slot of export i: 1.0 … 4.249. */
const target = (i: number) => ({ major: 1 + Math.floor(i / 250), minor: i % 250 });
const EXIT_FLUSH_MS = 2000;

/** /proc/PID/stat's state letter, or undefined once the process is gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0];
  } catch {
    return undefined;
  }
}
const gone = (pid: number) => {
  const s = procState(pid);
  return s === undefined || s === 'Z';
};

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function descendants(pid: number): number[] {
  return childrenOf(pid).flatMap((c) => [c, ...descendants(c)]);
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

interface Stalled {
  shell: ChildProcess;
  daemonPid: number;
  readerPid: number;
  /** What the reader copied so far. */
  output: () => string;
  /** The daemon's exit status, once it has exited. */
  exitCode: () => number | undefined;
  shellExited: Promise<void>;
}

describe.skipIf(skip)('a stalled log reader', () => {
  let dir: string;
  let nsI: Netns;
  let nsT: Netns;
  let v: VethPair;
  const pids: number[] = [];
  let runs = 0;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-log-stall-'));
    nsI = new Netns('lsi');
    nsT = new Netns('lst');
    v = vethPair(nsI, nsT);
    // Stops itself before reading anything; SIGCONT lets it copy the pipe to $1.
    writeFileSync(join(dir, 'reader.sh'), 'kill -STOP $$\nexec cat > "$1"\n');
  });
  afterEach(() => {
    // By PID, the reader first (continued, so it can die), then the daemon and the shells.
    for (const pid of pids.splice(0).reverse()) {
      if (gone(pid)) continue;
      try {
        process.kill(pid, 'SIGKILL');
        process.kill(pid, 'SIGCONT');
      } catch {}
    }
  });
  afterAll(() => {
    nsI?.delete();
    nsT?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** `aoegw serve` with EXPORTS exports, its stderr a pipe into a stopped reader. */
  async function startStalled(): Promise<Stalled> {
    const run = runs++;
    const out = join(dir, `out-${run}`);
    const code = join(dir, `code-${run}`);
    const exports = Array.from({ length: EXPORTS }, (_, i) => {
      const t = target(i);
      return ['--export', `${t.major}.${t.minor}=memory:4k`];
    }).flat();
    const args = ['--iface', v.b, '--netns', nsT.name, '--state', join(dir, `state-${run}.json`), ...exports];
    const shell = spawn(
      'sh',
      [
        '-c',
        '{ "$NODE" "$AOEGW" serve "$@" 2>&1 >/dev/null; echo $? > "$CODE"; } | sh "$READER" "$OUT"',
        'sh',
        ...args,
      ],
      {
        stdio: 'ignore',
        env: {
          ...process.env,
          AOEGW_LOG_FORMAT: 'json',
          AOEGW_LOG_LEVEL: 'info',
          NODE: process.execPath,
          AOEGW,
          READER: join(dir, 'reader.sh'),
          OUT: out,
          CODE: code,
        },
      },
    );
    pids.push(shell.pid!);
    const shellExited = new Promise<void>((r) => shell.once('exit', () => r()));
    let daemonPid = 0;
    let readerPid = 0;
    const found = await waitFor(() => {
      for (const p of descendants(shell.pid!)) {
        if (cmdline(p).includes(AOEGW)) daemonPid = p;
        if (cmdline(p).includes('reader.sh')) readerPid = p;
      }
      return daemonPid > 0 && readerPid > 0 && procState(readerPid) === 'T';
    }, 10_000);
    expect(found, 'the daemon and the stopped reader').toBe(true);
    pids.push(daemonPid, readerPid);
    return {
      shell,
      daemonPid,
      readerPid,
      output: () => (existsSync(out) ? readFileSync(out, 'utf8') : ''),
      exitCode: () => (existsSync(code) ? Number(readFileSync(code, 'utf8')) : undefined),
      shellExited,
    };
  }

  /** The daemon answers a Query Config for its last export (the last one it set up and logged). */
  async function answers(): Promise<boolean> {
    const ini = new Initiator(PacketLink.open({ iface: v.a, netns: nsI.name }));
    try {
      for (let i = 0; i < 20; i++) {
        if ((await ini.queryConfig(250, target(EXPORTS - 1))).length > 0) return true;
      }
      return false;
    } finally {
      ini.close();
    }
  }

  const records = (text: string) =>
    text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { level: string; msg: string });

  it('the daemon serves with its log pipe full; at SIGTERM a slow reader still gets every line', async () => {
    const s = await startStalled();
    expect(await answers(), 'the daemon answers AoE while its log pipe is full').toBe(true);
    expect(s.output()).toBe('');

    process.kill(s.daemonPid, 'SIGTERM');
    // It stopped serving and now waits (up to 2 s) for the reader to take the queued lines.
    await sleep(500);
    expect(gone(s.daemonPid), 'exited without waiting for the reader').toBe(false);
    const resumed = performance.now();
    process.kill(s.readerPid, 'SIGCONT');
    expect(await waitFor(() => gone(s.daemonPid), 5000)).toBe(true);
    expect(performance.now() - resumed).toBeLessThan(EXIT_FLUSH_MS);
    await s.shellExited;
    expect(s.exitCode()).toBe(0);

    const msgs = records(s.output()).map((r) => r.msg);
    const exportLines = msgs.filter((m) => /^export e\d+\.\d+: /.test(m));
    expect(exportLines).toEqual(
      Array.from({ length: EXPORTS }, (_, i) =>
        expect.stringMatching(`^export e${target(i).major}\\.${target(i).minor}: `),
      ),
    );
    expect(msgs.some((m) => m.startsWith('ready: '))).toBe(true);
    expect(msgs.slice(-2)).toEqual(['SIGTERM: stopping, completing writes', 'stopped']);
    expect(msgs.some((m) => /lines dropped/.test(m))).toBe(false);
  }, 30_000);

  it('a reader that never reads holds the exit for the 2 s flush time, no longer', async () => {
    const s = await startStalled();
    expect(await answers()).toBe(true);
    const t0 = performance.now();
    process.kill(s.daemonPid, 'SIGTERM');
    expect(await waitFor(() => gone(s.daemonPid), EXIT_FLUSH_MS + 3000)).toBe(true);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(EXIT_FLUSH_MS - 100);
    expect(took).toBeLessThan(EXIT_FLUSH_MS + 3000);

    // What the pipe held arrives; the lines still queued at exit, the stop among them, do not.
    process.kill(s.readerPid, 'SIGCONT');
    await s.shellExited;
    expect(s.exitCode()).toBe(0);
    const text = s.output();
    const whole = text.slice(0, text.lastIndexOf('\n') + 1);
    const msgs = records(whole).map((r) => r.msg);
    expect(msgs.length).toBeGreaterThan(0);
    expect(msgs.length).toBeLessThan(EXPORTS);
    expect(msgs).not.toContain('stopped');
  }, 30_000);
});
