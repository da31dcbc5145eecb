/**
 * IoRing against real files: tmpfs (/dev/shm), the machine's disk (/var/tmp, page cache and
 * O_DIRECT) and a 64 KiB tmpfs mounted here to run out of space. No mocks: what is checked is
 * what the kernel does, including which completions arrive inside submit() and which come later
 * through the event loop.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IoRing } from '../../../src/io/io-ring.js';
import { ringAddon } from '../../../src/io/ring-native.js';

const EBADF = 9;
const EINVAL = 22;
const ENOSPC = 28;
const ECANCELED = 125;

const shmDir = mkdtempSync('/dev/shm/aoegw-ring-');
const diskDir = mkdtempSync('/var/tmp/aoegw-ring-');
const cleanup: (() => void)[] = [];
afterEach(() => {
  while (cleanup.length > 0) cleanup.pop()!();
});
afterAll(() => {
  rmSync(shmDir, { recursive: true, force: true });
  rmSync(diskDir, { recursive: true, force: true });
});

function openRing(opts: { arenaBytes: number; entries?: number }): IoRing {
  const ring = IoRing.open(opts);
  cleanup.push(() => ring.close());
  return ring;
}

function openFile(path: string, flags: number): number {
  const fd = openSync(path, flags);
  cleanup.push(() => closeSync(fd));
  return fd;
}

/** A file of `bytes` zeros, in the page cache. */
function file(dir: string, name: string, bytes: number): string {
  const p = join(dir, name);
  writeFileSync(p, Buffer.alloc(bytes));
  readFileSync(p);
  return p;
}

