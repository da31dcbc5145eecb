/**
 * Principals: the engine's access state (Mac Mask List, reservations, rate limits, initiator stats)
 * is keyed by (namespace of the receiving link, MAC). One engine, three links: a local one and two
 * peer links (namespaces = two peer keys); the same initiator MAC on each is three principals.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AtaMessage, MacMaskMessage, ReserveMessage } from '../../../src/aoe/index.js';
import { TargetEngine, type TargetEngineOptions } from '../../../src/target/engine.js';
import type { ExportOptions, PersistentExportState } from '../../../src/target/export-state.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import { StateFile } from '../../../src/target/state-file.js';
import type { TxSink } from '../../../src/target/tx-sink.js';
import {
  expectNoAllocationPerFrame,
  INI_MAC,
  mac,
  mask,
  nullStore,
  qc,
  RecordingSink,
  read,
  reserve,
  runBatch,
  TARGET_MAC,
  write,
} from './helpers.js';

const P1 = 'a1'.repeat(32);
const P2 = 'b2'.repeat(32);
const LOCAL = 1;
const PEER1 = 2;
const PEER2 = 3;
const PEER1_MAC = '02:a0:e0:00:00:01';
const PEER2_MAC = '02:a0:e0:00:00:02';
const X = INI_MAC;
const Y = '52:54:00:00:00:77';
const DST: Record<number, string> = { [LOCAL]: TARGET_MAC, [PEER1]: PEER1_MAC, [PEER2]: PEER2_MAC };

const dir = mkdtempSync(join(tmpdir(), 'aoegw-principal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function world(exp: Partial<ExportOptions> = {}, engineOpts: TargetEngineOptions = {}) {
  const changes: PersistentExportState[] = [];
  const engine = new TargetEngine({ onStateChange: (_k, st) => changes.push(st), ...engineOpts });
  engine.addExport({ shelf: 1, slot: 0, store: new MemoryStore(64), ...exp });
  engine.addLink(LOCAL, { mac: mac(TARGET_MAC), mtu: 9000, name: 'eth0' });
  engine.addLink(PEER1, { mac: mac(PEER1_MAC), mtu: 9000, name: 'peer:p1', principal: P1 });
  engine.addLink(PEER2, { mac: mac(PEER2_MAC), mtu: 9000, name: 'peer:p2', principal: P2 });
  const sink = new RecordingSink();
  /** One batch on `link` from `src` (frames addressed to that link's MAC). */
  const on = (link: number, build: (a: { dst: string; src: string }) => Buffer[], src = X) => {
    runBatch(engine, build({ dst: DST[link]!, src }), sink, link);
    return sink.take();
  };
  const drops = () => engine.stats().exports['e1.0']!.drops;
  return { engine, changes, on, drops };
}

const readOk = (r: unknown[]) =>
  r.length === 1 && !(r[0] as AtaMessage).errorFlag && (r[0] as AtaMessage).data.length === 512;

