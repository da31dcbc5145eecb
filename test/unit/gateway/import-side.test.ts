/**
 * ImportSide (side A) on an in-memory segment: an initiator link and the gateway's link, the
 * exporter played by hand through a PipePort (records inspected, responses crafted).
 */
import { describe, expect, it } from 'vitest';
import type { AtaMessage, QueryConfigMessage } from '../../../src/aoe/index.js';
import { ImportSide, type ImportSpec } from '../../../src/gateway/import-side.js';
import { PDU, pduTag, setPduTag } from '../../../src/gateway/pdu.js';
import {
  RECORD_AOE_REQUEST,
  REQUEST,
  REQUEST_PREFIX,
  RESPONSE_PREFIX,
  type TargetAdvert,
} from '../../../src/gateway/peer-messages.js';
import { FakeSegment } from '../../../src/io/fake-link.js';
import { ata, mac, qc, read } from '../target/helpers.js';
import { capture, decode, PipePort, settle } from './helpers.js';

const INI = '52:54:00:00:00:01';
const GW = '02:00:00:00:0a:01';
const BCAST = 'ff:ff:ff:ff:ff:ff';

const advert = (over: Partial<TargetAdvert> = {}): TargetAdvert => ({
  shelf: 1,
  slot: 0,
  bufferCount: 16,
  sectors: 4096n,
  configString: Buffer.from('remote-cfg'),
  maxSectors: 255,
  name: 'disk',
  readOnly: false,
  firmware: 0x4011,
  ...over,
});

function site(
  o: {
    imports?: ImportSpec[];
    mtu?: number;
    maxRecord?: number;
    pendingCapacity?: number;
    failAfterMs?: number;
  } = {},
) {
  const seg = new FakeSegment();
  const ini = seg.attach({ mac: INI, name: 'ini', mtu: 9000 });
  const gw = seg.attach({ mac: GW, name: 'gw', mtu: o.mtu ?? 9000 });
  const got = capture(ini);
  const side = new ImportSide({
    imports: o.imports ?? [
      { peer: 'B', remote: { shelf: 1, slot: 0 }, localShelf: 7, localSlot: 3, links: ['lan'] },
    ],
    maxRecord: o.maxRecord ?? 8000,
    ...(o.pendingCapacity ? { pendingCapacity: o.pendingCapacity } : {}),
    ...(o.failAfterMs ? { failAfterMs: o.failAfterMs } : {}),
  });
  const clock = { now: 1000 };
  const id = side.addLink('lan', gw);
  gw.onBatch((f, l, n) => side.handleFrames(id, f, l, n, clock.now));
  const port = new PipePort('B');
  side.addPeer(port);
  side.peerHello('B', 0);
  const s = {
    seg,
    ini,
    gw,
    got,
    side,
    clock,
    port,
    offer(targets: TargetAdvert[] = [advert()], generation = 1) {
      side.handleAdverts('B', { generation, chunk: 0, chunks: 1, targets }, clock.now);
    },
    async send(...frames: Buffer[]) {
      for (const f of frames) ini.send(f);
      await settle();
    },
    /** Replies received by the initiator since the last call, decoded. */
    replies() {
      return got.splice(0).map(decode);
    },
    /** AOE_REQUEST records sent to the exporter since the last call. */
    requests() {
      return port.take().filter((r) => r.type === RECORD_AOE_REQUEST);
    },
  };
  return s;
}

/** The exporter's answer to a relayed request record: the PDU, response flag set, status DRDY. */
/**
 * The exporter's answer to a relayed request record: [its epoch][its seq], then the PDU with the
 * response flag set and status DRDY.
 */
