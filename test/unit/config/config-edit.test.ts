/**
 * Edits of the config and enrollment files: validated as a whole before anything is written,
 * written atomically with the original's mode and owner, the previous version kept as .prev.
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { editEnrollmentFile, editGatewayConfig } from '../../../src/config/config-edit.js';
import { loadGatewayConfig } from '../../../src/config/gateway-config.js';
import { formatJson } from '../../../src/config/json-format.js';

const root = mkdtempSync(join(tmpdir(), 'aoegw-edit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const KEY_B = Buffer.alloc(32, 0xb2).toString('base64');
const KEY_C = Buffer.alloc(32, 0xc3).toString('base64');

// biome-ignore lint/suspicious/noExplicitAny: the edits reach into parsed JSON of a known shape
type Json = Record<string, any>;

let dir = '';
let cfgFile = '';
let n = 0;
const config = (): Json => ({
  name: 'site-a',
  privateKeyFile: '/etc/aoegw/a.key',
  listen: '0.0.0.0:51820',
  stateFile: join(dir, 'state.json'),
  links: [{ name: 'lan', iface: 'eth1' }],
  exports: [{ target: '1.0', path: '/srv/a.img', name: 'disk-a' }],
  peers: [{ name: 'site-b', publicKey: KEY_B, allow: [{ targets: ['1.0'], access: 'rw' }] }],
});

beforeEach(() => {
  dir = join(root, `t${n++}`);
  mkdirSync(dir);
  cfgFile = join(dir, 'gw.json');
  writeFileSync(cfgFile, formatJson(config()), { mode: 0o640 });
  chmodSync(cfgFile, 0o640);
});

const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected the edit to be refused');
};

describe('editGatewayConfig', () => {
  it('writes the edit in the file’s style, keeps .prev, the mode and no temporary file', () => {
    const before = readFileSync(cfgFile, 'utf8');
    const r = editGatewayConfig(cfgFile, (d) => {
      (d as Json).peers[0].allow[0].access = 'ro';
      return d;
    });
    expect(r).toEqual({ file: cfgFile, changed: true, prev: `${cfgFile}.prev` });
    expect(readFileSync(`${cfgFile}.prev`, 'utf8')).toBe(before);
    const after = readFileSync(cfgFile, 'utf8');
    expect(after).toBe(before.replace('"access": "rw"', '"access": "ro"'));
    expect(statSync(cfgFile).mode & 0o777).toBe(0o640);
    expect(loadGatewayConfig(cfgFile).peers[0]!.allow[0]!.access).toBe('ro');
    expect(readdirSync(dir).sort()).toEqual(['gw.json', 'gw.json.prev']);
  });

  it('an invalid result is refused with every problem, and nothing is written', () => {
    const before = readFileSync(cfgFile, 'utf8');
    const msg = refusal(() =>
      editGatewayConfig(cfgFile, (d) => {
        (d as Json).exports = [];
        (d as Json).tunnel = { mtu: 1 };
        return d;
      }),
    );
    expect(msg).toBe(
      `config ${cfgFile}: edit refused, nothing written: the result would have 2 problems:\n` +
        '  peers[0].allow[0].targets[0] = "1.0": expected a built-in export (by "S.L" or name) or a forwarded target of this gateway\n' +
        '  tunnel.mtu = 1: expected an integer in 1280..65507',
    );
    expect(readFileSync(cfgFile, 'utf8')).toBe(before);
    expect(readdirSync(dir)).toEqual(['gw.json']);
  });

  it('an edit that changes nothing writes nothing', () => {
    expect(editGatewayConfig(cfgFile, (d) => d)).toEqual({ file: cfgFile, changed: false });
    expect(existsSync(`${cfgFile}.prev`)).toBe(false);
  });

  it('keeps the owner (root editing a file of the daemon’s user)', () => {
    if (process.getuid?.() !== 0) return;
    chownSync(cfgFile, 12345, 23456);
    editGatewayConfig(cfgFile, (d) => ({ ...(d as Json), name: 'renamed' }));
    expect(statSync(cfgFile)).toMatchObject({ uid: 12345, gid: 23456 });
    expect(statSync(`${cfgFile}.prev`)).toMatchObject({ uid: 12345, gid: 23456 });
  });

  it('edits the file a symbolic link points at, leaving the link', () => {
    const link = join(dir, 'link.json');
    symlinkSync(cfgFile, link);
    const r = editGatewayConfig(link, (d) => ({ ...(d as Json), name: 'via-link' }));
    expect(r.file).toBe(cfgFile);
    expect(loadGatewayConfig(link).name).toBe('via-link');
  });

  it('a file changed by another writer meanwhile is not overwritten: the edit is redone on it', () => {
    let calls = 0;
    editGatewayConfig(cfgFile, (d) => {
      if (calls++ === 0) {
        // Another writer, after our read: its change must survive ours.
        writeFileSync(cfgFile, formatJson({ ...config(), name: 'theirs' }));
      }
      (d as Json).tunnel = { mtu: 1400 };
      return d;
    });
    expect(calls).toBe(2);
    const spec = loadGatewayConfig(cfgFile);
    expect(spec.name).toBe('theirs');
    expect(spec.tunnel.mtu).toBe(1400);
  });
});

describe('editEnrollmentFile', () => {
  const invite = {
    id: Buffer.alloc(16, 1).toString('base64url'),
    psk: Buffer.alloc(32, 2).toString('base64'),
    name: 'site-d',
    allow: [{ targets: ['1.0'], access: 'ro' }],
    expires: new Date(Date.now() + 3_600_000).toISOString(),
    created: new Date().toISOString(),
  };
  const enrollment = (peers: unknown[]) => {
    const f = join(dir, 'enrollment.json');
    writeFileSync(f, formatJson({ version: 1, invites: [invite], peers }), { mode: 0o600 });
    return f;
  };

  it('edits the enrolled peers, validated with the config, keeping invites and mode 0600', () => {
    const f = enrollment([{ name: 'site-c', publicKey: KEY_C, allow: [{ targets: ['1.0'], access: 'ro' }] }]);
    const r = editEnrollmentFile(cfgFile, (d) => {
      const peers = structuredClone([...d.peers]) as Json[];
      peers[0]!.allow[0].access = 'rw';
      return { ...d, peers };
    });
    expect(r).toEqual({ file: f, changed: true, prev: `${f}.prev` });
    const doc = JSON.parse(readFileSync(f, 'utf8'));
    expect(doc.invites).toEqual([invite]);
    expect(doc.peers[0].allow[0].access).toBe('rw');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(statSync(`${f}.prev`).mode & 0o777).toBe(0o600);
    expect(loadGatewayConfig(cfgFile).peers.map((p) => `${p.name}:${p.source}`)).toEqual([
      'site-b:config',
      'site-c:enrolled',
    ]);
  });

  it('a clash with the config’s peers is refused, naming the enrollment file', () => {
    const f = enrollment([{ name: 'site-c', publicKey: KEY_C }]);
    const before = readFileSync(f, 'utf8');
    const msg = refusal(() =>
      editEnrollmentFile(cfgFile, (d) => ({ ...d, peers: [{ ...(d.peers[0] as Json), name: 'site-b' }] })),
    );
    expect(msg).toBe(
      `enrollment file ${f}: edit refused, nothing written: the result would have a problem:\n` +
        `  enrollment file ${f}: peers[0].name = "site-b": expected a name not used by another peer (peers[0] has it)`,
    );
    expect(readFileSync(f, 'utf8')).toBe(before);
    expect(existsSync(`${f}.lock`)).toBe(false);
  });

  it('an edit that changes nothing reports so', () => {
    const f = enrollment([]);
    expect(editEnrollmentFile(cfgFile, (d) => d)).toEqual({ file: f, changed: false });
  });

  it('an enrollment file others can read is not edited', () => {
    const f = enrollment([]);
    chmodSync(f, 0o644);
    expect(refusal(() => editEnrollmentFile(cfgFile, (d) => d))).toMatch(
      /permissions 0644 let group or others/,
    );
  });
});
