/**
 * Query Config, Mac Mask List, Reserve/Release, allow-list, persistence, announcements and AoE
 * header-level errors.
 */
import { describe, expect, it } from 'vitest';
import {
  AoeErrorCode,
  AoeHeader,
  type AtaMessage,
  AtaStatus,
  decodeHeader,
  formatMac,
  type MacMaskMessage,
  type QueryConfigMessage,
  type ReserveMessage,
} from '../../../src/aoe/index.js';
import { TargetEngine } from '../../../src/target/engine.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import {
  ata,
  BCAST,
  INI_MAC,
  INI2_MAC,
  LINK,
  mac,
  mask,
  qc,
  RecordingSink,
  read,
  reserve,
  runBatch,
  setup,
  TARGET_MAC,
} from './helpers.js';

const OTHER = '52:54:00:00:00:99';

describe('Query Config', () => {
  it('answers a Linux-style query (argument zeroed, inner version 0) with the export parameters', () => {
    const s = setup({
      mtu: 1500,
      exp: { bufferCount: 16, firmwareVersion: 0x4019, initialState: cfgState('hello') },
    });
    const [r] = s.run([qc({ dst: BCAST, major: 0xffff, minor: 0xff, tag: 77 })]) as QueryConfigMessage[];
    expect(r).toMatchObject({
      command: 'query-config',
      response: true,
      errorFlag: false,
      src: TARGET_MAC,
      dst: INI_MAC,
      major: 1,
      minor: 0,
      tag: 77,
      bufferCount: 16,
      firmwareVersion: 0x4019,
      sectorCount: 2,
      aoeVersion: 1,
      ccmd: 0,
    });
    expect(r!.config.toString()).toBe('hello');
  });

  it('sector count = min(export max, (MTU − 36) / 512)', () => {
    expect((setup({ mtu: 9000 }).run([qc()])[0] as QueryConfigMessage).sectorCount).toBe(17);
    expect((setup({ mtu: 4200 }).run([qc()])[0] as QueryConfigMessage).sectorCount).toBe(8);
    const capped = setup({ mtu: 9000, exp: { maxSectorsPerFrame: 4 } });
    expect((capped.run([qc()])[0] as QueryConfigMessage).sectorCount).toBe(4);
  });

  it('broadcast is answered by every matching export with its real address', () => {
    const s = setup();
    s.engine.addExport({ shelf: 1, slot: 1, store: new MemoryStore(8) });
    s.engine.addExport({ shelf: 2, slot: 1, store: new MemoryStore(8) });
    const all = s.run([qc({ dst: BCAST, major: 0xffff, minor: 0xff })]);
    expect(all.map((r) => `${r.major}.${r.minor}`).sort()).toEqual(['1.0', '1.1', '2.1']);
    const shelf1 = s.run([qc({ dst: BCAST, major: 1, minor: 0xff })]);
    expect(shelf1.map((r) => `${r.major}.${r.minor}`).sort()).toEqual(['1.0', '1.1']);
    const slot1 = s.run([qc({ dst: BCAST, major: 0xffff, minor: 1 })]);
    expect(slot1.map((r) => `${r.major}.${r.minor}`).sort()).toEqual(['1.1', '2.1']);
    expect(s.run([qc({ major: 3, minor: 0 })])).toHaveLength(0);
    expect(s.engine.stats().links[String(LINK)]!.notForUs).toBe(1);
  });

  it('test exact and test prefix answer only on a match', () => {
    const s = setup({ exp: { initialState: cfgState('rack7/disk2') } });
    expect(s.run([qc({ ccmd: 1, config: 'rack7/disk2' })])).toHaveLength(1);
    expect(s.run([qc({ ccmd: 1, config: 'rack7' })])).toHaveLength(0);
    expect(s.run([qc({ ccmd: 2, config: 'rack7' })])).toHaveLength(1);
    expect(s.run([qc({ ccmd: 2, config: '' })])).toHaveLength(1);
    expect(s.run([qc({ ccmd: 2, config: 'rack8' })])).toHaveLength(0);
    expect(s.run([qc({ ccmd: 2, config: 'rack7/disk2/x' })])).toHaveLength(0);
    expect(s.engine.stats().exports['e1.0']!.configTestMiss).toBe(3);
  });

  it('set if empty, error 4 when set, idempotent for the same string; force set; persistence', () => {
    const s = setup();
    const [a] = s.run([qc({ ccmd: 3, config: 'one' })]) as QueryConfigMessage[];
    expect(a!.errorFlag).toBe(false);
    expect(a!.config.toString()).toBe('one');
    expect(s.changes).toHaveLength(1);
    expect(s.changes[0]!.key).toBe('e1.0');
    expect(s.changes[0]!.state.config.toString()).toBe('one');
    const [b] = s.run([qc({ ccmd: 3, config: 'two' })]);
    expect(b).toMatchObject({
      errorFlag: true,
      error: AoeErrorCode.CONFIG_STRING_PRESENT,
      major: 1,
      minor: 0,
    });
    const [c] = s.run([qc({ ccmd: 3, config: 'one' })]);
    expect(c!.errorFlag).toBe(false);
    expect(s.changes).toHaveLength(1); // unchanged: no write
    const [d] = s.run([qc({ ccmd: 4, config: 'two' })]) as QueryConfigMessage[];
    expect(d!.config.toString()).toBe('two');
    expect(s.changes).toHaveLength(2);
    expect(s.engine.exportState('e1.0')!.config.toString()).toBe('two');
    // The engine keeps its own copy: mutating the callback's buffer changes nothing.
    s.changes[1]!.state.config.fill(0);
    expect((s.run([qc()])[0] as QueryConfigMessage).config.toString()).toBe('two');
  });

  it('bad ccmd → AoE error 2; inner version above 1 → error 5', () => {
    const s = setup();
    const f = qc({ ccmd: 0 });
    f[24 + 5] = 0x05; // version 0, ccmd 5
    expect(s.run([f])[0]).toMatchObject({ errorFlag: true, error: AoeErrorCode.BAD_ARGUMENT, major: 1 });
    const g = qc({ ccmd: 0 });
    g[24 + 5] = 0x20; // version 2
    expect(s.run([g])[0]).toMatchObject({ errorFlag: true, error: AoeErrorCode.UNSUPPORTED_VERSION });
    const h = Buffer.alloc(1100);
    qc().copy(h);
    h.writeUInt16BE(1025, 24 + 6);
    expect(s.run([h])[0]).toMatchObject({
      errorFlag: true,
      error: AoeErrorCode.BAD_ARGUMENT,
      config: Buffer.alloc(0),
    });
    // Set if empty against a set string echoes the request's string with error 4.
    s.run([qc({ ccmd: 4, config: 'a' })]);
    expect(s.run([qc({ ccmd: 3, config: 'bb' })])[0]).toMatchObject({
      errorFlag: true,
      error: 4,
      config: Buffer.from('bb'),
    });
  });
});

