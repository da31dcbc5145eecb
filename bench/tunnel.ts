/**
 * npm run bench:tunnel — the encrypted tunnel's costs, written to section `tunnel` of
 * docs/benchmarks.md:
 *
 * (a) one core, in memory: ChaCha20-Poly1305 seals and opens per second of 1100- and 8800-byte
 *     records on each crypto backend, directly and through TunnelEndpoint's data path
 *     (queueRecord + flush / receive), which shows the protocol's own overhead;
 * (b) end to end between two namespaces over a veth: sender endpoint here, receiver (UdpTunnel) in
 *     a child process, UdpLink batch 64 vs 1;
 * (c) handshakes per second in memory (initiation + response + confirming keepalive), and the
 *     responder's cost of a cookie reply and of a bad-mac1 drop;
 * (d) established-session throughput with and without a 20k/s handshake flood, as a ratio;
 * (e) end to end as (b), batch 64, with UDP GSO on send and GRO on receive each on and off, and the
 *     system calls per datagram on both sides (the links' own counts, and perf's count of all
 *     system calls of each process when `perf` is installed). Written to its own section
 *     `tunnel-gso`; BENCH_TUNNEL_PHASES=gso runs only this phase;
 * (f) where a datagram's AEAD time goes, one core, in memory: ChaCha20-Poly1305 in C (libsodium and
 *     OpenSSL, bench/aead-floor.c, when a C compiler and the libraries are there), the sodium-native
 *     call, the CryptoBackend wrapper and the endpoint's data path, at the tunnel's plaintext sizes.
 *     Section `tunnel-aead`; BENCH_TUNNEL_PHASES=aead runs only this phase. Both chains: libsodium
 *     (sodium-native) and OpenSSL EVP (our addon, the openssl-native backend).
 * BENCH_TUNNEL_PHASES=data runs (a) alone on every backend and prints it with ratios (writes nothing).
 *
 * Every phase is bounded in time; rounds are interleaved and medians reported.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants as fsc, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sodiumNative from 'sodium-native';
import { nativeAddon } from '../src/io/native.js';
import { encodeUdpAddress } from '../src/io/udp-address.js';
import { UdpLink } from '../src/io/udp-link.js';
import { CookieMaker } from '../src/tunnel/cookie.js';
import { type CryptoBackend, loadCrypto } from '../src/tunnel/crypto.js';
import { type DatagramSink, Rx, TunnelEndpoint } from '../src/tunnel/endpoint.js';
import { DATA_OVERHEAD, INIT_LEN, INIT_MAC1, INIT_SENDER } from '../src/tunnel/messages.js';
import type { Peer } from '../src/tunnel/peer.js';
import { RECORD_AOE } from '../src/tunnel/records.js';
import { UdpTunnel } from '../src/tunnel/udp-tunnel.js';
import { Netns, vethPair } from '../support/netns.js';
import { machineLine, median, repoRoot, table, writeSection } from './lib.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Seconds per in-memory cell. */
const SLICE = Number(process.env.BENCH_SLICE ?? 0.4);
/** Seconds per end-to-end cell (receiver's window). */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
/** Rounds of the flood phase (d): its ratio is the noisiest figure, so it gets more. */
const FLOOD_ROUNDS = Number(process.env.BENCH_FLOOD_ROUNDS ?? 5);
const FLOOD_RATE = 20_000;
/** Rounds of the GSO/GRO phase (e): its ratios are what it is about, so it gets more. */
const GSO_ROUNDS = Number(process.env.BENCH_GSO_ROUNDS ?? 5);
/** `gso` runs phase (e) alone (and writes only its section); default all phases. */
const PHASES = new Set((process.env.BENCH_TUNNEL_PHASES ?? 'all').split(','));
const runs = (phase: string) => PHASES.has('all') || PHASES.has(phase);

/** UDP offloads of one end-to-end cell, on both ends (GSO matters to the sender, GRO to the receiver). */
interface Offload {
  gso: boolean;
  gro: boolean;
}
const OFFLOADS: { name: string; o: Offload }[] = [
  { name: 'off', o: { gso: false, gro: false } },
  { name: 'GSO', o: { gso: true, gro: false } },
  { name: 'GRO', o: { gso: false, gro: true } },
  { name: 'GSO+GRO', o: { gso: true, gro: true } },
];
/** Offered load of the paced flood cells: about half of what the receiver can take. */
const PACED_RATE = 100_000;
const SIZES = [
  { record: 1100, mtu: 1452, veth: 1500 },
  { record: 8800, mtu: 8952, veth: 9000 },
] as const;
const T0 = 1_000_000;
const log = (s: string) => process.stderr.write(`${s}\n`);
const fmt = (n: number) => Math.round(n).toLocaleString('en');

// ------------------------------------------------------------------ in-memory helpers

/** A sink over a ring of `n` slots; `lens[i]` is the length sent from slot i. */
class RingSink implements DatagramSink {
  readonly slots: Uint8Array[];
  readonly lens: number[];
  i = 0;
  constructor(n: number, size: number) {
    this.slots = Array.from({ length: n }, () => new Uint8Array(size));
    this.lens = new Array(n).fill(0);
  }
  buffer(): Uint8Array {
    return this.slots[this.i % this.slots.length]!;
  }
  send(len: number): void {
    this.lens[this.i % this.slots.length] = len;
    this.i++;
  }
}

function addr(n: number): Uint8Array {
  return encodeUdpAddress({ address: `10.0.0.${n}`, port: 51820 });
}

/** A (initiator) and B with a completed handshake, in memory; A seals into `sinkA`. */
function connectedPair(crypto: CryptoBackend, mtu: number, sinkA: DatagramSink) {
  const ka = crypto.x25519KeyPair();
  const kb = crypto.x25519KeyPair();
  const aAddr = addr(1);
  const bAddr = addr(2);
  const bSink = new RingSink(1, 65536);
  let delivered = 0;
  let hsSink: RingSink | null = new RingSink(1, 65536);
  const aSinkProxy: DatagramSink = {
    buffer: () => (hsSink ?? sinkA).buffer(),
    send: (n, x, o) => (hsSink ?? sinkA).send(n, x, o),
  };
  const a = new TunnelEndpoint({ crypto, staticKeyPair: ka, sink: aSinkProxy, mtu, clockOffsetMs: 1.75e12 });
  const b = new TunnelEndpoint({
    crypto,
    staticKeyPair: kb,
    sink: bSink,
    mtu,
    clockOffsetMs: 1.75e12,
    events: {
      record: () => {
        delivered++;
      },
    },
  });
  const ab = a.addPeer({ publicKey: kb.publicKey, endpoint: bAddr });
  const ba = b.addPeer({ publicKey: ka.publicKey, endpoint: aAddr });
  a.initiate(ab, T0);
  const hs = hsSink;
  b.receive(hs.slots[0]!, hs.lens[0]!, aAddr, 0, T0);
  a.receive(bSink.slots[0]!, bSink.lens[0]!, bAddr, 0, T0);
  b.receive(hs.slots[0]!, hs.lens[0]!, aAddr, 0, T0); // A's confirming keepalive
  hsSink = null;
  if (!ab.hasSession(T0) || !ba.hasSession(T0)) throw new Error('in-memory handshake failed');
  return { a, b, ab, ba, aAddr, delivered: () => delivered };
}

/** Calls `chunk()` (which does `per` operations) until `seconds` of its own time pass; ops/s. */
function timed(seconds: number, per: number, chunk: () => void, untimed?: () => void): number {
  let ops = 0;
  let spent = 0;
  while (spent < seconds * 1000) {
    untimed?.();
    const t = performance.now();
    chunk();
    spent += performance.now() - t;
    ops += per;
  }
  return (ops * 1000) / spent;
}

// ------------------------------------------------------------------ (a) data path

type DataOp = 'direct seal' | 'direct open' | 'endpoint seal' | 'endpoint open';
const DATA_OPS: DataOp[] = ['direct seal', 'direct open', 'endpoint seal', 'endpoint open'];

