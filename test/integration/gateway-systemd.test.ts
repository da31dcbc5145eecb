/**
 * `aoegw run` as systemd starts it (Type=notify): NOTIFY_SOCKET names a datagram socket this test
 * binds (the service manager's side, through the addon), WATCHDOG_USEC and WATCHDOG_PID are set as
 * systemd sets them. The daemon serves one memory export on a veth in a namespace.
 * Its log goes to a file, read when each datagram is taken off the socket (READY=1 comes with the
 * ready line logged); the exact order of the two calls is checked under strace, which records the
 * daemon's write and sendto calls in the order it made them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client.js';
import { nativeAddon } from '../../src/io/native.js';
import { gatewayRunSkipReason } from '../../support/gateway-pair.js';
import { AOEGW, ROOT } from '../helpers/aoegw.js';
import { Netns, netnsSkipReason } from '../helpers/netns.js';
import { hasCommand } from '../helpers/processes.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason() ?? gatewayRunSkipReason();
const addon = nativeAddon();
const WATCHDOG_USEC = 400_000; // pings every 200 ms
const NO_INET = join(ROOT, 'build', 'no-inet');

interface Received {
  msg: string;
  atMs: number;
  /** The daemon's log as it was when the datagram was taken. */
  log: string;
}

interface Daemon {
  dir: string;
  child: ChildProcess;
  received: Received[];
  log: () => string;
  exited: Promise<number | null>;
  /** The daemon's PID (under strace, from its ready line). */
  pid: () => number;
  /** Stops the manager's socket (the daemon then has no one to notify). */
  closeSocket: () => void;
  cleanup: () => Promise<void>;
}

/**
 * `trace`: run under strace, writing the daemon's write and sendto calls, in order, there.
 * `serve`: the target-only command (`aoegw serve`, deploy/systemd/aoegw-target.service) instead.
 */
