/**
 * Hot reload (SIGHUP) of `aoegw run` on a real two-site pair: B exports `disk` (1.1) and `other`
 * (1.2) to A, which presents them as 7.1 and 7.2 on its LAN; our initiator in `ini` does I/O
 * through the tunnel while B's config is edited and reloaded.
 * - Ten reloads during I/O (an unrelated export added and removed, a grant toggled ro/rw, the
 *   export in use changed): no I/O error, the data reads back, and no new tunnel handshake.
 * - A grant revoked during I/O: I/O to that import fails (or stops) within a second, the other
 *   import keeps working.
 * - An export removed during writes: every acknowledged write is on its image.
 * - A peer removed during I/O: its I/O stops at once. B restarted with no peers still listens,
 *   and a reload that adds the peer back makes the import usable again.
 * - The first import added to a gateway that had none works at once.
 * - A bad config: every problem logged, the old config keeps serving.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SECTOR_SIZE } from '../../src/aoe/constants.js';
import type { AoegwError } from '../../src/errors.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { identify, readSectors, writeSectors } from '../../src/initiator/operations.js';
import { fillPattern } from '../../src/initiator/pattern.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import { PacketLink } from '../../src/io/packet-link.js';
import {
  type GatewayPair,
  gatewayRunSkipReason,
  gatewayStats,
  startGatewayPair,
} from '../../support/gateway-pair.js';
import { sparseImage } from '../../support/images.js';
import { logMessages } from '../../support/log-lines.js';
import { netnsSkipReason } from '../../support/netns.js';
import { createTwoSite, type TwoSite } from '../../support/two-site.js';
import { sleep, waitFor } from '../../support/wait.js';

const skip = netnsSkipReason() ?? gatewayRunSkipReason();
const IMAGE = 32 << 20;

interface Setup {
  dir: string;
  site: TwoSite;
  pair: GatewayPair;
  ini: Initiator;
  images: { disk: string; other: string };
}

type Json = Record<string, unknown>;

function editConfig(file: string, edit: (c: Json) => void): void {
  const c = JSON.parse(readFileSync(file, 'utf8')) as Json;
  edit(c);
  writeFileSync(file, `${JSON.stringify(c, null, 2)}\n`);
}

const reloadLines = (out: string) => logMessages(out).filter((m) => m.startsWith('reload: '));

/** Sends SIGHUP and waits for the daemon's next reload line(s); returns the new ones. */
async function hup(p: GatewayPair['b']): Promise<string[]> {
  const before = reloadLines(p.output()).length;
  p.child.kill('SIGHUP');
  const ok = await waitFor(() => reloadLines(p.output()).length > before, 5000);
  if (!ok) throw new Error(`no reload line after SIGHUP: ${p.output().slice(-2000)}`);
  // A refused reload logs one line per problem after its first line: let them all arrive.
  await sleep(50);
  return reloadLines(p.output()).slice(before);
}

