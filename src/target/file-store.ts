/**
 * BlockStore over a regular file or a block device, with the export's durability mode:
 *
 * - `sync` (default): a write is acknowledged only when it is on stable storage: the engine links
 *   each commit group's writes to one fdatasync and answers them when it succeeded.
 * - `writeback`: acknowledged after the write completed (page cache). UNSAFE: a host crash loses
 *   acknowledged writes, and the Linux initiator never sends FLUSH CACHE. FLUSH CACHE still syncs.
 * - `direct`: O_DIRECT (no page-cache pollution, no double caching with the initiator's own
 *   cache), plus an fdatasync per group to flush the device cache. With a ring the staging slots
 *   are aligned and used as they are; without one, through an aligned bounce buffer.
 *
 * With an IoRing (the server's) every operation goes to the kernel asynchronously: the event loop
 * never waits for the disk, a slow fdatasync holds only its own export's requests, and the
 * completions reach the engine through the ring's handler (the server wires it), not through
 * attach(). Without one (io_uring unavailable) the operations run synchronously and complete
 * inside the call, as before: a slow disk then delays the whole process. A file on tmpfs or ramfs
 * runs synchronously even with a ring when asked (`memoryFsSync`, blockIo 'auto'): its I/O is a
 * memory copy that never waits for a device, and io_uring would only move it to a worker thread.
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
  statfsSync,
  writevSync,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import { SECTOR_SIZE } from '../aoe/constants.js';
import { AoegwError } from '../errors.js';
import { nativeAddon } from '../io/native.js';
import { type BlockStore, Errno, type StoreDone } from './block-store.js';
import type { Durability } from './spec.js';

export interface FileStoreOptions {
  path: string;
  readOnly?: boolean;
  durability?: Durability;
  /** Byte offset of the export inside the file/device (multiple of 512). */
  offset?: number;
  /** Bytes to export (default: the rest of the file/device after offset; multiple of 512). */
  length?: number;
  /** Asynchronous kernel I/O (the server's IoRing); without it, operations run synchronously. */
  ring?: RingIo;
  /**
   * With a ring, a regular file on tmpfs or ramfs runs synchronously anyway (blockIo 'auto'):
   * those have no non-blocking path, so io_uring would hand every op to an io-wq worker, where a
   * synchronous call is one copy from the page cache.
   */
  memoryFsSync?: boolean;
}

/** What a FileStore needs of an IoRing (src/io/io-ring.ts). */
export interface RingIo {
  readv(
    fd: number,
    pos: number,
    bufs: readonly Uint8Array[],
    count: number,
    token: number,
    link?: boolean,
  ): void;
  writev(
    fd: number,
    pos: number,
    bufs: readonly Uint8Array[],
    count: number,
    token: number,
    link?: boolean,
  ): void;
  fdatasync(fd: number, token: number, link?: boolean): void;
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

/** statfs f_type of the memory-backed file systems (linux/magic.h); devtmpfs reports tmpfs's. */
const MEMORY_FS = new Map<number, string>([
  [0x01021994, 'tmpfs'],
  [0x858458f6, 'ramfs'],
]);

/** Largest single request the bounce buffer serves in direct mode without a ring (one coalesced run). */
const DIRECT_BOUNCE_BYTES = 4 << 20;
const SYNC_READ = 1;
const SYNC_WRITE = 2;
const SYNC_DATASYNC = 3;
const NO_BUFS: readonly Uint8Array[] = [];

export class FileStore implements BlockStore {
  readonly sectors: number;
  readonly readOnly: boolean;
  readonly durability: Durability;
  readonly syncsWrites: boolean;
  readonly description: string;
  readonly identity: StoreIdentity;
  /** Operations run synchronously, inside the call (no ring, or a memory-backed file: see synchronousWhy). */
  readonly synchronous: boolean;
  /** Why a store given a ring runs synchronously, e.g. 'tmpfs: io_uring would punt every op to a worker'. */
  readonly synchronousWhy: string | undefined;
  syncs = 0;
  private fd: number;
  private readonly base: number;
  private readonly ring: RingIo | undefined;
  private done: StoreDone = () => {};
  /** Synchronous fallback: a linked operation failed, the next one is cancelled. */
  private chainBroken = false;
  private readonly bounce: Buffer | undefined;
  private readonly vectors: Uint8Array[][] = [];

