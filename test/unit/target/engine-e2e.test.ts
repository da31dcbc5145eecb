/**
 * End to end in memory: the project's own initiator (discovery, IDENTIFY, windowed read/write with
 * retransmission) against the target engine, over a FakeSegment. The adapter is what a link driver
 * does: each receive batch of the target's link goes to engine.handleBatch with the link as sink.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { type ConfigAdvert, Initiator } from '../../../src/initiator/initiator.js';
import {
  discover,
  flushCache,
  identify,
  readSectors,
  writeSectors,
} from '../../../src/initiator/operations.js';
import { FakeSegment } from '../../../src/io/fake-link.js';
import { TargetEngine } from '../../../src/target/engine.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import { pattern } from './helpers.js';

const cleanup: (() => void)[] = [];
afterEach(() => {
  while (cleanup.length > 0) cleanup.pop()!();
});

function world(mtu: number) {
  const seg = new FakeSegment();
  const tl = seg.attach({ name: 'tgt0', mtu });
  const il = seg.attach({ name: 'ini0', mtu });
  const store = new MemoryStore(pattern(4096)); // 2 MiB
  const store2 = new MemoryStore(256, { readOnly: true });
  const engine = new TargetEngine({
    exports: [
      { shelf: 7, slot: 1, store, bufferCount: 32, serial: 'E2E-1', model: 'aoegw e2e' },
      { shelf: 7, slot: 2, store: store2 },
    ],
  });
  engine.addLink(1, { mac: tl.mac, mtu: tl.mtu, name: tl.name });
  tl.onBatch((frames, lens, n) => engine.handleBatch(1, frames, lens, n, tl, performance.now()));
  const ini = new Initiator(il);
  cleanup.push(() => {
    ini.close();
    tl.close();
  });
  return { seg, tl, il, store, store2, engine, ini };
}

describe('initiator ↔ target engine over a FakeSegment', () => {
  for (const mtu of [1500, 9000]) {
    it(`discovers, identifies, writes and reads back 1 MiB (MTU ${mtu})`, async () => {
      const w = world(mtu);
      const found = await discover(w.ini, 50);
      expect(found.map((t) => [t.target, t.sectors, t.lba48, t.serial, t.error])).toEqual([
        ['e7.1', 4096, true, 'E2E-1', undefined],
        ['e7.2', 256, true, 'AOEGW-E7.2', undefined],
      ]);
      expect(found[0]).toMatchObject({
        bufferCount: 32,
        sectorsPerFrame: mtu === 1500 ? 2 : 17,
        model: 'aoegw e2e',
      });

      const adverts = await w.ini.queryConfig(50, { major: 7, minor: 1 });
      expect(adverts).toHaveLength(1);
      // Long timers: a retransmission on a loaded machine would make the counts below inexact.
      const c = w.ini.client(adverts[0]!, { giveUpMs: 20_000, initialRtoMs: 5000, minRtoMs: 5000 });
      const id = await identify(w.ini, c);
      expect(id.flushCacheExt).toBe(true);

      const data = randomBytes(1 << 20);
      await writeSectors(w.ini, c, 1024, data);
      expect(w.store.data.subarray(1024 * 512, 1024 * 512 + data.length).equals(data)).toBe(true);
      const back = Buffer.alloc(data.length + 8192);
      await readSectors(w.ini, c, 1024 - 8, back);
      expect(back.subarray(4096, 4096 + data.length).equals(data)).toBe(true);
      expect(back.subarray(0, 4096).equals(pattern(4096).subarray((1024 - 8) * 512, 1024 * 512))).toBe(true);
      expect(await flushCache(w.ini, c, id)).toBe(true);

      const st = w.engine.stats();
      const e = st.exports['e7.1']!;
      const perFrame = mtu === 1500 ? 2 : 17;
      expect(e.writes).toBe(Math.ceil(2048 / perFrame));
      expect(e.bytesWritten).toBe(data.length);
      expect(e.store.flushes).toBe(1);
      // Windowed requests arrive in batches: the store sees far fewer calls than frames.
      expect(e.store.readv).toBeLessThan(e.reads / 2);
      expect(e.store.writev).toBeLessThan(e.writes / 2);
      expect(w.store.syncs).toBe(e.store.commits + e.store.flushes);
      expect(e.errors).toEqual({ ata: 0, aoe: 0, store: 0 });
      expect(st.links['1']!.malformed).toBe(0);
    });
  }

  it('reports ATA errors to the initiator: write to a read-only export, read past the end', async () => {
    const w = world(1500);
    const [advert] = await w.ini.queryConfig(50, { major: 7, minor: 2 });
    const c = w.ini.client(advert!, { giveUpMs: 2000 });
    await expect(writeSectors(w.ini, c, 0, Buffer.alloc(1024))).rejects.toMatchObject({ code: 'ERR_ATA' });
    await expect(readSectors(w.ini, c, 255, Buffer.alloc(1024))).rejects.toMatchObject({ code: 'ERR_ATA' });
    const ok = Buffer.alloc(1024, 1);
    await readSectors(w.ini, c, 254, ok);
    expect(ok.every((b) => b === 0)).toBe(true);
  });

  it('announce reaches the initiator as an unsolicited config response', async () => {
    const w = world(9000);
    const got: ConfigAdvert[] = [];
    const off = w.ini.onAdvert((a) => got.push(a));
    expect(w.engine.announce(1, w.tl)).toBe(2);
    await new Promise((r) => setTimeout(r, 20));
    off();
    expect(got.map((a) => [a.major, a.minor, a.sectorCount, a.mac.equals(w.tl.mac)])).toEqual([
      [7, 1, 17, true],
      [7, 2, 17, true],
    ]);
  });

  it('survives loss: retransmissions (new tags) complete the I/O', async () => {
    const w = world(1500);
    const [advert] = await w.ini.queryConfig(50, { major: 7, minor: 1 });
    const c = w.ini.client(advert!, { giveUpMs: 10_000, initialRtoMs: 20, minRtoMs: 10 });
    let n = 0;
    w.seg.dropFilter = () => n++ % 7 !== 3; // lose one frame in seven, both directions
    const data = randomBytes(64 * 1024);
    await writeSectors(w.ini, c, 0, data);
    const back = Buffer.alloc(data.length);
    await readSectors(w.ini, c, 0, back);
    w.seg.dropFilter = undefined;
    expect(back.equals(data)).toBe(true);
    expect(c.stats.retransmits).toBeGreaterThan(0);
  });
});
