/**
 * The ring* part of the addon (native/io_ring.c), typed. Kept apart from native.ts so the link
 * functions and the ring functions can change independently.
 */
import { type NativeAddon, nativeAddon } from './native.js';

export type NativeRingHandle = { readonly __nativeRing: unique symbol };

export interface NativeRingStats {
  /** io_uring_enter calls that submitted. */
  enters: number;
  sqes: number;
  cqes: number;
  inFlight: number;
  wakeups: number;
  /** Eventfd wakeups that found no completion (a submit had already taken it). */
  spuriousWakeups: number;
  /** io_uring_enter returned EAGAIN/EBUSY and was retried. */
  enterRetries: number;
  /** The CQ overflowed into the kernel's list (never expected: in-flight ops are capped). */
  overflowFlushes: number;
  /** Descriptors that failed validation and completed with -EINVAL. */
  badDescriptors: number;
  sqEntries: number;
  cqEntries: number;
}

export interface RingTables {
  /** RING_DESC_STRIDE numbers per op: opcode, fd, position, first iov, iov count, token, flags. */
  desc?: Float64Array;
  /** Pairs: arena offset, length. */
  iov?: Int32Array;
  /** Pairs: token, result (bytes or -errno), written by the addon. */
  cqe?: Int32Array;
}

export interface RingAddon {
  RING_DESC_STRIDE: number;
  RING_OP_READV: number;
  RING_OP_WRITEV: number;
  RING_OP_FDATASYNC: number;
  RING_LINK: number;
  /** null when io_uring works here, else why not. */
  ringProbe(): string | null;
  ringOpen(opts: { entries: number; arenaBytes: number }): {
    handle: NativeRingHandle;
    arena: ArrayBuffer;
    sqEntries: number;
    cqEntries: number;
    /** The process's cap on kernel workers for blocking regular-file ops (0: unknown, kernel < 5.15). */
    ioWorkers: number;
  };
  ringTables(h: NativeRingHandle, tables: RingTables): void;
  /** Submits descriptors first..first+n-1; returns completions copied into the cqe table (0 when harvest is 0). */
  ringSubmit(h: NativeRingHandle, n: number, first?: number, harvest?: 0 | 1): number;
  /** Copies posted completions into the cqe table; never waits. */
  ringReap(h: NativeRingHandle): number;
  /** Like ringReap, but blocks until one completion is posted (0 at once when nothing is in flight). */
  ringWait(h: NativeRingHandle): number;
  ringStart(h: NativeRingHandle, onReady: (count: number) => void): void;
  ringStop(h: NativeRingHandle): void;
  /** Blocks until in-flight ops complete (discarding their completions), then unmaps the ring. */
  ringClose(h: NativeRingHandle): void;
  ringStats(h: NativeRingHandle): NativeRingStats;
}

export function ringAddon(): RingAddon {
  return nativeAddon() as NativeAddon & RingAddon;
}
