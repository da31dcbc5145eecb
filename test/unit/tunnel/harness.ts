/**
 * In-memory harness for TunnelEndpoint tests: a sink that records datagrams, nodes with a 24-byte
 * address, a tiny network that routes by destination address, and a DH-counting crypto wrapper.
 */
import type { CryptoBackend, X25519KeyPair } from '../../../src/tunnel/crypto.js';
import {
  type DatagramSink,
  type RxOutcome,
  TunnelEndpoint,
  type TunnelEndpointOptions,
  type TunnelEvents,
} from '../../../src/tunnel/endpoint.js';
import type { Peer, PeerOptions } from '../../../src/tunnel/peer.js';

export const ADDR_LEN = 24;
/** Test clock start: well past zero so "never" (-Infinity) timers are far in the past. */
export const T0 = 1_000_000;
/** Makes `now` look like a 2025 wall clock for the TAI64N timestamps. */
export const CLOCK_OFFSET = 1_750_000_000_000 - T0;

/** A 24-byte UDP address slot for 10.0.0.n:port. */
export function addr(n: number, port = 51820): Uint8Array {
  const a = new Uint8Array(ADDR_LEN);
  a[0] = 4;
  a[2] = port >> 8;
  a[3] = port & 0xff;
  a[4] = 10;
  a[7] = n;
  return a;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export interface Datagram {
  readonly data: Uint8Array;
  readonly to: Uint8Array;
}

export class MemorySink implements DatagramSink {
  out: Datagram[] = [];
  readonly buf = new Uint8Array(65536);
  buffer(): Uint8Array {
    // Poison the slot so a message that forgets to write a byte is caught.
    this.buf.fill(0xa5, 0, 256);
    return this.buf;
  }
  send(length: number, a: Uint8Array, off: number): void {
    this.out.push({ data: this.buf.slice(0, length), to: a.slice(off, off + ADDR_LEN) });
  }
  take(): Datagram[] {
    const o = this.out;
    this.out = [];
    return o;
  }
}

export interface ReceivedRecord {
  readonly peer: Peer;
  readonly type: number;
  readonly data: Uint8Array;
}

export class Node {
  readonly ep: TunnelEndpoint;
  readonly sink = new MemorySink();
  readonly keys: X25519KeyPair;
  readonly records: ReceivedRecord[] = [];
  readonly completed: { peer: Peer; initiator: boolean }[] = [];
  readonly failed: Peer[] = [];
  addr: Uint8Array;

  constructor(
    readonly crypto: CryptoBackend,
    n: number,
    opts: Partial<TunnelEndpointOptions> = {},
    events: TunnelEvents = {},
  ) {
    this.addr = addr(n);
    this.keys = crypto.x25519KeyPair();
    this.ep = new TunnelEndpoint({
      crypto,
      staticKeyPair: this.keys,
      sink: this.sink,
      clockOffsetMs: CLOCK_OFFSET,
      ...opts,
      events: {
        record: (peer, type, buf, off, len) =>
          this.records.push({ peer, type, data: buf.slice(off, off + len) }),
        handshakeComplete: (peer, initiator) => this.completed.push({ peer, initiator }),
        handshakeFailed: (peer) => this.failed.push(peer),
        ...events,
      },
    });
  }

  /** Configure `other` as a peer of this node (with its current address unless told otherwise). */
  addPeer(other: Node, extra: Partial<PeerOptions> = {}): Peer {
    return this.ep.addPeer({ publicKey: other.keys.publicKey, endpoint: other.addr, ...extra });
  }

  /** Feed one datagram as if it came from `from`. */
  recv(data: Uint8Array, from: Uint8Array, now: number): RxOutcome {
    return this.ep.receive(data, data.length, from, 0, now);
  }

  takeRecords(): ReceivedRecord[] {
    return this.records.splice(0);
  }
}

/** Routes datagrams between nodes by destination address until the network is quiet. */
export class Net {
  readonly nodes: Node[] = [];
  /** Every delivery: (to node, outcome). */
  readonly log: { to: Node; outcome: RxOutcome; data: Uint8Array }[] = [];

  constructor(...nodes: Node[]) {
    this.nodes.push(...nodes);
  }

  nodeAt(a: Uint8Array): Node | undefined {
    return this.nodes.find((n) => sameBytes(n.addr, a));
  }

  /** Deliver all pending datagrams and the ones they cause; returns the outcomes in order. */
  run(now: number, drop: (d: Datagram, from: Node) => boolean = () => false): RxOutcome[] {
    const outcomes: RxOutcome[] = [];
    for (let round = 0; round < 50; round++) {
      let moved = false;
      for (const from of this.nodes) {
        for (const d of from.sink.take()) {
          moved = true;
          if (drop(d, from)) continue;
          const to = this.nodeAt(d.to);
          if (to === undefined) continue;
          const outcome = to.recv(d.data, from.addr, now);
          outcomes.push(outcome);
          this.log.push({ to, outcome, data: d.data });
        }
      }
      if (!moved) return outcomes;
    }
    throw new Error('network did not go quiet');
  }
}

/** Two nodes that know each other; `ab` is B as A's peer, `ba` is A as B's peer. */
export function pair(
  crypto: CryptoBackend,
  opts: Partial<TunnelEndpointOptions> = {},
  peerExtra: Partial<PeerOptions> = {},
): { a: Node; b: Node; ab: Peer; ba: Peer; net: Net } {
  const a = new Node(crypto, 1, opts);
  const b = new Node(crypto, 2, opts);
  const ab = a.addPeer(b, peerExtra);
  const ba = b.addPeer(a, peerExtra);
  return { a, b, ab, ba, net: new Net(a, b) };
}

/** A pair with a completed handshake (A initiated) at time `now`. */
export function connected(
  crypto: CryptoBackend,
  now = T0,
  opts: Partial<TunnelEndpointOptions> = {},
  peerExtra: Partial<PeerOptions> = {},
): ReturnType<typeof pair> {
  const p = pair(crypto, opts, peerExtra);
  p.a.ep.initiate(p.ab, now);
  p.net.run(now);
  if (!p.ab.hasSession(now) || !p.ba.hasSession(now)) throw new Error('handshake did not complete');
  return p;
}

/** Queue one record per payload from `from` to its peer and flush; returns the datagrams sent. */
export function sendRecords(from: Node, peer: Peer, payloads: readonly Uint8Array[], now: number, type = 1) {
  for (const p of payloads) from.ep.queueRecord(peer, type, p, 0, p.length, now);
  from.ep.flush(now);
  return from.sink.take();
}

/** A backend that counts every X25519 operation (DH and key generation). */
export function countingBackend(base: CryptoBackend): { crypto: CryptoBackend; dh: { count: number } } {
  const dh = { count: 0 };
  const crypto: CryptoBackend = {
    name: base.name,
    randomBytes: (out) => base.randomBytes(out),
    memzero: (b) => base.memzero(b),
    equal: (a, b) => base.equal(a, b),
    x25519PublicKey: (out, sk) => {
      dh.count++;
      base.x25519PublicKey(out, sk);
    },
    x25519KeyPair: (sk) => {
      dh.count++;
      return base.x25519KeyPair(sk);
    },
    x25519: (out, sk, pk) => {
      dh.count++;
      base.x25519(out, sk, pk);
    },
    blake2b: (out, input, key) => base.blake2b(out, input, key),
    hmacBlake2b: (out, key, data) => base.hmacBlake2b(out, key, data),
    hkdf: (ck, ikm, o1, o2, o3) => base.hkdf(ck, ikm, o1, o2, o3),
    seal: (...args) => base.seal(...args),
    open: (...args) => base.open(...args),
    xseal: (...args) => base.xseal(...args),
    xopen: (...args) => base.xopen(...args),
  };
  return { crypto, dh };
}

export function bytes(n: number, fill: number): Uint8Array {
  return new Uint8Array(n).fill(fill);
}
