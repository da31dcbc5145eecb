/**
 * Which stores the ring serves: in blockIo 'auto' a file on tmpfs (/dev/shm) runs synchronously
 * beside the ring (io_uring would punt every op on it to a worker), a file on the disk uses the
 * ring, and 'ring' puts both on it. Checked on real files and a real ring, by whether an operation
 * completes inside the call (synchronous) or only through the ring, and through a
 * TargetServer serving both kinds at once to an initiator.
 */
import { mkdtempSync, rmSync, statfsSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Initiator } from '../../../src/initiator/initiator.js';
import { readSectors, writeSectors } from '../../../src/initiator/operations.js';
import { FakeSegment } from '../../../src/io/fake-link.js';
import { IoRing } from '../../../src/io/io-ring.js';
import { lineLog } from '../../../src/log.js';
import { FileStore } from '../../../src/target/file-store.js';
import { TargetServer } from '../../../src/target/server.js';
import type { BlockIoMode, ExportSpec } from '../../../src/target/spec.js';
import { pattern } from './helpers.js';

const TMPFS_MAGIC = 0x01021994;
const shmDir = mkdtempSync('/dev/shm/aoegw-blockio-');
const diskDir = mkdtempSync('/var/tmp/aoegw-blockio-');
const cleanup: (() => void)[] = [];
afterEach(() => {
  while (cleanup.length > 0) cleanup.pop()!();
});
afterAll(() => {
  rmSync(shmDir, { recursive: true, force: true });
  rmSync(diskDir, { recursive: true, force: true });
});

function image(dir: string, name: string, bytes: number): string {
  const p = join(dir, name);
  writeFileSync(p, '');
  truncateSync(p, bytes);
  return p;
}

/** True when a 4 KiB read started on `store` completes inside the call; false when it needs the ring. */
async function completesInline(store: FileStore, ring: IoRing): Promise<boolean> {
  const results: number[] = [];
  store.attach((_t, r) => results.push(r));
  ring.onCompletions((_tokens, res, n) => {
    for (let i = 0; i < n; i++) results.push(res[i]!);
  });
  store.read(0, [ring.arena.subarray(0, 4096)], 1, 1);
  const inline = results.length === 1;
  ring.submit();
  // A punted op (tmpfs through the ring) completes later, through the event loop.
  for (let i = 0; i < 200 && results.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  expect(results).toEqual([4096]);
  return inline;
}

describe('memory-backed files beside the ring', () => {
  it('the two directories are what the test needs: /dev/shm tmpfs, /var/tmp not', () => {
    expect(statfsSync(shmDir).type).toBe(TMPFS_MAGIC);
    expect(statfsSync(diskDir).type).not.toBe(TMPFS_MAGIC);
  });

  it("'auto' (memoryFsSync) runs a tmpfs file synchronously and a disk file on the ring", async () => {
    const ring = IoRing.open({ arenaBytes: 1 << 16 });
    cleanup.push(() => ring.close());
    const shm = new FileStore({ path: image(shmDir, 'a.img', 1 << 20), ring, memoryFsSync: true });
    cleanup.push(() => shm.close());
    const disk = new FileStore({ path: image(diskDir, 'a.img', 1 << 20), ring, memoryFsSync: true });
    cleanup.push(() => disk.close());
    expect(shm.synchronous).toBe(true);
    expect(shm.synchronousWhy).toBe('tmpfs: io_uring would punt every op to a worker');
    expect(shm.description).toMatch(/synchronous I\/O; tmpfs: io_uring would punt every op to a worker\)/);
    expect(await completesInline(shm, ring)).toBe(true);
    expect(disk.synchronous).toBe(false);
    expect(disk.synchronousWhy).toBeUndefined();
    expect(disk.description).not.toMatch(/synchronous/);
    const before = ring.stats().ops;
    expect(await completesInline(disk, ring)).toBe(false);
    expect(ring.stats().ops).toBe(before + 1);
  });

  it("'ring' (no memoryFsSync) puts the tmpfs file on the ring too", async () => {
    const ring = IoRing.open({ arenaBytes: 1 << 16 });
    cleanup.push(() => ring.close());
    const shm = new FileStore({ path: image(shmDir, 'b.img', 1 << 20), ring });
    cleanup.push(() => shm.close());
    expect(shm.synchronous).toBe(false);
    expect(await completesInline(shm, ring)).toBe(false);
    expect(ring.stats().ops).toBe(1);
  });

  it('without a ring every file is synchronous, with no memory-fs reason', () => {
    const disk = new FileStore({ path: image(diskDir, 'c.img', 1 << 20), memoryFsSync: true });
    cleanup.push(() => disk.close());
    expect(disk.synchronous).toBe(true);
    expect(disk.synchronousWhy).toBeUndefined();
  });
});

