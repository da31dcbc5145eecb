import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AoeMessage,
  ATA_DATA_OFFSET,
  CONFIG_STRING_OFFSET,
  ConfigCmd,
  decodeFrame,
  directiveOffset,
  encodeFrame,
  MIN_FRAME,
  reserveMacOffset,
} from '../../../src/aoe/index.js';
import {
  ataRequestArb,
  ataResponseArb,
  macMaskArb,
  queryConfigArb,
  reserveArb,
  vendorArb,
} from './arbitraries.js';

function expectedLength(m: AoeMessage): number {
  switch (m.command) {
    case 'ata':
      return ATA_DATA_OFFSET + m.data.length;
    case 'query-config':
      return CONFIG_STRING_OFFSET + m.config.length;
    case 'mac-mask':
      return directiveOffset(m.directives.length);
    case 'reserve':
      return reserveMacOffset(m.macs.length);
    case 'vendor':
      return 24 + m.argument.length;
  }
}

function roundTrip(m: AoeMessage): void {
  const frame = encodeFrame(m);
  expect(frame.length).toBe(Math.max(MIN_FRAME, expectedLength(m)));
  const r = decodeFrame(frame);
  if (!r.ok) throw r.error;
  expect(r.value).toEqual(m);
  // Strict mode accepts everything we encode: we never set reserved bits.
  expect(decodeFrame(frame, frame.length, { strict: true }).ok).toBe(true);
}

const prop = (arb: fc.Arbitrary<AoeMessage>, numRuns = 200) =>
  fc.assert(fc.property(arb, roundTrip), { numRuns });

describe('encodeFrame → decodeFrame round trip', () => {
  it('ATA requests (LBA28 and LBA48, reads, writes up to 17 sectors)', () => prop(ataRequestArb, 300));
  it('ATA responses (data-carrying, no-data, error status, E flag)', () => prop(ataResponseArb, 300));

  it('ATA LBA28 and LBA48 extremes', () => {
    const base = {
      dst: 'ff:ff:ff:ff:ff:ff',
      src: '02:00:00:00:00:01',
      response: false,
      errorFlag: false,
      error: 0,
      major: 7,
      minor: 3,
      tag: 0x7fffffff,
      command: 'ata' as const,
      device: false,
      async: false,
      write: false,
      errFeature: 0,
      sectorCount: 1,
      cmdStatus: 0x24,
      data: Buffer.alloc(0),
    };
    for (const lba of [0, 1, 0x0fffffff]) roundTrip({ ...base, lba48: false, lba });
    for (const lba of [0, 0x0fffffff, 0x10000000, 2 ** 32, 2 ** 48 - 1])
      roundTrip({ ...base, lba48: true, lba });
  });

  for (const [name, ccmd] of Object.entries(ConfigCmd)) {
    it(`Query Config ${name} request and response, strings 0..1024 bytes`, () => {
      prop(queryConfigArb(false, ccmd), 60);
      prop(queryConfigArb(true, ccmd), 60);
    });
  }
  it('Query Config with any ccmd/version in error replies', () => prop(queryConfigArb(true), 100));

  it('Mac Mask List request and response, 0..255 directives', () => {
    prop(macMaskArb(false), 100);
    prop(macMaskArb(true), 100);
  });

  it('Reserve/Release request and response, 0..255 MACs', () => {
    prop(reserveArb(false), 100);
    prop(reserveArb(true), 100);
  });

  it('vendor commands 0xF0..0xFF keep their raw argument', () => prop(vendorArb, 100));

  it('full-size lists fit well inside a 9000-byte frame', () => {
    expect(directiveOffset(255)).toBe(2068);
    expect(reserveMacOffset(255)).toBe(1556);
  });
});