function dataCell(crypto: CryptoBackend, size: number, mtu: number, op: DataOp): number {
  const rec = new Uint8Array(size).fill(0x5a);
  if (op === 'direct seal' || op === 'direct open') {
    const key = new Uint8Array(32).fill(7);
    const out = new Uint8Array(size + 64);
    const plain = new Uint8Array(size + 64);
    if (op === 'direct seal') {
      let c = 0n;
      return timed(SLICE, 256, () => {
        for (let i = 0; i < 256; i++) crypto.seal(out, 16, key, c++, null, rec, 0, size);
      });
    }
    const n = crypto.seal(out, 16, key, 7n, null, rec, 0, size);
    return timed(SLICE, 256, () => {
      for (let i = 0; i < 256; i++) {
        if (crypto.open(plain, 0, key, 7n, null, out, 16, n) !== size) throw new Error('open failed');
      }
    });
  }
  if (op === 'endpoint seal') {
    const sink = new RingSink(1, mtu);
    const { a, ab } = connectedPair(crypto, mtu, sink);
    return timed(SLICE, 256, () => {
      for (let i = 0; i < 256; i++) {
        a.queueRecord(ab, RECORD_AOE, rec, 0, size, T0);
        a.flush(T0);
      }
    });
  }
  // About one receive arena's worth of datagrams (64 × 9216 bytes), as the driver sees them.
  const K = size > 2000 ? 64 : 256;
  const sink = new RingSink(K, mtu);
  const { a, b, ab, aAddr, delivered } = connectedPair(crypto, mtu, sink);
  const rate = timed(
    SLICE,
    K,
    () => {
      for (let i = 0; i < K; i++) b.receive(sink.slots[i]!, sink.lens[i]!, aAddr, 0, T0);
    },
    () => {
      sink.i = 0;
      for (let i = 0; i < K; i++) {
        a.queueRecord(ab, RECORD_AOE, rec, 0, size, T0);
        a.flush(T0);
      }
    },
  );
  if (b.stats.rx[Rx.DATA]! !== delivered() || delivered() === 0)
    throw new Error('endpoint open lost records');
  return rate;
}

// ------------------------------------------------------------------ (c) handshakes

type HsOp = 'handshake' | 'cookie reply' | 'bad mac1';
const HS_OPS: HsOp[] = ['handshake', 'cookie reply', 'bad mac1'];

function handshakeCell(crypto: CryptoBackend, op: HsOp): number {
  const ka = crypto.x25519KeyPair();
  const kb = crypto.x25519KeyPair();
  const aAddr = addr(1);
  const bAddr = addr(2);
  const sa = new RingSink(1, 2048);
  const sb = new RingSink(1, 2048);
  const a = new TunnelEndpoint({ crypto, staticKeyPair: ka, sink: sa, clockOffsetMs: 1.75e12 });
  const b = new TunnelEndpoint({
    crypto,
    staticKeyPair: kb,
    sink: sb,
    clockOffsetMs: 1.75e12,
    rateLimit: false,
  });
  const ab = a.addPeer({ publicKey: kb.publicKey, endpoint: bAddr });
  const ba = b.addPeer({ publicKey: ka.publicKey });
  let now = T0;
  if (op === 'handshake') {
    b.setUnderLoad(false);
    const done0 = b.stats.handshakesCompleted;
    const rate = timed(SLICE, 16, () => {
      for (let i = 0; i < 16; i++) {
        now += 0.001;
        a.initiate(ab, now);
        b.receive(sa.slots[0]!, sa.lens[0]!, aAddr, 0, now);
        a.receive(sb.slots[0]!, sb.lens[0]!, bAddr, 0, now);
        b.receive(sa.slots[0]!, sa.lens[0]!, aAddr, 0, now);
      }
    });
    if (b.stats.handshakesCompleted === done0 || !ba.hasSession(now)) throw new Error('handshakes failed');
    return rate;
  }
  a.initiate(ab, now);
  const init = sa.slots[0]!.slice(0, INIT_LEN);
  if (op === 'bad mac1') init[INIT_MAC1] = init[INIT_MAC1]! ^ 1;
  b.setUnderLoad(true);
  const want = op === 'bad mac1' ? Rx.BAD_MAC1 : Rx.COOKIE_SENT;
  return timed(SLICE, 256, () => {
    for (let i = 0; i < 256; i++) {
      if (b.receive(init, INIT_LEN, aAddr, 0, now) !== want) throw new Error(`expected outcome ${want}`);
    }
  });
}

// ------------------------------------------------------------------ (b), (d) end to end

interface E2eSample {
  txDps: number;
  rxDps: number;
  txCpuUs: number;
  rxCpuUs: number;
  lostPct: number;
  flooded: number;
  floodRate: number;
  cookieReplies: number;
  foreignDh: number;
  badMac1: number;
  loadEntered: number;
  /** Datagrams the kernel dropped at a full receive buffer in the receiver's namespace. */
  socketDrops: number;
  /** Per datagram: the sender's send calls, the receiver's recvmmsg calls and wakeups. */
  txCallsPerDgram: number;
  rxCallsPerDgram: number;
  rxWakeupsPerDgram: number;
  /** All system calls of each process per datagram (perf), NaN without perf. */
  txSyscallsPerDgram: number;
  rxSyscallsPerDgram: number;
  /** Packets through the stack per datagram: sent messages (a GSO message is one), received messages. */
  txMsgsPerDgram: number;
  rxMsgsPerDgram: number;
}

const HAVE_PERF =
  spawnSync('perf', ['stat', '-x,', '-e', 'raw_syscalls:sys_enter', 'true'], { stdio: 'ignore' }).status ===
  0;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface SyscallCounter {
  /** Stops counting (if the process still runs) and returns the count, NaN if there is none. */
  stop(): Promise<number>;
}

/**
 * Counts every system call of process `pid` (all its threads) with `perf stat`, from when the
 * returned promise resolves (perf confirmed through its control FIFO that it counts) until stop() or
 * the process's exit. NaN counts without perf or when perf does not start within 10 s.
 */
async function syscallCounter(pid: number): Promise<SyscallCounter> {
  const none: SyscallCounter = { stop: async () => Number.NaN };
  if (!HAVE_PERF) return none;
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-perf-'));
  const ctl = join(dir, 'ctl');
  const ack = join(dir, 'ack');
  spawnSync('mkfifo', [ctl, ack]);
  const p = spawn(
    'perf',
    [
      'stat',
      '-x,',
      '-D',
      '-1',
      '--control',
      `fifo:${ctl},${ack}`,
      '-e',
      'raw_syscalls:sys_enter',
      '-p',
      String(pid),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  p.stderr.on('data', (d) => {
    err += d;
  });
  let running = true;
  const exited = new Promise<number>((resolve) =>
    p.on('exit', () => {
      running = false;
      rmSync(dir, { recursive: true, force: true });
      const m = /^(\d+),/m.exec(err);
      if (!m) log(`perf stat -p ${pid}: no count (${err.trim() || 'no output'})`);
      resolve(m ? Number(m[1]) : Number.NaN);
    }),
  );
  const ackFd = openSync(ack, fsc.O_RDONLY | fsc.O_NONBLOCK);
  let ctlFd = -1;
  let fdsOpen = true;
  const close = () => {
    if (!fdsOpen) return;
    fdsOpen = false;
    closeSync(ackFd);
    if (ctlFd >= 0) closeSync(ctlFd);
  };
  // Sends a control command and waits for perf's "ack".
  const command = async (cmd: string): Promise<boolean> => {
    const deadline = performance.now() + 10_000;
    while (ctlFd < 0 && running && performance.now() < deadline) {
      try {
        ctlFd = openSync(ctl, fsc.O_WRONLY | fsc.O_NONBLOCK);
      } catch {
        await sleep(5); // ENXIO until perf opens its end
      }
    }
    if (ctlFd < 0 || !running) return false;
    writeSync(ctlFd, `${cmd}\n`);
    const buf = Buffer.alloc(16);
    while (running && performance.now() < deadline) {
      let n = 0;
      try {
        n = readSync(ackFd, buf);
      } catch {
        // EAGAIN: nothing yet
      }
      if (n > 0 && buf.toString('latin1', 0, n).includes('ack')) return true;
      await sleep(1);
    }
    return false;
  };
  if (!(await command('enable'))) {
    close();
    p.kill('SIGKILL');
    await exited;
    return none;
  }
  return {
    stop: async () => {
      if (running && fdsOpen) {
        await command('disable');
        p.kill('SIGINT');
      }
      close();
      return exited;
    },
  };
}

/** UDP RcvbufErrors so far in a namespace (/proc/net/snmp). */
function udpRcvbufErrors(ns: Netns): number {
  const lines = ns
    .exec('cat', '/proc/net/snmp')
    .split('\n')
    .filter((l) => l.startsWith('Udp:'));
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf('RcvbufErrors')]);
}

