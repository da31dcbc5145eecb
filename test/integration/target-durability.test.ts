/**
 * Durability and isolation of the built-in target's block I/O, against real storage: a FUSE file
 * system with a slow or failing fsync (slow-fs), a tiny tmpfs that runs out of space, the kernel's
 * io_uring tracepoints; real `aoegw serve` / `aoegw run` processes in network namespaces, our
 * initiator on the other end of a veth (or a routed two-site tunnel). No mocks.
 *
 * - Isolation: a 2 s fsync on one export holds only that export; another export on fast storage
 *   keeps answering reads and writes in milliseconds meanwhile, served directly and through the
 *   encrypted tunnel (whose session survives; there the gateway runs the default blockIo auto, so
 *   the fast tmpfs export is served synchronously beside the ring). The synchronous fallback is measured the same way
 *   to show the test can tell the difference. (Until the ring raised the kernel's io-wq worker
 *   cap, it could not: the availability probe left one worker, and the fast export waited too.)
 * - Order (ring mode): from the kernel's io_uring tracepoints, no acknowledgement leaves while a
 *   completed write is not yet covered by a completed fdatasync.
 * - kill -9 during a stream of writes on a slow disk: every acknowledged write is in the image.
 * - ENOSPC and EIO from storage reach the initiator as ATA errors, never as a false success, and
 *   the export works again once the storage does.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AtaErrorBit, AtaStatus, SECTOR_SIZE } from '../../src/aoe/constants.js';
import type { AoegwError } from '../../src/errors.js';
import { type ConfigAdvert, Initiator } from '../../src/initiator/initiator.js';
import { identify } from '../../src/initiator/operations.js';
import { checkPattern, fillPattern } from '../../src/initiator/pattern.js';
import type { Io, TargetClient, TargetClientOptions } from '../../src/initiator/target-client.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX } from '../../src/tunnel/constants.js';
import { gatewayRunSkipReason, gatewayStats, startGatewayPair } from '../../support/gateway-pair.js';
import { createTwoSite } from '../../support/two-site.js';
import { startServe } from '../helpers/aoegw.js';
import { sparseImage } from '../helpers/images.js';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import type { Spawned } from '../helpers/processes.js';
import { mountSlowFs, type SlowFs, slowFsSkipReason } from '../helpers/slow-fs.js';
import { ackOrder, UringTrace, uringTraceSkipReason } from '../helpers/uring-trace.js';
import { sleep, waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason() ?? slowFsSkipReason();
const traceSkip = uringTraceSkipReason();

/** The slow disk's fsync: far above anything else a request waits for here, even on a busy machine. */
const DELAY_MS = 2000;
/** How long the concurrent loads run: two or three of the slow export's fsyncs. */
const LOAD_MS = 5000;
const FAULT = AtaStatus.DRDY | AtaStatus.DF | AtaStatus.ERR;

// ---- I/O helpers ---------------------------------------------------------------------------------

interface Done {
  err: AoegwError | null;
  io: Io;
  /** Submit to completion, ms. */
  ms: number;
}

function once(ini: Initiator, c: TargetClient, write: boolean, lba: number, buf: Buffer): Promise<Done> {
  const t0 = ini.now();
  return new Promise((resolve) => {
    const cb = (err: AoegwError | null, io: Io) => resolve({ err, io, ms: ini.now() - t0 });
    if (write) c.write(lba, buf.length / SECTOR_SIZE, buf, 0, t0, cb);
    else c.read(lba, buf.length / SECTOR_SIZE, buf, 0, t0, cb);
  });
}

function patternBuf(lba: number, sectors: number, seed: number): Buffer {
  const b = Buffer.alloc(sectors * SECTOR_SIZE);
  fillPattern(b, 0, lba, sectors, seed);
  return b;
}

interface LoadResult {
  writeMs: number[];
  readMs: number[];
  /** Completion times (ini.now()) of every successful request. */
  doneAt: number[];
  /** LBAs of acknowledged writes (each `sectors` long, pattern `seed`). */
  acked: Set<number>;
  errors: string[];
  /** Reads whose data was not the pattern written there. */
  badReads: number;
}

/**
 * `qd` workers issuing `sectors`-sector requests for `ms`: writes of the pattern to slots
 * startLba + k·sectors (k = 0..slots-1, round robin; rewriting a slot writes the same bytes), and
 * with `readEvery` = n, every n-th request a read of an acknowledged slot, checked at once.
 */
