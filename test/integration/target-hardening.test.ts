/**
 * `aoegw serve` against a raw-socket attacker in another namespace (issue 7):
 * - reflection and amplification: group-bit source MACs get nothing; a broadcast Query Config
 *   flood from one MAC draws a bounded number of answers; our initiator's discovery still sees
 *   every one of 64 exports;
 * - a state-change flood (config-string toggles from spoofed MACs) does not starve a legitimate
 *   initiator's I/O, and a state change's reply leaves only once the state file holds it;
 * - a state file that cannot be written: the change is answered with AoE error 3, not acked;
 *   a state path that is not writable at start-up stops the daemon with ERR_STATE_FILE.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrame } from '../../src/aoe/index.js';
import { runBench } from '../../src/initiator/bench.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { PacketLink } from '../../src/io/packet-link.js';
import type { ServerStats } from '../../src/target/server.js';
import { AOEGW, startServe } from '../helpers/aoegw.js';
import { sparseImage } from '../helpers/images.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import { hasCommand, type Spawned, spawnTracked } from '../helpers/processes.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { mac, mask, qc } from '../unit/target/helpers.js';

const skip = netnsSkipReason();
const WILD = { dst: 'ff:ff:ff:ff:ff:ff', major: 0xffff, minor: 0xff };

/** AoE responses seen on a link, by destination MAC (hex). */
function sniff(link: PacketLink): { byDst: Map<string, number>; frames: Buffer[] } {
  const byDst = new Map<string, number>();
  const frames: Buffer[] = [];
  link.onBatch((fr, lens, count) => {
    for (let i = 0; i < count; i++) {
      const f = fr[i]!;
      if (lens[i]! < 24 || f.readUInt16BE(12) !== 0x88a2 || (f[14]! & 0x08) === 0) continue;
      const d = f.subarray(0, 6).toString('hex');
      byDst.set(d, (byDst.get(d) ?? 0) + 1);
      frames.push(Buffer.from(f.subarray(0, lens[i]!)));
    }
  });
  return { byDst, frames };
}

