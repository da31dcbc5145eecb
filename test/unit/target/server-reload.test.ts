/**
 * TargetServer changed while running (a gateway reload): exports added (stores opened first,
 * overlap-checked) and removed (the store closes only after the requests it accepted completed,
 * every acknowledged write on the file), links added and removed, a peer-style link that serves
 * exports limited to other links.
 */
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SECTOR_SIZE } from '../../../src/aoe/constants.js';
import { Initiator } from '../../../src/initiator/initiator.js';
import { readSectors, writeSectors } from '../../../src/initiator/operations.js';
import { fillPattern } from '../../../src/initiator/pattern.js';
import { FakeSegment } from '../../../src/io/fake-link.js';
import type { FrameLink } from '../../../src/io/frame-link.js';
import { lineLog } from '../../../src/log.js';
import { TargetServer } from '../../../src/target/server.js';
import type { ExportSpec } from '../../../src/target/spec.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

function exportSpec(shelf: number, slot: number, path: string, more: Partial<ExportSpec> = {}): ExportSpec {
  return {
    shelf,
    slot,
    path,
    readOnly: false,
    durability: 'sync',
    offset: 0,
    bufferCount: 16,
    links: [],
    allowMacs: [],
    ...more,
  };
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-srv-reload-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const image = (name: string) => {
    const p = join(dir, name);
    writeFileSync(p, '');
    truncateSync(p, 4 << 20);
    return p;
  };
  const seg = new FakeSegment();
  const links = new Map<string, FrameLink>();
  const attach = (name: string, mtu = 9000) => {
    const l = seg.attach({ name, mtu });
    links.set(name, l);
    return l;
  };
  attach('t0');
  const lines: string[] = [];
  const server = TargetServer.start(
    {
      stateFile: join(dir, 'state.json'),
      links: [{ name: 't0', iface: 't0', batch: 64, busyPollUs: 0 }],
      exports: [exportSpec(2, 0, image('a.img'))],
    },
    { openLink: (l) => links.get(l.name)!, log: lineLog((l) => lines.push(l)) },
  );
  cleanup.push(() => server.stop());
  const ini = new Initiator(seg.attach({ name: 'i0', mtu: 9000 }));
  cleanup.push(() => ini.close());
  return { dir, image, attach, server, ini, lines };
}

describe('TargetServer: exports added and removed while running', () => {
  it('an added export is announced and served; a removed one closes after its writes completed', async () => {
    const s = setup();
    const path = s.image('b.img');
    const spec = exportSpec(2, 1, path);
    const [store] = s.server.openStores([spec]);
    s.server.addExport(spec, store!);
    const found = await s.ini.queryConfig(300, { major: 2, minor: 1 });
    expect(found).toHaveLength(1);
    const c = s.ini.client(found[0]!, { giveUpMs: 2000 });
    // Writes in flight when the export goes: each either acknowledged (then on the file) or failed.
    // On a loaded machine a burst may complete between two looks: then another burst, same data.
    const acked: number[] = [];
    const writes: Promise<unknown>[] = [];
    let removed: Promise<void> | undefined;
    let pendingAtRemoval = 0;
    for (let burst = 0; burst < 20 && !removed; burst++) {
      const these = Array.from({ length: 32 }, (_, i) => {
        const data = Buffer.alloc(8 * SECTOR_SIZE);
        fillPattern(data, 0, i * 8, 8, 5);
        return writeSectors(s.ini, c, i * 8, data).then(
          () => acked.push(i * 8),
          () => {},
        );
      });
      writes.push(...these);
      for (let i = 0; i < 200 && !removed; i++) {
        await new Promise((r) => setImmediate(r));
        pendingAtRemoval = s.server.engine.pendingRequests;
        if (pendingAtRemoval > 0) removed = s.server.removeExport('e2.1');
      }
      if (!removed) await Promise.all(these);
    }
    expect(pendingAtRemoval).toBeGreaterThan(0);
    await removed;
    expect(s.lines.filter((l) => /export e2\.1: closed/.test(l))).toHaveLength(1);
    await Promise.all(writes);
    const file = readFileSync(path);
    const expected = Buffer.alloc(8 * SECTOR_SIZE);
    for (const lba of acked) {
      fillPattern(expected, 0, lba, 8, 5);
      expect(file.subarray(lba * SECTOR_SIZE, (lba + 8) * SECTOR_SIZE).equals(expected), `lba ${lba}`).toBe(
        true,
      );
    }
    expect(s.server.engine.exportKeys()).toEqual(['e2.0']);
    // The other export is untouched.
    const a = s.ini.client((await s.ini.queryConfig(300, { major: 2, minor: 0 }))[0]!);
    await readSectors(s.ini, a, 0, Buffer.alloc(SECTOR_SIZE));
  });

  it('refuses a writable export overlapping one served, unless that one is being replaced', () => {
    const s = setup();
    const path = join(s.dir, 'a.img');
    expect(() => s.server.openStores([exportSpec(2, 5, path)])).toThrow(/overlap/);
    const stores = s.server.openStores([exportSpec(2, 0, path, { bufferCount: 8 })], ['e2.0']);
    expect(stores).toHaveLength(1);
    s.server.discardStores(stores);
    // Two new ones overlapping each other: refused too, nothing left open.
    const other = s.image('c.img');
    expect(() => s.server.openStores([exportSpec(3, 0, other), exportSpec(3, 1, other)])).toThrow(/overlap/);
  });

  it('a link added with everyExport serves exports limited to other links; a plain one does not', async () => {
    const s = setup();
    const spec = exportSpec(4, 0, 'memory:1m', { links: ['t0'] });
    const seg2 = new FakeSegment();
    const peerSide = seg2.attach({ name: 'p0', mtu: 9000 });
    const plainSide = new FakeSegment();
    const plain = plainSide.attach({ name: 'l1', mtu: 9000 });
    const links = new Map<string, FrameLink>([
      ['peer:x', peerSide],
      ['l1', plain],
    ]);
    // A server of its own, whose openLink knows the links added later.
    const srv = TargetServer.start(
      {
        stateFile: join(s.dir, 'state2.json'),
        links: [{ name: 't0', iface: 't0', batch: 64, busyPollUs: 0 }],
        exports: [spec],
      },
      { openLink: (l) => links.get(l.name) ?? s.attach(`x-${l.name}`) },
    );
    cleanup.push(() => srv.stop());
    srv.addLink({ name: 'peer:x', iface: 'peer:x', batch: 64, busyPollUs: 0, everyExport: true });
    srv.addLink({ name: 'l1', iface: 'l1', batch: 64, busyPollUs: 0 });
    const viaPeer = new Initiator(seg2.attach({ name: 'ip', mtu: 9000 }));
    const viaPlain = new Initiator(plainSide.attach({ name: 'iq', mtu: 9000 }));
    cleanup.push(() => viaPeer.close());
    cleanup.push(() => viaPlain.close());
    expect((await viaPeer.queryConfig(300)).map((a) => `${a.major}.${a.minor}`)).toEqual(['4.0']);
    expect(await viaPlain.queryConfig(300)).toEqual([]);
    expect(srv.removeLink('peer:x')).toBe(true);
    expect(await viaPeer.queryConfig(300)).toEqual([]);
    expect(srv.removeLink('peer:x')).toBe(false);
  });
});