/** Records every completion once, whether it came from inside submit() or from the event loop. */
function collect(ring: IoRing) {
  const results = new Map<number, number>();
  const inline = new Set<number>();
  let inSubmit = false;
  let wanted = 0;
  let wake: (() => void) | undefined;
  ring.onCompletions((tokens, res, n) => {
    for (let i = 0; i < n; i++) {
      const t = tokens[i]!;
      if (results.has(t)) throw new Error(`token ${t} completed twice`);
      results.set(t, res[i]!);
      if (inSubmit) inline.add(t);
    }
    if (wake && results.size >= wanted) wake();
  });
  return {
    results,
    inline,
    submit(): number {
      inSubmit = true;
      try {
        return ring.submit();
      } finally {
        inSubmit = false;
      }
    },
    /** Resolves once `count` completions have arrived in total. */
    until(count: number): Promise<void> {
      wanted = count;
      if (results.size >= count) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${results.size} of ${count} completions after 10 s`)),
          10_000,
        );
        wake = () => {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        };
      });
    },
  };
}

function pattern(buf: Uint8Array, seed: number): void {
  for (let i = 0; i < buf.length; i++) buf[i] = (seed * 31 + i * 7) & 0xff;
}

function expectStatsAddUp(ring: IoRing): void {
  const s = ring.stats();
  expect(s.ops).toBe(s.completions + ring.inFlight);
  expect(s.inlineCompletions).toBeLessThanOrEqual(s.completions);
  expect(s.submits).toBeLessThanOrEqual(s.ops);
}

describe('IoRing', () => {
  it('is available here (io_uring enabled)', () => {
    expect(IoRing.available()).toEqual({ ok: true });
  });

  for (const where of ['tmpfs', 'disk'] as const) {
    it(`round-trips 64 two-buffer writev/readv ops per submit on ${where}`, async () => {
      const ring = openRing({ arenaBytes: 2 << 20, entries: 64 });
      const fd = openFile(file(where === 'tmpfs' ? shmDir : diskDir, 'rt', 1 << 20), constants.O_RDWR);
      const c = collect(ring);
      const out = ring.arena.subarray(0, 1 << 20);
      const back = ring.arena.subarray(1 << 20, 2 << 20);
      for (let op = 0; op < 64; op++) {
        const a = out.subarray(op * 16384, op * 16384 + 4096);
        const b = out.subarray(op * 16384 + 4096, op * 16384 + 16384);
        pattern(a, op);
        pattern(b, op + 1000);
        ring.writev(fd, op * 16384, [a, b], 2, op);
      }
      expect(c.submit()).toBe(64);
      await c.until(64);
      for (let op = 0; op < 64; op++) expect(c.results.get(op)).toBe(16384);
      for (let op = 0; op < 64; op++) {
        const a = back.subarray(op * 16384, op * 16384 + 8192);
        const b = back.subarray(op * 16384 + 8192, op * 16384 + 16384);
        ring.readv(fd, op * 16384, [a, b], 2, 100 + op);
      }
      expect(c.submit()).toBe(64);
      await c.until(128);
      for (let op = 0; op < 64; op++) expect(c.results.get(100 + op)).toBe(16384);
      expect(back.equals(out)).toBe(true);
      expectStatsAddUp(ring);
      expect(ring.stats()).toMatchObject({ ops: 128, completions: 128, submits: 2, backlogged: 0 });
    });
  }

  it('delivers page-cache reads on the disk inside submit()', () => {
    const ring = openRing({ arenaBytes: 1 << 20 });
    const p = file(diskDir, 'cached', 1 << 20);
    const fd = openFile(p, constants.O_RDONLY);
    const c = collect(ring);
    for (let i = 0; i < 16; i++)
      ring.readv(fd, i * 4096, [ring.arena.subarray(i * 4096, i * 4096 + 4096)], 1, i);
    for (let i = 0; i < 16; i++) {
      const bufs = [ring.arena.subarray(65536 + i * 8192, 65536 + i * 8192 + 8192)];
      ring.readv(fd, i * 8192, bufs, 1, 16 + i);
    }
    expect(c.submit()).toBe(32);
    // ext4 serves cached reads without blocking: all 32 completed in the io_uring_enter itself.
    expect(c.inline.size).toBe(32);
    for (let i = 0; i < 16; i++) expect(c.results.get(i)).toBe(4096);
    for (let i = 16; i < 32; i++) expect(c.results.get(i)).toBe(8192);
    expect(ring.inFlight).toBe(0);
    expect(ring.stats().inlineCompletions).toBe(32);
  });

  it('delivers later completions (fdatasync on the disk) through the event loop', async () => {
    const ring = openRing({ arenaBytes: 1 << 20 });
    const fd = openFile(file(diskDir, 'sync', 1 << 20), constants.O_RDWR);
    const c = collect(ring);
    const buf = ring.arena.subarray(0, 65536);
    pattern(buf, 7);
    ring.writev(fd, 0, [buf], 1, 1, true);
    ring.fdatasync(fd, 2);
    expect(c.submit()).toBe(2);
    // A data sync waits for the disk: it never completes inside io_uring_enter.
    expect(c.inline.has(2)).toBe(false);
    expect(ring.inFlight).toBeGreaterThan(0);
    await c.until(2);
    expect(c.results.get(1)).toBe(65536);
    expect(c.results.get(2)).toBe(0);
    expect(ring.stats().wakeups).toBeGreaterThanOrEqual(1);
    expect(ring.inFlight).toBe(0);
    expectStatsAddUp(ring);
    expect(readFileSync(join(diskDir, 'sync')).subarray(0, 65536).equals(buf)).toBe(true);
  });

  it('cancels the rest of a link chain when an op fails (writev on an O_RDONLY fd)', async () => {
    const ring = openRing({ arenaBytes: 1 << 20 });
    const p = file(shmDir, 'chain', 65536);
    const ro = openFile(p, constants.O_RDONLY);
    const rw = openFile(p, constants.O_RDWR);
    const c = collect(ring);
    const buf = ring.arena.subarray(0, 4096);
    pattern(buf, 3);
    ring.writev(ro, 0, [buf], 1, 1, true);
    ring.fdatasync(ro, 2);
    // A chain that succeeds, and an op after the failed chain that is not part of it.
    ring.writev(rw, 8192, [buf], 1, 3, true);
    ring.fdatasync(rw, 4);
    ring.readv(rw, 8192, [ring.arena.subarray(4096, 8192)], 1, 5);
    expect(c.submit()).toBe(5);
    await c.until(5);
    expect(c.results.get(1)).toBe(-EBADF);
    expect(c.results.get(2)).toBe(-ECANCELED);
    expect(c.results.get(3)).toBe(4096);
    expect(c.results.get(4)).toBe(0);
    expect(c.results.get(5)).toBeGreaterThanOrEqual(0);
  });

  it('reads and writes O_DIRECT on the disk with arena-aligned buffers', async () => {
    const ring = openRing({ arenaBytes: 1 << 20 });
    const p = file(diskDir, 'direct', 1 << 20);
    const fd = openFile(p, constants.O_RDWR | constants.O_DIRECT);
    const c = collect(ring);
    const out = ring.arena.subarray(0, 8 * 4096);
    pattern(out, 11);
    for (let i = 0; i < 8; i++) ring.writev(fd, i * 65536, [out.subarray(i * 4096, i * 4096 + 4096)], 1, i);
    c.submit();
    await c.until(8);
    for (let i = 0; i < 8; i++) expect(c.results.get(i)).toBe(4096);
    const back = ring.arena.subarray(65536, 65536 + 8 * 4096);
    for (let i = 0; i < 8; i++) {
      // Two buffers per read: 512-byte aligned pieces are fine for a 512-byte logical block.
      const whole = back.subarray(i * 4096, i * 4096 + 4096);
      ring.readv(fd, i * 65536, [whole.subarray(0, 512), whole.subarray(512)], 2, 10 + i);
    }
    // A misaligned buffer is the op's error, not a throw.
    ring.readv(fd, 0, [ring.arena.subarray(1, 4097)], 1, 99);
    c.submit();
    await c.until(17);
    for (let i = 0; i < 8; i++) expect(c.results.get(10 + i)).toBe(4096);
    expect(c.results.get(99)).toBe(-EINVAL);
    expect(back.equals(out)).toBe(true);
    const onDisk = readFileSync(p);
    for (let i = 0; i < 8; i++) {
      expect(
        onDisk.subarray(i * 65536, i * 65536 + 4096).equals(out.subarray(i * 4096, i * 4096 + 4096)),
      ).toBe(true);
    }
  });

  it('throws ERR_IO_RING at queue time for a buffer outside the arena, and queues nothing', () => {
    const ring = openRing({ arenaBytes: 65536 });
    const fd = openFile(file(shmDir, 'outside', 65536), constants.O_RDWR);
    const stray = Buffer.alloc(4096);
    expect(() => ring.readv(fd, 0, [ring.arena.subarray(0, 4096), stray], 2, 1)).toThrow(
      expect.objectContaining({ code: 'ERR_IO_RING', message: expect.stringMatching(/buffer 1 .*arena/) }),
    );
    expect(() => ring.writev(fd, 0, [new Uint8Array(16)], 1, 1)).toThrow(/arena/);
    expect(() => ring.readv(fd, -1, [ring.arena.subarray(0, 512)], 1, 1)).toThrow(/position/);
    expect(() => ring.readv(fd, 0, [ring.arena.subarray(0, 512)], 2, 1)).toThrow(/count/);
    expect(() => ring.readv(fd, 0, [ring.arena.subarray(0, 512)], 1, 2 ** 31)).toThrow(/token/);
    expect(ring.stats().queued).toBe(0);
    expect(ring.submit()).toBe(0);
  });

  it('completes every op when more are queued than the SQ holds (auto-submit, backlog)', async () => {
    const ring = openRing({ arenaBytes: 1 << 20, entries: 8 });
    expect(ring.sqEntries).toBe(8);
    expect(ring.cqEntries).toBe(16);
    const fd = openFile(file(diskDir, 'many', 1 << 20), constants.O_RDWR);
    const c = collect(ring);
    const N = 200;
    for (let i = 0; i < N; i++) {
      const off = (i % 256) * 4096;
      ring.readv(fd, off, [ring.arena.subarray(off, off + 4096)], 1, i);
    }
    // Queueing handed full SQs to the kernel on its own, up to the in-flight cap; the rest waits.
    expect(ring.stats().ops).toBeGreaterThan(0);
    expect(ring.inFlight).toBeLessThanOrEqual(16);
    c.submit();
    await c.until(N);
    for (let i = 0; i < N; i++) expect(c.results.get(i)).toBe(4096);
    const s = ring.stats();
    expect(s.ops).toBe(N);
    expect(s.completions).toBe(N);
    expect(s.backlogged).toBeGreaterThan(0);
    expect(s.queued).toBe(0);
    expectStatsAddUp(ring);
  });

  it('keeps a link chain in one submission and refuses one longer than the SQ', async () => {
    const ring = openRing({ arenaBytes: 1 << 20, entries: 4 });
    const fd = openFile(file(shmDir, 'chains', 1 << 20), constants.O_RDWR);
    const c = collect(ring);
    const buf = ring.arena.subarray(0, 4096);
    // Chains of 3 written back to back: an SQ of 4 never splits one.
    for (let k = 0; k < 10; k++) {
      ring.writev(fd, k * 4096, [buf], 1, k * 3, true);
      ring.writev(fd, k * 4096, [buf], 1, k * 3 + 1, true);
      ring.fdatasync(fd, k * 3 + 2);
    }
    c.submit();
    await c.until(30);
    for (let k = 0; k < 10; k++) expect(c.results.get(k * 3 + 2)).toBe(0);
    for (let i = 0; i < 4; i++) ring.fdatasync(fd, 100 + i, true);
    expect(() => ring.fdatasync(fd, 104, true)).toThrow(
      expect.objectContaining({ code: 'ERR_IO_RING', message: expect.stringMatching(/link chain/) }),
    );
    // submit() ends the open chain.
    c.submit();
    await c.until(34);
    for (let i = 0; i < 4; i++) expect(c.results.get(100 + i)).toBe(0);
  });

  it('close() with nothing in flight, twice, and every use after it throws ERR_CLOSED', () => {
    const ring = IoRing.open({ arenaBytes: 65536 });
    const fd = openFile(file(shmDir, 'closed', 65536), constants.O_RDWR);
    expect(ring.inFlight).toBe(0);
    ring.close();
    ring.close();
    expect(() => ring.readv(fd, 0, [ring.arena.subarray(0, 512)], 1, 1)).toThrow(
      expect.objectContaining({ code: 'ERR_CLOSED' }),
    );
    expect(() => ring.submit()).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
    // The arena stays usable memory until it is collected.
    ring.arena.fill(1);
    expect(ring.stats()).toMatchObject({ ops: 0, completions: 0 });
  });

  it('close() waits for in-flight ops, delivers them, and cancels what was never submitted', () => {
    const ring = IoRing.open({ arenaBytes: 1 << 20, entries: 4 });
    const fd = openFile(file(diskDir, 'closing', 1 << 20), constants.O_RDWR);
    const c = collect(ring);
    const buf = ring.arena.subarray(0, 65536);
    ring.writev(fd, 0, [buf], 1, 1, true);
    ring.fdatasync(fd, 2);
    c.submit();
    ring.readv(fd, 0, [buf], 1, 3); // queued, never submitted
    ring.close();
    expect(c.results.get(1)).toBe(65536);
    expect(c.results.get(2)).toBe(0);
    expect(c.results.get(3)).toBe(-ECANCELED);
    expect(ring.inFlight).toBe(0);
    expect(ring.stats()).toMatchObject({ ops: 2, completions: 2, canceled: 1, queued: 0 });
  });

  it('survives a throwing handler: counts it, reports it to onError, keeps delivering', async () => {
    const ring = openRing({ arenaBytes: 65536 });
    const fd = openFile(file(shmDir, 'throws', 65536), constants.O_RDWR);
    const errors: unknown[] = [];
    ring.onError((e) => errors.push(e));
    let calls = 0;
    ring.onCompletions(() => {
      calls++;
      throw new Error('handler bug');
    });
    ring.fdatasync(fd, 1);
    ring.submit();
    while (ring.inFlight > 0) await new Promise((r) => setTimeout(r, 5));
    const c = collect(ring);
    ring.readv(fd, 0, [ring.arena.subarray(0, 4096)], 1, 2);
    c.submit();
    await c.until(1);
    expect(c.results.get(2)).toBe(4096);
    expect(calls).toBe(1);
    expect(errors).toHaveLength(1);
    expect(ring.stats().handlerErrors).toBe(1);
  });

  it('lets the handler queue and submit more (completions follow without another wakeup)', async () => {
    const ring = openRing({ arenaBytes: 1 << 20 });
    const fd = openFile(file(diskDir, 'nested', 1 << 20), constants.O_RDONLY);
    const seen: number[] = [];
    ring.onCompletions((tokens, results, n) => {
      for (let i = 0; i < n; i++) {
        seen.push(tokens[i]!);
        expect(results[i]).toBe(4096);
        if (tokens[i]! < 5) {
          ring.readv(fd, 0, [ring.arena.subarray(0, 4096)], 1, tokens[i]! + 1);
          ring.submit();
        }
      }
    });
    ring.readv(fd, 0, [ring.arena.subarray(0, 4096)], 1, 0);
    ring.submit();
    while (seen.length < 6) await new Promise((r) => setTimeout(r, 5));
    expect(seen).toEqual([0, 1, 2, 3, 4, 5]);
    expectStatsAddUp(ring);
  });

  it('yields to the event loop when the handler keeps resubmitting', async () => {
    const ring = openRing({ arenaBytes: 1 << 20 });
    const fd = openFile(file(diskDir, 'forever', 1 << 20), constants.O_RDONLY);
    let stop = false;
    let completions = 0;
    ring.onCompletions((_t, _r, n) => {
      completions += n;
      if (stop) return;
      ring.readv(fd, 0, [ring.arena.subarray(0, 4096)], 1, completions);
      ring.submit();
    });
    ring.readv(fd, 0, [ring.arena.subarray(0, 4096)], 1, 0);
    ring.submit(); // returns although every completion asks for another op
    const inSubmit = completions;
    expect(inSubmit).toBeGreaterThan(1);
    await new Promise((r) => setImmediate(r));
    stop = true;
    while (ring.inFlight > 0) await new Promise((r) => setTimeout(r, 5));
    expect(completions).toBeGreaterThanOrEqual(inSubmit);
    expectStatsAddUp(ring);
  });

  for (const where of ['inside submit()', 'from the event loop'] as const) {
    it(`closes from inside the handler (${where}) once the handler returns`, async () => {
      const ring = IoRing.open({ arenaBytes: 1 << 20 });
      const fd = openFile(file(diskDir, `close-in-${where.length}`, 1 << 20), constants.O_RDWR);
      const got: number[] = [];
      let closeThrew: unknown;
      ring.onCompletions((tokens, results, n) => {
        for (let i = 0; i < n; i++) got.push(tokens[i]!, results[i]!);
        ring.close();
        try {
          ring.submit();
        } catch (e) {
          closeThrew = e;
        }
      });
      if (where === 'inside submit()') {
        ring.readv(fd, 0, [ring.arena.subarray(0, 4096)], 1, 1); // cached read: inline
      } else {
        ring.writev(fd, 0, [ring.arena.subarray(0, 4096)], 1, 1, true);
        ring.fdatasync(fd, 2); // completes later, through the eventfd
      }
      ring.submit();
      while (ring.inFlight > 0 || got.length === 0) await new Promise((r) => setTimeout(r, 5));
      expect(got.slice(0, 2)).toEqual([1, 4096]);
      expect(closeThrew).toMatchObject({ code: 'ERR_CLOSED' });
      expect(() => ring.readv(fd, 0, [ring.arena.subarray(0, 512)], 1, 3)).toThrow(/closed/);
      await new Promise((r) => setTimeout(r, 20)); // no callback after close
      expect(ring.stats().completions).toBe(got.length / 2);
    });
  }

  it('turns a bad raw descriptor into an -EINVAL completion that fails its chain', () => {
    // The addon's own checks, below the wrapper's: a descriptor pointing outside the arena.
    const addon = ringAddon();
    const o = addon.ringOpen({ entries: 4, arenaBytes: 4096 });
    cleanup.push(() => addon.ringClose(o.handle));
    const fd = openFile(file(shmDir, 'raw', 8192), constants.O_RDWR);
    const S = addon.RING_DESC_STRIDE;
    const desc = new Float64Array(4 * S);
    const iov = new Int32Array([0, 4096, 4096, 4096, -1, 10, 0, 512]);
    const cqe = new Int32Array(16);
    addon.ringTables(o.handle, { desc, iov, cqe });
    const put = (i: number, op: number, first: number, count: number, token: number, flags: number) =>
      desc.set([op, fd, 0, first, count, token, flags, 0], i * S);
    put(0, addon.RING_OP_READV, 1, 1, 1, addon.RING_LINK); // iov 1 ends past the arena
    put(1, addon.RING_OP_READV, 3, 1, 2, 0); // linked to the bad one
    put(2, addon.RING_OP_WRITEV, 2, 1, 3, 0); // negative offset
    put(3, addon.RING_OP_READV, 3, 1, 4, 0); // fine
    let n = addon.ringSubmit(o.handle, 4);
    const got = new Map<number, number>();
    for (;;) {
      for (let i = 0; i < n; i++) got.set(cqe[2 * i]!, cqe[2 * i + 1]!);
      if (got.size === 4) break;
      n = addon.ringWait(o.handle);
    }
    expect(got.get(1)).toBe(-EINVAL);
    expect(got.get(2)).toBe(-ECANCELED);
    expect(got.get(3)).toBe(-EINVAL);
    expect(got.get(4)).toBe(512);
    expect(addon.ringStats(o.handle)).toMatchObject({ badDescriptors: 2, inFlight: 0 });
  });

  it('does not hold an idle process open, and rejects bad open options', () => {
    const script = `import { IoRing } from ${JSON.stringify(join(import.meta.dirname, '../../../src/io/io-ring.ts'))};
      const r = IoRing.open({ arenaBytes: 4096 }); r.fdatasync(0, 1); r.submit(); console.log('opened');`;
    const res = spawnSync('npx', ['tsx', '--eval', script], { encoding: 'utf8', timeout: 20_000 });
    expect(res.stdout).toContain('opened');
    expect(res.status).toBe(0);
    expect(() => IoRing.open({ arenaBytes: 1000 })).toThrow(expect.objectContaining({ code: 'ERR_IO_RING' }));
    expect(() => IoRing.open({ arenaBytes: 4096, entries: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_IO_RING' }),
    );
  });
});

// A real full file system: a 64 KiB tmpfs.
describe('IoRing on a full file system', () => {
  const mnt = mkdtempSync(join(diskDir, 'full-'));
  let mounted = false;
  beforeAll(() => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'aoegw-ringtest', mnt]);
    mounted = true;
  });
  afterAll(() => {
    if (mounted) execFileSync('umount', [mnt]);
  });

  it('reports ENOSPC (or a short write) as a result, not a throw', async () => {
    const ring = openRing({ arenaBytes: 1 << 20 });
    const p = join(mnt, 'big');
    writeFileSync(p, '');
    const fd = openFile(p, constants.O_RDWR);
    const c = collect(ring);
    for (let i = 0; i < 32; i++)
      ring.writev(fd, i * 8192, [ring.arena.subarray(i * 8192, i * 8192 + 8192)], 1, i);
    c.submit();
    await c.until(32);
    const results = [...c.results.values()];
    const written = results.filter((r) => r > 0).reduce((a, b) => a + b, 0);
    expect(written).toBeLessThanOrEqual(64 * 1024);
    expect(results.some((r) => r === -ENOSPC || (r >= 0 && r < 8192))).toBe(true);
    expect(results.every((r) => r === -ENOSPC || r >= 0)).toBe(true);
    truncateSync(p, 0);
  });
});
