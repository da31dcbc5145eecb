/**
 * The tunnel path under loss, duplication, delay and outages, without sockets: gateway A's
 * ImportSide and gateway B's ExportSide + engine over a MemoryStore, joined by PipePorts whose
 * `fault` hook drops, duplicates, holds or delays single records. Scripted cases pin each rule of
 * docs/protocol.md 13.8 (resend on timeout, duplicates absorbed or answered from the reply cache,
 * no stale write after a newer one, the fence after a failure, epochs, initiator retransmissions
 * folded in); a randomized case drives our initiator through 5 % loss and duplication both ways.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ExportSide } from '../../../src/gateway/export-side.js';
import { ImportSide } from '../../../src/gateway/import-side.js';
import { TunnelPeerLink } from '../../../src/gateway/peer-link.js';
import {
  RECORD_AOE_IN_PROGRESS,
  RECORD_AOE_REQUEST,
  RECORD_AOE_RESPONSE,
  REQUEST,
  REQUEST_PREFIX,
  readU64Number,
} from '../../../src/gateway/peer-messages.js';
import type { TagMap } from '../../../src/gateway/tag-map.js';
import { Initiator } from '../../../src/initiator/initiator.js';
import { FakeSegment } from '../../../src/io/fake-link.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import { pattern, read, write } from '../target/helpers.js';
import {
  advertOf,
  capture,
  decode,
  engineWith,
  PipePort,
  requestRecord,
  type SentRecord,
  serveEngine,
  settle,
} from './helpers.js';

const INI = '52:54:00:00:00:01';
const GWA = '02:00:00:00:0a:01';
const MAX_RECORD = 8000;
const at = { dst: GWA, src: INI, major: 7, minor: 0 };
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

function site(o: { failAfterMs?: number; clock?: () => number; noHello?: boolean } = {}) {
  const manual = { now: 1000 };
  const now = o.clock ?? (() => manual.now);
  const store = new MemoryStore(pattern(256, 3));
  const engine = engineWith({ shelf: 1, slot: 0, store, bufferCount: 16 });
  const toA = new PipePort('A');
  const peerLink = new TunnelPeerLink(toA, 0, MAX_RECORD - 26);
  serveEngine(engine, 100, peerLink);
  const exportSide = new ExportSide(new Map([[256, 16]]), null, { clock: now });
  exportSide.addPeer(toA, [{ shelf: 1, slot: 0, readOnly: false }], peerLink);

  const seg = new FakeSegment();
  const iniLink = seg.attach({ mac: INI, name: 'ini', mtu: 9000 });
  const gwA = seg.attach({ mac: GWA, name: 'lanA', mtu: 9000 });
  const got = capture(iniLink);
  const imports = new ImportSide({
    imports: [{ peer: 'B', remote: { shelf: 1, slot: 0 }, localShelf: 7, localSlot: 0, links: ['lanA'] }],
    maxRecord: MAX_RECORD,
    epochBase: 100,
    ...(o.failAfterMs ? { failAfterMs: o.failAfterMs } : {}),
  });
  const id = imports.addLink('lanA', gwA);
  gwA.onBatch((f, l, n) => imports.handleFrames(id, f, l, n, now()));
  const toB = new PipePort('B');
  imports.addPeer(toB);
  // B's hello: it has seen no epoch of ours (the daemon delivers it right after session up).
  if (!o.noHello) imports.peerHello('B', 0);
  toB.connect(
    (type, buf, off, len) => {
      if (type === RECORD_AOE_REQUEST) exportSide.handleRequest('A', buf, off, len, now());
    },
    () => exportSide.endBatch(),
  );
  toA.connect((type, buf, off, len) => {
    if (type === RECORD_AOE_RESPONSE) imports.handleResponse('B', buf, off, len, now());
    if (type === RECORD_AOE_IN_PROGRESS) imports.handleInProgress('B', buf, off, len, now());
  });
  const advert = advertOf(engine, 1, 0);
  imports.handleAdverts('B', { generation: 1, chunk: 0, chunks: 1, targets: [advert] }, now());
  return {
    manual,
    store,
    engine,
    exportSide,
    imports,
    toA,
    toB,
    iniLink,
    got,
    async send(...frames: Buffer[]) {
      for (const f of frames) iniLink.send(f);
      await settle();
    },
    /** Lets timers (held records released, delays) and their deliveries run. */
    async flush() {
      await wait(5);
      await settle();
    },
    replies() {
      return got
        .splice(0)
        .map(decode)
        .filter((m) => m.response && m.command === 'ata');
    },
    sectors(lba: number, n = 1) {
      return store.data.subarray(lba * 512, (lba + n) * 512);
    },
    /** Advances the clock and runs A's resend/fail pass. */
    async advance(ms: number) {
      manual.now += ms;
      imports.retransmit(manual.now);
      await settle();
    },
  };
}

