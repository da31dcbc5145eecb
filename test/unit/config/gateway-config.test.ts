/**
 * `aoegw run` configuration: a valid two-site pair, a table of bad configs (each error names the
 * key path, the value and what is expected), and the target's own file format still loading.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_TUNNEL_MTU, loadGatewayConfig } from '../../../src/config/gateway-config.js';
import type { AoegwError } from '../../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'aoegw-gwcfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function load(content: unknown) {
  const file = join(dir, `c${n++}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return loadGatewayConfig(file);
}

const KEY_A = Buffer.alloc(32, 0xa1).toString('base64');
const KEY_B = Buffer.alloc(32, 0xb2).toString('base64');

type Json = Record<string, unknown>;

const siteA = (): Json => ({
  name: 'site-a',
  privateKeyFile: '/etc/aoegw/a.key',
  listen: '0.0.0.0:51820',
  stateFile: '/var/lib/aoegw/a.json',
  links: [{ name: 'lan', iface: 'eth1' }],
  exports: [{ target: '1.0', path: '/srv/a.img', name: 'disk-a' }],
  peers: [
    {
      name: 'site-b',
      publicKey: KEY_B,
      endpoint: '192.0.2.2:51820',
      allow: [{ targets: ['1.0'], access: 'rw' }],
      imports: [
        { remote: 'disk-b', local: '7.0' },
        { remote: '2.0', local: '7.1', links: ['lan'] },
      ],
    },
  ],
  tunnel: { mtu: 1400 },
});

const siteB = (): Json => ({
  name: 'site-b',
  privateKeyFile: '/etc/aoegw/b.key',
  listen: '[::]:51820',
  stateFile: '/var/lib/aoegw/b.json',
  links: [
    { name: 'lan', iface: 'eth1' },
    { name: 'storage', iface: 'eth2' },
  ],
  exports: [{ target: '1.0', path: '/srv/b.img', name: 'disk-b', links: ['lan'] }],
  forwards: [{ link: 'storage', targets: ['2.0'] }],
  peers: [
    {
      name: 'site-a',
      publicKey: KEY_A,
      allow: [
        { targets: ['disk-b'], access: 'ro' },
        { targets: ['2.0'], access: 'rw' },
      ],
      imports: [{ remote: 'disk-a', local: '9.0', links: ['lan'] }],
      persistentKeepaliveMs: 25000,
    },
  ],
});

describe('gateway config: valid files', () => {
  it('loads a two-site pair with defaults filled in', () => {
    const a = load(siteA());
    expect(a).toMatchObject({
      name: 'site-a',
      privateKeyFile: '/etc/aoegw/a.key',
      listen: { address: '0.0.0.0', port: 51820 },
      stateFile: '/var/lib/aoegw/a.json',
      forwards: [],
      tunnel: { mtu: 1400 },
    });
    expect(a.exports[0]).toMatchObject({ shelf: 1, slot: 0, name: 'disk-a' });
    const pb = a.peers[0]!;
    expect(pb).toMatchObject({
      name: 'site-b',
      endpoint: { address: '192.0.2.2', port: 51820 },
      allow: [{ targets: [{ shelf: 1, slot: 0 }], access: 'rw' }],
      imports: [
        { remote: { name: 'disk-b' }, localShelf: 7, localSlot: 0, links: [] },
        { remote: { shelf: 2, slot: 0 }, localShelf: 7, localSlot: 1, links: ['lan'] },
      ],
      persistentKeepaliveMs: 0,
    });
    expect(Buffer.from(pb.publicKey)).toEqual(Buffer.alloc(32, 0xb2));

    const b = load(siteB());
    expect(b.listen).toEqual({ address: '::', port: 51820 });
    expect(b.tunnel.mtu).toBe(DEFAULT_TUNNEL_MTU);
    expect(b.tunnel).toMatchObject({ gso: true, gro: true });
    const c = siteB();
    c.tunnel = { gso: false, gro: false };
    expect(load(c).tunnel).toMatchObject({ gso: false, gro: false });
    expect(b.forwards).toEqual([{ link: 'storage', targets: [{ shelf: 2, slot: 0 }] }]);
    expect(b.peers[0]).toMatchObject({
      name: 'site-a',
      allow: [
        { targets: [{ name: 'disk-b' }], access: 'ro' },
        { targets: [{ shelf: 2, slot: 0 }], access: 'rw' },
      ],
      imports: [{ remote: { name: 'disk-a' }, localShelf: 9, localSlot: 0, links: ['lan'] }],
      persistentKeepaliveMs: 25000,
    });
    expect(b.peers[0]!.endpoint).toBeUndefined();
  });

  it('an import may reuse an export address on a link the export is not served on', () => {
    const c = siteB();
    (c.peers as Json[])[0]!.imports = [{ remote: 'disk-a', local: '1.0', links: ['storage'] }];
    expect(load(c).peers[0]!.imports[0]).toMatchObject({ localShelf: 1, localSlot: 0 });
  });

  it('the target-only config (deploy/config/target.json) still loads as a gateway config', () => {
    const g = loadGatewayConfig(join(__dirname, '../../../deploy/config/target.json'));
    expect(g.exports.map((e) => `${e.shelf}.${e.slot}`)).toEqual(['1.0', '1.1', '1.2']);
    expect(g.links.map((l) => l.name)).toEqual(['storage']);
    expect(g.peers).toEqual([]);
    expect(g.forwards).toEqual([]);
    expect(g.listen).toBeUndefined();
    expect(g.privateKeyFile).toBeUndefined();
    expect(g.exports[2]).toMatchObject({ readOnly: true, allowMacs: ['52:54:00:12:34:56'] });
  });
});

/**
 * [what, site, edit, path named, value named (JSON), expectation (substring), problems reported
 * (default 1: one mistake, one problem; more where the edit really breaks a reference too)]
 */