/** `withImports: false`: A starts with its peer but no imports (a reload adds them). */
async function setup(o: { withImports?: boolean } = {}): Promise<Setup> {
  const withImports = o.withImports ?? true;
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-reload-'));
  const site = createTwoSite({ lanMtu: 1500 });
  const images = { disk: sparseImage(dir, 'disk.img', IMAGE), other: sparseImage(dir, 'other.img', IMAGE) };
  let pair: GatewayPair | undefined;
  try {
    pair = await startGatewayPair(site, {
      dir,
      a: {
        imports: withImports
          ? [
              { remote: 'disk', local: '7.1', links: ['lan'] },
              { remote: 'other', local: '7.2', links: ['lan'] },
            ]
          : [],
      },
      b: {
        exports: [
          { target: '1.1', path: images.disk, name: 'disk' },
          { target: '1.2', path: images.other, name: 'other' },
        ],
        allow: [
          { targets: ['disk'], access: 'rw' },
          { targets: ['other'], access: 'rw' },
        ],
      },
    });
    const a = pair.a;
    const usable = await waitFor(
      () =>
        withImports
          ? /import e7\.1 .*: usable/.test(a.output()) && /import e7\.2 .*: usable/.test(a.output())
          : /peer b: session up/.test(a.output()),
      15_000,
    );
    if (!usable) throw new Error(`imports never became usable:\n${a.output()}\n${pair.b.output()}`);
    const ini = new Initiator(PacketLink.open({ iface: site.iface.ini, netns: site.ns.ini.name }));
    return { dir, site, pair, ini, images };
  } catch (e) {
    await pair?.stop();
    site.close();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

async function client(s: Setup, minor: number, giveUpMs = 15_000) {
  const adverts = await s.ini.queryConfig(1000, { major: 7, minor });
  if (adverts.length === 0) throw new Error(`e7.${minor} not found`);
  const c = s.ini.client(adverts[0]!, { giveUpMs });
  return { c, identity: await identify(s.ini, c) };
}

describe.skipIf(skip)('gateway hot reload (SIGHUP)', () => {
  let s: Setup | undefined;
  afterEach(async () => {
    s?.ini.close();
    await s?.pair.stop();
    s?.site.close();
    if (s) rmSync(s.dir, { recursive: true, force: true });
    s = undefined;
  });

  it(
    'ten reloads during I/O: no I/O error, data verified, the session is not re-handshaken',
    { timeout: 60_000 },
    async () => {
      s = await setup();
      const setup_ = s;
      const { c, identity } = await client(s, 1);
      let stop = false;
      let rounds = 0;
      const io = (async () => {
        // Each round writes a fresh pattern over 4 MiB and reads it back through the pair.
        while (!stop) {
          const r = await verifyPattern(setup_.ini, c, {
            startLba: 2048 + (rounds % 4) * 8192,
            sectors: 8192,
            seed: 0x600d + rounds,
            identity,
            chunk: 64,
            qd: 8,
          });
          expect(r.mismatches, `round ${rounds}: ${r.firstMismatches}`).toBe(0);
          rounds++;
        }
      })();
      // B initiates when it starts, before A is up; that initiation is retried 5 s later and
      // completes a second handshake (tunnel behaviour, not a reload's): counted from after it.
      const sessionsUp = () => setup_.pair.b.output().split('peer a: session up').length - 1;
      await waitFor(() => sessionsUp() >= 2, 8000);
      await sleep(300);
      const hs0 = (await gatewayStats(s.pair.b)).tunnel.handshakesCompleted as number;
      const hsA0 = (await gatewayStats(s.pair.a)).tunnel.handshakesCompleted as number;
      const summaries: string[] = [];
      try {
        for (let i = 0; i < 10; i++) {
          await sleep(250);
          editConfig(s.pair.configB, (cfg) => {
            const exports = cfg.exports as Json[];
            // An export nobody uses comes and goes; the grant of `other` flips between ro and rw;
            // the export in use changes (its buffer count): removed, drained and served again.
            if (i % 2 === 0) exports.push({ target: '1.5', path: 'memory:1m', name: 'spare' });
            else cfg.exports = exports.filter((e) => e.target !== '1.5');
            const d = (cfg.exports as Json[]).find((e) => e.name === 'disk')!;
            d.bufferCount = i % 2 === 0 ? 32 : 16;
            const peer = (cfg.peers as Json[])[0]!;
            peer.allow = [
              { targets: ['disk'], access: 'rw' },
              { targets: ['other'], access: i % 2 === 0 ? 'ro' : 'rw' },
            ];
          });
          const lines = await hup(s.pair.b);
          summaries.push(...lines);
        }
        // And A reloads too: an unrelated import comes and goes.
        for (let i = 0; i < 2; i++) {
          editConfig(s.pair.configA, (cfg) => {
            const peer = (cfg.peers as Json[])[0]!;
            const imports = peer.imports as Json[];
            if (i === 0) imports.push({ remote: 'other', local: '7.9', links: ['lan'] });
            else peer.imports = imports.filter((x) => x.local !== '7.9');
          });
          summaries.push(...(await hup(s.pair.a)));
        }
        await sleep(300);
      } finally {
        stop = true;
        await io;
      }
      expect(rounds).toBeGreaterThan(0);
      expect(summaries.filter((l) => /not applied/.test(l))).toEqual([]);
      expect(summaries.filter((l) => /\+1 export/.test(l))).toHaveLength(5);
      expect(summaries.filter((l) => /-1 export/.test(l))).toHaveLength(5);
      expect(summaries.filter((l) => /grant/.test(l))).toHaveLength(10);
      expect(summaries.filter((l) => /\+1 import/.test(l))).toHaveLength(1);
      expect(summaries.filter((l) => /-1 import/.test(l))).toHaveLength(1);
      const logs = () =>
        [s!.pair.a.output(), s!.pair.b.output()]
          .map((o) =>
            o
              .split('\n')
              .filter((l) => !l.startsWith('{"links"'))
              .join('\n'),
          )
          .join('\n----\n');
      expect((await gatewayStats(s.pair.b)).tunnel.handshakesCompleted, logs()).toBe(hs0);
      const statsA = await gatewayStats(s.pair.a);
      expect(statsA.tunnel.handshakesCompleted).toBe(hsA0);
      expect(statsA.reloads).toMatchObject({ applied: 2, refused: 0 });
      expect((await gatewayStats(s.pair.b)).reloads).toMatchObject({ applied: 10, refused: 0 });
      // The last round's data is on B's image, where it belongs.
      const last = rounds - 1;
      const lba = 2048 + (last % 4) * 8192;
      const expected = Buffer.alloc(8192 * SECTOR_SIZE);
      fillPattern(expected, 0, lba, 8192, 0x600d + last);
      const onDisk = readFileSync(s.images.disk).subarray(lba * SECTOR_SIZE, (lba + 8192) * SECTOR_SIZE);
      expect(onDisk.equals(expected)).toBe(true);
    },
  );

  it(
    'a grant revoked during I/O fails that import within a second; the other keeps working',
    { timeout: 60_000 },
    async () => {
      s = await setup();
      const setup_ = s;
      const disk = await client(s, 1, 5000);
      const other = await client(s, 2);
      let stop = false;
      const log = {
        diskOk: [] as number[],
        diskErr: [] as { at: number; code: string }[],
        otherOk: 0,
        otherErr: [] as string[],
      };
      const buf = Buffer.alloc(16 * SECTOR_SIZE, 0xab);
      const diskLoop = (async () => {
        let lba = 0;
        while (!stop) {
          try {
            await writeSectors(setup_.ini, disk.c, lba, buf);
            log.diskOk.push(performance.now());
          } catch (e) {
            log.diskErr.push({ at: performance.now(), code: (e as AoegwError).code });
            // A refused target stays refused: wait a little rather than spin.
            await sleep(50);
          }
          lba = (lba + 16) % 65536;
        }
      })();
      const otherLoop = (async () => {
        let lba = 0;
        const r = Buffer.alloc(16 * SECTOR_SIZE);
        while (!stop) {
          try {
            await writeSectors(setup_.ini, other.c, lba, buf);
            await readSectors(setup_.ini, other.c, lba, r);
            if (!r.equals(buf)) log.otherErr.push(`mismatch at ${lba}`);
            else log.otherOk++;
          } catch (e) {
            log.otherErr.push((e as Error).message);
          }
          lba = (lba + 16) % 65536;
        }
      })();
      try {
        await sleep(700);
        expect(log.diskOk.length).toBeGreaterThan(0);
        editConfig(s.pair.configB, (cfg) => {
          (cfg.peers as Json[])[0]!.allow = [{ targets: ['other'], access: 'rw' }];
        });
        const at = performance.now();
        const lines = await hup(s.pair.b);
        expect(lines.join('\n')).toMatch(/grant/);
        const otherBefore = log.otherOk;
        await sleep(2000);
        // Nothing to the revoked target completes a second after the reload...
        expect(log.diskOk.filter((t) => t > at + 1000)).toEqual([]);
        // ...and what was in flight failed with an ATA error (not left to the initiator's timeout).
        const firstErr = log.diskErr[0];
        expect(firstErr, JSON.stringify(log.diskErr.slice(0, 3))).toBeDefined();
        expect(firstErr!.at - at).toBeLessThan(1000);
        // The other import kept working throughout.
        expect(log.otherErr).toEqual([]);
        expect(log.otherOk - otherBefore).toBeGreaterThan(5);
        // B refuses A's later requests for the revoked target; A stops presenting it.
        const b = await gatewayStats(s.pair.b);
        expect(b.peers[0].grants).toEqual(['e1.2:rw']);
        expect(await waitFor(() => /import e7\.1 .*: not usable/.test(setup_.pair.a.output()), 3000)).toBe(
          true,
        );
      } finally {
        stop = true;
        // The revoked import's last write waits for its give-up time (5 s) at most.
        await Promise.allSettled([diskLoop, otherLoop]);
      }
      // Granted again: usable again at once, and it works.
      editConfig(s.pair.configB, (cfg) => {
        (cfg.peers as Json[])[0]!.allow = [{ targets: ['disk', 'other'], access: 'rw' }];
      });
      const usableBefore = s.pair.a.output().split(/import e7\.1 .*: usable/).length;
      expect((await hup(s.pair.b)).join('\n')).toMatch(/1 grant changed/);
      expect(
        await waitFor(() => s!.pair.a.output().split(/import e7\.1 .*: usable/).length > usableBefore, 3000),
      ).toBe(true);
      const again = await client(s, 1);
      const r = await verifyPattern(s.ini, again.c, {
        startLba: 0,
        sectors: 1024,
        seed: 0x9a,
        identity: again.identity,
        chunk: 64,
      });
      expect(r.mismatches).toBe(0);
    },
  );

  it(
    'an export removed during writes: every acknowledged write is on its image, the store closes after them',
    { timeout: 60_000 },
    async () => {
      s = await setup();
      const setup_ = s;
      const disk = await client(s, 1, 3000);
      const acked: number[] = [];
      let stop = false;
      let next = 0;
      const writer = async () => {
        while (!stop) {
          const lba = 16 * next++;
          const data = Buffer.alloc(16 * SECTOR_SIZE);
          fillPattern(data, 0, lba, 16, 0x77);
          try {
            await writeSectors(setup_.ini, disk.c, lba, data);
            acked.push(lba);
          } catch {
            await sleep(50);
          }
        }
      };
      // Four writers: several writes in flight at every moment.
      const writers = [writer(), writer(), writer(), writer()];
      try {
        await sleep(700);
        expect(acked.length).toBeGreaterThan(0);
        editConfig(s.pair.configB, (cfg) => {
          cfg.exports = (cfg.exports as Json[]).filter((e) => e.name !== 'disk');
          (cfg.peers as Json[])[0]!.allow = [{ targets: ['other'], access: 'rw' }];
        });
        const at = performance.now();
        expect((await hup(s.pair.b)).join('\n')).toMatch(/-1 export/);
        expect(await waitFor(() => /export e1\.1: closed/.test(setup_.pair.b.output()), 3000)).toBe(true);
        await sleep(1200);
        const late = acked.length;
        await sleep(500);
        // Nothing is acknowledged once the export is gone.
        expect(acked.length).toBe(late);
        expect(performance.now() - at).toBeLessThan(10_000);
      } finally {
        stop = true;
        await Promise.allSettled(writers);
      }
      const image = readFileSync(s.images.disk);
      const expected = Buffer.alloc(16 * SECTOR_SIZE);
      const lost: number[] = [];
      for (const lba of acked) {
        fillPattern(expected, 0, lba, 16, 0x77);
        if (!image.subarray(lba * SECTOR_SIZE, (lba + 16) * SECTOR_SIZE).equals(expected)) lost.push(lba);
      }
      expect(lost).toEqual([]);
      expect(acked.length).toBeGreaterThan(10);
    },
  );

  it(
    'a peer removed during I/O stops at once; a gateway started with no peers listens, and a reload adds one',
    { timeout: 60_000 },
    async () => {
      s = await setup();
      const setup_ = s;
      const disk = await client(s, 1, 4000);
      const buf = Buffer.alloc(16 * SECTOR_SIZE, 0xcd);
      const ok: number[] = [];
      let stop = false;
      const loop = (async () => {
        let lba = 0;
        while (!stop) {
          try {
            await writeSectors(setup_.ini, disk.c, lba, buf);
            ok.push(performance.now());
          } catch {
            await sleep(50);
          }
          lba = (lba + 16) % 65536;
        }
      })();
      let peerA: Json | undefined;
      try {
        await sleep(500);
        expect(ok.length).toBeGreaterThan(0);
        editConfig(s.pair.configB, (cfg) => {
          peerA = (cfg.peers as Json[])[0];
          cfg.peers = [];
        });
        const at = performance.now();
        expect((await hup(s.pair.b)).join('\n')).toMatch(/-1 peer/);
        await sleep(1500);
        expect(ok.filter((t) => t > at + 1000)).toEqual([]);
        const b = await gatewayStats(s.pair.b);
        expect(b.peers).toEqual([]);
      } finally {
        stop = true;
        await loop;
      }
      // B starts again with no peers: it listens (the tunnel is open) and knows nobody.
      const b = await s.pair.restart('b');
      expect(b.output()).toMatch(
        /ready: 2 exports, 0 imports, 0 forwards, 0 peers on 1 links, udp port 7788/,
      );
      editConfig(s.pair.configB, (cfg) => {
        cfg.peers = [peerA];
      });
      expect((await hup(b)).join('\n')).toMatch(/\+1 peer/);
      expect(await waitFor(() => /peer a: session up/.test(b.output()), 10_000)).toBe(true);
      // A uses the import again: its held requests went through, new ones work.
      const again = await client(s, 1);
      const r = await verifyPattern(s.ini, again.c, {
        startLba: 8192,
        sectors: 2048,
        seed: 0xadd,
        identity: again.identity,
        chunk: 64,
      });
      expect(r.mismatches).toBe(0);
    },
  );

  it(
    'the first import added by a reload to a running session is usable at once',
    { timeout: 60_000 },
    async () => {
      s = await setup({ withImports: false });
      // The session and both hellos are up before the import side exists.
      await sleep(500);
      editConfig(s.pair.configA, (cfg) => {
        (cfg.peers as Json[])[0]!.imports = [{ remote: 'disk', local: '7.1', links: ['lan'] }];
      });
      expect((await hup(s.pair.a)).join('\n')).toMatch(/\+1 import/);
      const a = s.pair.a;
      expect(await waitFor(() => /import e7\.1 .*: usable/.test(a.output()), 3000)).toBe(true);
      const { c, identity } = await client(s, 1, 5000);
      const r = await verifyPattern(s.ini, c, {
        startLba: 0,
        sectors: 1024,
        seed: 0xf1,
        identity,
        chunk: 64,
      });
      expect(r.mismatches).toBe(0);
    },
  );

  it(
    'a bad config on SIGHUP keeps serving and the log names every problem',
    { timeout: 60_000 },
    async () => {
      s = await setup();
      const { c, identity } = await client(s, 1);
      const good = readFileSync(s.pair.configB, 'utf8');
      // Invalid: a value out of range; and a change that needs a restart.
      editConfig(s.pair.configB, (cfg) => {
        (cfg.exports as Json[])[0]!.bufferCount = 'many';
      });
      let lines = await hup(s.pair.b);
      expect(lines[0]).toMatch(/not applied, still running the previous config/);
      expect(lines.join('\n')).toMatch(/bufferCount/);
      writeFileSync(s.pair.configB, good);
      editConfig(s.pair.configB, (cfg) => {
        cfg.listen = String(cfg.listen).replace(/:\d+$/, ':7799');
        cfg.stateFile = `${cfg.stateFile}.new`;
      });
      lines = await hup(s.pair.b);
      expect(lines[0]).toMatch(/not applied/);
      expect(lines.join('\n')).toMatch(/restart to change listen/);
      expect(lines.join('\n')).toMatch(/restart to change stateFile/);
      // Still serving, on the old config.
      const r = await verifyPattern(s.ini, c, {
        startLba: 4096,
        sectors: 2048,
        seed: 0xbad,
        identity,
        chunk: 64,
      });
      expect(r.mismatches).toBe(0);
      expect(s.pair.b.child.exitCode).toBeNull();
      expect((await gatewayStats(s.pair.b)).reloads).toMatchObject({ applied: 0, refused: 1 });
    },
  );
});