const isRequest = (r: SentRecord) => r.type === RECORD_AOE_REQUEST;

describe('reliability across the tunnel (sans-I/O)', () => {
  it('a lost request is resent on A’s timeout; the initiator sees one reply', async () => {
    const s = site();
    let n = 0;
    s.toB.fault = (r) => (isRequest(r) && n++ === 0 ? 'drop' : 'pass');
    await s.send(read(4, 2, { ...at, tag: 11 }));
    expect(s.replies()).toEqual([]);
    await s.advance(100); // before the first timeout (200 ms before any sample)
    expect(s.imports.stats.retransmits).toBe(0);
    await s.advance(150);
    expect(s.imports.stats.retransmits).toBe(1);
    const r = s.replies();
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ tag: 11, major: 7, minor: 0, cmdStatus: 0x40 });
    expect(s.imports.pending).toBe(0);
  });

  it('while the peer is unreachable, requests are held (not dropped) and go out as soon as it is back', async () => {
    const s = site();
    s.toB.up = false;
    s.toB.accept = false;
    s.imports.tick(s.manual.now);
    await s.send(read(2, 1, { ...at, tag: 21 }));
    expect(s.imports.pending).toBe(1);
    expect(s.imports.stats.unusable).toBe(0);
    expect(s.imports.stats.sendFailed).toBe(1);
    // Discovery is not answered meanwhile.
    expect(s.imports.status()[0]!.usable).toBe(false);
    s.toB.up = true;
    s.toB.accept = true;
    s.manual.now += 5; // well before the request's next timeout
    s.imports.tick(s.manual.now);
    await s.flush();
    expect(s.replies().map((m) => m.tag)).toEqual([21]);
    expect(s.imports.pending).toBe(0);
  });

  it('a delayed duplicate of a completed write never lands after a newer write to the same sectors', async () => {
    const s = site();
    let n = 0;
    s.toB.fault = (r) => (isRequest(r) && n++ === 0 ? 'hold' : 'pass');
    const x = Buffer.alloc(1024, 0x11);
    const y = Buffer.alloc(1024, 0x22);
    await s.send(write(10, x, { ...at, tag: 1 }));
    await s.advance(250); // resent; the first copy is still held in the network
    expect(s.replies().map((m) => m.tag)).toEqual([1]);
    await s.send(write(10, y, { ...at, tag: 2 }));
    expect(s.replies().map((m) => m.tag)).toEqual([2]);
    expect(s.sectors(10, 2).equals(y)).toBe(true);
    s.toB.release(); // the first copy of write 1 arrives late
    await s.flush();
    expect(s.sectors(10, 2).equals(y)).toBe(true);
    expect(s.exportSide.stats.dupAnswered).toBe(1);
    expect(s.imports.stats.staleReplies).toBe(1); // its answer is for a request A has finished
    expect(s.replies()).toEqual([]);
  });

  it('after failAfterMs the initiator gets an ATA error, and the abandoned write can never run after a newer one', async () => {
    const s = site({ failAfterMs: 1000 });
    let blackout = true;
    s.toB.fault = (r) => (isRequest(r) && blackout ? 'hold' : 'pass');
    const x = Buffer.alloc(512, 0x11);
    const y = Buffer.alloc(512, 0x22);
    await s.send(write(20, x, { ...at, tag: 1 }));
    await s.advance(300);
    await s.advance(400);
    expect(s.toB.held.length).toBeGreaterThanOrEqual(2);
    expect(s.replies()).toEqual([]);
    await s.advance(400); // past failAfterMs
    expect(s.replies()).toMatchObject([{ tag: 1, cmdStatus: 0x41, errFeature: 0x04 }]);
    expect(s.imports.stats.failed).toBe(1);
    blackout = false;
    await s.send(write(20, y, { ...at, tag: 2 }));
    expect(s.replies()).toMatchObject([{ tag: 2, cmdStatus: 0x40 }]);
    const late = s.toB.held.length;
    while (s.toB.held.length > 0) s.toB.release();
    await s.flush();
    expect(s.sectors(20).equals(y)).toBe(true);
    expect(s.exportSide.stats.staleFence).toBe(late);
  });

  it('an initiator retransmission (new tag, same command) is folded into the request in flight', async () => {
    const s = site();
    s.toB.fault = (r) => (isRequest(r) ? 'hold' : 'pass');
    await s.send(read(8, 2, { ...at, tag: 1 }));
    await s.send(read(8, 2, { ...at, tag: 2 }));
    expect(s.imports.stats.superseded).toBe(1);
    expect(s.toB.held).toHaveLength(1);
    s.toB.fault = null;
    s.toB.release();
    await s.flush();
    // Linux waits only for the newest tag of a frame it resent.
    expect(s.replies().map((m) => m.tag)).toEqual([2]);
    // A different write to the same sectors is a new request, not a retransmission.
    s.toB.fault = (r) => (isRequest(r) ? 'hold' : 'pass');
    await s.send(write(8, Buffer.alloc(512, 1), { ...at, tag: 3 }));
    await s.send(write(8, Buffer.alloc(512, 2), { ...at, tag: 4 }));
    expect(s.imports.stats.superseded).toBe(1);
    expect(s.toB.held).toHaveLength(2);
  });

  it('an initiator retransmission is folded in whatever the request hashes to (every LBA)', async () => {
    const s = site();
    s.toB.fault = (r) => (isRequest(r) ? 'hold' : 'pass');
    for (let lba = 0; lba < 16; lba++) {
      const data = Buffer.alloc(1024, lba);
      await s.send(write(lba, data, { ...at, tag: 100 + lba }), write(lba, data, { ...at, tag: 200 + lba }));
    }
    expect(s.imports.stats.superseded).toBe(16);
    expect(s.imports.pending).toBe(16);
    expect(s.toB.held).toHaveLength(16);
  });

  it('a retransmitted write leaves no second copy in flight that could land after a newer write', async () => {
    // Two-sector writes at LBAs 4–7 hash with bit 31 set (the import side's hash of MAC and
    // argument); a copy left in A's table keeps being resent and runs at B as a request it never saw.
    for (let lba = 0; lba < 8; lba++) {
      const s = site();
      const x = Buffer.alloc(1024, 0x11);
      const y = Buffer.alloc(1024, 0x22);
      let holdFirst = true;
      s.toB.fault = (r) =>
        isRequest(r) && holdFirst && readU64Number(r.bytes, REQUEST.SEQ) === 1 ? 'hold' : 'pass';
      await s.send(write(lba, x, { ...at, tag: 1 }));
      await s.send(write(lba, x, { ...at, tag: 2 })); // the initiator timed out: same write, new tag
      await s.advance(250); // A resends its request: held again
      let got = s.replies().map((m) => m.tag);
      if (!got.includes(2)) {
        holdFirst = false;
        await s.advance(500);
        got = got.concat(s.replies().map((m) => m.tag));
      }
      expect(got, `lba ${lba}`).toEqual([2]); // Linux waits only for the newest tag
      await s.send(write(lba, y, { ...at, tag: 3 })); // the next write to those sectors
      expect(s.replies().map((m) => m.tag)).toEqual([3]);
      holdFirst = false;
      while (s.toB.held.length > 0) s.toB.release();
      await s.flush();
      for (let i = 0; i < 4; i++) await s.advance(1000); // whatever A still resends
      expect(s.sectors(lba, 2).equals(y), `lba ${lba}`).toBe(true);
      expect(s.imports.pending).toBe(0);
    }
  });

  it('B absorbs a duplicate of a request still running, answers a finished write from its cache and reruns a read', async () => {
    const s = site();
    const ini = Buffer.from([0x52, 0x54, 0, 0, 0, 1]);
    const rec = requestRecord(ini, write(30, Buffer.alloc(512, 7), { tag: 0x55, major: 1, minor: 0 }), {
      epoch: 9,
      seq: 1,
    });
    const before = s.engine.stats().exports['e1.0']!.ata.write;
    s.exportSide.handleRequest('A', Buffer.from(rec), 0, rec.length, 0);
    s.exportSide.handleRequest('A', Buffer.from(rec), 0, rec.length, 0); // same batch: still running
    s.exportSide.endBatch();
    expect(s.exportSide.stats.dupInProgress).toBe(1);
    s.exportSide.handleRequest('A', Buffer.from(rec), 0, rec.length, 0);
    s.exportSide.endBatch();
    expect(s.exportSide.stats.dupAnswered).toBe(1);
    expect(s.engine.stats().exports['e1.0']!.ata.write - before).toBe(1);
    const replies = s.toA.take().filter((r) => r.type === RECORD_AOE_RESPONSE);
    expect(replies).toHaveLength(2);
    // [epoch 9][seq 1] and the importer's tag, both times.
    expect(replies.every((r) => r.bytes.readUInt32BE(0) === 9 && r.bytes.readUInt32BE(12 + 6) === 0x55)).toBe(
      true,
    );

    const rd = requestRecord(ini, read(30, 1, { tag: 0x56, major: 1, minor: 0 }), { epoch: 9, seq: 2 });
    s.exportSide.handleRequest('A', Buffer.from(rd), 0, rd.length, 0);
    s.exportSide.endBatch();
    s.exportSide.handleRequest('A', Buffer.from(rd), 0, rd.length, 0);
    s.exportSide.endBatch();
    expect(s.exportSide.stats.dupRerun).toBe(1);
    expect(s.toA.take().filter((r) => r.type === RECORD_AOE_RESPONSE)).toHaveLength(2);
  });

  it('requests of an older importer process (epoch) are refused once a newer one was seen', async () => {
    const s = site();
    const ini = Buffer.from([0x52, 0x54, 0, 0, 0, 1]);
    const newer = requestRecord(ini, write(40, Buffer.alloc(512, 2), { major: 1, minor: 0 }), {
      epoch: 5,
      seq: 1,
    });
    const older = requestRecord(ini, write(40, Buffer.alloc(512, 1), { major: 1, minor: 0 }), {
      epoch: 4,
      seq: 9,
    });
    s.exportSide.handleRequest('A', newer, 0, newer.length, 0);
    s.exportSide.endBatch();
    s.exportSide.handleRequest('A', older, 0, older.length, 0);
    s.exportSide.endBatch();
    expect(s.exportSide.stats.staleEpoch).toBe(1);
    expect(s.sectors(40).equals(Buffer.alloc(512, 2))).toBe(true);
    expect(s.exportSide.requestEpochSeen('A')).toBe(5);
  });

  it('nothing is sent before the peer’s hello; it fixes the epoch above what the peer saw', async () => {
    const s = site({ noHello: true });
    let sent: Buffer[] = [];
    s.toB.fault = (r) => {
      if (isRequest(r)) sent.push(r.bytes);
      return 'pass';
    };
    await s.send(read(1, 1, { ...at, tag: 3 }));
    await s.advance(500);
    expect(sent).toEqual([]);
    expect(s.imports.pending).toBe(1);
    s.imports.peerHello('B', 150);
    expect(s.imports.requestEpoch('B')).toBe(151);
    await s.advance(1);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.readUInt32BE(REQUEST.EPOCH)).toBe(151);
    expect(readU64Number(sent[0]!, REQUEST.SEQ)).toBe(1);
    expect(s.replies().map((m) => m.tag)).toEqual([3]);
    expect(s.imports.stats.reissued).toBe(0);
    sent = [];
  });

  it('hellos on later sessions (rekeys) carry our own epoch back: nothing is renumbered or run twice', async () => {
    // The review's stale write: a rekey hello used to renumber a write B had already run; the held
    // new copy then ran after a newer write to the same sector.
    const s = site();
    s.toA.fault = () => 'hold'; // B's answer to W1 stays on the path
    await s.send(write(40, Buffer.alloc(512, 1), { ...at, tag: 1 }));
    expect(s.sectors(40)[0]).toBe(1);
    s.imports.peerHello('B', s.exportSide.requestEpochSeen('A')); // the rekey's hello
    expect(s.imports.requestEpoch('B')).toBe(100);
    s.toB.fault = (r) => (isRequest(r) ? 'hold' : 'pass');
    await s.advance(1);
    expect(s.imports.stats.reissued).toBe(0);
    s.toA.fault = null;
    s.toA.release(0);
    await s.flush();
    expect(s.replies().map((m) => m.tag)).toEqual([1]);
    const held = s.toB.held.length;
    s.toB.fault = null;
    await s.send(write(40, Buffer.alloc(512, 2), { ...at, tag: 2 }));
    await s.flush();
    expect(s.replies().map((m) => m.tag)).toEqual([2]);
    for (let i = 0; i < held; i++) s.toB.release(0);
    await s.flush();
    expect(s.sectors(40)[0]).toBe(2);
  });

  it('an answer naming another request number is not taken for the request holding that tag', async () => {
    // The review's false success: after A restarts, an old process's answer can carry a tag the
    // new process hands out again; the (epoch, seq) it names tells them apart.
    const s = site();
    s.toB.fault = (r) => (isRequest(r) ? 'hold' : 'pass');
    await s.send(write(80, Buffer.alloc(512, 7), { ...at, tag: 5 }));
    const rec = s.toB.held[0]!.bytes;
    const pdu = Buffer.from(rec.subarray(REQUEST_PREFIX, REQUEST_PREFIX + 22));
    pdu[0] = 0x18;
    pdu[13] = 0x40;
    const forged = Buffer.concat([Buffer.from([0, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0, 1]), pdu]);
    s.imports.handleResponse('B', forged, 0, forged.length, s.manual.now);
    await settle();
    expect(s.replies()).toEqual([]);
    expect(s.imports.stats.staleReplies).toBe(1);
    expect(s.imports.pending).toBe(1);
  });

  it('a renumbered request answered under its old number fences the new number off', async () => {
    const s = site();
    s.toB.fault = (r) => (isRequest(r) ? 'hold' : 'pass');
    await s.send(write(50, Buffer.alloc(512, 1), { ...at, tag: 1 })); // (100, 1), held
    // A hello saying B saw a higher epoch of ours (another process with our key): renumber.
    s.imports.peerHello('B', 200);
    await s.advance(1); // W1 again as (201, 1), held too
    expect(s.imports.stats.reissued).toBe(1);
    expect(s.toB.held).toHaveLength(2);
    s.toB.fault = null;
    s.toB.release(0); // the old number runs at B and is answered
    await s.flush();
    expect(s.replies().map((m) => m.tag)).toEqual([1]);
    await s.send(write(50, Buffer.alloc(512, 2), { ...at, tag: 2 })); // (201, 2), fence 2
    expect(s.replies().map((m) => m.tag)).toEqual([2]);
    s.toB.release(0); // the new number of W1 arrives last
    await s.flush();
    expect(s.sectors(50)[0]).toBe(2);
    expect(s.exportSide.stats.staleFence).toBe(1);
  });

  it('a write still running at B (a 4 s fsync): B says so, and A sends its data 5 times instead of 10', async () => {
    const copies = async (notices: 'pass' | 'drop') => {
      const s = site();
      for (let i = 0; i < 20; i++) {
        await s.send(read(i, 1, { ...at, tag: 100 + i }));
        s.replies();
      }
      expect(s.imports.rttStatus()[0]!.rtoMs).toBeLessThanOrEqual(11); // the floor: 10 ms
      s.store.deferred = true;
      let sent = 0;
      s.toB.fault = (r) => {
        if (isRequest(r)) sent++;
        return 'pass';
      };
      s.toA.fault = (r) => (r.type === RECORD_AOE_IN_PROGRESS ? notices : 'pass');
      await s.send(write(40, Buffer.alloc(512, 9), { ...at, tag: 7 }));
      for (let t = 0; t < 4000; t += 10) await s.advance(10);
      // The write, then the fdatasync that covers it, complete at 4 s.
      // (The server settles the engine after each batch of store completions.)
      while (s.store.completeDeferred() > 0) {
        s.engine.settle();
        await settle();
      }
      const r = s.replies();
      expect(r).toHaveLength(1);
      expect(r[0]).toMatchObject({ tag: 7, cmdStatus: 0x40 });
      expect(s.sectors(40)).toEqual(Buffer.alloc(512, 9));
      expect(s.engine.stats().exports['e1.0']!.ata.write).toBe(1); // the copies never ran twice
      return { sent, inProgress: s.imports.stats.inProgress, dup: s.exportSide.stats.dupInProgress };
    };
    // Without the notices: timeouts of 10, 20, 40 … ms, capped at 1 s.
    const without = await copies('drop');
    expect(without).toEqual({ sent: 10, inProgress: 0, dup: 9 });
    // With them: 10 ms, then max(2 × age, 250 ms) from each notice: 0, 10, 260, 780, 2340 ms.
    const withNotices = await copies('pass');
    expect(withNotices).toEqual({ sent: 5, inProgress: 4, dup: 4 });
  });

  it('put-off copies go at most 2 s apart, at once after the peer’s next hello, and recover a lost reply', async () => {
    const s = site();
    for (let i = 0; i < 20; i++) {
      await s.send(read(i, 1, { ...at, tag: 100 + i }));
      s.replies();
    }
    s.store.deferred = true;
    const copies: number[] = [];
    s.toB.fault = (r) => {
      if (isRequest(r)) copies.push(s.manual.now);
      return 'pass';
    };
    let lastNotice: Buffer | undefined;
    s.toA.fault = (r) => {
      if (r.type === RECORD_AOE_IN_PROGRESS) lastNotice = Buffer.from(r.bytes);
      return 'pass';
    };
    const start = s.manual.now;
    await s.send(write(42, Buffer.alloc(512, 5), { ...at, tag: 9 }));
    for (let t = 0; t < 9000; t += 10) await s.advance(10);
    const gaps = copies.slice(1).map((c, i) => c - copies[i]!);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(2010);
    expect(gaps.slice(-2)).toEqual([2000, 2000]); // the cap, not 2 × age
    expect(s.imports.stats.inProgress).toBe(copies.length - 1);
    expect(lastNotice).toBeDefined();
    // A new session (its hello): B may have restarted and lost the request: a copy goes at once.
    const before = copies.length;
    s.imports.peerHello('B', 0, s.manual.now);
    await s.advance(10);
    expect(copies.length).toBe(before + 1);
    // Not again within a second (a peer cannot pull copies with hellos as fast as it likes).
    s.imports.handleInProgress('B', lastNotice!, 0, 16, s.manual.now);
    s.imports.peerHello('B', 0, s.manual.now);
    await s.advance(10);
    expect(copies.length).toBe(before + 1);
    // The write completes at B, but its reply is lost on the way: the next copy (≤ 2 s) is
    // answered from B's reply cache, and the initiator gets its one reply.
    let dropped = 0;
    s.toA.fault = (r) => (r.type === RECORD_AOE_RESPONSE && dropped++ === 0 ? 'drop' : 'pass');
    while (s.store.completeDeferred() > 0) {
      s.engine.settle();
      await settle();
    }
    const done = s.manual.now;
    expect(s.replies()).toEqual([]);
    while (s.replies().length === 0 && s.manual.now - done < 5000) await s.advance(10);
    expect(s.manual.now - done).toBeLessThanOrEqual(2010);
    expect(s.exportSide.stats.dupAnswered).toBe(1);
    expect(s.engine.stats().exports['e1.0']!.ata.write).toBe(1);
    expect(s.manual.now - start).toBeLessThan(12_000);
  });

  it('an AOE_IN_PROGRESS for a request not yet numbered (held before the peer’s hello) is ignored', async () => {
    const s = site({ noHello: true });
    await s.send(write(43, Buffer.alloc(512, 6), { ...at, tag: 10 }));
    expect(s.imports.pending).toBe(1);
    // Its request id is in no record yet (nothing was sent): read from the table itself.
    const table = (s.imports as unknown as { table: TagMap }).table;
    const slot = Array.from({ length: table.capacity }, (_, i) => i).find((i) => table.isLive(i))!;
    const n = Buffer.alloc(16); // epoch 0, seq 0: what an unnumbered slot holds
    n.writeUInt32BE(table.tagOf(slot), 12);
    s.imports.handleInProgress('B', n, 0, 16, s.manual.now);
    expect(s.imports.stats).toMatchObject({ inProgress: 0, staleReplies: 1 });
  });

  it('an AOE_IN_PROGRESS naming another request number, another peer or malformed changes nothing', async () => {
    const s = site();
    s.store.deferred = true;
    let sent = 0;
    s.toB.fault = (r) => {
      if (isRequest(r)) sent++;
      return 'pass';
    };
    s.toA.fault = (r) => (r.type === RECORD_AOE_IN_PROGRESS ? 'drop' : 'pass'); // only ours below
    await s.send(write(41, Buffer.alloc(512, 1), { ...at, tag: 8 }));
    const [req] = s.toB.sent.filter(isRequest).slice(-1);
    const epoch = req!.bytes.readUInt32BE(REQUEST.EPOCH);
    const seq = readU64Number(req!.bytes, REQUEST.SEQ);
    const tag = req!.bytes.readUInt32BE(REQUEST_PREFIX + 6);
    const notice = (e: number, q: number, t: number) => {
      const b = Buffer.alloc(16);
      b.writeUInt32BE(e, 0);
      b.writeUInt32BE(0, 4);
      b.writeUInt32BE(q, 8);
      b.writeUInt32BE(t, 12);
      return b;
    };
    s.imports.handleInProgress('B', notice(epoch + 1, seq, tag), 0, 16, s.manual.now);
    s.imports.handleInProgress('B', notice(epoch, seq + 1, tag), 0, 16, s.manual.now);
    s.imports.handleInProgress('C', notice(epoch, seq, tag), 0, 16, s.manual.now);
    s.imports.handleInProgress('B', notice(epoch, seq, tag), 0, 12, s.manual.now);
    expect(s.imports.stats).toMatchObject({ inProgress: 0, staleReplies: 3, dropped: 1 });
    await s.advance(250); // the first timeout (200 ms before any sample) still resends
    expect(sent).toBe(2);
    s.imports.handleInProgress('B', notice(epoch, seq, tag), 0, 16, s.manual.now);
    expect(s.imports.stats.inProgress).toBe(1);
    await s.advance(400); // max(2 × 250 ms, 250 ms) = 500 ms from the notice: not yet
    expect(sent).toBe(2);
    await s.advance(200);
    expect(sent).toBe(3);
  });

  it('measures the round trip and resends on a timeout near it', async () => {
    const s = site();
    for (let i = 0; i < 20; i++) {
      s.toA.fault = () => 'pass';
      await s.send(read(i, 1, { ...at, tag: 100 + i }));
      s.replies();
    }
    const [rtt] = s.imports.rttStatus();
    expect(rtt!.samples).toBe(20);
    // The manual clock did not move: the measured round trip is 0, the timeout its floor.
    expect(rtt!.rtoMs).toBeLessThanOrEqual(11);
  });
});

