/**
 * Link state in memory: FakeLink simulates an interface going down and returning with another MTU
 * and MAC, and TargetServer reacts to it like it does to a real PacketLink: while down nothing is
 * sent, on up the engine re-learns MAC and MTU (sectors per frame) and the exports are
 * re-announced. Also: the addon's argument errors carry a code from the project's list.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, isAoegwError } from '../../../src/errors.js';
import { type ConfigAdvert, Initiator } from '../../../src/initiator/initiator.js';
import { FakeSegment } from '../../../src/io/fake-link.js';
import type { LinkStateEvent } from '../../../src/io/frame-link.js';
import { fromNative, nativeAddon } from '../../../src/io/native.js';
import { lineLog } from '../../../src/log.js';
import { TargetServer } from '../../../src/target/server.js';

const cleanup: (() => void)[] = [];
afterEach(() => {
  while (cleanup.length > 0) cleanup.pop()!();
});

describe('FakeLink link state', () => {
  it('drops traffic while down and reports down/up with the new MTU and MAC', async () => {
    const seg = new FakeSegment();
    const a = seg.attach({ mtu: 1500 });
    const b = seg.attach({ mtu: 1500 });
    const got: number[] = [];
    b.onBatch((_f, lens, n) => {
      for (let i = 0; i < n; i++) got.push(lens[i]!);
    });
    const events: LinkStateEvent[] = [];
    const off = b.onLinkState((e) => events.push(e));
    b.setLinkState('down');
    expect(b.state).toBe('down');
    a.send(Buffer.alloc(60, 0xff));
    a.flush();
    b.send(Buffer.alloc(60, 0xff));
    expect(b.flush()).toBe(0);
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual([]);
    expect(b.stats()).toMatchObject({ txDropped: 1, linkDowns: 1 });
    b.setLinkState('up', { mtu: 9000, mac: '02:00:00:00:00:77' });
    expect(b.maxFrame).toBe(9014);
    b.send(Buffer.alloc(9014));
    expect(b.flush()).toBe(1);
    expect(events.map((e) => [e.state, e.mtu, e.mac.toString('hex')])).toEqual([
      ['down', 1500, '020000000002'],
      ['up', 9000, '020000000077'],
    ]);
    off();
    b.setLinkState('down');
    expect(events).toHaveLength(2);
  });
});

describe('TargetServer on link state events', () => {
  it('re-registers MTU/MAC with the engine and re-announces when a link comes back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aoegw-ls-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const seg = new FakeSegment();
    const tl = seg.attach({ name: 't0', mtu: 1500 });
    const il = seg.attach({ name: 'i0', mtu: 9000 });
    const lines: string[] = [];
    const server = TargetServer.start(
      {
        stateFile: join(dir, 'state.json'),
        links: [{ name: 't0', iface: 't0', batch: 64, busyPollUs: 0 }],
        exports: [
          {
            shelf: 2,
            slot: 3,
            path: 'memory:1m',
            readOnly: false,
            durability: 'sync',
            offset: 0,
            bufferCount: 16,
            links: [],
            allowMacs: [],
          },
        ],
      },
      { openLink: () => tl, log: lineLog((l) => lines.push(l)) },
    );
    cleanup.push(() => server.stop());
    const ini = new Initiator(il);
    cleanup.push(() => ini.close());
    const adverts: ConfigAdvert[] = [];
    ini.onAdvert((a) => adverts.push(a));
    await new Promise((r) => setTimeout(r, 20));
    // The start-up announce: MTU 1500 carries 2 sectors.
    expect(adverts.map((a) => [a.mac.toString('hex'), a.sectorCount])).toEqual([[tl.mac.toString('hex'), 2]]);
    adverts.length = 0;

    tl.setLinkState('down');
    expect(lines.at(-1)).toMatch(/link t0: down/);
    tl.setLinkState('up', { mtu: 9000, mac: '02:00:00:00:aa:01' });
    await new Promise((r) => setTimeout(r, 20));
    // The re-announce, from the new MAC, with what MTU 9000 carries (17 sectors).
    expect(adverts.map((a) => [a.major, a.minor, a.mac.toString('hex'), a.sectorCount])).toEqual([
      [2, 3, '02000000aa01', 17],
    ]);
    expect(server.engine.stats().links['0']).toMatchObject({
      name: 't0',
      mtu: 9000,
      mac: '02:00:00:00:aa:01',
    });
    expect(lines.at(-1)).toMatch(/link t0: up .*mtu 9000, re-announced 1 exports/);
    // And a query answers with the new values too.
    const q = await ini.queryConfig(500, { major: 2, minor: 3 });
    expect(q.map((a) => [a.mac.toString('hex'), a.sectorCount])).toEqual([['02000000aa01', 17]]);
  });
});

describe('addon argument errors', () => {
  it('carry ERR_NATIVE_ARGUMENT, a code in the project list', () => {
    const addon = nativeAddon();
    const calls: (() => unknown)[] = [
      () => addon.allocAligned(0),
      () => addon.allocAligned(4096, 3),
      () => (addon.stats as (h: unknown) => unknown)({}),
      () => (addon.interfaceInfo as (n?: unknown) => unknown)(),
    ];
    for (const call of calls) {
      let err: unknown;
      try {
        call();
      } catch (e) {
        err = fromNative(e);
      }
      expect(isAoegwError(err, 'ERR_NATIVE_ARGUMENT'), String(err)).toBe(true);
    }
    expect(ErrorCodes).toContain('ERR_NATIVE_ARGUMENT');
  });
});