function answer(record: Buffer, o: { command?: number; tag?: number; data?: Buffer } = {}): Buffer {
  const pdu = Buffer.from(record.subarray(REQUEST_PREFIX, REQUEST_PREFIX + 22));
  pdu[PDU.VER_FLAGS] = 0x18;
  pdu[PDU.ATA_CMD_STATUS] = 0x40;
  if (o.command !== undefined) pdu[PDU.COMMAND] = o.command;
  if (o.tag !== undefined) setPduTag(pdu, 0, o.tag);
  return Buffer.concat([numberOf(record), pdu, o.data ?? Buffer.alloc(24)]);
}

/** The (epoch, seq) prefix of an AOE_RESPONSE answering `record`. */
function numberOf(record: Buffer): Buffer {
  return Buffer.from(record.subarray(REQUEST.EPOCH, REQUEST.EPOCH + RESPONSE_PREFIX));
}

describe('ImportSide: local answers and usability', () => {
  it('is silent until the import is usable: no advert, no answer, no relay', async () => {
    const s = site();
    await s.send(
      qc({ dst: BCAST, src: INI, major: 0xffff, minor: 0xff }),
      read(0, 1, { dst: GW, src: INI, major: 7, minor: 3 }),
    );
    expect(s.replies()).toEqual([]);
    expect(s.requests()).toEqual([]);
    expect(s.side.stats.unusable).toBe(2);
    expect(s.side.status()[0]!.usable).toBe(false);
  });

  it('announces an import once it becomes usable, from the gateway MAC at the local address', async () => {
    const s = site();
    s.offer();
    await settle();
    const [a, ...rest] = s.replies() as QueryConfigMessage[];
    expect(rest).toEqual([]);
    expect(a).toMatchObject({
      command: 'query-config',
      response: true,
      dst: BCAST,
      src: GW,
      major: 7,
      minor: 3,
      config: Buffer.from('remote-cfg'),
    });
    expect(s.side.stats.announcements).toBe(1);
    // A second advert of the same set changes nothing: no second announcement.
    s.offer(undefined, 2);
    await settle();
    expect(s.replies()).toEqual([]);
  });

  it('answers Query Config read locally with local shelf.slot, bufcnt >= 2 and the least sector count', async () => {
    // [remote max sectors, link MTU, tunnel record, expected sector count]
    const cases: [number, number, number, number][] = [
      [255, 9000, 8000, Math.floor((8000 - 6 - 22) / 512)], // tunnel record bounds it (15)
      [255, 1500, 8000, 2], // link MTU: (1500 - 36) / 512
      [4, 9000, 8000, 4], // the exporter's own limit
      [255, 9000, 60000, 17], // (9000 - 36) / 512
      [0, 9000, 8000, 2], // 0 on the wire means 2
    ];
    for (const [remote, mtu, maxRecord, expected] of cases) {
      const s = site({ mtu, maxRecord });
      s.offer([advert({ maxSectors: remote, bufferCount: 1 })]);
      await settle();
      s.replies();
      const tag = 0x1234;
      await s.send(qc({ dst: BCAST, src: INI, major: 0xffff, minor: 0xff, tag }));
      const [r, ...rest] = s.replies() as QueryConfigMessage[];
      expect(rest).toEqual([]);
      expect(r).toMatchObject({
        dst: INI,
        src: GW,
        major: 7,
        minor: 3,
        tag,
        response: true,
        errorFlag: false,
        bufferCount: 2,
        firmwareVersion: 0x4011,
        sectorCount: expected,
        ccmd: 0,
      });
      expect(s.requests()).toEqual([]); // answered here, not relayed
    }
  });

  it('advertises the exporter buffer count when it is at least 2', async () => {
    const s = site();
    s.offer([advert({ bufferCount: 48 })]);
    await settle();
    s.replies();
    await s.send(qc({ dst: GW, src: INI, major: 7, minor: 3 }));
    expect((s.replies()[0] as QueryConfigMessage).bufferCount).toBe(48);
  });

  it('answers test-exact and test-prefix only when they match', async () => {
    const s = site();
    s.offer();
    await settle();
    s.replies();
    const q = (ccmd: number, config: string) => qc({ dst: GW, src: INI, major: 7, minor: 3, ccmd, config });
    await s.send(
      q(1, 'remote-cfg'),
      q(1, 'remote'),
      q(2, 'remote'),
      q(2, 'remote-cfg-longer'),
      q(2, 'x'),
      q(2, ''),
    );
    const r = s.replies() as QueryConfigMessage[];
    expect(r.map((x) => x.ccmd)).toEqual([1, 2, 2]);
    expect(r.every((x) => x.config.toString() === 'remote-cfg')).toBe(true);
    expect(s.side.stats.answeredLocally).toBe(3);
  });

  it('a Query Config addressed elsewhere, or to a shelf it does not present, is not for us', async () => {
    const s = site();
    s.offer();
    await settle();
    s.replies();
    const before = s.side.stats.notForUs;
    await s.send(
      qc({ dst: '02:00:00:00:0b:0b', src: INI, major: 7, minor: 3 }),
      qc({ dst: BCAST, src: INI, major: 7, minor: 4 }),
      qc({ dst: BCAST, src: INI, major: 8, minor: 0xff }),
    );
    expect(s.replies()).toEqual([]);
    expect(s.side.stats.notForUs - before).toBe(2); // the first never reached the gateway's port
  });

  it('an unreachable peer or a withdrawal makes the import unusable', async () => {
    const s = site();
    const probe = () => s.send(qc({ dst: GW, src: INI, major: 7, minor: 3 }));
    s.offer();
    await settle();
    s.replies();
    await probe();
    expect(s.replies()).toHaveLength(1);

    s.port.up = false;
    s.side.tick(s.clock.now);
    await probe();
    expect(s.replies()).toEqual([]);
    s.port.up = true;
    s.side.tick(s.clock.now);
    await settle();
    // Announcements are at most once a second per import: this one waits for the next second.
    expect(s.replies()).toEqual([]);
    s.clock.now += 1000;
    s.side.tick(s.clock.now);
    await settle();
    expect(s.replies()).toHaveLength(1); // announced again
    await probe();
    expect(s.replies()).toHaveLength(1);

    s.offer([advert({ slot: 9 })], 7); // the new set no longer has 1.0
    await probe();
    expect(s.replies()).toEqual([]);
    expect(s.side.status()[0]!.usable).toBe(false);
    await s.send(read(0, 1, { dst: GW, src: INI, major: 7, minor: 3 }));
    expect(s.requests()).toEqual([]);
  });

  it('a multi-chunk advertisement counts only once every chunk of its generation arrived', async () => {
    const s = site();
    s.side.handleAdverts('B', { generation: 5, chunk: 1, chunks: 2, targets: [advert()] }, s.clock.now);
    expect(s.side.status()[0]!.usable).toBe(false);
    // A chunk of another generation restarts the assembly.
    s.side.handleAdverts('B', { generation: 6, chunk: 0, chunks: 2, targets: [] }, s.clock.now);
    expect(s.side.status()[0]!.usable).toBe(false);
    s.side.handleAdverts('B', { generation: 6, chunk: 1, chunks: 2, targets: [advert()] }, s.clock.now);
    expect(s.side.status()[0]!.usable).toBe(true);
  });

  it('an import by export name resolves to wherever the exporter has it', async () => {
    const s = site({
      imports: [{ peer: 'B', remote: { name: 'disk' }, localShelf: 7, localSlot: 3, links: ['lan'] }],
    });
    s.offer([
      advert({ shelf: 4, slot: 5, name: 'other' }),
      advert({ shelf: 40, slot: 50, name: 'disk', bufferCount: 9 }),
    ]);
    await settle();
    expect((s.replies()[0] as QueryConfigMessage).bufferCount).toBe(9);
    await s.send(read(0, 1, { dst: GW, src: INI, major: 7, minor: 3 }));
    const [rec] = s.requests();
    expect(rec!.bytes[REQUEST_PREFIX + PDU.MAJOR + 1]).toBe(40);
    expect(rec!.bytes[REQUEST_PREFIX + PDU.MINOR]).toBe(50);
  });
});

