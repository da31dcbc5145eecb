/**
 * npm run bench:target — the built-in target next to vblade, side by side in one run: same 1 GiB
 * image on tmpfs, same veth pair, same initiator (aoegw's, in this process), same buffer count (64).
 * Targets: vblade 25 (acknowledges from the page cache), aoegw sync (fdatasync before every
 * acknowledgement), aoegw writeback, and aoegw on an in-memory export (the ceiling). Workloads:
 * seq read/write 1 MiB and rand read/write 4 KiB at MTU 1500 and 9000, queue depth 16; then the
 * aggregate of 1, 8 and 64 exports read concurrently. Rounds are interleaved; medians reported.
 */
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchResult, type RwMode, runBench } from '../src/initiator/bench.js';
import { Initiator } from '../src/initiator/initiator.js';
import { identify } from '../src/initiator/operations.js';
import { PacketLink } from '../src/io/packet-link.js';
import { startServe } from '../support/aoegw.js';
import { Netns, vethPair } from '../support/netns.js';
import { type Spawned, startVblade } from '../support/processes.js';
import { sleep } from '../support/wait.js';
import { machineLine, median, processCpuSeconds, processRssMiB, table, writeSection } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const QD = 16;
const IMAGE = 1 << 30;

type Kind = 'vblade' | 'aoegw sync' | 'aoegw writeback' | 'aoegw memory';
const KINDS: Kind[] = ['vblade', 'aoegw sync', 'aoegw writeback', 'aoegw memory'];
const WORKLOADS: { rw: RwMode; bs: number; label: string }[] = [
  { rw: 'read', bs: 1 << 20, label: 'seq read 1M' },
  { rw: 'write', bs: 1 << 20, label: 'seq write 1M' },
  { rw: 'randread', bs: 4096, label: 'rand read 4K' },
  { rw: 'randwrite', bs: 4096, label: 'rand write 4K' },
];

interface Sample {
  r: BenchResult;
  cpuS: number;
  rssMiB: number;
}

interface Env {
  dir: string;
  nsI: Netns;
  nsT: Netns;
  links: Map<number, { a: string; b: string }>;
}

let slotSeq = 0;

/** Starts `count` exports of one kind on the link of `mtu`; returns the processes and addresses. */
async function startTargets(
  env: Env,
  kind: Kind,
  mtu: number,
  count: number,
): Promise<{ procs: Spawned[]; ids: { major: number; minor: number }[] }> {
  const link = env.links.get(mtu)!;
  const major = 20 + (slotSeq++ % 1000);
  const ids = Array.from({ length: count }, (_, i) => ({ major, minor: i }));
  const img = (i: number) => join(env.dir, `img${i}`);
  if (kind === 'vblade') {
    const procs = ids.map((id, i) =>
      startVblade(env.nsT.name, id.major, id.minor, link.b, img(i), ['-b', '64']),
    );
    await sleep(300);
    return { procs, ids };
  }
  const args = ['--iface', link.b, '--netns', env.nsT.name, '--state', join(env.dir, `state-${major}.json`)];
  const mode = kind === 'aoegw sync' ? 'sync' : 'writeback';
  for (const [i, id] of ids.entries()) {
    const path = kind === 'aoegw memory' ? `memory:${count > 1 ? '64m' : '1g'}` : img(i);
    args.push('--export', `${id.major}.${id.minor}=${path},${mode},bufcnt=64`);
  }
  return { procs: [await startServe(args, 30_000)], ids };
}

async function measure(env: Env, kind: Kind, mtu: number, samples: Map<string, Sample[]>): Promise<void> {
  const { procs, ids } = await startTargets(env, kind, mtu, 1);
  const ini = new Initiator(PacketLink.open({ iface: env.links.get(mtu)!.a, netns: env.nsI.name }));
  try {
    const [advert] = await ini.queryConfig(300, ids[0]);
    if (!advert) throw new Error(`${kind} did not answer: ${procs[0]!.output()}`);
    const c = ini.client(advert);
    const id = await identify(ini, c);
    for (const w of WORKLOADS) {
      const pid = procs[0]!.child.pid!;
      const cpu0 = processCpuSeconds(pid);
      const r = await runBench(c, {
        rw: w.rw,
        bs: w.bs,
        qd: QD,
        timeS: SECONDS,
        regionStart: 0,
        regionSectors: id.sectors,
        now: () => ini.now(),
      });
      const key = `${kind}|${mtu}|${w.label}`;
      samples.set(key, [
        ...(samples.get(key) ?? []),
        { r, cpuS: processCpuSeconds(pid) - cpu0, rssMiB: processRssMiB(pid) },
      ]);
      process.stderr.write(
        `${kind} MTU ${mtu} ${w.label}: ${r.mbps.toFixed(1)} MB/s ${Math.round(r.iops)} IOPS (${r.retransmits} rexmit, ${r.errors} err)\n`,
      );
    }
  } finally {
    ini.close();
    for (const p of procs) await p.stop();
  }
}