describe('AoE header errors', () => {
  it('bad header version → error 5, unknown and vendor commands → error 1, with the real address', () => {
    const s = setup();
    const v2 = read(0, 1, { tag: 5 });
    v2[14] = 0x20;
    const cmd7 = read(0, 1, { tag: 6 });
    cmd7[19] = 7;
    const vendor = read(0, 1, { tag: 7 });
    vendor[19] = 0xf0;
    runBatch(s.engine, [v2, cmd7, vendor], s.sink);
    // decodeFrame refuses unknown commands even in replies: read the headers directly.
    const replies = s.sink.sent.map((f) => {
      const h = new AoeHeader();
      decodeHeader(f, f.length, h);
      return [
        h.tag,
        h.isResponse,
        h.isError,
        h.error,
        h.version,
        h.major,
        h.minor,
        formatMac(h.src),
        f.length,
      ];
    });
    // Error replies echo the header only (60 bytes): never larger than the request, no data reflected.
    expect(replies).toEqual([
      [5, true, true, 5, 1, 1, 0, TARGET_MAC, 60],
      [6, true, true, 1, 1, 1, 0, TARGET_MAC, 60],
      [7, true, true, 1, 1, 1, 0, TARGET_MAC, 60],
    ]);
    expect(s.engine.stats().exports['e1.0']!.requests.other).toBe(3);
  });

  it('responses, frames for other MACs and other targets are ignored and counted', () => {
    const s = setup();
    const resp = read(0, 1);
    resp[14] = resp[14]! | 0x08;
    const elsewhere = read(0, 1, { dst: '02:00:00:00:00:bb' });
    const multicast = read(0, 1, { dst: '01:00:5e:00:00:01' });
    const otherTarget = read(0, 1, { major: 9 });
    expect(s.run([resp, elsewhere, multicast, otherTarget])).toHaveLength(0);
    expect(s.engine.stats().links[String(LINK)]).toMatchObject({ framesIn: 4, responses: 1, notForUs: 3 });
  });

  it('exports limited to some links are not served on others', () => {
    const s = setup();
    s.engine.addExport({ shelf: 5, slot: 5, store: new MemoryStore(8), linkIds: [2] });
    s.engine.addLink(2, { mac: mac('02:00:00:00:00:cc'), mtu: 1500, name: 'two' });
    expect(s.run([read(0, 1, { major: 5, minor: 5 })])).toHaveLength(0);
    const replies = s.run([read(0, 1, { major: 5, minor: 5, dst: '02:00:00:00:00:cc' })], { linkId: 2 });
    expect(replies).toHaveLength(1);
    expect(replies[0]!.src).toBe('02:00:00:00:00:cc');
    // Broadcast discovery on link 2 sees both exports (1.0 has no link list), on link 1 only 1.0.
    expect(s.run([qc({ dst: BCAST, major: 0xffff, minor: 0xff })], { linkId: 2 })).toHaveLength(2);
    expect(s.run([qc({ dst: BCAST, major: 0xffff, minor: 0xff })])).toHaveLength(1);
  });

  it('an unregistered link is a programming error', () => {
    const s = setup();
    expect(() => runBatch(s.engine, [read(0, 1)], s.sink, 42)).toThrow(
      expect.objectContaining({ code: 'ERR_TARGET_CONFIG' }),
    );
  });
});

