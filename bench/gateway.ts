/**
 * npm run bench:gateway — the gateway pair next to what it replaces, side by side in one run, at
 * LAN MTU 1500 and 9000, rounds interleaved, medians reported. Stacks, each in its own topology
 * (support/two-site.ts: ini — gwA — router — gwB — tgt) except the first:
 *   direct      initiator and vblade on one veth pair (the floor of every other row)
 *   vxlan       kernel VXLAN on gwA/gwB over the routed WAN, bridged with the LANs (unencrypted)
 *   wg          the same VXLAN bridge carried inside wireguard-go (what operators run today)
 *   gw-vblade   aoegw run pair, A imports B's forward of vblade e1.0 as 7.0
 *   gw-export   aoegw run pair, A imports B's built-in export 1.1 as 7.1
 * The gateway rows run only when `aoegw run` exists in dist/. The initiator is ours, in this
 * process, in namespace `ini`; vblade always serves the same 1 GiB tmpfs image. Workloads: seq read
 * and write 1 MiB, random read 4 KiB, queue depth 16. CPU per GB of every daemon from /proc.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchResult, type RwMode, runBench } from '../src/initiator/bench.js';
import { Initiator } from '../src/initiator/initiator.js';
import { PacketLink } from '../src/io/packet-link.js';
import {
  type GatewayPairOptions,
  type GatewaySideOptions,
  gatewayRunSkipReason,
  startGatewayPair,
} from '../support/gateway-pair.js';
import { Netns, vethPair } from '../support/netns.js';
import {
  VXLAN_OVERHEAD,
  vxlanBridge,
  WIREGUARD_OVERHEAD,
  wireguardSkipReason,
  wireguardTunnel,
} from '../support/overlays.js';
import { type Spawned, startVblade } from '../support/processes.js';
import { createTwoSite } from '../support/two-site.js';
import { sleep } from '../support/wait.js';
import {
  closeAll,
  filledImage,
  machineLine,
  median,
  openTarget,
  processCpuSeconds,
  table,
  withTimeout,
  writeSection,
} from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const QD = 16;
const IMAGE_BYTES = 1 << 30;
/** vblade's buffer count (-b): the same 64 as bench:target and the built-in export's default. */
const VBLADE_BUFCNT = 64;
/** WAN MTU above the LAN MTU for every tunneled stack: fits VXLAN (50) inside WireGuard (60). */
const WAN_EXTRA = 160;
const MTUS = [1500, 9000];
/**
 * The gateway's tunnel datagram size: by default it fills the same WAN MTU the VXLAN rows use
 * (minus IPv4 + UDP headers), so every stack gets the same path; BENCH_GW_TUNNEL_MTU=default
 * leaves the daemon's own default (no `tunnel` key in the config), a number sets it.
 */
const GW_TUNNEL_MTU = process.env.BENCH_GW_TUNNEL_MTU ?? 'wan';
/** BENCH_GW_OFFLOADS=off runs the gateways with `tunnel.gso` and `tunnel.gro` false (default: on). */
const GW_OFFLOADS = process.env.BENCH_GW_OFFLOADS === 'off' ? 'off' : 'on';
const IPV4_UDP_HEADERS = 28;

type StackId = 'direct' | 'vxlan' | 'wg' | 'gw-vblade' | 'gw-export';
const STACKS: { id: StackId; label: string }[] = [
  { id: 'direct', label: 'direct L2 → vblade' },
  { id: 'vxlan', label: 'plain VXLAN (kernel) → vblade' },
  { id: 'wg', label: 'VXLAN in wireguard-go → vblade' },
  { id: 'gw-vblade', label: 'aoegw pair → vblade (forward)' },
  { id: 'gw-export', label: 'aoegw pair → built-in export' },
];
const WORKLOADS: { rw: RwMode; bs: number; label: string }[] = [
  { rw: 'read', bs: 1 << 20, label: 'seq read 1M' },
  { rw: 'write', bs: 1 << 20, label: 'seq write 1M' },
  { rw: 'randread', bs: 4096, label: 'rand read 4K' },
];