function lastStats(server: Spawned): ServerStats {
  const line = server
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{"engine"'))
    .at(-1)!;
  return JSON.parse(line) as ServerStats;
}

async function stats(server: Spawned): Promise<ServerStats> {
  const before = server
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{"engine"')).length;
  server.child.kill('SIGUSR1');
  await waitFor(
    () =>
      server
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{"engine"')).length > before,
    3000,
  );
  return lastStats(server);
}

describe.skipIf(skip)('built-in target against a raw-socket attacker', () => {
  let dir: string;
  let nsI: Netns;
  let nsT: Netns;
  const servers: Spawned[] = [];
  const links: PacketLink[] = [];
  const mounts: string[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-hard-'));
    nsI = new Netns('hdi');
    nsT = new Netns('hdt');
  });
  afterAll(async () => {
    for (const l of links) l.close();
    for (const s of servers) await s.stop('SIGKILL');
    for (const m of mounts) spawnSync('umount', [m]);
    nsI?.delete();
    nsT?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // The attacker also watches replies sent to the MACs it spoofs: capture mode sees them.
  function open(iface: string): PacketLink {
    const l = PacketLink.open({ iface, netns: nsI.name, monitor: true });
    links.push(l);
    return l;
  }

  it('no reflection to group sources; broadcast floods draw bounded answers; discovery sees all 64', async () => {
    const v = vethPair(nsI, nsT, 1500);
    const exportsArgs: string[] = [];
    for (let i = 0; i < 64; i++) exportsArgs.push('--export', `1.${i}=memory:64k`);
    const server = await startServe([
      '--iface',
      v.b,
      '--netns',
      nsT.name,
      ...exportsArgs,
      '--state',
      join(dir, 'amp.json'),
    ]);
    servers.push(server);
    const attacker = open(v.a);
    const seen = sniff(open(v.a));
    await sleep(200); // the start-up announcements pass
    seen.byDst.clear();

    // 1. Group-bit sources: broadcast, IPv4 multicast, IPv6 multicast; wildcard and directed.
    for (const src of ['ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:fb', '33:33:00:00:00:01']) {
      for (let i = 0; i < 20; i++) {
        attacker.send(qc({ ...WILD, src }));
        attacker.send(qc({ dst: 'ff:ff:ff:ff:ff:ff', src, major: 1, minor: 3 }));
      }
    }
    attacker.flush();
    await sleep(300);
    expect([...seen.byDst.values()].reduce((a, b) => a + b, 0)).toBe(0);

    // 2. A broadcast flood from one unicast MAC: 400 queries in ~1 s (unlimited: 25,600 answers).
    const flooder = '02:66:00:00:00:01';
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 40; i++) attacker.send(qc({ ...WILD, src: flooder }));
      attacker.flush();
      await sleep(100);
    }
    await sleep(300);
    const answers = seen.byDst.get(mac(flooder).toString('hex')) ?? 0;
    // Burst 8 plus 1/s, 64 answers per admitted query.
    expect(answers).toBeGreaterThanOrEqual(8 * 64);
    expect(answers).toBeLessThanOrEqual(11 * 64);

    // 3. Our initiator's discovery (Linux's: one broadcast query) still gets every export.
    const ini = new Initiator(open(v.a));
    const adverts = await ini.queryConfig(700);
    expect(new Set(adverts.map((a) => a.minor)).size).toBe(64);

    let st = await stats(server);
    const link = Object.values(st.engine.links)[0]!;
    expect(link.groupSource).toBe(120);
    expect(link.broadcastRateLimited).toBeGreaterThan(380);

    // 4. Spoofed MACs do not grow the per-initiator stats: 1500 MACs × 8 exports (directed reads).
    const dst = adverts[0]!.mac.toString('hex').replace(/(..)(?!$)/g, '$1:');
    for (let m = 0; m < 1500; m++) {
      const src = `02:55:00:00:${((m >> 8) & 0xff).toString(16).padStart(2, '0')}:${(m & 0xff).toString(16).padStart(2, '0')}`;
      for (let e = 0; e < 8; e++) attacker.send(qc({ dst, src, major: 1, minor: e }));
      if (m % 50 === 49) {
        attacker.flush();
        await sleep(5);
      }
    }
    attacker.flush();
    await sleep(300);
    st = await stats(server);
    const line = server
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{"engine"'))
      .at(-1)!;
    const e0 = st.engine.exports['e1.0']!;
    expect(e0.requests.queryConfig).toBeGreaterThan(1500);
    expect(Object.keys(e0.initiators).length).toBeLessThanOrEqual(33);
    expect(e0.initiators.other!.requests).toBeGreaterThan(1400);
    // Unbounded (1024 MACs per export before) this line was ~0.8 MB; now a few dozen KB.
    expect(line.length).toBeLessThan(300_000);
  });

  it('an unlisted MAC cannot edit a non-empty Mac Mask List (reads stay open)', async () => {
    const v = vethPair(nsI, nsT, 1500);
    const statePath = join(dir, 'mask.json');
    const server = await startServe([
      '--iface',
      v.b,
      '--netns',
      nsT.name,
      '--export',
      '1.4=memory:64k',
      '--state',
      statePath,
    ]);
    servers.push(server);
    const admin = open(v.a);
    const replies = sniff(admin).frames;
    const ini = new Initiator(open(v.a));
    const [advert] = await ini.queryConfig(500, { major: 1, minor: 4 });
    const dst = advert!.mac.toString('hex').replace(/(..)(?!$)/g, '$1:');
    const me = admin.mac.toString('hex').replace(/(..)(?!$)/g, '$1:');
    const intruder = '02:99:00:00:00:01';
    const ask = async (
      src: string,
      mcmd: number,
      directives: { dcmd: number; mac: string }[],
      tag: number,
    ) => {
      admin.send(mask({ dst, src, major: 1, minor: 4, mcmd, directives, tag }));
      admin.flush();
      await waitFor(() => replies.some((f) => f.readUInt32BE(20) === tag), 500);
      const f = replies.find((r) => r.readUInt32BE(20) === tag);
      if (!f) return undefined;
      const d = decodeFrame(f);
      return d.ok ? d.value : undefined;
    };
    // The administrator lists itself.
    expect(await ask(me, 1, [{ dcmd: 1, mac: me }], 9001)).toMatchObject({ merror: 0 });
    // The intruder's edits (delete the admin, add itself) draw nothing and change nothing.
    expect(await ask(intruder, 1, [{ dcmd: 2, mac: me }], 9002)).toBeUndefined();
    expect(await ask(intruder, 1, [{ dcmd: 1, mac: intruder }], 9003)).toBeUndefined();
    // A read is still answered, and shows the admin's list unchanged.
    expect(await ask(intruder, 0, [], 9004)).toMatchObject({ directives: [{ dcmd: 0, mac: me }] });
    expect(JSON.parse(readFileSync(statePath, 'utf8')).exports['e1.4'].masks).toEqual([{ ns: '', mac: me }]);
    const st = await stats(server);
    expect(st.engine.exports['e1.4']!.drops.masked).toBe(2);
  });

  it('a state-toggle flood does not starve I/O; a state change is acked only once it is in the file', async () => {
    const v = vethPair(nsI, nsT, 1500);
    const img = sparseImage(dir, 'st.img', 64 << 20);
    const statePath = join(dir, 'toggle', 'state.json');
    const server = await startServe([
      '--iface',
      v.b,
      '--netns',
      nsT.name,
      '--export',
      `1.1=${img}`,
      '--state',
      statePath,
    ]);
    servers.push(server);
    const ini = new Initiator(open(v.a));
    const [advert] = await ini.queryConfig(500, { major: 1, minor: 1 });
    const client = ini.client(advert!);
    const target = advert!.mac;
    const bench = () =>
      runBench(client, {
        rw: 'randread',
        bs: 4096,
        qd: 16,
        timeS: 1.5,
        regionStart: 0,
        regionSectors: 64 << 11,
        now: () => performance.now(),
      });
    // ~6,000 toggles a second from ever-new spoofed MACs (each phase bounded to 10 s).
    const attacker = open(v.a);
    const frames: Buffer[] = [];
    for (let i = 0; i < 600; i++) {
      const src = `02:77:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
      frames.push(
        qc({
          dst: target.toString('hex').replace(/(..)(?!$)/g, '$1:'),
          src,
          major: 1,
          minor: 1,
          ccmd: 4,
          config: i % 2 ? 'A' : 'B',
        }),
      );
    }
    let sent = 0;
    const withFlood = async <T>(fn: () => Promise<T>): Promise<T> => {
      let flooding = true;
      const flood = (async () => {
        const end = performance.now() + 10_000;
        for (let k = 0; flooding && performance.now() < end; k++) {
          // Spread out (6 frames a millisecond, not 60 every 10 ms): each lands in its own
          // receive batch, as a steady attacker's would, so batching cannot hide the cost.
          for (let j = 0; j < 6; j++) attacker.send(frames[(k * 6 + j) % frames.length]!);
          attacker.flush();
          sent += 6;
          await sleep(1);
        }
      })();
      try {
        await sleep(200);
        return await fn();
      } finally {
        flooding = false;
        await flood;
      }
    };
    // Alternated, so that load from elsewhere on the machine hits both kinds alike.
    const quiet = [await bench()];
    const loud = [await withFlood(bench)];
    quiet.push(await bench());
    loud.push(await withFlood(bench));
    for (const r of [...quiet, ...loud]) expect(r.errors).toBe(0);
    expect(sent).toBeGreaterThan(10_000);
    const best = (rs: { iops: number }[]) => Math.max(...rs.map((r) => r.iops));
    // Loose: this is not a benchmark. Before the fix I/O fell to about a fifth (18k → 3.7k IOPS).
    expect(
      best(loud),
      `IOPS quiet ${quiet.map((r) => r.iops | 0)}, flooded ${loud.map((r) => r.iops | 0)}`,
    ).toBeGreaterThan(best(quiet) * 0.4);
    const st = await stats(server);
    const e = st.engine.exports['e1.1']!;
    expect(e.drops.stateRate).toBeGreaterThan(1000);
    expect(st.stateWrites).toBeLessThan(e.stateChanges + 1);
    expect(st.stateWriteErrors).toBe(0);

    // The reply to a change leaves only after the file holds it: read the file as the reply arrives.
    await sleep(3000); // refill the global bucket the flood drained
    const admin = open(v.a);
    const checked: boolean[] = [];
    admin.onBatch((fr, lens, count) => {
      for (let i = 0; i < count; i++) {
        const d = decodeFrame(fr[i]!.subarray(0, lens[i]!));
        if (!d.ok || d.value.command !== 'query-config' || !d.value.response) continue;
        const want = d.value.config.toString();
        if (!want.startsWith('durable-')) continue;
        const json = JSON.parse(readFileSync(statePath, 'utf8'));
        checked.push(Buffer.from(json.exports['e1.1'].config, 'base64').toString() === want);
      }
    });
    const adminMac = admin.mac.toString('hex').replace(/(..)(?!$)/g, '$1:');
    const dst = target.toString('hex').replace(/(..)(?!$)/g, '$1:');
    for (let i = 0; i < 10; i++) {
      admin.send(qc({ dst, src: adminMac, major: 1, minor: 1, ccmd: 4, config: `durable-${i}` }));
      admin.flush();
      await waitFor(() => checked.length > i, 2000);
    }
    expect(checked).toEqual(Array(10).fill(true));
  });

  it.skipIf(!hasCommand('strace'))(
    'under a toggle flood, state files are written off the event loop, coalesced and rate-limited',
    async () => {
      const v = vethPair(nsI, nsT, 1500);
      const statePath = join(dir, 'traced', 'state.json');
      const trace = join(dir, 'state-strace.txt');
      const server = spawnTracked('ip', [
        'netns',
        'exec',
        nsT.name,
        'strace',
        '-f',
        '-qq',
        '-e',
        'trace=execve,fsync,fdatasync,rename,renameat,renameat2',
        '-o',
        trace,
        process.execPath,
        AOEGW,
        'serve',
        '--iface',
        v.b,
        '--export',
        '1.5=memory:64k',
        '--state',
        statePath,
      ]);
      servers.push(server);
      expect(await waitFor(() => /ready: /.test(server.output()), 15_000)).toBe(true);
      const ini = new Initiator(open(v.a));
      const [advert] = await ini.queryConfig(500, { major: 1, minor: 5 });
      const dst = advert!.mac.toString('hex').replace(/(..)(?!$)/g, '$1:');
      const attacker = open(v.a);
      const frames = Array.from({ length: 600 }, (_, i) =>
        qc({
          dst,
          src: `02:78:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`,
          major: 1,
          minor: 5,
          ccmd: 4,
          config: i % 2 ? 'A' : 'B',
        }),
      );
      // ~6,000 toggles a second for 2 s.
      const end = performance.now() + 2000;
      let sent = 0;
      for (let k = 0; performance.now() < end; k++) {
        for (let j = 0; j < 6; j++) attacker.send(frames[(k * 6 + j) % frames.length]!);
        attacker.flush();
        sent += 6;
        await sleep(1);
      }
      await sleep(500);
      // Still serving: a directed query is answered at once.
      expect(await ini.queryConfig(500, { major: 1, minor: 5 })).toHaveLength(1);
      // SIGTERM to strace only detaches it: stop the traced daemon itself (by the pid it printed).
      const pid = Number(/ready: .*\(pid (\d+)\)/.exec(server.output())?.[1]);
      if (pid > 0) process.kill(pid, 'SIGTERM');
      await server.stop('SIGTERM');
      const lines = readFileSync(trace, 'utf8').split('\n');
      const main = /^(\d+) +execve\(/.exec(lines.find((l) => /^\d+ +execve\(/.test(l)) ?? '')?.[1];
      expect(main).toBeDefined();
      let mainSyncs = 0;
      let poolSyncs = 0;
      let renames = 0;
      for (const l of lines) {
        const m = /^(\d+) +(fsync|fdatasync|rename|renameat|renameat2)\(/.exec(l);
        if (!m) continue;
        if (m[2]!.startsWith('rename')) {
          if (l.includes('state.json.tmp-')) renames++;
        } else if (m[1] === main) mainSyncs++;
        else poolSyncs++;
      }
      expect(sent).toBeGreaterThan(6000);
      // Writes happened (on libuv's thread pool), far fewer than the toggles sent.
      expect(renames).toBeGreaterThan(2);
      expect(poolSyncs).toBeGreaterThan(2);
      expect(renames).toBeLessThan(sent / 20);
      // On the event loop: only the start-up probe (1 fsync) and the final save at stop (2).
      expect(mainSyncs).toBeLessThanOrEqual(3);
    },
  );

  it('a change that cannot be persisted is answered with AoE error 3; an unwritable state path stops start-up', async () => {
    const v = vethPair(nsI, nsT, 1500);
    const mnt = join(dir, 'ro-mnt');
    mkdirSync(mnt);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]).status).toBe(0);
    mounts.push(mnt);
    const statePath = join(mnt, 'state.json');
    const server = await startServe([
      '--iface',
      v.b,
      '--netns',
      nsT.name,
      '--export',
      `1.2=memory:64k`,
      '--state',
      statePath,
    ]);
    servers.push(server);
    const admin = open(v.a);
    const replies = sniff(admin).frames;
    const ini = new Initiator(open(v.a));
    const [advert] = await ini.queryConfig(500, { major: 1, minor: 2 });
    const dst = advert!.mac.toString('hex').replace(/(..)(?!$)/g, '$1:');
    const src = admin.mac.toString('hex').replace(/(..)(?!$)/g, '$1:');
    const set = async (config: string) => {
      replies.length = 0;
      admin.send(qc({ dst, src, major: 1, minor: 2, ccmd: 4, config, tag: 4242 }));
      admin.flush();
      await waitFor(() => replies.some((f) => f.readUInt32BE(20) === 4242), 2000);
      const d = decodeFrame(replies.find((f) => f.readUInt32BE(20) === 4242)!);
      if (!d.ok) throw d.error;
      return d.value;
    };
    expect(await set('first')).toMatchObject({ errorFlag: false, config: Buffer.from('first') });
    expect(spawnSync('mount', ['-o', 'remount,ro', mnt]).status).toBe(0);
    expect(await set('second')).toMatchObject({ errorFlag: true, error: 3 });
    expect(JSON.parse(readFileSync(statePath, 'utf8')).exports['e1.2'].config).toBe(
      Buffer.from('first').toString('base64'),
    );
    await waitFor(() => /cannot write state file/.test(server.output()), 2000);
    expect(server.output()).toContain(statePath);
    // Traffic that changes nothing does not retry the failed write (no retry storm, no log flood).
    for (let i = 0; i < 5; i++) expect(await ini.queryConfig(100, { major: 1, minor: 2 })).toHaveLength(1);
    expect(server.output().match(/cannot write state file/g)).toHaveLength(1);

    // Start-up on the read-only file system: refused at once, exit status 4, the path named.
    const r = spawnSync(
      process.execPath,
      [
        AOEGW,
        'serve',
        '--iface',
        v.b,
        '--netns',
        nsT.name,
        '--export',
        '1.3=memory:64k',
        '--state',
        join(mnt, 'other.json'),
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/other\.json: cannot write in .*ro-mnt.*\[ERR_STATE_FILE\]/);
  });
});
