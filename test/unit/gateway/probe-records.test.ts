/**
 * PROBE and PROBE_ACK values: exact bytes, sizes as datagram sizes, and decoders that refuse short
 * input instead of reading past it.
 */
import { describe, expect, it } from 'vitest';
import {
  datagramBytesForRecord,
  decodeProbeAck,
  decodeProbeId,
  encodeProbe,
  encodeProbeAck,
  PROBE_ACK_VALUE_BYTES,
  ProbeAck,
  RECORD_PROBE,
  RECORD_PROBE_ACK,
  recordBytesForDatagram,
} from '../../../src/gateway/probe-records.js';
import { DATA_OVERHEAD } from '../../../src/tunnel/messages.js';
import { RecordReader, RecordWriter } from '../../../src/tunnel/records.js';

describe('probe records', () => {
  it('types 6 and 7', () => {
    expect([RECORD_PROBE, RECORD_PROBE_ACK]).toEqual([6, 7]);
  });

  it('PROBE: id big-endian then zeros, exactly the requested length', () => {
    const out = new Uint8Array(12).fill(0xee);
    expect(encodeProbe(out, 1, 0x0a0b0c0d, 10)).toBe(10);
    expect(Array.from(out)).toEqual([0xee, 10, 11, 12, 13, 0, 0, 0, 0, 0, 0, 0xee]);
    expect(decodeProbeId(out, 1, 10)).toBe(0x0a0b0c0d);
    expect(encodeProbe(out, 0, 1, 3)).toBe(-1);
    expect(encodeProbe(out, 4, 1, 10)).toBe(-1);
    expect(decodeProbeId(out, 1, 3)).toBe(-1);
    expect(decodeProbeId(out, 10, 4)).toBe(-1);
  });

  it('PROBE_ACK: id and echoed length, big-endian; longer values are read, shorter refused', () => {
    const out = new Uint8Array(8);
    expect(encodeProbeAck(out, 0, 0xfffffffe, 1417)).toBe(PROBE_ACK_VALUE_BYTES);
    expect(Array.from(out.subarray(0, 6))).toEqual([0xff, 0xff, 0xff, 0xfe, 0x05, 0x89]);
    const ack = new ProbeAck();
    expect(decodeProbeAck(out, 0, 8, ack)).toBe(true);
    expect(ack).toMatchObject({ probeId: 0xfffffffe, probeValueBytes: 1417 });
    expect(decodeProbeAck(out, 0, 5, ack)).toBe(false);
    expect(encodeProbeAck(out, 3, 1, 1)).toBe(-1);
  });

  it('a probe record alone fills a datagram of the size under test', () => {
    for (const size of [1280, 1452, 9000]) {
      const plaintext = new Uint8Array(size - DATA_OVERHEAD);
      const value = new Uint8Array(recordBytesForDatagram(size));
      encodeProbe(value, 0, 7, value.length);
      const w = new RecordWriter(plaintext);
      expect(w.add(RECORD_PROBE, value, 0, value.length)).toBe(true);
      expect(w.length).toBe(plaintext.length);
      expect(DATA_OVERHEAD + w.pad(16)).toBe(size);
      const r = new RecordReader().reset(plaintext, 0, w.length);
      expect(r.next()).toBe(true);
      expect(datagramBytesForRecord(r.length)).toBe(size);
    }
  });
});
