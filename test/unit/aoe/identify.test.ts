import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildIdentify, IDENTIFY_SIZE, parseIdentify } from '../../../src/aoe/index.js';
import { isAoegwError } from '../../../src/errors.js';

const word = (b: Uint8Array, w: number) => b[2 * w]! | (b[2 * w + 1]! << 8);

const info = { sectors: 2_000_000, serial: 'SN-0001', model: 'aoegw durable target', firmware: 'v1.0' };

function printable(maxLength: number) {
  return fc
    .string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength })
    .chain((head) =>
      // Inner spaces survive; only the padding at the ends is trimmed.
      fc.constantFrom(head, head.length > 2 ? `${head[0]} ${head.slice(2)}` : head),
    );
}

describe('IDENTIFY DEVICE', () => {
  it('carries a world wide name in words 108-111 (most significant first) and flags it in 84/87', () => {
    const b = Buffer.alloc(IDENTIFY_SIZE);
    buildIdentify(b, info);
    expect(parseIdentify(b).wwn).toBeNull();
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (wwn) => {
        buildIdentify(b, { ...info, wwn });
        expect(word(b, 84) & 0x100).toBe(0x100);
        expect(word(b, 87) & 0x100).toBe(0x100);
        expect(word(b, 108)).toBe(Number(wwn >> 48n));
        expect(parseIdentify(b).wwn).toBe(wwn);
      }),
    );
    expect(() => buildIdentify(b, { ...info, wwn: 1n << 64n })).toThrow();
  });

  it('writes the fixed words Linux and vblade expect', () => {
    const b = Buffer.alloc(IDENTIFY_SIZE, 0xee);
    buildIdentify(b, info);
    const expected: [number, number][] = [
      [47, 0x8000],
      [49, 0x0200],
      [50, 0x4000],
      [83, 0x7400],
      [84, 0x4000],
      [86, 0x3400],
      [87, 0x4000],
      [93, 0x400b],
    ];
    for (const [w, v] of expected) expect([w, word(b, w)]).toEqual([w, v]);
    expect(word(b, 0)).toBe(0); // stale bytes cleared
    expect(word(b, 60) + word(b, 61) * 0x10000).toBe(2_000_000);
    expect(word(b, 100) + word(b, 101) * 0x10000).toBe(2_000_000);
    expect([word(b, 102), word(b, 103)]).toEqual([0, 0]);
  });

  it('byte-swaps strings within each word and pads with spaces', () => {
    const b = Buffer.alloc(IDENTIFY_SIZE);
    buildIdentify(b, { ...info, model: 'ABC', serial: '12', firmware: 'F' });
    expect(b.subarray(54, 58).toString('latin1')).toBe('BA C');
    expect(b.subarray(54 + 4, 54 + 40).toString('latin1')).toBe(' '.repeat(36));
    expect(b.subarray(20, 22).toString('latin1')).toBe('21');
    expect(b.subarray(46, 54).toString('latin1')).toBe(' F      ');
  });

  it('caps the LBA28 capacity at 0x0FFFFFFF and reports the full size through LBA48', () => {
    const b = Buffer.alloc(IDENTIFY_SIZE);
    buildIdentify(b, { ...info, sectors: 2 ** 40 + 5 });
    expect(word(b, 60) + word(b, 61) * 0x10000).toBe(0x0fffffff);
    expect(word(b, 102)).toBe(0x100);
    expect(parseIdentify(b).sectors).toBe(2 ** 40 + 5);
  });

  it('round-trips capacity, strings and feature flags', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        printable(20),
        printable(40),
        printable(8),
        (sectors, serial, model, firmware) => {
          const b = Buffer.alloc(IDENTIFY_SIZE + 10);
          buildIdentify(b, { sectors, serial, model, firmware }, 10);
          expect(parseIdentify(b, 10)).toEqual({
            sectors,
            lba48: true,
            serial,
            model,
            firmware,
            flushCache: true,
            flushCacheExt: true,
            wwn: null,
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('truncates long strings and replaces non-ASCII', () => {
    const b = Buffer.alloc(IDENTIFY_SIZE);
    buildIdentify(b, { ...info, serial: 'x'.repeat(30), model: 'disk\u00e9', firmware: '123456789' });
    expect(parseIdentify(b)).toMatchObject({ serial: 'x'.repeat(20), model: 'disk?', firmware: '12345678' });
  });

  it('parses a device without LBA48 from words 60-61 (as Linux does)', () => {
    const b = Buffer.alloc(IDENTIFY_SIZE);
    buildIdentify(b, { ...info, sectors: 123_456 });
    b.fill(0, 2 * 83, 2 * 83 + 2);
    b.fill(0, 2 * 86, 2 * 86 + 2);
    b.fill(0xff, 200, 208); // garbage in w100-103 must be ignored
    expect(parseIdentify(b)).toMatchObject({ sectors: 123_456, lba48: false, flushCache: false });
  });

  it('rejects bad capacities and short buffers', () => {
    for (const sectors of [-1, 1.5, 2 ** 48, Number.NaN]) {
      expect(() => buildIdentify(Buffer.alloc(512), { ...info, sectors })).toThrow(/capacity/);
    }
    let err: unknown;
    try {
      parseIdentify(Buffer.alloc(511));
    } catch (e) {
      err = e;
    }
    expect(isAoegwError(err, 'ERR_AOE_TRUNCATED')).toBe(true);
    expect(() => buildIdentify(Buffer.alloc(600), info, 100)).toThrow(/512/);
  });
});
