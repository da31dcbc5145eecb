/**
 * How the target's block I/O reaches the kernel: an io_uring (IoRing) whose registered arena is
 * the data path's staging memory, or — when the kernel refuses io_uring (sysctl
 * kernel.io_uring_disabled, a seccomp profile) or the operator asks for it — synchronous calls
 * on the event loop. In 'auto' mode one server mixes both: files on tmpfs or ramfs are served
 * synchronously beside the ring (io_uring has no non-blocking path there and would punt every op
 * to an io-wq worker, for what a synchronous call does as one memory copy); 'ring' puts every
 * store on it.
 */
import { AoegwError } from '../errors.js';
import { IoRing } from '../io/io-ring.js';
import type { Log } from '../log.js';
import { DEFAULT_STAGING_SLOTS, STAGING_STRIDE } from './data-path.js';
import type { TargetEngine } from './engine.js';
import type { BlockIoMode } from './spec.js';

export interface BlockIo {
  /** The ring, when block I/O goes through one. */
  readonly ring: IoRing | undefined;
  /** Files on tmpfs or ramfs are served synchronously even though the ring exists ('auto'). */
  readonly memoryFsSync: boolean;
  /** For the log: what was chosen and why. */
  readonly description: string;
}

/**
 * Opens the ring for `mode` ('auto' falls back to synchronous I/O with the reason in the
 * description; 'ring' throws ERR_IO_RING instead, and puts even memory-backed files on the ring).
 */
export function openBlockIo(mode: BlockIoMode, slots = DEFAULT_STAGING_SLOTS): BlockIo {
  if (mode === 'sync')
    return { ring: undefined, memoryFsSync: false, description: 'synchronous (blockIo: sync)' };
  const ok = IoRing.available();
  if (!ok.ok) {
    if (mode === 'ring') throw new AoegwError('ERR_IO_RING', `blockIo is ring, but ${ok.reason}`);
    return {
      ring: undefined,
      memoryFsSync: false,
      description: `synchronous: io_uring unavailable (${ok.reason}); a slow disk will stall every export`,
    };
  }
  const ring = IoRing.open({ arenaBytes: slots * STAGING_STRIDE });
  const memoryFsSync = mode === 'auto';
  return {
    ring,
    memoryFsSync,
    description: `io_uring (${ring.sqEntries} entries, ${(slots * STAGING_STRIDE) >> 20} MiB staging, ${ring.ioWorkers || 'unknown'} kernel I/O workers)${memoryFsSync ? '; files on tmpfs or ramfs synchronously (io_uring would punt every op to a worker)' : ''}`,
  };
}

/** Delivers the ring's completions to the engine, one settle per batch of completions. */
export function connectRing(ring: IoRing, engine: TargetEngine, log: Log): void {
  ring.onCompletions((tokens, results, n) => {
    for (let i = 0; i < n; i++) engine.storeDone(tokens[i]!, results[i]!);
    engine.settle();
  });
  ring.onError((e) => log.error(`block I/O completion handler: ${(e as Error)?.message ?? String(e)}`));
}
