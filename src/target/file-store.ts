/**
 * BlockStore over a regular file or a block device, with the export's durability mode:
 *
 * - `sync` (default): a write is acknowledged only when it is on stable storage. The engine calls
 *   commit() once per receive batch that wrote something (group commit), before any write reply of
 *   that batch is sent; commit() is fdatasync.
 * - `writeback`: acknowledged after the write syscall (page cache). UNSAFE: a host crash loses
 *   acknowledged writes, and the Linux initiator never sends FLUSH CACHE. FLUSH CACHE still syncs.
 * - `direct`: O_DIRECT through an aligned bounce buffer (no page-cache pollution, no double
 *   caching with the initiator's own cache), plus fdatasync per batch to flush the device cache.
 *
 * I/O is synchronous on purpose: the target runs one event loop, each receive batch is served
 * completely before the next, and positioned I/O against the page cache costs less than a
 * thread-pool round trip. A slow disk therefore delays the next batch (frames wait in the socket
 * buffer, which makes the next group commit bigger), never reorders an acknowledgement.
 */
import {
  type BigIntStats,
  closeSync,
  constants,
  fdatasyncSync,
  fstatSync,
  openSync,
  readFileSync,
  readvSync,
  writevSync,
} from 'node:fs';
import { SECTOR_SIZE } from '../aoe/constants.js';
import { AoegwError } from '../errors.js';
import { nativeAddon } from '../io/native.js';
import type { BlockStore } from './block-store.js';
import type { Durability } from './spec.js';

export interface FileStoreOptions {
  path: string;
  readOnly?: boolean;
  durability?: Durability;
  /** Byte offset of the export inside the file/device (multiple of 512). */
  offset?: number;
  /** Bytes to export (default: the rest of the file/device after offset; multiple of 512). */
  length?: number;
}

/**
 * What a store's bytes are: the same file (st_dev, st_ino) or block device (st_rdev) reached
 * through any path or symlink has the same identity. `start`/`end` are the exported byte window.
 */
export interface StoreIdentity {
  kind: 'file' | 'block';
  dev: bigint;
  ino: bigint;
  rdev: bigint;
  start: number;
  end: number;
}

/** True when two identities are the same bytes with overlapping windows. */
export function overlaps(a: StoreIdentity, b: StoreIdentity): boolean {
  const same =
    a.kind === b.kind && (a.kind === 'block' ? a.rdev === b.rdev : a.dev === b.dev && a.ino === b.ino);
  return same && a.start < b.end && b.start < a.end;
}

/** Largest single request the bounce buffer serves in direct mode (one coalesced run). */
const DIRECT_BOUNCE_BYTES = 4 << 20;

export class FileStore implements BlockStore {
  readonly sectors: number;
  readonly readOnly: boolean;
  readonly durability: Durability;
  readonly description: string;
  readonly identity: StoreIdentity;
  commits = 0;
  flushes = 0;
  private fd: number;
  private readonly base: number;
  private dirty = false;
  private readonly bounce: Buffer | undefined;
  private readonly vectors: Uint8Array[][] = [];

  constructor(o: FileStoreOptions) {
    this.readOnly = o.readOnly ?? false;
    this.durability = o.durability ?? 'sync';
    const offset = o.offset ?? 0;
    if (offset % SECTOR_SIZE !== 0 || offset < 0) {
      throw new AoegwError(
        'ERR_STORE_OPEN',
        `export offset ${offset} of ${o.path} is not a non-negative multiple of 512`,
      );
    }
    let flags = this.readOnly ? constants.O_RDONLY : constants.O_RDWR;
    if (this.durability === 'direct') flags |= constants.O_DIRECT;
    try {
      this.fd = openSync(o.path, flags);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why =
        err.code === 'EINVAL' && this.durability === 'direct'
          ? 'the file system does not support O_DIRECT (use sync)'
          : err.message;
      throw new AoegwError('ERR_STORE_OPEN', `cannot open export backing ${o.path}: ${why}`, { cause: e });
    }
    try {
      const { size, st } = deviceSize(this.fd, o.path);
      const length = o.length ?? size - offset;
      if (length % SECTOR_SIZE !== 0 || length <= 0 || offset + length > size) {
        throw new AoegwError(
          'ERR_STORE_OPEN',
          `export of ${o.path}: offset ${offset} + length ${length} does not fit its ${size} bytes in whole sectors`,
        );
      }
      this.base = offset;
      this.sectors = length / SECTOR_SIZE;
      this.identity = {
        kind: st.isBlockDevice() ? 'block' : 'file',
        dev: st.dev,
        ino: st.ino,
        rdev: st.rdev,
        start: offset,
        end: offset + length,
      };
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
    if (this.durability === 'direct')
      this.bounce = Buffer.from(nativeAddon().allocAligned(DIRECT_BOUNCE_BYTES, 4096));
    this.description = `${o.path}${offset ? `@${offset}` : ''} (${this.durability}${this.readOnly ? ', read-only' : ''})`;
  }

  /**
   * Bytes of bufs[0..count) after the BlockStore checks: the store is the last guard against I/O
   * outside the export's window (offset, length), whatever its caller checked.
   */
  private check(op: 'readv' | 'writev', lba: number, bufs: readonly Uint8Array[], count: number): number {
    if (this.fd < 0) throw new AoegwError('ERR_CLOSED', `${this.description} is closed`);
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const n = bufs[i]!.length;
      if (n % SECTOR_SIZE !== 0)
        throw new AoegwError('ERR_STORE_IO', `${op}: buffer of ${n} bytes is not whole sectors`);
      bytes += n;
    }
    const sectors = bytes / SECTOR_SIZE;
    if (!Number.isInteger(lba) || lba < 0 || lba + sectors > this.sectors) {
      throw new AoegwError(
        'ERR_STORE_RANGE',
        `${op} of ${sectors} sectors at LBA ${lba} is outside the ${this.sectors} sectors of ${this.description}`,
      );
    }
    return bytes;
  }

