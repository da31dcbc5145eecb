/**
 * The enrolled peers of the enrollment file join the config's peers: validated together (names
 * and keys unique across both files), each problem naming the file it is in, and the file refused
 * unless it is private to us (src/enroll reads it; its messages are the problems).
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../../src/config/gateway-config.js';

const root = mkdtempSync(join(tmpdir(), 'aoegw-enrolled-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const KEY_B = Buffer.alloc(32, 0xb2).toString('base64');
const KEY_C = Buffer.alloc(32, 0xc3).toString('base64');

let dir = '';
let n = 0;
beforeEach(() => {
  dir = join(root, `t${n++}`);
  mkdirSync(dir);
});

function config(extra: Record<string, unknown> = {}): string {
  const file = join(dir, 'gw.json');
  writeFileSync(
    file,
    JSON.stringify({
      name: 'site-a',
      privateKeyFile: '/etc/aoegw/a.key',
      listen: '0.0.0.0:51820',
      stateFile: join(dir, 'state.json'),
      links: [{ name: 'lan', iface: 'eth1' }],
      exports: [{ target: '1.0', path: '/srv/a.img', name: 'disk-a' }],
      peers: [{ name: 'site-b', publicKey: KEY_B, allow: [{ targets: ['1.0'], access: 'rw' }] }],
      ...extra,
    }),
  );
  return file;
}

function enrollment(peers: unknown[], file = join(dir, 'enrollment.json'), mode = 0o600): string {
  writeFileSync(file, JSON.stringify({ version: 1, invites: [], peers }), { mode });
  chmodSync(file, mode);
  return file;
}

const siteC = (extra: Record<string, unknown> = {}) => ({
  name: 'site-c',
  publicKey: KEY_C,
  allow: [{ targets: ['disk-a'], access: 'ro' }],
  imports: [],
  persistentKeepaliveMs: 0,
  ...extra,
});

function problemOf(file: string): string {
  try {
    loadGatewayConfig(file);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected the config to be rejected');
}

describe('enrolled peers', () => {
  it('a missing enrollment file means none; both paths default beside stateFile', () => {
    const spec = loadGatewayConfig(config());
    expect(spec.peers.map((p) => [p.name, p.source])).toEqual([['site-b', 'config']]);
    expect(spec.enrollmentFile).toBe(join(dir, 'enrollment.json'));
    expect(spec.controlSocket).toBe(join(dir, 'control.sock'));
  });

  it('are merged after the config’s peers, marked enrolled', () => {
    enrollment([siteC()]);
    const spec = loadGatewayConfig(config());
    expect(spec.peers.map((p) => [p.name, p.source])).toEqual([
      ['site-b', 'config'],
      ['site-c', 'enrolled'],
    ]);
    expect(spec.peers[1]).toMatchObject({ allow: [{ targets: [{ name: 'disk-a' }], access: 'ro' }] });
  });

  it('enrollmentFile and controlSocket can be set', () => {
    const other = enrollment([siteC()], join(dir, 'elsewhere.json'));
    const spec = loadGatewayConfig(config({ enrollmentFile: other, controlSocket: '/run/aoegw.sock' }));
    expect(spec.enrollmentFile).toBe(other);
    expect(spec.controlSocket).toBe('/run/aoegw.sock');
    expect(spec.peers.map((p) => p.name)).toEqual(['site-b', 'site-c']);
  });

  it('names and keys are unique across both files; problems name the enrollment file', () => {
    const file = enrollment([
      siteC({ name: 'site-b' }),
      siteC({ name: 'site-d', publicKey: KEY_B, allow: [{ targets: ['9.9'] }] }),
    ]);
    const msg = problemOf(config());
    expect(msg.split('\n').slice(1)).toEqual([
      `  enrollment file ${file}: peers[0].name = "site-b": expected a name not used by another peer (peers[0] has it)`,
      `  enrollment file ${file}: peers[1].publicKey = "${KEY_B}": expected a key not used by another peer (peers[0] has it)`,
      `  enrollment file ${file}: peers[1].allow[0].targets[0] = "9.9": expected a built-in export (by "S.L" or name) or a forwarded target of this gateway`,
    ]);
  });

  it('enrolled peers count for "peers need a key file and listen"', () => {
    enrollment([siteC({ allow: [] })]);
    expect(problemOf(config({ peers: [], privateKeyFile: undefined }))).toMatch(
      /privateKeyFile = "": expected the path of a private key file/,
    );
  });

  it('a file group or others can read is refused, naming the fix', () => {
    const file = enrollment([siteC()], undefined, 0o644);
    expect(problemOf(config())).toBe(
      `config ${join(dir, 'gw.json')}: enrollment file ${file}: permissions 0644 let group or others access it (it holds PSKs); run chmod 600 ${file}`,
    );
  });

  it('a symbolic link, another user’s file, a wrong version and bad JSON are refused', () => {
    const real = enrollment([siteC()], join(dir, 'real.json'));
    symlinkSync(real, join(dir, 'enrollment.json'));
    expect(problemOf(config())).toMatch(
      /enrollment file \S+enrollment\.json: is a symbolic link \(refused\)/,
    );
    rmSync(join(dir, 'enrollment.json'));
    const file = enrollment([siteC()]);
    if (process.getuid?.() === 0) {
      chownSync(file, 12345, 12345);
      expect(problemOf(config())).toMatch(
        /is owned by uid 12345, not by this user \(0\) or root \(refused: it holds PSKs\)/,
      );
      chownSync(file, 0, 0);
    }
    writeFileSync(file, JSON.stringify({ version: 2, peers: [] }));
    expect(problemOf(config())).toMatch(/enrollment file \S+: version: expected 1/);
    writeFileSync(file, '{ nope');
    expect(problemOf(config())).toMatch(
      /enrollment file \S+: is not valid JSON \(at character \d+\); its previous version is \S+\.prev/,
    );
  });
});
