import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AoeMessage, decodeFrame, encodeFrame } from '../../../src/aoe/index.js';
import { ErrorCodes } from '../../../src/errors.js';
import { ataRequestArb, ataResponseArb, macMaskArb, queryConfigArb, reserveArb } from './arbitraries.js';

function checkResult(r: ReturnType<typeof decodeFrame>): void {
  if (!r.ok) {
    expect(ErrorCodes).toContain(r.error.code);
    expect(r.error.code.startsWith('ERR_AOE_')).toBe(true);
  }
}

/** Arbitrary bytes made to look like AoE often enough to get past the header checks. */
const aoeishArb = fc
  .record({
    bytes: fc.uint8Array({ maxLength: 9100 }),
    command: fc.constantFrom(0, 1, 2, 3, 0xf0, -1),
    flags: fc.integer({ min: 0, max: 15 }),
  })
  .map(({ bytes, command, flags }) => {
    if (bytes.length >= 14) {
      bytes[12] = 0x88;
      bytes[13] = 0xa2;
    }
    if (bytes.length >= 20) {
      bytes[14] = 0x10 | flags;
      if (command >= 0) bytes[19] = command;
    }
    return bytes;
  });

const lenArb = fc.oneof(
  fc.constant(undefined),
  fc.integer({ min: -10, max: 9200 }),
  fc.double(),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -0),
);

const mutatedValidArb = fc
  .record({
    msg: fc.oneof(
      ataRequestArb,
      ataResponseArb,
      queryConfigArb(false),
      queryConfigArb(true),
      macMaskArb(false),
      reserveArb(true),
    ),
    edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    cut: fc.option(fc.nat()),
  })
  .map(({ msg, edits, cut }) => {
    const f = Buffer.from(encodeFrame(msg as AoeMessage));
    for (const [o, v] of edits) f[o % f.length] = v;
    return cut === null ? f : f.subarray(0, cut % (f.length + 1));
  });

/** Anything decodeFrame returns re-encodes, and decodes again to the same message. */
function normalises(bytes: Uint8Array): void {
  const r = decodeFrame(bytes);
  checkResult(r);
  if (!r.ok) return;
  const again = decodeFrame(encodeFrame(r.value));
  if (!again.ok) throw again.error;
  if (r.value.command === 'vendor') {
    // The raw argument of a frame shorter than 60 bytes comes back padded.
    expect(again.value).toMatchObject({ ...r.value, argument: expect.anything() });
  } else {
    expect(again.value).toEqual(r.value);
  }
}

describe('decodeFrame fuzz', () => {
  it('never throws on arbitrary bytes up to 9100', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 9100 }), lenArb, fc.boolean(), (bytes, len, strict) => {
        checkResult(decodeFrame(bytes, len, { strict }));
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on AoE-looking bytes, and what it accepts re-encodes', () => {
    fc.assert(
      fc.property(aoeishArb, fc.boolean(), (bytes, strict) => {
        checkResult(decodeFrame(bytes, undefined, { strict }));
        normalises(bytes);
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on mutated valid frames, and what it accepts re-encodes', () => {
    fc.assert(fc.property(mutatedValidArb, normalises), { numRuns: 500 });
  });

  it('never throws on non-buffer input', () => {
    fc.assert(
      fc.property(fc.anything(), lenArb, (input, len) => {
        const r = decodeFrame(input as Uint8Array, len);
        checkResult(r);
      }),
      { numRuns: 300 },
    );
  });
});
