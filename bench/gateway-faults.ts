/**
 * npm run bench:gateway (second part) — the gateway pair next to plain VXLAN and VXLAN in
 * wireguard-go under the faults of a routed network: 1 % and 5 % loss and 20 ms added round trip,
 * injected by the fault relay on the router (support/fault-relay.ts; the kernel here has no netem),
 * every stack through its own relay so all get the same faults. A "relay, no faults" profile is
 * each stack's own reference. LAN MTU 1500 and 9000 (WAN = LAN + 160, as in bench/gateway.ts);
 * rounds interleaved, medians. Also a queue-depth-1 4 KiB read per cell: the round trip the
 * window-limited bound (window × frame ÷ RTT) is computed from.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchResult, type RwMode, runBench } from '../src/initiator/bench.js';
import { Initiator } from '../src/initiator/initiator.js';
import { PacketLink } from '../src/io/packet-link.js';
import { NO_FAULTS } from '../support/fault-plan.js';
import { type FaultRelay, type FaultSettings, startTwoSiteRelay } from '../support/fault-relay.js';
import { gatewayRunSkipReason, startGatewayPair } from '../support/gateway-pair.js';
import {
  VXLAN_PORT,
  vxlanBridge,
  WIREGUARD_PORT,
  wireguardSkipReason,
  wireguardTunnel,
} from '../support/overlays.js';
import { startVblade } from '../support/processes.js';
import { createTwoSite } from '../support/two-site.js';
import { sleep } from '../support/wait.js';
import {
  closeAll,
  filledImage,
  machineLine,
  median,
  openTarget,
  table,
  withTimeout,
  writeSection,
} from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const QD = 16;
const IMAGE_BYTES = 1 << 30;
const VBLADE_BUFCNT = 64;
const WAN_EXTRA = 160;
const MTUS = (process.env.BENCH_MTUS ?? '1500,9000').split(',').map(Number);
const RELAY_GW_PORT = 7000;

type ProfileId = 'clean' | 'loss1' | 'loss5' | 'delay20';
const PROFILES: { id: ProfileId; label: string; faults: Partial<FaultSettings> }[] = [
  { id: 'clean', label: 'relay, no faults', faults: {} },
  { id: 'loss1', label: '1 % loss', faults: { dropPercent: 1 } },
  { id: 'loss5', label: '5 % loss', faults: { dropPercent: 5 } },
  { id: 'delay20', label: '+20 ms RTT', faults: { delayMs: 10 } },
];
type StackId = 'vxlan' | 'wg' | 'gw-vblade' | 'gw-export';
const STACKS: { id: StackId; label: string }[] = [
  { id: 'vxlan', label: 'plain VXLAN → vblade' },
  { id: 'wg', label: 'VXLAN in wireguard-go → vblade' },
  { id: 'gw-vblade', label: 'aoegw pair → vblade' },
  { id: 'gw-export', label: 'aoegw pair → built-in export' },
];
const WORKLOADS: { rw: RwMode; bs: number; label: string }[] = [
  { rw: 'read', bs: 1 << 20, label: 'seq read 1M' },
  { rw: 'randread', bs: 4096, label: 'rand read 4K' },
];

interface Running {
  ns: string;
  iface: string;
  target: { major: number; minor: number };
  relay: FaultRelay;
}

interface Sample {
  r: BenchResult;
  /** p50 of a queue-depth-1 4 KiB read: one request's round trip (µs). */
  rttUs: number;
  /** The initiator's frame payload (bytes) and window (frames in flight). */
  frameBytes: number;
  window: number;
}

const key = (id: StackId, mtu: number, p: ProfileId, w: string) => `${id}|${mtu}|${p}|${w}`;

class Bench {
  readonly closers: (() => unknown)[] = [];
  readonly running = new Map<string, Running>();
  readonly failed = new Map<string, string>();
  readonly samples = new Map<string, Sample[]>();
  readonly gatewaySkip = gatewayRunSkipReason();
  readonly wgSkip = wireguardSkipReason();

  constructor(
    readonly dir: string,
    readonly image: string,
    readonly exportImage: string,
  ) {}

  private later<T extends { close?: () => unknown; stop?: () => unknown }>(x: T): T {
    this.closers.push(() => (x.close ? x.close() : x.stop?.()));
    return x;
  }

