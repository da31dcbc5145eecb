import { describe, expect, it } from 'vitest';
import {
  AOE_ETHERTYPE,
  ATA_HEADER_END,
  COMMON_HEADER_END,
  Command,
  isVendorCommand,
  sectorsPerFrame,
} from '../../../src/aoe/index.js';

describe('AoE constants', () => {
  it('match the frame layout', () => {
    expect([AOE_ETHERTYPE, COMMON_HEADER_END, ATA_HEADER_END]).toEqual([0x88a2, 24, 36]);
  });

  it('sectorsPerFrame follows floor((mtu - 36) / 512)', () => {
    expect([1500, 4200, 9000].map(sectorsPerFrame)).toEqual([2, 8, 17]);
    expect([0, 36, 547, 548].map(sectorsPerFrame)).toEqual([0, 0, 0, 1]);
    expect(sectorsPerFrame(65535)).toBe(127);
    expect(sectorsPerFrame(1_000_000)).toBe(255); // the count field is one byte
    expect(sectorsPerFrame(Number.NaN)).toBe(0);
  });

  it('vendor range is 0xF0..0xFF', () => {
    expect([Command.RESERVE, 0xef, 0xf0, 0xff].map(isVendorCommand)).toEqual([false, false, true, true]);
  });
});