describe('randomized faults with our initiator (sans-I/O, real time)', () => {
  let stop: (() => void) | null = null;
  afterEach(() => {
    stop?.();
    stop = null;
  });

  it('5 % loss, 5 % duplication and reordering both ways: every write lands once, reads verify', async () => {
    const s = site({ clock: () => performance.now() });
    let seed = 42;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const fault = () => {
      const x = rnd();
      if (x < 0.05) return 'drop' as const;
      if (x < 0.1) return 'dup' as const;
      if (x < 0.2) return 1 + Math.floor(rnd() * 20); // delayed: reordered behind later records
      return 'pass' as const;
    };
    s.toB.fault = fault;
    s.toA.fault = fault;
    const timer = setInterval(() => {
      s.imports.retransmit(performance.now());
      s.exportSide.tick(performance.now());
    }, 2);
    stop = () => clearInterval(timer);
    const ini = new Initiator(s.iniLink);
    const found = await ini.queryConfig(50, { major: 7, minor: 0 });
    expect(found).toHaveLength(1);
    const c = ini.client(found[0]!);
    const data = pattern(200, 91);
    const io = (op: 'read' | 'write', lba: number, n: number, buf: Buffer) =>
      new Promise<void>((res, rej) => {
        const cb = (e: Error | null) => (e ? rej(e) : res());
        if (op === 'read') c.read(lba, n, buf, 0, ini.now(), cb);
        else c.write(lba, n, buf, 0, ini.now(), cb);
      });
    for (let k = 0; k < 10; k++)
      await io('write', k * 20, 20, data.subarray(k * 20 * 512, (k + 1) * 20 * 512));
    const back = Buffer.alloc(data.length);
    for (let k = 0; k < 10; k++)
      await io('read', k * 20, 20, back.subarray(k * 20 * 512, (k + 1) * 20 * 512));
    ini.close();
    expect(back.equals(data)).toBe(true);
    expect(s.sectors(0, 200).equals(data)).toBe(true);
    expect(s.imports.stats.retransmits).toBeGreaterThan(0);
    expect(s.imports.stats.failed).toBe(0);
    const b = s.exportSide.stats;
    expect(b.dupInProgress + b.dupAnswered + b.dupRerun).toBeGreaterThan(0);
    expect(b.staleEpoch + b.staleFence + b.staleOld + b.dupLost).toBe(0);
  }, 30_000);
});