interface Daemon {
  /** vblade, or one side of the tunnel (wireguard-go A/B, aoegw A/B). */
  role: 'vblade' | 'tunnel';
  pid: number;
}

/** One stack at one MTU, set up once and measured every round. */
interface Running {
  ns: string;
  iface: string;
  target: { major: number; minor: number };
  daemons: Daemon[];
}

interface Sample {
  r: BenchResult;
  vbladeCpuS: number;
  tunnelCpuS: number[];
}

const key = (id: StackId, mtu: number, w: string) => `${id}|${mtu}|${w}`;

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

  private vblade(ns: string, iface: string): Spawned {
    const vb = startVblade(ns, 1, 0, iface, this.image, ['-b', String(VBLADE_BUFCNT)]);
    this.closers.push(() => vb.stop());
    return vb;
  }

  /** Sets up every stack at `mtu`; a stack that fails is reported in its rows, not fatal. */
  async setUp(mtu: number): Promise<void> {
    const attempt = async (ids: StackId[], fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (e) {
        for (const id of ids) this.failed.set(`${id}|${mtu}`, (e as Error).message.split('\n')[0]!);
        process.stderr.write(`setup of ${ids.join('+')} at MTU ${mtu} failed: ${(e as Error).message}\n`);
      }
    };
    await attempt(['direct'], async () => {
      const nsI = new Netns('ini');
      this.closers.push(() => nsI.delete());
      const nsT = new Netns('tgt');
      this.closers.push(() => nsT.delete());
      const v = vethPair(nsI, nsT, mtu);
      const vb = this.vblade(nsT.name, v.b);
      this.running.set(`direct|${mtu}`, {
        ns: nsI.name,
        iface: v.a,
        target: { major: 1, minor: 0 },
        daemons: [{ role: 'vblade', pid: vb.child.pid! }],
      });
    });
    await attempt(['vxlan'], async () => {
      const site = createTwoSite({ lanMtu: mtu, wanMtu: mtu + WAN_EXTRA });
      this.closers.push(() => site.close());
      const br = vxlanBridge(site);
      this.closers.push(() => br.close());
      const vb = this.vblade(site.ns.tgt.name, site.iface.tgt);
      this.running.set(`vxlan|${mtu}`, {
        ns: site.ns.ini.name,
        iface: site.iface.ini,
        target: { major: 1, minor: 0 },
        daemons: [{ role: 'vblade', pid: vb.child.pid! }],
      });
    });
    await attempt(['wg'], async () => {
      if (this.wgSkip) throw new Error(`skipped: ${this.wgSkip}`);
      const site = createTwoSite({ lanMtu: mtu, wanMtu: mtu + WAN_EXTRA });
      this.closers.push(() => site.close());
      const wg = await wireguardTunnel(site);
      this.closers.push(() => wg.close());
      const br = vxlanBridge(site, { underlay: wg.underlay });
      this.closers.push(() => br.close());
      const vb = this.vblade(site.ns.tgt.name, site.iface.tgt);
      this.running.set(`wg|${mtu}`, {
        ns: site.ns.ini.name,
        iface: site.iface.ini,
        target: { major: 1, minor: 0 },
        daemons: [
          { role: 'vblade', pid: vb.child.pid! },
          { role: 'tunnel', pid: wg.procA.child.pid! },
          { role: 'tunnel', pid: wg.procB.child.pid! },
        ],
      });
    });
    if (this.gatewaySkip) {
      for (const id of ['gw-vblade', 'gw-export'] as StackId[]) {
        this.failed.set(`${id}|${mtu}`, `skipped: ${this.gatewaySkip}`);
      }
      return;
    }
    await attempt(['gw-vblade', 'gw-export'], async () => {
      const site = createTwoSite({ lanMtu: mtu, wanMtu: mtu + WAN_EXTRA });
      this.closers.push(() => site.close());
      const vb = this.vblade(site.ns.tgt.name, site.iface.tgt);
      const dir = join(this.dir, `gw-${mtu}`);
      mkdirSync(dir);
      const opts: GatewayPairOptions & { a: GatewaySideOptions; b: GatewaySideOptions } = {
        dir,
        a: {
          imports: [
            { remote: '1.0', local: '7.0', links: ['lan'] },
            { remote: '1.1', local: '7.1', links: ['lan'] },
          ],
        },
        b: {
          exports: [{ target: '1.1', path: this.exportImage, name: 'disk-b1' }],
          forwards: [{ link: 'lan', targets: ['1.0'] }],
          allow: [{ targets: ['1.0', '1.1'], access: 'rw' }],
        },
      };
      const tunnelKeys: Record<string, unknown> = GW_OFFLOADS === 'off' ? { gso: false, gro: false } : {};
      if (GW_TUNNEL_MTU !== 'default') {
        tunnelKeys.mtu = GW_TUNNEL_MTU === 'wan' ? site.wanMtu - IPV4_UDP_HEADERS : Number(GW_TUNNEL_MTU);
      }
      if (Object.keys(tunnelKeys).length > 0)
        for (const side of [opts.a, opts.b]) side.extra = { tunnel: tunnelKeys };
      const pair = await startGatewayPair(site, opts);
      this.closers.push(() => pair.stop());
      const tunnel: Daemon[] = [
        { role: 'tunnel', pid: pair.a.child.pid! },
        { role: 'tunnel', pid: pair.b.child.pid! },
      ];
      this.running.set(`gw-vblade|${mtu}`, {
        ns: site.ns.ini.name,
        iface: site.iface.ini,
        target: { major: 7, minor: 0 },
        daemons: [{ role: 'vblade', pid: vb.child.pid! }, ...tunnel],
      });
      this.running.set(`gw-export|${mtu}`, {
        ns: site.ns.ini.name,
        iface: site.iface.ini,
        target: { major: 7, minor: 1 },
        daemons: tunnel,
      });
    });
  }

  /** All workloads against one stack; a failure marks the stack failed for the rest of the run. */
  async measure(id: StackId, mtu: number): Promise<void> {
    const run = this.running.get(`${id}|${mtu}`);
    if (!run || this.failed.has(`${id}|${mtu}`)) return;
    const ini = new Initiator(PacketLink.open({ iface: run.iface, netns: run.ns }));
    try {
      const { c, ident } = await openTarget(ini, run.target, 10_000, 300);
      for (const w of WORKLOADS) {
        const cpu = () => run.daemons.map((d) => processCpuSeconds(d.pid));
        const cpu0 = cpu();
        const r = await withTimeout(
          runBench(c, {
            rw: w.rw,
            bs: w.bs,
            qd: QD,
            timeS: SECONDS,
            regionStart: 0,
            regionSectors: Math.min(ident.sectors, IMAGE_BYTES / 512),
            now: () => ini.now(),
          }),
          SECONDS * 1000 + 30_000,
          `${id} ${w.label}`,
        );
        const d = cpu().map((x, i) => x - cpu0[i]!);
        const sample: Sample = {
          r,
          vbladeCpuS: d.filter((_, i) => run.daemons[i]!.role === 'vblade').reduce((s, x) => s + x, 0),
          tunnelCpuS: d.filter((_, i) => run.daemons[i]!.role === 'tunnel'),
        };
        const k = key(id, mtu, w.label);
        this.samples.set(k, [...(this.samples.get(k) ?? []), sample]);
        process.stderr.write(
          `${id} MTU ${mtu} ${w.label}: ${r.mbps.toFixed(1)} MB/s ${Math.round(r.iops)} IOPS p50 ${Math.round(r.latencyUs.p50)} µs (${r.retransmits} rexmit, ${r.errors} err)\n`,
        );
      }
    } catch (e) {
      this.failed.set(`${id}|${mtu}`, `failed: ${(e as Error).message.split('\n')[0]}`);
      process.stderr.write(`${id} at MTU ${mtu} failed: ${(e as Error).message}\n`);
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
  p99: number;
  vbladeCpuPerGB: number;
  tunnelCpuPerGB: number[];
  initiatorCpuPerGB: number;
  errors: number;
  /** Initiator retransmissions per GB moved (lost or late frames on the path). */
  rexmitPerGB: number;
}

function cell(ss: Sample[] | undefined): Cell | undefined {
  if (!ss || ss.length === 0) return undefined;
  const m = (f: (s: Sample) => number) => median(ss.map(f));
  const perGB = (s: Sample, cpu: number) => cpu / (s.r.bytes / 1e9);
  return {
    mbps: m((s) => s.r.mbps),
    iops: m((s) => s.r.iops),
    p50: m((s) => s.r.latencyUs.p50),
    p99: m((s) => s.r.latencyUs.p99),
    vbladeCpuPerGB: m((s) => perGB(s, s.vbladeCpuS)),
    tunnelCpuPerGB: ss[0]!.tunnelCpuS.map((_, i) => m((s) => perGB(s, s.tunnelCpuS[i]!))),
    initiatorCpuPerGB: m((s) => s.r.cpu.secondsPerGB),
    errors: ss.reduce((n, s) => n + s.r.errors, 0),
    rexmitPerGB: m((s) => s.r.retransmits / (s.r.bytes / 1e9)),
  };
}

function report(b: Bench, notes: string[]): string {
  const rows: (string | number)[][] = [];
  const cells = new Map<string, Cell>();
  for (const mtu of MTUS) {
    for (const w of WORKLOADS) {
      for (const s of STACKS) {
        const c = cell(b.samples.get(key(s.id, mtu, w.label)));
        if (c) cells.set(key(s.id, mtu, w.label), c);
      }
      const wg = cells.get(key('wg', mtu, w.label));
      const vx = cells.get(key('vxlan', mtu, w.label));
      const direct = cells.get(key('direct', mtu, w.label));
      for (const s of STACKS) {
        const c = cells.get(key(s.id, mtu, w.label));
        if (!c) {
          const why = b.failed.get(`${s.id}|${mtu}`) ?? 'no samples';
          rows.push([mtu, w.label, s.label, why, '–', '–', '–', '–', '–', '–', '–', '–', '–', '–']);
          continue;
        }
        const ratio = (base: Cell | undefined) => (base ? `${(c.mbps / base.mbps).toFixed(2)}×` : '–');
        const tunnel =
          s.id === 'direct'
            ? 'none'
            : s.id === 'vxlan'
              ? 'kernel (no process)'
              : c.tunnelCpuPerGB.map((x) => x.toFixed(2)).join(' + ');
        rows.push([
          mtu,
          w.label,
          s.label,
          `${c.mbps.toFixed(1)}${c.errors ? ` (${c.errors} err)` : ''}`,
          Math.round(c.iops).toLocaleString('en'),
          Math.round(c.p50),
          Math.round(c.p99),
          s.id === 'gw-export' ? '–' : c.vbladeCpuPerGB.toFixed(2),
          tunnel,
          c.initiatorCpuPerGB.toFixed(2),
          Math.round(c.rexmitPerGB).toLocaleString('en'),
          s.id === 'wg' ? '1.00×' : ratio(wg),
          s.id === 'vxlan' ? '1.00×' : ratio(vx),
          direct ? `${Math.round(c.p50 - direct.p50)}` : '–',
        ]);
      }
    }
  }
  return [
    '## Gateway pair vs VXLAN and wireguard-go (`npm run bench:gateway`)',
    '',
    `Machine: ${machineLine()}. ${ROUNDS} interleaved round(s) of ${SECONDS} s per cell, medians.`,
    ...notes,
    '',
    table(
      [
        'LAN MTU',
        'workload',
        'stack',
        'MB/s',
        'IOPS',
        'p50 µs',
        'p99 µs',
        'vblade CPU s/GB',
        'tunnel CPU s/GB (A + B)',
        'initiator CPU s/GB',
        'rexmit/GB',
        'vs wireguard-go',
        'vs plain VXLAN',
        'added p50 vs direct µs',
      ],
      rows,
    ),
    '',
    goals(cells, b),
  ].join('\n');
}

/** The issue's goals for the gateway, each evaluated on the named cell; "met" or "not met". */
function goals(cells: Map<string, Cell>, b: Bench): string {
  const rows: string[][] = [];
  const g = (what: string, goal: string, value: () => [number, boolean, string] | undefined) => {
    const v = value();
    rows.push([what, goal, v ? v[2] : '–', v ? (v[1] ? 'met' : 'not met') : 'n/a (no data)']);
  };
  const c = (id: StackId, mtu: number, w: string) => cells.get(key(id, mtu, w));
  const cmp = (id: StackId, base: StackId, mtu: number, w: string, f: (x: Cell) => number, min: number) => {
    const a = c(id, mtu, w);
    const z = c(base, mtu, w);
    if (!a || !z) return undefined;
    const r = f(a) / f(z);
    return [r, r >= min, `${r.toFixed(2)}×`] as [number, boolean, string];
  };
  const abs = (id: StackId, mtu: number, w: string, f: (x: Cell) => number, min: number, unit: string) => {
    const a = c(id, mtu, w);
    if (!a) return undefined;
    return [f(a), f(a) >= min, `${Math.round(f(a)).toLocaleString('en')} ${unit}`] as [
      number,
      boolean,
      string,
    ];
  };
  const mb = (x: Cell) => x.mbps;
  const io = (x: Cell) => x.iops;
  g('gw → vblade vs wireguard-go, seq read 1M MB/s, MTU 1500', '≥ 5×', () =>
    cmp('gw-vblade', 'wg', 1500, 'seq read 1M', mb, 5),
  );
  g('gw → vblade vs wireguard-go, rand read 4K IOPS, MTU 1500', '≥ 5×', () =>
    cmp('gw-vblade', 'wg', 1500, 'rand read 4K', io, 5),
  );
  g('gw → vblade seq read 1M, MTU 1500', '≥ 75 MB/s', () =>
    abs('gw-vblade', 1500, 'seq read 1M', mb, 75, 'MB/s'),
  );
  g('gw → vblade rand read 4K, MTU 1500', '≥ 20k IOPS', () =>
    abs('gw-vblade', 1500, 'rand read 4K', io, 20_000, 'IOPS'),
  );
  g('gw → vblade seq read 1M, MTU 9000', '≥ 300 MB/s', () =>
    abs('gw-vblade', 9000, 'seq read 1M', mb, 300, 'MB/s'),
  );
  g('gw → export vs wireguard-go, seq read 1M MB/s, MTU 1500', '≥ 8×', () =>
    cmp('gw-export', 'wg', 1500, 'seq read 1M', mb, 8),
  );
  g('gw → export vs wireguard-go, rand read 4K IOPS, MTU 1500', '≥ 8×', () =>
    cmp('gw-export', 'wg', 1500, 'rand read 4K', io, 8),
  );
  for (const mtu of MTUS) {
    g(`gw → vblade vs plain VXLAN, seq read 1M MB/s, MTU ${mtu}`, '≥ 0.8×', () =>
      cmp('gw-vblade', 'vxlan', mtu, 'seq read 1M', mb, 0.8),
    );
  }
  g('gw → vblade added p50 vs direct, rand read 4K, MTU 1500', '< 200 µs', () => {
    const a = c('gw-vblade', 1500, 'rand read 4K');
    const d = c('direct', 1500, 'rand read 4K');
    if (!a || !d) return undefined;
    const added = a.p50 - d.p50;
    return [added, added < 200, `${Math.round(added)} µs`];
  });
  g('gateway CPU per GB (A + B) vs wireguard-go (A + B), seq read 1M, MTU 1500', '≤ 0.20×', () => {
    const a = c('gw-vblade', 1500, 'seq read 1M');
    const w = c('wg', 1500, 'seq read 1M');
    if (!a || !w) return undefined;
    const sum = (x: Cell) => x.tunnelCpuPerGB.reduce((s, y) => s + y, 0);
    const r = sum(a) / sum(w);
    return [r, r <= 0.2, `${r.toFixed(2)}×`];
  });
  const lead = b.gatewaySkip
    ? `Goals of issue 8 (not evaluated: ${b.gatewaySkip}):`
    : 'Goals of issue 8, evaluated on this run:';
  return [lead, '', table(['goal', 'target', 'measured', 'verdict'], rows)].join('\n');
}

async function main() {
  // Bound the whole run: a hung stack must not hold namespaces and daemons forever.
  const budgetS = ROUNDS * MTUS.length * STACKS.length * (WORKLOADS.length * (SECONDS + 2) + 15) + 180;
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench:gateway exceeded its ${budgetS} s budget; exiting (exit hooks clean up)\n`);
    process.exit(2);
  }, budgetS * 1000);
  watchdog.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

  const dir = mkdtempSync('/dev/shm/aoegw-bench-gw-');
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const b = new Bench(
    dir,
    filledImage(join(dir, 'vblade.img'), IMAGE_BYTES),
    filledImage(join(dir, 'export.img'), IMAGE_BYTES),
  );
  try {
    for (const mtu of MTUS) await b.setUp(mtu);
    await sleep(300); // vblade announces itself and opens its socket
    for (let round = 0; round < ROUNDS; round++) {
      for (const mtu of MTUS) {
        // Rotate the order each round so no stack always runs right after the same neighbour.
        const order = STACKS.map((_, i) => STACKS[(i + round) % STACKS.length]!);
        for (const s of order) await b.measure(s.id, mtu);
      }
    }
  } finally {
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const notes = [
    '',
    'Notes:',
    `- Every tunneled stack runs in its own routed topology (ini — gwA — router — gwB — tgt) with WAN MTU = LAN MTU + ${WAN_EXTRA},`,
    `  so the LAN MTU is carried unchanged (VXLAN adds ${VXLAN_OVERHEAD} bytes, WireGuard ${WIREGUARD_OVERHEAD} more); the LAN MTU is never lowered.`,
    '  Direct is one veth pair between ini and tgt. The router only forwards (no netem).',
    `- vblade serves the same prefilled 1 GiB tmpfs image in every row (buffer count ${VBLADE_BUFCNT}); the built-in export is another`,
    '  prefilled 1 GiB tmpfs file with the default durability (sync: fdatasync is free on tmpfs).',
    '- MB/s and IOPS are one figure for a fixed block size, so one ratio column covers both. "vs" columns compare',
    '  MB/s with the same MTU and workload; added p50 is this row minus the direct row, in µs. For 1 MiB I/O at queue',
    '  depth 16 the p50 is mostly queueing (16 MiB in flight / throughput); the 4 KiB rows show per-request latency.',
    '- Kernel VXLAN has no process: its cost is softirq time charged to whichever task sends, mostly the initiator',
    '  (this benchmark process) and vblade, so it shows up in those columns. wireguard-go and aoegw CPU is per side',
    '  (A + B), from /proc/PID/stat over the cell. rexmit/GB: initiator retransmissions (frames lost or later than',
    '  its timeout on the path) per GB moved; each costs the I/O a retransmit timeout.',
    "- The initiator is aoegw's (src/initiator), in this process, not the independent C initiator the issue's",
    '  reference figures were measured with.',
    `- wireguard-go: Debian's ${'`wireguard-go`'} (userspace, no kernel module here), keys from ${'`wg genkey`'}.`,
  ];
  notes.push(
    GW_TUNNEL_MTU === 'default'
      ? "- Gateway: the daemon's default tunnel MTU (no `tunnel` key in the configs)."
      : `- Gateway: \`tunnel.mtu\` = ${GW_TUNNEL_MTU === 'wan' ? `WAN MTU − ${IPV4_UDP_HEADERS} (IPv4 + UDP), the same path the VXLAN rows get` : GW_TUNNEL_MTU} (BENCH_GW_TUNNEL_MTU=default: the daemon's own).`,
  );
  if (GW_OFFLOADS === 'off')
    notes.push('- Gateway: `tunnel.gso` and `tunnel.gro` false (BENCH_GW_OFFLOADS=off).');
  if (b.gatewaySkip)
    notes.push(`- Gateway rows: ${b.gatewaySkip} in this build (detected with \`aoegw run --help\`).`);
  for (const [k, why] of b.failed)
    if (!why.startsWith('skipped')) notes.push(`- ${k.replace('|', ' at MTU ')}: ${why}`);
  if (process.env.BENCH_NOTE) notes.push(`- ${process.env.BENCH_NOTE}`);
  const body = report(b, notes);
  writeSection('gateway', body);
  process.stdout.write(`${body}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
