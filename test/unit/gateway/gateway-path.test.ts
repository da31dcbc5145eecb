/**
 * The whole gateway path without sockets. Site A: an initiator (our initiator core) and gateway
 * A's ImportSide on one in-memory segment. A PipePort each way stands for the tunnel. Site B:
 * ExportSide, a TunnelPeerLink into a TargetEngine over a MemoryStore, and a ForwardSide to a
 * "vblade" (a FakeLink running another TargetEngine) on B's own segment.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AtaOp } from '../../../src/aoe/constants.js';
import type { AoegwError } from '../../../src/errors.js';
import { ExportSide } from '../../../src/gateway/export-side.js';
import { ForwardSide } from '../../../src/gateway/forward-side.js';
import { ImportSide } from '../../../src/gateway/import-side.js';
import { PDU, pduTag } from '../../../src/gateway/pdu.js';
import { TunnelPeerLink } from '../../../src/gateway/peer-link.js';
import {
  advertChunks,
  decodePeerMessage,
  RECORD_AOE_REQUEST,
  RECORD_AOE_RESPONSE,
  RECORD_CONTROL,
  RESPONSE_PREFIX,
  type TargetAdvert,
} from '../../../src/gateway/peer-messages.js';
import { Initiator } from '../../../src/initiator/initiator.js';
import type { TargetClient } from '../../../src/initiator/target-client.js';
import { type FakeLink, FakeSegment } from '../../../src/io/fake-link.js';
import { MemoryStore } from '../../../src/target/memory-store.js';
import { mac, mask, pattern, qc, read, reserve, write } from '../target/helpers.js';
import { advertOf, decode, engineWith, PipePort, requestRecord, serveEngine, settle } from './helpers.js';

const INI = '52:54:00:00:00:01';
const GWA = '02:00:00:00:0a:01';
const GWB = '02:00:00:00:0b:01';
const VBLADE = '02:00:00:00:0b:0b';
const MAX_RECORD = 8000;

/** A FakeLink serving an engine, whose receive can be held to model a slow native target. */
function nativeTarget(link: FakeLink, store: MemoryStore, bufferCount: number) {
  const engine = engineWith(
    { shelf: 2, slot: 0, store, bufferCount },
    { shelf: 2, slot: 1, store: new MemoryStore(64), bufferCount }, // on the segment, not forwarded
  );
  engine.addLink(1, { mac: link.mac, mtu: link.mtu, name: link.name });
  const t = {
    engine,
    hold: false,
    held: [] as Buffer[],
    /** Requests received and not yet answered, and the most there ever were. */
    outstanding: 0,
    maxOutstanding: 0,
    run(frames: Buffer[]) {
      engine.handleBatch(1, frames, Int32Array.from(frames.map((f) => f.length)), frames.length, link, 0);
    },
    release() {
      const f = t.held.splice(0);
      t.outstanding -= f.length;
      t.run(f);
    },
  };
  link.onBatch((frames, lens, n) => {
    const copies = Array.from({ length: n }, (_, i) => Buffer.from(frames[i]!.subarray(0, lens[i]!)));
    const ata = copies.filter((f) => f[19] === 0);
    t.outstanding += ata.length;
    t.maxOutstanding = Math.max(t.maxOutstanding, t.outstanding);
    if (t.hold) {
      t.held.push(...ata);
      t.run(copies.filter((f) => f[19] !== 0));
    } else {
      t.outstanding -= ata.length;
      t.run(copies);
    }
  });
  return t;
}

