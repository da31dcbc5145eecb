/**
 * `aoegw config check`, `aoegw peer …` and `aoegw export …` as an operator runs them (the built
 * CLI in dist/, on temporary files): exit statuses, messages, and which file each edit lands in.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ControlServer } from '../../src/control/server.js';
import { AOEGW } from '../helpers/aoegw.js';

const root = mkdtempSync(join(tmpdir(), 'aoegw-cli-config-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const KEY_B = Buffer.alloc(32, 0xb2).toString('base64');
const KEY_C = Buffer.alloc(32, 0xc3).toString('base64');

const EXPIRES = new Date(Date.now() + 3_600_000).toISOString();
const CREATED = new Date().toISOString();

let dir = '';
let cfg = '';
let enr = '';
let n = 0;

const gateway = () => ({
  name: 'site-a',
  privateKeyFile: '/etc/aoegw/a.key',
  listen: '0.0.0.0:51820',
  stateFile: join(dir, 'state.json'),
  links: [{ name: 'lan', iface: 'eth1' }],
  exports: [
    { target: '1.0', path: '/srv/a.img', name: 'disk-a' },
    { target: '1.1', path: '/srv/b.img' },
  ],
  peers: [
    {
      name: 'site-b',
      publicKey: KEY_B,
      endpoint: '192.0.2.2:51820',
      allow: [{ targets: ['disk-a'], access: 'rw' }],
      imports: [{ remote: '2.0', local: '7.0' }],
    },
  ],
});

const enrollment = () => ({
  version: 1,
  invites: [
    {
      id: Buffer.alloc(16, 1).toString('base64url'),
      psk: Buffer.alloc(32, 2).toString('base64'),
      name: 'site-d',
      allow: [{ targets: ['1.0'], access: 'ro' }],
      expires: EXPIRES,
      created: CREATED,
    },
  ],
  peers: [{ name: 'site-c', publicKey: KEY_C, allow: [{ targets: ['1.1'], access: 'ro' }], imports: [] }],
});

function write(file: string, value: unknown, mode = 0o600): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`, { mode });
}

beforeEach(() => {
  dir = join(root, `t${n++}`);
  mkdirSync(dir);
  cfg = join(dir, 'gw.json');
  enr = join(dir, 'enrollment.json');
  write(cfg, gateway(), 0o644);
  write(enr, enrollment());
});

function aoegw(...args: string[]) {
  const r = spawnSync(process.execPath, [AOEGW, ...args], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout, err: r.stderr };
}
/** The same, without blocking this process (which answers as the daemon meanwhile). */
function aoegwAsync(...args: string[]): Promise<{ status: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [AOEGW, ...args]);
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.stderr.on('data', (d) => {
      err += d;
    });
    c.on('close', (status) => resolve({ status, out, err }));
  });
}
const json = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

describe('aoegw config check', () => {
  it('a valid gateway config: exit 0 and a one-line summary counting the enrolled peers', () => {
    const r = aoegw('config', 'check', cfg);
    expect(r).toMatchObject({ status: 0, err: '' });
    expect(r.out).toBe(
      `config ${cfg}: valid gateway config (aoegw run): 1 link, 2 exports, 0 forwards, 2 peers (1 enrolled), 1 import\n`,
    );
  });

  it('every problem at once, exit 1, each naming its key, value and expectation (and its file)', () => {
    const c = { ...gateway(), tunnel: { mtu: 100 } };
    Object.assign(c.links[0]!, { batch: 0 });
    Object.assign(c.exports[1]!, { durability: 'fast' });
    Object.assign(c.peers[0]!.allow[0]!, { access: 'write' });
    c.peers[0]!.endpoint = 'gw.example:1';
    write(cfg, c);
    const e = enrollment();
    e.peers[0]!.name = 'site-b';
    write(enr, e);
    const r = aoegw('config', 'check', cfg);
    expect(r.status).toBe(1);
    expect(r.out.split('\n')).toEqual([
      `config ${cfg}: 6 problems:`,
      '  links[0].batch = 0: expected an integer in 1..1024',
      '  exports[1].durability = "fast": expected one of sync, writeback, direct',
      '  peers[0].endpoint = "gw.example:1": expected "IPv4:PORT" or "[IPv6]:PORT"',
      '  peers[0].allow[0].access = "write": expected "ro" or "rw"',
      `  enrollment file ${enr}: peers[0].name = "site-b": expected a name not used by another peer (peers[0] has it)`,
      '  tunnel.mtu = 100: expected an integer in 1280..65507',
      '',
    ]);
  });

  it('a target config by its keys, or as a gateway config with --kind; a missing file is a problem', () => {
    const t = join(dir, 'target.json');
    write(t, { links: [{ iface: 'eth0' }], exports: [{ target: '1.0', path: '/x' }] });
    expect(aoegw('config', 'check', t).out).toMatch(
      /: valid target config \(aoegw serve; .*\): 1 link, 1 export\n$/,
    );
    expect(aoegw('config', 'check', '--kind', 'gateway', t).out).toMatch(/: valid gateway config/);
    write(t, { links: [], exports: [] });
    expect(aoegw('config', 'check', t)).toMatchObject({ status: 1 });
    expect(aoegw('config', 'check', '--kind', 'nope', t)).toMatchObject({ status: 2 });
    const r = aoegw('config', 'check', join(dir, 'missing.json'));
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/missing\.json: cannot read it: ENOENT/);
  });
});