type Case = [string, () => Json, (c: Json) => void, string, string, string, number?];

const peer = (c: Json, i = 0) => (c.peers as Json[])[i]!;

const cases: Case[] = [
  [
    'unknown top-level key',
    siteA,
    (c) => {
      c.bogus = 1;
    },
    'bogus',
    '',
    'not declared',
  ],
  [
    'unknown link key',
    siteA,
    (c) => {
      (c.links as Json[])[0]!.speed = 9000;
    },
    'links[0].speed',
    '9000',
    'known keys',
  ],
  [
    'a link named like a peer link',
    siteA,
    (c) => {
      (c.links as Json[])[0]!.name = 'peer:b';
    },
    'links[0].name',
    '"peer:b"',
    'reserved',
    2, // and the import on link "lan" names a link that is gone
  ],
  [
    'mtu on an existing interface',
    siteA,
    (c) => {
      (c.links as Json[])[0]!.mtu = 9000;
    },
    'links[0].mtu',
    '9000',
    'no mtu for an existing interface',
  ],
  [
    'both iface and tap',
    siteA,
    (c) => {
      (c.links as Json[])[0]!.tap = 'aoegw0';
    },
    'links[0]',
    '{"name":"lan","iface":"eth1","tap":"aoegw0"}',
    'exactly one of "iface"',
  ],
  [
    'unknown export key',
    siteA,
    (c) => {
      (c.exports as Json[])[0]!.mode = 'x';
    },
    'exports[0].mode',
    '"x"',
    'known keys',
  ],
  [
    'unknown peer key',
    siteA,
    (c) => {
      peer(c).psk = 'x';
    },
    'peers[0].psk',
    '"x"',
    'known keys',
  ],
  [
    'unknown grant key',
    siteA,
    (c) => {
      (peer(c).allow as Json[])[0]!.mode = 'ro';
    },
    'peers[0].allow[0].mode',
    '"ro"',
    'known keys (targets, access)',
  ],
  [
    'unknown import key',
    siteA,
    (c) => {
      (peer(c).imports as Json[])[0]!.shelf = 7;
    },
    'peers[0].imports[0].shelf',
    '7',
    'known keys (remote, local, links)',
  ],
  [
    'unknown forward key',
    siteB,
    (c) => {
      (c.forwards as Json[])[0]!.mac = 'x';
    },
    'forwards[0].mac',
    '"x"',
    'known keys (link, targets)',
  ],
  [
    'unknown tunnel key',
    siteA,
    (c) => {
      (c.tunnel as Json).psk = 'x';
    },
    'tunnel.psk',
    '"x"',
    'known keys (mtu, busyPollUs, failAfterMs, gso, gro)',
  ],
  [
    'tunnel gso not a boolean',
    siteA,
    (c) => {
      (c.tunnel as Json).gso = 'off';
    },
    'tunnel.gso',
    '"off"',
    'true or false',
  ],
  [
    'tunnel mtu too small',
    siteA,
    (c) => {
      (c.tunnel as Json).mtu = 100;
    },
    'tunnel.mtu',
    '100',
    'integer in 1280..65507',
  ],
  [
    'publicKey not base64 of 32 bytes',
    siteA,
    (c) => {
      peer(c).publicKey = 'abc';
    },
    'peers[0].publicKey',
    '"abc"',
    'X25519 public key',
  ],
  [
    'publicKey of zeros',
    siteA,
    (c) => {
      peer(c).publicKey = Buffer.alloc(32).toString('base64');
    },
    'peers[0].publicKey',
    `"${Buffer.alloc(32).toString('base64')}"`,
    'not all zeros',
  ],
  [
    'publicKey missing',
    siteA,
    (c) => delete peer(c).publicKey,
    'peers[0].publicKey',
    '',
    'X25519 public key',
  ],
  [
    'duplicate peer names',
    siteA,
    (c) => (c.peers as Json[]).push({ name: 'site-b', publicKey: KEY_A }),
    'peers[1].name',
    '"site-b"',
    'not used by another peer',
  ],
  [
    'duplicate peer keys',
    siteA,
    (c) => (c.peers as Json[]).push({ name: 'site-c', publicKey: KEY_B }),
    'peers[1].publicKey',
    `"${KEY_B}"`,
    'not used by another peer',
  ],
  [
    'peer name with a space',
    siteA,
    (c) => {
      peer(c).name = 'site b';
    },
    'peers[0].name',
    '"site b"',
    'letters, digits',
  ],
  [
    'endpoint without port',
    siteA,
    (c) => {
      peer(c).endpoint = '192.0.2.2';
    },
    'peers[0].endpoint',
    '"192.0.2.2"',
    '"IPv4:PORT"',
  ],
  [
    'endpoint octet > 255',
    siteA,
    (c) => {
      peer(c).endpoint = '300.0.2.2:1';
    },
    'peers[0].endpoint',
    '"300.0.2.2:1"',
    '"IPv4:PORT"',
  ],
  [
    'endpoint port 0',
    siteA,
    (c) => {
      peer(c).endpoint = '192.0.2.2:0';
    },
    'peers[0].endpoint',
    '"192.0.2.2:0"',
    '"IPv4:PORT"',
  ],
  [
    'endpoint hostname',
    siteA,
    (c) => {
      peer(c).endpoint = 'gw.example:51820';
    },
    'peers[0].endpoint',
    '"gw.example:51820"',
    '"IPv4:PORT"',
  ],
  [
    'listen malformed',
    siteA,
    (c) => {
      c.listen = '51820';
    },
    'listen',
    '"51820"',
    '"IPv4:PORT"',
  ],
  [
    'listen port too large',
    siteA,
    (c) => {
      c.listen = '0.0.0.0:70000';
    },
    'listen',
    '"0.0.0.0:70000"',
    '"IPv4:PORT"',
  ],
  [
    'allow names an unknown shelf.slot',
    siteA,
    (c) => {
      (peer(c).allow as Json[])[0]!.targets = ['5.5'];
    },
    'peers[0].allow[0].targets[0]',
    '"5.5"',
    'a built-in export',
  ],
  [
    'allow names an unknown export name',
    siteA,
    (c) => {
      (peer(c).allow as Json[])[0]!.targets = ['nosuch'];
    },
    'peers[0].allow[0].targets[0]',
    '"nosuch"',
    'a built-in export',
  ],
  [
    'allow with a malformed target',
    siteA,
    (c) => {
      (peer(c).allow as Json[])[0]!.targets = ['1/2'];
    },
    'peers[0].allow[0].targets[0]',
    '"1/2"',
    '"SHELF.SLOT"',
  ],
  [
    'allow with a bad access',
    siteA,
    (c) => {
      (peer(c).allow as Json[])[0]!.access = 'write';
    },
    'peers[0].allow[0].access',
    '"write"',
    '"ro" or "rw"',
  ],
  [
    'import colliding with a local export on the same link',
    siteA,
    (c) => {
      (peer(c).imports as Json[])[0]!.local = '1.0';
    },
    'peers[0].imports[0].local',
    '"1.0"',
    'not already used on link lan by exports (e1.0)',
  ],
  [
    'two imports at one local address',
    siteA,
    (c) => {
      (peer(c).imports as Json[])[1]!.local = '7.0';
    },
    'peers[0].imports[1].local',
    '"7.0"',
    'not already used on link lan by peers[0].imports[0] (site-b:disk-b)',
  ],
  [
    'two peers importing to one local address',
    siteA,
    (c) =>
      (c.peers as Json[]).push({
        name: 'site-c',
        publicKey: KEY_A,
        imports: [{ remote: '3.3', local: '7.1' }],
      }),
    'peers[1].imports[0].local',
    '"7.1"',
    'not already used on link lan',
  ],
  [
    'import local address malformed',
    siteA,
    (c) => {
      (peer(c).imports as Json[])[0]!.local = '7';
    },
    'peers[0].imports[0].local',
    '"7"',
    'a local address as "SHELF.SLOT"',
  ],
  [
    'import local at the broadcast slot',
    siteA,
    (c) => {
      (peer(c).imports as Json[])[0]!.local = '7.255';
    },
    'peers[0].imports[0].local',
    '"7.255"',
    'a local address',
  ],
  [
    'import on an unknown link',
    siteA,
    (c) => {
      (peer(c).imports as Json[])[1]!.links = ['wan'];
    },
    'peers[0].imports[1].links[0]',
    '"wan"',
    'one of the configured links (lan)',
  ],
  [
    'forward on an unknown link',
    siteB,
    (c) => {
      (c.forwards as Json[])[0]!.link = 'san';
    },
    'forwards[0].link',
    '"san"',
    'one of the configured links (lan, storage)',
  ],
  [
    'forward target also exported',
    siteB,
    (c) => {
      (c.forwards as Json[])[0]!.targets = ['1.0'];
    },
    'forwards[0].targets[0]',
    '"1.0"',
    'not also a built-in export',
    2, // and the grant of 2.0, no longer forwarded
  ],
  [
    'forward target twice',
    siteB,
    (c) => {
      (c.forwards as Json[])[0]!.targets = ['2.0', '2.0'];
    },
    'forwards[0].targets[1]',
    '"2.0"',
    'not forwarded twice',
  ],
  [
    'forward without targets',
    siteB,
    (c) => {
      (c.forwards as Json[])[0]!.targets = [];
    },
    'forwards[0].targets',
    '[]',
    'non-empty',
    2, // and the grant of 2.0, no longer forwarded
  ],
  [
    'peers without privateKeyFile',
    siteA,
    (c) => delete c.privateKeyFile,
    'privateKeyFile',
    '""',
    'private key file',
  ],
  ['peers without listen', siteA, (c) => delete c.listen, 'listen', '""', 'when peers are configured'],
  // An object where a list belongs must not silently become the empty default.
  [
    'peers an object',
    siteA,
    (c) => {
      c.peers = { name: 'x' };
    },
    'peers',
    '{"name":"x"}',
    'a list of peers',
  ],
  [
    'peers a string',
    siteA,
    (c) => {
      c.peers = 'x';
    },
    'peers',
    '"x"',
    'a list of peers',
  ],
  [
    'links an object',
    siteA,
    (c) => {
      c.links = { name: 'lan', iface: 'eth1' };
    },
    'links',
    '{"name":"lan","iface":"eth1"}',
    'a list of links',
  ],
  [
    'exports an object',
    siteA,
    (c) => {
      c.exports = {};
    },
    'exports',
    '{}',
    'a list of exports',
  ],
  [
    'forwards an object',
    siteB,
    (c) => {
      c.forwards = { link: 'storage' };
    },
    'forwards',
    '{"link":"storage"}',
    'a list of forwards',
  ],
  [
    'keepalive out of range',
    siteA,
    (c) => {
      peer(c).persistentKeepaliveMs = -5;
    },
    'peers[0].persistentKeepaliveMs',
    '-5',
    'integer in 0..3600000',
  ],
  [
    'metrics not an object',
    siteA,
    (c) => {
      c.metrics = '127.0.0.1:9588';
    },
    'metrics',
    '"127.0.0.1:9588"',
    'an object',
  ],
  [
    'metrics address with a host name',
    siteA,
    (c) => {
      c.metrics = { listen: 'localhost:9588' };
    },
    'metrics.listen',
    '"localhost:9588"',
    '"IPv4:PORT" or "[IPv6]:PORT"',
  ],
  [
    'unknown metrics key',
    siteA,
    (c) => {
      c.metrics = { port: 9588 };
    },
    'metrics.port',
    '9588',
    'one of the known keys (listen, initiatorLatency)',
  ],
  [
    'nothing configured',
    () => ({ stateFile: '/tmp/s.json' }),
    () => {},
    'links',
    '[]',
    'at least one link, export or peer',
  ],
];