describe('Mac Mask List per principal', () => {
  it('an entry added through one peer admits that MAC on that peer only, not behind another peer or locally', () => {
    const w = world();
    // Empty list: every principal is served.
    for (const l of [LOCAL, PEER1, PEER2]) expect(readOk(w.on(l, (a) => [read(0, 1, a)]))).toBe(true);
    // P1's initiator X lists itself.
    const [added] = w.on(PEER1, (a) => [
      mask({ ...a, mcmd: 1, directives: [{ dcmd: 1, mac: X }] }),
    ]) as MacMaskMessage[];
    expect(added).toMatchObject({ errorFlag: false, merror: 0, directives: [{ dcmd: 0, mac: X }] });
    expect(w.changes.at(-1)!.masks).toEqual([{ ns: P1, mac: mac(X) }]);
    expect(readOk(w.on(PEER1, (a) => [read(0, 1, a)]))).toBe(true);
    // Same MAC X behind P2 and on the local segment: other principals, not on the list → dropped.
    expect(w.on(PEER2, (a) => [read(0, 1, a)])).toEqual([]);
    expect(w.on(LOCAL, (a) => [read(0, 1, a)])).toEqual([]);
    expect(w.drops().masked).toBe(2);
    // Nor may they edit it (an edit from an unlisted principal is dropped, as per MAC before).
    expect(w.on(LOCAL, (a) => [mask({ ...a, mcmd: 1, directives: [{ dcmd: 1, mac: X }] })])).toEqual([]);
    expect(w.on(PEER2, (a) => [mask({ ...a, mcmd: 1, directives: [{ dcmd: 2, mac: X }] })])).toEqual([]);
    expect(w.changes).toHaveLength(1);
  });

  it('a read lists the MACs of the reader’s own namespace only; edits touch only the editor’s namespace', () => {
    const w = world({
      initialState: {
        config: Buffer.alloc(0),
        masks: [mac(X), { ns: P1, mac: mac(X) }, { ns: P1, mac: mac(Y) }, { ns: P2, mac: mac(Y) }],
      },
    });
    const list = (l: number, src = X) =>
      (w.on(l, (a) => [mask({ ...a, mcmd: 0 })], src)[0] as MacMaskMessage).directives.map((d) => d.mac);
    expect(list(LOCAL)).toEqual([X]);
    expect(list(PEER1)).toEqual([X, Y]);
    expect(list(PEER2)).toEqual([Y]);
    // A reader not on the list still gets an answer: its namespace's entries (none here: leaks nothing).
    expect(list(PEER2, X)).toEqual([Y]);
    // P1 deletes X: the local X entry (same MAC, other namespace) stays.
    const [r] = w.on(PEER1, (a) => [
      mask({ ...a, mcmd: 1, directives: [{ dcmd: 2, mac: X }] }),
    ]) as MacMaskMessage[];
    expect(r!.directives.map((d) => d.mac)).toEqual([Y]);
    expect(w.changes.at(-1)!.masks).toEqual([
      { ns: '', mac: mac(X) },
      { ns: P1, mac: mac(Y) },
      { ns: P2, mac: mac(Y) },
    ]);
    expect(readOk(w.on(LOCAL, (a) => [read(0, 1, a)]))).toBe(true);
    expect(w.on(PEER1, (a) => [read(0, 1, a)])).toEqual([]);
    expect(readOk(w.on(PEER1, (a) => [read(0, 1, a)], Y))).toBe(true);
  });

  it('the capacity is one for the whole list (every namespace)', () => {
    const w = world({
      maxMaskEntries: 2,
      initialState: { config: Buffer.alloc(0), masks: [mac(X), { ns: P1, mac: mac(X) }] },
    });
    const [r] = w.on(PEER1, (a) => [
      mask({ ...a, mcmd: 1, directives: [{ dcmd: 1, mac: Y }] }),
    ]) as MacMaskMessage[];
    expect(r).toMatchObject({ merror: 3 });
  });
});

describe('reservations per principal', () => {
  it('a reservation by P1’s initiator blocks the same MAC behind P2 and locally (error 6); P1’s initiator still writes', () => {
    const w = world();
    const [set] = w.on(PEER1, (a) => [reserve({ ...a, rcmd: 1, macs: [X] })]) as ReserveMessage[];
    expect(set).toMatchObject({ errorFlag: false, macs: [X] });
    expect(w.changes.at(-1)!.reserve).toEqual([{ ns: P1, mac: mac(X) }]);
    const data = Buffer.alloc(512, 0x5a);
    expect(w.on(PEER1, (a) => [write(3, data, a)])).toMatchObject([{ errorFlag: false, cmdStatus: 0x40 }]);
    expect(w.on(PEER2, (a) => [write(3, data, a)])).toMatchObject([{ errorFlag: true, error: 6 }]);
    expect(w.on(LOCAL, (a) => [write(3, data, a)])).toMatchObject([{ errorFlag: true, error: 6 }]);
    // A plain set from another principal is refused; reads show only the reader's own namespace.
    expect(w.on(PEER2, (a) => [reserve({ ...a, rcmd: 1, macs: [X] })])).toMatchObject([
      { errorFlag: true, error: 6 },
    ]);
    expect((w.on(PEER2, (a) => [reserve({ ...a, rcmd: 0 })])[0] as ReserveMessage).macs).toEqual([]);
    expect((w.on(LOCAL, (a) => [reserve({ ...a, rcmd: 0 })])[0] as ReserveMessage).macs).toEqual([]);
    expect((w.on(PEER1, (a) => [reserve({ ...a, rcmd: 0 })])[0] as ReserveMessage).macs).toEqual([X]);
    // A force set by P2 takes the reservation over, for MACs in P2's namespace.
    expect(w.on(PEER2, (a) => [reserve({ ...a, rcmd: 2, macs: [X, Y] })])).toMatchObject([{ macs: [X, Y] }]);
    expect(w.changes.at(-1)!.reserve).toEqual([
      { ns: P2, mac: mac(X) },
      { ns: P2, mac: mac(Y) },
    ]);
    expect(w.on(PEER1, (a) => [write(3, data, a)])).toMatchObject([{ errorFlag: true, error: 6 }]);
    expect(w.on(PEER2, (a) => [write(3, data, a)], Y)).toMatchObject([{ errorFlag: false }]);
    // The holder releases (a set with no MACs).
    expect(w.on(PEER2, (a) => [reserve({ ...a, rcmd: 1, macs: [] })])).toMatchObject([{ macs: [] }]);
    expect(w.on(LOCAL, (a) => [write(3, data, a)])).toMatchObject([{ errorFlag: false }]);
  });
});