describe('aoegw peer', () => {
  it('list --json shows both files’ peers with their source and file', () => {
    const r = aoegw('peer', 'list', '--json', '--config', cfg);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.out)).toEqual([
      {
        name: 'site-b',
        source: 'config',
        file: cfg,
        publicKey: KEY_B,
        endpoint: '192.0.2.2:51820',
        allow: [{ targets: ['disk-a'], access: 'rw' }],
        imports: [{ remote: '2.0', local: '7.0', links: [] }],
        persistentKeepaliveMs: 0,
      },
      {
        name: 'site-c',
        source: 'enrolled',
        file: enr,
        publicKey: KEY_C,
        endpoint: null,
        allow: [{ targets: ['1.1'], access: 'ro' }],
        imports: [],
        persistentKeepaliveMs: 0,
      },
    ]);
    const t = aoegw('peer', 'list', '--config', cfg).out.split('\n');
    expect(t[0]).toMatch(/^NAME +SOURCE +ENDPOINT +GRANTS +IMPORTS +PUBLIC KEY$/);
    expect(t[1]).toMatch(/^site-b +config +192\.0\.2\.2:51820 +disk-a:rw +2\.0->7\.0 +/);
    expect(t[2]).toMatch(/^site-c +enrolled +- +1\.1:ro +- +/);
    expect(aoegw('peer', 'show', 'site-c', '--config', cfg).out).toMatch(
      /^peer site-c \(enrolled, in .*enrollment\.json\)/,
    );
    expect(aoegw('peer', 'show', 'nobody', '--config', cfg)).toMatchObject({ status: 2 });
  });

  it('grant and revoke edit the config for a config peer, by name or S.L alike', () => {
    let r = aoegw('peer', 'grant', 'site-b', '1.1,1.0:ro', '--config', cfg);
    expect(r.status).toBe(0);
    expect(r.out).toBe(
      `peer site-b: granted 1.1 ro, 1.0 ro (was rw): written to ${cfg} (previous version: gw.json.prev)\n`,
    );
    expect(r.err).toBe('aoegw: no daemon running: the change applies when it starts\n');
    expect(json(cfg).peers[0].allow).toEqual([{ targets: ['1.1', '1.0'], access: 'ro' }]);
    expect(json(`${cfg}.prev`).peers[0].allow).toEqual([{ targets: ['disk-a'], access: 'rw' }]);
    expect(statSync(cfg).mode & 0o777).toBe(0o644);
    r = aoegw('peer', 'revoke', 'site-b', 'disk-a', '--config', cfg);
    expect(r.status).toBe(0);
    expect(json(cfg).peers[0].allow).toEqual([{ targets: ['1.1'], access: 'ro' }]);
    // A target not granted is a mistake worth a refusal, not a silent success.
    const before = readFileSync(cfg, 'utf8');
    r = aoegw('peer', 'revoke', 'site-b', '1.0', '--config', cfg);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/peer site-b has no grant of 1\.0 \(its grants: 1\.1:ro\); nothing written/);
    expect(readFileSync(cfg, 'utf8')).toBe(before);
  });

  it('a grant of a target this gateway does not have is refused by the validator, nothing written', () => {
    const before = readFileSync(cfg, 'utf8');
    const r = aoegw('peer', 'grant', 'site-b', '9.9:rw', '--config', cfg);
    expect(r.status).toBe(3);
    expect(r.err).toContain(`config ${cfg}: edit refused, nothing written: the result would have a problem:`);
    expect(r.err).toContain('peers[0].allow[0].targets[1] = "9.9": expected a built-in export');
    expect(readFileSync(cfg, 'utf8')).toBe(before);
    expect(existsSync(`${cfg}.prev`)).toBe(false);
  });

  it('an enrolled peer is edited in the enrollment file (invites kept, mode 0600), the config untouched', () => {
    const before = readFileSync(cfg, 'utf8');
    expect(aoegw('peer', 'grant', 'site-c', 'disk-a:rw', '--config', cfg).status).toBe(0);
    expect(json(enr).peers[0].allow).toEqual([
      { targets: ['1.1'], access: 'ro' },
      { targets: ['disk-a'], access: 'rw' },
    ]);
    expect(json(enr).invites).toEqual(enrollment().invites);
    expect(statSync(enr).mode & 0o777).toBe(0o600);
    expect(aoegw('peer', 'remove', 'site-c', '--config', cfg).status).toBe(0);
    expect(json(enr).peers).toEqual([]);
    expect(readFileSync(cfg, 'utf8')).toBe(before);
  });
});

