import type { AoegwError } from '../errors.js';

/**
 * Plain-object form of an AoE frame for tools, tests and control paths (the data path uses the
 * reusable views). MACs are lowercase 'aa:bb:cc:dd:ee:ff' strings. Byte payloads (ATA data,
 * config string, vendor argument) are Buffer views into the decoded input, not copies: copy them
 * if the input buffer is going to be reused.
 */

export type Result<T> = { ok: true; value: T } | { ok: false; error: AoegwError };

export interface AoeMessageBase {
  dst: string;
  src: string;
  /** R flag. */
  response: boolean;
  /** E flag. */
  errorFlag: boolean;
  /** Byte 15 (AoeErrorCode), meaningful when errorFlag is set. */
  error: number;
  major: number;
  minor: number;
  tag: number;
}

export interface AtaMessage extends AoeMessageBase {
  command: 'ata';
  /** aflags E (0x40). */
  lba48: boolean;
  /** aflags D (0x10). */
  device: boolean;
  /** aflags A (0x02). */
  async: boolean;
  /** aflags W (0x01). */
  write: boolean;
  errFeature: number;
  sectorCount: number;
  /** Opcode in requests, status in responses. */
  cmdStatus: number;
  lba: number;
  /** Sector data (see decodeAta for when a frame carries any). */
  data: Buffer;
}

export interface QueryConfigMessage extends AoeMessageBase {
  command: 'query-config';
  bufferCount: number;
  firmwareVersion: number;
  sectorCount: number;
  aoeVersion: number;
  ccmd: number;
  config: Buffer;
}

export interface MacMaskMessage extends AoeMessageBase {
  command: 'mac-mask';
  mcmd: number;
  merror: number;
  directives: { dcmd: number; mac: string }[];
}

export interface ReserveMessage extends AoeMessageBase {
  command: 'reserve';
  rcmd: number;
  macs: string[];
}

export interface VendorMessage extends AoeMessageBase {
  command: 'vendor';
  /** 0xF0..0xFF. */
  code: number;
  /** Everything after the common header up to the frame end: no length field, so padding included. */
  argument: Buffer;
}

export type AoeMessage = AtaMessage | QueryConfigMessage | MacMaskMessage | ReserveMessage | VendorMessage;

export interface DecodeFrameOptions {
  /** Reject reserved bits (header flags 0x03, ATA aflags 0xAC) instead of ignoring them. */
  strict?: boolean;
}
