/**
 * The initiator core with a fake clock and a scripted target: window limits, frame splitting,
 * retransmission with a new tag, stale replies, give-up, ATA and AoE errors.
 */
import { describe, expect, it } from 'vitest';
import { AtaArg, decodeAta } from '../../../src/aoe/ata.js';
import { AtaErrorBit, AtaStatus, Flag, SECTOR_SIZE } from '../../../src/aoe/constants.js';
import { AoeHeader, decodeHeader } from '../../../src/aoe/header.js';
import type { AoegwError } from '../../../src/errors.js';
import { type Io, TargetClient } from '../../../src/initiator/target-client.js';

const TARGET_MAC = Buffer.from('020000000002', 'hex');
const OWN_MAC = Buffer.from('020000000001', 'hex');

interface Sent {
  frame: Buffer;
  hdr: AoeHeader;
  ata: AtaArg;
}

/** Captures what the client sends; `reply` builds the target's answer to one captured request. */
class Harness {
  sent: Sent[] = [];
  private slot = Buffer.alloc(9000);
  readonly sink = {
    txSlot: () => this.slot,
    txCommit: (n: number) => {
      const frame = Buffer.from(this.slot.subarray(0, n));
      const hdr = new AoeHeader();
      const ata = new AtaArg();
      expect(decodeHeader(frame, n, hdr)).toBe(0);
      expect(decodeAta(frame, n, ata)).toBe(0);
      this.sent.push({ frame, hdr, ata });
    },
  };

  /** Builds a reply to `s`: status, optional data, optional AoE error. */
  reply(s: Sent, opts: { status?: number; err?: number; data?: Buffer; aoeError?: number } = {}): Buffer {
    const data = opts.data ?? Buffer.alloc(0);
    const f = Buffer.alloc(Math.max(60, 36 + data.length));
    s.frame.copy(f, 0, 0, 36);
    TARGET_MAC.copy(f, 6);
    OWN_MAC.copy(f, 0);
    f[14] = 0x10 | Flag.RESPONSE | (opts.aoeError ? Flag.ERROR : 0);
    f[15] = opts.aoeError ?? 0;
    f[25] = opts.err ?? 0;
    f[26] = 0; // like vblade: the remaining sector count
    f[27] = opts.status ?? AtaStatus.DRDY;
    data.copy(f, 36);
    return f;
  }

  deliver(c: TargetClient, frame: Buffer, now: number): boolean {
    const h = new AoeHeader();
    expect(decodeHeader(frame, frame.length, h)).toBe(0);
    return c.onReply(frame, frame.length, h, now);
  }
}

function client(h: Harness, window = 4, spf = 2) {
  return new TargetClient(h.sink, {
    major: 7,
    minor: 3,
    targetMac: TARGET_MAC,
    ownMac: OWN_MAC,
    sectorsPerFrame: spf,
    window,
    initialRtoMs: 100,
    minRtoMs: 10,
    giveUpMs: 1000,
  });
}

function collect() {
  const done: { err: AoegwError | null; io: Io }[] = [];
  return { done, cb: (err: AoegwError | null, io: Io) => done.push({ err, io }) };
}

