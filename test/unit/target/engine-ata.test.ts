/**
 * ATA commands of the target engine, one at a time: every opcode, every error path, addressing
 * of the replies.
 */
import { describe, expect, it } from 'vitest';
import {
  AtaErrorBit,
  type AtaMessage,
  AtaStatus,
  decodeFrame,
  encodeFrame,
  parseIdentify,
} from '../../../src/aoe/index.js';
import type { BlockStore } from '../../../src/target/block-store.js';
import { TargetEngine } from '../../../src/target/engine.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import {
  ata,
  INI_MAC,
  LINK,
  mac,
  pattern,
  RecordingSink,
  read,
  runBatch,
  setup,
  TARGET_MAC,
  write,
} from './helpers.js';

function only(replies: ReturnType<ReturnType<typeof setup>['run']>): AtaMessage {
  expect(replies).toHaveLength(1);
  const r = replies[0]!;
  expect(r.command).toBe('ata');
  return r as AtaMessage;
}

const ERR = AtaStatus.DRDY | AtaStatus.ERR;
const FAULT = AtaStatus.DRDY | AtaStatus.DF | AtaStatus.ERR;

describe('READ / WRITE SECTORS', () => {
  it('READ SECTORS EXT returns the data, real address, link MAC, echoed tag', () => {
    const s = setup();
    const req = read(5, 3, { tag: 0x1234 });
    const r = only(s.run([req]));
    expect(r).toMatchObject({
      response: true,
      errorFlag: false,
      src: TARGET_MAC,
      dst: INI_MAC,
      major: 1,
      minor: 0,
      tag: 0x1234,
      cmdStatus: AtaStatus.DRDY,
      lba: 5,
      lba48: true,
    });
    expect(r.data.equals(pattern(64).subarray(5 * 512, 8 * 512))).toBe(true);
  });

  it('READ SECTORS (28-bit) masks the 0xE0 Linux puts in LBA3', () => {
    const s = setup();
    const req = ata({ op: 0x20, lba: 9, count: 1 });
    expect(req[24 + 7]).toBe(0xe0);
    const r = only(s.run([req]));
    expect(r.cmdStatus).toBe(AtaStatus.DRDY);
    expect(r.data.equals(pattern(64).subarray(9 * 512, 10 * 512))).toBe(true);
  });

  it('READ SECTORS EXT reaches LBAs above 2^32 (48-bit address math)', () => {
    const reads: number[] = [];
    const big: BlockStore = {
      sectors: 2 ** 40,
      readOnly: true,
      description: 'sparse',
      syncsWrites: true,
      done: (_t: number, _r: number) => {},
      attach(done) {
        this.done = done;
      },
      read(lba, bufs, count, token) {
        reads.push(lba);
        let bytes = 0;
        for (let i = 0; i < count; i++) bytes += bufs[i]!.fill(lba % 251).length;
        this.done(token, bytes);
      },
      write() {},
      sync() {},
      close() {},
    } as BlockStore & { done: (t: number, r: number) => void };
    const engine = new TargetEngine({ exports: [{ shelf: 3, slot: 7, store: big }] });
    engine.addLink(LINK, { mac: mac(TARGET_MAC), mtu: 1500, name: 't' });
    const sink = new RecordingSink();
    const lba = 2 ** 39 + 12345;
    runBatch(engine, [read(lba, 2, { major: 3, minor: 7 })], sink);
    const r = sink.decoded()[0] as AtaMessage;
    expect(reads).toEqual([lba]);
    expect(r.lba).toBe(lba);
    expect(r.data[0]).toBe(lba % 251);
    // Past the end by one sector.
    runBatch(engine, [read(2 ** 40 - 1, 2, { major: 3, minor: 7 })], sink);
    expect((sink.decoded()[1] as AtaMessage).errFeature).toBe(AtaErrorBit.IDNF);
  });

  it('WRITE SECTORS and WRITE SECTORS EXT store the data and answer DRDY without data', () => {
    const s = setup();
    const d1 = Buffer.alloc(1024, 0x11);
    const d2 = Buffer.alloc(512, 0x22);
    const replies = s.run([ata({ op: 0x30, lba: 2, count: 2, data: d1 }), write(40, d2)]);
    expect(replies).toHaveLength(2);
    for (const r of replies as AtaMessage[]) {
      expect(r.cmdStatus).toBe(AtaStatus.DRDY);
      expect(r.data.length).toBe(0);
    }
    expect(s.sink.sent.every((f) => f.length === 60)).toBe(true);
    expect(s.store.data.subarray(1024, 2048).equals(d1)).toBe(true);
    expect(s.store.data.subarray(40 * 512, 41 * 512).equals(d2)).toBe(true);
    const st = s.engine.stats().exports['e1.0']!;
    expect(st.writes).toBe(2);
    expect(st.bytesWritten).toBe(1536);
    expect(st.initiators[INI_MAC]!.bytesWritten).toBe(1536);
  });

  it('the last sector is readable; one past it is IDNF', () => {
    const s = setup({ sectors: 16 });
    expect(only(s.run([read(14, 2)])).cmdStatus).toBe(AtaStatus.DRDY);
    const r = only(s.run([read(15, 2)]));
    expect(r.cmdStatus).toBe(ERR);
    expect(r.errFeature).toBe(AtaErrorBit.IDNF);
    const w = only(s.run([write(16, Buffer.alloc(512))]));
    expect(w.errFeature).toBe(AtaErrorBit.IDNF);
    expect(s.store.readvCalls).toBe(1);
    expect(s.store.writevCalls).toBe(0);
  });

  it('sector count above what the link MTU carries, or 0, or above the export max → ABRT', () => {
    const s = setup({ mtu: 1500, exp: { maxSectorsPerFrame: 255 } });
    expect(only(s.run([read(0, 2)])).cmdStatus).toBe(AtaStatus.DRDY);
    const big = only(s.run([read(0, 3)]));
    expect(big.cmdStatus).toBe(ERR);
    expect(big.errFeature).toBe(AtaErrorBit.ABRT);
    expect(only(s.run([read(0, 0)])).errFeature).toBe(AtaErrorBit.ABRT);
    const t = setup({ mtu: 9000, exp: { maxSectorsPerFrame: 4 } });
    expect(only(t.run([read(0, 4)])).cmdStatus).toBe(AtaStatus.DRDY);
    expect(only(t.run([read(0, 5)])).errFeature).toBe(AtaErrorBit.ABRT);
  });

  it('a write to a read-only export is ABRT and never reaches the store', () => {
    for (const o of [{ storeOpts: { readOnly: true } }, { exp: { readOnly: true } }]) {
      const s = setup(o);
      const r = only(s.run([write(0, Buffer.alloc(512, 1))]));
      expect(r.cmdStatus).toBe(ERR);
      expect(r.errFeature).toBe(AtaErrorBit.ABRT);
      expect(s.store.writevCalls).toBe(0);
      expect(s.store.syncs).toBe(0);
      expect(only(s.run([read(0, 1)])).cmdStatus).toBe(AtaStatus.DRDY);
    }
  });

  it('opcode and W flag must agree: write opcode without W, read opcode with W → ABRT', () => {
    const s = setup();
    const noW = ata({ op: 0x34, lba: 0, count: 1, write: false, data: Buffer.alloc(0) });
    expect(only(s.run([noW])).errFeature).toBe(AtaErrorBit.ABRT);
    const withW = ata({ op: 0x24, lba: 0, count: 1, write: true, data: Buffer.alloc(512) });
    expect(only(s.run([withW])).errFeature).toBe(AtaErrorBit.ABRT);
    expect(s.store.writevCalls).toBe(0);
  });
});