describe('Mac Mask List', () => {
  it('read, add, delete; masked MACs lose ATA and list edits but keep Query Config and list reads', () => {
    const s = setup();
    const [empty] = s.run([mask({ mcmd: 0 })]) as MacMaskMessage[];
    expect(empty).toMatchObject({ errorFlag: false, merror: 0, directives: [] });
    const [added] = s.run([
      mask({
        mcmd: 1,
        directives: [
          { dcmd: 1, mac: INI_MAC },
          { dcmd: 1, mac: INI2_MAC },
          { dcmd: 1, mac: INI_MAC },
          { dcmd: 0, mac: OTHER },
        ],
      }),
    ]) as MacMaskMessage[];
    expect(added!.directives).toEqual([
      { dcmd: 0, mac: INI_MAC },
      { dcmd: 0, mac: INI2_MAC },
    ]);
    expect(s.changes.at(-1)!.state.masks.map((p) => p.mac.toString('hex'))).toEqual([
      '525400000001',
      '525400000002',
    ]);

    expect(s.run([read(0, 1)])).toHaveLength(1);
    expect(s.run([read(0, 1, { src: OTHER }), ata({ op: 0xec, count: 1, src: OTHER })])).toHaveLength(0);
    expect(s.run([reserve({ rcmd: 0, src: OTHER })])).toHaveLength(0);
    expect(s.run([qc({ ccmd: 4, config: 'x', src: OTHER })])).toHaveLength(0);
    expect(s.run([qc({ src: OTHER })])).toHaveLength(1);
    expect(s.engine.stats().exports['e1.0']!.drops.masked).toBe(4);
    // An unlisted MAC may read the list but not edit it (it could empty it, or lock everyone out).
    const changes = s.changes.length;
    const [read1] = s.run([mask({ mcmd: 0, src: OTHER })]) as MacMaskMessage[];
    expect(read1!.directives.map((d) => d.mac)).toEqual([INI_MAC, INI2_MAC]);
    expect(s.run([mask({ mcmd: 1, src: OTHER, directives: [{ dcmd: 2, mac: INI2_MAC }] })])).toHaveLength(0);
    expect(s.run([mask({ mcmd: 1, src: OTHER, directives: [{ dcmd: 1, mac: OTHER }] })])).toHaveLength(0);
    expect(s.changes.length).toBe(changes);
    expect(s.engine.stats().exports['e1.0']!.drops.masked).toBe(6);
    // A listed MAC edits it.
    const [del] = s.run([
      mask({ mcmd: 1, src: INI2_MAC, directives: [{ dcmd: 2, mac: INI2_MAC }] }),
    ]) as MacMaskMessage[];
    expect(del!.directives.map((d) => d.mac)).toEqual([INI_MAC]);
    s.run([mask({ mcmd: 1, directives: [{ dcmd: 2, mac: INI_MAC }] })]);
    expect(s.run([read(0, 1, { src: OTHER })])).toHaveLength(1);
  });

  it('list full → merror 3, nothing applied; bad dcmd → merror 2; bad mcmd → AoE error 2', () => {
    const s = setup({ exp: { maxMaskEntries: 2 } });
    s.run([mask({ mcmd: 1, directives: [{ dcmd: 1, mac: INI_MAC }] })]);
    const changes = s.changes.length;
    const [full] = s.run([
      mask({
        mcmd: 1,
        directives: [
          { dcmd: 1, mac: INI2_MAC },
          { dcmd: 1, mac: OTHER },
        ],
      }),
    ]) as MacMaskMessage[];
    expect(full).toMatchObject({ errorFlag: false, merror: 3 });
    expect(full!.directives.map((d) => d.mac)).toEqual([INI2_MAC, OTHER]); // request echoed
    expect(s.changes.length).toBe(changes);
    expect((s.run([mask({ mcmd: 0 })])[0] as MacMaskMessage).directives.map((d) => d.mac)).toEqual([INI_MAC]);

    const bad = mask({ mcmd: 1, directives: [{ dcmd: 1, mac: INI2_MAC }] });
    bad[28 + 1] = 7;
    expect(s.run([bad])[0]).toMatchObject({ errorFlag: false, merror: 2 });
    const badCmd = mask({ mcmd: 0 });
    badCmd[25] = 2;
    expect(s.run([badCmd])[0]).toMatchObject({ errorFlag: true, error: AoeErrorCode.BAD_ARGUMENT });
  });
});

