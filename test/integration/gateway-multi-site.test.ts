/**
 * Several sites: gateways A, B and C around one router (a mesh: every gateway can reach every
 * other). B's export disk-b1 is imported at two sites (A read-write, C read-only); C's export
 * disk-c is imported by A, so A has two peers at once. Each site's initiator sees only what its
 * gateway imports, data written through A is read through C, and C's write is refused.
 */
import {
  chmodSync,
  copyFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECTOR_SIZE } from '../../src/aoe/constants.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { checkPattern, fillPattern } from '../../src/initiator/pattern.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { AOEGW, ROOT } from '../helpers/aoegw.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import { type Spawned, spawnTracked } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();
const KEYS = join(ROOT, 'keys-example');

interface GatewaySite {
  name: string;
  gw: Netns;
  ini: Netns;
  iniIf: string;
  lan: string;
  wanIp: string;
}

describe.skipIf(skip)('gateways at three sites around one router', () => {
  let dir: string;
  const namespaces: Netns[] = [];
  const procs: Spawned[] = [];
  const sites: Record<'a' | 'b' | 'c', GatewaySite> = {} as Record<'a' | 'b' | 'c', GatewaySite>;
  const keys: Record<string, { key: string; pub: string }> = {};
  const initiators: Initiator[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-multi-'));
    const router = new Netns('mrtr');
    namespaces.push(router);
    router.exec('sysctl', '-qw', 'net.ipv4.ip_forward=1');
    // Keys: A and B from keys-example, C made here.
    for (const n of ['a', 'b']) {
      const key = join(dir, `${n}.key`);
      copyFileSync(join(KEYS, `gateway-${n}.key`), key);
      chmodSync(key, 0o600);
      keys[n] = { key, pub: readFileSync(join(KEYS, `gateway-${n}.pub`), 'utf8').trim() };
    }
    const c = spawnTracked(process.execPath, [AOEGW, 'keygen', join(dir, 'c.key')]);
    await waitFor(() => c.child.exitCode !== null, 10_000);
    keys.c = { key: join(dir, 'c.key'), pub: c.output().trim() };
    for (const [i, name] of (['a', 'b', 'c'] as const).entries()) {
      const gw = new Netns(`m${name}`);
      const ini = new Netns(`mi${name}`);
      namespaces.push(gw, ini);
      const wan = vethPair(gw, router);
      const lan = vethPair(ini, gw);
      const net = `10.92.${i + 1}`;
      gw.ip('addr', 'add', `${net}.2/24`, 'dev', wan.a);
      router.ip('addr', 'add', `${net}.1/24`, 'dev', wan.b);
      gw.ip('route', 'add', 'default', 'via', `${net}.1`);
      sites[name] = { name, gw, ini, iniIf: lan.a, lan: lan.b, wanIp: `${net}.2` };
    }
    const img = (n: string) => {
      const p = join(dir, n);
      writeFileSync(p, '');
      truncateSync(p, 16 << 20);
      return p;
    };
    const peer = (n: 'a' | 'b' | 'c', extra: object) => ({
      name: n,
      publicKey: keys[n]!.pub,
      endpoint: `${sites[n].wanIp}:7788`,
      ...extra,
    });
    const configs = {
      a: {
        peers: [
          peer('b', { imports: [{ remote: 'disk-b1', local: '7.1' }] }),
          peer('c', { imports: [{ remote: 'disk-c', local: '7.2' }] }),
        ],
      },
      b: {
        exports: [{ target: '1.1', path: img('b1.img'), name: 'disk-b1' }],
        peers: [
          peer('a', { allow: [{ targets: ['disk-b1'], access: 'rw' }] }),
          peer('c', { allow: [{ targets: ['disk-b1'], access: 'ro' }] }),
        ],
      },
      c: {
        exports: [{ target: '3.1', path: img('c.img'), name: 'disk-c' }],
        peers: [
          peer('a', { allow: [{ targets: ['disk-c'], access: 'rw' }] }),
          peer('b', { imports: [{ remote: 'disk-b1', local: '8.1' }] }),
        ],
      },
    };
    for (const n of ['b', 'c', 'a'] as const) {
      const file = join(dir, `${n}.json`);
      writeFileSync(
        file,
        JSON.stringify({
          name: `gw-${n}`,
          privateKeyFile: keys[n]!.key,
          listen: `${sites[n].wanIp}:7788`,
          stateFile: join(dir, `${n}-state.json`),
          controlSocket: join(dir, `${n}.sock`),
          enrollmentFile: join(dir, `${n}-enrollment.json`),
          links: [{ name: 'lan', iface: sites[n].lan }],
          ...configs[n],
        }),
      );
      const p = spawnTracked('ip', [
        'netns',
        'exec',
        sites[n].gw.name,
        process.execPath,
        AOEGW,
        'run',
        '--config',
        file,
      ]);
      procs.push(p);
      await waitFor(() => /ready: /.test(p.output()) || p.child.exitCode !== null, 10_000);
      if (p.child.exitCode !== null) throw new Error(`gateway ${n} did not start: ${p.output()}`);
    }
    const [gwA, , gwC] = [procs[2]!, procs[0]!, procs[1]!];
    const ok =
      (await waitFor(
        () => /e7\.1 .*: usable/.test(gwA.output()) && /e7\.2 .*: usable/.test(gwA.output()),
        20_000,
      )) && (await waitFor(() => /e8\.1 .*: usable/.test(gwC.output()), 20_000));
    if (!ok) throw new Error(`imports never became usable:\n${gwA.output()}\n${gwC.output()}`);
  }, 60_000);

  afterAll(async () => {
    for (const i of initiators) i.close();
    for (const p of procs.reverse()) await p.stop();
    for (const n of namespaces) n.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function initiatorAt(n: 'a' | 'c'): Initiator {
    const i = new Initiator(PacketLink.open({ iface: sites[n].iniIf, netns: sites[n].ini.name }));
    initiators.push(i);
    return i;
  }

  it('one export imported at two sites; a gateway with two peers; grants per peer', async () => {
    const iniA = initiatorAt('a');
    const iniC = initiatorAt('c');
    const atA = await iniA.queryConfig(1500);
    const atC = await iniC.queryConfig(1500);
    expect(atA.map((x) => `e${x.major}.${x.minor}`).sort()).toEqual(['e7.1', 'e7.2']);
    // C's own export is served on C's LAN as well; e8.1 is B's disk-b1 through C.
    expect(atC.map((x) => `e${x.major}.${x.minor}`).sort()).toEqual(['e3.1', 'e8.1']);
    // A writes disk-b1 and disk-c.
    const data = Buffer.alloc(64 * SECTOR_SIZE);
    fillPattern(data, 0, 100, 64, 9);
    for (const minor of [1, 2]) {
      const c = iniA.client(atA.find((x) => x.minor === minor)!);
      await identify(iniA, c);
      await writeSectors(iniA, c, 100, data);
    }
    // C reads what A wrote to disk-b1, through B, and may not write it.
    const cC = iniC.client(atC.find((x) => x.major === 8)!);
    const id = await identify(iniC, cC);
    expect(id.serial).toBe('disk-b1');
    const back = Buffer.alloc(64 * SECTOR_SIZE);
    await readSectors(iniC, cC, 100, back);
    expect(checkPattern(back, 0, 100, 64, 9)).toEqual([]);
    await expect(writeSectors(iniC, cC, 0, Buffer.alloc(1024, 1))).rejects.toMatchObject({ code: 'ERR_ATA' });
    const onDisk = readFileSync(join(dir, 'c.img')).subarray(100 * SECTOR_SIZE, 164 * SECTOR_SIZE);
    expect(onDisk.equals(data)).toBe(true);
  });
});