describe('TargetServer with tmpfs and disk exports', () => {
  function exportOf(slot: number, path: string): ExportSpec {
    return {
      shelf: 4,
      slot,
      path,
      readOnly: false,
      durability: 'sync',
      offset: 0,
      bufferCount: 16,
      links: [],
      allowMacs: [],
    };
  }

  function serve(blockIo: BlockIoMode) {
    const seg = new FakeSegment();
    const tl = seg.attach({ name: 't0', mtu: 9000 });
    const il = seg.attach({ name: 'i0', mtu: 9000 });
    const lines: string[] = [];
    const server = TargetServer.start(
      {
        stateFile: join(diskDir, `state-${blockIo}.json`),
        links: [{ name: 't0', iface: 't0', batch: 64, busyPollUs: 0 }],
        exports: [
          exportOf(0, image(shmDir, `s-${blockIo}.img`, 1 << 20)),
          exportOf(1, image(diskDir, `d-${blockIo}.img`, 1 << 20)),
          exportOf(2, 'memory:1m'),
        ],
        blockIo,
      },
      { openLink: () => tl, log: lineLog((l) => lines.push(l)) },
    );
    cleanup.push(() => server.stop());
    const ini = new Initiator(il);
    cleanup.push(() => ini.close());
    return { server, ini, lines };
  }

  it("'auto' serves the tmpfs export synchronously beside the ring, says so, and both answer", async () => {
    const { server, ini, lines } = serve('auto');
    const why = 'tmpfs: io_uring would punt every op to a worker';
    expect(lines[0]).toMatch(/^block I\/O: io_uring .*files on tmpfs or ramfs synchronously/);
    expect(lines).toContain(`block I/O: e4.0 served synchronously (${why})`);
    expect(lines.find((l) => l.startsWith('export e4.0:'))).toContain(`synchronous I/O; ${why})`);
    expect(server.stats().blockIo.exports).toEqual({
      'e4.0': `synchronous (${why})`,
      'e4.1': 'io_uring',
      'e4.2': 'memory',
    });
    // Mixed in one server: writes and reads on both files, through one data path.
    for (const minor of [0, 1]) {
      const [advert] = await ini.queryConfig(200, { major: 4, minor });
      const c = ini.client(advert!);
      const data = pattern(40, 10 + minor);
      await writeSectors(ini, c, 8, data);
      const back = Buffer.alloc(data.length);
      await readSectors(ini, c, 8, back);
      expect(back.equals(data)).toBe(true);
    }
    // Exactly the disk export's store operations went to the ring; the tmpfs export's none.
    const st = server.stats();
    const opsOf = (key: string) => {
      const s = st.engine.exports[key]!.store;
      return s.readv + s.writev + s.commits + s.flushes;
    };
    expect(opsOf('e4.0')).toBeGreaterThan(0);
    expect(st.blockIo.ring!.ops).toBe(opsOf('e4.1'));
    expect(st.engine.exports['e4.0']!.errors.store + st.engine.exports['e4.1']!.errors.store).toBe(0);
  });

  it("'ring' puts every file store on the ring", () => {
    const { server, lines } = serve('ring');
    expect(lines.some((l) => l.includes('served synchronously'))).toBe(false);
    expect(server.stats().blockIo.exports).toEqual({
      'e4.0': 'io_uring',
      'e4.1': 'io_uring',
      'e4.2': 'memory',
    });
  });

  it("'sync' serves everything synchronously, without a memory-fs reason", () => {
    const { server } = serve('sync');
    expect(server.stats().blockIo.exports).toEqual({
      'e4.0': 'synchronous',
      'e4.1': 'synchronous',
      'e4.2': 'memory',
    });
  });
});
