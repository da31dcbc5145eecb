/**
 * ExportSide (side B) with a real TargetEngine behind a TunnelPeerLink: deny by default,
 * read-only grants answered with the protocol's errors, batching into the engine.
 */
import { describe, expect, it } from 'vitest';
import type {
  AoeMessage,
  AtaMessage,
  MacMaskMessage,
  QueryConfigMessage,
  ReserveMessage,
} from '../../../src/aoe/index.js';
import { ExportSide, type Grant } from '../../../src/gateway/export-side.js';
import type { ForwardSide } from '../../../src/gateway/forward-side.js';
import { TunnelPeerLink } from '../../../src/gateway/peer-link.js';
import { RECORD_AOE_RESPONSE, RESPONSE_PREFIX } from '../../../src/gateway/peer-messages.js';
import type { PeerPort } from '../../../src/gateway/peer-port.js';
import type { ReplyCacheOptions } from '../../../src/gateway/reply-cache.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import { ata, mac, mask, pattern, qc, read, reserve, write } from '../target/helpers.js';
import { decode, engineWith, PipePort, requestRecord, serveEngine } from './helpers.js';

const INI = '52:54:00:00:00:01';
const ETH = Buffer.from([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0x88, 0xa2]);

function gateway(grants: Grant[], o: { peer?: string; replyCache?: ReplyCacheOptions } = {}) {
  const store10 = new MemoryStore(pattern(64, 1));
  const store11 = new MemoryStore(pattern(64, 2));
  const engine = engineWith({ shelf: 1, slot: 0, store: store10 }, { shelf: 1, slot: 1, store: store11 });
  const port = new PipePort(o.peer ?? 'A');
  const link = new TunnelPeerLink(port, 0, 8000);
  serveEngine(engine, 100, link);
  const side = new ExportSide(
    new Map([
      [256, 16],
      [257, 16],
    ]),
    null,
    o.replyCache ? { replyCache: o.replyCache } : {},
  );
  side.addPeer(port, grants, link);
  const s = {
    engine,
    store10,
    store11,
    port,
    link,
    side,
    /** Sends one receive batch of requests from `peer` (default this peer). */
    batch(frames: Buffer[], peer = port.name, initiator = INI) {
      for (const f of frames) {
        const r = requestRecord(mac(initiator), f);
        side.handleRequest(peer, r, 0, r.length, 0);
      }
      side.endBatch();
    },
    /** Decoded AOE_RESPONSE records sent back to the peer since the last call. */
    responses(p: PipePort = port): AoeMessage[] {
      return p
        .take()
        .filter((r) => r.type === RECORD_AOE_RESPONSE)
        .map((r) => decode(Buffer.concat([ETH, r.bytes.subarray(RESPONSE_PREFIX)])));
    },
  };
  return s;
}

const to10 = { dst: '02:a0:e0:00:00:00', src: INI, major: 1, minor: 0 };

