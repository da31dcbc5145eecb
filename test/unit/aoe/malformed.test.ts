import { describe, expect, it } from 'vitest';
import {
  type AoeMessage,
  type AoeMessageBase,
  AtaOp,
  AtaStatus,
  decodeFrame,
  encodeFrame,
} from '../../../src/aoe/index.js';
import type { ErrorCode } from '../../../src/errors.js';

const base: AoeMessageBase = {
  dst: 'ff:ff:ff:ff:ff:ff',
  src: '52:54:00:12:34:56',
  response: false,
  errorFlag: false,
  error: 0,
  major: 1,
  minor: 2,
  tag: 0x01020304,
};
const resp: AoeMessageBase = { ...base, dst: '52:54:00:12:34:56', src: '02:00:00:00:00:01', response: true };
const ataBase = {
  command: 'ata' as const,
  lba48: false,
  device: false,
  async: false,
  write: false,
  errFeature: 0,
  sectorCount: 2,
  cmdStatus: AtaOp.READ_SECTORS,
  lba: 1000,
  data: Buffer.alloc(0),
};

const fill = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (seed + i) & 0xff));

/** Valid frames to mutate, with the length of their meaningful part (before padding). */
const valid = {
  ataRead: encodeFrame({ ...base, ...ataBase }), // 36 → 60
  ataWrite: encodeFrame({
    ...base,
    ...ataBase,
    write: true,
    cmdStatus: AtaOp.WRITE_SECTORS,
    data: fill(1024, 1),
  }), // 1060
  ataReadResp: encodeFrame({ ...resp, ...ataBase, cmdStatus: AtaStatus.DRDY, data: fill(1024, 9) }), // 1060
  qcLinux: encodeFrame({
    ...base,
    command: 'query-config',
    major: 0xffff,
    minor: 0xff,
    bufferCount: 0,
    firmwareVersion: 0,
    sectorCount: 0,
    aoeVersion: 0,
    ccmd: 0,
    config: Buffer.alloc(0),
  }), // 32 → 60
  qcResp: encodeFrame({
    ...resp,
    command: 'query-config',
    bufferCount: 16,
    firmwareVersion: 0x4019,
    sectorCount: 2,
    aoeVersion: 1,
    ccmd: 0,
    config: fill(40, 0x41),
  }), // 72
  mask: encodeFrame({
    ...base,
    command: 'mac-mask',
    mcmd: 1,
    merror: 0,
    directives: [
      { dcmd: 1, mac: '00:11:22:33:44:55' },
      { dcmd: 2, mac: '00:11:22:33:44:66' },
      { dcmd: 0, mac: '00:11:22:33:44:77' },
    ],
  }), // 52 → 60
  reserve: encodeFrame({
    ...base,
    command: 'reserve',
    rcmd: 1,
    macs: ['00:11:22:33:44:55', '00:11:22:33:44:66', '00:11:22:33:44:77'],
  }), // 44 → 60
};

function mutate(frame: Buffer, ...edits: [offset: number, value: number][]): Buffer {
  const b = Buffer.from(frame);
  for (const [o, v] of edits) b[o] = v;
  return b;
}

interface Row {
  name: string;
  bytes: unknown;
  len?: number;
  strict?: boolean;
  code: ErrorCode;
}

const rows: Row[] = [];

// Truncated at every boundary: each length short of the meaningful part of each frame.
const meaningful: [keyof typeof valid, number, ErrorCode][] = [
  ['ataRead', 36, 'ERR_AOE_TRUNCATED'],
  ['qcLinux', 32, 'ERR_AOE_TRUNCATED'],
  ['qcResp', 72, 'ERR_AOE_TRUNCATED'],
  ['mask', 52, 'ERR_AOE_TRUNCATED'],
  ['reserve', 44, 'ERR_AOE_TRUNCATED'],
];
for (const [key, end, code] of meaningful) {
  for (let n = 0; n < end; n++) {
    rows.push({ name: `${key} truncated to ${n}`, bytes: valid[key].subarray(0, n), code });
  }
}
// Write data and read-response data cut short: the sector count claims more than the frame has.
for (const key of ['ataWrite', 'ataReadResp'] as const) {
  for (let n = 0; n < 36; n++) {
    rows.push({
      name: `${key} truncated to ${n}`,
      bytes: valid[key].subarray(0, n),
      code: 'ERR_AOE_TRUNCATED',
    });
  }
  // A reply of at most 60 bytes is a no-data reply (see below), so read replies start failing at 61.
  for (const n of key === 'ataWrite' ? [36, 37, 60, 548, 1059] : [61, 100, 548, 1059]) {
    rows.push({
      name: `${key} data cut to ${n}`,
      bytes: valid[key].subarray(0, n),
      code: 'ERR_AOE_SECTOR_COUNT',
    });
  }
}

