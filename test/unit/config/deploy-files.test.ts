/** The shipped example configs must load with the same validation the daemons use. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../../src/config/gateway-config.js';
import { loadTargetConfig } from '../../../src/config/target-config.js';

const root = join(import.meta.dirname, '..', '..', '..');
const deployConfig = (name: string) => join(root, 'deploy', 'config', name);
const examplePub = (name: string) =>
  new Uint8Array(Buffer.from(readFileSync(join(root, 'keys-example', name), 'utf8').trim(), 'base64'));

describe('deploy/config/target.json', () => {
  it('is a valid target config', () => {
    const c = loadTargetConfig(deployConfig('target.json'));
    expect(c.exports.map((e) => `${e.shelf}.${e.slot}:${e.durability}:${e.readOnly}`)).toEqual([
      '1.0:sync:false',
      '1.1:direct:false',
      '1.2:sync:true',
    ]);
  });
});

describe('deploy/config/gateway-{a,b}.json (a two-site pair)', () => {
  const a = loadGatewayConfig(deployConfig('gateway-a.json'));
  const b = loadGatewayConfig(deployConfig('gateway-b.json'));

  it('A imports B’s forward 1.0 as 7.0 and its export disk-b1 as 7.1, and grants B nothing', () => {
    expect(a.privateKeyFile).toBe('/etc/aoegw/gateway.key');
    expect(a.links.map((l) => l.name)).toEqual(['initiators']);
    expect(a.exports).toEqual([]);
    expect(a.peers).toHaveLength(1);
    const peer = a.peers[0]!;
    expect(peer.name).toBe('gateway-b');
    expect(peer.publicKey).toEqual(examplePub('gateway-b.pub'));
    expect(peer.allow).toEqual([]);
    expect(peer.imports).toEqual([
      { remote: { shelf: 1, slot: 0 }, localShelf: 7, localSlot: 0, links: ['initiators'] },
      { remote: { name: 'disk-b1' }, localShelf: 7, localSlot: 1, links: ['initiators'] },
    ]);
  });

  it('B forwards 1.0, exports 1.1 as disk-b1, and lets A use both read-write', () => {
    expect(b.forwards).toEqual([{ link: 'storage', targets: [{ shelf: 1, slot: 0 }] }]);
    expect(b.exports.map((e) => `${e.shelf}.${e.slot}:${e.name}:${e.durability}`)).toEqual([
      '1.1:disk-b1:sync',
    ]);
    const peer = b.peers[0]!;
    expect(peer.name).toBe('gateway-a');
    expect(peer.publicKey).toEqual(examplePub('gateway-a.pub'));
    expect(peer.allow).toEqual([{ targets: [{ shelf: 1, slot: 0 }, { name: 'disk-b1' }], access: 'rw' }]);
    expect(peer.imports).toEqual([]);
  });

  it('each side points at the other’s listen port with the same tunnel MTU', () => {
    expect(a.peers[0]!.endpoint?.port).toBe(b.listen?.port);
    expect(b.peers[0]!.endpoint?.port).toBe(a.listen?.port);
    expect(a.tunnel.mtu).toBe(b.tunnel.mtu);
  });
});

describe('keys-example/site-{a,b}.json (the two-site example)', () => {
  // Their key paths are relative to the repository root, as keys-example/README.md says.
  const load = (name: string) => {
    const cwd = process.cwd();
    process.chdir(root);
    try {
      return loadGatewayConfig(join('keys-example', name));
    } finally {
      process.chdir(cwd);
    }
  };
  const a = load('site-a.json');
  const b = load('site-b.json');

  it('each side pins the other by the public key of the other example key', () => {
    expect(a.peers[0]!.publicKey).toEqual(examplePub('gateway-b.pub'));
    expect(b.peers[0]!.publicKey).toEqual(examplePub('gateway-a.pub'));
    expect(a.privateKeyFile).toBe('keys-example/gateway-a.key');
    expect(b.privateKeyFile).toBe('keys-example/gateway-b.key');
  });

  it('A imports exactly what B grants it, and reaches B where B listens', () => {
    const granted = b.peers[0]!.allow.flatMap((g) => g.targets.map((t) => JSON.stringify(t)));
    const imported = a.peers[0]!.imports.map((i) => JSON.stringify(i.remote));
    expect(imported.sort()).toEqual(granted.sort());
    expect(`${a.peers[0]!.endpoint?.address}:${a.peers[0]!.endpoint?.port}`).toBe(
      `${b.listen?.address}:${b.listen?.port}`,
    );
  });
});