describe('ExportSide: deny by default', () => {
  it('drops requests for a target the peer was not granted, as if it did not exist', () => {
    const s = gateway([{ shelf: 1, slot: 0, readOnly: false }]);
    s.batch([
      read(0, 1, { ...to10, minor: 1 }),
      qc({ ...to10, minor: 1 }),
      qc({ ...to10, major: 0xffff, minor: 0xff }), // broadcast: no grant names it
      qc({ ...to10, major: 1, minor: 0xff }),
      write(0, Buffer.alloc(512, 1), { ...to10, minor: 1 }),
    ]);
    expect(s.responses()).toEqual([]);
    expect(s.side.stats.denied).toBe(5);
    expect(s.store11.readvCalls + s.store11.writevCalls).toBe(0);
    expect(s.link.stats().rxFrames).toBe(0);
  });

  it('a peer with no grants reaches nothing; an unknown peer name is malformed', () => {
    const s = gateway([]);
    s.batch([read(0, 1, to10), qc(to10)]);
    expect(s.side.stats.denied).toBe(2);
    s.batch([read(0, 1, to10)], 'mallory');
    expect(s.side.stats.malformed).toBe(1);
    expect(s.responses()).toEqual([]);
    expect(s.store10.readvCalls).toBe(0);
  });

  it('a grant for an address that is neither an export nor a forward reaches nothing', () => {
    const s = gateway([{ shelf: 9, slot: 9, readOnly: false }]);
    s.batch([qc({ ...to10, major: 9, minor: 9 })]);
    expect(s.side.stats.denied).toBe(1);
    expect(s.responses()).toEqual([]);
  });

  it('a granted export without an engine link for the peer is denied', () => {
    const port = new PipePort('A');
    const side = new ExportSide(new Map([[256, 16]]), null);
    side.addPeer(port, [{ shelf: 1, slot: 0, readOnly: false }], null);
    const r = requestRecord(mac(INI), read(0, 1, to10));
    side.handleRequest('A', r, 0, r.length, 0);
    side.endBatch();
    expect(side.stats.denied).toBe(1);
    expect(port.sent).toEqual([]);
  });

  it('drops a PDU larger than the peer link carries as tooLarge, before the window: the same seq still runs', () => {
    for (const readOnly of [false, true]) {
      const s = gateway([{ shelf: 1, slot: 0, readOnly }]);
      // 16 sectors of data: 8214 bytes of PDU, above the link's 8000.
      const big = requestRecord(mac(INI), write(0, Buffer.alloc(16 * 512, 0x42), { ...to10, tag: 81 }), {
        seq: 7,
      });
      s.side.handleRequest('A', big, 0, big.length, 0);
      s.side.endBatch();
      expect(s.side.stats).toMatchObject({ requests: 1, tooLarge: 1, denied: 0, readOnlyRefused: 0 });
      expect(s.side.inFlight).toBe(0);
      expect(s.responses()).toEqual([]);
      expect(s.link.stats()).toMatchObject({ rxFrames: 0, rxTruncated: 0 });
      const small = requestRecord(mac(INI), read(0, 1, { ...to10, tag: 82 }), { seq: 7 });
      s.side.handleRequest('A', small, 0, small.length, 0);
      s.side.endBatch();
      expect(s.responses().map((r) => r.tag)).toEqual([82]);
      expect(s.store10.writevCalls).toBe(0);
    }
  });

  it('drops group source MACs, responses, error-flagged and wrong-version PDUs and short records', () => {
    const s = gateway([{ shelf: 1, slot: 0, readOnly: false }]);
    s.batch([read(0, 1, to10)], 'A', 'ff:ff:ff:ff:ff:ff');
    s.batch([read(0, 1, to10)], 'A', '33:33:00:00:00:01');
    expect(s.side.stats.groupSource).toBe(2);
    const resp = read(0, 1, to10);
    resp[14] = resp[14]! | 0x08;
    const eflag = read(0, 1, to10);
    eflag[14] = eflag[14]! | 0x04;
    const v2 = read(0, 1, to10);
    v2[14] = 0x20;
    s.batch([resp, eflag, v2]);
    for (const len of [0, 5, 15]) s.side.handleRequest('A', Buffer.alloc(len), 0, len, 0);
    expect(s.side.stats.malformed).toBe(6);
    expect(s.responses()).toEqual([]);
    expect(s.link.stats().rxFrames).toBe(0);
  });
});