  async setUp(mtu: number): Promise<void> {
    const attempt = async (ids: StackId[], fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (e) {
        for (const id of ids) this.failed.set(`${id}|${mtu}`, (e as Error).message.split('\n')[0]!);
        process.stderr.write(`setup of ${ids.join('+')} at MTU ${mtu} failed: ${(e as Error).message}\n`);
      }
    };
    const site = () => this.later(createTwoSite({ lanMtu: mtu, wanMtu: mtu + WAN_EXTRA }));
    const vblade = (s: ReturnType<typeof createTwoSite>) =>
      this.later(startVblade(s.ns.tgt.name, 1, 0, s.iface.tgt, this.image, ['-b', String(VBLADE_BUFCNT)]));
    await attempt(['vxlan'], async () => {
      const s = site();
      const relay = this.later(await startTwoSiteRelay(s, { port: VXLAN_PORT, tunnelPort: VXLAN_PORT }));
      this.later(vxlanBridge(s, { remoteA: s.ip.routerA, remoteB: s.ip.routerB }));
      vblade(s);
      this.running.set(`vxlan|${mtu}`, {
        ns: s.ns.ini.name,
        iface: s.iface.ini,
        target: { major: 1, minor: 0 },
        relay,
      });
    });
    await attempt(['wg'], async () => {
      if (this.wgSkip) throw new Error(`skipped: ${this.wgSkip}`);
      const s = site();
      const relay = this.later(
        await startTwoSiteRelay(s, { port: WIREGUARD_PORT, tunnelPort: WIREGUARD_PORT }),
      );
      const wg = this.later(await wireguardTunnel(s, { endpointA: s.ip.routerA, endpointB: s.ip.routerB }));
      this.later(vxlanBridge(s, { underlay: wg.underlay }));
      vblade(s);
      this.running.set(`wg|${mtu}`, {
        ns: s.ns.ini.name,
        iface: s.iface.ini,
        target: { major: 1, minor: 0 },
        relay,
      });
    });
    if (this.gatewaySkip) {
      for (const id of ['gw-vblade', 'gw-export'] as StackId[])
        this.failed.set(`${id}|${mtu}`, this.gatewaySkip);
      return;
    }
    await attempt(['gw-vblade', 'gw-export'], async () => {
      const s = site();
      const relay = this.later(await startTwoSiteRelay(s, { port: RELAY_GW_PORT }));
      vblade(s);
      const dir = join(this.dir, `gw-${mtu}`);
      mkdirSync(dir);
      const tunnel = { tunnel: { mtu: s.wanMtu - 28 } };
      const pair = await startGatewayPair(s, {
        dir,
        relay: { port: RELAY_GW_PORT },
        a: {
          imports: [
            { remote: '1.0', local: '7.0', links: ['lan'] },
            { remote: '1.1', local: '7.1', links: ['lan'] },
          ],
          extra: tunnel,
        },
        b: {
          exports: [{ target: '1.1', path: this.exportImage, name: 'disk-b1' }],
          forwards: [{ link: 'lan', targets: ['1.0'] }],
          allow: [{ targets: ['1.0', '1.1'], access: 'rw' }],
          extra: tunnel,
        },
      });
      this.closers.push(() => pair.stop());
      for (const [id, minor] of [
        ['gw-vblade', 0],
        ['gw-export', 1],
      ] as const) {
        this.running.set(`${id}|${mtu}`, {
          ns: s.ns.ini.name,
          iface: s.iface.ini,
          target: { major: 7, minor },
          relay,
        });
      }
    });
  }

  async measure(id: StackId, mtu: number, p: (typeof PROFILES)[number]): Promise<void> {
    const run = this.running.get(`${id}|${mtu}`);
    if (!run || this.failed.has(`${id}|${mtu}`)) return;
    await run.relay.set({ both: { ...NO_FAULTS, ...p.faults } });
    const ini = new Initiator(PacketLink.open({ iface: run.iface, netns: run.ns }));
    try {
      const { c, ident } = await openTarget(ini, run.target, 15_000, 500);
      const bench = (rw: RwMode, bs: number, qd: number, timeS: number) =>
        withTimeout(
          runBench(c, {
            rw,
            bs,
            qd,
            timeS,
            regionStart: 0,
            regionSectors: Math.min(ident.sectors, IMAGE_BYTES / 512),
            now: () => ini.now(),
          }),
          timeS * 1000 + 60_000,
          `${id} ${p.id}`,
        );
      const rtt = await bench('randread', 4096, 1, 1);
      for (const w of WORKLOADS) {
        const r = await bench(w.rw, w.bs, QD, SECONDS);
        const k = key(id, mtu, p.id, w.label);
        this.samples.set(k, [
          ...(this.samples.get(k) ?? []),
          { r, rttUs: rtt.latencyUs.p50, frameBytes: c.sectorsPerFrame * 512, window: c.window },
        ]);
        process.stderr.write(
          `${id} MTU ${mtu} ${p.id} ${w.label}: ${r.mbps.toFixed(1)} MB/s ${Math.round(r.iops)} IOPS p50 ${Math.round(r.latencyUs.p50)} µs rtt ${Math.round(rtt.latencyUs.p50)} µs (${r.retransmits} rexmit, ${r.errors} err)\n`,
        );
      }
    } catch (e) {
      this.failed.set(`${id}|${mtu}|${p.id}`, `failed: ${(e as Error).message.split('\n')[0]}`);
      process.stderr.write(`${id} at MTU ${mtu} ${p.id} failed: ${(e as Error).message}\n`);
    } finally {
      ini.close();
    }
  }