describe('gateway config: metrics', () => {
  it('absent: no metrics server', () => {
    expect(load(siteA()).metrics).toBeUndefined();
  });

  it('an empty object: loopback, port 9588', () => {
    expect(load({ ...siteA(), metrics: {} }).metrics).toEqual({ address: '127.0.0.1', port: 9588 });
  });

  it('listen: any address (IPv4 or IPv6), port 0 = any', () => {
    expect(load({ ...siteA(), metrics: { listen: '0.0.0.0:9100' } }).metrics).toEqual({
      address: '0.0.0.0',
      port: 9100,
    });
    expect(load({ ...siteA(), metrics: { listen: '[::1]:0' } }).metrics).toEqual({ address: '::1', port: 0 });
  });
});

describe('gateway config: every error names key path, value and expectation', () => {
  it.each(cases)('%s', (_what, site, edit, path, value, expected, problems = 1) => {
    const c = site();
    edit(c);
    let err: AoegwError | undefined;
    try {
      load(c);
    } catch (e) {
      err = e as AoegwError;
    }
    expect(err, 'the config must be rejected').toBeDefined();
    expect(err!.code).toBe('ERR_CONFIG');
    const msg = err!.message;
    expect(msg).toMatch(/^config \S+\.json: /); // the file
    expect(msg).toContain(path);
    if (value !== '') expect(msg).toContain(`${path} = ${value}`);
    expect(msg).toContain(expected);
    // The checks after a problem go on with a fallback that adds no other.
    expect(msg.split('\n').length - (problems > 1 ? 1 : 0), msg).toBe(problems);
  });

  it('a file that is not JSON names the file', () => {
    expect(() => load('{ not json')).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringMatching(/^config \S+\.json: /) }),
    );
  });
});