describe('ExportSide: read-only grant', () => {
  const ro = () => gateway([{ shelf: 1, slot: 0, readOnly: true }]);

  it('answers writes with ATA ABRT (status 0x41, error 0x04) and never touches the store', () => {
    const s = ro();
    const before = Buffer.from(s.store10.data);
    const writes = [
      write(0, Buffer.alloc(512, 0xaa), { ...to10, tag: 11 }),
      ata({ op: 0x30, lba: 1, count: 1, data: Buffer.alloc(512, 0xbb), ...to10, tag: 12 }),
      // A read opcode with the W flag set is not a read.
      ata({ op: 0x24, lba: 0, count: 1, write: true, data: Buffer.alloc(512), ...to10, tag: 13 }),
      // Unknown ATA opcodes change who knows what: refused too.
      ata({ op: 0xc5, lba: 0, count: 0, ...to10, tag: 14 }),
    ];
    s.batch(writes);
    const r = s.responses() as AtaMessage[];
    expect(r.map((x) => x.tag)).toEqual([11, 12, 13, 14]);
    for (const x of r) {
      expect(x).toMatchObject({ command: 'ata', response: true, errorFlag: false, major: 1, minor: 0 });
      expect(x.cmdStatus).toBe(0x41);
      expect(x.errFeature).toBe(0x04);
    }
    expect(s.side.stats.readOnlyRefused).toBe(4);
    expect(s.store10.writevCalls).toBe(0);
    expect(s.store10.data.equals(before)).toBe(true);
    expect(s.link.stats().rxFrames).toBe(0);
  });

  it('answers Query Config set with AoE error 4, mask edits with 2, reservations with 6', () => {
    const s = ro();
    s.batch([
      qc({ ...to10, ccmd: 3, config: 'x', tag: 21 }),
      qc({ ...to10, ccmd: 4, config: 'y', tag: 22 }),
      mask({ ...to10, mcmd: 1, directives: [{ dcmd: 1, mac: INI }], tag: 23 }),
      reserve({ ...to10, rcmd: 1, macs: [INI], tag: 24 }),
      reserve({ ...to10, rcmd: 2, macs: [INI], tag: 25 }),
    ]);
    const r = s.responses();
    expect(r.map((x) => [x.tag, x.errorFlag, x.error])).toEqual([
      [21, true, 4],
      [22, true, 4],
      [23, true, 2],
      [24, true, 6],
      [25, true, 6],
    ]);
    expect(r.every((x) => x.response && x.major === 1 && x.minor === 0)).toBe(true);
    // The request is echoed whole (as the engine does): the replies decode, strings and lists included.
    expect((r[0] as QueryConfigMessage).config.toString()).toBe('x');
    expect((r[2] as MacMaskMessage).directives).toEqual([{ dcmd: 1, mac: INI }]);
    expect((r[3] as ReserveMessage).macs).toEqual([INI]);
    expect(s.engine.exportState('e1.0')).toMatchObject({ config: Buffer.alloc(0) });
    expect(s.engine.exportState('e1.0')!.reserve).toEqual([]);
    expect(s.engine.exportState('e1.0')!.masks).toEqual([]);
  });

  it('lets reads and the read forms of the control commands through to the engine', () => {
    const s = ro();
    s.batch([
      read(4, 2, { ...to10, tag: 31 }),
      ata({ op: 0x20, lba: 6, count: 1, lba48: false, ...to10, tag: 32 }),
      ata({ op: 0xec, ...to10, tag: 33 }),
      ata({ op: 0xe5, count: 0, ...to10, tag: 34 }),
      ata({ op: 0xea, count: 0, ...to10, tag: 35 }),
      qc({ ...to10, tag: 36 }),
      mask({ ...to10, mcmd: 0, tag: 37 }),
      reserve({ ...to10, rcmd: 0, tag: 38 }),
    ]);
    const r = s.responses();
    expect(r.map((x) => x.tag).sort()).toEqual([31, 32, 33, 34, 35, 36, 37, 38]);
    for (const x of r) expect(x.errorFlag).toBe(false);
    const byTag = new Map(r.map((x) => [x.tag, x]));
    const r31 = byTag.get(31) as AtaMessage;
    expect(r31.cmdStatus).toBe(0x40);
    expect(r31.data.subarray(0, 1024)).toEqual(s.store10.data.subarray(4 * 512, 6 * 512));
    expect((byTag.get(32) as AtaMessage).data.subarray(0, 512)).toEqual(
      s.store10.data.subarray(6 * 512, 7 * 512),
    );
    expect(s.side.stats.readOnlyRefused).toBe(0);
    expect(s.side.stats.toExports).toBe(8);
  });

  it('a read-write grant writes', () => {
    const s = gateway([{ shelf: 1, slot: 0, readOnly: false }]);
    const data = Buffer.alloc(1024, 0x77);
    s.batch([write(10, data, { ...to10, tag: 41 })]);
    const [r] = s.responses() as AtaMessage[];
    expect(r).toMatchObject({ tag: 41, cmdStatus: 0x40, errorFlag: false });
    expect(s.store10.data.subarray(10 * 512, 12 * 512)).toEqual(data);
  });
});

