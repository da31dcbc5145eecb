/**
 * Shared machinery of every native link: the preallocated receive/transmit arenas, zero-copy
 * transmit slots with automatic batched flushing, and a receive loop that can never be broken by
 * a throwing handler.
 */
import { AoegwError } from '../errors.js';
import type { LinkStateEvent, LinkStateHandler, LinkStats } from './frame-link.js';
import { type ArenaOptions, fromNative, type NativeAddon, type NativeHandle, nativeAddon } from './native.js';

export interface BatchOptions {
  /** Frames per receive/transmit batch (recvmmsg/sendmmsg vector length). Default 64. */
  batch?: number;
  /** Receive batches handled per wakeup before yielding to the event loop. Default 16. */
  maxBatchesPerWakeup?: number;
  /**
   * Microseconds to keep polling the socket after the last frame before sleeping in epoll (0 = off,
   * max 1000). Trades CPU for latency on request/reply traffic.
   */
  busyPollUs?: number;
  /** Socket buffer sizes in bytes (default 4 MiB each). */
  rcvbuf?: number;
  sndbuf?: number;
}

export abstract class BatchedLink {
  protected readonly native: NativeAddon;
  protected handle: NativeHandle | undefined;
  readonly batch: number;
  readonly slotSize: number;
  /**
   * What JS handlers see: batch frame i is rxViews[i]. Normally views of the rx arena; with a
   * receive ring (packet links), re-pointed per batch at cached views of ring frames (rxRing).
   */
  protected readonly rxViews: Buffer[];
  /** Receive ring: one cached view per ring frame, and the ring index of each batch frame. */
  protected rxRing: { views: Buffer[]; idx: Int32Array } | undefined;
  protected readonly txViews: Buffer[];
  protected readonly rxLen: Int32Array;
  protected readonly txLen: Int32Array;
  protected readonly rxAddr: Buffer | undefined;
  protected readonly txAddr: Buffer | undefined;
  /** Control words shared with the addon (see CTL_* in the C file): [0] flags, [1] its MTU. */
  protected readonly ctl: Int32Array;
  protected txPending = 0;
  /** Frames dropped in JS because the link was down when they were flushed. */
  protected txDroppedDown = 0;
  protected linkDowns = 0;
  private readonly stateHandlers = new Set<LinkStateHandler>();
  private flushScheduled = false;
  private handlerErrors = 0;
  private errorHandler: (err: Error) => void = () => {};
  private lastError: Error | undefined;
  private readonly flushBound = () => {
    this.flushScheduled = false;
    this.flushSafely();
  };

  protected constructor(slotSize: number, opts: BatchOptions, withAddresses: boolean) {
    this.native = nativeAddon();
    this.batch = opts.batch ?? 64;
    this.slotSize = slotSize;
    const rx = new ArrayBuffer(this.batch * slotSize);
    const tx = new ArrayBuffer(this.batch * slotSize);
    this.rxLen = new Int32Array(this.batch);
    this.txLen = new Int32Array(this.batch);
    this.ctl = new Int32Array(this.native.CTL_WORDS);
    this.rxViews = [];
    this.txViews = [];
    for (let i = 0; i < this.batch; i++) {
      this.rxViews.push(Buffer.from(rx, i * slotSize, slotSize));
      this.txViews.push(Buffer.from(tx, i * slotSize, slotSize));
    }
    if (withAddresses) {
      const n = this.native.ADDR_SLOT * this.batch;
      this.rxAddr = Buffer.alloc(n);
      this.txAddr = Buffer.alloc(n);
    }
  }

  /** Options for the native open call. */
  protected arenaOptions(opts: BatchOptions): ArenaOptions {
    const arena = (b: Buffer) => b.buffer as ArrayBuffer;
    const o: ArenaOptions = {
      batch: this.batch,
      slotSize: this.slotSize,
      rx: arena(this.rxViews[0]!),
      rxLen: this.rxLen,
      tx: arena(this.txViews[0]!),
      txLen: this.txLen,
      ctl: this.ctl,
      maxBatchesPerWakeup: opts.maxBatchesPerWakeup ?? 16,
      busyPollUs: opts.busyPollUs ?? 0,
    };
    if (this.rxAddr && this.txAddr) {
      // Address arenas are Buffer.alloc'd (possibly pooled slices), so pass the views themselves.
      o.rxAddr = this.rxAddr as unknown as ArrayBuffer;
      o.txAddr = this.txAddr as unknown as ArrayBuffer;
    }
    if (opts.rcvbuf !== undefined) o.rcvbuf = opts.rcvbuf;
    if (opts.sndbuf !== undefined) o.sndbuf = opts.sndbuf;
    return o;
  }

  protected get h(): NativeHandle {
    if (!this.handle) throw new AoegwError('ERR_CLOSED', 'link is closed');
    return this.handle;
  }

  /** Starts the receive loop; `deliver(count)` runs once per batch. */
  protected startReceiving(deliver: (count: number) => void): void {
    // Named so heap profiles (test/integration/packet-link.test.ts) can find the receive path.
    const receiveBatch = (count: number, errno: number) => {
      if (count < 0) {
        this.receiveError(errno);
        return;
      }
      try {
        this.mapRing(count);
        deliver(count);
      } catch (e) {
        this.handlerErrors++;
        this.report(e instanceof Error ? e : new Error(String(e)));
      }
    };
    this.native.start(this.h, receiveBatch);
  }

