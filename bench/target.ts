/**
 * npm run bench:target — the built-in target next to vblade, side by side in one run, with the
 * ceiling beside them (an aoegw export that answers from memory with batched I/O).
 *
 * Targets: vblade 25 (acknowledges writes from the page cache), aoegw sync with io_uring block I/O
 * (the default), aoegw sync with `--block-io sync` (synchronous calls: "today's" path), aoegw
 * writeback (io_uring), aoegw memory (the ceiling). Storage: a 1 GiB image on tmpfs (/dev/shm) and a
 * 1 GiB file on the machine's disk (/var/tmp, ext4), the same file for every target. Workloads:
 * seq read/write 1 MiB, rand read/write 4 KiB, at queue depths 16 and 64 and MTU 1500 and 9000;
 * buffer count 256 for every target, initiator window 4 × qd frames. Then the aggregate of 1, 8
 * and 64 exports read concurrently (tmpfs, MTU 9000). CPU s/GB is the target process(es) from
 * /proc (io_uring's io-wq workers are threads of the target and count). Interleaved: in a round
 * all targets run at once, each on its own veth pair, and the cells of one workload run back to
 * back across them in an order that rotates; ratios are medians of per-round ratios.
 *
 * Knobs (environment): BENCH_ROUNDS (5), BENCH_SECONDS per cell (1.25), BENCH_MTUS (1500,9000),
 * BENCH_QD (16,64), BENCH_STORAGE (tmpfs,disk), BENCH_WORKLOADS (seqread,seqwrite,randread,randwrite),
 * BENCH_TARGETS (vblade,sync-ring,sync-sync,wb-ring,memory; also sync-auto: `--block-io auto`,
 * which serves tmpfs synchronously; wb-sync, vblade-s), BENCH_AGGREGATE
 * (1), BENCH_DISK_DIR (/var/tmp), BENCH_LOADGEN (c when gcc builds bench/c/aoe-load.c, else js),
 * BENCH_WRITE (1: rewrite the docs section), BENCH_REPORT_FROM (a saved build/bench-target-samples.json:
 * render its report again, with the same knobs as the run, instead of measuring).
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { type RwMode, runBench } from '../src/initiator/bench.js';
import { type ConfigAdvert, Initiator } from '../src/initiator/initiator.js';
import { identify } from '../src/initiator/operations.js';
import { PacketLink } from '../src/io/packet-link.js';
import { startServe } from '../support/aoegw.js';
import { Netns, vethPair } from '../support/netns.js';
import { type Spawned, startVblade } from '../support/processes.js';
import { sleep } from '../support/wait.js';
import {
  filledImage,
  machineLine,
  median,
  processCpuSeconds,
  repoRoot,
  table,
  threadCpuDelta,
  threadSnapshot,
  withTimeout,
  writeSection,
} from './lib.js';

const list = (name: string, dflt: string) =>
  (process.env[name] ?? dflt)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 1.25);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const MTUS = list('BENCH_MTUS', '1500,9000').map(Number);
const QDS = list('BENCH_QD', '16,64').map(Number);
const STORAGES = list('BENCH_STORAGE', 'tmpfs,disk') as Storage[];
const DISK_DIR = process.env.BENCH_DISK_DIR ?? '/var/tmp';
const AGGREGATE = process.env.BENCH_AGGREGATE !== '0';
const WRITE = process.env.BENCH_WRITE !== '0';
const IMAGE = 1 << 30;
/** Buffer count every target advertises; the initiator's window is 4 × qd frames (≤ this). */
const BUFCNT = 256;

type Storage = 'tmpfs' | 'disk';
type TargetId =
  | 'vblade'
  | 'vblade-s'
  | 'sync-ring'
  | 'sync-sync'
  | 'sync-auto'
  | 'wb-ring'
  | 'wb-sync'
  | 'memory';
interface TargetDef {
  id: TargetId;
  label: string;
  vblade?: string[];
  durability?: 'sync' | 'writeback';
  blockIo?: 'auto' | 'ring' | 'sync';
}
const ALL_TARGETS: TargetDef[] = [
  { id: 'vblade', label: 'vblade', vblade: [] },
  { id: 'vblade-s', label: 'vblade -s (O_SYNC)', vblade: ['-s'] },
  { id: 'sync-ring', label: 'aoegw sync (ring)', durability: 'sync', blockIo: 'ring' },
  { id: 'sync-sync', label: 'aoegw sync (sync I/O)', durability: 'sync', blockIo: 'sync' },
  { id: 'sync-auto', label: 'aoegw sync (auto)', durability: 'sync', blockIo: 'auto' },
  { id: 'wb-ring', label: 'aoegw writeback (ring)', durability: 'writeback', blockIo: 'ring' },
  { id: 'wb-sync', label: 'aoegw writeback (sync I/O)', durability: 'writeback', blockIo: 'sync' },
  { id: 'memory', label: 'aoegw memory (ceiling)' },
];
const TARGET_IDS = list('BENCH_TARGETS', 'vblade,sync-ring,sync-sync,wb-ring,memory') as TargetId[];
const TARGETS = ALL_TARGETS.filter((t) => TARGET_IDS.includes(t.id));
const def = (id: TargetId) => ALL_TARGETS.find((t) => t.id === id)!;

interface Workload {
  id: string;
  rw: RwMode;
  bs: number;
  label: string;
}
const ALL_WORKLOADS: Workload[] = [
  { id: 'seqread', rw: 'read', bs: 1 << 20, label: 'seq read 1M' },
  { id: 'seqwrite', rw: 'write', bs: 1 << 20, label: 'seq write 1M' },
  { id: 'randread', rw: 'randread', bs: 4096, label: 'rand read 4K' },
  { id: 'randwrite', rw: 'randwrite', bs: 4096, label: 'rand write 4K' },
];
const WORKLOADS = ALL_WORKLOADS.filter((w) =>
  list('BENCH_WORKLOADS', 'seqread,seqwrite,randread,randwrite').includes(w.id),
);

