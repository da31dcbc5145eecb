/**
 * An AoE PDU is an AoE frame without its 14-byte Ethernet header: what the tunnel carries. These
 * are the few field accessors the gateway needs on PDUs in place (records are views into
 * decrypted buffers, local frames are views into link arenas), and the one place that turns a
 * PDU back into a frame.
 */
import { copyBytes, readU16, readU32, writeU16, writeU32 } from '../aoe/bytes.js';
import { AOE_ETHERTYPE, ETH_HEADER_SIZE, Flag, MAC_SIZE } from '../aoe/constants.js';

export const PDU = {
  VER_FLAGS: 0,
  ERROR: 1,
  MAJOR: 2,
  MINOR: 4,
  COMMAND: 5,
  TAG: 6,
  ARG: 10,
  /** ATA argument fields. */
  ATA_AFLAGS: 10,
  ATA_ERR_FEATURE: 11,
  ATA_SECTORS: 12,
  ATA_CMD_STATUS: 13,
  /** Query Config ccmd byte (version nibble | ccmd). */
  QC_VERSION_CCMD: 15,
  /** Mac Mask List mcmd byte. */
  MM_MCMD: 11,
  /** Reserve/Release rcmd byte. */
  RR_RCMD: 10,
} as const;

/** Common header (10) + ATA argument (12). */
export const PDU_ATA_HEADER = 22;
export const PDU_COMMON_HEADER = 10;

export function pduTag(b: Uint8Array, o: number): number {
  return readU32(b, o + PDU.TAG);
}

export function setPduTag(b: Uint8Array, o: number, tag: number): void {
  writeU32(b, o + PDU.TAG, tag);
}

export function pduMajor(b: Uint8Array, o: number): number {
  return readU16(b, o + PDU.MAJOR);
}

export function pduMinor(b: Uint8Array, o: number): number {
  return b[o + PDU.MINOR]!;
}

export function setPduAddress(b: Uint8Array, o: number, major: number, minor: number): void {
  writeU16(b, o + PDU.MAJOR, major);
  b[o + PDU.MINOR] = minor & 0xff;
}

export function isResponsePdu(b: Uint8Array, o: number): boolean {
  return (b[o + PDU.VER_FLAGS]! & Flag.RESPONSE) !== 0;
}

export function isErrorPdu(b: Uint8Array, o: number): boolean {
  return (b[o + PDU.VER_FLAGS]! & Flag.ERROR) !== 0;
}

/** Group bit of a MAC (multicast or broadcast): never a real sender. */
export function isGroupMac(b: Uint8Array, o: number): boolean {
  return (b[o]! & 1) === 1;
}

/** Writes [dst][src][0x88A2][pdu] into `out` and returns the frame length (no allocation). */
export function writeFrame(
  out: Uint8Array,
  dst: Uint8Array,
  dstOff: number,
  src: Uint8Array,
  srcOff: number,
  pdu: Uint8Array,
  pduOff: number,
  pduLen: number,
): number {
  for (let i = 0; i < MAC_SIZE; i++) {
    out[i] = dst[dstOff + i]!;
    out[MAC_SIZE + i] = src[srcOff + i]!;
  }
  writeU16(out, 12, AOE_ETHERTYPE);
  copyBytes(pdu, pduOff, out, ETH_HEADER_SIZE, pduLen);
  return ETH_HEADER_SIZE + pduLen;
}

export function macEquals(a: Uint8Array, ao: number, b: Uint8Array): boolean {
  for (let i = 0; i < MAC_SIZE; i++) if (a[ao + i] !== b[i]) return false;
  return true;
}