describe('TargetClient', () => {
  it('splits an I/O into frames of at most sectorsPerFrame and never exceeds the window', () => {
    const h = new Harness();
    const c = client(h, 4, 2);
    const buf = Buffer.alloc(11 * SECTOR_SIZE);
    const { done, cb } = collect();
    c.read(100, 11, buf, 0, 0, cb);
    expect(h.sent).toHaveLength(4); // window
    expect(h.sent.map((s) => [s.ata.lba, s.ata.sectorCount])).toEqual([
      [100, 2],
      [102, 2],
      [104, 2],
      [106, 2],
    ]);
    for (const s of h.sent) {
      expect(s.hdr.dst.equals(TARGET_MAC)).toBe(true);
      expect(s.hdr.major).toBe(7);
      expect(s.hdr.minor).toBe(3);
      expect(s.hdr.tag & 0x80000000).toBe(0);
      expect(s.ata.cmdStatus).toBe(0x24);
    }
    // Answer everything as it arrives, with the LBA in the data so placement can be checked.
    for (let i = 0; i < h.sent.length; i++) {
      const s = h.sent[i]!;
      const data = Buffer.alloc(s.ata.sectorCount * SECTOR_SIZE);
      for (let k = 0; k < s.ata.sectorCount; k++) data.writeUInt32LE(s.ata.lba + k, k * SECTOR_SIZE);
      expect(h.deliver(c, h.reply(s, { data }), 1)).toBe(true);
      expect(c.outstanding).toBeLessThanOrEqual(4);
    }
    expect(h.sent.map((s) => s.ata.sectorCount)).toEqual([2, 2, 2, 2, 2, 1]);
    expect(done).toHaveLength(1);
    expect(done[0]!.err).toBeNull();
    for (let k = 0; k < 11; k++) expect(buf.readUInt32LE(k * SECTOR_SIZE)).toBe(100 + k);
  });

  it('retransmits a timed-out frame with a new tag and ignores the late reply to the old one', () => {
    const h = new Harness();
    const c = client(h, 4, 2);
    const { done, cb } = collect();
    c.read(0, 2, Buffer.alloc(1024), 0, 0, cb);
    const first = h.sent[0]!;
    c.tick(50);
    expect(h.sent).toHaveLength(1); // before the RTO
    c.tick(100);
    expect(h.sent).toHaveLength(2);
    const second = h.sent[1]!;
    expect(second.hdr.tag).not.toBe(first.hdr.tag);
    expect(second.ata.lba).toBe(0);
    expect(c.stats.retransmits).toBe(1);
    // The late reply to the first tag is stale: it must not complete the I/O.
    expect(h.deliver(c, h.reply(first, { data: Buffer.alloc(1024, 1) }), 120)).toBe(false);
    expect(c.stats.staleReplies).toBe(1);
    expect(done).toHaveLength(0);
    expect(h.deliver(c, h.reply(second, { data: Buffer.alloc(1024, 2) }), 130)).toBe(true);
    expect(done).toHaveLength(1);
    // A duplicate of the reply that completed the I/O is stale too.
    expect(h.deliver(c, h.reply(second, { data: Buffer.alloc(1024, 2) }), 131)).toBe(false);
  });

  it('backs off exponentially and gives up with ERR_TIMEOUT', () => {
    const h = new Harness();
    const c = client(h, 2, 2);
    const { done, cb } = collect();
    c.write(5, 1, Buffer.alloc(512), 0, 0, cb);
    const times: number[] = [];
    for (let t = 0; t <= 1100; t += 10) {
      const before = h.sent.length;
      c.tick(t);
      if (h.sent.length > before) times.push(t);
    }
    expect(times).toEqual([100, 300, 700]); // 100, then 200, then 400 ms apart
    expect(done).toHaveLength(1);
    expect(done[0]!.err?.code).toBe('ERR_TIMEOUT');
    expect(c.outstanding).toBe(0);
    // Every retransmit of a write carries the data again.
    for (const s of h.sent) expect(s.ata.dataLength).toBe(512);
  });

  it('fails the I/O on an ATA error status and on an AoE error reply', () => {
    const h = new Harness();
    const c = client(h, 4, 2);
    const a = collect();
    c.read(1 << 20, 1, Buffer.alloc(512), 0, 0, a.cb);
    h.deliver(c, h.reply(h.sent[0]!, { status: AtaStatus.DRDY | AtaStatus.ERR, err: AtaErrorBit.IDNF }), 1);
    expect(a.done[0]!.err?.code).toBe('ERR_ATA');
    expect(a.done[0]!.io.ataError).toBe(AtaErrorBit.IDNF);
    const b = collect();
    c.read(0, 1, Buffer.alloc(512), 0, 2, b.cb);
    h.deliver(c, h.reply(h.sent[1]!, { aoeError: 6 }), 3);
    expect(b.done[0]!.err?.code).toBe('ERR_AOE_ERROR_REPLY');
    expect(c.outstanding).toBe(0);
  });

  it('an error in one frame of a large I/O fails it once, after its in-flight frames settle', () => {
    const h = new Harness();
    const c = client(h, 2, 1);
    const { done, cb } = collect();
    c.read(0, 6, Buffer.alloc(6 * 512), 0, 0, cb);
    expect(h.sent).toHaveLength(2);
    h.deliver(c, h.reply(h.sent[0]!, { status: 0x51, err: AtaErrorBit.ABRT }), 1);
    expect(done).toHaveLength(0); // frame 2 still in flight
    h.deliver(c, h.reply(h.sent[1]!, { data: Buffer.alloc(512) }), 2);
    expect(done).toHaveLength(1);
    expect(done[0]!.err?.code).toBe('ERR_ATA');
    expect(h.sent).toHaveLength(2); // the remaining 4 frames were never sent
    expect(c.pendingIos).toBe(0);
  });

  it('rejects a read reply with too little data and recovers by retransmission', () => {
    const h = new Harness();
    const c = client(h, 4, 2);
    const { done, cb } = collect();
    c.read(0, 2, Buffer.alloc(1024), 0, 0, cb);
    expect(h.deliver(c, h.reply(h.sent[0]!, { data: Buffer.alloc(512) }), 1)).toBe(false);
    expect(c.stats.badReplies).toBe(1);
    c.tick(100);
    h.deliver(c, h.reply(h.sent[1]!, { data: Buffer.alloc(1024, 9) }), 101);
    expect(done[0]!.err).toBeNull();
  });

  it('uses 28-bit commands with 0xE0 in LBA3 when told to', () => {
    const h = new Harness();
    const c = new TargetClient(h.sink, {
      major: 1,
      minor: 1,
      targetMac: TARGET_MAC,
      ownMac: OWN_MAC,
      sectorsPerFrame: 2,
      window: 2,
      lba48: false,
    });
    c.read(0x0123456, 1, Buffer.alloc(512), 0, 0, () => {});
    const s = h.sent[0]!;
    expect(s.ata.cmdStatus).toBe(0x20);
    expect(s.ata.aflags & 0x40).toBe(0);
    expect(s.frame[31]).toBe(0xe0);
    expect(s.ata.lba).toBe(0x0123456);
  });
});
