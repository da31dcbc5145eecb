/**
 * Receiving half of bench:tunnel's end-to-end and flood phases, run as its own process so sender
 * and receiver each get a core. A UdpTunnel (the responder) in the namespace given by --netns,
 * its static secret in AOEGW_BENCH_SECRET (hex) and the sender's public key in --peer; --gso and
 * --gro 0|1 override the link's offload defaults, --linger MS delays the exit after the report, --crypto
 * names the backend (default sodium-native). Prints
 * `ready PORT`, counts the records delivered for a fixed window that starts at the first one, then
 * prints one JSON line and exits.
 */
import { type BackendName, loadCrypto } from '../src/tunnel/crypto.js';
import { Rx } from '../src/tunnel/endpoint.js';
import { UdpTunnel } from '../src/tunnel/udp-tunnel.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1]!);
const seconds = Number(args.get('seconds'));
const crypto = await loadCrypto((args.get('crypto') ?? 'sodium-native') as BackendName);
const secret = new Uint8Array(Buffer.from(process.env.AOEGW_BENCH_SECRET ?? '', 'hex'));
let records = 0;
let bytes = 0;
let start = 0;
let cpu0 = process.cpuUsage();
const tunnel = UdpTunnel.open({
  crypto,
  staticKeyPair: crypto.x25519KeyPair(secret),
  address: args.get('address')!,
  port: 0,
  netns: args.get('netns')!,
  mtu: Number(args.get('mtu')),
  batch: Number(args.get('batch')),
  maxBatchesPerWakeup: 64,
  ...(args.has('gso') ? { gso: args.get('gso') === '1' } : {}),
  ...(args.has('gro') ? { gro: args.get('gro') === '1' } : {}),
  events: {
    record: (_p, _t, _b, _o, len) => {
      if (start === 0) {
        start = performance.now();
        cpu0 = process.cpuUsage();
        setTimeout(finish, seconds * 1000);
      }
      records++;
      bytes += len;
    },
  },
});
crypto.memzero(secret);
tunnel.addPeer({ publicKey: new Uint8Array(Buffer.from(args.get('peer')!, 'hex')) });

function finish(): void {
  const el = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const s = tunnel.stats();
  const rx = s.tunnel.rx;
  const out = {
    records,
    bytes,
    seconds: el,
    cpuS: (cpu.user + cpu.system) / 1e6,
    datagrams: rx[Rx.DATA],
    cookieReplies: s.tunnel.txCookieReply,
    badMac1: rx[Rx.BAD_MAC1],
    rateLimited: rx[Rx.RATE_LIMITED],
    // Initiations that reached a Diffie-Hellman without being the sender's own (unknown static key
    // or failed Noise authentication).
    foreignDh: rx[Rx.UNKNOWN_PEER]! + rx[Rx.HANDSHAKE_FAILED]!,
    loadEntered: s.driver.loadEntered,
    rxBatches: s.link.rxBatches,
    rxFrames: s.link.rxFrames,
    rxCalls: s.link.rxCalls ?? 0,
    wakeups: s.link.wakeups ?? 0,
    groMessages: s.link.groMessages ?? 0,
    groSegments: s.link.groSegments ?? 0,
    errors: s.driver.errors,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  tunnel.close();
  // --linger MS: stay (idle) that long after reporting, so a system-call counter can stop first.
  setTimeout(() => process.exit(0), Number(args.get('linger') ?? 0));
}

process.stdout.write(`ready ${tunnel.localPort}\n`);
// Never outlive the benchmark: give up when no record came.
setTimeout(() => {
  if (start === 0) {
    process.stdout.write(`${JSON.stringify({ records: 0, bytes: 0, seconds: 0, cpuS: 0 })}\n`);
    process.exit(0);
  }
}, 30_000);
