/**
 * The control socket on a real UNIX socket in a temp directory: mode 0600, one response per
 * request line in order, clear errors for bad requests, and never taking over a live daemon's
 * socket or a file that is not a socket (a stale socket is replaced).
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { controlRequest, DaemonNotRunning } from '../../../src/control/client.js';
import { ControlServer } from '../../../src/control/server.js';
import { isAoegwError } from '../../../src/errors.js';

let dir: string;
let servers: ControlServer[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'aoegw-ctl-'));
  servers = [];
});
afterEach(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(
  handlers: Parameters<typeof ControlServer.open>[0]['handlers'],
  path = join(dir, 'c.sock'),
) {
  const s = await ControlServer.open({ path, handlers });
  servers.push(s);
  return s;
}

/** Raw exchange: send `text`, collect `lines` response lines. */
function raw(path: string, text: string, lines: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(text));
    s.on('data', (c: string) => {
      buf += c;
      const got = buf.split('\n').filter((l) => l !== '');
      if (got.length >= lines) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(buf.split('\n').filter((l) => l !== '')));
  });
}

describe('control socket', () => {
  it('is created with mode 0600 and answers a request', async () => {
    const s = await open({ status: () => ({ ok: true, name: 'gw', n: 3n }) });
    expect(statSync(s.path).mode & 0o777).toBe(0o600);
    expect(await controlRequest(s.path, { cmd: 'status' })).toEqual({ ok: true, name: 'gw', n: '3' });
  });

  it('answers several requests of one connection in order, slow handlers included', async () => {
    const s = await open({
      slow: async () => {
        await new Promise((r) => setTimeout(r, 50));
        return { ok: true, which: 'slow' };
      },
      fast: () => ({ ok: true, which: 'fast' }),
    });
    const got = await raw(s.path, '{"cmd":"slow"}\n{"cmd":"fast"}\n', 2);
    expect(got.map((l) => JSON.parse(l).which)).toEqual(['slow', 'fast']);
  });

  it('many pipelined requests are all answered, in order (the connection pauses, never drops them)', async () => {
    let n = 0;
    const s = await open({
      count: async () => {
        await new Promise((r) => setTimeout(r, 2));
        return { ok: true, n: ++n };
      },
    });
    const got = await raw(s.path, '{"cmd":"count"}\n'.repeat(40), 40);
    expect(got.map((l) => JSON.parse(l).n)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });

  it('bad requests get ok:false with a reason; a throwing handler too', async () => {
    const s = await open({
      boom: () => {
        throw new Error('handler failed: disk full');
      },
    });
    const got = (await raw(s.path, 'nonsense\n[1]\n{"cmd":"nope"}\n{"cmd":"boom"}\n', 4)).map((l) =>
      JSON.parse(l),
    );
    expect(got.every((r) => r.ok === false)).toBe(true);
    expect(got[0].errors[0]).toMatch(/not JSON/);
    expect(got[1].errors[0]).toMatch(/not a JSON object/);
    expect(got[2].errors[0]).toMatch(/unknown command "nope" \(known: boom\)/);
    expect(got[3].errors[0]).toBe('handler failed: disk full');
  });

  it('a request line over 64 KiB closes the connection', async () => {
    const s = await open({ status: () => ({ ok: true }) });
    const got = await raw(s.path, `{"cmd":"status","pad":"${'x'.repeat(70_000)}`, 1);
    expect(JSON.parse(got[0]!).errors[0]).toMatch(/longer than 65536/);
  });

  it('refuses a live socket and a non-socket file; replaces a stale socket', async () => {
    const live = await open({});
    await expect(ControlServer.open({ path: live.path, handlers: {} })).rejects.toThrow(/in use/);
    const file = join(dir, 'plain');
    writeFileSync(file, 'x');
    await expect(ControlServer.open({ path: file, handlers: {} })).rejects.toThrow(/not a socket/);
    // A socket file nobody listens on: its daemon was killed with -9.
    const stalePath = join(dir, 'stale.sock');
    const child = spawnSync(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(stalePath)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(child.signal).toBe('SIGKILL');
    expect(statSync(stalePath).isSocket()).toBe(true);
    const s = await open({ status: () => ({ ok: true }) }, stalePath);
    expect((await controlRequest(s.path, { cmd: 'status' })).ok).toBe(true);
  });

  it('close() removes the socket; the client then reports no daemon', async () => {
    const s = await open({});
    s.close();
    servers = [];
    const err = await controlRequest(s.path, { cmd: 'status' }).catch((e) => e);
    expect(err).toBeInstanceOf(DaemonNotRunning);
    expect(isAoegwError(err, 'ERR_CONTROL')).toBe(true);
  });
});