describe('ExportSide: at most once', () => {
  it('a write whose reply the cache cannot keep still never runs twice; a read still reruns', () => {
    // 160 bytes keep replies of at most 40: a write's reply is 46 (22, padded to Ethernet's minimum).
    const s = gateway([{ shelf: 1, slot: 0, readOnly: false }], { replyCache: { bytes: 160 } });
    const ini = mac(INI);
    const send = (frame: Buffer, seq: number) => {
      const r = requestRecord(ini, frame, { epoch: 3, seq });
      s.side.handleRequest('A', r, 0, r.length, 0);
      s.side.endBatch();
    };
    const x = write(5, Buffer.alloc(512, 0x11), { ...to10, tag: 1 });
    const y = write(5, Buffer.alloc(512, 0x22), { ...to10, tag: 2 });
    send(x, 1);
    send(y, 2);
    expect(s.responses().map((r) => r.tag)).toEqual([1, 2]);
    send(x, 1); // a late copy of the first write
    expect(s.store10.data.subarray(5 * 512, 6 * 512).equals(Buffer.alloc(512, 0x22))).toBe(true);
    expect(s.responses()).toEqual([]);
    expect(s.side.stats.dupLost).toBe(1);
    expect(s.side.stats.dupRerun).toBe(0);
    // A read changes nothing: a copy of it runs again.
    send(read(5, 1, { ...to10, tag: 3 }), 3);
    send(read(5, 1, { ...to10, tag: 3 }), 3);
    expect(s.responses().map((r) => r.tag)).toEqual([3, 3]);
    expect(s.side.stats.dupRerun).toBe(1);
  });
  it('a late answer from an older importer epoch never stands in for the new epoch’s kept reply', () => {
    // A native target (a stub of the forward side) answers when told, so a request of the old
    // epoch can still be in flight when the importer's next epoch reuses its seq.
    const pending: { peer: string; pdu: Buffer }[] = [];
    let completion: PeerPort | null = null;
    const forwards = {
      addPeer: (p: PeerPort) => {
        completion = p;
      },
      has: (shelf: number, slot: number) => shelf === 2 && slot === 0,
      relay: (peer: string, buf: Uint8Array, off: number, len: number) => {
        pending.push({ peer, pdu: Buffer.from(buf.subarray(off, off + len)) });
        return true;
      },
    } as unknown as ForwardSide;
    const port = new PipePort('A');
    const side = new ExportSide(new Map(), forwards);
    side.addPeer(port, [{ shelf: 2, slot: 0, readOnly: false }]);
    /** The target's answer to pending request `i`: ATA status `status`, 46 bytes as on the wire. */
    const answer = (i: number, status: number) => {
      const { pdu } = pending[i]!;
      const r = Buffer.alloc(46);
      pdu.copy(r, 0, 0, 22);
      r[0] = 0x18;
      r[13] = status;
      completion!.send(RECORD_AOE_RESPONSE, r, 0, r.length);
    };
    const ini = mac(INI);
    const to20 = { dst: '02:a0:e0:00:00:00', src: INI, major: 2, minor: 0 };
    const request = (tag: number, epoch: number) => {
      const r = requestRecord(ini, write(5, Buffer.alloc(512, tag), { ...to20, tag }), { epoch, seq: 1 });
      side.handleRequest('A', r, 0, r.length, 0);
      side.endBatch();
    };
    const answers = () =>
      port.take().map((r) => ({
        tag: r.bytes.readUInt32BE(RESPONSE_PREFIX + 6),
        status: r.bytes[RESPONSE_PREFIX + 13],
      }));

    request(0x11, 7); // epoch 7, seq 1: still at the target when the importer restarts
    request(0x22, 8); // epoch 8, seq 1: a different write
    expect(pending).toHaveLength(2);
    answer(1, 0x51); // the new write fails (DRDY|ERR)
    answer(0, 0x50); // then the old one's success arrives
    expect(answers()).toEqual([
      { tag: 0x22, status: 0x51 },
      { tag: 0x11, status: 0x50 },
    ]);
    // The importer resends (8, 1): it gets the failure it was owed, never the old write's success.
    request(0x22, 8);
    expect(answers()).toEqual([{ tag: 0x22, status: 0x51 }]);
    expect(side.stats.dupAnswered).toBe(1);
  });

  it('a new importer epoch does not find the old epoch’s kept replies', () => {
    // 200 bytes keep replies up to 50: a write reply (46) fits, a Query Config set echoing a long
    // string does not.
    const s = gateway([{ shelf: 1, slot: 0, readOnly: false }], { replyCache: { bytes: 200 } });
    const ini = mac(INI);
    const send = (frame: Buffer, epoch: number) => {
      const r = requestRecord(ini, frame, { epoch, seq: 1 });
      s.side.handleRequest('A', r, 0, r.length, 0);
      s.side.endBatch();
    };
    send(write(5, Buffer.alloc(512, 1), { ...to10, tag: 1 }), 7);
    expect(s.responses().map((r) => r.tag)).toEqual([1]);
    const set = qc({ ...to10, tag: 2, ccmd: 4, config: 'x'.repeat(100) }); // force-set: too long to keep
    send(set, 8);
    expect(s.responses().map((r) => r.command)).toEqual(['query-config']);
    send(set, 8); // a copy: must not be answered with epoch 7's write reply
    expect(s.responses()).toEqual([]);
    expect(s.side.stats.dupLost).toBe(1);
  });
});