function twoSites(o: { vbladeBuffers?: number } = {}) {
  const clock = { now: 1000 };
  // ---- site B
  const segB = new FakeSegment();
  const gwB = segB.attach({ mac: GWB, name: 'lanB', mtu: 1500 });
  const vbladeLink = segB.attach({ mac: VBLADE, name: 'vblade', mtu: 1500 });
  const vbladeStore = new MemoryStore(pattern(128, 9));
  const vblade = nativeTarget(vbladeLink, vbladeStore, o.vbladeBuffers ?? 4);
  const store = new MemoryStore(pattern(512, 3));
  const engine = engineWith({ shelf: 1, slot: 0, store, bufferCount: 16, name: 'disk' } as never);
  const toA = new PipePort('A');
  const peerLink = new TunnelPeerLink(toA, 0, MAX_RECORD - 6);
  serveEngine(engine, 100, peerLink);
  const fwd = new ForwardSide({
    forwards: [{ link: 'lanB', targets: [{ shelf: 2, slot: 0 }] }],
    discoverEveryMs: 1000,
  });
  const fwdId = fwd.addLink('lanB', gwB);
  gwB.onBatch((f, l, n) => fwd.handleFrames(fwdId, f, l, n, clock.now));
  fwd.addPeer(toA);
  const exportSide = new ExportSide(new Map([[256, 16]]), fwd);
  exportSide.addPeer(
    toA,
    [
      { shelf: 1, slot: 0, readOnly: false },
      { shelf: 2, slot: 0, readOnly: false },
    ],
    peerLink,
  );
  // ---- site A
  const segA = new FakeSegment();
  const iniLink = segA.attach({ mac: INI, name: 'ini', mtu: 9000 });
  const gwA = segA.attach({ mac: GWA, name: 'lanA', mtu: 9000 });
  const imports = new ImportSide({
    imports: [
      { peer: 'B', remote: { shelf: 1, slot: 0 }, localShelf: 7, localSlot: 0, links: ['lanA'] },
      { peer: 'B', remote: { shelf: 2, slot: 0 }, localShelf: 7, localSlot: 1, links: ['lanA'] },
    ],
    maxRecord: MAX_RECORD,
  });
  const impId = imports.addLink('lanA', gwA);
  gwA.onBatch((f, l, n) => imports.handleFrames(impId, f, l, n, clock.now));
  const toB = new PipePort('B');
  imports.addPeer(toB);
  imports.peerHello('B', 0);
  // ---- the tunnel
  toB.connect(
    (type, buf, off, len) => {
      if (type === RECORD_AOE_REQUEST) exportSide.handleRequest('A', buf, off, len, clock.now);
    },
    () => exportSide.endBatch(),
  );
  toA.connect((type, buf, off, len) => {
    if (type === RECORD_AOE_RESPONSE) imports.handleResponse('B', buf, off, len, clock.now);
    else if (type === RECORD_CONTROL) {
      const m = decodePeerMessage(buf, off, len);
      if (m?.kind === 'adverts') imports.handleAdverts('B', m.adverts, clock.now);
    }
  });
  const s = {
    clock,
    segA,
    segB,
    gwB,
    engine,
    store,
    vblade,
    vbladeStore,
    fwd,
    exportSide,
    imports,
    toA,
    toB,
    iniLink,
    /** What the daemon advertises to A: the granted export and the discovered forwards. */
    advertise(generation = 1) {
      const targets: TargetAdvert[] = [advertOf(engine, 1, 0, 'disk'), ...fwd.adverts()];
      for (const c of advertChunks(generation, targets, MAX_RECORD)) toA.send(RECORD_CONTROL, c, 0, c.length);
    },
    async discover() {
      fwd.tick(clock.now);
      await settle();
    },
  };
  return s;
}

let initiators: Initiator[] = [];
afterEach(() => {
  for (const i of initiators) i.close();
  initiators = [];
});

function io(
  c: TargetClient,
  op: 'read' | 'write',
  lba: number,
  sectors: number,
  buf: Buffer,
  now: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err: AoegwError | null) => (err ? reject(err) : resolve());
    if (op === 'read') c.read(lba, sectors, buf, 0, now, cb);
    else c.write(lba, sectors, buf, 0, now, cb);
  });
}

