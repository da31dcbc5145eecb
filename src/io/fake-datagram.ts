/**
 * In-memory UDP for unit tests: FakeDatagramLinks bound to IPv4/IPv6 address:port on one
 * FakeDatagramNetwork exchange datagrams with source and destination in the io layer's 24-byte
 * address slot (udp-address.ts), routed by family, address and port (the scope id is ignored).
 * Delivery is asynchronous (setImmediate) and batched up to each link's batch size, like the real
 * UdpLink, so code under test sees the same batch semantics. Fault injection for fault tests:
 * loss, duplication, reordering and delay (probabilities drawn from a seedable generator), plus an
 * intercept hook that sees (and may drop) every datagram in transit.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { AoegwError } from '../errors.js';
import type { DatagramBind, DatagramHandler, DatagramLink, DatagramLinkFactory } from './datagram-link.js';
import { emptyLinkStats, type LinkStats } from './frame-link.js';
import { ADDR_SLOT, encodeUdpAddress, readUdpAddress } from './udp-address.js';

export interface DatagramFaults {
  /** Probability (0..1) that a datagram is lost. */
  loss?: number;
  /** Probability that a datagram is delivered twice. */
  duplicate?: number;
  /** Probability that a datagram overtakes the one queued before it at the receiver. */
  reorder?: number;
  /** Added one-way delay in ms (0: next turn of the event loop). */
  delayMs?: number;
}

export interface FakeDatagramOptions {
  /** A concrete IPv4 or IPv6 address (no wildcard: there are no interfaces to listen on). */
  address: string;
  /** 0 or absent: the network picks a free port. */
  port?: number;
  /** Datagrams per receive/transmit batch. Default 64. */
  batch?: number;
  /** Slot size: larger datagrams arrive truncated (length -1) like on the real link. Default 9216. */
  maxDatagram?: number;
}

export interface FakeDatagramNetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  /** Datagrams to an address:port nobody is bound to (or of the other family). */
  unroutable: number;
  /** Dropped by the intercept hook. */
  intercepted: number;
}

/** Routing key of an address slot: family, port and address bytes (not the scope id). */
function routeKey(slot: Uint8Array, off: number): string {
  let s = '';
  for (let i = 0; i < 20; i++) if (i !== 1) s += String.fromCharCode(slot[off + i]!);
  return s;
}