describe('ExportSide: batching and peer separation', () => {
  it('requests of one receive batch reach the engine as one batch (one readv, one commit)', () => {
    const s = gateway([{ shelf: 1, slot: 0, readOnly: false }]);
    s.batch([0, 1, 2, 3].map((lba) => read(lba, 1, { ...to10, tag: 50 + lba })));
    expect(s.link.stats()).toMatchObject({ rxBatches: 1, rxFrames: 4 });
    expect(s.store10.readvCalls).toBe(1); // coalesced: the engine saw them together
    expect(s.responses()).toHaveLength(4);
    s.batch([0, 1, 2, 3].map((lba) => write(20 + lba, Buffer.alloc(512, lba), { ...to10, tag: 60 + lba })));
    expect(s.store10.writevCalls).toBe(1);
    expect(s.store10.syncs).toBe(1);
    expect(s.link.stats()).toMatchObject({ rxBatches: 2, rxFrames: 8 });
    expect(s.responses()).toHaveLength(4);
  });

  it('nothing reaches the engine before endBatch', () => {
    const s = gateway([{ shelf: 1, slot: 0, readOnly: false }]);
    const r = requestRecord(mac(INI), read(0, 1, to10));
    s.side.handleRequest('A', r, 0, r.length, 0);
    expect(s.link.stats().rxFrames).toBe(0);
    s.side.endBatch();
    expect(s.link.stats().rxFrames).toBe(1);
    s.side.endBatch(); // idempotent
    expect(s.link.stats().rxBatches).toBe(1);
  });

  it('each peer reaches only its grants and gets only its own replies', () => {
    const s = gateway([{ shelf: 1, slot: 0, readOnly: false }]);
    const portB = new PipePort('B');
    const linkB = new TunnelPeerLink(portB, 1, 8000);
    serveEngine(s.engine, 101, linkB);
    s.side.addPeer(portB, [{ shelf: 1, slot: 1, readOnly: false }], linkB);
    expect(linkB.mac).not.toEqual(s.link.mac);
    s.batch([read(0, 1, { ...to10, tag: 71 }), read(0, 1, { ...to10, minor: 1, tag: 72 })], 'A');
    s.batch([read(0, 1, { ...to10, tag: 73 }), read(0, 1, { ...to10, minor: 1, tag: 74 })], 'B');
    expect(s.responses().map((r) => r.tag)).toEqual([71]);
    expect(s.responses(portB).map((r) => r.tag)).toEqual([74]);
    expect(s.side.stats.denied).toBe(2);
    expect(s.side.grants('B')).toEqual([{ shelf: 1, slot: 1, readOnly: false }]);
  });

  it('the engine’s broadcast announcements never become records for the peer', () => {
    const s = gateway([{ shelf: 1, slot: 0, readOnly: false }]);
    expect(s.engine.announce(100, s.link)).toBeGreaterThan(0);
    expect(s.port.sent).toEqual([]);
  });
});