describe('other per-principal state', () => {
  it('the static allow-list applies to local links only', () => {
    const w = world({ allowMacs: [mac(Y)] });
    expect(w.on(LOCAL, (a) => [read(0, 1, a)])).toEqual([]);
    expect(w.drops().allowList).toBe(1);
    expect(readOk(w.on(LOCAL, (a) => [read(0, 1, a)], Y))).toBe(true);
    // A peer's initiators are admitted by the peer's grant, not by local MACs.
    expect(readOk(w.on(PEER1, (a) => [read(0, 1, a)]))).toBe(true);
    expect(w.drops().allowList).toBe(1);
  });

  it('initiator stats keep one MAC in two namespaces apart', () => {
    const w = world();
    w.on(LOCAL, (a) => [read(0, 1, a)]);
    w.on(PEER1, (a) => [read(0, 1, a), read(1, 1, a)]);
    const ini = w.engine.stats().exports['e1.0']!.initiators;
    expect(ini).toMatchObject({ [X]: { requests: 1 }, [`${P1}/${X}`]: { requests: 2 } });
  });

  it('the state-change rate limit is per principal: a flood through one peer does not use up the local MAC’s tokens', () => {
    const w = world({}, { stateChangeLimit: { rate: 0, burst: 2, globalRate: 1000, globalBurst: 1000 } });
    const set = (l: number, s: string) => w.on(l, (a) => [qc({ ...a, ccmd: 4, config: s })]);
    expect(set(PEER1, 'a')).toHaveLength(1);
    expect(set(PEER1, 'b')).toHaveLength(1);
    expect(set(PEER1, 'c')).toEqual([]); // P1's X is out of tokens
    expect(set(LOCAL, 'd')).toHaveLength(1); // local X has its own
    expect(w.drops().stateRate).toBe(1);
  });

  it('a link namespace that is not hex is refused', () => {
    const e = new TargetEngine();
    expect(() => e.addLink(9, { mac: mac(PEER1_MAC), mtu: 1500, name: 'x', principal: 'P1 key' })).toThrow(
      expect.objectContaining({ code: 'ERR_TARGET_CONFIG' }),
    );
  });
});

