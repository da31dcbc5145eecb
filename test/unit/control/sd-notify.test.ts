/**
 * SdNotify against a real AF_UNIX datagram socket (bound by the addon's test-side notifyListen,
 * as the service manager's would be): file-system path and abstract name, the environment it
 * consumes, the watchdog's pace and ownership, and a socket that goes away.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SdNotify } from '../../../src/control/sd-notify.js';
import { nativeAddon } from '../../../src/io/native.js';
import { lineLog } from '../../../src/log.js';
import { sleep, waitFor } from '../../../support/wait.js';

const addon = nativeAddon();

/** The manager's side: a bound socket and what arrived on it. */
class Manager {
  readonly fd: number;
  constructor(readonly socket: string) {
    this.fd = addon.notifyListen(socket);
  }
  drain(): string[] {
    const out: string[] = [];
    for (let m = addon.notifyRecv(this.fd); m !== null; m = addon.notifyRecv(this.fd)) out.push(m);
    return out;
  }
  close(): void {
    addon.notifyClose(this.fd);
  }
}

let dir: string;
let managers: Manager[] = [];
const manager = (socket: string) => {
  const m = new Manager(socket);
  managers.push(m);
  return m;
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'aoegw-sdnotify-'));
});
afterEach(() => {
  for (const m of managers) m.close();
  managers = [];
  rmSync(dir, { recursive: true, force: true });
});

