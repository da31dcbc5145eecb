/**
 * slow-fs (support/slow-fs/slow-fs.c) is a real slow and failing disk, mounted by the tests:
 * - files written through the mount read back and are in the backing directory;
 * - fdatasync on the mount takes at least the configured delay, fsync on the normal disk does not,
 *   and the delay changes at runtime;
 * - a sleeping fsync holds up nothing else on the mount (multi-threaded daemon);
 * - injected EIO/ENOSPC on write, EIO on fsync and on read reach the caller as those errno codes,
 *   and everything works again once they are reset;
 * - unmount leaves no mount and no process behind, even when the daemon was killed.
 */
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isMounted, mountSlowFs, type SlowFs, slowFsSkipReason } from '../helpers/slow-fs.js';

const skip = slowFsSkipReason();

/** Milliseconds `fn` takes. */
function timed(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** fdatasync of `fd` `n` times, each after a 4 KiB write so there is something to sync. */
function syncTimes(fd: number, n: number): number[] {
  const block = Buffer.alloc(4096, 0x5a);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    writeSync(fd, block, 0, block.length, i * 4096);
    out.push(timed(() => fdatasyncSync(fd)));
  }
  return out;
}

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
}

describe.skipIf(skip)('slow-fs', () => {
  let fs: SlowFs;
  let plain: string;
  const fds: number[] = [];
  const openFd = (path: string, flags = 'w+') => {
    const fd = openSync(path, flags);
    fds.push(fd);
    return fd;
  };
  beforeAll(async () => {
    fs = await mountSlowFs({ fsyncDelayMs: 20 });
    plain = mkdtempSync(join(tmpdir(), 'aoegw-slowfs-plain-'));
  });
  afterEach(async () => {
    for (const fd of fds.splice(0)) closeSync(fd);
    await fs.set({ fsyncDelayMs: 20, failWrite: 'none', failFsync: 'none', failRead: 'none' });
  });
  afterAll(async () => {
    await fs?.unmount();
    if (plain) rmSync(plain, { recursive: true, force: true });
  });

  it('mounts as fuse.slowfs over its backing directory, with the settings it was given', async () => {
    expect(isMounted(fs.dir)).toBe(true);
    const line = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === fs.dir);
    expect(line).toContain(' - fuse.slowfs ');
    expect(await fs.settings()).toEqual({
      fsyncDelayMs: 20,
      writeDelayMs: 0,
      readDelayMs: 0,
      failWrite: 'none',
      failFsync: 'none',
      failRead: 'none',
    });
  });

  it('reads back what was written through it, and the data is in the backing directory', async () => {
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
    const before = await fs.stats();
    writeFileSync(join(fs.dir, 'a.img'), data);
    expect(readFileSync(join(fs.dir, 'a.img')).equals(data)).toBe(true);
    expect(readFileSync(join(fs.backingDir, 'a.img')).equals(data)).toBe(true);
    expect(statSync(join(fs.dir, 'a.img')).size).toBe(data.length);
    // The control file answers by name but is not listed.
    expect(readdirSync(fs.dir)).toEqual(['a.img']);
    const after = await fs.stats();
    expect(after.bytesWritten - before.bytesWritten).toBe(data.length);
    expect(after.writes).toBeGreaterThan(before.writes);
  });

  it('makes fdatasync take at least the configured 20 ms; fsync on the normal disk does not', async () => {
    const before = await fs.stats();
    const slow = syncTimes(openFd(join(fs.dir, 'sync.img')), 5);
    const fast = syncTimes(openFd(join(plain, 'sync.img')), 5);
    for (const t of slow) expect(t).toBeGreaterThanOrEqual(20);
    // The normal disk takes a few ms, more when the shared machine is busy: its fastest is below
    // the delay, and it is faster than slow-fs as a rule.
    expect(Math.min(...fast)).toBeLessThan(20);
    expect(median(fast)).toBeLessThan(median(slow));
    const after = await fs.stats();
    expect(after.datasyncs - before.datasyncs).toBe(5);
    expect(after.fsyncs - before.fsyncs).toBe(5);
    // fsync (not only fdatasync) is slow too.
    expect(timed(() => fsyncSync(fds[0]!))).toBeGreaterThanOrEqual(20);
    console.log(
      `fdatasync ms: slow-fs (20 ms delay) ${slow.map((t) => t.toFixed(1)).join(' ')}; ` +
        `normal disk ${fast.map((t) => t.toFixed(1)).join(' ')}`,
    );
  });

  it('changes the delay at runtime, without remounting', async () => {
    const fd = openFd(join(fs.dir, 'runtime.img'));
    await fs.set({ fsyncDelayMs: 150 });
    expect((await fs.settings()).fsyncDelayMs).toBe(150);
    for (const t of syncTimes(fd, 2)) expect(t).toBeGreaterThanOrEqual(150);
    await fs.set({ fsyncDelayMs: 0 });
    const none = syncTimes(fd, 5);
    expect(Math.min(...none)).toBeLessThan(20);
    console.log(`fdatasync ms on slow-fs with no delay: ${none.map((t) => t.toFixed(1)).join(' ')}`);
  });

  it('holds up nothing else while one fsync sleeps', async () => {
    writeFileSync(join(fs.dir, 'other.img'), Buffer.alloc(65536, 1));
    const other = openFd(join(fs.dir, 'other.img'), 'r+');
    const slowFile = await open(join(fs.dir, 'slow.img'), 'w+');
    try {
      await slowFile.write(Buffer.alloc(4096, 2), 0, 4096, 0);
      await fs.set({ fsyncDelayMs: 1000 });
      const t0 = performance.now();
      // On the libuv thread pool, so this thread is free to use the mount meanwhile.
      const sleeping = slowFile.datasync().then(() => performance.now() - t0);
      const end = Date.now() + 2000;
      while ((await fs.stats()).fsyncsInFlight === 0 && Date.now() < end);
      expect((await fs.stats()).fsyncsInFlight).toBe(1);
      const buf = Buffer.alloc(4096);
      const others = [
        timed(() => writeSync(other, Buffer.alloc(4096, 3), 0, 4096, 8192)),
        timed(() => readSync(other, buf, 0, 4096, 16384)),
        timed(() => statSync(join(fs.dir, 'slow.img'))),
        timed(() => readdirSync(fs.dir)),
        timed(() => writeFileSync(join(fs.dir, 'new.img'), 'x')),
      ];
      const stillSleeping = (await fs.stats()).fsyncsInFlight;
      const slowMs = await sleeping;
      expect(stillSleeping).toBe(1);
      expect(slowMs).toBeGreaterThanOrEqual(1000);
      // Each is far shorter than the sleeping fsync (the bound leaves room for a busy machine).
      for (const t of others) expect(t).toBeLessThan(500);
      expect(readFileSync(join(fs.backingDir, 'other.img')).subarray(8192, 8196)).toEqual(Buffer.alloc(4, 3));
    } finally {
      await slowFile.close();
    }
  });

  it('returns injected EIO and ENOSPC from write, EIO from fsync and read, and recovers on reset', async () => {
    const path = join(fs.dir, 'fail.img');
    writeFileSync(path, Buffer.alloc(65536, 9));
    const fd = openFd(path, 'r+');
    const block = Buffer.alloc(4096, 0xab);
    const before = await fs.stats();

    await fs.set({ failWrite: 'EIO' });
    expect(errnoOf(() => writeSync(fd, block, 0, 4096, 0))).toBe('EIO');
    await fs.set({ failWrite: 'ENOSPC' });
    expect(errnoOf(() => writeSync(fd, block, 0, 4096, 0))).toBe('ENOSPC');
    expect(errnoOf(() => writeFileSync(join(fs.dir, 'full.img'), block))).toBe('ENOSPC');
    // Nothing reached the disk, and the page cache does not pretend otherwise.
    expect(readFileSync(join(fs.backingDir, 'fail.img')).subarray(0, 4096)).toEqual(Buffer.alloc(4096, 9));
    const back = Buffer.alloc(4096);
    readSync(fd, back, 0, 4096, 0);
    expect(back).toEqual(Buffer.alloc(4096, 9));
    await fs.set({ failWrite: 'none' });
    expect(writeSync(fd, block, 0, 4096, 0)).toBe(4096);

    await fs.set({ failFsync: 'EIO', fsyncDelayMs: 0 });
    expect(errnoOf(() => fdatasyncSync(fd))).toBe('EIO');
    expect(errnoOf(() => fsyncSync(fd))).toBe('EIO');
    await fs.set({ failFsync: 'none' });
    expect(errnoOf(() => fdatasyncSync(fd))).toBeUndefined();

    // Setting a read failure drops the cached pages, so the read reaches the daemon.
    await fs.set({ failRead: 'EIO' });
    expect(errnoOf(() => readSync(fd, back, 0, 4096, 0))).toBe('EIO');
    await fs.set({ failRead: 'none' });
    readSync(fd, back, 0, 4096, 0);
    expect(back).toEqual(block);
    expect(readFileSync(join(fs.backingDir, 'fail.img')).subarray(0, 4096)).toEqual(block);

    const after = await fs.stats();
    expect(after.writeErrors - before.writeErrors).toBeGreaterThanOrEqual(3);
    expect(after.fsyncErrors - before.fsyncErrors).toBe(2);
    expect(after.readErrors - before.readErrors).toBeGreaterThanOrEqual(1);
  });

  it('shows one snapshot of its counters per open of the control file', async () => {
    const control = openFd(join(fs.dir, '.slowfs'), 'r');
    const readAt0 = () => {
      const b = Buffer.alloc(4096);
      return b.subarray(0, readSync(control, b, 0, b.length, 0)).toString();
    };
    expect(statSync(join(fs.dir, '.slowfs')).size).toBe(0); // like /proc: read to the end
    const first = readAt0();
    writeFileSync(join(fs.dir, 'count.img'), 'more writes');
    expect(readAt0()).toBe(first);
    expect((await fs.stats()).writes).toBeGreaterThan(Number(/^writes=(\d+)$/m.exec(first)![1]));
  });

  it('rejects a bad control line as a whole and keeps its settings', async () => {
    await expect(fs.set({ fsyncDelayMs: 5, failWrite: 'EBADF' as 'EIO' })).rejects.toThrow(/EINVAL/);
    const s = await fs.settings();
    expect(s.fsyncDelayMs).toBe(20);
    expect(s.failWrite).toBe('none');
    expect(fs.output()).toContain("bad control line 'fail_write=EBADF'");
  });
});

describe.skipIf(skip)('slow-fs unmount', () => {
  const gone = (pid: number) => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  };

  it('leaves no mount, no process and no directories', async () => {
    const fs = await mountSlowFs({ fsyncDelayMs: 50 });
    writeFileSync(join(fs.dir, 'x'), 'x');
    const fd = openSync(join(fs.dir, 'x'), 'r'); // still open at unmount: a lazy unmount copes
    await fs.unmount();
    // The descriptor is released, but its FUSE flush finds the connection gone (ENOTCONN).
    errnoOf(() => closeSync(fd));
    expect(isMounted(fs.dir)).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(fs.dir);
    expect(gone(fs.pid)).toBe(true);
    expect(existsSync(fs.backingDir)).toBe(false);
  });

  it('cleans up after a daemon that was killed with SIGKILL', async () => {
    const fs = await mountSlowFs();
    process.kill(fs.pid, 'SIGKILL');
    await fs.unmount();
    expect(isMounted(fs.dir)).toBe(false);
    expect(gone(fs.pid)).toBe(true);
    expect(existsSync(fs.dir)).toBe(false);
  });
});