describe('state file with principals', () => {
  it('round-trips namespaces and the reloaded state is enforced per principal', () => {
    const path = join(dir, 'rt', 'state.json');
    const file = new StateFile(path);
    const w = world({ key: 'e1.0' }, {});
    w.on(PEER1, (a) => [mask({ ...a, mcmd: 1, directives: [{ dcmd: 1, mac: X }] })]);
    w.on(PEER1, (a) => [reserve({ ...a, rcmd: 1, macs: [X] })]);
    file.set('e1.0', w.changes.at(-1)!);
    const json = JSON.parse(readFileSync(path, 'utf8'));
    expect(json).toEqual({
      version: 2,
      exports: { 'e1.0': { config: '', masks: [{ ns: P1, mac: X }], reserve: [{ ns: P1, mac: X }] } },
    });
    const again = world({ initialState: new StateFile(path).get('e1.0')! });
    expect(readOk(again.on(PEER1, (a) => [read(0, 1, a)]))).toBe(true);
    expect(again.on(PEER2, (a) => [read(0, 1, a)])).toEqual([]);
    expect(again.on(LOCAL, (a) => [read(0, 1, a)])).toEqual([]);
    expect(again.drops().masked).toBe(2);
  });

  it('loads a version 1 file (MAC strings) as the local namespace and rewrites it as version 2', () => {
    const path = join(dir, 'v1.json');
    // The format every state file had before principals.
    writeFileSync(
      path,
      `${JSON.stringify({ version: 1, exports: { 'e1.0': { config: Buffer.from('rack1').toString('base64'), masks: [X], reserve: [X] } } }, null, 2)}\n`,
    );
    const file = new StateFile(path);
    const st = file.get('e1.0')!;
    expect(st).toEqual({
      config: Buffer.from('rack1'),
      masks: [{ ns: '', mac: mac(X) }],
      reserve: [{ ns: '', mac: mac(X) }],
    });
    const w = world({ initialState: st });
    expect(readOk(w.on(LOCAL, (a) => [read(0, 1, a)]))).toBe(true);
    // The local entry does not admit the same MAC arriving through a peer.
    expect(w.on(PEER1, (a) => [read(0, 1, a)])).toEqual([]);
    file.set('e1.0', st);
    expect(JSON.parse(readFileSync(path, 'utf8')).exports['e1.0'].masks).toEqual([{ ns: '', mac: X }]);
  });

  it('refuses version 2 entries without a valid namespace or MAC, naming the entry', () => {
    const path = join(dir, 'bad2.json');
    for (const [entry, why] of [
      [X, /e1\.0\.masks\[0\] must be \{"ns"/],
      [{ ns: 'XYZ', mac: X }, /e1\.0\.masks\[0\]\.ns is "XYZ"/],
      [{ ns: P1, mac: 'zz' }, /e1\.0\.masks\[0\]\.mac has 'zz'/],
      [{ ns: P1, mac: X, extra: 1 }, /e1\.0\.masks\[0\] must be/],
    ] as const) {
      writeFileSync(
        path,
        JSON.stringify({ version: 2, exports: { 'e1.0': { config: '', masks: [entry], reserve: [] } } }),
      );
      expect(() => new StateFile(path)).toThrow(why);
    }
  });
});

// ---- allocation ---------------------------------------------------------------------------------

describe('allocation with principals', () => {
  it('mask and reservation checks on peer and local links allocate nothing per frame', async () => {
    const store = nullStore();
    const engine = new TargetEngine({
      exports: [
        {
          shelf: 1,
          slot: 0,
          store,
          initialState: {
            config: Buffer.alloc(0),
            masks: [mac(Y), { ns: P2, mac: mac(Y) }, { ns: P1, mac: mac(X) }, mac(X)],
            reserve: [{ ns: P1, mac: mac(X) }],
          },
        },
      ],
      // The driver's clock, read once per batch of completions: performance.now() boxes its
      // result (a heap number per read, as the driver's own `now` per receive batch); a small-integer
      // clock here, so what is measured is the engine's own allocation per frame.
      clock: () => 0,
    });
    engine.addLink(LOCAL, { mac: mac(TARGET_MAC), mtu: 9000, name: 'eth0' });
    engine.addLink(PEER1, { mac: mac(PEER1_MAC), mtu: 9000, name: 'p1', principal: P1 });
    const sinkSlots = Array.from({ length: 64 }, () => Buffer.alloc(9014));
    let p = 0;
    const sink: TxSink = {
      txSlot: () => sinkSlots[p]!,
      txCommit: () => {
        p = (p + 1) & 63;
      },
    };
    const prep = (frames: Buffer[]) => ({
      bufs: frames.map((f) => {
        const b = Buffer.alloc(9014);
        f.copy(b);
        return b;
      }),
      lens: Int32Array.from(frames.map((f) => f.length)),
    });
    const data = Buffer.alloc(4096, 1);
    const peer = prep([
      read(0, 8, { dst: PEER1_MAC }),
      write(8, data, { dst: PEER1_MAC }),
      mask({ dst: PEER1_MAC, mcmd: 0 }),
      reserve({ dst: PEER1_MAC, rcmd: 0 }),
    ]);
    const local = prep([read(0, 8), write(8, data), read(0, 1, { src: '52:54:00:00:00:55' })]);
    const batch = (i: number) => {
      engine.handleBatch(PEER1, peer.bufs, peer.lens, peer.bufs.length, sink, i);
      engine.handleBatch(LOCAL, local.bufs, local.lens, local.bufs.length, sink, i);
    };
    // 7 frames a batch: a per-frame allocation would be megabytes in every pass.
    const batches = await expectNoAllocationPerFrame(batch);
    const st = engine.stats().exports['e1.0']!;
    expect(st.reads).toBe(batches); // P1's X reads; local X is reserved out (error 6), 55 masked out
    expect(st.writes).toBe(batches);
    expect(st.drops.masked).toBe(batches);
  });
});