  constructor(o: FileStoreOptions) {
    this.readOnly = o.readOnly ?? false;
    this.durability = o.durability ?? 'sync';
    this.syncsWrites = this.durability !== 'writeback';
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
    let syncWhy: string | undefined;
    try {
      const { size, st } = deviceSize(this.fd, o.path);
      // Block devices keep the ring: their node lives on devtmpfs, their bytes do not.
      const fs = o.ring && o.memoryFsSync && st.isFile() ? memoryFsOf(this.fd) : undefined;
      if (fs) syncWhy = `${fs}: io_uring would punt every op to a worker`;
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
    this.ring = syncWhy === undefined ? o.ring : undefined;
    this.synchronous = this.ring === undefined;
    this.synchronousWhy = syncWhy;
    if (this.durability === 'direct' && this.ring === undefined)
      this.bounce = Buffer.from(nativeAddon().allocAligned(DIRECT_BOUNCE_BYTES, 4096));
    const io = this.ring ? '' : syncWhy ? `, synchronous I/O; ${syncWhy}` : ', synchronous I/O';
    this.description = `${o.path}${offset ? `@${offset}` : ''} (${this.durability}${this.readOnly ? ', read-only' : ''}${io})`;
  }

  attach(done: StoreDone): void {
    this.done = done;
  }

  read(lba: number, bufs: readonly Uint8Array[], count: number, token: number): void {
    const bytes = this.check(lba, bufs, count);
    if (bytes < 0) this.finish(token, bytes, false);
    else if (this.ring) this.ring.readv(this.fd, this.base + lba * SECTOR_SIZE, bufs, count, token);
    else this.runSync(token, false, SYNC_READ, this.base + lba * SECTOR_SIZE, bufs, count);
  }

  write(lba: number, bufs: readonly Uint8Array[], count: number, token: number, link: boolean): void {
    let bytes = this.check(lba, bufs, count);
    if (bytes >= 0 && this.readOnly) bytes = -Errno.EROFS;
    if (bytes < 0) this.finish(token, bytes, link);
    else if (this.ring) this.ring.writev(this.fd, this.base + lba * SECTOR_SIZE, bufs, count, token, link);
    else this.runSync(token, link, SYNC_WRITE, this.base + lba * SECTOR_SIZE, bufs, count);
  }

  sync(token: number): void {
    if (this.fd < 0) this.finish(token, -Errno.EBADF, false);
    else if (this.ring) {
      this.syncs++;
      this.ring.fdatasync(this.fd, token);
    } else this.runSync(token, false, SYNC_DATASYNC, 0, NO_BUFS, 0);
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

  /** Bytes of bufs[0..count), or −errno: the store is the last guard of the export's window. */
  private check(lba: number, bufs: readonly Uint8Array[], count: number): number {
    if (this.fd < 0) return -Errno.EBADF;
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const n = bufs[i]!.length;
      if (n % SECTOR_SIZE !== 0) return -Errno.EINVAL;
      bytes += n;
    }
    if (!Number.isInteger(lba) || lba < 0 || lba + bytes / SECTOR_SIZE > this.sectors) return -Errno.EINVAL;
    return bytes;
  }

  /** A failure found before the kernel saw the operation, completed as the kernel would. */
  private finish(token: number, result: number, link: boolean): void {
    if (this.ring === undefined) this.chainBroken = link && result < 0;
    this.done(token, result);
  }

  /** Synchronous fallback: runs the operation now and completes it (a short transfer stays short: the engine fails it). */
  private runSync(
    token: number,
    link: boolean,
    op: number,
    pos: number,
    bufs: readonly Uint8Array[],
    count: number,
  ): void {
    if (this.chainBroken) {
      this.chainBroken = link;
      this.done(token, -Errno.ECANCELED);
      return;
    }
    let result: number;
    try {
      if (op === SYNC_DATASYNC) {
        fdatasyncSync(this.fd);
        this.syncs++;
        result = 0;
      } else {
        const list = this.vector(bufs, count);
        if (op === SYNC_READ)
          result = this.bounce ? this.directRead(pos, list) : readvSync(this.fd, list as Uint8Array[], pos);
        else
          result = this.bounce ? this.directWrite(pos, list) : writevSync(this.fd, list as Uint8Array[], pos);
      }
    } catch (e) {
      result = errnoOf(e);
    }
    this.chainBroken = link && result < 0;
    this.done(token, result);
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

  private directRead(pos: number, list: readonly Uint8Array[]): number {
    const bounce = this.bounce!;
    let total = 0;
    let i = 0;
    while (i < list.length) {
      // Fill the bounce buffer with as many whole destination buffers as fit, in one pread.
      let bytes = 0;
      let j = i;
      while (j < list.length && bytes + list[j]!.length <= bounce.length) bytes += list[j++]!.length;
      if (j === i) return -Errno.EINVAL;
      const got = readvSync(this.fd, [bounce.subarray(0, bytes)], pos);
      if (got !== bytes) return total + Math.max(0, got);
      let off = 0;
      for (; i < j; i++) {
        const dst = list[i]!;
        bounce.copy(dst, 0, off, off + dst.length);
        off += dst.length;
      }
      pos += bytes;
      total += bytes;
    }
    return total;
  }

  private directWrite(pos: number, list: readonly Uint8Array[]): number {
    const bounce = this.bounce!;
    let total = 0;
    let i = 0;
    while (i < list.length) {
      let bytes = 0;
      while (i < list.length && bytes + list[i]!.length <= bounce.length) {
        bounce.set(list[i]!, bytes);
        bytes += list[i++]!.length;
      }
      if (bytes === 0) return -Errno.EINVAL;
      const done = writevSync(this.fd, [bounce.subarray(0, bytes)], pos);
      if (done !== bytes) return total + Math.max(0, done);
      pos += bytes;
      total += bytes;
    }
    return total;
  }
}

/** −errno of a failed synchronous call (EIO when the error names no errno). */
function errnoOf(e: unknown): number {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const n = code ? (osConstants.errno as Record<string, number>)[code] : undefined;
  return -(n ?? Errno.EIO);
}

/** 'tmpfs' or 'ramfs' when the open file lives on one (statfs through /proc: Node has no fstatfs). */
function memoryFsOf(fd: number): string | undefined {
  try {
    return MEMORY_FS.get(statfsSync(`/proc/self/fd/${fd}`).type >>> 0);
  } catch {
    return undefined;
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