describe('gateway config: every problem at once', () => {
  it('a config with five different problems reports all five, one per line', () => {
    const c = siteB();
    (c.links as Json[])[1]!.batch = 0;
    (c.exports as Json[])[0]!.durability = 'fast';
    (c.forwards as Json[])[0]!.link = 'san';
    (peer(c).allow as Json[])[0]!.access = 'write';
    c.tunnel = { mtu: 100 };
    let err: AoegwError | undefined;
    try {
      load(c);
    } catch (e) {
      err = e as AoegwError;
    }
    expect(err?.code).toBe('ERR_CONFIG');
    const lines = err!.message.split('\n');
    expect(lines[0]).toMatch(/^config \S+\.json: 5 problems:$/);
    expect(lines.slice(1)).toEqual([
      '  links[1].batch = 0: expected an integer in 1..1024',
      '  exports[0].durability = "fast": expected one of sync, writeback, direct',
      '  forwards[0].link = "san": expected one of the configured links (lan, storage)',
      '  peers[0].allow[0].access = "write": expected "ro" or "rw"',
      '  tunnel.mtu = 100: expected an integer in 1280..65507',
    ]);
  });

  it('convict’s top-level problems come with the others', () => {
    const c = siteA();
    c.bogus = 1;
    c.name = 5;
    (c.links as Json[])[0]!.speed = 1;
    expect(() => load(c)).toThrow(
      /3 problems:\n {2}name: must be of type String: value was 5\n {2}.*'bogus' not declared.*\n {2}links\[0\]\.speed = 1/,
    );
  });
});