interface Topology {
  nsA: Netns;
  nsB: Netns;
  /** Per veth MTU: A's and B's addresses. */
  nets: Map<number, { a: string; a2: string; b: string }>;
}

function topology(): Topology {
  const nsA = new Netns('bta');
  const nsB = new Netns('btb');
  const nets = new Map<number, { a: string; a2: string; b: string }>();
  let k = 0;
  for (const veth of [...new Set(SIZES.map((s) => s.veth))]) {
    const v = vethPair(nsA, nsB, veth);
    const n = { a: `10.93.${k}.1`, a2: `10.93.${k}.3`, b: `10.93.${k}.2` };
    nsA.ip('addr', 'add', `${n.a}/24`, 'dev', v.a);
    nsA.ip('addr', 'add', `${n.a2}/24`, 'dev', v.a);
    nsB.ip('addr', 'add', `${n.b}/24`, 'dev', v.b);
    nets.set(veth, n);
    k++;
  }
  return { nsA, nsB, nets };
}

/** Pre-built flood: genuine initiations to `responder` from random static keys, fresh sender indexes; every 10th with a bad mac1. */
function floodPool(crypto: CryptoBackend, responder: Uint8Array, n: number): Uint8Array[] {
  const templates: Uint8Array[] = [];
  const sink = new RingSink(1, 2048);
  for (let i = 0; i < 64; i++) {
    const ep = new TunnelEndpoint({
      crypto,
      staticKeyPair: crypto.x25519KeyPair(),
      sink,
      clockOffsetMs: 1.75e12,
    });
    ep.initiate(ep.addPeer({ publicKey: responder, endpoint: addr(9) }), T0);
    templates.push(sink.slots[0]!.slice(0, INIT_LEN));
    ep.destroy();
  }
  const maker = new CookieMaker(crypto, responder);
  const rnd = new Uint8Array(4);
  const pool: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const m = Uint8Array.from(templates[i % templates.length]!);
    crypto.randomBytes(rnd);
    m.set(rnd, INIT_SENDER);
    maker.stamp(m, INIT_MAC1, T0);
    if (i % 10 === 0) m[INIT_MAC1] = m[INIT_MAC1]! ^ 0xff;
    pool.push(m);
  }
  return pool;
}

async function e2eCell(
  crypto: CryptoBackend,
  topo: Topology,
  size: (typeof SIZES)[number],
  batch: number,
  withFlood: boolean,
  /** Offered datagrams per second, or 0 for an unthrottled sender. */
  rate = 0,
  /** UDP offloads on both ends; undefined: the links' defaults. */
  offload?: Offload,
): Promise<E2eSample> {
  const net = topo.nets.get(size.veth)!;
  const kb = crypto.x25519KeyPair();
  const ka = crypto.x25519KeyPair();
  const flood = withFlood ? floodPool(crypto, kb.publicKey, 4096) : null;
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'bench', 'tunnel-receiver.ts'),
      '--netns',
      topo.nsB.name,
      '--address',
      net.b,
      '--batch',
      String(batch),
      '--mtu',
      String(size.mtu),
      '--seconds',
      String(SECONDS),
      '--peer',
      Buffer.from(ka.publicKey).toString('hex'),
      '--crypto',
      crypto.name,
      ...(offload
        ? ['--gso', offload.gso ? '1' : '0', '--gro', offload.gro ? '1' : '0', '--linger', '500']
        : []),
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: repoRoot,
      env: { ...process.env, AOEGW_BENCH_SECRET: Buffer.from(kb.secretKey).toString('hex') },
    },
  );
  crypto.memzero(kb.secretKey);
  const killer = setTimeout(() => child.kill('SIGKILL'), (SECONDS + 40) * 1000);
  let out = '';
  const ready = new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /ready (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', () => reject(new Error(`receiver exited early: ${out}`)));
  });
  const done = new Promise<void>((r) => child.on('exit', () => r()));
  // The receiver's report (one JSON line): it lingers after it, so its system calls can be counted
  // up to here without racing its exit.
  const reported = new Promise<void>((r) => {
    child.stdout.on('data', () => {
      if (/\{.*\}\n/.test(out)) r();
    });
    child.on('exit', () => r());
  });
  const tunnels: { close(): void }[] = [];
  const drops0 = udpRcvbufErrors(topo.nsB);
  let rxSyscalls: SyscallCounter | undefined;
  try {
    const port = await ready;
    // The receiver's system calls from here (start-up done) until it exits after its window.
    if (offload) rxSyscalls = await syscallCounter(child.pid!);
    let completed = false;
    const tx = UdpTunnel.open({
      crypto,
      staticKeyPair: ka,
      address: net.a,
      port: 0,
      netns: topo.nsA.name,
      mtu: size.mtu,
      batch,
      ...(offload ?? {}),
      events: {
        handshakeComplete: () => {
          completed = true;
        },
      },
    });
    tunnels.push(tx);
    const floodLink = flood
      ? UdpLink.open({ family: 4, address: net.a2, port: 0, netns: topo.nsA.name })
      : null;
    if (floodLink) tunnels.push(floodLink);
    const peer: Peer = tx.addPeer({ publicKey: kb.publicKey, endpoint: { address: net.b, port } });
    tx.connect(peer);
    const hsEnd = performance.now() + 5000;
    while (!completed && performance.now() < hsEnd) await new Promise((r) => setTimeout(r, 2));
    if (!completed) throw new Error('end-to-end handshake did not complete');
    await new Promise((r) => setTimeout(r, 20)); // let the confirming keepalive land
    const rec = new Uint8Array(size.record).fill(0x6b);
    const floodTo = encodeUdpAddress({ address: net.b, port });
    const ep = tx.endpoint;
    let sent = 0;
    let flooded = 0;
    const txSyscalls = offload ? await syscallCounter(process.pid) : undefined;
    const link0 = tx.stats().link;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const end = t0 + (SECONDS + 0.5) * 1000;
    let now = t0;
    while (now < end) {
      if (floodLink && flood) {
        const due = Math.floor(((now - t0) / 1000) * FLOOD_RATE);
        while (flooded < due) {
          floodLink.txSlot().set(flood[flooded % flood.length]!);
          floodLink.txCommitTo(INIT_LEN, floodTo, 0);
          flooded++;
        }
        floodLink.flush();
      }
      const n = rate > 0 ? Math.min(64, Math.floor(((now - t0) / 1000) * rate) - sent) : 64;
      for (let k = 0; k < n; k++) ep.queueRecord(peer, RECORD_AOE, rec, 0, size.record, now);
      ep.flush(now);
      sent += Math.max(0, n);
      now = performance.now();
    }
    tx.flush();
    const el = (now - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const txSys = (await txSyscalls?.stop()) ?? Number.NaN;
    const link1 = tx.stats().link;
    const txDropped = link1.txDropped;
    const txFrames = link1.txFrames - link0.txFrames;
    const d = (k: 'txCalls' | 'gsoSends' | 'gsoSegments') => (link1[k] ?? 0) - (link0[k] ?? 0);
    await reported;
    const rxSys = (await rxSyscalls?.stop()) ?? Number.NaN;
    await done;
    const r = JSON.parse(out.slice(out.indexOf('{')));
    if (!r.records) throw new Error(`receiver got nothing: ${out}`);
    const rxDps = r.records / r.seconds;
    const txDps = (sent - txDropped) / el;
    return {
      txDps,
      rxDps,
      txCpuUs: ((cpu.user + cpu.system) / sent) * 1,
      rxCpuUs: (r.cpuS * 1e6) / r.records,
      lostPct: Math.max(0, (1 - rxDps / txDps) * 100),
      flooded,
      floodRate: flooded / el,
      cookieReplies: r.cookieReplies ?? 0,
      foreignDh: r.foreignDh ?? 0,
      badMac1: r.badMac1 ?? 0,
      loadEntered: r.loadEntered ?? 0,
      socketDrops: udpRcvbufErrors(topo.nsB) - drops0,
      txCallsPerDgram: d('txCalls') / txFrames,
      rxCallsPerDgram: r.rxCalls / r.rxFrames,
      rxWakeupsPerDgram: r.wakeups / r.rxFrames,
      txSyscallsPerDgram: txSys / txFrames,
      rxSyscallsPerDgram: rxSys / r.rxFrames,
      txMsgsPerDgram: (txFrames - d('gsoSegments') + d('gsoSends')) / txFrames,
      rxMsgsPerDgram: (r.rxFrames - r.groSegments + r.groMessages) / r.rxFrames,
    };
  } finally {
    await rxSyscalls?.stop();
    for (const t of tunnels) t.close();
    clearTimeout(killer);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const backends = [await loadCrypto('sodium-native'), await loadCrypto('libsodium-wrappers')];
  // openssl-native where this Node and addon have it (the in-memory cells of (a), (c) and (f)).
  const openssl = await loadCrypto('openssl-native').catch((e: Error) => {
    log(`openssl-native not measured: ${e.message}`);
    return undefined;
  });
  if (openssl) backends.push(openssl);
  if (runs('base')) await baseSections(backends);
  if (runs('data')) dataOnly(backends);
  if (runs('data-e2e')) await e2eByBackend(backends.filter((c) => c.name !== 'libsodium-wrappers'));
  if (runs('gso')) await gsoSection(backends[0]!);
  if (runs('aead')) aeadSection(backends[0]!, openssl);
}

/**
 * BENCH_TUNNEL_PHASES=data: (a) alone, every backend in interleaved rounds, printed with each
 * backend's ratio to sodium-native (not written: section `tunnel` holds (a) to (d) together).
 */
function dataOnly(backends: CryptoBackend[]): void {
  const data = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++) {
    // The backends' order alternates by round so neither always runs first.
    for (const c of round % 2 === 0 ? backends : [...backends].reverse()) {
      for (const s of SIZES) {
        for (const op of DATA_OPS) {
          const k = `${c.name}|${s.record}|${op}`;
          data.set(k, [...(data.get(k) ?? []), dataCell(c, s.record, s.mtu, op)]);
        }
      }
    }
    log(`data round ${round + 1}/${ROUNDS} done`);
  }
  const rows: (string | number)[][] = [];
  for (const s of SIZES) {
    for (const op of DATA_OPS) {
      const base = data.get(`${backends[0]!.name}|${s.record}|${op}`)!;
      for (const c of backends) {
        const xs = data.get(`${c.name}|${s.record}|${op}`)!;
        const m = median(xs);
        // Paired by round (the rounds interleave the backends), then the median.
        const r = median(xs.map((x, i) => x / base[i]!));
        rows.push([
          s.record,
          op,
          c.name,
          fmt(m),
          (1e6 / m).toFixed(2),
          xs.map((x) => fmt(x)).join(', '),
          `${(m / median(base)).toFixed(2)}× / ${r.toFixed(2)}×`,
        ]);
      }
    }
  }
  process.stdout.write(
    `${machineLine()}. ${ROUNDS} interleaved rounds, ${SLICE} s cells, medians.\n\n${table(
      [
        'record bytes',
        'op',
        'backend',
        'per s',
        'µs each',
        'per round',
        `rate vs ${backends[0]!.name}: of medians / median of per-round ratios`,
      ],
      rows,
    )}\n`,
  );
}

