/** Records: writer/reader tables, padding, malformed lists, pack/unpack property. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  countRecords,
  MAX_RECORD_VALUE,
  packRecords,
  RECORD_AOE,
  RECORD_CONTROL,
  RECORD_HEADER_LEN,
  RecordReader,
  RecordWriter,
  unpackRecords,
} from '../../../src/tunnel/records.js';

describe('RecordWriter', () => {
  it('writes [type][len u16 BE][value] and refuses what does not fit', () => {
    const buf = new Uint8Array(10);
    const w = new RecordWriter(buf);
    expect(w.add(RECORD_AOE, Uint8Array.of(0xaa, 0xbb), 0, 2)).toBe(true);
    expect(Array.from(buf.subarray(0, 5))).toEqual([1, 0, 2, 0xaa, 0xbb]);
    expect(w.fits(2)).toBe(true);
    expect(w.fits(3)).toBe(false);
    expect(w.add(RECORD_CONTROL, new Uint8Array(3), 0, 3)).toBe(false);
    expect(w.length).toBe(5);
    expect(w.add(RECORD_CONTROL, new Uint8Array(2), 0, 2)).toBe(true);
    expect(w.length).toBe(10);
    expect(w.count).toBe(2);
  });

  it.each([
    ['type 0 (padding)', 0, 1],
    ['type 256', 256, 1],
    ['negative length', 1, -1],
    ['length past the source', 1, 5],
    ['length over u16', 1, MAX_RECORD_VALUE + 1],
  ])('refuses %s', (_n, type, len) => {
    const w = new RecordWriter(new Uint8Array(70_000));
    expect(w.add(type, new Uint8Array(4), 0, len)).toBe(false);
    expect(w.length).toBe(0);
  });

  it('pads with zeros to a multiple, never beyond capacity; never pads an empty plaintext', () => {
    const buf = new Uint8Array(20).fill(0xee);
    const w = new RecordWriter(buf);
    expect(w.pad(16)).toBe(0);
    w.add(1, new Uint8Array(2).fill(7), 0, 2);
    expect(w.pad(16)).toBe(16);
    expect(Array.from(buf.subarray(5, 16)).every((x) => x === 0)).toBe(true);
    expect(unpackRecords(buf, 0, 16)).toEqual([{ type: 1, data: Uint8Array.of(7, 7) }]);
    w.reset();
    w.add(1, new Uint8Array(14), 0, 14);
    expect(w.pad(16)).toBe(20); // capped at capacity
  });
});

describe('RecordReader', () => {
  it.each([
    ['empty', [], 0],
    ['one empty record', [5, 0, 0], 1],
    ['padding only', [0, 0, 0, 0], 0],
    ['padding with garbage after', [1, 0, 1, 9, 0, 1, 2, 3], 1],
    ['two records', [1, 0, 1, 9, 2, 0, 0], 2],
    ['unknown type kept', [200, 0, 1, 9], 1],
  ])('%s → %i records', (_n, bytes, n) => {
    expect(countRecords(Uint8Array.from(bytes), 0, bytes.length)).toBe(n);
  });

  it.each([
    ['header cut after type', [1]],
    ['header cut after one length byte', [1, 0]],
    ['value runs past the end', [1, 0, 2, 9]],
    ['second record runs past the end', [1, 0, 0, 2, 1, 0]],
  ])('malformed: %s', (_n, bytes) => {
    expect(countRecords(Uint8Array.from(bytes), 0, bytes.length)).toBe(-1);
    expect(unpackRecords(Uint8Array.from(bytes))).toBeNull();
  });

  it('bad ranges are malformed, not a throw', () => {
    const r = new RecordReader();
    expect(r.reset(new Uint8Array(4), 2, 10).next()).toBe(false);
    expect(r.malformed).toBe(true);
    expect(r.reset(new Uint8Array(4), -1, 2).next()).toBe(false);
    expect(r.malformed).toBe(true);
  });

  it('never throws on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(400), fc.nat(400), (b, off, len) => {
        const n = countRecords(b, off, len);
        expect(n >= -1).toBe(true);
      }),
    );
  });
});

describe('pack / unpack', () => {
  const record = fc.record({
    type: fc.integer({ min: 1, max: 255 }),
    data: fc.integer({ min: 0, max: 2000 }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
  });

  it('random frame sizes → pack → unpack gives the same frames; every plaintext ≤ max (property)', () => {
    fc.assert(
      fc.property(
        fc.array(record, { maxLength: 50 }),
        fc.integer({ min: 2003, max: 9000 }),
        fc.constantFrom(0, 16, 64),
        (records, max, pad) => {
          const packed = packRecords(records, max, pad)!;
          expect(packed).not.toBeNull();
          for (const p of packed) expect(p.length).toBeLessThanOrEqual(max);
          expect(packed.flatMap((p) => unpackRecords(p)!)).toEqual(records);
          // Greedy: the first record of each plaintext would not have fitted in the one before.
          for (let i = 1; i < packed.length; i++) {
            const prevUsed = unpackRecords(packed[i - 1]!)!.reduce(
              (s, r) => s + RECORD_HEADER_LEN + r.data.length,
              0,
            );
            const first = unpackRecords(packed[i]!)![0]!;
            expect(prevUsed + RECORD_HEADER_LEN + first.data.length).toBeGreaterThan(max);
          }
        },
      ),
      { numRuns: 50 },
    );
  });

  it('a record that can never fit makes packRecords return null', () => {
    expect(packRecords([{ type: 1, data: new Uint8Array(100) }], 102)).toBeNull();
    expect(packRecords([{ type: 1, data: new Uint8Array(99) }], 102)).toHaveLength(1);
  });
});
