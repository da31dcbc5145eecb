import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AoeHeader,
  AtaArg,
  AtaFlag,
  AtaOp,
  AtaStatus,
  Command,
  DecodeError,
  decodeAta,
  decodeErrorCode,
  decodeHeader,
  decodeMacMask,
  decodeQueryConfig,
  decodeReserve,
  encodeAtaRequest,
  encodeAtaResponse,
  encodeMacMask,
  encodeQueryConfig,
  encodeReserve,
  Flag,
  formatMac,
  type HeaderFields,
  MacMaskArg,
  QueryConfigArg,
  ReserveArg,
  readDirective,
  reserveMacOffset,
  writeAtaStatus,
  writeResponseHeader,
} from '../../../src/aoe/index.js';
import { ErrorCodes, isAoegwError } from '../../../src/errors.js';

const initiator = Buffer.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const target = Buffer.from([0x02, 0, 0, 0, 0, 0x01]);
const broadcast = Buffer.alloc(6, 0xff);

function hdr(fields: Partial<HeaderFields> = {}): HeaderFields {
  return {
    dst: broadcast,
    src: initiator,
    flags: 0,
    error: 0,
    major: 5,
    minor: 1,
    command: 0,
    tag: 1,
    ...fields,
  };
}

function expectThrows(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    expect(isAoegwError(e)).toBe(true);
    expect((e as { code: string }).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}`);
}

describe('DecodeError', () => {
  it('maps every non-zero value to a distinct ERR_AOE_* code from errors.ts', () => {
    const values = Object.values(DecodeError).filter((v) => v !== 0);
    const codes = values.map(decodeErrorCode);
    expect(new Set(codes).size).toBe(values.length);
    for (const c of codes) expect(ErrorCodes).toContain(c);
    expect(decodeErrorCode(DecodeError.SECTOR_COUNT)).toBe('ERR_AOE_SECTOR_COUNT');
  });
});

describe('hot-path decoding into reused views', () => {
  it('decodes many different frames into the same objects without stale fields', () => {
    const h = new AoeHeader();
    const a = new AtaArg();
    const q = new QueryConfigArg();
    const out = Buffer.alloc(9000);
    const data = Buffer.alloc(17 * 512, 0x5a);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 17 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        (tag, count, write, lba) => {
          if (tag % 5 === 0) {
            const n = encodeQueryConfig(
              out,
              hdr({ tag, command: Command.QUERY_CONFIG, flags: Flag.RESPONSE }),
              { bufferCount: 64, firmwareVersion: 1, sectorCount: count, aoeVersion: 1, ccmd: 0 },
              data,
              0,
              count,
            );
            expect(decodeHeader(out, n, h)).toBe(0);
            expect(h.command).toBe(Command.QUERY_CONFIG);
            expect(decodeQueryConfig(out, n, q)).toBe(0);
            expect([q.configOffset, q.configLength, q.sectorCount]).toEqual([32, count, count]);
            return;
          }
          const aflags = AtaFlag.LBA48 | (write ? AtaFlag.WRITE : 0);
          const op = write ? AtaOp.WRITE_SECTORS_EXT : AtaOp.READ_SECTORS_EXT;
          const args = { aflags, errFeature: 0, sectorCount: count, cmdStatus: op, lba };
          const n = encodeAtaRequest(
            out,
            hdr({ tag }),
            args,
            write ? data : null,
            0,
            write ? count * 512 : 0,
          );
          expect(n).toBe(Math.max(60, 36 + (write ? count * 512 : 0)));
          expect(decodeHeader(out, n, h)).toBe(0);
          expect([h.tag, h.command, h.major, h.minor, h.isResponse]).toEqual([tag, 0, 5, 1, false]);
          expect(formatMac(h.src)).toBe('52:54:00:12:34:56');
          expect(decodeAta(out, n, a)).toBe(0);
          expect([a.lba, a.sectorCount, a.cmdStatus, a.dataOffset]).toEqual([lba, count, op, 36]);
          expect(a.dataLength).toBe(write ? count * 512 : 0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('fills the header before reporting BAD_VERSION / UNKNOWN_COMMAND so a target can reply', () => {
    const out = Buffer.alloc(60);
    const h = new AoeHeader();
    encodeAtaRequest(out, hdr({ tag: 0xabcdef }), {
      aflags: 0,
      errFeature: 0,
      sectorCount: 0,
      cmdStatus: 0,
      lba: 0,
    });
    out[14] = 0x20;
    expect(decodeHeader(out, 60, h)).toBe(DecodeError.BAD_VERSION);
    expect([h.version, h.tag, h.major]).toEqual([2, 0xabcdef, 5]);
    out[14] = 0x10;
    out[19] = 9;
    expect(decodeHeader(out, 60, h)).toBe(DecodeError.UNKNOWN_COMMAND);
    expect([h.command, h.tag]).toEqual([9, 0xabcdef]);
  });

  it('reads mask directives and reserve MACs in place', () => {
    const out = Buffer.alloc(2100);
    const macs = Array.from({ length: 255 }, (_, i) => Buffer.from([0, 1, 2, 3, 4, i]));
    let n = encodeMacMask(
      out,
      hdr({ command: Command.MAC_MASK }),
      { mcmd: 1, merror: 0 },
      macs.map((mac, i) => ({ dcmd: i % 3, mac })),
    );
    const m = new MacMaskArg();
    expect(decodeMacMask(out, n, m)).toBe(0);
    expect(m.count).toBe(255);
    const mac = Buffer.alloc(6);
    expect(readDirective(out, 200, mac)).toBe(200 % 3);
    expect(mac).toEqual(macs[200]);

    n = encodeReserve(out, hdr({ command: Command.RESERVE }), 2, macs.slice(0, 7));
    const r = new ReserveArg();
    expect(decodeReserve(out, n, r)).toBe(0);
    expect([r.rcmd, r.nmacs]).toEqual([2, 7]);
    expect(out.subarray(reserveMacOffset(6), reserveMacOffset(7))).toEqual(macs[6]);
  });
});

describe('hot-path encoders', () => {
  it('pad short frames to 60 with zeros, overwriting stale bytes', () => {
    const out = Buffer.alloc(100, 0xaa);
    const n = encodeQueryConfig(out, hdr({ command: Command.QUERY_CONFIG, major: 0xffff, minor: 0xff }), {
      bufferCount: 0,
      firmwareVersion: 0,
      sectorCount: 0,
      aoeVersion: 0,
      ccmd: 0,
    });
    expect(n).toBe(60);
    expect(out.subarray(24, 60)).toEqual(Buffer.alloc(36));
    expect(out[60]).toBe(0xaa);
    const ata = { aflags: 0, errFeature: 0, sectorCount: 1, cmdStatus: AtaOp.IDENTIFY_DEVICE, lba: 0 };
    out.fill(0xaa);
    expect(encodeAtaRequest(out, hdr(), ata)).toBe(60);
    expect(out.subarray(36, 60)).toEqual(Buffer.alloc(24));
    out.fill(0xaa);
    expect(encodeMacMask(out, hdr({ command: 2 }), { mcmd: 0, merror: 0 }, [])).toBe(60);
    expect(out.subarray(28, 60)).toEqual(Buffer.alloc(32));
    out.fill(0xaa);
    expect(encodeReserve(out, hdr({ command: 3 }), 0, [])).toBe(60);
    expect(out.subarray(26, 60)).toEqual(Buffer.alloc(34));
  });

  it('write LBA28 addresses with 0xE0 in LBA3 and refuse out-of-range addresses', () => {
    const out = Buffer.alloc(60);
    encodeAtaRequest(out, hdr(), {
      aflags: 0,
      errFeature: 0,
      sectorCount: 1,
      cmdStatus: 0x20,
      lba: 0x0abcdef1,
    });
    expect([...out.subarray(28, 36)]).toEqual([0xf1, 0xde, 0xbc, 0xea, 0, 0, 0, 0]);
    expectThrows(
      () =>
        encodeAtaRequest(out, hdr(), {
          aflags: 0,
          errFeature: 0,
          sectorCount: 1,
          cmdStatus: 0x20,
          lba: 2 ** 28,
        }),
      'ERR_AOE_BAD_ARGUMENT',
    );
    expectThrows(
      () =>
        encodeAtaRequest(out, hdr(), {
          aflags: 0x40,
          errFeature: 0,
          sectorCount: 1,
          cmdStatus: 0x24,
          lba: 2 ** 48,
        }),
      'ERR_AOE_BAD_ARGUMENT',
    );
  });

  it('refuse buffers that are too small and strings over 1024', () => {
    const ata = { aflags: 1, errFeature: 0, sectorCount: 2, cmdStatus: 0x30, lba: 0 };
    expectThrows(
      () => encodeAtaRequest(Buffer.alloc(59), hdr(), { ...ata, sectorCount: 0 }),
      'ERR_AOE_ENCODE_SPACE',
    );
    expectThrows(
      () => encodeAtaRequest(Buffer.alloc(1000), hdr(), ata, Buffer.alloc(1024)),
      'ERR_AOE_ENCODE_SPACE',
    );
    const q = { bufferCount: 0, firmwareVersion: 0, sectorCount: 0, aoeVersion: 1, ccmd: 0 };
    expectThrows(
      () => encodeQueryConfig(Buffer.alloc(2000), hdr(), q, Buffer.alloc(1025)),
      'ERR_AOE_STRING_TOO_LONG',
    );
    expectThrows(
      () =>
        encodeReserve(
          Buffer.alloc(9000),
          hdr(),
          0,
          Array.from({ length: 256 }, () => target),
        ),
      'ERR_AOE_BAD_ARGUMENT',
    );
  });

  it('encode data already placed at offset 36 without copying', () => {
    const out = Buffer.alloc(1100);
    out.fill(0x33, 36, 36 + 1024);
    const a = { aflags: 0, errFeature: 0, sectorCount: 2, cmdStatus: AtaStatus.DRDY, lba: 7 };
    const n = encodeAtaResponse(out, hdr({ dst: initiator, src: target }), a, null, 0, 1024);
    expect(n).toBe(1060);
    const v = new AtaArg();
    expect(decodeAta(out, n, v)).toBe(0);
    expect(v.dataLength).toBe(1024);
    expect(out.subarray(36, 1060)).toEqual(Buffer.alloc(1024, 0x33));
    expect(out[14]).toBe(0x18);
  });
});

describe('in-place request → response (target side)', () => {
  it('swaps addresses, sets R, real shelf/slot, status; keeps tag and echoes the rest', () => {
    const buf = Buffer.alloc(1100);
    const req = { aflags: 0, errFeature: 0, sectorCount: 2, cmdStatus: AtaOp.READ_SECTORS, lba: 99 };
    encodeAtaRequest(buf, hdr({ major: 0xffff, minor: 0xff, tag: 42, flags: 0x03 }), req);
    writeResponseHeader(buf, target, 5, 1);
    buf.fill(0x77, 36, 36 + 1024);
    writeAtaStatus(buf, AtaStatus.DRDY, 0);
    const h = new AoeHeader();
    const a = new AtaArg();
    expect(decodeHeader(buf, 1060, h, 1)).toBe(0);
    expect([formatMac(h.dst), formatMac(h.src)]).toEqual(['52:54:00:12:34:56', '02:00:00:00:00:01']);
    expect([h.flags, h.major, h.minor, h.tag, h.error]).toEqual([Flag.RESPONSE, 5, 1, 42, 0]);
    expect(decodeAta(buf, 1060, a)).toBe(0);
    expect([a.cmdStatus, a.lba, a.sectorCount, a.dataLength]).toEqual([AtaStatus.DRDY, 99, 2, 1024]);
  });

  it('sets E and the AoE error when asked', () => {
    const buf = Buffer.alloc(60);
    encodeAtaRequest(buf, hdr(), { aflags: 0, errFeature: 0, sectorCount: 0, cmdStatus: 0xec, lba: 0 });
    writeResponseHeader(buf, target, 5, 1, 6);
    const h = new AoeHeader();
    expect(decodeHeader(buf, 60, h)).toBe(0);
    expect([h.isResponse, h.isError, h.error]).toEqual([true, true, 6]);
  });
});