rows.push(
  // EtherType
  { name: 'IPv4 ethertype', bytes: mutate(valid.ataRead, [12, 0x08], [13, 0x00]), code: 'ERR_AOE_NOT_AOE' },
  { name: 'ethertype 0x88A3', bytes: mutate(valid.ataRead, [13, 0xa3]), code: 'ERR_AOE_NOT_AOE' },
  {
    name: 'byte-swapped ethertype',
    bytes: mutate(valid.ataRead, [12, 0xa2], [13, 0x88]),
    code: 'ERR_AOE_NOT_AOE',
  },
  {
    name: 'VLAN-tagged frame',
    bytes: mutate(valid.ataRead, [12, 0x81], [13, 0x00]),
    code: 'ERR_AOE_NOT_AOE',
  },
  {
    name: 'wrong ethertype beats truncation',
    bytes: mutate(valid.ataRead, [12, 0x08], [13, 0x00]).subarray(0, 20),
    code: 'ERR_AOE_NOT_AOE',
  },
  // Version
  { name: 'header version 0', bytes: mutate(valid.ataRead, [14, 0x00]), code: 'ERR_AOE_BAD_VERSION' },
  { name: 'header version 2', bytes: mutate(valid.ataRead, [14, 0x20]), code: 'ERR_AOE_BAD_VERSION' },
  {
    name: 'header version 15 response',
    bytes: mutate(valid.qcResp, [14, 0xf8]),
    code: 'ERR_AOE_BAD_VERSION',
  },
  {
    name: 'query config inner version 2',
    bytes: mutate(valid.qcResp, [29, 0x20]),
    code: 'ERR_AOE_BAD_VERSION',
  },
  // Reserved bits (strict only)
  {
    name: 'flag bit 0x01',
    bytes: mutate(valid.ataRead, [14, 0x11]),
    strict: true,
    code: 'ERR_AOE_RESERVED_BITS',
  },
  {
    name: 'flag bit 0x02',
    bytes: mutate(valid.qcLinux, [14, 0x12]),
    strict: true,
    code: 'ERR_AOE_RESERVED_BITS',
  },
  {
    name: 'aflags bit 0x80',
    bytes: mutate(valid.ataRead, [24, 0x80]),
    strict: true,
    code: 'ERR_AOE_RESERVED_BITS',
  },
  {
    name: 'aflags bit 0x04',
    bytes: mutate(valid.ataRead, [24, 0x04]),
    strict: true,
    code: 'ERR_AOE_RESERVED_BITS',
  },
  // Commands
  { name: 'command 4', bytes: mutate(valid.ataRead, [19, 4]), code: 'ERR_AOE_UNKNOWN_COMMAND' },
  { name: 'command 0x7F', bytes: mutate(valid.ataRead, [19, 0x7f]), code: 'ERR_AOE_UNKNOWN_COMMAND' },
  { name: 'command 0xEF', bytes: mutate(valid.ataRead, [19, 0xef]), code: 'ERR_AOE_UNKNOWN_COMMAND' },
  // Query Config strings
  {
    name: 'string length 1025',
    bytes: Buffer.concat([mutate(valid.qcResp, [30, 0x04], [31, 0x01]), Buffer.alloc(1100)]),
    code: 'ERR_AOE_STRING_TOO_LONG',
  },
  {
    name: 'string length 0xFFFF',
    bytes: mutate(valid.qcResp, [30, 0xff], [31, 0xff]),
    code: 'ERR_AOE_STRING_TOO_LONG',
  },
  { name: 'string length past frame by 1', bytes: mutate(valid.qcResp, [31, 41]), code: 'ERR_AOE_TRUNCATED' },
  { name: 'string length into padding', bytes: mutate(valid.qcLinux, [31, 29]), code: 'ERR_AOE_TRUNCATED' },
  { name: 'ccmd 5', bytes: mutate(valid.qcLinux, [29, 0x05]), code: 'ERR_AOE_BAD_ARGUMENT' },
  { name: 'ccmd 15', bytes: mutate(valid.qcResp, [29, 0x1f]), code: 'ERR_AOE_BAD_ARGUMENT' },
  // Mac Mask List
  { name: 'mask count past frame', bytes: mutate(valid.mask, [27, 5]), code: 'ERR_AOE_TRUNCATED' },
  { name: 'mask count 255', bytes: mutate(valid.mask, [27, 255]), code: 'ERR_AOE_TRUNCATED' },
  { name: 'mcmd 2', bytes: mutate(valid.mask, [25, 2]), code: 'ERR_AOE_BAD_ARGUMENT' },
  { name: 'dcmd 3 in request', bytes: mutate(valid.mask, [28 + 8 + 1, 3]), code: 'ERR_AOE_BAD_ARGUMENT' },
  // Reserve/Release
  { name: 'nmacs past frame', bytes: mutate(valid.reserve, [25, 6]), code: 'ERR_AOE_TRUNCATED' },
  { name: 'nmacs 255', bytes: mutate(valid.reserve, [25, 255]), code: 'ERR_AOE_TRUNCATED' },
  { name: 'rcmd 3', bytes: mutate(valid.reserve, [24, 3]), code: 'ERR_AOE_BAD_ARGUMENT' },
  // Sector counts
  {
    name: 'write sector count 3 with 2 sectors',
    bytes: mutate(valid.ataWrite, [26, 3]),
    code: 'ERR_AOE_SECTOR_COUNT',
  },
  { name: 'write sector count 255', bytes: mutate(valid.ataWrite, [26, 255]), code: 'ERR_AOE_SECTOR_COUNT' },
  {
    name: 'read request turned write',
    bytes: mutate(valid.ataRead, [24, 0x01]),
    code: 'ERR_AOE_SECTOR_COUNT',
  },
  {
    name: 'read response count 3 with 2 sectors',
    bytes: mutate(valid.ataReadResp, [26, 3]),
    code: 'ERR_AOE_SECTOR_COUNT',
  },
  // Caller-supplied length and input
  { name: 'len > buf.length', bytes: valid.ataRead, len: 61, code: 'ERR_AOE_BAD_INPUT' },
  { name: 'len -1', bytes: valid.ataRead, len: -1, code: 'ERR_AOE_BAD_INPUT' },
  { name: 'len NaN', bytes: valid.ataRead, len: Number.NaN, code: 'ERR_AOE_BAD_INPUT' },
  { name: 'len 1.5', bytes: valid.ataRead, len: 1.5, code: 'ERR_AOE_BAD_INPUT' },
  { name: 'len Infinity', bytes: valid.ataRead, len: Number.POSITIVE_INFINITY, code: 'ERR_AOE_BAD_INPUT' },
  { name: 'input null', bytes: null, code: 'ERR_AOE_BAD_INPUT' },
  { name: 'input string', bytes: 'aoe', code: 'ERR_AOE_BAD_INPUT' },
  { name: 'input plain array', bytes: [...valid.ataRead], code: 'ERR_AOE_BAD_INPUT' },
  { name: 'input ArrayBuffer', bytes: new ArrayBuffer(60), code: 'ERR_AOE_BAD_INPUT' },
);

