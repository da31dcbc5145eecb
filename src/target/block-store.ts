/**
 * The storage behind one export, as the target engine sees it.
 *
 * Synchronous by design: the target driver runs on one event loop, positioned I/O on tmpfs or the
 * page cache is fastest without a thread-pool round trip, and durability costs one fdatasync per
 * receive batch (group commit), not one per frame.
 *
 * Contract the engine relies on:
 * - The engine checks every range against `sectors` before calling; a store still throws
 *   (ERR_STORE_RANGE) on a range it cannot serve rather than truncate.
 * - `readv`/`writev` use bufs[0..count) in order, each a multiple of 512 bytes, as one run of
 *   consecutive sectors from `lba`. The engine reuses the array and the views: a store must not keep
 *   references to them after returning.
 * - Any throw is an I/O error for the whole call: the engine answers every request of that call
 *   with an ATA error (never an acknowledgement).
 * - `commit()` ends a receive batch that wrote something. In sync mode it makes every write issued
 *   so far durable (fdatasync); in writeback mode it is a no-op. The engine acknowledges writes only
 *   after it returns.
 * - `flush()` (FLUSH CACHE) always makes every completed write durable, in every mode. It implies
 *   commit(): in a batch with a FLUSH the engine calls flush() instead of commit().
 * - A read-only store throws ERR_READ_ONLY from writev (the engine never calls it: it answers ABRT).
 */
export interface BlockStore {
  /** Capacity in 512-byte sectors. */
  readonly sectors: number;
  readonly readOnly: boolean;
  /** For logs, e.g. 'file /x.img (sync)'. */
  readonly description: string;
  /** Reads consecutive sectors from `lba` into bufs[0..count) in order. Throws on I/O error. */
  readv(lba: number, bufs: readonly Uint8Array[], count: number): void;
  /** Writes consecutive sectors from bufs[0..count); durable only after commit()/flush() in sync mode. */
  writev(lba: number, bufs: readonly Uint8Array[], count: number): void;
  /** End of a receive batch that wrote something: fdatasync in sync mode, no-op in writeback. */
  commit(): void;
  /** FLUSH CACHE: always makes every completed write durable. */
  flush(): void;
  close(): void;
}