describe('Reserve/Release', () => {
  it('read, set, conflict error 6, IDENTIFY still allowed, force set, release', () => {
    const s = setup();
    expect((s.run([reserve({ rcmd: 0 })])[0] as ReserveMessage).macs).toEqual([]);
    const [set] = s.run([reserve({ rcmd: 1, macs: [INI_MAC, INI_MAC] })]) as ReserveMessage[];
    expect(set).toMatchObject({ errorFlag: false, rcmd: 1, macs: [INI_MAC] });
    expect(s.changes.at(-1)!.state.reserve).toHaveLength(1);

    expect(s.run([reserve({ rcmd: 1, src: INI2_MAC, macs: [INI2_MAC] })])[0]).toMatchObject({
      errorFlag: true,
      error: AoeErrorCode.TARGET_RESERVED,
    });
    const replies = s.run([
      read(0, 1, { src: INI2_MAC, tag: 1 }),
      ata({ op: 0xec, count: 1, src: INI2_MAC, tag: 2 }),
      read(0, 1, { tag: 3 }),
    ]);
    expect(replies.find((r) => r.tag === 1)).toMatchObject({ errorFlag: true, error: 6, major: 1, minor: 0 });
    expect((replies.find((r) => r.tag === 2) as AtaMessage).cmdStatus).toBe(AtaStatus.DRDY);
    expect((replies.find((r) => r.tag === 3) as AtaMessage).cmdStatus).toBe(AtaStatus.DRDY);
    // The holder may change its own reservation.
    expect(s.run([reserve({ rcmd: 1, macs: [INI_MAC, INI2_MAC] })])[0]).toMatchObject({ errorFlag: false });
    expect(s.run([read(0, 1, { src: OTHER })])[0]).toMatchObject({ errorFlag: true, error: 6 });
    expect(s.run([reserve({ rcmd: 2, src: OTHER, macs: [OTHER] })])[0]).toMatchObject({
      errorFlag: false,
      macs: [OTHER],
    });
    expect(s.run([read(0, 1)])[0]).toMatchObject({ errorFlag: true, error: 6 });
    expect(s.run([reserve({ rcmd: 1, src: OTHER, macs: [] })])[0]).toMatchObject({
      errorFlag: false,
      macs: [],
    });
    expect((s.run([read(0, 1)])[0] as AtaMessage).cmdStatus).toBe(AtaStatus.DRDY);
    expect(s.engine.stats().exports['e1.0']!.errors.aoe).toBe(4);
  });

  it('bad rcmd → AoE error 2', () => {
    const s = setup();
    const f = reserve({ rcmd: 0 });
    f[24] = 3;
    expect(s.run([f])[0]).toMatchObject({ errorFlag: true, error: AoeErrorCode.BAD_ARGUMENT });
  });
});