/** Aggregate MB/s of `count` exports read concurrently (seq 64 KiB, 64 I/Os in flight in total). */
async function aggregate(env: Env, kind: Kind, count: number): Promise<{ mbps: number; cpuPerGB: number }> {
  const { procs, ids } = await startTargets(env, kind, 9000, count);
  const ini = new Initiator(PacketLink.open({ iface: env.links.get(9000)!.a, netns: env.nsI.name }));
  try {
    const adverts = await ini.queryConfig(500);
    const mine = adverts.filter((a) => ids.some((i) => i.major === a.major && i.minor === a.minor));
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

async function main() {
  const dir = mkdtempSync('/dev/shm/aoegw-bench-target-');
  const env: Env = { dir, nsI: new Netns('bti'), nsT: new Netns('btt'), links: new Map() };
  const samples = new Map<string, Sample[]>();
  const agg = new Map<string, { mbps: number; cpuPerGB: number }[]>();
  try {
    for (let i = 0; i < 64; i++) {
      writeFileSync(join(dir, `img${i}`), '');
      truncateSync(join(dir, `img${i}`), i === 0 ? IMAGE : 64 << 20);
    }
    for (const mtu of [1500, 9000]) env.links.set(mtu, vethPair(env.nsI, env.nsT, mtu));
    for (let round = 0; round < ROUNDS; round++) {
      for (const mtu of [1500, 9000]) for (const kind of KINDS) await measure(env, kind, mtu, samples);
      for (const count of [1, 8, 64]) {
        for (const kind of ['vblade', 'aoegw sync'] as Kind[]) {
          const a = await aggregate(env, kind, count);
          agg.set(`${kind}|${count}`, [...(agg.get(`${kind}|${count}`) ?? []), a]);
          process.stderr.write(`aggregate ${kind} ${count} exports: ${a.mbps.toFixed(1)} MB/s\n`);
        }
      }
    }
  } finally {
    env.nsI.delete();
    env.nsT.delete();
    rmSync(dir, { recursive: true, force: true });
  }

  const rows: (string | number)[][] = [];
  for (const mtu of [1500, 9000]) {
    for (const w of WORKLOADS) {
      const base = samples.get(`vblade|${mtu}|${w.label}`)!;
      const baseMbps = median(base.map((s) => s.r.mbps));
      for (const kind of KINDS) {
        const ss = samples.get(`${kind}|${mtu}|${w.label}`)!;
        const m = (f: (s: Sample) => number) => median(ss.map(f));
        rows.push([
          mtu,
          w.label,
          kind,
          m((s) => s.r.mbps).toFixed(1),
          Math.round(m((s) => s.r.iops)).toLocaleString('en'),
          (m((s) => s.r.latencyUs.p50) / 1000).toFixed(2),
          (m((s) => s.r.latencyUs.p99) / 1000).toFixed(2),
          m((s) => s.cpuS / (s.r.bytes / 1e9)).toFixed(2),
          m((s) => s.rssMiB).toFixed(0),
          kind === 'vblade' ? '1.00×' : `${(m((s) => s.r.mbps) / baseMbps).toFixed(2)}×`,
        ]);
      }
    }
  }
  const aggRows: (string | number)[][] = [];
  for (const kind of ['vblade', 'aoegw sync'] as Kind[]) {
    const one = median(agg.get(`${kind}|1`)!.map((a) => a.mbps));
    for (const count of [1, 8, 64]) {
      const as = agg.get(`${kind}|${count}`)!;
      const mbps = median(as.map((a) => a.mbps));
      aggRows.push([
        kind,
        count,
        kind === 'vblade' ? `${count} processes` : '1 process',
        mbps.toFixed(1),
        `${(mbps / one).toFixed(2)}×`,
        median(as.map((a) => a.cpuPerGB)).toFixed(2),
      ]);
    }
  }
  const body = [
    '## Built-in target vs vblade (`npm run bench:target`)',
    '',
    `Machine: ${machineLine()}. ${ROUNDS} interleaved rounds of ${SECONDS} s per cell, medians. Same 1 GiB image on`,
    "tmpfs, same veth pair, same initiator (aoegw's, in the benchmark process), queue depth 16, buffer count 64 for",
    'every target. vblade acknowledges writes from the page cache; `aoegw sync` calls fdatasync before every',
    'acknowledgement (on tmpfs that is nearly free: the figures show protocol and CPU cost, not disk cost);',
    '`aoegw memory` is a RAM export, the ceiling. CPU s/GB and RSS are the target process(es).',
    '',
    table(
      [
        'MTU',
        'workload',
        'target',
        'MB/s',
        'IOPS',
        'p50 ms',
        'p99 ms',
        'target CPU s/GB',
        'RSS MiB',
        'vs vblade',
      ],
      rows,
    ),
    '',
    'Aggregate of N exports read concurrently (seq 64 KiB, 64 I/Os in flight in total, MTU 9000):',
    '',
    table(['target', 'exports', 'processes', 'aggregate MB/s', 'vs 1 export', 'target CPU s/GB'], aggRows),
  ].join('\n');
  writeSection('target', body);
  process.stdout.write(`${body}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