describe('ImportSide: hostile advertisements', () => {
  it('a config string too long for the local link is counted, never thrown out of the handlers', async () => {
    // Link MTU 1000: a 1024-byte string (any initiator at the exporter may set one) cannot fit.
    const s = site({ mtu: 1000 });
    expect(() => s.offer([advert({ configString: new Uint8Array(1024).fill(0x41) })])).not.toThrow();
    expect(s.side.status()[0]!.usable).toBe(true);
    expect(s.side.stats.announcements).toBe(0);
    await s.send(qc({ dst: GW, src: INI, major: 7, minor: 3 }));
    expect(s.replies()).toEqual([]);
    expect(s.side.stats.tooLarge).toBe(2);
    expect(s.gw.stats().handlerErrors).toBe(0);
    // A string that fits is answered on the same link.
    s.offer([advert({ configString: new Uint8Array(900).fill(0x42) })], 2);
    await s.send(qc({ dst: GW, src: INI, major: 7, minor: 3 }));
    expect((s.replies()[0] as QueryConfigMessage).config.length).toBe(900);
  });
});

describe('ImportSide: relayed requests', () => {
  async function usable(o: Parameters<typeof site>[0] = {}) {
    const s = site(o);
    s.offer();
    await settle();
    s.replies();
    return s;
  }

  it('relays ATA with the tag rewritten and restores tag and local address in the reply', async () => {
    const s = await usable();
    const tag = 0x80001234; // bit 31 set by this initiator: it must come back unchanged
    await s.send(read(8, 1, { dst: GW, src: INI, major: 7, minor: 3, tag }));
    const [rec, ...more] = s.requests();
    expect(more).toEqual([]);
    const b = rec!.bytes;
    expect(b.subarray(REQUEST.MAC, REQUEST.MAC + 6)).toEqual(mac(INI));
    expect((b[REQUEST_PREFIX + PDU.MAJOR]! << 8) | b[REQUEST_PREFIX + PDU.MAJOR + 1]!).toBe(1);
    expect(b[REQUEST_PREFIX + PDU.MINOR]).toBe(0);
    const rid = pduTag(b, REQUEST_PREFIX);
    expect(rid).not.toBe(tag);
    expect(rid >>> 31).toBe(0);
    expect(s.side.pending).toBe(1);

    const data = Buffer.alloc(512, 0x5a);
    const resp = answer(b, { data });
    s.side.handleResponse('B', resp, 0, resp.length, 0);
    await settle();
    const [r, ...rest] = s.replies() as AtaMessage[];
    expect(rest).toEqual([]);
    expect(r).toMatchObject({ dst: INI, src: GW, major: 7, minor: 3, tag, response: true, cmdStatus: 0x40 });
    expect(r!.data.subarray(0, 512)).toEqual(data);
    expect(s.side.pending).toBe(0);
    expect(s.side.stats).toMatchObject({ relayed: 1, replies: 1 });
  });

  it('drops a reply from another peer (counted) and still delivers the right one', async () => {
    const s = await usable();
    const other = new PipePort('C');
    s.side.addPeer(other);
    await s.send(read(0, 1, { dst: GW, src: INI, major: 7, minor: 3, tag: 77 }));
    const [rec] = s.requests();
    const resp = answer(rec!.bytes);
    s.side.handleResponse('C', resp, 0, resp.length, 0);
    s.side.handleResponse('mallory', resp, 0, resp.length, 0);
    await settle();
    expect(s.replies()).toEqual([]);
    expect(s.side.stats.foreignReplies).toBe(2);
    expect(s.side.pending).toBe(1);
    s.side.handleResponse('B', resp, 0, resp.length, 0);
    await settle();
    expect(s.replies().map((r) => r.tag)).toEqual([77]);
  });

  it('drops stale tags (answered already, unknown, reused slot) and wrong commands', async () => {
    const s = await usable();
    await s.send(read(0, 1, { dst: GW, src: INI, major: 7, minor: 3, tag: 1 }));
    const [rec1] = s.requests();
    const resp1 = answer(rec1!.bytes);
    // Right tag, wrong command: a peer cannot answer an ATA request with a config reply.
    const wrong = answer(rec1!.bytes, { command: 1 });
    s.side.handleResponse('B', wrong, 0, wrong.length, 0);
    expect(s.side.stats.foreignReplies).toBe(1);
    s.side.handleResponse('B', resp1, 0, resp1.length, 0);
    s.side.handleResponse('B', resp1, 0, resp1.length, 0); // duplicate
    expect(s.side.stats.staleReplies).toBe(1);
    // The slot is reused for the next request: the old request id must not answer it.
    await s.send(read(0, 1, { dst: GW, src: INI, major: 7, minor: 3, tag: 2 }));
    const [rec2] = s.requests();
    expect(pduTag(rec2!.bytes, REQUEST_PREFIX) & 0xfff).toBe(pduTag(rec1!.bytes, REQUEST_PREFIX) & 0xfff);
    s.side.handleResponse('B', resp1, 0, resp1.length, 0);
    expect(s.side.stats.staleReplies).toBe(2);
    const unknown = answer(rec2!.bytes, { tag: 0x7654321 });
    s.side.handleResponse('B', unknown, 0, unknown.length, 0);
    expect(s.side.stats.staleReplies).toBe(3);
    // Not a response at all, and too short: dropped.
    const req = Buffer.from(rec2!.bytes.subarray(REQUEST_PREFIX));
    s.side.handleResponse('B', req, 0, req.length, 0);
    s.side.handleResponse('B', Buffer.alloc(4), 0, 4, 0);
    expect(s.side.stats.dropped).toBe(2);
    await settle();
    expect(s.replies().map((r) => r.tag)).toEqual([1]);
    expect(s.side.pending).toBe(1);
  });

  it('drops requests from group source MACs and with the error flag, and responses from the segment', async () => {
    const s = await usable();
    const bad = read(0, 1, { dst: GW, src: '01:00:5e:00:00:01', major: 7, minor: 3 });
    const eflag = read(0, 1, { dst: GW, src: INI, major: 7, minor: 3 });
    eflag[14] = eflag[14]! | 0x04;
    const resp = read(0, 1, { dst: GW, src: INI, major: 7, minor: 3 });
    resp[14] = resp[14]! | 0x08;
    const v2 = read(0, 1, { dst: GW, src: INI, major: 7, minor: 3 });
    v2[14] = 0x20;
    await s.send(bad, eflag, resp, v2);
    expect(s.requests()).toEqual([]);
    expect(s.replies()).toEqual([]);
    expect(s.side.stats.groupSource).toBe(1);
    expect(s.side.stats.dropped).toBe(2);
  });

  it('drops ATA to a broadcast address (one frame must not reach several targets)', async () => {
    const s = await usable();
    await s.send(
      read(0, 1, { dst: GW, src: INI, major: 0xffff, minor: 0xff }),
      read(0, 1, { dst: GW, src: INI, major: 7, minor: 0xff }),
      read(0, 1, { dst: BCAST, src: INI, major: 0xffff, minor: 3 }),
    );
    expect(s.requests()).toEqual([]);
    expect(s.side.stats.dropped).toBe(3);
  });

  it('counts a full table; a refused send holds the request until the tunnel takes it', async () => {
    const s = await usable({ pendingCapacity: 2 });
    // Three different requests (the same read under a new tag would be a retransmission, folded in).
    await s.send(...[1, 2, 3].map((tag) => read(tag, 1, { dst: GW, src: INI, major: 7, minor: 3, tag })));
    expect(s.requests()).toHaveLength(2);
    expect(s.side.stats.tableFull).toBe(1);
    expect(s.side.pending).toBe(2);
    s.side.tick(s.clock.now + 121_000);
    expect(s.side.pending).toBe(0);
    expect(s.side.stats.failed).toBe(2);
    s.port.accept = false;
    await s.send(read(0, 1, { dst: GW, src: INI, major: 7, minor: 3, tag: 4 }));
    expect(s.side.stats.sendFailed).toBe(1);
    expect(s.side.pending).toBe(1);
    s.port.take();
    s.port.accept = true;
    s.side.tick(s.clock.now + 1000);
    expect(s.requests()).toHaveLength(1);
    expect(s.side.pending).toBe(1);
  });

  it('a peer flapping its advertisement draws at most one announcement a second', async () => {
    const s = site();
    for (let i = 0; i < 200; i++) {
      s.offer(i % 2 === 0 ? [advert()] : [], i + 1);
      s.clock.now += 1;
    }
    await settle();
    expect(s.replies()).toHaveLength(1);
    expect(s.side.stats.announcements).toBe(1);
  });

  it('one flooded import holds a bounded share of the pending table: the others keep working', async () => {
    const s = site({
      imports: [
        { peer: 'B', remote: { shelf: 1, slot: 0 }, localShelf: 7, localSlot: 3, links: ['lan'] },
        { peer: 'B', remote: { shelf: 1, slot: 1 }, localShelf: 7, localSlot: 4, links: ['lan'] },
      ],
    });
    s.offer([advert({ bufferCount: 16 }), advert({ slot: 1, bufferCount: 16 })]);
    await settle();
    s.replies();
    for (let k = 0; k < 10; k++) {
      await s.send(
        ...Array.from({ length: 100 }, (_, i) =>
          read(k * 100 + i, 1, { dst: GW, src: INI, major: 7, minor: 3, tag: k * 100 + i }),
        ),
      );
    }
    // 4 x the buffer count is the most one import may have in flight.
    expect(s.requests()).toHaveLength(64);
    expect(s.side.stats.tableFull).toBe(1000 - 64);
    await s.send(read(0, 1, { dst: GW, src: INI, major: 7, minor: 4, tag: 5000 }));
    const other = s.requests();
    expect(other).toHaveLength(1);
    expect(other[0]!.bytes[REQUEST_PREFIX + PDU.MINOR]).toBe(1);
    s.side.tick(s.clock.now + 121_000);
    expect(s.side.pending).toBe(0);
  });

  it('fails a request unanswered for failAfterMs with an ATA error; its late reply is stale', async () => {
    const s = await usable({ failAfterMs: 500 });
    await s.send(read(0, 1, { dst: GW, src: INI, major: 7, minor: 3, tag: 5 }));
    const [rec] = s.requests();
    s.side.tick(s.clock.now + 400);
    expect(s.side.pending).toBe(1);
    s.side.tick(s.clock.now + 501);
    expect(s.side.pending).toBe(0);
    expect(s.side.stats.failed).toBe(1);
    await settle();
    const [err] = s.replies();
    expect(err).toMatchObject({ tag: 5, major: 7, minor: 3, cmdStatus: 0x41, errFeature: 0x04 });
    const resp = answer(rec!.bytes);
    s.side.handleResponse('B', resp, 0, resp.length, 0);
    await settle();
    expect(s.replies()).toEqual([]);
    expect(s.side.stats.staleReplies).toBe(1);
  });

  it('relays Query Config set; the reply’s new string is what later local answers say', async () => {
    const s = await usable();
    await s.send(qc({ dst: GW, src: INI, major: 7, minor: 3, ccmd: 4, config: 'mine', tag: 9 }));
    const [rec] = s.requests();
    expect(rec!.bytes[REQUEST_PREFIX + PDU.COMMAND]).toBe(1);
    // The exporter's reply: same PDU with R set and the new string.
    const pdu = Buffer.from(rec!.bytes.subarray(REQUEST_PREFIX));
    pdu[PDU.VER_FLAGS] = 0x18;
    const resp = Buffer.concat([numberOf(rec!.bytes), pdu]);
    s.side.handleResponse('B', resp, 0, resp.length, 0);
    await settle();
    expect(s.replies().map((r) => [r.tag, (r as QueryConfigMessage).config.toString()])).toEqual([
      [9, 'mine'],
    ]);
    await s.send(qc({ dst: GW, src: INI, major: 7, minor: 3 }));
    expect((s.replies()[0] as QueryConfigMessage).config.toString()).toBe('mine');
  });

  it('never throws on garbage frames from the segment or garbage responses from the peer', async () => {
    const s = await usable();
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 16;
    };
    const frames: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const f = ata({ op: 0x24, dst: GW, src: INI, major: 7, minor: 3, count: 1 });
      const g = Buffer.alloc(14 + (rnd() % 1100));
      f.copy(g, 0, 0, Math.min(f.length, g.length));
      for (let k = 14; k < g.length; k++) if (rnd() % 4 === 0) g[k] = rnd() & 0xff;
      g[12] = 0x88;
      g[13] = 0xa2;
      if (g.length < 60) continue;
      frames.push(g);
    }
    for (const f of frames) s.ini.send(f);
    await settle(10);
    for (let i = 0; i < 300; i++) {
      const r = Buffer.alloc(rnd() % 1100);
      for (let k = 0; k < r.length; k++) r[k] = rnd() & 0xff;
      if (r.length > 0) r[0] = 0x18;
      expect(() => s.side.handleResponse('B', r, 0, r.length, 0)).not.toThrow();
    }
    expect(s.side.stats.framesIn).toBeGreaterThan(250);
  });
});

