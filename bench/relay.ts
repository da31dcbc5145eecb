/**
 * npx tsx bench/relay.ts — datagrams per second the fault relay (support/fault-relay-main.ts)
 * carries on the router of the two-site topology: 1400-byte datagrams from gwA to gwB through the
 * relay, unthrottled and at a fixed offered rate, with no faults and with a delay (every datagram
 * then waits in the pool). The sender and receiver are batched sockets in this process; the relay
 * is its own process, so on two cores each side has one. The routed path without the relay is
 * measured too: what this harness itself can push. Medians of BENCH_ROUNDS rounds of
 * BENCH_SECONDS each; printed, not written to docs/.
 */
import { encodeUdpAddress, type UdpEndpoint } from '../src/io/udp-address.js';
import { UdpLink } from '../src/io/udp-link.js';
import type { FaultSettings } from '../support/fault-plan.js';
import { type FaultRelay, startTwoSiteRelay } from '../support/fault-relay.js';
import { createTwoSite, type TwoSite } from '../support/two-site.js';
import { sleep } from '../support/wait.js';
import { machineLine, median, processCpuSeconds, table } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SIZE = 1400;
const RELAY_PORT = 7790;
const TUNNEL_PORT = 7788;

interface Cell {
  name: string;
  viaRelay: boolean;
  /** Offered datagrams/s; 0: as fast as the sender goes. */
  rate: number;
  faults?: Partial<FaultSettings>;
}

const cells: Cell[] = [
  { name: 'routed, no relay', viaRelay: false, rate: 0 },
  { name: 'relay, no faults', viaRelay: true, rate: 0 },
  { name: 'relay, no faults', viaRelay: true, rate: 50_000 },
  { name: 'relay, delay 5 ms + jitter 2 ms', viaRelay: true, rate: 0, faults: { delayMs: 5, jitterMs: 2 } },
];

interface Sample {
  sentPerS: number;
  relayOutPerS: number;
  gotPerS: number;
  lossPct: number;
  relayCpuPct: number;
  /** Relay CPU (user + system) per datagram it received: what contention on the machine moves least. */
  relayCpuUsPerDatagram: number;
}

/** Sends SIZE-byte datagrams to `to` for `ms`, at `rate`/s (0: flat out), 64 per sendmmsg. */
async function send(link: UdpLink, to: UdpEndpoint, ms: number, rate: number): Promise<number> {
  const addr = encodeUdpAddress(to);
  const t0 = performance.now();
  let sent = 0;
  for (;;) {
    const elapsed = performance.now() - t0;
    if (elapsed >= ms) return sent;
    const due = rate > 0 ? Math.min(64, Math.floor((rate * elapsed) / 1000) - sent) : 64;
    for (let i = 0; i < due; i++) {
      link.txSlot().writeUInt32BE(sent++, 0);
      link.txCommitTo(SIZE, addr);
    }
    link.flush();
    // Let the receiver's batches in between.
    await new Promise<void>((r) => setImmediate(r));
  }
}

/** Datagrams the receiver has taken so far. */
let got = 0;

async function runCell(site: TwoSite, tx: UdpLink, c: Cell): Promise<Sample> {
  let relay: FaultRelay | undefined;
  try {
    if (c.viaRelay)
      relay = await startTwoSiteRelay(site, { port: RELAY_PORT, ...(c.faults ? { faults: c.faults } : {}) });
    const to = c.viaRelay
      ? { address: site.ip.routerA, port: RELAY_PORT }
      : { address: site.ip.gwBWan, port: TUNNEL_PORT };
    await send(tx, to, 300, c.rate); // warm-up
    await sleep(50);
    const pid = relay?.process.child.pid;
    const cpu0 = pid ? processCpuSeconds(pid) : 0;
    const s0 = relay ? (await relay.stats()).a2b : undefined;
    const got0 = got;
    const t0 = performance.now();
    const sent = await send(tx, to, SECONDS * 1000, c.rate);
    const seconds = (performance.now() - t0) / 1000;
    const s1 = relay ? (await relay.stats()).a2b : undefined;
    await sleep(50 + (c.faults?.delayMs ?? 0) + (c.faults?.jitterMs ?? 0));
    const received = got - got0;
    const out = s0 && s1 ? s1.out - s0.out : received;
    const relayIn = s0 && s1 ? s1.in - s0.in : 0;
    const cpu = pid ? processCpuSeconds(pid) - cpu0 : 0;
    return {
      sentPerS: sent / seconds,
      relayOutPerS: out / seconds,
      gotPerS: received / seconds,
      lossPct: (100 * (sent - received)) / sent,
      relayCpuPct: (100 * cpu) / seconds,
      relayCpuUsPerDatagram: relayIn > 0 ? (cpu * 1e6) / relayIn : 0,
    };
  } finally {
    await relay?.stop();
  }
}

async function main(): Promise<void> {
  const site = createTwoSite();
  const tx = UdpLink.open({ address: site.ip.gwAWan, port: TUNNEL_PORT, netns: site.ns.gwA.name });
  const rx = UdpLink.open({ address: site.ip.gwBWan, port: TUNNEL_PORT, netns: site.ns.gwB.name });
  rx.onBatch((_d, _l, _a, n) => {
    got += n;
  });
  try {
    const samples = new Map<Cell, Sample[]>(cells.map((c) => [c, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of cells) samples.get(c)!.push(await runCell(site, tx, c));
    }
    const k = (n: number) => `${Math.round(n / 1000)}k`;
    const rows = cells.map((c) => {
      const s = samples.get(c)!;
      const m = (f: (x: Sample) => number) => median(s.map(f));
      return [
        c.name,
        c.rate > 0 ? k(c.rate) : 'flat out',
        k(m((x) => x.sentPerS)),
        c.viaRelay ? k(m((x) => x.relayOutPerS)) : '-',
        k(m((x) => x.gotPerS)),
        `${m((x) => x.lossPct).toFixed(2)} %`,
        c.viaRelay ? `${Math.round(m((x) => x.relayCpuPct))} %` : '-',
        c.viaRelay ? m((x) => x.relayCpuUsPerDatagram).toFixed(1) : '-',
      ];
    });
    console.log(machineLine());
    console.log(`${SIZE}-byte datagrams, ${ROUNDS} rounds of ${SECONDS} s, medians`);
    const header = ['path', 'offered', 'sent/s', 'relay out/s', 'received/s', 'lost', 'relay CPU'];
    console.log(table([...header, 'relay CPU µs/datagram'], rows));
  } finally {
    tx.close();
    rx.close();
    site.close();
  }
}

await main();