/** One measured cell. */
interface Sample {
  mbps: number;
  iops: number;
  p50Us: number;
  p99Us: number;
  bytes: number;
  seconds: number;
  retransmits: number;
  errors: number;
  /** Target process CPU seconds during the cell. */
  targetCpuS: number;
  /** Of which: its event loop (main thread), and io_uring's io-wq workers. */
  loopCpuS: number;
  iowqCpuS: number;
  /** Context switches of the target's threads. */
  switches: number;
  /** Load generator CPU seconds during the cell. */
  loadCpuS: number;
  /** Busy share of the whole machine (all CPUs, 0..1) during the cell. */
  machineBusy: number;
  /** Ring ops that completed inside io_uring_enter (aoegw with a ring only), 0..1. */
  inlineShare?: number;
  ringOps?: number;
  ringWakeups?: number;
}

interface Env {
  nsI: Netns;
  nsT: Netns;
  /** veth pairs by `${mtu}|${slot}`. */
  pairs: Map<string, { a: string; b: string }>;
  images: Record<Storage, string>;
  aggDir: string;
  stateDir: string;
}

/** What drives the I/O: aoegw's JS initiator in this process, or bench/c/aoe-load. */
interface LoadDriver {
  name: string;
  /** Uses the session's Initiator; otherwise that is closed first (its socket would take a copy of every frame). */
  inProcess: boolean;
  run(
    link: { a: string; nsI: string },
    target: { major: number; minor: number; sectors: number; advert: ConfigAdvert; ini: Initiator },
    w: Workload,
    qd: number,
  ): Promise<
    Omit<
      Sample,
      | 'targetCpuS'
      | 'loopCpuS'
      | 'iowqCpuS'
      | 'switches'
      | 'machineBusy'
      | 'inlineShare'
      | 'ringOps'
      | 'ringWakeups'
    >
  >;
}

const jsDriver: LoadDriver = {
  name: "aoegw's JS initiator (src/initiator/bench.ts) in the benchmark process",
  inProcess: true,
  async run(_link, t, w, qd) {
    t.ini.dropClient(t.major, t.minor);
    const c = t.ini.client(t.advert, { maxWindow: Math.min(BUFCNT, 4 * qd) });
    const r = await runBench(c, {
      rw: w.rw,
      bs: w.bs,
      qd,
      timeS: SECONDS,
      regionStart: 0,
      regionSectors: t.sectors,
      now: () => t.ini.now(),
    });
    return {
      mbps: r.mbps,
      iops: r.iops,
      p50Us: r.latencyUs.p50,
      p99Us: r.latencyUs.p99,
      bytes: r.bytes,
      seconds: r.seconds,
      retransmits: r.retransmits,
      errors: r.errors,
      loadCpuS: r.cpu.userS + r.cpu.systemS,
    };
  },
};

const AOE_LOAD = join(repoRoot, 'build', 'aoe-load');

/** Builds bench/c/aoe-load.c into build/aoe-load when it is missing or older than its source. */
function buildCLoad(): string | undefined {
  const src = join(repoRoot, 'bench', 'c', 'aoe-load.c');
  if (!existsSync(src)) return 'bench/c/aoe-load.c is missing';
  if (existsSync(AOE_LOAD) && statSync(AOE_LOAD).mtimeMs >= statSync(src).mtimeMs) return undefined;
  mkdirSync(join(repoRoot, 'build'), { recursive: true });
  const r = spawnSync('gcc', ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-o', `${AOE_LOAD}.tmp`, src], {
    encoding: 'utf8',
  });
  if (r.status !== 0) return `gcc failed: ${r.stderr || r.error?.message}`;
  renameSync(`${AOE_LOAD}.tmp`, AOE_LOAD);
  return undefined;
}

const cDriver: LoadDriver = {
  name: 'bench/c/aoe-load (C, AF_PACKET, sendmmsg/recvmmsg batches), one process per cell',
  inProcess: false,
  async run(link, t, w, qd) {
    const args = [
      'netns',
      'exec',
      link.nsI,
      AOE_LOAD,
      '--iface',
      link.a,
      '--target',
      `${t.major}.${t.minor}`,
      '--rw',
      w.rw,
      '--bs',
      String(w.bs),
      '--qd',
      String(qd),
      '--window',
      String(Math.min(BUFCNT, 4 * qd, t.advert.bufferCount)),
      '--seconds',
      String(SECONDS),
      '--sectors',
      String(t.sectors),
    ];
    const r = await runChild('ip', args, (SECONDS + 20) * 1000);
    if (r.code !== 0) throw new Error(`aoe-load exited ${r.code}: ${r.stderr.trim()}`);
    const out = r.stdout;
    const j = JSON.parse(out) as Record<string, number>;
    return {
      mbps: j.mbps!,
      iops: j.iops!,
      p50Us: j.p50_us!,
      p99Us: j.p99_us!,
      bytes: j.bytes!,
      seconds: j.seconds!,
      retransmits: j.retransmits!,
      errors: j.errors!,
      loadCpuS: j.cpu_user_s! + j.cpu_sys_s!,
    };
  },
};

/** Runs a child to completion; killed (by its PID) if it outlives `timeoutMs`. */
function runChild(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Busy and total jiffies of the whole machine (from /proc/stat). */
function machineJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = f[3]! + f[4]!;
  return { busy: total - idle, total };
}