describe('aoegw export', () => {
  it('add takes serve’s --export syntax plus flags; a duplicate address is refused', () => {
    let r = aoegw(
      'export',
      'add',
      '2.5=/srv/c.img,ro,direct,bufcnt=16',
      '--name',
      'disk-c',
      '--link',
      'lan',
      '--config',
      cfg,
    );
    expect(r.status).toBe(0);
    expect(json(cfg).exports[2]).toEqual({
      target: '2.5',
      path: '/srv/c.img',
      readOnly: true,
      durability: 'direct',
      bufferCount: 16,
      name: 'disk-c',
      links: ['lan'],
    });
    r = aoegw('export', 'list', '--json', '--config', cfg);
    expect(
      JSON.parse(r.out).map((e: { target: string; grantedTo: string[] }) => [e.target, e.grantedTo]),
    ).toEqual([
      ['1.0', ['site-b:rw']],
      ['1.1', ['site-c:ro']],
      ['2.5', []],
    ]);
    r = aoegw('export', 'add', '1.1=/srv/d.img', '--config', cfg);
    expect(r.status).toBe(3);
    expect(r.err).toMatch(/exports\[3\]\.target = "1\.1": expected a shelf\.slot not used by another export/);
    expect(aoegw('export', 'add', '1.2=/x,fast', '--config', cfg)).toMatchObject({ status: 2 });
  });

  it('remove is refused while peers or pending invites are granted the export; --force takes those grants too', () => {
    let r = aoegw('export', 'remove', 'disk-a', '--config', cfg);
    expect(r.status).toBe(2);
    expect(r.err).toContain(
      'export 1.0 (disk-a) is granted to:\n  peer site-b (config)\n  pending invite for site-d',
    );
    expect(r.err).toContain('nothing written; --force removes it from those grants too');
    expect(existsSync(`${cfg}.prev`)).toBe(false);
    r = aoegw('export', 'remove', '1.1', '--config', cfg);
    expect(r.status).toBe(2);
    expect(r.err).toContain(`peer site-c (enrolled, ${enr})`);

    r = aoegw('export', 'remove', '1.0', '--force', '--config', cfg);
    expect(r.status).toBe(0);
    expect(json(cfg).exports.map((e: { target: string }) => e.target)).toEqual(['1.1']);
    expect(json(cfg).peers[0].allow).toEqual([]);
    // The invite granted nothing else: cancelled rather than left granting nothing.
    expect(json(enr).invites).toEqual([]);
    expect(r.out).toMatch(/cancelled, granting nothing else: site-d \(invite \S+\)/);
    expect(aoegw('config', 'check', cfg).status).toBe(0);
    expect(aoegw('export', 'remove', '7.7', '--config', cfg)).toMatchObject({ status: 2 });
  });
});

describe('after an edit, the running daemon is asked to reload', () => {
  it('reports its answer; a refusal (the edit written, not in force) exits 1', async () => {
    let answer: { ok: true; summary: string } | { ok: false; errors: string[] } = {
      ok: true,
      summary: 'peer site-b: grants changed',
    };
    const requests: unknown[] = [];
    const server = await ControlServer.open({
      path: join(dir, 'control.sock'),
      handlers: {
        reload: (req) => {
          requests.push(req);
          return answer;
        },
      },
    });
    try {
      let r = await aoegwAsync('peer', 'grant', 'site-b', '1.1', '--config', cfg);
      expect(r).toMatchObject({ status: 0, err: 'aoegw: daemon reloaded: peer site-b: grants changed\n' });
      expect(requests).toEqual([{ cmd: 'reload' }]);
      answer = { ok: false, errors: ['links: restart to change links'] };
      r = await aoegwAsync('peer', 'revoke', 'site-b', '1.1', '--config', cfg);
      expect(r.status).toBe(1);
      expect(r.err).toBe(
        'aoegw: the daemon refused the new configuration and keeps running the old one\n  links: restart to change links\n',
      );
      expect(json(cfg).peers[0].allow).toEqual([{ targets: ['disk-a'], access: 'rw' }]);
    } finally {
      server.close();
    }
  });
});