async function startDaemon(o: { trace?: string; serve?: boolean } = {}): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-systemd-'));
  const ns = new Netns('sd');
  try {
    // A veth pair inside the namespace: the link needs an interface, nothing answers on it.
    ns.ip('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1');
    ns.ip('link', 'set', 'd0', 'up');
    ns.ip('link', 'set', 'd1', 'up');
  } catch (e) {
    ns.delete();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const config = join(dir, 'gw.json');
  writeFileSync(
    config,
    JSON.stringify({
      name: 'sd',
      stateFile: join(dir, 'state.json'),
      links: [{ name: 'lan', iface: 'd0', netns: ns.name }],
      exports: [{ target: '1.1', path: 'memory:1m' }],
    }),
  );
  const socket = join(dir, 'notify.sock');
  let fd: number | undefined = addon.notifyListen(socket);
  const logFile = join(dir, 'daemon.log');
  const logFd = openSync(logFile, 'w');
  // serve runs as aoegw-target.service confines it: no AF_INET/AF_INET6 sockets (no-inet).
  const run = o.serve
    ? [
        NO_INET,
        process.execPath,
        AOEGW,
        'serve',
        '--iface',
        'd0',
        '--netns',
        ns.name,
        '--export',
        '1.1=memory:1m',
      ]
    : [process.execPath, AOEGW, 'run', '--config', config];
  if (o.serve) run.push('--state', join(dir, 'state.json'));
  const env = { ...process.env, NOTIFY_SOCKET: socket, WATCHDOG_USEC: String(WATCHDOG_USEC) };
  const stdio: ['ignore', number, number] = ['ignore', logFd, logFd];
  const child = o.trace
    ? spawn(
        'strace',
        [
          '-f',
          '-qq',
          '-e',
          'trace=write,writev,sendto,sendmsg',
          '-e',
          'signal=none',
          '-s',
          '200',
          '-o',
          o.trace,
          ...run,
        ],
        { stdio, env },
      )
    : // systemd sets WATCHDOG_PID to the main process: `exec` keeps the shell's PID for node.
      spawn('sh', ['-c', 'WATCHDOG_PID=$$ exec "$0" "$@"', ...run], { stdio, env });
  closeSync(logFd);
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const log = () => readFileSync(logFile, 'utf8');
  const pid = () => {
    if (!o.trace) return child.pid!;
    const m = /"msg":"ready: .*\(pid (\d+)\)/.exec(log());
    if (!m) throw new Error(`no ready line yet:\n${log()}`);
    return Number(m[1]);
  };
  const received: Received[] = [];
  const poll = setInterval(() => {
    if (fd === undefined) return;
    for (let m = addon.notifyRecv(fd); m !== null; m = addon.notifyRecv(fd)) {
      received.push({ msg: m, atMs: performance.now(), log: log() });
    }
  }, 5);
  const closeSocket = () => {
    if (fd !== undefined) addon.notifyClose(fd);
    fd = undefined;
    rmSync(socket, { force: true });
  };
  return {
    dir,
    child,
    received,
    log,
    exited,
    pid,
    closeSocket,
    cleanup: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // Under strace the daemon is strace's child: signal it by the PID it logged.
        if (o.trace) {
          try {
            process.kill(pid(), 'SIGKILL');
          } catch {}
        }
        child.kill('SIGKILL');
      }
      await exited;
      clearInterval(poll);
      closeSocket();
      ns.delete();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForMessage(d: Daemon, from: number, re: RegExp, ms = 15_000): Promise<Received> {
  const found = () => d.received.slice(from).find((r) => re.test(r.msg));
  if (!(await waitFor(() => found() !== undefined || d.child.exitCode !== null, ms)) || !found()) {
    throw new Error(
      `no ${re} from the daemon; got ${JSON.stringify(d.received.map((r) => r.msg))}\n${d.log()}`,
    );
  }
  return found()!;
}

let daemon: Daemon | undefined;
afterEach(async () => {
  await daemon?.cleanup();
  daemon = undefined;
});

describe.skipIf(skip)('aoegw run under systemd notify', () => {
  it('READY after the ready line, watchdog at half the interval, RELOADING/READY around reloads, STOPPING', async () => {
    const d = await startDaemon();
    daemon = d;
    const ready = await waitForMessage(d, 0, /^READY=1/);
    expect(ready.log).toMatch(/"msg":"ready: 1 exports/);
    // Not a terminal (as under systemd): JSON lines.
    for (const line of ready.log.trim().split('\n'))
      expect(JSON.parse(line)).toMatchObject({ level: expect.any(String), time: expect.any(String) });
    expect(ready.msg).toBe('READY=1\nSTATUS=1 export, 0/0 peers up');
    // Nothing but watchdog pings before READY=1.
    const before = d.received.slice(0, d.received.indexOf(ready)).map((r) => r.msg);
    expect(new Set(before)).toEqual(before.length ? new Set(['WATCHDOG=1']) : new Set());

    // Watchdog: every 200 ms (timers run late on a loaded machine, never early).
    const start = d.received.length;
    await sleep(1500);
    const pings = d.received.slice(start).filter((r) => r.msg === 'WATCHDOG=1');
    expect(pings.length).toBeGreaterThanOrEqual(4);
    expect(pings.length).toBeLessThanOrEqual(9);
    const gaps = pings.slice(1).map((p, i) => p.atMs - pings[i]!.atMs);
    const median = gaps.sort((a, b) => a - b)[Math.floor(gaps.length / 2)]!;
    expect(median).toBeGreaterThan(150);
    expect(median).toBeLessThan(320);

    // SIGHUP: RELOADING=1 (with CLOCK_MONOTONIC), then READY=1 once the reload is logged.
    let from = d.received.length;
    process.kill(d.pid(), 'SIGHUP');
    const reloading = await waitForMessage(d, from, /^RELOADING=1/);
    expect(reloading.msg).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading the config$/);
    const reloaded = await waitForMessage(d, d.received.indexOf(reloading) + 1, /^READY=1/);
    expect(reloaded.log).toMatch(/"msg":"reload: /);
    expect(reloaded.msg).toBe('READY=1\nSTATUS=1 export, 0/0 peers up');

    // The control socket's reload takes the same path.
    from = d.received.length;
    const r = await controlRequest(join(d.dir, 'control.sock'), { cmd: 'reload' });
    expect(r.ok).toBe(true);
    const viaControl = await waitForMessage(d, from, /^RELOADING=1/);
    await waitForMessage(d, d.received.indexOf(viaControl) + 1, /^READY=1/);

    // SIGTERM: STOPPING=1 once stopping is logged, then no more pings; a clean exit.
    from = d.received.length;
    process.kill(d.pid(), 'SIGTERM');
    const stopping = await waitForMessage(d, from, /^STOPPING=1/);
    expect(stopping.log).toMatch(/"msg":"SIGTERM: stopping/);
    expect(await d.exited).toBe(0);
    await sleep(50);
    expect(d.received.slice(d.received.indexOf(stopping) + 1)).toEqual([]);
  });

  const noInet = existsSync(NO_INET) ? undefined : `${NO_INET} is missing (run scripts/setup.sh)`;
  it.skipIf(noInet)(
    'aoegw serve (the target-only unit, AF_PACKET and AF_UNIX sockets only) notifies too: READY after its ready line, watchdog, STOPPING',
    async () => {
      const d = await startDaemon({ serve: true });
      daemon = d;
      const ready = await waitForMessage(d, 0, /^READY=1/);
      expect(ready.log).toMatch(/"msg":"ready: 1 exports on 1 links/);
      expect(ready.msg).toBe('READY=1\nSTATUS=1 export, 0/0 peers up');
      const start = d.received.length;
      await sleep(1000);
      expect(d.received.slice(start).filter((r) => r.msg === 'WATCHDOG=1').length).toBeGreaterThanOrEqual(2);
      const from = d.received.length;
      process.kill(d.pid(), 'SIGTERM');
      const stopping = await waitForMessage(d, from, /^STOPPING=1/);
      expect(stopping.log).toMatch(/"msg":"SIGTERM: stopping/);
      expect(await d.exited).toBe(0);
    },
  );

  it('keeps serving when the notify socket goes away: one log line, then a clean stop', async () => {
    const d = await startDaemon();
    daemon = d;
    await waitForMessage(d, 0, /^READY=1/);
    d.closeSocket();
    await sleep(1000); // about five pings into nothing
    expect(d.child.exitCode).toBeNull();
    const lines = d
      .log()
      .split('\n')
      .filter((l) => /systemd: cannot notify/.test(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /notify\.sock \(notifySend: sendto: (No such file or directory|Connection refused)\)/,
    );
    process.kill(d.pid(), 'SIGTERM');
    expect(await d.exited).toBe(0);
    expect(d.log()).toMatch(/"msg":"stopped"/);
  });

  const noStrace = hasCommand('strace') ? undefined : 'strace is not installed';
  it.skipIf(noStrace)(
    'in the daemon’s own order: the ready line is written before READY=1 is sent, the stopping line before STOPPING=1',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'aoegw-systemd-trace-'));
      try {
        const trace = join(dir, 'trace.txt');
        const d = await startDaemon({ trace });
        daemon = d;
        await waitForMessage(d, 0, /^READY=1/);
        const from = d.received.length;
        process.kill(d.pid(), 'SIGTERM');
        await waitForMessage(d, from, /^STOPPING=1/);
        expect(await d.exited).toBe(0);
        // strace writes one line per call in the order the calls were made.
        const calls = readFileSync(trace, 'utf8').split('\n');
        const at = (re: RegExp) => calls.findIndex((l) => re.test(l));
        const readyLine = at(/write(v)?\(2, .*msg\\":\\"ready: /);
        const readySent = at(/sendto\(\d+, "READY=1/);
        const stopLine = at(/write(v)?\(2, .*msg\\":\\"SIGTERM: stopping/);
        const stopSent = at(/sendto\(\d+, "STOPPING=1/);
        expect(
          [readyLine, readySent, stopLine, stopSent].every((i) => i >= 0),
          calls.slice(0, 80).join('\n'),
        ).toBe(true);
        expect(readyLine).toBeLessThan(readySent);
        expect(stopLine).toBeLessThan(stopSent);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
