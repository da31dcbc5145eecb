/**
 * BlockStore over a Buffer: for unit tests, benchmarks of the engine alone, and scratch exports.
 * Counts every call, can report each call to an event hook (tests use it to check the order of
 * syncs and acknowledgements), can inject I/O errors, and can hold completions back (`deferred`)
 * so tests can see what the engine does while a store is slow.
 */
import { SECTOR_SIZE } from '../aoe/constants.js';
import { AoegwError } from '../errors.js';
import { type BlockStore, Errno, type StoreDone } from './block-store.js';

export type StoreOp = 'readv' | 'writev' | 'sync';

export interface MemoryStoreOptions {
  readOnly?: boolean;
  description?: string;
  /** Reads or writes touching any of these LBAs fail with EIO. */
  faultLbas?: readonly number[];
  /** Called before every operation (lba/sectors are 0 for sync). */
  onEvent?: (op: StoreOp, lba: number, sectors: number) => void;
  /** Writes need a sync before their acknowledgement (default true, like a file in sync mode). */
  syncsWrites?: boolean;
  /** Operations wait for completeDeferred() instead of completing at once. */
  deferred?: boolean;
}

interface Deferred {
  op: StoreOp;
  lba: number;
  bufs: Uint8Array[];
  token: number;
  link: boolean;
}

export class MemoryStore implements BlockStore {
  readonly data: Buffer;
  readonly sectors: number;
  readonly readOnly: boolean;
  readonly description: string;
  readonly syncsWrites: boolean;
  /** LBAs whose reads/writes fail; mutable at any time. */
  readonly faultLbas: Set<number>;
  /** When set and returning true, the operation fails with `faultErrno` (EIO by default). */
  fault: ((op: StoreOp, lba: number, sectors: number) => boolean) | undefined;
  faultErrno: number = Errno.EIO;
  onEvent: ((op: StoreOp, lba: number, sectors: number) => void) | undefined;
  /** Hold completions until completeDeferred() (mutable at any time). */
  deferred: boolean;
  readvCalls = 0;
  writevCalls = 0;
  syncs = 0;
  sectorsRead = 0;
  sectorsWritten = 0;
  closed = false;
  private done: StoreDone = () => {};
  private readonly waiting: Deferred[] = [];
  /** A linked operation failed: the chain's rest is cancelled (until an unlinked op ends it). */
  private chainBroken = false;

  /** `init`: capacity in sectors (zero-filled) or the Buffer to serve (used in place, length % 512 == 0). */
  constructor(init: number | Buffer, opts: MemoryStoreOptions = {}) {
    if (typeof init === 'number') {
      if (!Number.isInteger(init) || init < 0) {
        throw new AoegwError('ERR_TARGET_CONFIG', `memory store of ${init} sectors`);
      }
      this.data = Buffer.alloc(init * SECTOR_SIZE);
    } else {
      if (init.length % SECTOR_SIZE !== 0) {
        throw new AoegwError(
          'ERR_TARGET_CONFIG',
          `memory store of ${init.length} bytes is not whole sectors`,
        );
      }
      this.data = init;
    }
    this.sectors = this.data.length / SECTOR_SIZE;
    this.readOnly = opts.readOnly ?? false;
    this.syncsWrites = opts.syncsWrites ?? true;
    this.deferred = opts.deferred ?? false;
    this.description = opts.description ?? `memory ${this.sectors} sectors${this.readOnly ? ' (ro)' : ''}`;
    this.faultLbas = new Set(opts.faultLbas ?? []);
    this.onEvent = opts.onEvent;
  }

  attach(done: StoreDone): void {
    this.done = done;
  }

  /** Operations held back (deferred mode). */
  get pending(): number {
    return this.waiting.length;
  }

  read(lba: number, bufs: readonly Uint8Array[], count: number, token: number): void {
    this.start('readv', lba, bufs, count, token, false);
  }

  write(lba: number, bufs: readonly Uint8Array[], count: number, token: number, link: boolean): void {
    this.start('writev', lba, bufs, count, token, link);
  }

  sync(token: number): void {
    this.start('sync', 0, [], 0, token, false);
  }

  /** Completes up to `max` held operations in order (deferred mode); returns how many. */
  completeDeferred(max = Number.POSITIVE_INFINITY): number {
    let n = 0;
    while (n < max && this.waiting.length > 0) {
      const d = this.waiting.shift()!;
      this.run(d.op, d.lba, d.bufs, d.bufs.length, d.token, d.link);
      n++;
    }
    return n;
  }

  close(): void {
    this.closed = true;
  }

  private start(
    op: StoreOp,
    lba: number,
    bufs: readonly Uint8Array[],
    count: number,
    token: number,
    link: boolean,
  ): void {
    if (this.deferred) {
      // The engine reuses its array of views: keep a copy of the list (the views stay valid).
      this.waiting.push({ op, lba, bufs: bufs.slice(0, count), token, link });
      return;
    }
    this.run(op, lba, bufs, count, token, link);
  }

  private run(
    op: StoreOp,
    lba: number,
    bufs: readonly Uint8Array[],
    count: number,
    token: number,
    link: boolean,
  ): void {
    const broken = this.chainBroken;
    this.chainBroken = false;
    if (broken) {
      this.chainBroken = link;
      this.done(token, -Errno.ECANCELED);
      return;
    }
    const result = this.execute(op, lba, bufs, count);
    if (result < 0 && link) this.chainBroken = true;
    this.done(token, result);
  }

  /** Bytes moved (sync: 0), or −errno. */
  private execute(op: StoreOp, lba: number, bufs: readonly Uint8Array[], count: number): number {
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const n = bufs[i]!.length;
      if (n % SECTOR_SIZE !== 0) return -Errno.EINVAL;
      bytes += n;
    }
    const sectors = bytes / SECTOR_SIZE;
    this.onEvent?.(op, lba, sectors);
    if (this.closed) return -Errno.EBADF;
    if (op === 'sync') {
      if (this.fault?.(op, 0, 0)) return -this.faultErrno;
      this.syncs++;
      return 0;
    }
    if (!Number.isInteger(lba) || lba < 0 || lba + sectors > this.sectors) return -Errno.EINVAL;
    if (op === 'writev' && this.readOnly) return -Errno.EROFS;
    if (this.faultLbas.size > 0) {
      for (let s = lba; s < lba + sectors; s++) if (this.faultLbas.has(s)) return -Errno.EIO;
    }
    if (this.fault?.(op, lba, sectors)) return -this.faultErrno;
    let off = lba * SECTOR_SIZE;
    if (op === 'readv') {
      this.readvCalls++;
      for (let i = 0; i < count; i++) {
        const b = bufs[i]!;
        this.data.copy(b, 0, off, off + b.length);
        off += b.length;
      }
      this.sectorsRead += sectors;
    } else {
      this.writevCalls++;
      for (let i = 0; i < count; i++) {
        const b = bufs[i]!;
        this.data.set(b, off);
        off += b.length;
      }
      this.sectorsWritten += sectors;
    }
    return bytes;
  }
}