describe('gateway path: initiator → ImportSide → tunnel pipe → ExportSide → engine', () => {
  it('discovers the imports, writes, reads back and verifies through both gateways', async () => {
    const s = twoSites();
    await s.discover();
    s.advertise();
    await settle();
    const ini = new Initiator(s.iniLink);
    initiators.push(ini);
    const found = await ini.queryConfig(30);
    const e70 = found.find((a) => a.major === 7 && a.minor === 0)!;
    const e71 = found.find((a) => a.major === 7 && a.minor === 1)!;
    expect(e70).toBeDefined();
    expect(e71).toBeDefined();
    expect(e70.mac).toEqual(mac(GWA)); // the gateway stands in for the remote target
    expect(e70.bufferCount).toBe(16);
    expect(e70.sectorCount).toBe(Math.floor((MAX_RECORD - 6 - 22) / 512));
    expect(e71.bufferCount).toBe(4); // the native target's, as discovered
    expect(e71.sectorCount).toBe(2); // the native segment's MTU bounds it

    const c = ini.client(e70);
    const data = pattern(100, 77);
    await io(c, 'write', 40, 100, data, ini.now());
    expect(s.store.data.subarray(40 * 512, 140 * 512).equals(data)).toBe(true);
    const back = Buffer.alloc(100 * 512);
    await io(c, 'read', 40, 100, back, ini.now());
    expect(back.equals(data)).toBe(true);
    // Untouched sectors around it still hold the original pattern.
    const before = Buffer.alloc(512);
    await io(c, 'read', 39, 1, before, ini.now());
    expect(before.equals(pattern(512, 3).subarray(39 * 512, 40 * 512))).toBe(true);
    expect(s.imports.pending).toBe(0);
    expect(s.imports.stats.staleReplies + s.imports.stats.foreignReplies).toBe(0);
    expect(c.stats.retransmits ?? 0).toBe(0);

    // The forwarded native target, through the same path plus ForwardSide.
    const v = ini.client(e71);
    const vdata = pattern(9, 5);
    await io(v, 'write', 3, 9, vdata, ini.now());
    expect(s.vbladeStore.data.subarray(3 * 512, 12 * 512).equals(vdata)).toBe(true);
    const vback = Buffer.alloc(9 * 512);
    await io(v, 'read', 3, 9, vback, ini.now());
    expect(vback.equals(vdata)).toBe(true);
    expect(s.fwd.stats.replies).toBeGreaterThanOrEqual(10);
    expect(s.vblade.maxOutstanding).toBeLessThanOrEqual(4);
    expect(s.exportSide.stats).toMatchObject({ denied: 0, malformed: 0 });
  });

  it('IDENTIFY through the path reports the remote export’s capacity', async () => {
    const s = twoSites();
    s.advertise();
    await settle();
    const ini = new Initiator(s.iniLink);
    initiators.push(ini);
    const [a] = await ini.queryConfig(20, { major: 7, minor: 0 });
    const c = ini.client(a!);
    const id = Buffer.alloc(512);
    await new Promise<void>((res, rej) =>
      c.command(AtaOp.IDENTIFY_DEVICE, id, ini.now(), (e) => (e ? rej(e) : res())),
    );
    // Words 100..103: 48-bit sector count.
    expect(id.readUInt32LE(200)).toBe(512);
  });
});

