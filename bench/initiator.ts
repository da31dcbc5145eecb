/**
 * npm run bench:initiator — aoegw's userspace initiator driving vblade (the reference target) on a
 * 1 GiB image on tmpfs across a veth pair: sequential 1 MiB reads and writes and random 4 KiB reads,
 * queue depth 16, at MTU 1500 and 9000. Interleaved rounds, medians. Reports the initiator's CPU
 * per frame next to vblade's, because on two cores both ends are CPU-bound.
 */
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchResult, type RwMode, runBench } from '../src/initiator/bench.js';
import { Initiator } from '../src/initiator/initiator.js';
import { identify } from '../src/initiator/operations.js';
import { PacketLink } from '../src/io/packet-link.js';
import { Netns, vethPair } from '../support/netns.js';
import { startVblade } from '../support/processes.js';
import { sleep } from '../support/wait.js';
import { machineLine, median, processCpuSeconds, table, writeSection } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const QD = 16;
const IMAGE = 1 << 30;
const workloads: { rw: RwMode; bs: number; label: string }[] = [
  { rw: 'read', bs: 1 << 20, label: 'seq read 1 MiB' },
  { rw: 'write', bs: 1 << 20, label: 'seq write 1 MiB' },
  { rw: 'randread', bs: 4096, label: 'rand read 4 KiB' },
];

interface Sample {
  r: BenchResult;
  vbladeCpuS: number;
}

async function main() {
  const dir = mkdtempSync('/dev/shm/aoegw-bench-');
  const nsI = new Netns('bii');
  const nsT = new Netns('bit');
  const samples = new Map<string, Sample[]>();
  const stops: (() => Promise<unknown>)[] = [];
  try {
    const setups = [];
    for (const [i, mtu] of [1500, 9000].entries()) {
      const image = join(dir, `disk${mtu}.img`);
      writeFileSync(image, '');
      truncateSync(image, IMAGE);
      const v = vethPair(nsI, nsT, mtu);
      // Buffer count 64 = the Linux initiator's maximum window, so neither side is starved.
      const vb = startVblade(nsT.name, 9, i, v.b, image, ['-b', '64']);
      stops.push(() => vb.stop());
      setups.push({ mtu, slot: i, v, vb });
    }
    await sleep(300);
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of setups) {
        const ini = new Initiator(PacketLink.open({ iface: s.v.a, netns: nsI.name }));
        try {
          const [advert] = await ini.queryConfig(300, { major: 9, minor: s.slot });
          if (!advert) throw new Error(`vblade e9.${s.slot} did not answer: ${s.vb.output()}`);
          const c = ini.client(advert);
          const id = await identify(ini, c);
          for (const w of workloads) {
            const cpu0 = processCpuSeconds(s.vb.child.pid!);
            const r = await runBench(c, {
              rw: w.rw,
              bs: w.bs,
              qd: QD,
              timeS: SECONDS,
              regionStart: 0,
              regionSectors: id.sectors,
              now: () => ini.now(),
            });
            const vbladeCpuS = processCpuSeconds(s.vb.child.pid!) - cpu0;
            const key = `${s.mtu}/${w.label}`;
            samples.set(key, [...(samples.get(key) ?? []), { r, vbladeCpuS }]);
            process.stderr.write(
              `round ${round + 1} MTU ${s.mtu} ${w.label}: ${r.mbps.toFixed(1)} MB/s ${Math.round(r.iops)} IOPS, ${r.retransmits} retransmits\n`,
            );
          }
        } finally {
          ini.close();
        }
      }
    }
  } finally {
    for (const stop of stops) await stop();
    nsI.delete();
    nsT.delete();
    rmSync(dir, { recursive: true, force: true });
  }
  const rows: (string | number)[][] = [];
  for (const mtu of [1500, 9000]) {
    for (const w of workloads) {
      const ss = samples.get(`${mtu}/${w.label}`)!;
      const m = (f: (s: Sample) => number) => median(ss.map(f));
      rows.push([
        mtu,
        w.label,
        m((s) => s.r.mbps).toFixed(1),
        Math.round(m((s) => s.r.iops)).toLocaleString('en'),
        (m((s) => s.r.latencyUs.p50) / 1000).toFixed(2),
        (m((s) => s.r.latencyUs.p99) / 1000).toFixed(2),
        m((s) => s.r.retransmits),
        m((s) => s.r.cpu.usPerFrame).toFixed(2),
        m((s) => s.r.cpu.secondsPerGB).toFixed(2),
        m((s) => s.vbladeCpuS / (s.r.bytes / 1e9)).toFixed(2),
        m((s) => (s.vbladeCpuS / s.r.seconds) * 100).toFixed(0),
      ]);
    }
  }
  const body = [
    '## aoegw initiator against vblade (`npm run bench:initiator`)',
    '',
    `Machine: ${machineLine()}. vblade 25 (\`-b 64\`) serving a 1 GiB image on tmpfs across a veth pair`,
    `between two namespaces; aoegw's initiator in the benchmark process; queue depth ${QD}, window = buffer count 64;`,
    `${ROUNDS} interleaved rounds of ${SECONDS} s, medians. MB/s = 10^6 bytes/s. CPU figures: this process`,
    "(initiator, includes the kernel's veth delivery done in its context) and vblade's process.",
    '',
    table(
      [
        'MTU',
        'workload',
        'MB/s',
        'IOPS',
        'p50 ms',
        'p99 ms',
        'retransmits',
        'initiator µs/frame',
        'initiator CPU s/GB',
        'vblade CPU s/GB',
        'vblade CPU %',
      ],
      rows,
    ),
  ].join('\n');
  writeSection('initiator', body);
  process.stdout.write(`${body}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
