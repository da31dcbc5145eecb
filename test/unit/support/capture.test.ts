/** The pcap reader behind support/capture.ts: what a routed-hop assertion relies on. */
import { describe, expect, it } from 'vitest';
import { parsePcap } from '../../../support/capture.js';

function pcap(frames: Buffer[], bigEndian: boolean): Buffer {
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    if (bigEndian) b.writeUInt32BE(v);
    else b.writeUInt32LE(v);
    return b;
  };
  const u16 = (v: number) => {
    const b = Buffer.alloc(2);
    if (bigEndian) b.writeUInt16BE(v);
    else b.writeUInt16LE(v);
    return b;
  };
  const head = Buffer.concat([u32(0xa1b2c3d4), u16(2), u16(4), u32(0), u32(0), u32(262144), u32(1)]);
  const recs = frames.map((f) => Buffer.concat([u32(1), u32(2), u32(f.length), u32(f.length), f]));
  return Buffer.concat([head, ...recs]);
}

function eth(type: number, payload: Buffer, vlan = false): Buffer {
  const h = Buffer.alloc(vlan ? 18 : 14);
  if (vlan) {
    h.writeUInt16BE(0x8100, 12);
    h.writeUInt16BE(5, 14);
    h.writeUInt16BE(type, 16);
  } else h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

function udp4(dstPort: number, payload: Buffer): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip[9] = 17;
  const u = Buffer.alloc(8);
  u.writeUInt16BE(dstPort, 2);
  return Buffer.concat([ip, u, payload]);
}

describe('parsePcap', () => {
  for (const be of [false, true]) {
    it(`counts EtherTypes behind VLAN tags, UDP ports and finds patterns per frame (${be ? 'BE' : 'LE'})`, () => {
      const file = pcap(
        [
          eth(0x88a2, Buffer.from('secret-in-aoe')),
          eth(0x88a2, Buffer.from('x'), true),
          eth(0x0800, udp4(4789, Buffer.from('inner'))),
          eth(0x86dd, Buffer.alloc(40)),
        ],
        be,
      );
      const r = parsePcap(file, 3);
      expect(r.frames).toBe(4);
      expect(r.droppedByKernel).toBe(3);
      expect(r.count(0x88a2)).toBe(2);
      expect(r.count(0x8100)).toBe(0);
      expect(r.count(0x0800)).toBe(1);
      expect(r.count(0x0806)).toBe(0);
      expect(r.udpDstPorts.get(4789)).toBe(1);
      expect(r.contains('secret-in-aoe')).toBe(true);
      expect(r.contains(Buffer.from('inner'))).toBe(true);
      expect(r.contains('secret-in-aoe!')).toBe(false);
    });
  }

  it('refuses what it cannot read instead of reporting zero frames', () => {
    expect(() => parsePcap(Buffer.alloc(10))).toThrow(/too short/);
    expect(() => parsePcap(Buffer.alloc(24))).toThrow(/not a pcap/);
    const sll = pcap([], false);
    sll.writeUInt32LE(113, 20);
    expect(() => parsePcap(sll)).toThrow(/not Ethernet/);
  });
});
