/**
 * BlockStore over a Buffer: for unit tests, benchmarks of the engine alone, and scratch exports.
 * Counts every call, can report each call to an event hook (tests use it to check the order of
 * commit and acknowledgements) and can inject I/O errors.
 */
import { SECTOR_SIZE } from '../aoe/constants.js';
import { AoegwError } from '../errors.js';
import type { BlockStore } from './block-store.js';

export type StoreOp = 'readv' | 'writev' | 'commit' | 'flush';

export interface MemoryStoreOptions {
  readOnly?: boolean;
  description?: string;
  /** Reads or writes touching any of these LBAs throw ERR_STORE_IO. */
  faultLbas?: readonly number[];
  /** Called before every operation (lba/sectors are 0 for commit and flush). */
  onEvent?: (op: StoreOp, lba: number, sectors: number) => void;
}

export class MemoryStore implements BlockStore {
  readonly data: Buffer;
  readonly sectors: number;
  readonly readOnly: boolean;
  readonly description: string;
  /** LBAs whose reads/writes fail; mutable at any time. */
  readonly faultLbas: Set<number>;
  /** When set and returning true, the operation throws ERR_STORE_IO (also for commit/flush). */
  fault: ((op: StoreOp, lba: number, sectors: number) => boolean) | undefined;
  onEvent: ((op: StoreOp, lba: number, sectors: number) => void) | undefined;
  readvCalls = 0;
  writevCalls = 0;
  commits = 0;
  flushes = 0;
  sectorsRead = 0;
  sectorsWritten = 0;
  closed = false;

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
    this.description = opts.description ?? `memory ${this.sectors} sectors${this.readOnly ? ' (ro)' : ''}`;
    this.faultLbas = new Set(opts.faultLbas ?? []);
    this.onEvent = opts.onEvent;
  }

  private check(op: StoreOp, lba: number, bufs: readonly Uint8Array[], count: number): number {
    if (this.closed) throw new AoegwError('ERR_CLOSED', `${this.description} is closed`);
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const n = bufs[i]!.length;
      if (n % SECTOR_SIZE !== 0)
        throw new AoegwError('ERR_STORE_IO', `buffer of ${n} bytes is not whole sectors`);
      bytes += n;
    }
    const sectors = bytes / SECTOR_SIZE;
    this.onEvent?.(op, lba, sectors);
    if (!Number.isInteger(lba) || lba < 0 || lba + sectors > this.sectors) {
      throw new AoegwError('ERR_STORE_RANGE', `${op} of ${sectors} sectors at ${lba} past ${this.sectors}`);
    }
    if (this.faultLbas.size > 0) {
      for (let s = lba; s < lba + sectors; s++) {
        if (this.faultLbas.has(s)) throw new AoegwError('ERR_STORE_IO', `injected ${op} error at LBA ${s}`);
      }
    }
    if (this.fault?.(op, lba, sectors)) throw new AoegwError('ERR_STORE_IO', `injected ${op} error`);
    return sectors;
  }

  readv(lba: number, bufs: readonly Uint8Array[], count: number): void {
    const sectors = this.check('readv', lba, bufs, count);
    this.readvCalls++;
    let off = lba * SECTOR_SIZE;
    for (let i = 0; i < count; i++) {
      const b = bufs[i]!;
      this.data.copy(b, 0, off, off + b.length);
      off += b.length;
    }
    this.sectorsRead += sectors;
  }

  writev(lba: number, bufs: readonly Uint8Array[], count: number): void {
    if (this.readOnly) throw new AoegwError('ERR_READ_ONLY', `${this.description} is read-only`);
    const sectors = this.check('writev', lba, bufs, count);
    this.writevCalls++;
    let off = lba * SECTOR_SIZE;
    for (let i = 0; i < count; i++) {
      const b = bufs[i]!;
      this.data.set(b, off);
      off += b.length;
    }
    this.sectorsWritten += sectors;
  }

  commit(): void {
    this.onEvent?.('commit', 0, 0);
    if (this.fault?.('commit', 0, 0)) throw new AoegwError('ERR_STORE_IO', 'injected commit error');
    this.commits++;
  }

  flush(): void {
    this.onEvent?.('flush', 0, 0);
    if (this.fault?.('flush', 0, 0)) throw new AoegwError('ERR_STORE_IO', 'injected flush error');
    this.flushes++;
  }

  close(): void {
    this.closed = true;
  }
}