/**
 * BENCH_TUNNEL_PHASES=data-e2e: (b)'s batch-64 cell with both ends on each native backend, in
 * interleaved rounds (order alternating), printed with ratios to the first (writes nothing).
 */
async function e2eByBackend(backends: CryptoBackend[]): Promise<void> {
  const topo = topology();
  const xs = new Map<string, E2eSample[]>();
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of round % 2 === 0 ? backends : [...backends].reverse()) {
        for (const s of SIZES) {
          const x = await e2eCell(c, topo, s, 64, false);
          push2(xs, `${c.name}|${s.record}`, x);
          log(`round ${round + 1} ${c.name} ${s.record} B: rx ${fmt(x.rxDps)} dgram/s (tx ${fmt(x.txDps)})`);
        }
      }
    }
  } finally {
    topo.nsA.delete();
    topo.nsB.delete();
  }
  const rows: (string | number)[][] = [];
  for (const s of SIZES) {
    const base = xs.get(`${backends[0]!.name}|${s.record}`)!;
    for (const c of backends) {
      const v = xs.get(`${c.name}|${s.record}`)!;
      const rx = median(v.map((x) => x.rxDps));
      rows.push([
        s.record,
        c.name,
        fmt(median(v.map((x) => x.txDps))),
        fmt(rx),
        v.map((x) => fmt(x.rxDps)).join(', '),
        median(v.map((x) => x.txCpuUs)).toFixed(2),
        median(v.map((x) => x.rxCpuUs)).toFixed(2),
        `${median(v.map((x, i) => x.rxDps / base[i]!.rxDps)).toFixed(2)}×`,
        `${(median(v.map((x) => x.txCpuUs)) / median(base.map((x) => x.txCpuUs))).toFixed(2)} / ${(median(v.map((x) => x.rxCpuUs)) / median(base.map((x) => x.rxCpuUs))).toFixed(2)}`,
      ]);
    }
  }
  process.stdout.write(
    `${machineLine()}. ${ROUNDS} interleaved rounds, ${SECONDS} s windows, batch 64, medians.\n\n${table(
      [
        'record bytes',
        'backend (both ends)',
        'tx dgram/s',
        'rx dgram/s',
        'rx per round',
        'tx CPU µs/dgram',
        'rx CPU µs/dgram',
        'rx vs first (per-round median)',
        'CPU vs first (tx / rx)',
      ],
      rows,
    )}\n`,
  );
}

/** Builds bench/aead-floor.c; its path, or a reason it could not be built. */
function buildAeadFloor(): { bin: string } | { why: string } {
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-aead-'));
  const bin = join(dir, 'aead-floor');
  const include = join(dirname(process.execPath), '..', 'include', 'node');
  const r = spawnSync(
    'cc',
    [
      '-O2',
      `-I${include}`,
      '-o',
      bin,
      join(repoRoot, 'bench', 'aead-floor.c'),
      '-l:libsodium.so.23',
      '-l:libcrypto.so.3',
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { why: (r.stderr || r.error?.message || 'cc failed').trim().split('\n')[0]! };
  }
  return { bin };
}

/** µs per call of `fn`, the best of 5 runs of `iters` calls. */
function bestUs(iters: number, fn: () => void): number {
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    for (let i = 0; i < iters; i++) fn();
    best = Math.min(best, ((performance.now() - t) * 1000) / iters);
  }
  return best;
}