function loadAvg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

let majorSeq = 0;

/** The last target-stats JSON an aoegw process printed after SIGUSR1. */
async function ringStats(p: Spawned): Promise<{ ops: number; inline: number; wakeups: number } | undefined> {
  const before = p.output().length;
  process.kill(p.child.pid!, 'SIGUSR1');
  for (let i = 0; i < 40; i++) {
    await sleep(25);
    const tail = p.output().slice(before);
    const line = tail.split('\n').find((l) => l.startsWith('{"engine"'));
    if (line && tail.includes('\n', tail.indexOf(line))) {
      try {
        const s = JSON.parse(line) as {
          blockIo?: { ring?: { ops: number; inlineCompletions: number; wakeups: number } };
        };
        const ring = s.blockIo?.ring;
        if (!ring) return undefined;
        return { ops: ring.ops, inline: ring.inlineCompletions, wakeups: ring.wakeups };
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** A veth pair of its own for every target of a round: an idle target's socket sees no frames. */
function linkFor(env: Env, mtu: number, slot: number): { a: string; b: string } {
  const k = `${mtu}|${slot}`;
  let l = env.pairs.get(k);
  if (!l) {
    l = vethPair(env.nsI, env.nsT, mtu);
    env.pairs.set(k, l);
  }
  return l;
}

async function startTarget(
  env: Env,
  t: TargetDef,
  storage: Storage | 'memory',
  link: { a: string; b: string },
): Promise<{ proc: Spawned; major: number }> {
  const major = 20 + (majorSeq++ % 1000);
  if (t.vblade) {
    const image = env.images[storage as Storage];
    const proc = startVblade(env.nsT.name, major, 0, link.b, image, ['-b', String(BUFCNT), ...t.vblade]);
    await sleep(300);
    if (proc.child.exitCode !== null) throw new Error(`vblade exited: ${proc.output()}`);
    return { proc, major };
  }
  const path = t.id === 'memory' ? 'memory:1g' : env.images[storage as Storage];
  const mode = t.durability ?? 'sync';
  const args = [
    '--iface',
    link.b,
    '--netns',
    env.nsT.name,
    '--state',
    join(env.stateDir, `state-${major}.json`),
    '--export',
    `${major}.0=${path},${mode},bufcnt=${BUFCNT}`,
    ...(t.blockIo ? ['--block-io', t.blockIo] : []),
  ];
  return { proc: await startServe(args, 30_000), major };
}

/** Cell key: storage|mtu|workload|qd|target. */
const key = (s: Storage | 'memory', mtu: number, w: string, qd: number, t: TargetId) =>
  `${s}|${mtu}|${w}|${qd}|${t}`;

/** One running target of a round, discovered and identified. */
interface Live {
  t: TargetDef;
  storage: Storage | 'memory';
  proc: Spawned;
  major: number;
  link: { a: string; b: string };
  advert: ConfigAdvert;
  sectors: number;
  ini: Initiator | undefined;
}

async function open(
  env: Env,
  driver: LoadDriver,
  t: TargetDef,
  storage: Storage | 'memory',
  link: { a: string; b: string },
): Promise<Live> {
  const { proc, major } = await startTarget(env, t, storage, link);
  const ini = new Initiator(PacketLink.open({ iface: link.a, netns: env.nsI.name }));
  try {
    let advert: ConfigAdvert | undefined;
    for (let i = 0; i < 10 && !advert; i++) [advert] = await ini.queryConfig(300, { major, minor: 0 });
    if (!advert) throw new Error(`${t.label} did not answer: ${proc.output()}`);
    const id = await withTimeout(identify(ini, ini.client(advert)), 5000, 'IDENTIFY');
    if (!driver.inProcess) ini.close();
    return {
      t,
      storage,
      proc,
      major,
      link,
      advert,
      sectors: id.sectors,
      ini: driver.inProcess ? ini : undefined,
    };
  } catch (e) {
    ini.close();
    await proc.stop();
    throw e;
  }
}

async function cell(
  env: Env,
  driver: LoadDriver,
  live: Live,
  mtu: number,
  w: Workload,
  qd: number,
  samples: Map<string, Sample[]>,
  round: number,
): Promise<void> {
  const { t, storage, proc } = live;
  const pid = proc.child.pid!;
  const rs0 = t.vblade ? undefined : await ringStats(proc);
  const cpu0 = processCpuSeconds(pid);
  const th0 = threadSnapshot(pid);
  const m0 = machineJiffies();
  const r = await withTimeout(
    driver.run(
      { a: live.link.a, nsI: env.nsI.name },
      { major: live.major, minor: 0, sectors: live.sectors, advert: live.advert, ini: live.ini! },
      w,
      qd,
    ),
    (SECONDS + 30) * 1000,
    `${t.label} ${w.label}`,
  );
  const targetCpuS = processCpuSeconds(pid) - cpu0;
  const th = threadCpuDelta(pid, th0, threadSnapshot(pid));
  const m1 = machineJiffies();
  const rs1 = rs0 ? await ringStats(proc) : undefined;
  const s: Sample = {
    ...r,
    targetCpuS,
    loopCpuS: th.loop,
    iowqCpuS: th.iowq,
    switches: th.switches,
    machineBusy: (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total),
  };
  if (rs0 && rs1 && rs1.ops > rs0.ops) {
    s.ringOps = rs1.ops - rs0.ops;
    s.inlineShare = (rs1.inline - rs0.inline) / s.ringOps;
    s.ringWakeups = rs1.wakeups - rs0.wakeups;
  }
  const k = key(storage, mtu, w.id, qd, t.id);
  samples.set(k, [...(samples.get(k) ?? []), s]);
  process.stderr.write(
    `r${round + 1} ${storage} MTU ${mtu} qd ${qd} ${w.label} ${t.label}: ${r.mbps.toFixed(1)} MB/s ${Math.round(r.iops)} IOPS, target ${((targetCpuS / r.seconds) * 100).toFixed(0)} % CPU, load ${((r.loadCpuS / r.seconds) * 100).toFixed(0)} %, machine ${(s.machineBusy * 100).toFixed(0)} % (other ${(foreign(s) * 100).toFixed(0)} %) (${r.retransmits} rexmit, ${r.errors} err)\n`,
  );
  if (storage === 'disk' && (w.rw === 'write' || w.rw === 'randwrite')) {
    // What a target wrote reaches the disk before the next cell (untimed): no target pays for
    // another's dirty pages.
    const fd = openSync(env.images.disk, 'r+');
    fdatasyncSync(fd);
    closeSync(fd);
  }
}

/**
 * One round at one MTU: every target on every storage (and the ceiling) runs at once, each on its
 * own veth pair; the cells of one workload run back to back across the targets, in an order that
 * rotates from cell to cell and round to round, so a ratio compares figures taken seconds apart.
 */
async function round(
  env: Env,
  driver: LoadDriver,
  mtu: number,
  samples: Map<string, Sample[]>,
  r: number,
): Promise<void> {
  const lives: Live[] = [];
  try {
    for (const [i, s] of sessionsOf().entries())
      lives.push(await open(env, driver, s.t, s.storage, linkFor(env, mtu, i)));
    let n = r;
    for (const qd of QDS) {
      for (const w of WORKLOADS) {
        const k = n++ % lives.length;
        const order = [...lives.slice(k), ...lives.slice(0, k)];
        for (const live of order) await cell(env, driver, live, mtu, w, qd, samples, r);
      }
    }
  } finally {
    for (const l of lives) {
      l.ini?.close();
      await l.proc.stop();
    }
  }
}

type AggKind = 'vblade' | 'sync-ring';

/** Aggregate MB/s of `count` exports read concurrently (seq 64 KiB, 64 I/Os in flight in total). */
async function aggregate(
  env: Env,
  kind: AggKind,
  count: number,
): Promise<{ mbps: number; cpuPerGB: number }> {
  const link = linkFor(env, 9000, 0);
  const major = 20 + (majorSeq++ % 1000);
  const img = (i: number) => (i === 0 ? env.images.tmpfs : join(env.aggDir, `img${i}`));
  let procs: Spawned[];
  if (kind === 'vblade') {
    procs = Array.from({ length: count }, (_, i) =>
      startVblade(env.nsT.name, major, i, link.b, img(i), ['-b', '64']),
    );
    await sleep(300 + 10 * count);
  } else {
    const args = [
      '--iface',
      link.b,
      '--netns',
      env.nsT.name,
      '--state',
      join(env.stateDir, `state-${major}.json`),
    ];
    for (let i = 0; i < count; i++) args.push('--export', `${major}.${i}=${img(i)},sync,bufcnt=64`);
    procs = [await startServe(args, 30_000)];
  }
  const ini = new Initiator(PacketLink.open({ iface: link.a, netns: env.nsI.name }));
  try {
    let mine: ConfigAdvert[] = [];
    for (let i = 0; i < 10 && mine.length < count; i++) {
      const adverts = await ini.queryConfig(500);
      mine = adverts.filter((a) => a.major === major);
    }
    if (mine.length !== count) throw new Error(`${kind}: ${mine.length} of ${count} exports answered`);
    const cpu0 = procs.reduce((s, p) => s + processCpuSeconds(p.child.pid!), 0);
    const qd = Math.max(1, Math.floor(64 / count));
    const results = await Promise.all(
      mine.map((a) =>
        runBench(ini.client(a), {
          rw: 'read',
          bs: 65536,
          qd,
          timeS: SECONDS,
          regionStart: 0,
          regionSectors: (64 << 20) / 512,
          now: () => ini.now(),
        }),
      ),
    );
    const cpu = procs.reduce((s, p) => s + processCpuSeconds(p.child.pid!), 0) - cpu0;
    const bytes = results.reduce((s, r) => s + r.bytes, 0);
    const seconds = Math.max(...results.map((r) => r.seconds));
    return { mbps: bytes / 1e6 / seconds, cpuPerGB: cpu / (bytes / 1e9) };
  } finally {
    ini.close();
    for (const p of procs) await p.stop();
  }
}

/** The sessions of one round at one MTU: every target on every storage, the ceiling once. */
function sessionsOf(): { t: TargetDef; storage: Storage | 'memory' }[] {
  const out: { t: TargetDef; storage: Storage | 'memory' }[] = [];
  for (const storage of STORAGES) {
    for (const t of TARGETS) {
      if (t.id === 'memory') continue;
      // O_SYNC vblade only on the disk (on tmpfs it is plain vblade).
      if (t.id === 'vblade-s' && storage !== 'disk') continue;
      out.push({ t, storage });
    }
  }
  if (TARGETS.some((t) => t.id === 'memory')) out.push({ t: def('memory'), storage: 'memory' });
  return out;
}

/** BENCH_REPORT_FROM=file: renders (and writes, unless BENCH_WRITE=0) the report of a saved run. */
function rerender(path: string): void {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as {
    samples: Record<string, Sample[]>;
    agg: Record<string, { mbps: number; cpuPerGB: number }[]>;
    meta: { machine: string; loadBefore: string; loadAfter: string; minutes: number; driver: string };
  };
  const driver = [cDriver, jsDriver].find((d) => d.name === raw.meta.driver) ?? {
    ...jsDriver,
    name: raw.meta.driver,
  };
  const body = report(new Map(Object.entries(raw.samples)), new Map(Object.entries(raw.agg)), {
    ...raw.meta,
    driver,
  });
  if (WRITE) writeSection('target', body);
  process.stdout.write(`${body}\n`);
}

async function main() {
  if (process.env.BENCH_REPORT_FROM) return rerender(process.env.BENCH_REPORT_FROM);
  const started = Date.now();
  const loadBefore = loadAvg();
  const machine = machineLine();
  let driver: LoadDriver = jsDriver;
  const wantC = process.env.BENCH_LOADGEN ?? 'c';
  if (wantC === 'c') {
    const why = buildCLoad();
    if (why) process.stderr.write(`bench: C load generator unavailable (${why}); using the JS initiator\n`);
    else driver = cDriver;
  }
  const shm = mkdtempSync('/dev/shm/aoegw-bench-target-');
  const disk = STORAGES.includes('disk') ? mkdtempSync(join(DISK_DIR, 'aoegw-bench-target-')) : undefined;
  const env: Env = {
    nsI: new Netns('bti'),
    nsT: new Netns('btt'),
    pairs: new Map(),
    images: { tmpfs: join(shm, 'img0'), disk: disk ? join(disk, 'img') : '' },
    aggDir: shm,
    stateDir: shm,
  };
  const samples = new Map<string, Sample[]>();
  const agg = new Map<string, { mbps: number; cpuPerGB: number }[]>();
  try {
    process.stderr.write(`bench: load generator: ${driver.name}\n`);
    filledImage(env.images.tmpfs, IMAGE);
    if (disk) {
      filledImage(env.images.disk, IMAGE);
      const fd = openSync(env.images.disk, 'r+');
      fdatasyncSync(fd);
      closeSync(fd);
    }
    if (AGGREGATE) {
      for (let i = 1; i < 64; i++) {
        writeFileSync(join(shm, `img${i}`), '');
        truncateSync(join(shm, `img${i}`), 64 << 20);
      }
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const mtu of MTUS) await round(env, driver, mtu, samples, r);
      if (AGGREGATE) {
        for (const count of [1, 8, 64]) {
          for (const kind of ['vblade', 'sync-ring'] as AggKind[]) {
            const a = await aggregate(env, kind, count);
            agg.set(`${kind}|${count}`, [...(agg.get(`${kind}|${count}`) ?? []), a]);
            process.stderr.write(`aggregate ${kind} ${count} exports: ${a.mbps.toFixed(1)} MB/s\n`);
          }
        }
      }
    }
  } finally {
    env.nsI.delete();
    env.nsT.delete();
    rmSync(shm, { recursive: true, force: true });
    if (disk) rmSync(disk, { recursive: true, force: true });
  }
  const minutes = (Date.now() - started) / 60000;
  const body = report(samples, agg, { machine, loadBefore, loadAfter: loadAvg(), minutes, driver });
  if (WRITE) writeSection('target', body);
  process.stdout.write(`${body}\n`);
  const raw = join(repoRoot, 'build', 'bench-target-samples.json');
  mkdirSync(join(repoRoot, 'build'), { recursive: true });
  const meta = { machine, loadBefore, loadAfter: loadAvg(), minutes, driver: driver.name };
  writeFileSync(
    raw,
    JSON.stringify({ samples: Object.fromEntries(samples), agg: Object.fromEntries(agg), meta }),
  );
  process.stderr.write(`bench: raw samples in ${raw}\n`);
}

// ---------- report ----------

const fmtRatio = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');
const isSeq = (w: Workload) => w.bs >= 1 << 20;

function med(samples: Map<string, Sample[]>, k: string, f: (s: Sample) => number): number {
  const ss = samples.get(k);
  return ss?.length ? median(ss.map(f)) : Number.NaN;
}

/** The figure a cell is judged by: MB/s for sequential, IOPS for 4 KiB. */
function figure(samples: Map<string, Sample[]>, k: string, w: Workload): number {
  return med(samples, k, (s) => (isSeq(w) ? s.mbps : s.iops));
}

const NCPU = readFileSync('/proc/cpuinfo', 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('processor')).length;
/** Share of the machine (0..1) busy with processes other than the target and the load generator. */
const foreign = (s: Sample) => Math.max(0, s.machineBusy - (s.targetCpuS + s.loadCpuS) / (NCPU * s.seconds));

const cpuPerGB = (s: Sample) => (s.bytes > 0 ? s.targetCpuS / (s.bytes / 1e9) : Number.NaN);

/**
 * Median over rounds of f(a)/f(b), pairing the samples of the same round: the load of a shared
 * machine drifts between rounds, and a ratio within one round cancels most of that drift.
 */
function paired(samples: Map<string, Sample[]>, ka: string, kb: string, f: (s: Sample) => number): number {
  const a = samples.get(ka) ?? [];
  const b = samples.get(kb) ?? [];
  const rs: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const r = f(a[i]!) / f(b[i]!);
    if (Number.isFinite(r)) rs.push(r);
  }
  return rs.length ? median(rs) : Number.NaN;
}

/** Paired ratio of the figure a cell is judged by. */
function pairedFigure(samples: Map<string, Sample[]>, ka: string, kb: string, w: Workload): number {
  return paired(samples, ka, kb, (s) => (isSeq(w) ? s.mbps : s.iops));
}

function fmtFigure(x: number, w: Workload): string {
  if (!Number.isFinite(x)) return '–';
  return isSeq(w) ? x.toFixed(0) : Math.round(x).toLocaleString('en');
}

/** Median over rounds of (N exports MB/s) / (1 export MB/s) of the same round. */
function aggRatio(
  agg: Map<string, { mbps: number; cpuPerGB: number }[]>,
  kind: AggKind,
  count: number,
): number {
  const one = agg.get(`${kind}|1`) ?? [];
  const n = agg.get(`${kind}|${count}`) ?? [];
  const rs = n.map((a, i) => a.mbps / (one[i]?.mbps ?? Number.NaN)).filter(Number.isFinite);
  return rs.length ? median(rs) : Number.NaN;
}

function report(
  samples: Map<string, Sample[]>,
  agg: Map<string, { mbps: number; cpuPerGB: number }[]>,
  meta: { machine: string; loadBefore: string; loadAfter: string; minutes: number; driver: LoadDriver },
): string {
  const out: string[] = [];
  const aoegwTargets = TARGETS.filter((t) => !t.vblade && t.id !== 'memory');
  const vbladeTargets = TARGETS.filter((t) => t.vblade);
  const hasMemory = TARGETS.some((t) => t.id === 'memory');
  const hasVblade = TARGETS.some((t) => t.id === 'vblade');
  out.push('## Built-in target vs vblade (`npm run bench:target`)', '');
  const all = [...samples.values()].flat();
  const busy = median(all.map((s) => s.machineBusy));
  const other = median(all.map(foreign));
  out.push(
    `Machine: ${meta.machine}; load average after ${meta.loadAfter}; the run took ${meta.minutes.toFixed(1)} min.`,
    `${ROUNDS} rounds of ${SECONDS} s per cell, medians. In a round every target runs at once (its own veth pair) and the cells of one workload run back to back across the targets, in an order that rotates from cell to cell and round to round.`,
    `During the cells the machine was ${(busy * 100).toFixed(0)} % busy (median), ${(other * 100).toFixed(0)} % of it (of ${NCPU} cores) with other processes than the target and the load generator.`,
    `Load generator: ${meta.driver.name}. Settings: MTU ${MTUS.join(', ')}; queue depth ${QDS.join(', ')};`,
    `storage ${STORAGES.map((s) => (s === 'tmpfs' ? 'tmpfs (1 GiB image in /dev/shm)' : `disk (1 GiB file in ${DISK_DIR}, ext4, in the page cache; fdatasync'd between targets)`)).join(' and ')}.`,
    `Every target advertises buffer count ${BUFCNT}; the initiator keeps min(4 × qd, ${BUFCNT}) frames in flight.`,
    'vblade acknowledges writes from the page cache; `aoegw sync` acknowledges a write only after the',
    'fdatasync that covers it; `writeback` after the write; `(ring)` = io_uring block I/O (the default),',
    '`(sync I/O)` = `--block-io sync` (synchronous calls on the event loop: the path before io_uring);',
    '`aoegw memory` answers from RAM with batched I/O: the ceiling of this machine for an AoE target.',
    'Seq figures are MB/s (10^6 B/s), 4K figures IOPS; ratios are medians of per-round ratios (same round, same cell).',
    `Targets of this run: ${TARGET_IDS.join(', ')}. The default run (\`npm run bench:target\`, about 21 min) covers MTU 1500 and 9000, qd 16 and 64, tmpfs and disk, the four workloads, targets vblade, sync-ring, sync-sync, wb-ring and memory, and the 1/8/64-export aggregate; BENCH_ROUNDS, BENCH_SECONDS, BENCH_MTUS, BENCH_QD, BENCH_STORAGE, BENCH_WORKLOADS, BENCH_TARGETS (also sync-auto, wb-sync, vblade-s), BENCH_AGGREGATE and BENCH_LOADGEN=js narrow or widen it (bench/target.ts).`,
    '',
  );

  // Goals.
  if (hasVblade && aoegwTargets.some((t) => t.id === 'sync-ring')) {
    out.push('### Goals (aoegw sync with io_uring, the default, against vblade)', '');
    const rows: string[][] = [];
    const ratios = (wIds: string[], mtu: number, tid: TargetId = 'sync-ring') => {
      const xs: { where: string; r: number }[] = [];
      for (const storage of STORAGES)
        for (const qd of QDS)
          for (const w of WORKLOADS.filter((w) => wIds.includes(w.id))) {
            const r = pairedFigure(
              samples,
              key(storage, mtu, w.id, qd, tid),
              key(storage, mtu, w.id, qd, 'vblade'),
              w,
            );
            if (Number.isFinite(r))
              xs.push({ where: `${storage} qd${qd}${wIds.length > 1 ? ` ${w.id}` : ''}`, r });
          }
      return xs;
    };
    const verdict = (xs: { r: number }[], ok: (r: number) => boolean) =>
      xs.length === 0
        ? 'not measured'
        : xs.every((x) => ok(x.r))
          ? '**met**'
          : xs.some((x) => ok(x.r))
            ? '**partly met**'
            : '**not met**';
    const range = (xs: { where: string; r: number }[]) =>
      xs.length ? xs.map((x) => `${x.where} ${fmtRatio(x.r)}`).join(', ') : '–';
    for (const mtu of MTUS) {
      const xs = ratios(['seqread'], mtu);
      rows.push([`seq read ≥ 1.3× vblade, MTU ${mtu}`, range(xs), verdict(xs, (r) => r >= 1.3)]);
    }
    for (const mtu of MTUS) {
      const xs = ratios(['randread', 'randwrite'], mtu);
      rows.push([`4 KiB IOPS ≥ 1.5× vblade, MTU ${mtu}`, range(xs), verdict(xs, (r) => r >= 1.5)]);
    }
    // CPU per GB: every cell.
    const cpuXs: { where: string; r: number }[] = [];
    for (const storage of STORAGES)
      for (const mtu of MTUS)
        for (const qd of QDS)
          for (const w of WORKLOADS) {
            const r = paired(
              samples,
              key(storage, mtu, w.id, qd, 'sync-ring'),
              key(storage, mtu, w.id, qd, 'vblade'),
              cpuPerGB,
            );
            if (Number.isFinite(r)) cpuXs.push({ where: `${storage} ${mtu} qd${qd} ${w.id}`, r });
          }
    if (cpuXs.length) {
      const rs = cpuXs.map((x) => x.r);
      const worst = cpuXs.reduce((a, b) => (b.r > a.r ? b : a));
      rows.push([
        'target CPU per GB ≤ vblade’s',
        `aoegw/vblade CPU s/GB: median ${fmtRatio(median(rs))}, range ${fmtRatio(Math.min(...rs))}–${fmtRatio(Math.max(...rs))} (worst: ${worst.where}); ≤ 1.00× in ${rs.filter((r) => r <= 1).length} of ${rs.length} cells`,
        verdict(cpuXs, (r) => r <= 1),
      ]);
    }
    if (agg.size) {
      const r64 = aggRatio(agg, 'sync-ring', 64);
      rows.push([
        '64 exports ≥ 0.9× of one (one process)',
        fmtRatio(r64),
        r64 >= 0.9 ? '**met**' : '**not met**',
      ]);
    }
    if (aoegwTargets.some((t) => t.id === 'sync-sync')) {
      // The default mode when measured (auto: tmpfs served synchronously), else the ring.
      const readTid: TargetId = aoegwTargets.some((t) => t.id === 'sync-auto') ? 'sync-auto' : 'sync-ring';
      for (const storage of STORAGES) {
        const xs: { where: string; r: number }[] = [];
        for (const mtu of MTUS)
          for (const qd of QDS)
            for (const w of WORKLOADS.filter((w) => w.rw === 'read' || w.rw === 'randread')) {
              const r = pairedFigure(
                samples,
                key(storage, mtu, w.id, qd, readTid),
                key(storage, mtu, w.id, qd, 'sync-sync'),
                w,
              );
              if (Number.isFinite(r)) xs.push({ where: `${mtu} qd${qd} ${w.id}`, r });
            }
        if (!xs.length) continue;
        const rs = xs.map((x) => x.r);
        const worst = xs.reduce((a, b) => (b.r < a.r ? b : a));
        rows.push([
          `${storage === 'disk' ? 'ext4 page-cache' : 'tmpfs'} reads no slower than \`--block-io sync\` (within 5 %: ≥ 0.95×)`,
          `${readTid === 'sync-auto' ? 'auto' : 'ring'}/sync I/O: median ${fmtRatio(median(rs))}, range ${fmtRatio(Math.min(...rs))}–${fmtRatio(Math.max(...rs))} (worst: ${worst.where})`,
          verdict(xs, (r) => r >= 0.95),
        ]);
      }
    }
    out.push(table(['goal', 'measured (median of rounds)', 'verdict'], rows), '');
  }

  // Headline tables, one per storage.
  for (const storage of STORAGES) {
    out.push(
      `### ${storage === 'tmpfs' ? 'tmpfs' : `Disk (${DISK_DIR}, ext4)`}: figure and ratio against vblade`,
      '',
    );
    const header = ['MTU', 'workload', 'qd'];
    for (const t of vbladeTargets) header.push(t.id === 'vblade' ? 'vblade' : `${t.label} ×`);
    for (const t of aoegwTargets) header.push(`${t.label} ×`);
    if (hasMemory) header.push('ceiling ×', 'sync ring / ceiling');
    const ringVsSync =
      aoegwTargets.some((t) => t.id === 'sync-sync') && aoegwTargets.some((t) => t.id === 'sync-ring');
    const autoVsSync =
      aoegwTargets.some((t) => t.id === 'sync-sync') && aoegwTargets.some((t) => t.id === 'sync-auto');
    if (ringVsSync) header.push('ring / sync I/O');
    if (autoVsSync) header.push('auto / sync I/O');
    const rows: string[][] = [];
    for (const mtu of MTUS)
      for (const w of WORKLOADS)
        for (const qd of QDS) {
          const kv = key(storage, mtu, w.id, qd, 'vblade');
          const base = figure(samples, kv, w);
          const row = [String(mtu), w.label, String(qd)];
          for (const t of vbladeTargets) {
            if (t.id === 'vblade') row.push(fmtFigure(base, w));
            else if (storage !== 'disk') row.push('–');
            else row.push(fmtRatio(pairedFigure(samples, key(storage, mtu, w.id, qd, t.id), kv, w)));
          }
          for (const t of aoegwTargets) {
            const k = key(storage, mtu, w.id, qd, t.id);
            row.push(`${fmtFigure(figure(samples, k, w), w)} (${fmtRatio(pairedFigure(samples, k, kv, w))})`);
          }
          const kc = key('memory', mtu, w.id, qd, 'memory');
          if (hasMemory) {
            row.push(
              `${fmtFigure(figure(samples, kc, w), w)} (${fmtRatio(pairedFigure(samples, kc, kv, w))})`,
            );
            row.push(fmtRatio(pairedFigure(samples, key(storage, mtu, w.id, qd, 'sync-ring'), kc, w)));
          }
          for (const [on, tid] of [
            [ringVsSync, 'sync-ring'],
            [autoVsSync, 'sync-auto'],
          ] as const)
            if (on)
              row.push(
                fmtRatio(
                  pairedFigure(
                    samples,
                    key(storage, mtu, w.id, qd, tid),
                    key(storage, mtu, w.id, qd, 'sync-sync'),
                    w,
                  ),
                ),
              );
          rows.push(row);
        }
    out.push(table(header, rows), '');
  }

  // CPU per GB.
  out.push('### Target CPU s/GB (the target process; vblade: its one process)', '');
  {
    const cols: { t: TargetDef; storage: Storage | 'memory' }[] = [];
    for (const storage of STORAGES)
      for (const t of TARGETS)
        if (t.id !== 'memory' && !(t.id === 'vblade-s' && storage !== 'disk')) cols.push({ t, storage });
    if (hasMemory) cols.push({ t: def('memory'), storage: 'memory' });
    const header = [
      'MTU',
      'workload',
      'qd',
      ...cols.map((c) => `${c.storage === 'memory' ? 'ceiling' : `${c.storage} ${c.t.label}`}`),
    ];
    const rows: string[][] = [];
    for (const mtu of MTUS)
      for (const w of WORKLOADS)
        for (const qd of QDS)
          rows.push([
            String(mtu),
            w.label,
            String(qd),
            ...cols.map((c) => {
              const x = med(samples, key(c.storage, mtu, w.id, qd, c.t.id), cpuPerGB);
              return Number.isFinite(x) ? x.toFixed(2) : '–';
            }),
          ]);
    out.push(table(header, rows), '');
  }

  // Every cell.
  out.push('<details><summary>Every cell (medians)</summary>', '');
  {
    const rows: string[][] = [];
    const cells: [Storage | 'memory', TargetDef][] = [];
    for (const storage of STORAGES)
      for (const t of TARGETS)
        if (t.id !== 'memory' && !(t.id === 'vblade-s' && storage !== 'disk')) cells.push([storage, t]);
    if (hasMemory) cells.push(['memory', def('memory')]);
    for (const mtu of MTUS)
      for (const w of WORKLOADS)
        for (const qd of QDS)
          for (const [storage, t] of cells) {
            const k = key(storage, mtu, w.id, qd, t.id);
            if (!samples.get(k)?.length) continue;
            const m = (f: (s: Sample) => number) => med(samples, k, f);
            const inline = m((s) => s.inlineShare ?? Number.NaN);
            rows.push([
              storage,
              String(mtu),
              w.label,
              String(qd),
              t.label,
              m((s) => s.mbps).toFixed(1),
              Math.round(m((s) => s.iops)).toLocaleString('en'),
              (m((s) => s.p50Us) / 1000).toFixed(2),
              (m((s) => s.p99Us) / 1000).toFixed(2),
              m(cpuPerGB).toFixed(2),
              `${(m((s) => s.targetCpuS / s.seconds) * 100).toFixed(0)}`,
              m((s) => (s.loopCpuS * 1e6) / Math.max(1, s.iops * s.seconds)).toFixed(1),
              m((s) => (s.iowqCpuS * 1e6) / Math.max(1, s.iops * s.seconds)).toFixed(1),
              m((s) => s.switches / Math.max(1, s.iops * s.seconds)).toFixed(2),
              `${(m((s) => s.loadCpuS / s.seconds) * 100).toFixed(0)}`,
              `${(m((s) => s.machineBusy) * 100).toFixed(0)}`,
              `${(m(foreign) * 100).toFixed(0)}`,
              Number.isFinite(inline) ? `${(inline * 100).toFixed(0)}` : '–',
              t.vblade || t.blockIo === 'sync' || t.id === 'memory'
                ? '–'
                : m((s) => (s.ringOps ?? 0) / Math.max(1, s.iops * s.seconds)).toFixed(2),
              t.vblade || t.blockIo === 'sync' || t.id === 'memory'
                ? '–'
                : m((s) => (s.ringWakeups ?? 0) / Math.max(1, s.iops * s.seconds)).toFixed(2),
              String(m((s) => s.retransmits)),
            ]);
          }
    out.push(
      table(
        [
          'storage',
          'MTU',
          'workload',
          'qd',
          'target',
          'MB/s',
          'IOPS',
          'p50 ms',
          'p99 ms',
          'target CPU s/GB',
          'target CPU %',
          'event loop µs/IO',
          'io-wq µs/IO',
          'ctx switches/IO',
          'load gen CPU %',
          'machine busy %',
          'other processes %',
          'ring reaped in submit %',
          'ring ops/IO',
          'ring wakeups/IO',
          'retransmits',
        ],
        rows,
      ),
      '',
      '</details>',
      '',
    );
  }

  if (agg.size) {
    out.push(
      'Aggregate of N exports read concurrently (tmpfs, seq 64 KiB, 64 I/Os in flight in total, MTU 9000, buffer count 64, JS initiator):',
      '',
    );
    const rows: string[][] = [];
    for (const kind of ['vblade', 'sync-ring'] as AggKind[]) {
      for (const count of [1, 8, 64]) {
        const as = agg.get(`${kind}|${count}`)!;
        const mbps = median(as.map((a) => a.mbps));
        rows.push([
          kind === 'vblade' ? 'vblade' : 'aoegw sync (ring)',
          String(count),
          kind === 'vblade' ? `${count} process${count > 1 ? 'es' : ''}` : '1 process',
          mbps.toFixed(1),
          fmtRatio(aggRatio(agg, kind, count)),
          median(as.map((a) => a.cpuPerGB)).toFixed(2),
        ]);
      }
    }
    out.push(
      table(['target', 'exports', 'processes', 'aggregate MB/s', 'vs 1 export', 'target CPU s/GB'], rows),
    );
  }
  return out.join('\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
