/**
 * The storage behind one export, as the target engine sees it: operations are started, and end
 * later with one completion each, so a slow disk never holds the event loop that carries every
 * other export, link and tunnel.
 *
 * Contract the engine relies on:
 * - Every read/write/sync ends with exactly one `done(token, result)` (the function given to
 *   attach()): result = bytes transferred (sync: 0) or −errno. It may come before the call returns
 *   (memory stores, page-cache hits, the synchronous fallback); the engine queues completions and
 *   handles them after the batch, never inside the call.
 * - The engine checks every range against `sectors`; a store still refuses (−EINVAL) a range it
 *   cannot serve rather than truncate. Short transfers are failures.
 * - `bufs` are views of the engine's staging memory, each a multiple of 512 bytes, stable until
 *   the operation's completion (for a ring-backed store: views of the ring's registered arena).
 * - `write(..., link)`: the next operation started on this store runs only after this one
 *   succeeded; if it fails, the rest of the chain ends with −ECANCELED. The engine links a
 *   group's writes to the sync that covers them, so a sync that succeeds covers them all.
 * - `sync` makes durable every write that completed before it started and every write linked
 *   before it (fdatasync). The engine acknowledges a write only after a sync covering it
 *   succeeded when `syncsWrites` is true (sync and direct modes); FLUSH CACHE always syncs.
 * - A read-only store fails writes with −EROFS (the engine never starts one: it answers ABRT).
 */
export type StoreDone = (token: number, result: number) => void;

export interface BlockStore {
  /** Capacity in 512-byte sectors. */
  readonly sectors: number;
  readonly readOnly: boolean;
  /** For logs, e.g. 'file /x.img (sync)'. */
  readonly description: string;
  /** Writes are acknowledged only once a sync covering them succeeded (false: writeback). */
  readonly syncsWrites: boolean;
  /** Where this store's completions go; set once, by the engine that serves it. */
  attach(done: StoreDone): void;
  /** Starts reading consecutive sectors from `lba` into bufs[0..count) in order. */
  read(lba: number, bufs: readonly Uint8Array[], count: number, token: number): void;
  /** Starts writing consecutive sectors from bufs[0..count) at `lba`; see `link` above. */
  write(lba: number, bufs: readonly Uint8Array[], count: number, token: number, link: boolean): void;
  /** Starts an fdatasync: durable are the writes completed before it and those linked before it. */
  sync(token: number): void;
  /** Closes after a final sync; the engine has no operation in flight on it by then. */
  close(): void;
}

/** Errno values the stores report (negated in completions). */
export const Errno = {
  EIO: 5,
  EBADF: 9,
  EINVAL: 22,
  ENOSPC: 28,
  EROFS: 30,
  ECANCELED: 125,
} as const;