/** (f): section `tunnel-aead`. */
function aeadSection(sodium: CryptoBackend, openssl: CryptoBackend | undefined): void {
  const started = performance.now();
  const machine = machineLine();
  const floor = buildAeadFloor();
  // The plaintext the endpoint seals for one record of each size (record header, padding).
  const ptLen = new Map<number, number>();
  for (const s of SIZES) {
    const sink = new RingSink(1, s.mtu);
    const { a, ab } = connectedPair(sodium, s.mtu, sink);
    a.queueRecord(ab, RECORD_AOE, new Uint8Array(s.record), 0, s.record, T0);
    a.flush(T0);
    ptLen.set(s.record, sink.lens[0]! - DATA_OVERHEAD);
  }
  type Step =
    | 'c-sodium'
    | 'c-evp'
    | 'napi'
    | 'backend'
    | 'endpoint'
    | 'napi-evp'
    | 'backend-evp'
    | 'endpoint-evp';
  const aead = nativeAddon();
  const xs = new Map<string, number[]>();
  const push = (k: string, v: number) => xs.set(k, [...(xs.get(k) ?? []), v]);
  for (let round = 0; round < ROUNDS; round++) {
    if ('bin' in floor) {
      const out = spawnSync(floor.bin, [...ptLen.values()].map(String), { encoding: 'utf8' }).stdout;
      for (const line of out.trim().split('\n')) {
        const [len, ss, so, es, eo] = line.split(' ').map(Number);
        const rec = [...ptLen].find(([, p]) => p === len)![0];
        push(`${rec}|c-sodium|seal`, ss!);
        push(`${rec}|c-sodium|open`, so!);
        push(`${rec}|c-evp|seal`, es!);
        push(`${rec}|c-evp|open`, eo!);
      }
    }
    for (const s of SIZES) {
      const len = ptLen.get(s.record)!;
      const iters = len > 2000 ? 20_000 : 100_000;
      const key = new Uint8Array(32).fill(7);
      const nonce = new Uint8Array(12);
      const pt = new Uint8Array(len).fill(0x5a);
      const ct = new Uint8Array(len + 16);
      push(
        `${s.record}|napi|seal`,
        bestUs(iters, () => {
          nonce[0]!++;
          sodiumNative.crypto_aead_chacha20poly1305_ietf_encrypt(ct, pt, null, null, nonce, key);
        }),
      );
      push(
        `${s.record}|napi|open`,
        bestUs(iters, () => {
          sodiumNative.crypto_aead_chacha20poly1305_ietf_decrypt(pt, null, ct, null, nonce, key);
        }),
      );
      const out = new Uint8Array(len + 64);
      let counter = 0n;
      push(
        `${s.record}|backend|seal`,
        bestUs(iters, () => {
          sodium.seal(out, 16, key, counter++, null, pt, 0, len);
        }),
      );
      const n = sodium.seal(out, 16, key, 5n, null, pt, 0, len);
      push(
        `${s.record}|backend|open`,
        bestUs(iters, () => {
          if (sodium.open(pt, 0, key, 5n, null, out, 16, n) !== len) throw new Error('open failed');
        }),
      );
      // Best of 3 cells, like the rows above (a cell's time is wall time, which a busy machine inflates).
      const bestCell = (op: DataOp) =>
        1e6 / Math.max(...[0, 1, 2].map(() => dataCell(sodium, s.record, s.mtu, op)));
      push(`${s.record}|endpoint|seal`, bestCell('endpoint seal'));
      push(`${s.record}|endpoint|open`, bestCell('endpoint open'));
      if (!openssl || !aead.aeadSeal || !aead.aeadOpen) continue;
      const { aeadSeal, aeadOpen } = aead;
      push(
        `${s.record}|napi-evp|seal`,
        bestUs(iters, () => {
          aeadSeal(ct, 0, key, counter++, null, pt, 0, len);
        }),
      );
      push(
        `${s.record}|napi-evp|open`,
        bestUs(iters, () => {
          aeadOpen(pt, 0, key, 5n, null, out, 16, n);
        }),
      );
      const m = openssl.seal(out, 16, key, 5n, null, pt, 0, len);
      push(
        `${s.record}|backend-evp|seal`,
        bestUs(iters, () => {
          openssl.seal(ct, 0, key, counter++, null, pt, 0, len);
        }),
      );
      push(
        `${s.record}|backend-evp|open`,
        bestUs(iters, () => {
          if (openssl.open(pt, 0, key, 5n, null, out, 16, m) !== len) throw new Error('open failed');
        }),
      );
      const bestEvpCell = (op: DataOp) =>
        1e6 / Math.max(...[0, 1, 2].map(() => dataCell(openssl, s.record, s.mtu, op)));
      push(`${s.record}|endpoint-evp|seal`, bestEvpCell('endpoint seal'));
      push(`${s.record}|endpoint-evp|open`, bestEvpCell('endpoint open'));
    }
    log(`aead round ${round + 1}/${ROUNDS} done`);
  }
  if ('bin' in floor) rmSync(dirname(floor.bin), { recursive: true, force: true });
  // Two chains, each from its C floor up: libsodium (sodium-native) and OpenSSL (openssl-native).
  const steps: { step: Step; what: string; floor?: true; vs?: Step }[] = [
    { step: 'c-sodium', what: 'C: libsodium 1.0.18 (the system library; no Node)', floor: true },
    { step: 'napi', what: 'sodium-native call from JS (N-API + its bundled libsodium)' },
    {
      step: 'backend',
      what: 'CryptoBackend sodium-native seal/open (argument checks, views, nonce from the counter)',
    },
    {
      step: 'endpoint',
      what: 'TunnelEndpoint data path on sodium-native (queueRecord + flush / receive), as (a)',
    },
    {
      step: 'c-evp',
      what: 'C: OpenSSL 3.0 EVP, key set once, nonce per message (no Node)',
      floor: true,
      vs: 'c-sodium',
    },
    {
      step: 'napi-evp',
      what: "our addon's aeadSeal/aeadOpen from JS (N-API + EVP, key and nonce per call)",
      vs: 'napi',
    },
    {
      step: 'backend-evp',
      what: 'CryptoBackend openssl-native seal/open (the addon call in a try)',
      vs: 'backend',
    },
    { step: 'endpoint-evp', what: 'TunnelEndpoint data path on openssl-native, as (a)', vs: 'endpoint' },
  ];
  const rows: (string | number)[][] = [];
  for (const s of SIZES) {
    const med = (step: Step, op: string) => {
      const v = xs.get(`${s.record}|${step}|${op}`);
      return v ? median(v) : undefined;
    };
    let prev: { seal: number; open: number } | undefined;
    for (const { step, what, floor, vs } of steps) {
      const seal = med(step, 'seal');
      const open = med(step, 'open');
      if (seal === undefined || open === undefined) continue;
      if (floor) prev = undefined;
      const signed = (d: number) => `${d < 0 ? '−' : '+'}${Math.abs(d).toFixed(2)}`;
      const delta = prev ? `${signed(seal - prev.seal)} / ${signed(open - prev.open)}` : '';
      const bs = vs && med(vs, 'seal');
      const bo = vs && med(vs, 'open');
      const ratio = bs && bo ? `${(seal / bs).toFixed(2)} / ${(open / bo).toFixed(2)}` : '';
      rows.push([s.record, ptLen.get(s.record)!, what, seal.toFixed(2), open.toFixed(2), delta, ratio]);
      prev = { seal, open };
    }
  }
  const minutes = ((performance.now() - started) / 60000).toFixed(1);
  const body = [
    "### (f) Where a datagram's AEAD time goes (`BENCH_TUNNEL_PHASES=aead npm run bench:tunnel`)",
    '',
    `Machine: ${machine}. ${ROUNDS} rounds, medians of the best of 5 runs (endpoint rows: of 3 cells of ${SLICE} s) per`,
    `cell; the phase took ${minutes} min. Wall-clock times: what a busy machine adds shows here as noise.`,
    '',
    'One ChaCha20-Poly1305 seal and open of the plaintext the endpoint seals for one record (record header,',
    'padding to 16), in µs, from the floor up: C without Node (bench/aead-floor.c, built by the benchmark',
    'with `cc`; libsodium 1.0.18 is what the system has, sodium-native bundles its own build; OpenSSL is',
    "the system's libcrypto 3.0, the version Node 20 bundles and exports to addons), the same call through",
    "sodium-native or our addon's OpenSSL EVP call (native/aead.c), through this project's CryptoBackend",
    '(sodium-native or openssl-native), and the endpoint\'s whole data path per datagram. "adds" is what each',
    'layer adds to the one above it in its chain; the last column is the OpenSSL row over the libsodium row',
    'of the same layer (below 1: OpenSSL faster).',
    ...('why' in floor
      ? ['', `C rows missing: bench/aead-floor.c could not be built here (${floor.why}).`]
      : []),
    '',
    table(
      [
        'record bytes',
        'plaintext bytes',
        'layer',
        'seal µs',
        'open µs',
        'adds (seal / open)',
        'OpenSSL / libsodium (seal / open)',
      ],
      rows,
    ),
  ].join('\n');
  writeSection('tunnel-aead', body);
  process.stdout.write(`${body}\n`);
}