describe('ForwardSide', () => {
  /** Site B alone: requests injected as records from peer A, responses read off the pipe. */
  function siteB(vbladeBuffers = 4) {
    const s = twoSites({ vbladeBuffers });
    // Not delivered anywhere: the test reads toA.sent.
    (s.toA as unknown as { receiver: null }).receiver = null;
    const ask = (frames: Buffer[]) => {
      for (const f of frames) {
        const r = requestRecord(mac(INI), f);
        s.exportSide.handleRequest('A', r, 0, r.length, s.clock.now);
      }
      s.exportSide.endBatch();
    };
    const replies = () =>
      s.toA
        .take()
        .filter((r) => r.type === RECORD_AOE_RESPONSE)
        .map((r) =>
          decode(
            Buffer.concat([Buffer.alloc(12), Buffer.from([0x88, 0xa2]), r.bytes.subarray(RESPONSE_PREFIX)]),
          ),
        );
    return { ...s, ask, replies };
  }
  const to20 = { dst: '02:a0:e0:00:00:00', src: INI, major: 2, minor: 0 };

  it('discovers only the configured targets and advertises what they said', async () => {
    const s = siteB(6);
    expect(s.fwd.adverts()).toEqual([]);
    await s.discover();
    expect(s.fwd.stats.discovered).toBe(1);
    expect(s.fwd.adverts()).toEqual([
      expect.objectContaining({ shelf: 2, slot: 0, bufferCount: 6, maxSectors: 2, sectors: 0n }),
    ]);
    expect(s.fwd.status()[0]).toMatchObject({ target: 'e2.0', link: 'lanB', mac: VBLADE, bufferCount: 6 });
    const g = s.fwd.generation;
    await s.discover(); // nothing changed
    expect(s.fwd.generation).toBe(g);
    expect(s.fwd.has(2, 1)).toBe(false);
  });

  it('withdraws a target that stops answering discovery', async () => {
    const s = siteB();
    await s.discover();
    expect(s.fwd.adverts()).toHaveLength(1);
    s.vblade.engine.removeExport('e2.0');
    for (let i = 0; i < 4; i++) {
      s.clock.now += 1001;
      await s.discover();
    }
    expect(s.fwd.adverts()).toEqual([]);
    s.ask([read(0, 1, to20)]);
    expect(s.fwd.stats.noTarget).toBe(1);
  });

  it('forwards added and removed while running (reload): withdrawn at once, discovered at once', async () => {
    const s = siteB();
    await s.discover();
    expect(s.fwd.adverts()).toHaveLength(1);
    const g = s.fwd.generation;
    s.fwd.removeTarget(2, 0);
    expect(s.fwd.generation).toBe(g + 1);
    expect(s.fwd.adverts()).toEqual([]);
    expect(s.fwd.status()).toEqual([]);
    expect(s.fwd.has(2, 0)).toBe(false);
    s.ask([read(0, 1, to20)]);
    expect(s.replies()).toEqual([]);
    // e2.1 is on the segment too: once added it is discovered at the next tick, not a period later.
    s.fwd.addTarget('lanB', 2, 1);
    await s.discover();
    expect(s.fwd.adverts().map((a) => `${a.shelf}.${a.slot}`)).toEqual(['2.1']);
    // A peer removed while its request is at the target: the reply is not sent to it.
    s.exportSide.setGrants('A', [...s.exportSide.grants('A'), { shelf: 2, slot: 1, readOnly: false }]);
    s.vblade.hold = true;
    s.ask([read(0, 1, { ...to20, minor: 1, tag: 0x77 })]);
    await settle();
    expect(s.fwd.status()).toEqual([expect.objectContaining({ target: 'e2.1', outstanding: 1 })]);
    s.fwd.removePeer('A');
    s.vblade.release();
    await settle();
    expect(s.replies()).toEqual([]);
    expect(s.fwd.status()).toEqual([expect.objectContaining({ target: 'e2.1', outstanding: 0 })]);
  });

  it('relays a peer’s request with its own tag and returns the reply with the request id', async () => {
    const s = siteB();
    await s.discover();
    const sniff: Buffer[] = [];
    const spy = s.segB.attach({ promiscuous: true, mac: '02:00:00:00:0b:ee' });
    spy.onBatch((f, l, n) => {
      for (let i = 0; i < n; i++) sniff.push(Buffer.from(f[i]!.subarray(0, l[i]!)));
    });
    s.ask([read(5, 2, { ...to20, tag: 0x1234 })]);
    await settle();
    const req = sniff.find((f) => f[19] === 0 && (f[14]! & 0x08) === 0)!;
    expect(req.subarray(0, 6)).toEqual(mac(VBLADE));
    expect(req.subarray(6, 12)).toEqual(mac(GWB));
    expect(pduTag(req, 14)).not.toBe(0x1234);
    expect(pduTag(req, 14) >>> 31).toBe(0);
    const [r, ...rest] = s.replies();
    expect(rest).toEqual([]);
    expect(r).toMatchObject({ tag: 0x1234, major: 2, minor: 0, response: true });
    expect((r as { data: Buffer }).data.subarray(0, 1024)).toEqual(
      s.vbladeStore.data.subarray(5 * 512, 7 * 512),
    );
  });

  it('never has more requests outstanding at the target than its buffer count', async () => {
    const s = siteB(4);
    await s.discover();
    s.vblade.hold = true;
    s.ask(Array.from({ length: 10 }, (_, i) => read(i, 1, { ...to20, tag: 100 + i })));
    await settle();
    expect(s.vblade.held).toHaveLength(4);
    expect(s.fwd.stats.bufferFull).toBe(6);
    s.vblade.release();
    await settle();
    expect(
      s
        .replies()
        .map((r) => r.tag)
        .sort(),
    ).toEqual([100, 101, 102, 103]);
    // Room again: the next ones go out, still at most 4.
    s.ask(Array.from({ length: 6 }, (_, i) => read(i, 1, { ...to20, tag: 200 + i })));
    await settle();
    expect(s.vblade.held).toHaveLength(4);
    s.vblade.release();
    await settle();
    expect(s.replies()).toHaveLength(4);
    expect(s.vblade.maxOutstanding).toBe(4);
    // Expiry frees the budget of requests the target never answered.
    s.ask([read(0, 1, { ...to20, tag: 300 })]);
    await settle();
    s.vblade.held.splice(0); // lost
    s.vblade.outstanding = 0;
    s.clock.now += 20_000;
    s.fwd.tick(s.clock.now);
    expect(s.fwd.stats.expired).toBe(1);
    expect(s.fwd.status()[0]!.outstanding).toBe(0);
  });

  it('drops replies from a MAC other than the target’s, and the real reply still gets through', async () => {
    const s = siteB(2); // the engine's least buffer count
    await s.discover();
    expect(s.fwd.status()[0]!.bufferCount).toBe(2);
    const attacker = s.segB.attach({ promiscuous: true, mac: '02:00:00:00:0b:66' });
    const seen: Buffer[] = [];
    attacker.onBatch((f, l, n) => {
      for (let i = 0; i < n; i++) seen.push(Buffer.from(f[i]!.subarray(0, l[i]!)));
    });
    s.vblade.hold = true;
    s.ask([read(0, 1, { ...to20, tag: 0xabc }), read(2, 1, { ...to20, tag: 0xabe })]);
    await settle();
    const req = seen.find((f) => f[19] === 0 && (f[14]! & 0x08) === 0)!;
    // The attacker answers first, from its own MAC, with the right tag and address.
    const forged = Buffer.alloc(36 + 512, 0x66);
    req.copy(forged, 0, 0, 36);
    mac(GWB).copy(forged, 0);
    attacker.mac.copy(forged, 6);
    forged[14] = 0x18;
    forged[27] = 0x40;
    attacker.send(forged);
    await settle();
    expect(s.replies()).toEqual([]);
    expect(s.fwd.stats.staleReplies).toBe(1);
    // The forged reply must not free the target's only buffer either.
    s.ask([read(1, 1, { ...to20, tag: 0xabd })]);
    expect(s.fwd.stats.bufferFull).toBe(1);
    s.vblade.release();
    await settle();
    const got = s.replies();
    expect(got.map((r) => r.tag).sort()).toEqual([0xabc, 0xabe]);
    expect(s.fwd.stats.staleReplies).toBe(1);
    const first = got.find((r) => r.tag === 0xabc) as unknown as { data: Buffer };
    expect(first.data.subarray(0, 512)).toEqual(s.vbladeStore.data.subarray(0, 512));
    expect(s.vblade.maxOutstanding).toBe(2);
  });

  it('drops a reply from the target’s MAC for another address, and ignores a second MAC claiming the target', async () => {
    const s = siteB();
    await s.discover();
    // Same MAC as the target, right tag, wrong slot: not the answer to what we asked.
    const twin = s.segB.attach({ mac: VBLADE, promiscuous: true });
    const seen: Buffer[] = [];
    twin.onBatch((f, l, n) => {
      for (let i = 0; i < n; i++) seen.push(Buffer.from(f[i]!.subarray(0, l[i]!)));
    });
    s.vblade.hold = true;
    s.ask([read(0, 1, { ...to20, tag: 0x44 })]);
    await settle();
    const req = seen.find((f) => f[19] === 0 && (f[14]! & 0x08) === 0)!;
    const wrongSlot = Buffer.alloc(36 + 512);
    req.copy(wrongSlot, 0, 0, 36);
    mac(GWB).copy(wrongSlot, 0);
    mac(VBLADE).copy(wrongSlot, 6);
    wrongSlot[14] = 0x18;
    wrongSlot[18] = 1; // minor
    twin.send(wrongSlot);
    await settle();
    expect(s.fwd.stats.staleReplies).toBe(1);
    s.vblade.release();
    await settle();
    expect(s.replies().map((r) => r.tag)).toEqual([0x44]);
    s.vblade.hold = false;
    twin.close();
    const impostor = s.segB.attach({ mac: '02:00:00:00:0b:77' });
    // A config answer for 2.0 from another MAC: the first MAC keeps the path.
    const claim = qc({ dst: GWB, src: '02:00:00:00:0b:77', major: 2, minor: 0, tag: 0x7fffffff });
    claim[14] = 0x18;
    impostor.send(claim);
    await settle();
    expect(s.fwd.status()[0]!.mac).toBe(VBLADE);
    expect(s.fwd.stats.discovered).toBe(1);
    // ATA the peer was granted, to the address it was granted: fine. QC relayed (not answered here).
    s.ask([qc({ ...to20, tag: 0x55 })]);
    await settle();
    const [r] = s.replies();
    expect(r).toMatchObject({ tag: 0x55, command: 'query-config', major: 2, minor: 0 });
  });

  it('requests for a forward the peer was not granted never reach the segment', async () => {
    const s = siteB();
    await s.discover();
    s.exportSide.addPeer(s.toA, [{ shelf: 1, slot: 0, readOnly: false }], null);
    const sniff: Buffer[] = [];
    const spy = s.segB.attach({ promiscuous: true, mac: '02:00:00:00:0b:ef' });
    spy.onBatch((f, l, n) => {
      for (let i = 0; i < n; i++) sniff.push(Buffer.from(f[i]!.subarray(0, l[i]!)));
    });
    s.ask([read(0, 1, to20)]);
    await settle();
    expect(sniff).toEqual([]);
    expect(s.exportSide.stats.denied).toBe(1);
    expect(s.fwd.stats.relayed).toBe(0);
  });

  it('a read-only peer’s requests too short for their argument never reach the native target', async () => {
    const s = siteB();
    await s.discover();
    s.exportSide.addPeer(s.toA, [{ shelf: 2, slot: 0, readOnly: true }], null);
    const sniff: Buffer[] = [];
    const spy = s.segB.attach({ promiscuous: true, mac: '02:00:00:00:0b:ed' });
    spy.onBatch((f, l, n) => {
      for (let i = 0; i < n; i++) sniff.push(Buffer.from(f[i]!.subarray(0, l[i]!)));
    });
    // Common header plus part of the argument: the native target would read the rest from
    // whatever its buffer held before (a write opcode, a config set...).
    const cut = (f: Buffer, pduLen: number) => f.subarray(0, 14 + pduLen);
    s.ask([
      cut(read(0, 1, to20), 12),
      cut(qc({ ...to20 }), 14),
      cut(mask({ ...to20, mcmd: 0 }), 12),
      cut(reserve({ ...to20, rcmd: 0 }), 11),
    ]);
    await settle();
    expect(sniff).toEqual([]);
    expect(s.fwd.stats.relayed).toBe(0);
    expect(s.exportSide.stats.malformed).toBe(4);
    // Whole requests still pass.
    s.ask([read(0, 1, { ...to20, tag: 0x99 })]);
    await settle();
    expect(s.replies().map((r) => r.tag)).toEqual([0x99]);
  });

  it('relays only whole writes to a native target (a short one could pick up stale data)', async () => {
    const s = siteB();
    await s.discover();
    const whole = write(3, pattern(2, 7), { ...to20, tag: 0x51 });
    // The same write with its last sector cut off: sector count 2, one sector of data.
    s.ask([whole.subarray(0, whole.length - 512)]);
    await settle();
    expect(s.fwd.stats.malformed).toBe(1);
    expect(s.fwd.stats.relayed).toBe(0);
    s.ask([whole]);
    await settle();
    expect(s.replies().map((r) => r.tag)).toEqual([0x51]);
    expect(s.vbladeStore.data.subarray(3 * 512, 5 * 512)).toEqual(pattern(2, 7));
  });

  it('learns a target only from discovery replies or announcements, and bounds its buffer count', async () => {
    const s = siteB(4);
    await s.discover();
    const forged = qc({
      dst: 'ff:ff:ff:ff:ff:ff',
      src: VBLADE,
      major: 2,
      minor: 0,
      tag: 0x1234,
      config: 'evil',
    });
    forged[14] = 0x18; // a response
    forged.writeUInt16BE(0xffff, 24); // buffer count
    const forger = s.segB.attach({ mac: '02:00:00:00:0b:ec' });
    forger.send(forged);
    await settle();
    expect(s.fwd.adverts()[0]).toMatchObject({ bufferCount: 4 });
    forged.writeUInt32BE(0, 20); // tag 0: an unsolicited announcement is accepted, bounded
    forger.send(forged);
    await settle();
    expect(s.fwd.adverts()[0]!.bufferCount).toBe(256);
  });

  it('never throws on garbage from the segment', async () => {
    const s = siteB();
    await s.discover();
    const noise = s.segB.attach({ mac: '02:00:00:00:0b:99' });
    let seed = 99;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 16;
    };
    s.vblade.hold = true;
    s.ask([read(0, 1, to20)]);
    for (let i = 0; i < 400; i++) {
      const f = Buffer.alloc(60 + (rnd() % 1400));
      for (let k = 0; k < f.length; k++) f[k] = rnd() & 0xff;
      mac(GWB).copy(f, 0);
      f[12] = 0x88;
      f[13] = 0xa2;
      f[14] = 0x18;
      f[PDU.TAG + 14] = 0; // small tags hit live slots sometimes
      noise.send(f);
    }
    await settle(12);
    expect(s.fwd.stats.framesIn).toBeGreaterThan(400);
  });
});