describe('other ATA commands', () => {
  it('IDENTIFY DEVICE reports capacity, LBA48, FLUSH CACHE (EXT) and the strings', () => {
    const s = setup({ sectors: 100, exp: { serial: 'SN123', model: 'Test Model', firmware: 'FW1' } });
    const r = only(s.run([ata({ op: 0xec, count: 2 })]));
    expect(r.cmdStatus).toBe(AtaStatus.DRDY);
    expect(r.sectorCount).toBe(1); // what the reply carries, whatever was asked
    expect(r.data.length).toBe(512);
    expect(parseIdentify(r.data)).toEqual({
      sectors: 100,
      lba48: true,
      serial: 'SN123',
      model: 'Test Model',
      firmware: 'FW1',
      flushCache: true,
      flushCacheExt: true,
      wwn: null,
    });
  });

  it('FLUSH CACHE and FLUSH CACHE EXT sync the store', () => {
    const s = setup();
    expect(only(s.run([ata({ op: 0xe7 })])).cmdStatus).toBe(AtaStatus.DRDY);
    expect(only(s.run([ata({ op: 0xea })])).cmdStatus).toBe(AtaStatus.DRDY);
    expect(s.store.syncs).toBe(2);
    expect(s.engine.stats().exports['e1.0']!.store).toMatchObject({ flushes: 2, commits: 0 });
  });

  it('FLUSH CACHE syncs a writeback store too; its writes alone do not', () => {
    const s = setup({ storeOpts: { syncsWrites: false } });
    expect(only(s.run([write(0, Buffer.alloc(512, 1))])).cmdStatus).toBe(AtaStatus.DRDY);
    expect(s.store.syncs).toBe(0);
    expect(only(s.run([ata({ op: 0xea })])).cmdStatus).toBe(AtaStatus.DRDY);
    expect(s.store.syncs).toBe(1);
  });

  it('CHECK POWER MODE answers DRDY with sector count 0xFF', () => {
    const s = setup();
    const r = only(s.run([ata({ op: 0xe5 })]));
    expect(r.cmdStatus).toBe(AtaStatus.DRDY);
    expect(r.sectorCount).toBe(0xff);
  });

  it('unknown ATA opcodes → DRDY|ERR with ABRT', () => {
    const s = setup();
    for (const op of [0x00, 0x25, 0x35, 0xc8, 0xef, 0xff]) {
      const r = only(s.run([ata({ op })]));
      expect(r.cmdStatus).toBe(ERR);
      expect(r.errFeature).toBe(AtaErrorBit.ABRT);
    }
    expect(s.engine.stats().exports['e1.0']!.ata.other).toBe(6);
  });

  it('ATA to a broadcast shelf or slot is dropped and counted', () => {
    const s = setup();
    expect(s.run([read(0, 1, { major: 0xffff }), read(0, 1, { minor: 0xff })])).toHaveLength(0);
    expect(s.engine.stats().exports['e1.0']!.drops.broadcastAta).toBe(2);
    // To the broadcast MAC but the real address: served.
    expect(s.run([read(0, 1, { dst: 'ff:ff:ff:ff:ff:ff' })])).toHaveLength(1);
  });
});