/** (a) to (d): section `tunnel`. */
async function baseSections(backends: CryptoBackend[]): Promise<void> {
  const started = performance.now();
  const machine = machineLine();
  const sodium = backends[0]!;

  // (a) and (c), interleaved rounds.
  const data = new Map<string, number[]>();
  const hs = new Map<string, number[]>();
  const push = (m: Map<string, number[]>, k: string, v: number) => m.set(k, [...(m.get(k) ?? []), v]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of backends) {
      for (const s of SIZES)
        for (const op of DATA_OPS)
          push(data, `${c.name}|${s.record}|${op}`, dataCell(c, s.record, s.mtu, op));
      for (const op of HS_OPS) push(hs, `${c.name}|${op}`, handshakeCell(c, op));
    }
    log(`in-memory round ${round + 1}/${ROUNDS} done`);
  }

  // (b) and (d), interleaved rounds, in namespaces.
  const topo = topology();
  const e2e = new Map<string, E2eSample[]>();
  try {
    for (let round = 0; round < Math.max(ROUNDS, FLOOD_ROUNDS); round++) {
      for (const s of round < ROUNDS ? SIZES : []) {
        for (const batch of [1, 64]) {
          const x = await e2eCell(sodium, topo, s, batch, false);
          push2(e2e, `${s.record}|${batch}`, x);
          log(
            `round ${round + 1} e2e ${s.record} B batch ${batch}: rx ${fmt(x.rxDps)} dgram/s (tx ${fmt(x.txDps)})`,
          );
        }
      }
      // Flood off/on, the order alternating by round; unthrottled and at a fixed offered rate.
      for (const rate of round < FLOOD_ROUNDS ? [0, PACED_RATE] : []) {
        for (const flooded of round % 2 === 0 ? [false, true] : [true, false]) {
          const x = await e2eCell(sodium, topo, SIZES[0], 64, flooded, rate);
          push2(e2e, `flood|${rate}|${flooded}`, x);
          log(
            `round ${round + 1} offered ${rate || 'max'} flood ${flooded ? 'on' : 'off'}: rx ${fmt(x.rxDps)} dgram/s, flood ${fmt(x.floodRate)}/s, cookies ${x.cookieReplies}, flood DH ${x.foreignDh}`,
          );
        }
      }
    }
  } finally {
    topo.nsA.delete();
    topo.nsB.delete();
  }

  // ---------------------------------------------------------------- tables
  const med = (k: string) => median(data.get(k)!);
  const dataRows: (string | number)[][] = [];
  for (const c of backends) {
    for (const s of SIZES) {
      const k = (op: DataOp) => `${c.name}|${s.record}|${op}`;
      for (const path of ['direct', 'endpoint'] as const) {
        const seal = med(k(`${path} seal`));
        const open = med(k(`${path} open`));
        dataRows.push([
          c.name,
          s.record,
          path === 'direct' ? 'backend seal/open' : 'TunnelEndpoint queueRecord+flush / receive',
          fmt(seal),
          ((seal * s.record) / 1e6).toFixed(0),
          fmt(open),
          ((open * s.record) / 1e6).toFixed(0),
          path === 'direct'
            ? ''
            : `${((seal / med(k('direct seal'))) * 100).toFixed(0)} % / ${((open / med(k('direct open'))) * 100).toFixed(0)} %`,
        ]);
      }
    }
  }
  const hsRows = backends.map((c) => [
    c.name,
    fmt(median(hs.get(`${c.name}|handshake`)!)),
    fmt(median(hs.get(`${c.name}|cookie reply`)!)),
    fmt(median(hs.get(`${c.name}|bad mac1`)!)),
  ]);
  const e2eRows: (string | number)[][] = [];
  for (const s of SIZES) {
    const base = median(e2e.get(`${s.record}|1`)!.map((x) => x.rxDps));
    for (const batch of [1, 64]) {
      const xs = e2e.get(`${s.record}|${batch}`)!;
      const rx = median(xs.map((x) => x.rxDps));
      e2eRows.push([
        s.record,
        `${s.mtu} / ${s.veth}`,
        batch,
        fmt(median(xs.map((x) => x.txDps))),
        fmt(rx),
        ((rx * s.record) / 1e6).toFixed(0),
        `${(rx / base).toFixed(2)}×`,
        median(xs.map((x) => x.txCpuUs)).toFixed(2),
        median(xs.map((x) => x.rxCpuUs)).toFixed(2),
        median(xs.map((x) => x.lostPct)).toFixed(1),
        fmt(median(xs.map((x) => x.socketDrops))),
      ]);
    }
  }
  const floodRows: (string | number)[][] = [];
  const ratios = new Map<number, { on: number; off: number }>();
  const roundRatios = new Map<number, string>();
  for (const rate of [0, PACED_RATE]) {
    const off = median(e2e.get(`flood|${rate}|false`)!.map((x) => x.rxDps));
    const on = e2e.get(`flood|${rate}|true`)!;
    const onRx = median(on.map((x) => x.rxDps));
    ratios.set(rate, { on: onRx, off });
    const offered = rate ? `${fmt(rate)}/s` : 'unthrottled';
    const offTx = median(e2e.get(`flood|${rate}|false`)!.map((x) => x.txDps));
    const offs = e2e.get(`flood|${rate}|false`)!;
    const perRound = on.map((x, i) => (x.rxDps / offs[i]!.rxDps).toFixed(2)).join(', ');
    roundRatios.set(rate, perRound);
    floodRows.push([
      offered,
      'none',
      fmt(offTx),
      fmt(off),
      '',
      '',
      '',
      '',
      '',
      '',
      fmt(median(offs.map((x) => x.socketDrops))),
    ]);
    floodRows.push([
      offered,
      `${fmt(FLOOD_RATE)}/s`,
      fmt(median(on.map((x) => x.txDps))),
      fmt(onRx),
      `${((onRx / off) * 100).toFixed(1)} %`,
      fmt(median(on.map((x) => x.floodRate))),
      fmt(median(on.map((x) => x.cookieReplies))),
      fmt(median(on.map((x) => x.badMac1))),
      fmt(median(on.map((x) => x.foreignDh))),
      median(on.map((x) => x.loadEntered)),
      fmt(median(on.map((x) => x.socketDrops))),
    ]);
  }
  const sat = ratios.get(0)!;
  const ratio = sat.on / sat.off;
  const paced = ratios.get(PACED_RATE)!;

  const seal1100 = med('sodium-native|1100|direct seal');
  const epSeal1100 = med('sodium-native|1100|endpoint seal');
  const e2eBest = median(e2e.get('1100|64')!.map((x) => x.rxDps));
  const yes = (b: boolean) => (b ? '**met**' : '**not met**');
  const goals = table(
    ['goal', 'measured (median)', 'verdict'],
    [
      [
        '≥ 300k seals/s/core, 1100 B, sodium-native',
        `${fmt(seal1100)}/s backend seal; ${fmt(epSeal1100)}/s through TunnelEndpoint`,
        `${yes(seal1100 >= 300_000)} (backend), ${yes(epSeal1100 >= 300_000)} (endpoint)`,
      ],
      [
        'end to end ≥ 150k datagrams/s',
        `${fmt(e2eBest)}/s (1100 B records, batch 64)`,
        yes(e2eBest >= 150_000),
      ],
      [
        'under a 20k/s handshake flood ≥ 90 % of unflooded throughput',
        `${(ratio * 100).toFixed(1)} % unthrottled (${fmt(sat.on)} vs ${fmt(sat.off)} datagrams/s; per round ${roundRatios.get(0)}); at ${fmt(PACED_RATE)}/s offered ${((paced.on / paced.off) * 100).toFixed(1)} %`,
        yes(ratio >= 0.9),
      ],
    ],
  );
  const minutes = ((performance.now() - started) / 60000).toFixed(1);
  const body = [
    '## Tunnel (`npm run bench:tunnel`)',
    '',
    `Machine: ${machine}. ${ROUNDS} interleaved rounds (${FLOOD_ROUNDS} for (d)), medians; in-memory cells ${SLICE} s of`,
    `measured time each, end-to-end cells a ${SECONDS} s receive window; the whole run took ${minutes} min. MB/s = 10^6`,
    'bytes of record payload per second. The machine is shared and noisy: single cells vary by ±15 % (see the',
    'per-round ratios in (d)).',
    '',
    '### Goals',
    '',
    goals,
    '',
    '### (a) Seal and open, one core, in memory',
    '',
    'Backend rows time `crypto.seal`/`crypto.open` alone (ChaCha20-Poly1305, one record-sized plaintext).',
    'Endpoint rows time the protocol data path: `queueRecord` + `flush` (record framing, padding to 16, header,',
    'counter, seal into the sink buffer) and `receive` (classify, index lookup, replay window, open, record',
    'parsing, delivery callback) — one record per datagram at these sizes (MTU 1452 and 8952). The last column is',
    'endpoint rate as a share of the backend rate: what is left after protocol overhead.',
    '',
    table(
      [
        'backend',
        'record bytes',
        'path',
        'seals/s',
        'seal MB/s',
        'opens/s',
        'open MB/s',
        'endpoint vs backend (seal / open)',
      ],
      dataRows,
    ),
    '',
    '### (b) End to end between two namespaces over a veth',
    '',
    'Sender: a TunnelEndpoint on a UdpLink in this process, unthrottled (`queueRecord` ×64 + `flush`) for the',
    'window; receiver: a UdpTunnel (responder) in a child process in the other namespace, counting delivered',
    'records (= authenticated datagrams here) from the first one. Both links use the same batch size and their',
    'default UDP offloads (GSO and GRO on: with batch 64 a batch leaves as GSO messages; see (e)). "lost" is',
    'what the receiver could not keep up with; rx socket drops are the UDP receive-buffer drops the kernel counted in',
    "the receiver's namespace over the whole cell (sender runs 0.5 s longer than the receiver's window).",
    '',
    table(
      [
        'record bytes',
        'tunnel MTU / veth MTU',
        'batch',
        'tx datagrams/s',
        'rx datagrams/s',
        'rx MB/s',
        'rx vs batch 1',
        'tx CPU µs/dgram',
        'rx CPU µs/dgram',
        'lost %',
        'rx socket drops',
      ],
      e2eRows,
    ),
    '',
    '### (c) Handshakes, one core, in memory',
    '',
    'Full handshake = initiation written, read and answered, response read (new session), confirming keepalive',
    'read (responder promotes the session): 4 X25519 on each side plus key generation. The other two columns are',
    "the responder's per-message cost under a flood: a valid mac1 under load answered by a cookie reply (no DH),",
    'and a bad mac1 dropped.',
    '',
    table(['backend', 'full handshakes/s', 'cookie replies/s (under load)', 'bad-mac1 drops/s'], hsRows),
    '',
    '### (d) Established session under a handshake flood',
    '',
    "As (b), 1100-byte records, batch 64, the sender unthrottled (the receiver's capacity: the goal's measure) or",
    `at ${fmt(PACED_RATE)} datagrams/s offered. In the flood cells this process also sends ${fmt(FLOOD_RATE)} initiations/s`,
    'from a second address (genuine Noise messages from 64 random static keys, fresh sender indexes; every',
    "10th with a bad mac1) to the receiver's port, paced inside the sender loop. Per cell, medians, counted by the",
    'receiver until the end of its window: cookie replies it sent, bad-mac1 drops, flood initiations that reached a',
    "Diffie-Hellman (before cookie mode came on), times the driver's load signal turned cookie mode on; rx socket",
    "drops are the kernel's UDP receive-buffer drops in the receiver's namespace during the cell.",
    '',
    table(
      [
        'offered',
        'flood',
        'tx datagrams/s',
        'rx datagrams/s',
        'vs unflooded',
        'flood sent/s',
        'cookie replies',
        'bad mac1',
        'flood DH',
        'cookie mode entered',
        'rx socket drops',
      ],
      floodRows,
    ),
    '',
    `On/off ratio in each round (same round, adjacent cells): unthrottled ${roundRatios.get(0)}; at ${fmt(PACED_RATE)}/s offered ${roundRatios.get(PACED_RATE)}.`,
    'The ratio in the goal is of the medians. Where the flood costs the receiver: each valid-mac1 initiation under',
    'load is a mac1 check, a mac2 check and a cookie reply (two keyed BLAKE2b for the cookie, XChaCha20-Poly1305,',
    'random nonce) — the in-memory rate in (c) — plus the kernel receiving it and sending the 64-byte reply.',
  ].join('\n');
  writeSection('tunnel', body);
  process.stdout.write(`${body}\n`);
}