  close(): Promise<void> {
    return closeAll(this.closers);
  }
}

interface Cell {
  mbps: number;
  iops: number;
  p50: number;
  rttUs: number;
  errors: number;
  rexmitPerGB: number;
  /** Frame payload the initiator used (bytes). */
  frameBytes: number;
  window: number;
}

function cell(ss: Sample[] | undefined): Cell | undefined {
  if (!ss || ss.length === 0) return undefined;
  const m = (f: (s: Sample) => number) => median(ss.map(f));
  return {
    mbps: m((s) => s.r.mbps),
    iops: m((s) => s.r.iops),
    p50: m((s) => s.r.latencyUs.p50),
    rttUs: m((s) => s.rttUs),
    errors: ss.reduce((n, s) => n + s.r.errors, 0),
    rexmitPerGB: m((s) => s.r.retransmits / (s.r.bytes / 1e9)),
    frameBytes: ss[0]!.frameBytes,
    window: ss[0]!.window,
  };
}

function report(b: Bench, notes: string[]): string {
  const rows: (string | number)[][] = [];
  const cells = new Map<string, Cell>();
  for (const [k, ss] of b.samples) {
    const c = cell(ss);
    if (c) cells.set(k, c);
  }
  for (const mtu of MTUS) {
    for (const p of PROFILES) {
      for (const w of WORKLOADS) {
        for (const s of STACKS) {
          const c = cells.get(key(s.id, mtu, p.id, w.label));
          if (!c) {
            const why =
              b.failed.get(`${s.id}|${mtu}|${p.id}`) ?? b.failed.get(`${s.id}|${mtu}`) ?? 'no samples';
            rows.push([mtu, p.label, w.label, s.label, why, '–', '–', '–', '–', '–', '–', '–']);
            continue;
          }
          const own = cells.get(key(s.id, mtu, 'clean', w.label));
          const ratio = (base: Cell | undefined) => (base ? `${(c.mbps / base.mbps).toFixed(2)}×` : '–');
          rows.push([
            mtu,
            p.label,
            w.label,
            s.label,
            `${c.mbps.toFixed(1)}${c.errors ? ` (${c.errors} err)` : ''}`,
            Math.round(c.iops).toLocaleString('en'),
            Math.round(c.p50),
            (c.rttUs / 1000).toFixed(2),
            Math.round(c.rexmitPerGB).toLocaleString('en'),
            p.id === 'clean' ? '1.00×' : ratio(own),
            s.id === 'wg' ? '1.00×' : ratio(cells.get(key('wg', mtu, p.id, w.label))),
            s.id === 'vxlan' ? '1.00×' : ratio(cells.get(key('vxlan', mtu, p.id, w.label))),
          ]);
        }
      }
    }
  }
  return [
    '## Gateway pair under faults vs VXLAN and wireguard-go (`npm run bench:gateway`, second part)',
    '',
    `Machine: ${machineLine()}. ${ROUNDS} interleaved round(s) of ${SECONDS} s per cell, medians.`,
    ...notes,
    '',
    table(
      [
        'LAN MTU',
        'fault',
        'workload',
        'stack',
        'MB/s',
        'IOPS',
        'p50 µs',
        'RTT ms (qd 1)',
        'initiator rexmit/GB',
        'vs own no-fault',
        'vs wireguard-go',
        'vs plain VXLAN',
      ],
      rows,
    ),
    '',
    goals(cells),
  ].join('\n');
}