/** A small seedable generator (mulberry32) so fault tests are reproducible. */
export function seededRandom(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

export class FakeDatagramNetwork {
  faults: DatagramFaults = {};
  /**
   * Sees every datagram before faults apply: return false to drop it. `from`/`to` are address
   * slots; all three views are valid only during the call.
   */
  intercept: ((data: Buffer, from: Buffer, to: Buffer) => boolean) | undefined;
  random: () => number;
  readonly stats: FakeDatagramNetworkStats = {
    sent: 0,
    delivered: 0,
    lost: 0,
    duplicated: 0,
    reordered: 0,
    unroutable: 0,
    intercepted: 0,
  };
  private readonly bound = new Map<string, FakeDatagramLink>();
  private nextPort = 40000;

  constructor(seed = 1) {
    this.random = seededRandom(seed);
  }

  /** Bind a link; ERR_BIND when the address:port is taken or the address is not concrete. */
  open(opts: FakeDatagramOptions): FakeDatagramLink {
    const family = isIPv4(opts.address) ? 4 : isIPv6(opts.address.split('%')[0]!) ? 6 : 0;
    if (family === 0) throw new AoegwError('ERR_BIND', `'${opts.address}' is not an IPv4 or IPv6 address`);
    if (opts.address === '0.0.0.0' || /^[0:]*$/.test(opts.address)) {
      throw new AoegwError('ERR_BIND', 'fake datagram links need a concrete address, not the wildcard');
    }
    let port = opts.port ?? 0;
    if (port === 0) {
      do port = this.nextPort++;
      while (this.bound.has(routeKey(encodeUdpAddress({ address: opts.address, port }), 0)));
    }
    const slot = encodeUdpAddress({ address: opts.address, port });
    const key = routeKey(slot, 0);
    if (this.bound.has(key)) throw new AoegwError('ERR_BIND', `${opts.address}:${port} is already in use`);
    const link = new FakeDatagramLink(this, family, slot, opts);
    this.bound.set(key, link);
    return link;
  }

  /** A factory for UdpTunnel's linkFactory option: binds `address` unless the bind names one. */
  factory(address: string, batch?: number): DatagramLinkFactory {
    return (bind: DatagramBind) =>
      this.open({
        address: bind.address ?? address,
        port: bind.port,
        maxDatagram: bind.maxDatagram,
        ...(batch !== undefined ? { batch } : {}),
      });
  }

  /** @internal */
  unbind(link: FakeDatagramLink): void {
    const key = routeKey(link.addressSlot, 0);
    if (this.bound.get(key) === link) this.bound.delete(key);
  }

  /** @internal One datagram leaving `from` (data is a copy the network may keep). */
  transmit(from: FakeDatagramLink, data: Buffer, to: Buffer): void {
    this.stats.sent++;
    if (this.intercept !== undefined && !this.intercept(data, from.addressSlot, to)) {
      this.stats.intercepted++;
      return;
    }
    const f = this.faults;
    if (f.loss !== undefined && f.loss > 0 && this.random() < f.loss) {
      this.stats.lost++;
      return;
    }
    const target = to[0] === from.family ? this.bound.get(routeKey(to, 0)) : undefined;
    if (target === undefined || target.closed) {
      this.stats.unroutable++;
      return;
    }
    let copies = 1;
    if (f.duplicate !== undefined && f.duplicate > 0 && this.random() < f.duplicate) {
      copies = 2;
      this.stats.duplicated++;
    }
    const overtake = f.reorder !== undefined && f.reorder > 0 && this.random() < f.reorder;
    const deliver = () => {
      for (let i = 0; i < copies; i++) {
        if (target.enqueue(data, from.addressSlot, overtake && i === 0)) this.stats.reordered++;
      }
    };
    if (f.delayMs !== undefined && f.delayMs > 0) setTimeout(deliver, f.delayMs);
    else deliver();
  }

  /** @internal */
  countDelivered(n: number): void {
    this.stats.delivered += n;
  }
}

interface Queued {
  readonly data: Buffer;
  readonly from: Buffer;
}

export class FakeDatagramLink implements DatagramLink {
  readonly family: 4 | 6;
  readonly batch: number;
  readonly slotSize: number;
  readonly localPort: number;
  readonly localAddress: string;
  /** @internal This link's own address slot (the source of what it sends). */
  readonly addressSlot: Buffer;
  closed = false;
  private readonly rxViews: Buffer[];
  private readonly rxLen: Int32Array;
  private readonly rxAddr: Buffer;
  private readonly txViews: Buffer[];
  private readonly txLen: Int32Array;
  private readonly txAddr: Buffer;
  private txPending = 0;
  private queue: Queued[] = [];
  private handler: DatagramHandler | undefined;
  private errorHandler: (e: Error) => void = () => {};
  private deliveryScheduled = false;
  private flushScheduled = false;
  private readonly s: LinkStats = emptyLinkStats();

  /** @internal Created by FakeDatagramNetwork.open(). */
  constructor(
    private readonly net: FakeDatagramNetwork,
    family: 4 | 6,
    slot: Buffer,
    opts: FakeDatagramOptions,
  ) {
    this.family = family;
    this.addressSlot = slot;
    const ep = readUdpAddress(slot, 0);
    this.localAddress = ep.address;
    this.localPort = ep.port;
    this.batch = opts.batch ?? 64;
    this.slotSize = opts.maxDatagram ?? 9216;
    this.rxViews = Array.from({ length: this.batch }, () => Buffer.alloc(this.slotSize));
    this.txViews = Array.from({ length: this.batch }, () => Buffer.alloc(this.slotSize));
    this.rxLen = new Int32Array(this.batch);
    this.txLen = new Int32Array(this.batch);
    this.rxAddr = Buffer.alloc(this.batch * ADDR_SLOT);
    this.txAddr = Buffer.alloc(this.batch * ADDR_SLOT);
  }

  /** @internal Returns true when the datagram was put before the previous one (reordered). */
  enqueue(data: Buffer, from: Buffer, overtake: boolean): boolean {
    if (this.closed) return false;
    if (this.queue.length >= 4096) {
      this.s.kernelDrops++; // like a full socket receive buffer
      return false;
    }
    const q: Queued = { data, from };
    let reordered = false;
    if (overtake && this.queue.length > 0) {
      this.queue.splice(this.queue.length - 1, 0, q);
      reordered = true;
    } else {
      this.queue.push(q);
    }
    this.scheduleDelivery();
    return reordered;
  }

  private scheduleDelivery(): void {
    if (this.deliveryScheduled || !this.handler || this.closed) return;
    this.deliveryScheduled = true;
    setImmediate(() => {
      this.deliveryScheduled = false;
      this.deliver();
    });
  }

  private deliver(): void {
    // One batch per turn, like one recvmmsg per wakeup: what arrives meanwhile joins later batches.
    if (this.queue.length === 0 || !this.handler || this.closed) return;
    const n = Math.min(this.batch, this.queue.length);
    for (let i = 0; i < n; i++) {
      const d = this.queue.shift()!;
      if (d.data.length > this.slotSize) {
        d.data.copy(this.rxViews[i]!, 0, 0, this.slotSize);
        this.rxLen[i] = -1;
        this.s.rxTruncated++;
      } else {
        d.data.copy(this.rxViews[i]!);
        this.rxLen[i] = d.data.length;
      }
      d.from.copy(this.rxAddr, i * ADDR_SLOT);
    }
    this.s.rxFrames += n;
    this.s.rxBatches++;
    this.net.countDelivered(n);
    try {
      this.handler(this.rxViews, this.rxLen, this.rxAddr, n);
    } catch (e) {
      this.s.handlerErrors++;
      this.report(e instanceof Error ? e : new Error(String(e)));
    }
    if (this.queue.length > 0) this.scheduleDelivery();
  }

  private report(err: Error): void {
    try {
      this.errorHandler(err);
    } catch {
      // An error handler that throws must not break delivery.
    }
  }

  onBatch(handler: DatagramHandler): void {
    this.handler = handler;
    this.scheduleDelivery();
  }

  onError(handler: (err: Error) => void): void {
    this.errorHandler = handler;
  }

  txSlot(): Buffer {
    if (this.txPending === this.batch) this.flush();
    return this.txViews[this.txPending]!;
  }

  txCommitTo(length: number, addr: Uint8Array, off = 0): void {
    if (!(length > 0 && length <= this.slotSize)) {
      throw new AoegwError('ERR_FRAME_TOO_LARGE', `datagram of ${length} bytes (max ${this.slotSize})`);
    }
    this.txAddr.set(addr.subarray(off, off + ADDR_SLOT), this.txPending * ADDR_SLOT);
    this.txLen[this.txPending] = length;
    this.txPending++;
    if (this.txPending === this.batch) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  flush(): number {
    const n = this.txPending;
    if (n === 0 || this.closed) return 0;
    this.txPending = 0;
    for (let i = 0; i < n; i++) {
      const to = this.txAddr.subarray(i * ADDR_SLOT, (i + 1) * ADDR_SLOT);
      if (to[0] !== this.family) {
        // The kernel refuses a destination of the other family (EAFNOSUPPORT).
        this.s.txErrors++;
        continue;
      }
      this.net.transmit(this, Buffer.from(this.txViews[i]!.subarray(0, this.txLen[i]!)), Buffer.from(to));
      this.s.txFrames++;
    }
    this.s.txBatches++;
    return n;
  }

  stats(): LinkStats {
    return { ...this.s };
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.queue = [];
    this.net.unbind(this);
  }
}
