/**
 * Shared machinery of every native link: the preallocated receive/transmit arenas, zero-copy
 * transmit slots with automatic batched flushing, and a receive loop that can never be broken by
 * a throwing handler.
 */
import { AoegwError } from '../errors.js';
import type { LinkStats } from './frame-link.js';
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
  protected readonly rxViews: Buffer[];
  protected readonly txViews: Buffer[];
  protected readonly rxLen: Int32Array;
  protected readonly txLen: Int32Array;
  protected readonly rxAddr: Buffer | undefined;
  protected readonly txAddr: Buffer | undefined;
  protected txPending = 0;
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
    this.native.start(this.h, (count: number, errno: number) => {
      if (count < 0) {
        this.report(new AoegwError('ERR_SYSCALL', `receive failed: errno ${errno}`));
        return;
      }
      try {
        deliver(count);
      } catch (e) {
        this.handlerErrors++;
        this.report(e instanceof Error ? e : new Error(String(e)));
      }
    });
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

  /**
   * Makes up to `n` consecutive uncommitted slots addressable with txSlotAt() (flushing committed
   * frames first if fewer remain), so a reply spanning several frames can be built in place.
   * Returns how many are available (>= 1).
   */
  txReserve(n: number): number {
    if (this.batch - this.txPending < Math.min(n, this.batch)) this.flushSafely();
    return Math.max(1, Math.min(n, this.batch - this.txPending));
  }

  /** The k-th uncommitted slot after txReserve(); txSlotAt(0) is txSlot(). */
  txSlotAt(k: number): Buffer {
    return this.txViews[this.txPending + k]!;
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
    try {
      return this.native.send(this.handle, n, 0);
    } catch (e) {
      throw fromNative(e);
    }
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
      txDropped: s.txDropped,
      txErrors: s.txErrors,
      kernelDrops: s.kernelDrops,
      handlerErrors: this.handlerErrors,
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