describe('requests with the E flag set', () => {
  it('are dropped and counted, whatever the command (only responses carry errors)', () => {
    const s = setup();
    const q = qc({ ccmd: 0 });
    q[14] = q[14]! | 0x04;
    const r = reserve({ rcmd: 0 });
    r[14] = r[14]! | 0x04;
    const m = mask({ mcmd: 1, directives: [{ dcmd: 1, mac: INI_MAC }] });
    m[14] = m[14]! | 0x04;
    const set = qc({ ccmd: 4, config: 'x' });
    set[14] = set[14]! | 0x04;
    const a = read(0, 1);
    a[14] = a[14]! | 0x04;
    expect(s.run([q, r, m, set, a])).toHaveLength(0);
    expect(s.changes).toHaveLength(0);
    expect(Object.values(s.engine.stats().links)[0]!.errorFlag).toBe(5);
    // The same requests without E are served.
    a[14] = a[14]! & ~0x04;
    expect((s.run([a])[0] as AtaMessage).cmdStatus).toBe(AtaStatus.DRDY);
  });
});

describe('static allow-list', () => {
  it('drops every command from other MACs, counted', () => {
    const s = setup({ exp: { allowMacs: [mac(INI_MAC)] } });
    expect(s.run([read(0, 1), qc()])).toHaveLength(2);
    expect(
      s.run([
        read(0, 1, { src: OTHER }),
        qc({ src: OTHER }),
        mask({ mcmd: 0, src: OTHER }),
        reserve({ rcmd: 0, src: OTHER }),
      ]),
    ).toHaveLength(0);
    const st = s.engine.stats().exports['e1.0']!;
    expect(st.drops.allowList).toBe(4);
    expect(Object.keys(st.initiators)).toEqual([INI_MAC]);
  });
});

describe('state', () => {
  it('initial state from the constructor is enforced and reported', () => {
    const engine = new TargetEngine({
      exports: [
        {
          shelf: 2,
          slot: 3,
          key: 'disk',
          store: new MemoryStore(8),
          initialState: { config: Buffer.from('cfg'), masks: [mac(INI_MAC)], reserve: [mac(INI2_MAC)] },
        },
      ],
    });
    engine.addLink(LINK, { mac: mac(TARGET_MAC), mtu: 1500, name: 't' });
    const sink = new RecordingSink();
    runBatch(
      engine,
      [read(0, 1, { major: 2, minor: 3 }), read(0, 1, { major: 2, minor: 3, src: INI2_MAC })],
      sink,
    );
    // INI_MAC is listed in the mask but not reserved → error 6; INI2_MAC is masked out → dropped.
    expect(sink.take()).toEqual([expect.objectContaining({ errorFlag: true, error: 6 })]);
    expect(engine.exportState('disk')).toEqual({
      config: Buffer.from('cfg'),
      masks: [{ ns: '', mac: mac(INI_MAC) }],
      reserve: [{ ns: '', mac: mac(INI2_MAC) }],
    });
  });

  it('setExportState validates, applies and persists', () => {
    const s = setup();
    s.engine.setExportState('e1.0', { reserve: [mac(INI2_MAC)] });
    expect(s.changes.at(-1)!.state.reserve).toEqual([{ ns: '', mac: mac(INI2_MAC) }]);
    expect(s.run([read(0, 1)])[0]).toMatchObject({ errorFlag: true, error: 6 });
    expect(() => s.engine.setExportState('e1.0', { config: Buffer.alloc(1025) })).toThrow(
      expect.objectContaining({ code: 'ERR_TARGET_CONFIG' }),
    );
    expect(() => s.engine.setExportState('nope', {})).toThrow(
      expect.objectContaining({ code: 'ERR_TARGET_CONFIG' }),
    );
  });

  it('a throwing onStateChange is reported, counted and does not break the batch', () => {
    const errors: Error[] = [];
    const s = setup({
      engine: {
        onStateChange: () => {
          throw new Error('disk full');
        },
        onError: (e) => errors.push(e),
      },
    });
    expect(s.run([qc({ ccmd: 4, config: 'x' }), read(0, 1)])).toHaveLength(2);
    expect(errors.map((e) => e.message)).toEqual(['disk full']);
    expect(s.engine.stats().stateChangeErrors).toBe(1);
  });

  it('rejects bad export and link configuration', () => {
    const store = new MemoryStore(8);
    const e = new TargetEngine({ exports: [{ shelf: 1, slot: 1, store }] });
    const bad = (f: () => unknown) =>
      expect(f).toThrow(expect.objectContaining({ code: 'ERR_TARGET_CONFIG' }));
    bad(() => e.addExport({ shelf: 1, slot: 1, store }));
    bad(() => e.addExport({ shelf: 2, slot: 2, store, key: 'e1.1' }));
    bad(() => e.addExport({ shelf: 0xffff, slot: 1, store }));
    bad(() => e.addExport({ shelf: 1, slot: 0xff, store }));
    bad(() => e.addExport({ shelf: 1, slot: 2, store, maxSectorsPerFrame: 0 }));
    bad(() => e.addExport({ shelf: 1, slot: 2, store, allowMacs: [Buffer.alloc(5)] }));
    bad(() =>
      e.addExport({
        shelf: 1,
        slot: 2,
        store,
        initialState: { config: Buffer.alloc(0), masks: [], reserve: [Buffer.alloc(7)] },
      }),
    );
    bad(() => e.addLink(1, { mac: mac(TARGET_MAC), mtu: 500, name: 'tiny' }));
    bad(() => e.addLink(1, { mac: Buffer.alloc(3), mtu: 1500, name: 'x' }));
    expect(e.removeExport('e1.1')).toBe(true);
    expect(e.exportKeys()).toEqual([]);
  });
});

