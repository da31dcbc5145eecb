import { AoegwError, type ErrorCode } from '../errors.js';

/**
 * Numeric results of the hot-path decoders: 0 is success, anything else names what is wrong.
 * Numbers (not errors or strings) so a rejected frame costs no allocation; the friendly layer
 * turns them into AoegwError with the stable string code below.
 */
export const DecodeError = {
  OK: 0,
  /** Frame ends inside the header, the argument, a config string or a list. */
  TRUNCATED: 1,
  /** EtherType is not 0x88A2. */
  NOT_AOE: 2,
  /** Header version nibble != 1, or Query Config inner version not 0/1. */
  BAD_VERSION: 3,
  /** Reserved flag bits set (only reported in strict mode). */
  RESERVED_BITS: 4,
  /** Command 4..0xEF. */
  UNKNOWN_COMMAND: 5,
  /** Sub-command (ccmd, mcmd, dcmd, rcmd) out of range. */
  BAD_ARGUMENT: 6,
  /** Config string length field > 1024. */
  STRING_TOO_LONG: 7,
  /** Sector count × 512 exceeds the data the frame carries. */
  SECTOR_COUNT: 8,
  /** `len` is not an integer in [0, buf.length], or the input is not a Uint8Array. */
  BAD_INPUT: 9,
} as const;

export type DecodeErrorValue = (typeof DecodeError)[keyof typeof DecodeError];

const CODES: readonly ErrorCode[] = [
  'ERR_AOE_BAD_INPUT', // 0 is not an error; mapped defensively
  'ERR_AOE_TRUNCATED',
  'ERR_AOE_NOT_AOE',
  'ERR_AOE_BAD_VERSION',
  'ERR_AOE_RESERVED_BITS',
  'ERR_AOE_UNKNOWN_COMMAND',
  'ERR_AOE_BAD_ARGUMENT',
  'ERR_AOE_STRING_TOO_LONG',
  'ERR_AOE_SECTOR_COUNT',
  'ERR_AOE_BAD_INPUT',
];

const MESSAGES: readonly string[] = [
  'not an error',
  'frame truncated',
  'not an AoE frame',
  'unsupported AoE version',
  'reserved bits set',
  'unknown AoE command',
  'bad command argument',
  'config string longer than 1024 bytes',
  'sector count exceeds frame data',
  'invalid decoder input',
];

/** Stable string code for a numeric decode result. */
export function decodeErrorCode(e: number): ErrorCode {
  return CODES[e] ?? 'ERR_AOE_BAD_INPUT';
}

export function decodeErrorToAoegw(e: number, detail?: string): AoegwError {
  const base = MESSAGES[e] ?? 'invalid decoder input';
  return new AoegwError(decodeErrorCode(e), detail ? `${base}: ${detail}` : base);
}

/** Flags for the hot-path decoders. */
export const DecodeFlags = {
  NONE: 0,
  /** Reject reserved bits (header flags 0x03, ATA aflags 0xAC) instead of ignoring them. */
  STRICT: 1,
} as const;
