import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ADDR_SLOT, encodeUdpAddress, readUdpAddress, writeUdpAddress } from '../../../src/io/udp-address.js';

describe('UDP address slots', () => {
  it.each([
    ['127.0.0.1', 51820],
    ['10.1.2.3', 1],
    ['::1', 65535],
    ['fe80::1', 7],
    ['2001:db8::8:800:200c:417a', 4000],
    ['::', 0],
  ])('round-trips %s:%d', (address, port) => {
    const b = encodeUdpAddress({ address, port });
    expect(b.length).toBe(ADDR_SLOT);
    expect(readUdpAddress(b, 0)).toEqual({ address, port });
  });

  it('writes the layout the addon reads: family, port big-endian, address bytes', () => {
    const b = encodeUdpAddress({ address: '192.168.1.20', port: 0x1234 });
    expect([...b.subarray(0, 8)]).toEqual([4, 0, 0x12, 0x34, 192, 168, 1, 20]);
    const v6 = encodeUdpAddress({ address: 'fe80::1%3', port: 1 });
    expect(v6[0]).toBe(6);
    expect(v6.readUInt32LE(20)).toBe(3);
  });

  it('rejects what is not an address or a port', () => {
    expect(() => encodeUdpAddress({ address: 'example.com', port: 1 })).toThrow(/not an IPv4 or IPv6/);
    expect(() => encodeUdpAddress({ address: '1.2.3.4', port: 70000 })).toThrow(/port/);
  });

  it('round-trips any IPv6 address', () => {
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 0, max: 65535 }), (address, port) => {
        const slot = Buffer.alloc(ADDR_SLOT * 2);
        writeUdpAddress(slot, ADDR_SLOT, { address, port });
        const back = readUdpAddress(slot, ADDR_SLOT);
        const again = encodeUdpAddress(back);
        expect(again.equals(slot.subarray(ADDR_SLOT))).toBe(true);
      }),
    );
  });
});