describe('SdNotify', () => {
  it('is a no-op without NOTIFY_SOCKET (nothing sent, no timers)', () => {
    const sent: string[] = [];
    const n = SdNotify.open({ env: { WATCHDOG_USEC: '1000' }, send: (_p, m) => sent.push(m) });
    expect(n.enabled).toBe(false);
    expect(n.watchdogUsec).toBe(0);
    n.startWatchdog();
    n.ready('x');
    n.reloading();
    n.stopping();
    n.status('y');
    n.watchdog();
    expect(sent).toEqual([]);
  });

  it('removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment it read', () => {
    const env: NodeJS.ProcessEnv = {
      NOTIFY_SOCKET: '@x',
      WATCHDOG_USEC: '1000000',
      WATCHDOG_PID: '42',
      PATH: '/bin',
    };
    const n = SdNotify.open({ env, pid: 42, send: () => {} });
    expect(env).toEqual({ PATH: '/bin' });
    expect(n.socket).toBe('@x');
    expect(n.watchdogUsec).toBe(1_000_000);
  });

  it('sends READY, RELOADING (with MONOTONIC_USEC), STOPPING and STATUS to a socket file', () => {
    const socket = join(dir, 'notify.sock');
    const m = manager(socket);
    const n = SdNotify.open({ env: { NOTIFY_SOCKET: socket } });
    n.ready('2 exports, 1/1 peers up');
    const before = process.hrtime.bigint() / 1000n;
    n.reloading();
    const after = process.hrtime.bigint() / 1000n;
    n.ready();
    n.status('one\nline');
    n.stopping('stopping');
    const got = m.drain();
    expect(got).toHaveLength(5);
    expect(got[0]).toBe('READY=1\nSTATUS=2 exports, 1/1 peers up');
    const mono = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(got[1]!);
    expect(mono).not.toBeNull();
    // The same clock as CLOCK_MONOTONIC (what systemd compares it with).
    expect(BigInt(mono![1]!)).toBeGreaterThanOrEqual(before);
    expect(BigInt(mono![1]!)).toBeLessThanOrEqual(after);
    expect(got.slice(2)).toEqual(['READY=1', 'STATUS=one line', 'STOPPING=1\nSTATUS=stopping']);
    expect(n.sent).toBe(5);
    expect(n.failures).toBe(0);
  });

  it('reaches a socket in the abstract namespace (@name)', () => {
    const socket = `@aoegw-test-${randomBytes(6).toString('hex')}`;
    const m = manager(socket);
    const n = SdNotify.open({ env: { NOTIFY_SOCKET: socket } });
    n.ready();
    expect(m.drain()).toEqual(['READY=1']);
    // Abstract names are distinct from a file of the same name.
    expect(() => addon.notifySend(socket.slice(1), 'X=1')).toThrow(/absolute path nor @abstract/);
  });

  it('does not repeat an unchanged STATUS', () => {
    const socket = join(dir, 'n.sock');
    const m = manager(socket);
    const n = SdNotify.open({ env: { NOTIFY_SOCKET: socket } });
    n.ready('a');
    n.status('a');
    n.status('b');
    n.status('b');
    expect(m.drain()).toEqual(['READY=1\nSTATUS=a', 'STATUS=b']);
  });

  it('pings WATCHDOG=1 at half of WATCHDOG_USEC, from a timer that stops with STOPPING', async () => {
    const socket = join(dir, 'w.sock');
    const m = manager(socket);
    const n = SdNotify.open({ env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '100000' } });
    const t0 = performance.now();
    n.startWatchdog();
    await sleep(520);
    const pings = m.drain().filter((x) => x === 'WATCHDOG=1').length;
    const elapsed = performance.now() - t0;
    // One at once, then every 50 ms: about 11. A loaded machine runs timers late, never early.
    expect(pings).toBeGreaterThanOrEqual(5);
    expect(pings).toBeLessThanOrEqual(Math.floor(elapsed / 50) + 1);
    n.stopping();
    m.drain();
    await sleep(150);
    expect(m.drain()).toEqual([]);
  });

  it('leaves the watchdog alone when WATCHDOG_PID names another process', () => {
    const socket = join(dir, 'p.sock');
    const m = manager(socket);
    const n = SdNotify.open({
      env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid + 1) },
    });
    expect(n.watchdogUsec).toBe(0);
    n.startWatchdog();
    n.ready();
    expect(m.drain()).toEqual(['READY=1']);
    const mine = SdNotify.open({
      env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid) },
    });
    expect(mine.watchdogUsec).toBe(100_000);
  });

  it('refuses a NOTIFY_SOCKET that is no unix socket address, and a bad WATCHDOG_USEC, with a log line', () => {
    const lines: string[] = [];
    const log = lineLog((l) => lines.push(l));
    expect(SdNotify.open({ env: { NOTIFY_SOCKET: 'vsock:2:999' }, log }).enabled).toBe(false);
    expect(SdNotify.open({ env: { NOTIFY_SOCKET: '@x', WATCHDOG_USEC: 'soon' }, log }).watchdogUsec).toBe(0);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/vsock:2:999 is not a unix socket/);
    expect(lines[1]).toMatch(/WATCHDOG_USEC=soon/);
  });

  it('never throws when the socket is gone: counts every failure, logs the first', async () => {
    const socket = join(dir, 'gone.sock');
    const m = manager(socket);
    const lines: string[] = [];
    const n = SdNotify.open({
      env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '20000' },
      log: lineLog((l) => lines.push(l)),
    });
    n.ready();
    expect(m.drain()).toEqual(['READY=1']);
    m.close();
    managers = [];
    rmSync(socket);
    n.startWatchdog();
    expect(await waitFor(() => n.failures >= 3, 2000)).toBe(true);
    n.stopping();
    expect(n.failures).toBeGreaterThanOrEqual(4);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /cannot notify .*gone\.sock \(notifySend: sendto: (No such file|Connection refused)/,
    );
  });
});

describe('the addon’s notifySend', () => {
  it('names a bad argument and reports the errno of a failed send', () => {
    expect(() => addon.notifySend('', 'X=1')).toThrow(
      expect.objectContaining({ code: 'ERR_NATIVE_ARGUMENT' }),
    );
    expect(() => addon.notifySend('@', 'X=1')).toThrow(
      expect.objectContaining({ code: 'ERR_NATIVE_ARGUMENT' }),
    );
    expect(() => addon.notifySend(`/${'x'.repeat(120)}`, 'X=1')).toThrow(/longer than 107 bytes/);
    expect(() => addon.notifySend('/tmp/x', '')).toThrow(
      expect.objectContaining({ code: 'ERR_NATIVE_ARGUMENT' }),
    );
    expect(() => addon.notifySend(join(dir, 'none.sock'), 'X=1')).toThrow(
      expect.objectContaining({ code: 'ERR_SYSCALL', errno: 2 }),
    );
  });
});
