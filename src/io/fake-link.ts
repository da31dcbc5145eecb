/**
 * In-memory Ethernet segment for unit tests: links attached to a FakeSegment behave like ports on
 * a learning-free switch (broadcast/multicast to all others, unicast to the port with that MAC,
 * or to every port flagged promiscuous). Delivery is asynchronous and batched like the real links,
 * so code under test sees the same batch semantics. `setLinkState` simulates an interface going
 * down and returning (possibly with another MTU or MAC), like PacketLink reports it.
 */
import { AoegwError } from '../errors.js';
import {
  type BatchHandler,
  emptyLinkStats,
  type FrameLink,
  type LinkStateHandler,
  type LinkStats,
} from './frame-link.js';

export interface FakeLinkOptions {
  name?: string;
  mac?: Buffer | string;
  mtu?: number;
  batch?: number;
  promiscuous?: boolean;
}

function parseMac(mac: Buffer | string): Buffer {
  if (Buffer.isBuffer(mac)) return Buffer.from(mac);
  return Buffer.from(mac.split(':').map((x) => Number.parseInt(x, 16)));
}

export class FakeSegment {
  readonly links: FakeLink[] = [];
  /** Optional filter: return false to drop a frame in transit (loss injection). */
  dropFilter: ((frame: Buffer, from: FakeLink) => boolean) | undefined;
  private nextMac = 1;

  attach(opts: FakeLinkOptions = {}): FakeLink {
    const mac = opts.mac ? parseMac(opts.mac) : Buffer.from([0x02, 0, 0, 0, 0, this.nextMac++]);
    const link = new FakeLink(this, { ...opts, mac });
    this.links.push(link);
    return link;
  }

  /** @internal */
  transmit(from: FakeLink, frame: Buffer): void {
    if (this.dropFilter && !this.dropFilter(frame, from)) return;
    const dst = frame.subarray(0, 6);
    const group = (dst[0]! & 1) === 1;
    for (const l of this.links) {
      if (l === from || l.closed || l.state === 'down') continue;
      if (group || l.promiscuous || dst.equals(l.mac)) l.enqueue(frame);
    }
  }
}

export class FakeLink implements FrameLink {
  readonly name: string;
  mac: Buffer;
  mtu: number;
  maxFrame: number;
  state: 'up' | 'down' = 'up';
  private readonly stateHandlers = new Set<LinkStateHandler>();
  readonly promiscuous: boolean;
  closed = false;
  private readonly batch: number;
  private rxViews: Buffer[];
  private readonly rxLen: Int32Array;
  private txViews: Buffer[];
  private txLen: number[] = [];
  private queue: Buffer[] = [];
  private handler: BatchHandler | undefined;
  private errorHandler: (e: Error) => void = () => {};
  private paused = false;
  private deliveryScheduled = false;
  private flushScheduled = false;
  private readonly s: LinkStats = emptyLinkStats();

  constructor(
    private readonly segment: FakeSegment,
    opts: FakeLinkOptions & { mac: Buffer },
  ) {
    this.name = opts.name ?? `fake${segment.links.length}`;
    this.mac = opts.mac;
    this.mtu = opts.mtu ?? 1500;
    this.maxFrame = this.mtu + 14;
    this.batch = opts.batch ?? 64;
    this.promiscuous = opts.promiscuous ?? false;
    const slot = this.maxFrame;
    this.rxViews = Array.from({ length: this.batch }, () => Buffer.alloc(slot));
    this.rxLen = new Int32Array(this.batch);
    this.txViews = Array.from({ length: this.batch }, () => Buffer.alloc(slot));
  }

  /** @internal */
  enqueue(frame: Buffer): void {
    if (frame.length > this.maxFrame) {
      this.s.rxTruncated++;
      return;
    }
    if (this.queue.length >= 4096) {
      this.s.kernelDrops++; // like a full socket buffer
      return;
    }
    this.queue.push(Buffer.from(frame));
    this.scheduleDelivery();
  }

  private scheduleDelivery(): void {
    if (this.deliveryScheduled || this.paused || !this.handler) return;
    this.deliveryScheduled = true;
    setImmediate(() => {
      this.deliveryScheduled = false;
      this.deliver();
    });
  }

  private deliver(): void {
    while (this.queue.length > 0 && this.handler && !this.paused && !this.closed) {
      const n = Math.min(this.batch, this.queue.length);
      for (let i = 0; i < n; i++) {
        const f = this.queue.shift()!;
        f.copy(this.rxViews[i]!);
        this.rxLen[i] = f.length;
      }
      this.s.rxFrames += n;
      this.s.rxBatches++;
      try {
        this.handler(this.rxViews, this.rxLen, n);
      } catch (e) {
        this.s.handlerErrors++;
        this.errorHandler(e as Error);
      }
    }
  }

  onBatch(handler: BatchHandler): void {
    this.handler = handler;
    this.scheduleDelivery();
  }

  onError(handler: (err: Error) => void): void {
    this.errorHandler = handler;
  }

  txSlot(): Buffer {
    if (this.txLen.length === this.batch) this.flush();
    return this.txViews[this.txLen.length]!;
  }

  txCommit(length: number): void {
    if (length <= 0 || length > this.maxFrame) {
      throw new AoegwError(
        'ERR_FRAME_TOO_LARGE',
        `frame of ${length} bytes on ${this.name} (max ${this.maxFrame})`,
      );
    }
    this.txLen.push(length);
    if (this.txLen.length === this.batch) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  send(frame: Uint8Array, length = frame.length): void {
    const slot = this.txSlot();
    slot.set(frame.subarray(0, length));
    this.txCommit(length);
  }

  onLinkState(handler: LinkStateHandler): () => void {
    this.stateHandlers.add(handler);
    return () => this.stateHandlers.delete(handler);
  }

  /**
   * Simulates the interface going down or coming back (optionally with a new MTU or MAC). While
   * down nothing is delivered and flushed frames are dropped (txDropped), as on a real link.
   * Handlers run synchronously.
   */
  setLinkState(state: 'up' | 'down', change: { mtu?: number; mac?: Buffer | string } = {}): void {
    if (state === 'down') {
      if (this.state === 'down') return;
      this.state = 'down';
      this.s.linkDowns++;
      this.queue = [];
    } else {
      if (change.mtu !== undefined && change.mtu !== this.mtu) {
        this.mtu = change.mtu;
        this.maxFrame = change.mtu + 14;
        this.txLen = [];
        this.rxViews = this.rxViews.map(() => Buffer.alloc(this.maxFrame));
        this.txViews = this.txViews.map(() => Buffer.alloc(this.maxFrame));
      }
      if (change.mac !== undefined) this.mac = parseMac(change.mac);
      this.state = 'up';
    }
    const ev = { state, mtu: this.mtu, mac: this.mac, reason: state === 'down' ? 'simulated' : 'up' };
    for (const h of this.stateHandlers) h(ev);
  }

  flush(): number {
    const n = this.txLen.length;
    if (n === 0 || this.closed) return 0;
    if (this.state === 'down') {
      this.txLen = [];
      this.s.txDropped += n;
      return 0;
    }
    for (let i = 0; i < n; i++) this.segment.transmit(this, this.txViews[i]!.subarray(0, this.txLen[i]));
    this.txLen = [];
    this.s.txFrames += n;
    this.s.txBatches++;
    return n;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.scheduleDelivery();
  }

  stats(): LinkStats {
    return { ...this.s };
  }

  close(): void {
    this.flush();
    this.closed = true;
    this.queue = [];
  }
}