async function load(
  ini: Initiator,
  c: TargetClient,
  o: {
    qd: number;
    ms: number;
    sectors: number;
    startLba: number;
    slots: number;
    seed: number;
    readEvery?: number;
  },
): Promise<LoadResult> {
  const r: LoadResult = { writeMs: [], readMs: [], doneAt: [], acked: new Set(), errors: [], badReads: 0 };
  const ackedList: number[] = [];
  const end = ini.now() + o.ms;
  let next = 0;
  let n = 0;
  const worker = async () => {
    while (ini.now() < end && r.errors.length < 20) {
      const isRead = o.readEvery !== undefined && ++n % o.readEvery === 0 && ackedList.length > 0;
      if (isRead) {
        const lba = ackedList[(n * 7919) % ackedList.length]!;
        const buf = Buffer.alloc(o.sectors * SECTOR_SIZE);
        const d = await once(ini, c, false, lba, buf);
        if (d.err) r.errors.push(d.err.message);
        else {
          r.readMs.push(d.ms);
          r.doneAt.push(ini.now());
          if (checkPattern(buf, 0, lba, o.sectors, o.seed).length > 0) r.badReads++;
        }
      } else {
        const lba = o.startLba + (next++ % o.slots) * o.sectors;
        const d = await once(ini, c, true, lba, patternBuf(lba, o.sectors, o.seed));
        if (d.err) r.errors.push(d.err.message);
        else {
          r.writeMs.push(d.ms);
          r.doneAt.push(ini.now());
          if (!r.acked.has(lba)) ackedList.push(lba);
          r.acked.add(lba);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: o.qd }, worker));
  return r;
}

function stats(ms: number[]): { n: number; min: number; p50: number; p99: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
  return { n: s.length, min: s[0] ?? 0, p50: at(50), p99: at(99), max: s[s.length - 1] ?? 0 };
}

const fmt = (x: ReturnType<typeof stats>) =>
  `n=${x.n} min=${x.min.toFixed(1)} p50=${x.p50.toFixed(1)} p99=${x.p99.toFixed(1)} max=${x.max.toFixed(1)} ms`;

/** LBAs among `lbas` whose `sectors` sectors in the file at `path` are not the pattern. */
function notOnDisk(path: string, lbas: Iterable<number>, sectors: number, seed: number): number[] {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(sectors * SECTOR_SIZE);
    const bad: number[] = [];
    for (const lba of lbas) {
      buf.fill(0);
      readSync(fd, buf, 0, buf.length, lba * SECTOR_SIZE);
      if (checkPattern(buf, 0, lba, sectors, seed).length > 0) bad.push(lba);
    }
    return bad;
  } finally {
    closeSync(fd);
  }
}

/** The advert of `major.minor`, asking again for up to `ms` (a gateway import may take a moment). */
async function advertOf(ini: Initiator, major: number, minor: number, ms = 5000): Promise<ConfigAdvert> {
  const until = Date.now() + ms;
  for (;;) {
    const [a] = await ini.queryConfig(300, { major, minor });
    if (a) return a;
    if (Date.now() > until) throw new Error(`e${major}.${minor} is not advertised`);
  }
}

/** The slow export's requests take ≥ DELAY_MS: no retransmission should muddy the measurement. */
const PATIENT: Partial<TargetClientOptions> = {
  initialRtoMs: 5000,
  minRtoMs: 5000,
  maxRtoMs: 8000,
  giveUpMs: 30_000,
};

// ---- the tests -----------------------------------------------------------------------------------