describe('ExportSide: grants changed while running (reload)', () => {
  const rw = (slot: number) => ({ shelf: 1, slot, readOnly: false });
  const to11 = { ...to10, minor: 1 };

  it('fails requests in flight on a revoked target at once with ATA ABRT, and refuses later ones', () => {
    const s = gateway([rw(0), rw(1)]);
    // The engine link holds what it gets: requests stay in flight here.
    s.link.pause();
    s.batch([write(0, Buffer.alloc(512, 0xaa), { ...to10, tag: 5 }), read(0, 1, { ...to11, tag: 6 })]);
    expect(s.responses()).toEqual([]);
    expect(s.side.inFlight).toBe(2);
    expect(s.side.setGrants('A', [rw(1)])).toBe(1);
    const failed = s.responses() as AtaMessage[];
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ tag: 5, major: 1, minor: 0, cmdStatus: 0x41, errFeature: 0x04 });
    expect(s.side.inFlight).toBe(1);
    expect(s.side.stats.revokedInFlight).toBe(1);
    s.link.resume();
    // Later requests for the revoked target: refused the same way, never passed on.
    s.batch([read(0, 1, { ...to10, tag: 7 }), read(0, 1, { ...to11, tag: 8 })]);
    const r = s.responses() as AtaMessage[];
    expect(r.map((x) => [x.tag, x.cmdStatus])).toEqual([
      [7, 0x41],
      [8, 0x40],
    ]);
    expect(s.side.stats.revoked).toBe(1);
    expect(s.side.grants('A').map((g) => g.slot)).toEqual([1]);
  });

  it('a widened grant works with the next request; a target never granted stays silent', () => {
    const s = gateway([rw(1)]);
    s.batch([read(0, 1, { ...to10, tag: 9 })]);
    expect(s.responses()).toEqual([]);
    expect(s.side.setGrants('A', [rw(0), rw(1)])).toBe(1);
    s.batch([read(0, 1, { ...to10, tag: 10 })]);
    expect((s.responses() as AtaMessage[]).map((x) => [x.tag, x.cmdStatus])).toEqual([[10, 0x40]]);
    // Revoked and granted again: served again.
    s.side.setGrants('A', [rw(1)]);
    s.side.setGrants('A', [rw(0), rw(1)]);
    s.batch([read(0, 1, { ...to10, tag: 11 })]);
    expect((s.responses() as AtaMessage[]).map((x) => [x.tag, x.cmdStatus])).toEqual([[11, 0x40]]);
    expect(s.side.stats.revoked).toBe(0);
  });

  it('a removed peer is forgotten: its requests in flight are dropped, later ones are malformed', () => {
    const s = gateway([rw(0)]);
    s.link.pause();
    s.batch([read(0, 1, { ...to10, tag: 12 })]);
    expect(s.side.inFlight).toBe(1);
    s.side.removePeer('A');
    expect(s.side.inFlight).toBe(0);
    s.link.resume();
    s.batch([read(0, 1, { ...to10, tag: 13 })]);
    expect(s.responses()).toEqual([]);
    expect(s.side.stats.malformed).toBe(1);
  });
});