  readv(lba: number, bufs: readonly Uint8Array[], count: number): void {
    const want = this.check('readv', lba, bufs, count);
    const list = this.vector(bufs, count);
    const pos = this.base + lba * SECTOR_SIZE;
    if (this.bounce) {
      this.directRead(pos, list);
      return;
    }
    const got = readvSync(this.fd, list as Uint8Array[], pos);
    if (got !== want)
      throw new AoegwError('ERR_STORE_IO', `short read at LBA ${lba}: ${got} of ${want} bytes`);
  }

  writev(lba: number, bufs: readonly Uint8Array[], count: number): void {
    if (this.readOnly) throw new AoegwError('ERR_READ_ONLY', `${this.description} is read-only`);
    const want = this.check('writev', lba, bufs, count);
    const list = this.vector(bufs, count);
    const pos = this.base + lba * SECTOR_SIZE;
    this.dirty = true;
    if (this.bounce) {
      this.directWrite(pos, list);
      return;
    }
    const done = writevSync(this.fd, list as Uint8Array[], pos);
    if (done !== want)
      throw new AoegwError('ERR_STORE_IO', `short write at LBA ${lba}: ${done} of ${want} bytes`);
  }

  /**
   * bufs[0..count) as an array of exactly `count` (readvSync/writevSync use the whole array): one
   * reused array per count instead of a slice per call (the engine passes its longer reusable array).
   */
  private vector(bufs: readonly Uint8Array[], count: number): readonly Uint8Array[] {
    if (count === bufs.length) return bufs;
    let v = this.vectors[count];
    if (v === undefined) {
      v = new Array<Uint8Array>(count);
      this.vectors[count] = v;
    }
    for (let i = 0; i < count; i++) v[i] = bufs[i]!;
    return v;
  }

  /** End of a batch that wrote: durable now in sync and direct modes. */
  commit(): void {
    if (!this.dirty || this.durability === 'writeback') return;
    fdatasyncSync(this.fd);
    this.dirty = false;
    this.commits++;
  }

  flush(): void {
    if (this.readOnly) return;
    fdatasyncSync(this.fd);
    this.dirty = false;
    this.flushes++;
  }

  close(): void {
    if (this.fd < 0) return;
    try {
      if (!this.readOnly) fdatasyncSync(this.fd);
    } finally {
      closeSync(this.fd);
      this.fd = -1;
    }
  }

  private directRead(pos: number, list: readonly Uint8Array[]): void {
    const bounce = this.bounce!;
    let i = 0;
    while (i < list.length) {
      // Fill the bounce buffer with as many whole destination buffers as fit, in one pread.
      let bytes = 0;
      let j = i;
      while (j < list.length && bytes + list[j]!.length <= bounce.length) bytes += list[j++]!.length;
      if (j === i) throw new AoegwError('ERR_STORE_IO', 'direct I/O buffer larger than the bounce buffer');
      const got = readvSync(this.fd, [bounce.subarray(0, bytes)], pos);
      if (got !== bytes) throw new AoegwError('ERR_STORE_IO', `short direct read: ${got} of ${bytes} bytes`);
      let off = 0;
      for (; i < j; i++) {
        const dst = list[i]!;
        bounce.copy(dst, 0, off, off + dst.length);
        off += dst.length;
      }
      pos += bytes;
    }
  }

  private directWrite(pos: number, list: readonly Uint8Array[]): void {
    const bounce = this.bounce!;
    let i = 0;
    while (i < list.length) {
      let bytes = 0;
      while (i < list.length && bytes + list[i]!.length <= bounce.length) {
        bounce.set(list[i]!, bytes);
        bytes += list[i++]!.length;
      }
      if (bytes === 0)
        throw new AoegwError('ERR_STORE_IO', 'direct I/O buffer larger than the bounce buffer');
      const done = writevSync(this.fd, [bounce.subarray(0, bytes)], pos);
      if (done !== bytes)
        throw new AoegwError('ERR_STORE_IO', `short direct write: ${done} of ${bytes} bytes`);
      pos += bytes;
    }
  }
}

/** Size in bytes of a regular file, or of a block device (from sysfs: fstat reports 0 for those). */
function deviceSize(fd: number, path: string): { size: number; st: BigIntStats } {
  const st = fstatSync(fd, { bigint: true });
  if (st.isFile()) return { size: Number(st.size), st };
  if (st.isBlockDevice()) {
    const rdev = Number(st.rdev);
    const major = Math.floor(rdev / 256) & 0xfff;
    const minor = (rdev & 0xff) | ((Math.floor(rdev / 4096) & 0xfff00) >>> 0);
    const sectors = Number(readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim());
    return { size: sectors * 512, st };
  }
  throw new AoegwError('ERR_STORE_OPEN', `${path} is neither a regular file nor a block device`);
}