describe('ImportSide: several links and peers', () => {
  it('presents an import only on its links, and each peer answers only its own imports', async () => {
    const segA = new FakeSegment();
    const segB = new FakeSegment();
    const iniA = segA.attach({ mac: INI });
    const iniB = segB.attach({ mac: '52:54:00:00:00:02' });
    const gwA = segA.attach({ mac: GW });
    const gwB = segB.attach({ mac: '02:00:00:00:0a:02' });
    const gotA = capture(iniA);
    const gotB = capture(iniB);
    const side = new ImportSide({
      imports: [
        { peer: 'B', remote: { shelf: 1, slot: 0 }, localShelf: 7, localSlot: 0, links: ['a'] },
        { peer: 'C', remote: { shelf: 1, slot: 0 }, localShelf: 7, localSlot: 1, links: ['a', 'b'] },
      ],
      maxRecord: 8000,
    });
    const ia = side.addLink('a', gwA);
    const ib = side.addLink('b', gwB);
    gwA.onBatch((f, l, n) => side.handleFrames(ia, f, l, n, 0));
    gwB.onBatch((f, l, n) => side.handleFrames(ib, f, l, n, 0));
    const portB = new PipePort('B');
    const portC = new PipePort('C');
    side.addPeer(portB);
    side.addPeer(portC);
    side.peerHello('B', 0);
    side.peerHello('C', 0);
    expect(side.peersUsed().sort()).toEqual(['B', 'C']);
    side.handleAdverts('B', { generation: 1, chunk: 0, chunks: 1, targets: [advert()] }, 0);
    side.handleAdverts('C', { generation: 1, chunk: 0, chunks: 1, targets: [advert()] }, 0);
    await settle();
    // Announcements: 7.0 on a; 7.1 on a and b.
    expect(
      gotA
        .splice(0)
        .map((f) => decode(f).minor)
        .sort(),
    ).toEqual([0, 1]);
    expect(gotB.splice(0).map((f) => decode(f).minor)).toEqual([1]);
    iniB.send(qc({ dst: BCAST, src: '52:54:00:00:00:02', major: 0xffff, minor: 0xff }));
    await settle();
    expect(gotB.splice(0).map((f) => decode(f).minor)).toEqual([1]);
    // A request to C's import over link b; B holds a valid-looking id but must not answer it.
    iniB.send(read(0, 1, { dst: '02:00:00:00:0a:02', src: '52:54:00:00:00:02', major: 7, minor: 1, tag: 3 }));
    await settle();
    const [rec] = portC.take().filter((r) => r.type === RECORD_AOE_REQUEST);
    expect(portB.take()).toEqual([]);
    const resp = answer(rec!.bytes);
    side.handleResponse('B', resp, 0, resp.length, 0);
    await settle();
    expect(gotB).toEqual([]);
    expect(side.stats.foreignReplies).toBe(1);
    side.handleResponse('C', resp, 0, resp.length, 0);
    await settle();
    const r = gotB.splice(0).map(decode);
    expect(r.map((x) => [x.tag, x.major, x.minor, x.dst, x.src])).toEqual([
      [3, 7, 1, '52:54:00:00:00:02', '02:00:00:00:0a:02'],
    ]);
    expect(gotA).toEqual([]); // the reply left on the link the request came from
  });
});

