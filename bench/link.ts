/**
 * npm run bench:link — frames per second the addon sends and receives between two namespaces over
 * a veth pair: batch size 1 vs 64, 1060-byte frames (MTU 1500) and 8740-byte frames (MTU 9000),
 * receiving through the TPACKET_V2 ring (the default) and through recvmmsg.
 * The sender runs here, the receiver in a child process; rounds are interleaved and medians
 * reported. The sender is unthrottled for a bounded time (seconds per cell), so "rx" is the
 * receiver's capacity and drops are what the kernel discarded for it.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { interfaceInfo, PacketLink } from '../src/io/packet-link.js';
import { Netns, vethPair } from '../support/netns.js';
import { machineLine, median, repoRoot, table, writeSection } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const cells = [
  { frameLen: 1060, mtu: 1500 },
  { frameLen: 8740, mtu: 9000 },
];
const batches = [1, 64];
const paths = ['ring', 'recvmmsg'] as const;
type Path = (typeof paths)[number];

interface Sample {
  txFps: number;
  rxFps: number;
  drops: number;
  txCpuUsPerFrame: number;
  rxCpuUsPerFrame: number;
}

async function runCell(
  nsA: Netns,
  nsB: Netns,
  a: string,
  b: string,
  frameLen: number,
  batch: number,
  path: Path,
): Promise<Sample> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'bench', 'link-receiver.ts'),
      '--iface',
      b,
      '--netns',
      nsB.name,
      '--batch',
      String(batch),
      '--seconds',
      String(SECONDS),
      '--rx-ring',
      path === 'ring' ? '1' : '0',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], cwd: repoRoot },
  );
  let out = '';
  const ready = new Promise<void>((r) =>
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready')) r();
    }),
  );
  const done = new Promise<void>((r) => child.on('exit', () => r()));
  await ready;
  const tx = PacketLink.open({ iface: a, netns: nsA.name, batch });
  // To the receiver's MAC: frames for another host are dropped by the receive filter.
  const dst = interfaceInfo(b, nsB.name).mac;
  // Prefill every slot once: the benchmark measures moving frames, not building them.
  for (let i = 0; i < batch; i++) {
    const s = tx.txSlot();
    dst.copy(s, 0);
    tx.mac.copy(s, 6);
    s.writeUInt16BE(0x88a2, 12);
    tx.txCommit(frameLen);
  }
  tx.flush();
  let sent = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + (SECONDS + 0.3) * 1000;
  const native = tx as unknown as {
    native: { send(h: unknown, n: number): number };
    handle: unknown;
    txLen: Int32Array;
  };
  native.txLen.fill(frameLen);
  while (performance.now() < end) {
    for (let k = 0; k < 64; k++) sent += native.native.send(native.handle, batch);
  }
  const el = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  tx.close();
  await done;
  const r = JSON.parse(out.slice(out.indexOf('{')));
  return {
    txFps: sent / el,
    rxFps: r.frames / r.seconds,
    drops: r.kernelDrops,
    txCpuUsPerFrame: ((cpu.user + cpu.system) / sent) * 1,
    rxCpuUsPerFrame: r.frames ? (r.cpuS * 1e6) / r.frames : 0,
  };
}

async function main() {
  const nsA = new Netns('bla');
  const nsB = new Netns('blb');
  const results = new Map<string, Sample[]>();
  try {
    const pairs = cells.map((c) => ({ ...c, v: vethPair(nsA, nsB, c.mtu) }));
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of pairs) {
        for (const batch of batches) {
          for (const path of paths) {
            const s = await runCell(nsA, nsB, c.v.a, c.v.b, c.frameLen, batch, path);
            const key = `${c.frameLen}/${batch}/${path}`;
            results.set(key, [...(results.get(key) ?? []), s]);
            process.stderr.write(
              `round ${round + 1} frame ${c.frameLen} batch ${batch} ${path}: tx ${Math.round(s.txFps)} fps, rx ${Math.round(s.rxFps)} fps, drops ${s.drops}\n`,
            );
          }
        }
      }
    }
  } finally {
    nsA.delete();
    nsB.delete();
  }
  const rows: (string | number)[][] = [];
  for (const c of cells) {
    const one = results.get(`${c.frameLen}/1/recvmmsg`)!;
    for (const batch of batches) {
      for (const path of paths) {
        const ss = results.get(`${c.frameLen}/${batch}/${path}`)!;
        const rx = median(ss.map((s) => s.rxFps));
        const rxBase = median(one.map((s) => s.rxFps));
        rows.push([
          c.frameLen,
          c.mtu,
          batch,
          path,
          Math.round(median(ss.map((s) => s.txFps))).toLocaleString('en'),
          Math.round(rx).toLocaleString('en'),
          ((rx * c.frameLen * 8) / 1e9).toFixed(2),
          `${(rx / rxBase).toFixed(2)}×`,
          median(ss.map((s) => s.txCpuUsPerFrame)).toFixed(2),
          median(ss.map((s) => s.rxCpuUsPerFrame)).toFixed(2),
          Math.round(median(ss.map((s) => s.drops))),
        ]);
      }
    }
  }
  const body = [
    '## Native link: frames per second between two namespaces (`npm run bench:link`)',
    '',
    `Machine: ${machineLine()}. ${ROUNDS} interleaved rounds of ${SECONDS} s per cell, medians. Sender in the`,
    'benchmark process (unthrottled sendmmsg of `batch` frames), receiver in a child process (up to `batch`',
    'frames per receive, one JS callback per batch; `ring`: read in place from the TPACKET_V2 receive ring,',
    '`recvmmsg`: copied into the arena). rx is what the receiver took; drops are frames the kernel discarded at',
    'the receiver socket (the sender outruns it). "rx vs batch 1" is against batch 1 through recvmmsg.',
    '',
    table(
      [
        'frame bytes',
        'MTU',
        'batch',
        'rx path',
        'tx frames/s',
        'rx frames/s',
        'rx Gbit/s',
        'rx vs batch 1',
        'tx CPU µs/frame',
        'rx CPU µs/frame',
        'rx drops',
      ],
      rows,
    ),
  ].join('\n');
  writeSection('link', body);
  process.stdout.write(`${body}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
