/**
 * Issue 7 item 1: a link that goes down (`ip link set down`, `ip link del`) must not kill
 * `aoegw serve`. The daemon keeps running, re-binds when the interface returns (a re-created one
 * has a new ifindex), re-announces, and a write stream from our initiator resumes and verifies.
 * And an event loop that empties while serving is an error exit, never exit 0.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SECTOR_SIZE } from '../../src/aoe/constants.js';
import { formatMac } from '../../src/aoe/mac.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { discover, identify, writeSectors } from '../../src/initiator/operations.js';
import { fillPattern } from '../../src/initiator/pattern.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import type { LinkStateEvent } from '../../src/io/frame-link.js';
import { interfaceInfo, PacketLink } from '../../src/io/packet-link.js';
import { AOEGW } from '../helpers/aoegw.js';
import { sparseImage } from '../helpers/images.js';
import { ip, netnsSkipReason, vethPair } from '../helpers/netns.js';
import { spawnTracked } from '../helpers/processes.js';
import { useServePair } from '../helpers/serve-pair.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason();

describe.skipIf(skip)('link down and back during a write stream', () => {
  const site = useServePair('ld');

  it('survives down/up and del/re-add: the daemon stays, I/O resumes, the data verifies', async () => {
    const { v, srv } = await site.serveOnNewPair({ mtu: 1500, target: '5.1', bytes: 16 << 20 });
    const link = PacketLink.open({ iface: v.a, netns: site.nsI.name });
    const events: LinkStateEvent[] = [];
    const ini = new Initiator(link);
    site.track(ini);
    link.onLinkState((e) => events.push(e));
    const [t] = await discover(ini, 300);
    expect(t?.target).toBe('e5.1');
    const adverts = await ini.queryConfig(200, { major: 5, minor: 1 });
    const c = ini.client(adverts[0]!);
    const id = await identify(ini, c);

    // The stream: 4 writers over a 2048-sector region, pass after pass, each chunk's content a
    // function of (LBA, seed). Counts completed writes so the test can see I/O resume.
    const region = 2048;
    const chunk = 64;
    const seed = 0x1d0e;
    let done = 0;
    let stop = false;
    let failure: unknown;
    let next = 0;
    const passesAt = (n: number) => Math.floor(n / (region / chunk));
    const writer = async () => {
      const buf = Buffer.alloc(chunk * SECTOR_SIZE);
      while (!stop) {
        const lba = next;
        next = (next + chunk) % region;
        fillPattern(buf, 0, lba, chunk, seed);
        await writeSectors(ini, c, lba, buf);
        done++;
      }
    };
    const stream = Promise.all([writer(), writer(), writer(), writer()]).catch((e) => {
      failure = e;
    });
    const progressAfter = async (what: string) => {
      const base = done;
      const ok = await waitFor(() => done >= base + 100 || failure !== undefined, 15_000);
      expect(failure, `${what}: ${String(failure)}\n${srv.output()}`).toBeUndefined();
      expect(ok, `${what}: no progress\n${srv.output()}`).toBe(true);
    };
    await progressAfter('before');

    // 1. Down, then up: same interface, same ifindex.
    site.nsT.ip('link', 'set', v.b, 'down');
    await sleep(800);
    expect(srv.child.exitCode, srv.output()).toBeNull();
    site.nsT.ip('link', 'set', v.b, 'up');
    await progressAfter('after down/up');
    expect(srv.output()).toMatch(/link .*down/);

    // 2. Delete the pair (both ends go), re-create it with the same names and MACs (like a
    // re-plugged NIC): new ifindexes, so both sockets must be re-bound. (A new MAC would need the
    // initiator to re-discover: its clients address the target's MAC.)
    const macA = interfaceInfo(v.a, site.nsI.name).mac;
    const macB = interfaceInfo(v.b, site.nsT.name).mac;
    const indexB = interfaceInfo(v.b, site.nsT.name).index;
    site.nsT.ip('link', 'del', v.b);
    await sleep(800);
    expect(srv.child.exitCode, srv.output()).toBeNull();
    ip(
      'link',
      'add',
      v.a,
      'netns',
      site.nsI.name,
      'address',
      formatMac(macA),
      'type',
      'veth',
      'peer',
      'name',
      v.b,
      'netns',
      site.nsT.name,
      'address',
      formatMac(macB),
    );
    site.nsI.ip('link', 'set', v.a, 'up');
    site.nsT.ip('link', 'set', v.b, 'up');
    expect(interfaceInfo(v.b, site.nsT.name).index).not.toBe(indexB);
    await progressAfter('after del/re-add');
    expect(srv.child.exitCode, srv.output()).toBeNull();
    // Our own initiator link went down and came back too, through the same machinery.
    expect(events.map((e) => e.state)).toContain('down');
    expect(events.at(-1)?.state).toBe('up');

    // Finish a whole pass after the last event, then check every sector the stream wrote.
    const target = done + region / chunk + 8;
    await waitFor(() => done >= target || failure !== undefined, 20_000);
    stop = true;
    await stream;
    expect(failure).toBeUndefined();
    expect(passesAt(done)).toBeGreaterThan(1);
    const r = await verifyPattern(ini, c, {
      startLba: 0,
      sectors: region,
      seed,
      readOnly: true,
      identity: id,
    });
    expect(r.mismatches, `first: ${r.firstMismatches.join(',')}`).toBe(0);
    expect(srv.child.exitCode).toBeNull();
    // The re-announce after each return is visible to the initiator as an advert.
    expect(srv.output()).toMatch(/link .*up.*re-announced/);
  }, 90_000);

  it('an idle link: down/up and del/re-add, the daemon answers discovery again', async () => {
    const { v, srv } = await site.serveOnNewPair({ mtu: 1500, target: '5.2', bytes: 1 << 20 });
    const ini = new Initiator(PacketLink.open({ iface: v.a, netns: site.nsI.name }));
    site.track(ini);
    expect((await ini.queryConfig(200, { major: 5, minor: 2 })).length).toBe(1);
    site.nsT.ip('link', 'set', v.b, 'down');
    expect(await waitFor(() => /down \(ENETDOWN/.test(srv.output()), 3000), srv.output()).toBe(true);
    await sleep(300);
    expect(srv.child.exitCode).toBeNull();
    site.nsT.ip('link', 'set', v.b, 'up');
    expect(await waitFor(() => /up \(up\)/.test(srv.output()), 3000), srv.output()).toBe(true);
    expect((await ini.queryConfig(200, { major: 5, minor: 2 })).length).toBe(1);
    // Deleted while idle (a new pair with new MACs): a fresh initiator finds it again.
    site.nsT.ip('link', 'del', v.b);
    await sleep(500);
    expect(srv.child.exitCode, srv.output()).toBeNull();
    vethPair(site.nsI, site.nsT, 1500, v.a.slice(2));
    const ini2 = new Initiator(PacketLink.open({ iface: v.a, netns: site.nsI.name }));
    site.track(ini2);
    expect(await waitFor(() => (srv.output().match(/up \(up\)/g) ?? []).length >= 2, 3000)).toBe(true);
    const found = await ini2.queryConfig(200, { major: 5, minor: 2 });
    expect(found.map((a) => a.mac.toString('hex'))).toEqual([
      interfaceInfo(v.b, site.nsT.name).mac.toString('hex'),
    ]);
    expect(srv.child.exitCode).toBeNull();
  }, 30_000);

  it('exits non-zero with a clear message when its event loop empties', async () => {
    const v = vethPair(site.nsI, site.nsT, 1500);
    const img = sparseImage(site.dir, 'e.img', 1 << 20);
    // Fault injection: a preload that makes the addon's start() a no-op, so no receive handle
    // ever keeps the loop alive (what libuv's dropped poll handle did on a link error).
    const preload = join(site.dir, 'no-start.cjs');
    writeFileSync(
      preload,
      `const Module = require('module');
const orig = Module._extensions['.node'];
Module._extensions['.node'] = function (mod, filename) {
  orig(mod, filename);
  const real = mod.exports, o = {};
  for (const k of Object.getOwnPropertyNames(real)) o[k] = real[k];
  o.start = () => {};
  mod.exports = o;
};\n`,
    );
    const p = spawnTracked(process.execPath, [
      '--require',
      preload,
      AOEGW,
      'serve',
      '--iface',
      v.b,
      '--netns',
      site.nsT.name,
      '--export',
      `6.1=${img}`,
      '--state',
      join(site.dir, 'st2.json'),
    ]);
    site.servers.push(p);
    const exited = await waitFor(() => p.child.exitCode !== null, 10_000);
    expect(exited, p.output()).toBe(true);
    expect(p.output()).toMatch(/ready: /);
    expect(p.child.exitCode).not.toBe(0);
    expect(p.output()).toMatch(/event loop emptied/);
  }, 30_000);
});