  /** With a receive ring: points batch slots 0..count-1 at the ring frames the addon named. */
  protected mapRing(count: number): void {
    const r = this.rxRing;
    if (!r) return;
    for (let i = 0; i < count; i++) this.rxViews[i] = r.views[r.idx[i]!]!;
  }

  /**
   * The addon reports a socket error (it has already cleared it and re-armed the receive handle).
   * Subclasses with interfaces turn link-down errors into a 'down' state.
   */
  protected receiveError(errno: number): void {
    this.report(new AoegwError('ERR_SYSCALL', `receive failed: ${errnoName(errno)}`));
  }

  /** The addon saw EMSGSIZE (the MTU shrank under us); subclasses re-read the interface. */
  protected linkChanged(): void {}

  /** A send failed because the interface is down or gone; subclasses go 'down'. */
  protected sendFault(_err: AoegwError): boolean {
    return false;
  }

  get state(): 'up' | 'down' {
    return 'up';
  }

  onLinkState(handler: LinkStateHandler): () => void {
    this.stateHandlers.add(handler);
    return () => this.stateHandlers.delete(handler);
  }

  protected emitLinkState(ev: LinkStateEvent): void {
    for (const h of this.stateHandlers) {
      try {
        h(ev);
      } catch (e) {
        this.handlerErrors++;
        this.report(e instanceof Error ? e : new Error(String(e)));
      }
    }
  }

  onError(handler: (err: Error) => void): void {
    this.errorHandler = handler;
  }

  protected report(err: Error): void {
    this.lastError = err;
    try {
      this.errorHandler(err);
    } catch {
      // An error handler that throws must not take the receive loop down with it.
    }
  }

  get lastReportedError(): Error | undefined {
    return this.lastError;
  }

  /** Slot the next frame is written into (a full-slot view; commit the real length). */
  txSlot(): Buffer {
    if (this.txPending === this.batch) this.flushSafely();
    return this.txViews[this.txPending]!;
  }

  txCommit(length: number): void {
    this.txLen[this.txPending] = length;
    this.txPending++;
    if (this.txPending === this.batch) this.flushSafely();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushBound);
    }
  }

  /** Sends every committed frame now; returns how many the kernel accepted. Throws on hard errors. */
  flush(): number {
    const n = this.txPending;
    if (n === 0 || !this.handle) return 0;
    this.txPending = 0;
    if (this.state === 'down') {
      // Nothing can leave a link whose interface is down or gone; the peers retransmit.
      this.txDroppedDown += n;
      return 0;
    }
    let sent: number;
    try {
      sent = this.native.send(this.handle, n, 0);
    } catch (e) {
      const err = fromNative(e);
      this.checkCtl();
      if (err.code === 'ERR_INTERFACE_DOWN' || err.code === 'ERR_NO_SUCH_INTERFACE') {
        if (this.sendFault(err)) return 0;
      }
      throw err;
    }
    this.checkCtl();
    return sent;
  }

  private checkCtl(): void {
    if (this.ctl[0] === 0) return;
    this.ctl[0] = 0;
    // Out of the send path: handlers re-register the link and announce, which sends again.
    setImmediate(() => {
      if (this.handle) this.linkChanged();
    });
  }

  private flushSafely(): void {
    try {
      this.flush();
    } catch (e) {
      this.report(e as Error);
    }
  }

  pause(): void {
    if (this.handle) this.native.stop(this.handle);
  }

  stats(): LinkStats {
    const s = this.native.stats(this.h);
    return {
      rxFrames: s.rxFrames,
      rxBatches: s.rxBatches,
      rxTruncated: s.rxTruncated,
      rxErrors: s.rxErrors,
      txFrames: s.txFrames,
      txBatches: s.txBatches,
      txDropped: s.txDropped + this.txDroppedDown,
      txErrors: s.txErrors,
      kernelDrops: s.kernelDrops,
      handlerErrors: this.handlerErrors,
      rxVlanDropped: s.rxVlanDropped,
      rxOtherHostDropped: s.rxOtherHostDropped,
      txOversized: s.txOversized,
      linkDowns: this.linkDowns,
      txCalls: s.txCalls,
      rxCalls: s.rxCalls,
      wakeups: s.wakeups,
      ...(s.gsoSends !== undefined
        ? {
            gsoSends: s.gsoSends,
            gsoSegments: s.gsoSegments ?? 0,
            gsoFallbacks: s.gsoFallbacks ?? 0,
            groMessages: s.groMessages ?? 0,
            groSegments: s.groSegments ?? 0,
          }
        : {}),
    };
  }

  close(): void {
    if (!this.handle) return;
    try {
      this.flush();
    } catch {
      // Closing: frames that cannot be sent any more are dropped (and were counted natively).
    }
    this.native.close(this.handle);
    this.handle = undefined;
  }
}

/** ENETDOWN etc. by name for messages (the numeric errno alone sent operators to the man pages). */
export function errnoName(errno: number): string {
  const names: Record<number, string> = {
    6: 'ENXIO',
    9: 'EBADF',
    19: 'ENODEV',
    100: 'ENETDOWN',
    105: 'ENOBUFS',
  };
  return `${names[errno] ?? 'errno'} (${errno})`;
}
