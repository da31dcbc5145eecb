/**
 * Focused benchmark for "fewer wakeups per frame" (issue 10, item 2): the built-in target (a child
 * process, bench/wake-target.ts) serving a RAM or tmpfs export across a veth pair, our initiator
 * here, random 4 KiB reads at queue depth 16. Per link variant: IOPS, the target link's wakeups,
 * receive batches, transmit batches and CPU per frame, and the initiator link's wakeups per frame.
 * Variants run in interleaved rounds; medians. WAKE_PATH=file serves a 256 MiB tmpfs file (sync)
 * instead of RAM. `WAKE_STRACE=1` also counts the target's syscalls
 * per frame (strace -c -f over one measured window; strace slows it, so IOPS of that run are not
 * comparable). `WAKE_ATTACH='perf record -o F -g -p {pid}'` runs a command on the target's PID over
 * the measured window (stopped with SIGINT).
 *
 *   tsx bench/wakeups.ts            (env: BENCH_SECONDS, BENCH_ROUNDS, WAKE_MTU, WAKE_PATH, WAKE_MODES)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBench } from '../src/initiator/bench.js';
import { Initiator } from '../src/initiator/initiator.js';
import { identify } from '../src/initiator/operations.js';
import { PacketLink, type PacketLinkOptions } from '../src/io/packet-link.js';
import { Netns, vethPair } from '../support/netns.js';
import { median, repoRoot, table } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MTU = Number(process.env.WAKE_MTU ?? 9000);
const QD = Number(process.env.WAKE_QD ?? 16);
const BS = Number(process.env.WAKE_BS ?? 4096);
const RW = (process.env.WAKE_RW ?? 'randread') as 'randread';
const STRACE = process.env.WAKE_STRACE === '1';

interface Mode {
  name: string;
  target: Partial<PacketLinkOptions>;
  ini: Partial<PacketLinkOptions>;
}
const MODES: Mode[] = process.env.WAKE_MODES
  ? (JSON.parse(process.env.WAKE_MODES) as Mode[])
  : [{ name: 'default', target: {}, ini: {} }];

type Counters = Record<string, number>;

interface Sample {
  iops: number;
  /** Frames the target received in the measured window. */
  tFrames: number;
  tWakeupsPerFrame: number;
  tRxPerBatch: number;
  tTxPerBatch: number;
  tCpuUsPerIo: number;
  iWakeupsPerFrame: number;
  iRxPerBatch: number;
  syscallsPerFrame?: number;
  syscalls?: string;
}

function startTarget(
  ns: Netns,
  iface: string,
  path: string,
  state: string,
  link: Partial<PacketLinkOptions>,
): Promise<{ child: ChildProcess; next: () => Promise<Counters> }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'bench', 'wake-target.ts'),
      '--iface',
      iface,
      '--netns',
      ns.name,
      '--path',
      path,
      '--state',
      state,
      '--link',
      JSON.stringify(link),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], cwd: repoRoot },
  );
  let buf = '';
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  child.stdout!.on('data', (d) => {
    buf += d;
    let i = buf.indexOf('\n');
    while (i >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
    }
    wake?.();
  });
  const line = async (): Promise<string> => {
    const until = Date.now() + 30_000;
    while (lines.length === 0) {
      if (Date.now() > until || child.exitCode !== null) throw new Error('target did not answer');
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 100);
      });
    }
    return lines.shift()!;
  };
  return line().then((first) => {
    if (first !== 'ready') throw new Error(`target: ${first}`);
    return {
      child,
      next: async () => {
        child.kill('SIGUSR1');
        return JSON.parse(await line()) as Counters;
      },
    };
  });
}

function strace(pid: number): { stop: () => Promise<string> } {
  const p = spawn('strace', ['-c', '-f', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d) => {
    err += d;
  });
  return {
    stop: () =>
      new Promise((r) => {
        p.on('exit', () => r(err));
        p.kill('SIGINT');
      }),
  };
}

function parseStrace(out: string): { total: number; top: string } {
  const rows: { calls: number; name: string }[] = [];
  for (const l of out.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(l);
    if (m && m[2] !== 'total') rows.push({ calls: Number(m[1]), name: m[2]! });
  }
  rows.sort((a, b) => b.calls - a.calls);
  return {
    total: rows.reduce((s, r) => s + r.calls, 0),
    top: rows
      .slice(0, 8)
      .map((r) => `${r.name} ${r.calls}`)
      .join(', '),
  };
}

