/**
 * Path MTU probes (docs/protocol.md, 13.9-13.10): a PROBE record fills one datagram to exactly the size
 * under test; the peer answers every probe with a small PROBE_ACK. Integers big-endian.
 *   PROBE     (6): [probeId u32][zero padding]                value length = datagram size - 35
 *   PROBE_ACK (7): [probeId u32][probeValueBytes u16]         6 bytes (longer: the rest is ignored)
 * `probeValueBytes` echoes the probe's value length as received, so the prober can check that the
 * whole probe arrived. A probe is sent alone in its datagram and never fragmented: it must be the
 * size it claims to test. Encoders write into a caller's buffer; decoders never throw.
 */
import { readU16, readU32, writeU16, writeU32 } from '../aoe/bytes.js';
import { DATA_OVERHEAD } from '../tunnel/messages.js';
import { MAX_RECORD_VALUE, RECORD_HEADER_LEN } from '../tunnel/records.js';

export const RECORD_PROBE = 6;
export const RECORD_PROBE_ACK = 7;
export const PROBE_MIN_VALUE_BYTES = 4;
export const PROBE_ACK_VALUE_BYTES = 6;

/** Datagram bytes around one record value that is alone in its datagram (32 + 3). */
export const SOLE_RECORD_OVERHEAD_BYTES = DATA_OVERHEAD + RECORD_HEADER_LEN;

/** The value length of a record that alone fills a datagram of `datagramBytes` (the largest record). */
export function recordBytesForDatagram(datagramBytes: number): number {
  return Math.min(MAX_RECORD_VALUE, datagramBytes - SOLE_RECORD_OVERHEAD_BYTES);
}

/** The datagram size a sole record of `valueBytes` makes (unpadded: it fills the datagram). */
export function datagramBytesForRecord(valueBytes: number): number {
  return valueBytes + SOLE_RECORD_OVERHEAD_BYTES;
}

/** Writes a probe value of `valueBytes` (>= 4) at out[off]; returns valueBytes, or -1 if it does not fit. */
export function encodeProbe(out: Uint8Array, off: number, probeId: number, valueBytes: number): number {
  if (
    !Number.isInteger(valueBytes) ||
    valueBytes < PROBE_MIN_VALUE_BYTES ||
    valueBytes > MAX_RECORD_VALUE ||
    off < 0 ||
    off + valueBytes > out.length
  ) {
    return -1;
  }
  writeU32(out, off, probeId >>> 0);
  out.fill(0, off + PROBE_MIN_VALUE_BYTES, off + valueBytes);
  return valueBytes;
}

/** The probe id of a PROBE value buf[off, off + len), or -1 when it is too short. */
export function decodeProbeId(buf: Uint8Array, off: number, len: number): number {
  return len >= PROBE_MIN_VALUE_BYTES && off >= 0 && off + len <= buf.length ? readU32(buf, off) : -1;
}

/** Writes the ack of a probe whose value was `probeValueBytes` long; returns 6 or -1. */
export function encodeProbeAck(
  out: Uint8Array,
  off: number,
  probeId: number,
  probeValueBytes: number,
): number {
  if (off < 0 || off + PROBE_ACK_VALUE_BYTES > out.length) return -1;
  writeU32(out, off, probeId >>> 0);
  writeU16(out, off + 4, Math.min(probeValueBytes, MAX_RECORD_VALUE));
  return PROBE_ACK_VALUE_BYTES;
}

/** A decoded PROBE_ACK; reuse one per peer (decodeProbeAck fills it). */
export class ProbeAck {
  probeId = 0;
  probeValueBytes = 0;
}

/** Fills `into` from a PROBE_ACK value buf[off, off + len); false when it is too short. */
export function decodeProbeAck(buf: Uint8Array, off: number, len: number, into: ProbeAck): boolean {
  if (len < PROBE_ACK_VALUE_BYTES || off < 0 || off + len > buf.length) return false;
  into.probeId = readU32(buf, off);
  into.probeValueBytes = readU16(buf, off + 4);
  return true;
}