function goals(cells: Map<string, Cell>): string {
  const rows: string[][] = [];
  const c = (id: StackId, mtu: number, p: ProfileId, w: string) => cells.get(key(id, mtu, p, w));
  for (const id of ['gw-vblade', 'gw-export'] as StackId[]) {
    for (const mtu of MTUS) {
      for (const [p, min] of [
        ['loss1', 0.8],
        ['loss5', 0.5],
      ] as const) {
        const a = c(id, mtu, p, 'seq read 1M');
        const z = c(id, mtu, 'clean', 'seq read 1M');
        const r = a && z ? a.mbps / z.mbps : undefined;
        rows.push([
          `${id} seq read 1M at ${p === 'loss1' ? '1' : '5'} % loss vs its own lossless figure, MTU ${mtu}`,
          `≥ ${min}×`,
          r === undefined ? '–' : `${r.toFixed(2)}×`,
          r === undefined ? 'n/a (no data)' : r >= min ? 'met' : 'not met',
        ]);
      }
    }
    const mtu = Math.max(...MTUS);
    const d = c(id, mtu, 'delay20', 'seq read 1M');
    if (d) {
      // Window-limited bound: the frames in flight (the target's buffer count, at most 64) × the
      // frame payload ÷ the round trip one request takes on this path.
      const bound = (d.window * d.frameBytes) / (d.rttUs / 1e6) / 1e6;
      const r = d.mbps / bound;
      rows.push([
        `${id} seq read 1M with +20 ms RTT, MTU ${mtu}: vs window × frame ÷ RTT = ${d.window} × ${d.frameBytes} B ÷ ${(d.rttUs / 1000).toFixed(1)} ms = ${bound.toFixed(1)} MB/s`,
        '≥ 0.8×',
        `${r.toFixed(2)}×`,
        r >= 0.8 ? 'met' : 'not met',
      ]);
    } else {
      rows.push([`${id} seq read 1M with +20 ms RTT, MTU ${mtu}`, '≥ 0.8× bound', '–', 'n/a (no data)']);
    }
  }
  return [
    'Goals of issue 9, evaluated on this run:',
    '',
    table(['goal', 'target', 'measured', 'verdict'], rows),
  ].join('\n');
}

async function main() {
  const budgetS =
    ROUNDS * MTUS.length * PROFILES.length * STACKS.length * (WORKLOADS.length * (SECONDS + 2) + 20) + 240;
  const watchdog = setTimeout(() => {
    process.stderr.write(
      `bench:gateway faults exceeded its ${budgetS} s budget; exiting (exit hooks clean up)\n`,
    );
    process.exit(2);
  }, budgetS * 1000);
  watchdog.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
  const dir = mkdtempSync('/dev/shm/aoegw-bench-gwf-');
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const b = new Bench(
    dir,
    filledImage(join(dir, 'vblade.img'), IMAGE_BYTES),
    filledImage(join(dir, 'export.img'), IMAGE_BYTES),
  );
  try {
    for (const mtu of MTUS) await b.setUp(mtu);
    await sleep(500);
    for (let round = 0; round < ROUNDS; round++) {
      for (const mtu of MTUS) {
        for (const p of PROFILES) {
          const order = STACKS.map((_, i) => STACKS[(i + round) % STACKS.length]!);
          for (const s of order) await b.measure(s.id, mtu, p);
        }
      }
    }
  } finally {
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const notes = [
    '',
    'Notes:',
    '- Every stack runs in its own routed topology (ini — gwA — router — gwB — tgt, WAN MTU = LAN MTU + 160) and every',
    '  datagram of its underlay crosses the fault relay on the router (support/fault-relay.ts: two batched UDP sockets,',
    '  seeded faults), including in the "relay, no faults" rows, which are each stack’s own reference: the relay costs',
    '  every stack the same extra hop. Loss applies to each direction; +20 ms RTT is 10 ms each way.',
    "- The initiator is aoegw's (src/initiator) in this process, 1 MiB sequential reads and 4 KiB random reads at queue",
    '  depth 16; its window is the target’s buffer count (vblade -b 64, the built-in export 64). RTT is the p50 of a',
    '  queue-depth-1 4 KiB read on the same path and profile just before the cell (service time included).',
    '- initiator rexmit/GB: retransmissions by the initiator per GB moved. Behind VXLAN and wireguard-go every lost',
    '  datagram is an initiator timeout; behind the gateway A resends inside the tunnel on its own ms-scale timeout.',
  ];
  for (const [k, why] of b.failed) notes.push(`- ${k}: ${why}`);
  if (process.env.BENCH_NOTE) notes.push(`- ${process.env.BENCH_NOTE}`);
  const body = report(b, notes);
  writeSection('gateway-faults', body);
  process.stdout.write(`${body}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