describe('decodeFrame rejects malformed frames', () => {
  it.each(rows)('$name → $code', ({ bytes, len, strict, code }) => {
    const r = decodeFrame(bytes as Uint8Array, len, { strict: strict === true });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe(code);
    // Passing the length explicitly on a longer buffer must give the same verdict.
    if (bytes instanceof Uint8Array && len === undefined) {
      const longer = Buffer.concat([bytes, Buffer.alloc(9)]);
      const r2 = decodeFrame(longer, bytes.length, { strict: strict === true });
      expect(r2.ok ? 'ok' : r2.error.code).toBe(code);
    }
  });

  it('covers every boundary', () => {
    expect(rows.length).toBeGreaterThan(300);
  });
});

function ok(bytes: Uint8Array, len?: number, strict = false): AoeMessage {
  const r = decodeFrame(bytes, len, { strict });
  if (!r.ok) throw r.error;
  return r.value;
}

describe('decodeFrame accepts what real peers send', () => {
  it('a Linux discovery query: 32 unpadded bytes, argument all zero (inner version 0)', () => {
    const m = ok(valid.qcLinux.subarray(0, 32));
    expect(m).toMatchObject({ command: 'query-config', major: 0xffff, minor: 0xff, aoeVersion: 0, ccmd: 0 });
    expect(ok(valid.qcLinux)).toEqual(m);
  });

  it('never reads padding as data or config', () => {
    const read = ok(
      mutate(valid.ataRead, ...Array.from({ length: 24 }, (_, i): [number, number] => [36 + i, 0xaa])),
    );
    expect(read.command === 'ata' && read.data.length).toBe(0);
    const qc = ok(mutate(valid.qcLinux, [40, 0x55]));
    expect(qc.command === 'query-config' && qc.config.length).toBe(0);
    const cfg = ok(Buffer.concat([valid.qcResp, Buffer.from('trailing junk')]));
    expect(cfg.command === 'query-config' && cfg.config.toString()).toBe(fill(40, 0x41).toString());
    const write = ok(Buffer.concat([valid.ataWrite, Buffer.alloc(100, 7)]));
    expect(write.command === 'ata' && write.data).toEqual(fill(1024, 1));
  });

  it('masks LBA28 addresses carrying 0xE0 in LBA3, keeps LBA48 whole', () => {
    const lba28 = ok(mutate(valid.ataRead, [28, 0x78], [29, 0x56], [30, 0x34], [31, 0xe2], [32, 0xff]));
    expect(lba28.command === 'ata' && lba28.lba).toBe(0x2345678);
    const lba48 = ok(
      mutate(
        valid.ataRead,
        [24, 0x40],
        [28, 0x78],
        [29, 0x56],
        [30, 0x34],
        [31, 0xe2],
        [32, 0xff],
        [33, 0x7f],
      ),
    );
    expect(lba48.command === 'ata' && lba48.lba).toBe(0x7fffe2345678);
  });

  it('a CHECK POWER MODE reply (count 0xFF, no data) in a 60-byte frame', () => {
    const f = encodeFrame({ ...resp, ...ataBase, cmdStatus: AtaStatus.DRDY, sectorCount: 0xff });
    expect(f.length).toBe(60);
    const m = ok(f);
    expect(m.command === 'ata' && m.data.length).toBe(0);
  });

  it('a read reply cut to 60 bytes or less decodes as a no-data reply; the initiator checks the length', () => {
    for (const n of [36, 37, 60]) {
      const m = ok(valid.ataReadResp.subarray(0, n));
      expect(m.command === 'ata' && m.data.length).toBe(0);
    }
  });

  it('failed-status and E-flag ATA replies carry no data, whatever follows', () => {
    const failed = ok(mutate(valid.ataReadResp, [27, AtaStatus.DRDY | AtaStatus.ERR], [26, 200]));
    expect(failed.command === 'ata' && failed.data.length).toBe(0);
    const eflag = ok(mutate(valid.ataReadResp, [14, 0x1c], [15, 3], [26, 200]));
    expect(eflag).toMatchObject({ errorFlag: true, error: 3, data: Buffer.alloc(0) });
  });

  it('error replies echo bad arguments unchecked', () => {
    expect(ok(mutate(valid.qcLinux, [14, 0x1c], [15, 2], [29, 0x27]))).toMatchObject({
      ccmd: 7,
      aoeVersion: 2,
    });
    expect(ok(mutate(valid.mask, [14, 0x1c], [25, 9]))).toMatchObject({ mcmd: 9 });
    expect(ok(mutate(valid.reserve, [14, 0x1c], [24, 9]))).toMatchObject({ rcmd: 9 });
  });

  it('ignores reserved bits unless strict, like Linux and vblade', () => {
    expect(ok(mutate(valid.ataRead, [14, 0x13], [24, 0xac]))).toMatchObject({
      command: 'ata',
      response: false,
    });
    expect(ok(mutate(valid.qcLinux, [14, 0x1b]))).toMatchObject({ response: true, errorFlag: false });
  });

  it('decodes vendor commands 0xF0 and 0xFF with their raw argument', () => {
    const v = ok(mutate(valid.qcResp, [19, 0xf0]));
    expect(v).toMatchObject({ command: 'vendor', code: 0xf0 });
    expect(v.command === 'vendor' && v.argument).toEqual(valid.qcResp.subarray(24));
    expect(ok(mutate(valid.ataRead, [19, 0xff]))).toMatchObject({ command: 'vendor', code: 0xff });
  });

  it('respects len shorter than the buffer', () => {
    const big = Buffer.concat([valid.qcLinux.subarray(0, 32), Buffer.alloc(5000, 0xee)]);
    expect(ok(big, 32)).toMatchObject({ command: 'query-config', config: Buffer.alloc(0) });
  });
});