describe('ImportSide: imports added and removed while running (reload)', () => {
  it('a removed import fails its pending ATA requests with ABRT and stops answering', async () => {
    const s = site();
    s.offer();
    await settle();
    s.replies();
    await s.send(read(0, 1, { dst: GW, src: INI, major: 7, minor: 3, tag: 21 }));
    expect(s.requests()).toHaveLength(1);
    expect(s.side.pending).toBe(1);
    expect(s.side.removeImport('B', 7, 3)).toBe(true);
    await settle();
    const r = s.replies() as AtaMessage[];
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ tag: 21, major: 7, minor: 3, cmdStatus: 0x41, errFeature: 0x04 });
    expect(s.side.pending).toBe(0);
    await s.send(
      read(0, 1, { dst: GW, src: INI, major: 7, minor: 3, tag: 22 }),
      qc({ dst: BCAST, src: INI, major: 0xffff, minor: 0xff }),
    );
    expect(s.replies()).toEqual([]);
    expect(s.requests()).toEqual([]);
    expect(s.side.status()).toEqual([]);
    expect(s.side.removeImport('B', 7, 3)).toBe(false);
  });

  it('an added import of a target the peer offers is usable and announced at once', async () => {
    const s = site();
    s.offer([advert(), advert({ slot: 1, name: 'other' })]);
    await settle();
    s.replies();
    s.side.addImport(
      { peer: 'B', remote: { name: 'other' }, localShelf: 7, localSlot: 4, links: ['lan'] },
      s.clock.now + 2000,
    );
    await settle();
    const r = s.replies() as QueryConfigMessage[];
    expect(r.map((x) => `${x.major}.${x.minor}`)).toEqual(['7.4']);
    expect(s.side.status().map((x) => [x.local, x.usable])).toEqual([
      ['e7.3', true],
      ['e7.4', true],
    ]);
    // The same local address twice on one link is refused.
    expect(() =>
      s.side.addImport(
        { peer: 'B', remote: { shelf: 1, slot: 0 }, localShelf: 7, localSlot: 4, links: ['lan'] },
        0,
      ),
    ).toThrow(/already imported/);
    // Requests to it are relayed to the peer's target.
    await s.send(read(0, 1, { dst: GW, src: INI, major: 7, minor: 4, tag: 23 }));
    const sent = s.requests();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.bytes[REQUEST_PREFIX + PDU.MINOR]).toBe(1);
  });

  it('a removed peer takes its imports with it', async () => {
    const s = site();
    s.offer();
    await settle();
    s.replies();
    await s.send(read(0, 1, { dst: GW, src: INI, major: 7, minor: 3, tag: 24 }));
    s.side.removePeer('B');
    await settle();
    expect((s.replies() as AtaMessage[]).map((x) => [x.tag, x.cmdStatus])).toEqual([[24, 0x41]]);
    expect(s.side.status()).toEqual([]);
    expect(s.side.peersUsed()).toEqual([]);
  });
});