/** Offered datagrams per second of the link-only cells of (e), per datagram size. */
const LINK_RATES = new Map<number, number>([
  [1452, 150_000],
  [8952, 60_000],
]);

interface LinkSample {
  rxDps: number;
  lostPct: number;
  txCpuUs: number;
  rxCpuUs: number;
  txMsgsPerDgram: number;
  rxMsgsPerDgram: number;
  rxCallsPerDgram: number;
  rxWakeupsPerDgram: number;
  txSyscallsPerDgram: number;
  rxSyscallsPerDgram: number;
}

/**
 * Bare UdpLinks (no tunnel, no crypto): this process sends datagrams of `size` bytes at `rate` per
 * second in 1 ms ticks (full batches of 64 and a remainder per tick, idle in between) to a
 * bench/udp-receiver.ts in the other namespace. What the links and the kernel cost per datagram.
 */
async function linkCell(
  topo: Topology,
  veth: number,
  size: number,
  rate: number,
  offload: Offload,
): Promise<LinkSample> {
  const net = topo.nets.get(veth)!;
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'bench', 'udp-receiver.ts'),
      '--netns',
      topo.nsB.name,
      '--address',
      net.b,
      '--gro',
      offload.gro ? '1' : '0',
      '--seconds',
      String(SECONDS),
      '--linger',
      '500',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], cwd: repoRoot },
  );
  const killer = setTimeout(() => child.kill('SIGKILL'), (SECONDS + 40) * 1000);
  let out = '';
  const ready = new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /ready (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', () => reject(new Error(`receiver exited early: ${out}`)));
  });
  const done = new Promise<void>((r) => child.on('exit', () => r()));
  // The receiver's report (one JSON line): it lingers after it, so its system calls can be counted
  // up to here without racing its exit.
  const reported = new Promise<void>((r) => {
    child.stdout.on('data', () => {
      if (/\{.*\}\n/.test(out)) r();
    });
    child.on('exit', () => r());
  });
  let tx: UdpLink | undefined;
  let rxSyscalls: SyscallCounter | undefined;
  try {
    const port = await ready;
    rxSyscalls = await syscallCounter(child.pid!);
    tx = UdpLink.open({ family: 4, address: net.a, port: 0, netns: topo.nsA.name, gso: offload.gso });
    const to = encodeUdpAddress({ address: net.b, port });
    const txSyscalls = await syscallCounter(process.pid);
    const link0 = tx.stats();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let sent = 0;
    while (performance.now() - t0 < (SECONDS + 0.5) * 1000) {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate);
      for (; sent < due; sent++) {
        tx.txSlot().fill(0x5a, 0, size);
        tx.txCommitTo(size, to);
      }
      tx.flush();
      await sleep(1);
    }
    const cpu = process.cpuUsage(cpu0);
    const txSys = await txSyscalls.stop();
    const link1 = tx.stats();
    const txFrames = link1.txFrames - link0.txFrames;
    const d = (k: 'gsoSends' | 'gsoSegments') => (link1[k] ?? 0) - (link0[k] ?? 0);
    await reported;
    const rxSys = await rxSyscalls.stop();
    await done;
    const r = JSON.parse(out.slice(out.indexOf('{')));
    if (!r.datagrams) throw new Error(`link receiver got nothing: ${out}`);
    const rxDps = r.datagrams / r.seconds;
    return {
      rxDps,
      lostPct: Math.max(0, (1 - rxDps / rate) * 100),
      txCpuUs: (cpu.user + cpu.system) / txFrames,
      rxCpuUs: (r.cpuS * 1e6) / r.datagrams,
      txMsgsPerDgram: (txFrames - d('gsoSegments') + d('gsoSends')) / txFrames,
      rxMsgsPerDgram: (r.rxFrames - r.groSegments + r.groMessages) / r.rxFrames,
      rxCallsPerDgram: r.rxCalls / r.rxFrames,
      rxWakeupsPerDgram: r.wakeups / r.rxFrames,
      txSyscallsPerDgram: txSys / txFrames,
      rxSyscallsPerDgram: rxSys / r.rxTotal,
    };
  } finally {
    await rxSyscalls?.stop();
    tx?.close();
    clearTimeout(killer);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

/** (e): section `tunnel-gso`, UDP GSO and GRO on and off, end to end as in (b) with batch 64. */
async function gsoSection(sodium: CryptoBackend): Promise<void> {
  const started = performance.now();
  const machine = machineLine();
  const topo = topology();
  const cells = new Map<string, E2eSample[]>();
  const linkCells = new Map<string, LinkSample[]>();
  try {
    for (let round = 0; round < GSO_ROUNDS; round++) {
      for (const s of SIZES) {
        const rate = LINK_RATES.get(s.mtu)!;
        for (let j = 0; j < OFFLOADS.length; j++) {
          const { name, o } = OFFLOADS[(j + round) % OFFLOADS.length]!;
          const x = await linkCell(topo, s.veth, s.mtu, rate, o);
          linkCells.set(`${s.mtu}|${name}`, [...(linkCells.get(`${s.mtu}|${name}`) ?? []), x]);
          log(
            `round ${round + 1}/${GSO_ROUNDS} link ${s.mtu} B ${name}: rx ${fmt(x.rxDps)} dgram/s, tx ${x.txCpuUs.toFixed(2)} rx ${x.rxCpuUs.toFixed(2)} µs/dgram, syscalls/dgram tx ${x.txSyscallsPerDgram.toFixed(3)} rx ${x.rxSyscallsPerDgram.toFixed(3)}`,
          );
        }
        // Rotate the order by round, so no setting always runs first (or right after another one).
        for (let j = 0; j < OFFLOADS.length; j++) {
          const { name, o } = OFFLOADS[(j + round) % OFFLOADS.length]!;
          const x = await e2eCell(sodium, topo, s, 64, false, 0, o);
          push2(cells, `${s.record}|${name}`, x);
          log(
            `round ${round + 1}/${GSO_ROUNDS} ${s.record} B ${name}: rx ${fmt(x.rxDps)} dgram/s, tx ${x.txCpuUs.toFixed(2)} rx ${x.rxCpuUs.toFixed(2)} µs/dgram, syscalls/dgram tx ${x.txSyscallsPerDgram.toFixed(3)} rx ${x.rxSyscallsPerDgram.toFixed(3)}`,
          );
        }
      }
    }
  } finally {
    topo.nsA.delete();
    topo.nsB.delete();
  }
  const m = (k: string, f: (x: E2eSample) => number) => median(cells.get(k)!.map(f));
  const ml = (k: string, f: (x: LinkSample) => number) => median(linkCells.get(k)!.map(f));
  const per = (x: number) => (Number.isNaN(x) ? 'n/a' : x.toFixed(3));
  const vs = (x: number, base: number, digits = 2) => `${x.toFixed(digits)} (${(x / base).toFixed(2)}×)`;
  const linkRows: (string | number)[][] = [];
  for (const s of SIZES) {
    const off = `${s.mtu}|off`;
    for (const { name } of OFFLOADS) {
      const k = `${s.mtu}|${name}`;
      linkRows.push([
        s.mtu,
        fmt(LINK_RATES.get(s.mtu)!),
        name,
        fmt(ml(k, (x) => x.rxDps)),
        ml(k, (x) => x.lostPct).toFixed(1),
        vs(
          ml(k, (x) => x.txCpuUs),
          ml(off, (x) => x.txCpuUs),
        ),
        vs(
          ml(k, (x) => x.rxCpuUs),
          ml(off, (x) => x.rxCpuUs),
        ),
        per(ml(k, (x) => x.txMsgsPerDgram)),
        per(ml(k, (x) => x.txSyscallsPerDgram)),
        per(ml(k, (x) => x.rxMsgsPerDgram)),
        per(ml(k, (x) => x.rxCallsPerDgram)),
        per(ml(k, (x) => x.rxWakeupsPerDgram)),
        per(ml(k, (x) => x.rxSyscallsPerDgram)),
      ]);
    }
  }
  const rows: (string | number)[][] = [];
  const roundRatios: string[] = [];
  const cpuRatios: string[] = [];
  for (const s of SIZES) {
    const off = `${s.record}|off`;
    for (const { name } of OFFLOADS) {
      const k = `${s.record}|${name}`;
      rows.push([
        s.record,
        name,
        fmt(m(k, (x) => x.txDps)),
        fmt(m(k, (x) => x.rxDps)),
        `${(m(k, (x) => x.rxDps) / m(off, (x) => x.rxDps)).toFixed(2)}×`,
        m(k, (x) => x.lostPct).toFixed(1),
        vs(
          m(k, (x) => x.txCpuUs),
          m(off, (x) => x.txCpuUs),
        ),
        vs(
          m(k, (x) => x.rxCpuUs),
          m(off, (x) => x.rxCpuUs),
        ),
        per(m(k, (x) => x.txMsgsPerDgram)),
        per(m(k, (x) => x.txCallsPerDgram)),
        per(m(k, (x) => x.txSyscallsPerDgram)),
        per(m(k, (x) => x.rxMsgsPerDgram)),
        per(m(k, (x) => x.rxCallsPerDgram)),
        per(m(k, (x) => x.rxWakeupsPerDgram)),
        per(m(k, (x) => x.rxSyscallsPerDgram)),
        fmt(m(k, (x) => x.socketDrops)),
      ]);
    }
    const on = cells.get(`${s.record}|GSO+GRO`)!;
    const offs = cells.get(off)!;
    roundRatios.push(`${s.record} B: ${on.map((x, i) => (x.rxDps / offs[i]!.rxDps).toFixed(2)).join(', ')}`);
    cpuRatios.push(
      `${s.record} B: tx ${on.map((x, i) => (x.txCpuUs / offs[i]!.txCpuUs).toFixed(2)).join(', ')}; rx ${on.map((x, i) => (x.rxCpuUs / offs[i]!.rxCpuUs).toFixed(2)).join(', ')}`,
    );
  }
  const minutes = ((performance.now() - started) / 60000).toFixed(1);
  const body = [
    '### (e) UDP GSO/GRO (`BENCH_TUNNEL_PHASES=gso npm run bench:tunnel`)',
    '',
    `Machine: ${machine}. ${GSO_ROUNDS} rounds; in each, every cell of both tables once, the four settings of a size in`,
    `an order rotated by round; medians. The phase took ${minutes} min.`,
    '',
    'Settings: `gso` and `gro` of both UdpLinks as in the offloads column (GSO only matters to the sender,',
    'GRO to the receiver). A batch of datagrams of one size to one peer leaves as GSO messages of up to 64',
    'segments and 65,507 bytes (link cells: 45 + 19 datagrams of 1,452 bytes, 9 × 7 + 1 of 8,952; tunnel',
    'cells: 57 + 7 of 1,136, 9 × 7 + 1 of 8,848). Per datagram:',
    '"msgs" are the packets that went through the stack (sent: plain datagrams + GSO messages; received:',
    'messages recvmmsg returned, a coalesced one counting once); send and recvmmsg calls and receive',
    "wakeups (epoll, or a GRO remainder) are the links' own counts; syscalls are every system call of the",
    'process (all threads) counted by `perf stat -e raw_syscalls:sys_enter -p PID` (sender: over its send',
    'loop; receiver: from the end of its start-up to its report, over what its link received; n/a without',
    'perf). CPU µs per datagram is user + system time of the process (as in (b)); the ratio is against "off" of the same',
    "size. On veth the receiving socket's share of the kernel work (IP and UDP receive, queueing) runs in",
    "the sender's context, so GRO shows on the sender's CPU too.",
    '',
    'Link only: bare UdpLinks, no tunnel and no crypto, the sender paced (1 ms ticks: full batches of 64',
    'and a remainder, idle in between), so neither side is saturated and CPU per datagram is comparable',
    'across settings; the receiver counts datagrams for the 2 s window. What the links and the kernel cost.',
    '',
    table(
      [
        'datagram bytes',
        'offered/s',
        'offloads',
        'rx datagrams/s',
        'lost %',
        'tx CPU µs/dgram',
        'rx CPU µs/dgram',
        'tx msgs/dgram',
        'tx syscalls/dgram',
        'rx msgs/dgram',
        'rx recvmmsg/dgram',
        'rx wakeups/dgram',
        'rx syscalls/dgram',
      ],
      linkRows,
    ),
    '',
    'Tunnel end to end: as (b) with batch 64, sender unthrottled (64 records of one size per `flush`, so',
    "every batch is one run to one peer). Throughput here depends on what else runs on the machine's two",
    'cores (see the per-round ratios below); CPU per datagram much less.',
    '',
    table(
      [
        'record bytes',
        'offloads',
        'tx datagrams/s',
        'rx datagrams/s',
        'rx vs off',
        'lost %',
        'tx CPU µs/dgram',
        'rx CPU µs/dgram',
        'tx msgs/dgram',
        'tx sendmmsg/dgram',
        'tx syscalls/dgram',
        'rx msgs/dgram',
        'rx recvmmsg/dgram',
        'rx wakeups/dgram',
        'rx syscalls/dgram',
        'rx socket drops',
      ],
      rows,
    ),
    '',
    `GSO+GRO vs off in each round (same round, same size), rx datagrams/s: ${roundRatios.join('; ')}. CPU µs per`,
    `datagram: ${cpuRatios.join('; ')}.`,
  ].join('\n');
  writeSection('tunnel-gso', body);
  process.stdout.write(`${body}\n`);
}

function push2(m: Map<string, E2eSample[]>, k: string, v: E2eSample): void {
  m.set(k, [...(m.get(k) ?? []), v]);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