describe('store failures', () => {
  it('a failed read → DRDY|ERR with UNC, no data, other runs unaffected', () => {
    const s = setup({ storeOpts: { faultLbas: [10] } });
    const replies = s.run([read(9, 2, { tag: 1 }), read(30, 1, { tag: 2 })]) as AtaMessage[];
    const bad = replies.find((r) => r.tag === 1)!;
    const good = replies.find((r) => r.tag === 2)!;
    expect(bad.cmdStatus).toBe(ERR);
    expect(bad.errFeature).toBe(AtaErrorBit.UNC);
    expect(bad.data.length).toBe(0);
    expect(s.sink.sent.length).toBe(0); // taken
    expect(good.cmdStatus).toBe(AtaStatus.DRDY);
    expect(s.engine.stats().exports['e1.0']!.errors).toEqual({ ata: 1, aoe: 0, store: 1 });
  });

  it('a failing read reply carries no leftover data bytes (zero padding)', () => {
    const s = setup({ storeOpts: { faultLbas: [0] } });
    runBatch(s.engine, [read(0, 4)], s.sink);
    const f = s.sink.sent[0]!;
    expect(f.length).toBe(60);
    expect(f.subarray(36, 60).every((b) => b === 0)).toBe(true);
  });

  it('a failed write → DRDY|DF|ERR with ABRT for every write of its group (the linked sync is cancelled)', () => {
    const s = setup({ storeOpts: { faultLbas: [3] } });
    const replies = s.run([
      write(3, Buffer.alloc(512, 9), { tag: 1 }),
      write(20, Buffer.alloc(512, 8), { tag: 2 }),
    ]);
    const [bad, other] = [replies.find((r) => r.tag === 1), replies.find((r) => r.tag === 2)] as AtaMessage[];
    expect(bad!.cmdStatus).toBe(FAULT);
    expect(bad!.errFeature).toBe(AtaErrorBit.ABRT);
    // Not covered by a successful sync: never acknowledged.
    expect(other!.cmdStatus).toBe(FAULT);
    expect(s.store.syncs).toBe(0);
    // The next group is independent.
    expect(only(s.run([write(20, Buffer.alloc(512, 8))])).cmdStatus).toBe(AtaStatus.DRDY);
  });

  it('ENOSPC from the store is an ATA error, never a success', () => {
    const s = setup();
    s.store.faultErrno = 28;
    s.store.fault = (op) => op === 'writev';
    const r = only(s.run([write(0, Buffer.alloc(512, 1))]));
    expect(r.cmdStatus).toBe(FAULT);
    expect(r.errFeature).toBe(AtaErrorBit.ABRT);
    expect(s.store.data.subarray(0, 512).equals(pattern(64).subarray(0, 512))).toBe(true);
  });

  it('a failed sync → every write of the batch fails, none is acknowledged', () => {
    const s = setup();
    s.store.fault = (op) => op === 'sync';
    const replies = s.run([write(0, Buffer.alloc(512, 1)), write(1, Buffer.alloc(512, 2)), read(5, 1)]);
    const writes = (replies as AtaMessage[]).filter((r) => r.lba !== 5);
    expect(writes.map((r) => r.cmdStatus)).toEqual([FAULT, FAULT]);
    expect((replies as AtaMessage[]).find((r) => r.lba === 5)!.cmdStatus).toBe(AtaStatus.DRDY);
    expect(s.engine.stats().exports['e1.0']!.writes).toBe(0);
  });

  it('a failed sync → FLUSH fails with DF|ERR', () => {
    const s = setup();
    s.store.fault = (op) => op === 'sync';
    const r = only(s.run([ata({ op: 0xea })]));
    expect(r.cmdStatus).toBe(FAULT);
    expect(r.errFeature).toBe(AtaErrorBit.ABRT);
  });
});