describe.skipIf(skip)('built-in target: durability and isolation on real slow and failing storage', () => {
  let dir: string;
  let shm: string;
  let nsI: Netns;
  let nsT: Netns;
  const cleanups: (() => unknown)[] = [];
  const defer = <T>(x: T, fn: (x: T) => unknown): T => {
    cleanups.push(() => fn(x));
    return x;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aoegw-durab-'));
    // Fast storage: tmpfs, whose fdatasync costs nothing.
    shm = mkdtempSync('/dev/shm/aoegw-durab-');
    nsI = new Netns('dui');
    nsT = new Netns('dut');
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(() => {
    nsI?.delete();
    nsT?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (shm) rmSync(shm, { recursive: true, force: true });
  });

  const slowFs = async (o: Parameters<typeof mountSlowFs>[0]): Promise<SlowFs> =>
    defer(await mountSlowFs(o), (fs) => fs.unmount());
  const serve = async (args: string[]): Promise<Spawned> =>
    defer(await startServe([...args, '--netns', nsT.name]), (s) => s.stop('SIGKILL'));
  const initiator = (iface: string): Initiator =>
    defer(new Initiator(PacketLink.open({ iface, netns: nsI.name })), (i) => i.close());

  /**
   * Export 5.1 on slow-fs (fsync DELAY_MS) and 5.2 on tmpfs, both `sync`, one `aoegw serve` with
   * `--block-io mode`; a write load on 5.1 (queue depth 8) and a read+write load on 5.2 (queue
   * depth 4) at the same time for LOAD_MS.
   */
  async function isolation(mode: 'ring' | 'sync') {
    const fs = await slowFs({ fsyncDelayMs: DELAY_MS });
    const v = vethPair(nsI, nsT, 9000);
    const imgA = sparseImage(fs.dir, 'a.img', 64 << 20);
    const imgB = sparseImage(shm, `b-${mode}.img`, 64 << 20);
    const srv = await serve([
      '--iface',
      v.b,
      '--export',
      `5.1=${imgA},sync`,
      '--export',
      `5.2=${imgB},sync`,
      '--state',
      join(dir, `iso-${mode}.json`),
      '--block-io',
      mode,
    ]);
    expect(srv.output()).toMatch(mode === 'ring' ? /block I\/O: io_uring/ : /block I\/O: synchronous/);
    const ini = initiator(v.a);
    const a = ini.client(await advertOf(ini, 5, 1), PATIENT);
    const b = ini.client(await advertOf(ini, 5, 2));
    await identify(ini, a);
    await identify(ini, b);
    const before = await fs.stats();
    const [la, lb] = await Promise.all([
      load(ini, a, { qd: 8, ms: LOAD_MS, sectors: 16, startLba: 0, slots: 4096, seed: 51 }),
      load(ini, b, { qd: 4, ms: LOAD_MS, sectors: 16, startLba: 0, slots: 8192, seed: 52, readEvery: 2 }),
    ]);
    const after = await fs.stats();
    // B's answers that came while A had a group waiting for its fsync: between A's first and
    // last acknowledgement, A's queue never ran dry, so one fsync followed the other.
    const aFirst = Math.min(...la.doneAt);
    const aLast = Math.max(...la.doneAt);
    const bDuringA = lb.doneAt.filter((t) => t > aFirst && t < aLast).length;
    const res = {
      a: stats(la.writeMs),
      bWrite: stats(lb.writeMs),
      bRead: stats(lb.readMs),
      b: stats([...lb.writeMs, ...lb.readMs]),
      fsyncs: after.fsyncs - before.fsyncs,
      bDuringA,
    };
    console.log(
      `[durability] ${mode}: A (slow fsync ${DELAY_MS} ms) writes ${fmt(res.a)}; ${res.fsyncs} fsyncs on slow-fs\n` +
        `[durability] ${mode}: B writes ${fmt(res.bWrite)}; B reads ${fmt(res.bRead)}; ${bDuringA} B answers between A's first and last ack`,
    );
    expect(la.errors).toEqual([]);
    expect(lb.errors).toEqual([]);
    expect(lb.badReads).toBe(0);
    // Every acknowledged write is on the disk: A's in the slow-fs backing file, B's in tmpfs.
    expect(notOnDisk(join(fs.backingDir, 'a.img'), la.acked, 16, 51)).toEqual([]);
    expect(notOnDisk(imgB, lb.acked, 16, 52)).toEqual([]);
    return res;
  }

  it(
    `ring: a ${DELAY_MS} ms fsync on export A holds only A — export B (fast disk) keeps answering reads and writes far below the delay meanwhile; every write is on disk`,
    { timeout: 60_000 },
    async () => {
      const r = await isolation('ring');
      // The slow disk really was slow: every write of A waited for a DELAY_MS fsync, back to back.
      expect(r.a.n).toBeGreaterThanOrEqual(8);
      expect(r.a.min).toBeGreaterThanOrEqual(DELAY_MS - 5);
      expect(r.fsyncs).toBeGreaterThanOrEqual(2);
      // B kept answering all along, and no answer of B waited for A's fsync.
      expect(r.bDuringA).toBeGreaterThan(100);
      expect(r.b.max).toBeLessThan(DELAY_MS / 2);
    },
  );

  it(
    `synchronous block I/O: the same load makes export B wait for A's ${DELAY_MS} ms fsync (the isolation test tells the two apart)`,
    { timeout: 60_000 },
    async () => {
      const r = await isolation('sync');
      expect(r.a.min).toBeGreaterThanOrEqual(DELAY_MS - 5);
      expect(r.fsyncs).toBeGreaterThanOrEqual(2);
      // The event loop sat in fdatasync: some request of B waited (nearly) the whole fsync.
      expect(r.b.max).toBeGreaterThanOrEqual(DELAY_MS * 0.8);
    },
  );

  it.skipIf(gatewayRunSkipReason())(
    `through the tunnel: while a ${DELAY_MS} ms-fsync export behind gateway B takes a write load, a fast export behind B answers through the same tunnel far below the delay, and the session is neither lost nor renegotiated`,
    { timeout: 60_000 },
    async () => {
      const fs = await slowFs({ fsyncDelayMs: DELAY_MS });
      const site = defer(createTwoSite({ lanMtu: 9000 }), (s) => s.close());
      const slowImg = sparseImage(fs.dir, 'slow.img', 64 << 20);
      const fastImg = sparseImage(shm, 'fast.img', 64 << 20);
      const pair = await startGatewayPair(site, {
        dir: mkdtempSync(join(dir, 'gw-')),
        a: {
          imports: [
            { remote: '1.1', local: '7.1', links: ['lan'] },
            { remote: '1.2', local: '7.2', links: ['lan'] },
          ],
        },
        b: {
          exports: [
            { target: '1.1', path: slowImg, durability: 'sync' },
            { target: '1.2', path: fastImg, durability: 'sync' },
          ],
          allow: [{ targets: ['1.1', '1.2'], access: 'rw' }],
        },
      });
      defer(pair, (p) => p.stop());
      const up = Date.now();
      // The gateway's default (auto): the slow export on the ring, the tmpfs one synchronously
      // beside it — the mix a real site runs, and the slow fsync still holds only its own export.
      expect(pair.b.output()).toMatch(/block I\/O: io_uring/);
      expect(pair.b.output()).toMatch(/block I\/O: e1\.2 served synchronously \(tmpfs: /);
      const ini = defer(
        new Initiator(PacketLink.open({ iface: site.iface.ini, netns: site.ns.ini.name })),
        (i) => i.close(),
      );
      const slow = ini.client(await advertOf(ini, 7, 1), PATIENT);
      const fast = ini.client(await advertOf(ini, 7, 2));
      await identify(ini, slow);
      await identify(ini, fast);
      // B's first handshake initiation (sent as it started, before A was up) is retried after
      // REKEY_TIMEOUT even though A's own handshake already made a session: a second handshake
      // whatever the load. Measure after it.
      await sleep(up + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 1000 - Date.now());
      const a0 = await gatewayStats(pair.a);
      const b0 = await gatewayStats(pair.b);
      expect(a0.peers[0].connected).toBe(true);
      const before = await fs.stats();
      const [ls, lf] = await Promise.all([
        load(ini, slow, { qd: 8, ms: LOAD_MS, sectors: 16, startLba: 0, slots: 4096, seed: 71 }),
        load(ini, fast, {
          qd: 4,
          ms: LOAD_MS,
          sectors: 16,
          startLba: 0,
          slots: 8192,
          seed: 72,
          readEvery: 2,
        }),
      ]);
      const fsyncs = (await fs.stats()).fsyncs - before.fsyncs;
      const a1 = await gatewayStats(pair.a);
      const b1 = await gatewayStats(pair.b);
      const s = stats(ls.writeMs);
      const f = stats([...lf.writeMs, ...lf.readMs]);
      console.log(
        `[durability] tunnel: slow export writes ${fmt(s)}, ${fsyncs} fsyncs; fast export reads+writes ${fmt(f)}\n` +
          `[durability] tunnel: A rtt ${JSON.stringify(a1.imports.rtt)}, A resent ${a1.imports.retransmits - a0.imports.retransmits} requests (B: ${b1.exportSide.dupInProgress - b0.exportSide.dupInProgress} duplicates in progress, ${b1.exportSide.busy - b0.exportSide.busy} busy; A put ${a1.imports.inProgress - a0.imports.inProgress} resends off on B's AOE_IN_PROGRESS); initiator retransmits slow ${slow.stats.retransmits} fast ${fast.stats.retransmits}; handshakes A ${a0.tunnel.handshakesCompleted}→${a1.tunnel.handshakesCompleted} B ${b0.tunnel.handshakesCompleted}→${b1.tunnel.handshakesCompleted}`,
      );
      expect(ls.errors).toEqual([]);
      expect(lf.errors).toEqual([]);
      expect(lf.badReads).toBe(0);
      // The slow export was slow through the tunnel too…
      expect(s.n).toBeGreaterThanOrEqual(8);
      expect(s.min).toBeGreaterThanOrEqual(DELAY_MS - 5);
      expect(fsyncs).toBeGreaterThanOrEqual(2);
      // …and the fast one kept its timing, through the same session.
      expect(f.n).toBeGreaterThan(100);
      expect(f.max).toBeLessThan(DELAY_MS / 2);
      for (const [s0, s1] of [
        [a0, a1],
        [b0, b1],
      ] as const) {
        expect(s1.peers[0].connected).toBe(true);
        expect(s1.tunnel.handshakesCompleted).toBe(s0.tunnel.handshakesCompleted);
      }
      expect(a1.imports.failed).toBe(a0.imports.failed);
      // 2 s fsyncs outlast A's timeout (at most 1 s): B says they are running, A waits longer.
      expect(b1.exportSide.dupInProgress - b0.exportSide.dupInProgress).toBeGreaterThan(0);
      expect(a1.imports.inProgress - a0.imports.inProgress).toBeGreaterThan(0);
      expect(notOnDisk(join(fs.backingDir, 'slow.img'), ls.acked, 16, 71)).toEqual([]);
      expect(notOnDisk(fastImg, lf.acked, 16, 72)).toEqual([]);
    },
  );

  it.skipIf(traceSkip)(
    'ring mode, proved from the kernel io_uring tracepoints: no acknowledgement is sent while a completed write is not yet covered by a completed fdatasync (and a writeback export is caught)',
    { timeout: 60_000 },
    async () => {
      const v = vethPair(nsI, nsT, 1500);
      const img = sparseImage(dir, 'order.img', 16 << 20);
      const wb = sparseImage(dir, 'order-wb.img', 16 << 20);
      const srv = await serve([
        '--iface',
        v.b,
        '--export',
        `2.2=${img},sync`,
        '--export',
        `2.3=${wb},writeback`,
        '--state',
        join(dir, 'order.json'),
        '--block-io',
        'ring',
      ]);
      const pid = srv.child.pid!;
      const ini = initiator(v.a);
      /** Writes the pattern over 4096 sectors in 32-sector requests, 4 at a time, under the trace. */
      const traced = async (minor: number, seed: number) => {
        const c = ini.client(await advertOf(ini, 2, minor));
        const id = await identify(ini, c);
        const t = defer(UringTrace.start({ sendmmsgPid: pid }), (x) => x.remove());
        let next = 0;
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            while (next < 4096) {
              const lba = next;
              next += 32;
              const d = await once(ini, c, true, lba, patternBuf(lba, 32, seed));
              expect(d.err).toBeNull();
            }
          }),
        );
        const { events, lost } = t.stop();
        t.remove();
        expect(lost).toBe(0);
        const v = await verifyPattern(ini, c, {
          startLba: 0,
          sectors: 4096,
          seed,
          identity: id,
          readOnly: true,
        });
        expect(v.mismatches).toBe(0);
        return ackOrder(events, pid);
      };
      const sync = await traced(2, 21);
      const writeback = await traced(3, 22);
      console.log(
        `[durability] io_uring trace, sync export: ${JSON.stringify(sync)}; writeback export: ${JSON.stringify(writeback)}`,
      );
      expect(sync.rings).toBeGreaterThanOrEqual(1);
      expect(sync.writes).toBeGreaterThan(10);
      expect(sync.fsyncs).toBeGreaterThan(5);
      expect(sync.sends).toBeGreaterThan(10);
      expect(sync.violations).toBe(0);
      // The check is not vacuous: acknowledgements after the write alone are seen as such.
      expect(writeback.writes).toBeGreaterThan(10);
      expect(writeback.fsyncs).toBe(0);
      expect(writeback.violations).toBeGreaterThan(5);
    },
  );

  it('kill -9 during a write stream on the ring path with a 20 ms fsync: every acknowledged write is in the image', async () => {
    const fs = await slowFs({ fsyncDelayMs: 20 });
    const v = vethPair(nsI, nsT, 9000);
    const img = sparseImage(fs.dir, 'kill.img', 32 << 20);
    const srv = await serve([
      '--iface',
      v.b,
      '--export',
      `3.3=${img},sync`,
      '--state',
      join(dir, 'kill.json'),
      '--block-io',
      'ring',
    ]);
    const ini = initiator(v.a);
    const c = ini.client(await advertOf(ini, 3, 3), { giveUpMs: 1500 });
    const CHUNK = 16;
    const acked: number[] = [];
    let next = 0;
    let stop = false;
    const worker = async () => {
      while (!stop && next + CHUNK <= (32 << 20) / SECTOR_SIZE) {
        const lba = next;
        next += CHUNK;
        const d = await once(ini, c, true, lba, patternBuf(lba, CHUNK, 77));
        if (d.err) stop = true;
        else acked.push(lba);
      }
    };
    const workers = Promise.all(Array.from({ length: 8 }, worker));
    await waitFor(() => acked.length >= 150, 15_000);
    const fsyncs = (await fs.stats()).fsyncs;
    srv.child.kill('SIGKILL');
    await workers;
    console.log(
      `[durability] kill -9: ${acked.length} writes acknowledged, ${fsyncs}+ fsyncs before the kill`,
    );
    expect(acked.length).toBeGreaterThanOrEqual(150);
    expect(fsyncs).toBeGreaterThan(10);
    // What reached "the disk": the backing file, read directly.
    expect(notOnDisk(join(fs.backingDir, 'kill.img'), acked, CHUNK, 77)).toEqual([]);
  });

  it('ENOSPC (a sparse image bigger than its 1 MiB tmpfs): writes that do not fit fail with DRDY|DF|ERR + ABRT, every acknowledged write reads back', async () => {
    const mnt = mkdtempSync(join(tmpdir(), 'aoegw-enospc-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'aoegw-enospc', mnt]);
    defer(mnt, (m) => {
      if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
      rmSync(m, { recursive: true, force: true });
    });
    const img = sparseImage(mnt, 'full.img', 8 << 20);
    const v = vethPair(nsI, nsT, 9000);
    const srv = await serve([
      '--iface',
      v.b,
      '--export',
      `4.1=${img},sync`,
      '--state',
      join(dir, 'enospc.json'),
      '--block-io',
      'ring',
    ]);
    const ini = initiator(v.a);
    const c = ini.client(await advertOf(ini, 4, 1));
    const SECTORS = 16; // 8 KiB, one frame
    const acked: number[] = [];
    const failed: { lba: number; status: number; error: number; code: string }[] = [];
    let next = 0;
    const end = (8 << 20) / SECTOR_SIZE;
    // Queue depth 4: groups of writes share one fdatasync; stop after 64 failures or at the end.
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < end && failed.length < 64) {
          const lba = next;
          next += SECTORS;
          const d = await once(ini, c, true, lba, patternBuf(lba, SECTORS, 41));
          if (d.err) failed.push({ lba, status: d.io.status, error: d.io.ataError, code: d.err.code });
          else acked.push(lba);
        }
      }),
    );
    console.log(
      `[durability] ENOSPC: ${acked.length} writes of 8 KiB acknowledged (${(acked.length * 8) / 1024} MiB), ${failed.length} failed`,
    );
    // The tmpfs holds 1 MiB: not more was acknowledged, and what did not fit failed as an ATA error.
    expect(acked.length).toBeGreaterThan(32);
    expect(acked.length * SECTORS * SECTOR_SIZE).toBeLessThanOrEqual(1 << 20);
    expect(failed.length).toBeGreaterThanOrEqual(64);
    for (const f of failed)
      expect(f).toMatchObject({ code: 'ERR_ATA', status: FAULT, error: AtaErrorBit.ABRT });
    // No false success: every acknowledged write is there, through the target and in the image.
    for (const lba of acked) {
      const buf = Buffer.alloc(SECTORS * SECTOR_SIZE);
      const d = await once(ini, c, false, lba, buf);
      expect(d.err).toBeNull();
      expect(checkPattern(buf, 0, lba, SECTORS, 41)).toEqual([]);
    }
    expect(notOnDisk(img, acked, SECTORS, 41)).toEqual([]);
    const st = JSON.parse(
      await (async () => {
        const before = srv.output().length;
        srv.child.kill('SIGUSR1');
        await waitFor(() => /\{"engine"/.test(srv.output().slice(before)), 2000);
        return srv
          .output()
          .slice(before)
          .split('\n')
          .find((l) => l.startsWith('{"engine"'))!;
      })(),
    );
    expect(st.engine.exports['e4.1'].errors.store).toBeGreaterThan(0);
  });

  it('EIO from a write and from an fdatasync (slow-fs) fail the writes with DRDY|DF|ERR + ABRT; once the disk recovers, the same open export writes again', async () => {
    const fs = await slowFs({ fsyncDelayMs: 0 });
    const img = sparseImage(fs.dir, 'eio.img', 16 << 20);
    const v = vethPair(nsI, nsT, 9000);
    await serve([
      '--iface',
      v.b,
      '--export',
      `4.2=${img},sync`,
      '--state',
      join(dir, 'eio.json'),
      '--block-io',
      'ring',
    ]);
    const ini = initiator(v.a);
    const c = ini.client(await advertOf(ini, 4, 2));
    let lba = 0;
    const good: number[] = [];
    /** n writes at queue depth n (one group); returns the failures' status/error pairs. */
    const writes = async (n: number) => {
      const ds = await Promise.all(
        Array.from({ length: n }, () => {
          const at = lba;
          lba += 16;
          return once(ini, c, true, at, patternBuf(at, 16, 42)).then((d) => ({ d, at }));
        }),
      );
      for (const { d, at } of ds) if (!d.err) good.push(at);
      return ds.filter(({ d }) => d.err).map(({ d }) => [d.err!.code, d.io.status, d.io.ataError]);
    };
    const failure = ['ERR_ATA', FAULT, AtaErrorBit.ABRT];
    expect(await writes(4)).toEqual([]);
    for (const knob of ['failWrite', 'failFsync'] as const) {
      const st0 = await fs.stats();
      await fs.set({ [knob]: 'EIO' });
      expect(await writes(4), knob).toEqual([failure, failure, failure, failure]);
      expect(await writes(1), knob).toEqual([failure]);
      const st1 = await fs.stats();
      expect(
        knob === 'failWrite' ? st1.writeErrors - st0.writeErrors : st1.fsyncErrors - st0.fsyncErrors,
      ).toBeGreaterThan(0);
      await fs.set({ [knob]: 'none' });
      const okFrom = good.length;
      expect(await writes(4), `${knob} reset`).toEqual([]);
      expect(await writes(1), `${knob} reset`).toEqual([]);
      expect(good.length - okFrom).toBe(5);
    }
    // Every acknowledged write is in the image; the failed ones were never acknowledged.
    expect(notOnDisk(join(fs.backingDir, 'eio.img'), good, 16, 42)).toEqual([]);
  });

  it('EIO reading data not in the page cache (slow-fs fail_read) answers DRDY|ERR + UNC without data; the read works again after', async () => {
    const fs = await slowFs({ fsyncDelayMs: 0 });
    const img = sparseImage(fs.dir, 'rd.img', 16 << 20);
    const v = vethPair(nsI, nsT, 9000);
    await serve([
      '--iface',
      v.b,
      '--export',
      `4.3=${img},sync`,
      '--state',
      join(dir, 'rd.json'),
      '--block-io',
      'ring',
    ]);
    const ini = initiator(v.a);
    const c = ini.client(await advertOf(ini, 4, 3));
    const lba = 2048;
    expect((await once(ini, c, true, lba, patternBuf(lba, 16, 43))).err).toBeNull();
    // Setting fail_read drops the cached pages of every file: the read has to reach the "disk".
    await fs.set({ failRead: 'EIO' });
    const buf = Buffer.alloc(16 * SECTOR_SIZE, 0xee);
    const bad = await once(ini, c, false, lba, buf);
    expect([bad.err?.code, bad.io.status, bad.io.ataError]).toEqual([
      'ERR_ATA',
      AtaStatus.DRDY | AtaStatus.ERR,
      AtaErrorBit.UNC,
    ]);
    expect(buf.equals(Buffer.alloc(16 * SECTOR_SIZE, 0xee))).toBe(true);
    expect((await fs.stats()).readErrors).toBeGreaterThan(0);
    await fs.set({ failRead: 'none' });
    const ok = await once(ini, c, false, lba, buf);
    expect(ok.err).toBeNull();
    expect(checkPattern(buf, 0, lba, 16, 43)).toEqual([]);
  });
});
