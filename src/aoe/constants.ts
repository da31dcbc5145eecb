/**
 * AoE r11 protocol constants (see docs/AOE-FACTS.md). Offsets count from the first byte of the
 * Ethernet frame because every socket we use hands us whole frames without FCS.
 */

export const AOE_ETHERTYPE = 0x88a2;
/** The only protocol version that exists; sent in the high nibble of byte 14. */
export const AOE_VERSION = 1;

export const ETH_HEADER_SIZE = 14;
export const AOE_HEADER_SIZE = 10;
/** End of Ethernet + AoE common header = start of every command argument. */
export const COMMON_HEADER_END = ETH_HEADER_SIZE + AOE_HEADER_SIZE; // 24
export const ARG_OFFSET = COMMON_HEADER_END;
export const ATA_ARG_SIZE = 12;
/** End of the ATA argument = start of sector data. */
export const ATA_HEADER_END = COMMON_HEADER_END + ATA_ARG_SIZE; // 36
export const ATA_DATA_OFFSET = ATA_HEADER_END;
export const QUERY_CONFIG_ARG_SIZE = 8;
export const CONFIG_STRING_OFFSET = COMMON_HEADER_END + QUERY_CONFIG_ARG_SIZE; // 32
export const MAC_MASK_ARG_SIZE = 4;
export const MAC_MASK_LIST_OFFSET = COMMON_HEADER_END + MAC_MASK_ARG_SIZE; // 28
export const MAC_MASK_DIRECTIVE_SIZE = 8;
export const RESERVE_ARG_SIZE = 2;
export const RESERVE_LIST_OFFSET = COMMON_HEADER_END + RESERVE_ARG_SIZE; // 26
export const MAC_SIZE = 6;

/** Field offsets inside the common header. */
export const Off = {
  DST: 0,
  SRC: 6,
  ETHERTYPE: 12,
  VER_FLAGS: 14,
  ERROR: 15,
  MAJOR: 16,
  MINOR: 18,
  COMMAND: 19,
  TAG: 20,
} as const;

/** Ethernet minimum without FCS; shorter frames are zero-padded on the wire (but not on veth). */
export const MIN_FRAME = 60;
export const SECTOR_SIZE = 512;
export const MAX_CONFIG_STRING = 1024;
/** Count fields for mask and reserve lists are one byte wide. */
export const MAX_LIST_ENTRIES = 255;
export const LBA28_MAX = 0x0fffffff;
export const LBA48_MAX = 2 ** 48 - 1;

export const BROADCAST_MAJOR = 0xffff;
export const BROADCAST_MINOR = 0xff;

/** Low nibble of byte 14. */
export const Flag = {
  RESPONSE: 0x08,
  ERROR: 0x04,
  /** Must be sent as zero. */
  RESERVED: 0x03,
} as const;

/** Byte 15, meaningful when Flag.ERROR is set. */
export const AoeErrorCode = {
  UNRECOGNIZED_COMMAND: 1,
  BAD_ARGUMENT: 2,
  DEVICE_UNAVAILABLE: 3,
  CONFIG_STRING_PRESENT: 4,
  UNSUPPORTED_VERSION: 5,
  TARGET_RESERVED: 6,
} as const;

export const Command = {
  ATA: 0,
  QUERY_CONFIG: 1,
  MAC_MASK: 2,
  RESERVE: 3,
  VENDOR_FIRST: 0xf0,
  VENDOR_LAST: 0xff,
} as const;

export function isVendorCommand(command: number): boolean {
  return command >= Command.VENDOR_FIRST && command <= Command.VENDOR_LAST;
}

/** ATA argument byte 24. */
export const AtaFlag = {
  LBA48: 0x40,
  DEVICE: 0x10,
  ASYNC: 0x02,
  WRITE: 0x01,
  RESERVED: 0xac,
} as const;

export const AtaOp = {
  READ_SECTORS: 0x20,
  READ_SECTORS_EXT: 0x24,
  WRITE_SECTORS: 0x30,
  WRITE_SECTORS_EXT: 0x34,
  IDENTIFY_DEVICE: 0xec,
  FLUSH_CACHE: 0xe7,
  FLUSH_CACHE_EXT: 0xea,
  CHECK_POWER_MODE: 0xe5,
} as const;

export const AtaStatus = {
  BSY: 0x80,
  DRDY: 0x40,
  DF: 0x20,
  DRQ: 0x08,
  ERR: 0x01,
  /** Linux fails the I/O when status & FAIL_MASK != 0. */
  FAIL_MASK: 0xa9,
} as const;

export const AtaErrorBit = {
  UNC: 0x40,
  IDNF: 0x10,
  ABRT: 0x04,
} as const;

/** Query Config ccmd (low nibble of argument byte 5). */
export const ConfigCmd = {
  READ: 0,
  TEST_EXACT: 1,
  TEST_PREFIX: 2,
  SET_IF_EMPTY: 3,
  FORCE_SET: 4,
} as const;

export const MaskCmd = { READ: 0, EDIT: 1 } as const;
export const MaskError = { UNSPECIFIED: 1, BAD_DIRECTIVE: 2, LIST_FULL: 3 } as const;
export const DirectiveCmd = { NONE: 0, ADD: 1, DELETE: 2 } as const;
export const ReserveCmd = { READ: 0, SET: 1, FORCE_SET: 2 } as const;

/**
 * Sectors one ATA frame can carry for an interface MTU, as the Linux initiator computes it:
 * floor((mtu - 36) / 512), clamped to the one-byte sector count field.
 */
export function sectorsPerFrame(mtu: number): number {
  const n = Math.floor((mtu - ATA_HEADER_END) / SECTOR_SIZE);
  if (!(n > 0)) return 0;
  return Math.min(n, 255);
}
