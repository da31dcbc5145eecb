/**
 * Receiving half of bench:tunnel's link-only GSO/GRO cells, run as its own process (inside the
 * receiving namespace via --netns) so sender and receiver each get a core: a bare UdpLink (no
 * tunnel, no crypto), --gro 0|1. Prints `ready PORT`, counts datagrams for a fixed window that
 * starts at the first one, then prints one JSON line and exits.
 */
import { UdpLink } from '../src/io/udp-link.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1]!);
const seconds = Number(args.get('seconds'));
const link = UdpLink.open({
  family: 4,
  address: args.get('address')!,
  port: 0,
  netns: args.get('netns')!,
  batch: Number(args.get('batch') ?? 64),
  maxBatchesPerWakeup: 64,
  gro: args.get('gro') === '1',
});
let datagrams = 0;
let bytes = 0;
let start = 0;
let cpu0 = process.cpuUsage();
let s0 = link.stats();
link.onBatch((_d, lens, _a, count) => {
  if (start === 0) {
    start = performance.now();
    cpu0 = process.cpuUsage();
    s0 = link.stats();
    setTimeout(finish, seconds * 1000);
  }
  datagrams += count;
  for (let i = 0; i < count; i++) bytes += lens[i]!;
});

function finish(): void {
  const el = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const s = link.stats();
  const d = (k: 'rxFrames' | 'rxCalls' | 'wakeups' | 'groMessages' | 'groSegments') =>
    (s[k] ?? 0) - (s0[k] ?? 0);
  const out = {
    datagrams,
    bytes,
    seconds: el,
    cpuS: (cpu.user + cpu.system) / 1e6,
    rxFrames: d('rxFrames'),
    rxCalls: d('rxCalls'),
    wakeups: d('wakeups'),
    groMessages: d('groMessages'),
    groSegments: d('groSegments'),
    rxTotal: s.rxFrames,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  link.close();
  // --linger MS: stay (idle) that long after reporting, so a system-call counter can stop first.
  setTimeout(() => process.exit(0), Number(args.get('linger') ?? 0));
}

process.stdout.write(`ready ${link.localPort}\n`);
setTimeout(() => {
  if (start === 0) {
    process.stdout.write(`${JSON.stringify({ datagrams: 0 })}\n`);
    process.exit(0);
  }
}, 30_000);