describe('MemoryStore', () => {
  /** Runs one operation and returns its completion result. */
  function op(m: MemoryStore, f: (token: number) => void): number {
    let result = Number.NaN;
    m.attach((_t, r) => {
      result = r;
    });
    f(1);
    return result;
  }

  it('reads and writes vectors, refuses ranges and read-only writes, injects faults', () => {
    const m = new MemoryStore(4);
    expect(op(m, (t) => m.write(1, [Buffer.alloc(512, 1), Buffer.alloc(1024, 2)], 2, t, false))).toBe(1536);
    const a = Buffer.alloc(512);
    const b = Buffer.alloc(1024);
    expect(op(m, (t) => m.read(1, [a, b, Buffer.alloc(512)], 2, t))).toBe(1536);
    expect(a.every((x) => x === 1) && b.every((x) => x === 2)).toBe(true);
    expect(op(m, (t) => m.read(3, [Buffer.alloc(1024)], 1, t))).toBe(-22);
    expect(op(m, (t) => m.read(0, [Buffer.alloc(100)], 1, t))).toBe(-22);
    m.faultLbas.add(2);
    expect(op(m, (t) => m.read(0, [Buffer.alloc(2048)], 1, t))).toBe(-5);
    const ro = new MemoryStore(Buffer.alloc(1024), { readOnly: true });
    expect(op(ro, (t) => ro.write(0, [Buffer.alloc(512)], 1, t, false))).toBe(-30);
    expect(() => new MemoryStore(Buffer.alloc(100))).toThrow(
      expect.objectContaining({ code: 'ERR_TARGET_CONFIG' }),
    );
    expect(op(m, (t) => m.sync(t))).toBe(0);
    expect([m.syncs, m.readvCalls, m.writevCalls]).toEqual([1, 1, 1]);
    m.close();
    expect(op(m, (t) => m.read(0, [a], 1, t))).toBe(-9);
  });

  it('a failed linked operation cancels the rest of its chain', () => {
    const m = new MemoryStore(4, { faultLbas: [0] });
    const results: number[] = [];
    m.attach((_t, r) => results.push(r));
    m.write(0, [Buffer.alloc(512)], 1, 1, true);
    m.write(1, [Buffer.alloc(512)], 1, 2, true);
    m.sync(3);
    m.sync(4);
    expect(results).toEqual([-5, -125, -125, 0]);
  });

  it('deferred mode holds completions until completeDeferred()', () => {
    const m = new MemoryStore(4, { deferred: true });
    const results: number[] = [];
    m.attach((t, r) => results.push(t, r));
    m.write(0, [Buffer.alloc(512, 7)], 1, 1, true);
    m.sync(2);
    expect(results).toEqual([]);
    expect(m.pending).toBe(2);
    expect(m.completeDeferred(1)).toBe(1);
    expect(results).toEqual([1, 512]);
    m.completeDeferred();
    expect(results).toEqual([1, 512, 2, 0]);
    expect(m.data[0]).toBe(7);
  });
});

describe('frames the codec builds decode back (sanity of the fixtures)', () => {
  it('round-trips a request', () => {
    const f = read(1, 1);
    const d = decodeFrame(f);
    expect(d.ok && d.value.command === 'ata').toBe(true);
    expect(encodeFrame((d as { value: AtaMessage }).value).equals(f)).toBe(true);
  });
});

describe('addressing mode must match the opcode', () => {
  it.each([
    ['READ SECTORS EXT without the E flag', { op: 0x24, lba48: false }],
    ['WRITE SECTORS EXT without the E flag', { op: 0x34, lba48: false, data: Buffer.alloc(512, 1) }],
    ['READ SECTORS (28-bit) with the E flag', { op: 0x20, lba48: true }],
    ['WRITE SECTORS (28-bit) with the E flag', { op: 0x30, lba48: true, data: Buffer.alloc(512, 1) }],
  ])('%s is aborted, not served from another LBA', (_name, o) => {
    const s = setup();
    const before = Buffer.from(s.store.data);
    const r = only(s.run([ata({ lba: 3, count: 1, ...o })]));
    expect(r.cmdStatus).toBe(ERR);
    expect(r.errFeature).toBe(AtaErrorBit.ABRT);
    expect(s.store.data.equals(before)).toBe(true);
  });
});