describe('announce', () => {
  it('sends one broadcast config response per export on the link', () => {
    const s = setup({ mtu: 1500, exp: { initialState: cfgState('hi') } });
    s.engine.addExport({ shelf: 4, slot: 2, store: new MemoryStore(8), bufferCount: 8 });
    s.engine.addExport({ shelf: 4, slot: 3, store: new MemoryStore(8), linkIds: [9] });
    expect(s.engine.announce(LINK, s.sink)).toBe(2);
    const frames = s.sink.take() as QueryConfigMessage[];
    expect(
      frames.map((f) => [f.dst, f.src, f.response, f.major, f.minor, f.tag, f.sectorCount, f.aoeVersion]),
    ).toEqual([
      [BCAST, TARGET_MAC, true, 1, 0, 0, 2, 1],
      [BCAST, TARGET_MAC, true, 4, 2, 0, 2, 1],
    ]);
    expect(frames[0]!.config.toString()).toBe('hi');
    expect(frames[1]!.bufferCount).toBe(8);
    expect(s.engine.stats().links[String(LINK)]!.framesOut).toBe(2);
  });
});

describe('stats', () => {
  it('counts per link, per export and per initiator', () => {
    const s = setup();
    s.run([read(0, 2), read(2, 2, { src: INI2_MAC }), qc(), Buffer.alloc(10)]);
    const st = s.engine.stats();
    expect(st.links[String(LINK)]).toMatchObject({
      name: 'test0',
      mac: TARGET_MAC,
      mtu: 9000,
      framesIn: 4,
      framesOut: 3,
      malformed: 1,
      batches: 1,
    });
    const e = st.exports['e1.0']!;
    expect(e).toMatchObject({ shelf: 1, slot: 0, readOnly: false, reads: 2, bytesRead: 2048 });
    expect(e.requests).toEqual({ ata: 2, queryConfig: 1, macMask: 0, reserve: 0, other: 0 });
    expect(e.store.readv).toBe(1);
    expect(e.initiators[INI_MAC]).toMatchObject({ requests: 2, bytesRead: 1024 });
    expect(e.initiators[INI2_MAC]).toMatchObject({ requests: 1, bytesRead: 1024 });
  });

  it('aggregates initiators beyond the limit', () => {
    const s = setup({ exp: { maxInitiators: 1 } });
    s.run([read(0, 1), read(0, 1, { src: INI2_MAC }), read(0, 1, { src: OTHER })]);
    expect(Object.keys(s.engine.stats().exports['e1.0']!.initiators).sort()).toEqual([INI_MAC, 'other']);
    expect(s.engine.stats().exports['e1.0']!.initiators.other!.requests).toBe(2);
  });
});

function cfgState(config: string) {
  return { config: Buffer.from(config), masks: [], reserve: [] };
}