async function measure(
  env: { nsI: Netns; nsT: Netns; a: string; b: string; dir: string },
  mode: Mode,
  k: number,
): Promise<Sample> {
  const path = process.env.WAKE_PATH ?? 'memory:256m';
  const t = await startTarget(env.nsT, env.b, path, join(env.dir, `state-${k}.json`), mode.target);
  const iniLink = PacketLink.open({ iface: env.a, netns: env.nsI.name, ...mode.ini });
  const ini = new Initiator(iniLink);
  try {
    let advert: Awaited<ReturnType<Initiator['queryConfig']>>[number] | undefined;
    for (let i = 0; i < 20 && !advert; i++) [advert] = await ini.queryConfig(300, { major: 1, minor: 0 });
    if (!advert) throw new Error('target did not answer');
    const c = ini.client(advert);
    const id = await identify(ini, c);
    const opts = {
      rw: RW,
      bs: BS,
      qd: QD,
      regionStart: 0,
      regionSectors: Math.min(id.sectors, (256 << 20) / 512),
      now: () => ini.now(),
    };
    await runBench(c, { ...opts, timeS: 0.5 }); // warm-up (JIT, page cache)
    const t0 = await t.next();
    const i0 = iniLink.stats();
    const i0w = iniLink as unknown as { native: { stats(h: unknown): Counters }; handle: unknown };
    const iw0 = i0w.native.stats(i0w.handle).wakeups!;
    const st = STRACE ? strace(t.child.pid!) : undefined;
    const attach = process.env.WAKE_ATTACH
      ? spawn('sh', ['-c', process.env.WAKE_ATTACH.replaceAll('{pid}', String(t.child.pid))], {
          stdio: 'inherit',
        })
      : undefined;
    if (st) await new Promise((r) => setTimeout(r, 300));
    const r = await runBench(c, { ...opts, timeS: SECONDS });
    const trace = st ? parseStrace(await st.stop()) : undefined;
    if (attach) {
      attach.kill('SIGINT');
      await new Promise((r) => attach.once('exit', r));
    }
    const t1 = await t.next();
    const i1 = iniLink.stats();
    const iw1 = i0w.native.stats(i0w.handle).wakeups!;
    const d = (k: string) => t1[k]! - t0[k]!;
    const frames = d('rxFrames');
    return {
      iops: r.iops,
      tFrames: frames,
      tWakeupsPerFrame: d('wakeups') / frames,
      tRxPerBatch: frames / d('rxBatches'),
      tTxPerBatch: d('txFrames') / d('txBatches'),
      tCpuUsPerIo: (d('cpuS') * 1e6) / r.ios,
      iWakeupsPerFrame: (iw1 - iw0) / (i1.rxFrames - i0.rxFrames),
      iRxPerBatch: (i1.rxFrames - i0.rxFrames) / (i1.rxBatches - i0.rxBatches),
      ...(trace ? { syscallsPerFrame: trace.total / frames, syscalls: trace.top } : {}),
    };
  } finally {
    ini.close();
    t.child.kill('SIGTERM');
    await new Promise((r) => t.child.once('exit', r));
  }
}

async function main() {
  const dir = mkdtempSync('/dev/shm/aoegw-wake-');
  const nsI = new Netns('wki');
  const nsT = new Netns('wkt');
  const samples = new Map<string, Sample[]>();
  try {
    if (process.env.WAKE_PATH === 'file') {
      writeFileSync(join(dir, 'img'), '');
      truncateSync(join(dir, 'img'), 256 << 20);
    }
    if (process.env.WAKE_PATH === 'file') process.env.WAKE_PATH = join(dir, 'img');
    const v = vethPair(nsI, nsT, MTU);
    const env = { nsI, nsT, a: v.a, b: v.b, dir };
    let k = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const m of MODES) {
        const s = await measure(env, m, k++);
        samples.set(m.name, [...(samples.get(m.name) ?? []), s]);
        process.stderr.write(`round ${round + 1} ${m.name}: ${JSON.stringify(s)}\n`);
      }
    }
  } finally {
    nsI.delete();
    nsT.delete();
    rmSync(dir, { recursive: true, force: true });
  }
  const base = median(samples.get(MODES[0]!.name)!.map((s) => s.iops));
  const rows = MODES.map((m) => {
    const ss = samples.get(m.name)!;
    const md = (f: (s: Sample) => number) => median(ss.map(f));
    return [
      m.name,
      Math.round(md((s) => s.iops)).toLocaleString('en'),
      `${(md((s) => s.iops) / base).toFixed(2)}×`,
      md((s) => s.tWakeupsPerFrame).toFixed(3),
      md((s) => s.tRxPerBatch).toFixed(2),
      md((s) => s.tTxPerBatch).toFixed(2),
      md((s) => s.tCpuUsPerIo).toFixed(2),
      md((s) => s.iWakeupsPerFrame).toFixed(3),
      md((s) => s.iRxPerBatch).toFixed(2),
      ...(STRACE ? [md((s) => s.syscallsPerFrame ?? 0).toFixed(2)] : []),
    ];
  });
  const header = [
    'variant',
    'IOPS',
    'vs first',
    'target wakeups/frame',
    'target rx frames/batch',
    'target tx frames/batch',
    'target CPU µs/IO',
    'initiator wakeups/frame',
    'initiator rx frames/batch',
    ...(STRACE ? ['target syscalls/frame'] : []),
  ];
  process.stdout.write(`MTU ${MTU}, ${RW} ${BS} B, qd ${QD}, ${ROUNDS} rounds × ${SECONDS} s, medians\n`);
  process.stdout.write(`${table(header, rows)}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
