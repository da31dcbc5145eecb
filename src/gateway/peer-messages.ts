/**
 * What gateways say to each other inside the tunnel (docs/protocol.md, "Gateway records"). The
 * tunnel carries opaque typed records; the gateway defines three:
 * - RECORD_CONTROL: one protobuf `PeerMessage` (hello, error, advertisement chunk);
 * - RECORD_AOE_REQUEST: [epoch u32][seq u64][fence u64][initiator MAC, 6 bytes][AoE PDU from the
 *   version byte on], importer to exporter; the PDU's tag is the importer's request id, its
 *   shelf/slot the exporter's address; (epoch, seq) number the request for the exporter's
 *   at-most-once window (request-window.ts), fence is the lowest seq the importer has not given up on;
 * - RECORD_AOE_RESPONSE: [epoch u32][seq u64][AoE PDU], exporter to importer: the number of the
 *   request it answers, and the PDU echoing the request id as its tag;
 * - RECORD_AOE_IN_PROGRESS: [epoch u32][seq u64][request id u32], exporter to importer, sent for a
 *   resent copy of a request that is still running: "I have it, stop sending its data"; the
 *   importer waits longer before its next copy (a slow fsync otherwise costs a copy per timeout).
 * The schema is parsed at load time (no code generation); decodePeerMessage() never throws.
 */
import protobuf from 'protobufjs';
import { AoegwError } from '../errors.js';

export const RECORD_CONTROL = 2;
export const RECORD_AOE_REQUEST = 3;
export const RECORD_AOE_RESPONSE = 4;
/** Bytes before the PDU in an AOE_REQUEST record: epoch, seq, fence, initiator MAC. */
export const REQUEST_PREFIX = 26;
/** Offsets in an AOE_REQUEST record. */
export const REQUEST = { EPOCH: 0, SEQ: 4, FENCE: 12, MAC: 20, PDU: 26 } as const;

/** Bytes before the PDU in an AOE_RESPONSE record: the (epoch, seq) of the request it answers. */
export const RESPONSE_PREFIX = 12;
export const RESPONSE = { EPOCH: 0, SEQ: 4, PDU: 12 } as const;

export const RECORD_AOE_IN_PROGRESS = 8;
/** An AOE_IN_PROGRESS record: the (epoch, seq) of the running request and the importer's request id. */
export const IN_PROGRESS = { EPOCH: 0, SEQ: 4, TAG: 12, LENGTH: 16 } as const;

/** 2: requests carry (epoch, seq, fence) and are retransmitted; Hello carries request_epoch_seen. */
export const GATEWAY_PROTOCOL_VERSION = 2;

/** Writes a u64 big-endian from a safe integer (sequence numbers stay below 2^53). */
export function writeU64Number(b: Uint8Array, o: number, v: number): void {
  const hi = Math.floor(v / 0x1_0000_0000);
  const lo = v >>> 0;
  b[o] = hi >>> 24;
  b[o + 1] = (hi >>> 16) & 0xff;
  b[o + 2] = (hi >>> 8) & 0xff;
  b[o + 3] = hi & 0xff;
  b[o + 4] = lo >>> 24;
  b[o + 5] = (lo >>> 16) & 0xff;
  b[o + 6] = (lo >>> 8) & 0xff;
  b[o + 7] = lo & 0xff;
}

/** Reads a u64 big-endian as a number; values above 2^53 come back as Infinity (never valid). */
export function readU64Number(b: Uint8Array, o: number): number {
  const hi = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  const lo = ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!) >>> 0;
  return hi >= 0x20_0000 ? Number.POSITIVE_INFINITY : hi * 0x1_0000_0000 + lo;
}

/** The normative schema (docs/protocol.md repeats it). Field numbers are the compatibility contract. */
export const PEER_MESSAGES_PROTO = `
syntax = "proto3";
package aoegw.gateway.v1;

message Hello {
  uint32 protocol_version = 1;
  repeated string capabilities = 2;
  string gateway_name = 3;
  uint32 request_epoch_seen = 4;
}

message Error {
  uint32 code = 1;
  string message = 2;
}

message TargetAdvert {
  uint32 shelf = 1;
  uint32 slot = 2;
  uint32 buffer_count = 3;
  uint64 sectors = 4;
  bytes config_string = 5;
  uint32 max_sectors = 6;
  string name = 7;
  bool read_only = 8;
  uint32 firmware = 9;
}

message AdvertChunk {
  uint32 generation = 1;
  uint32 chunk = 2;
  uint32 chunks = 3;
  repeated TargetAdvert targets = 4;
}

message PeerMessage {
  oneof body {
    Hello hello = 1;
    Error error = 2;
    AdvertChunk adverts = 4;
  }
}
`;

export const PeerErrorCode = {
  UNSPECIFIED: 0,
  PROTOCOL: 1,
  UNSUPPORTED_VERSION: 2,
  NOT_AUTHORIZED: 3,
  NO_SUCH_TARGET: 4,
  INTERNAL: 5,
} as const;

export const PEER_LIMITS = {
  capabilities: 64,
  capabilityLength: 64,
  gatewayName: 255,
  errorMessage: 1024,
  configString: 1024,
  name: 255,
  targetsPerChunk: 256,
  chunks: 64,
  /** AoE addresses sectors with 48-bit LBAs. */
  sectors: (1n << 48n) - 1n,
} as const;

export interface Hello {
  readonly protocolVersion: number;
  readonly capabilities: readonly string[];
  readonly gatewayName: string;
  /** The newest request epoch the sender has accepted from the receiver (0: none): the receiver numbers its requests above it. */
  readonly requestEpochSeen?: number;
}

export interface PeerError {
  readonly code: number;
  readonly message: string;
}

/** One target a peer may use, as its exporter describes it. */
export interface TargetAdvert {
  readonly shelf: number;
  readonly slot: number;
  readonly bufferCount: number;
  /** Capacity in sectors; 0 when unknown (a forwarded native target). */
  readonly sectors: bigint;
  readonly configString: Uint8Array;
  /** Sectors per ATA command the exporter serves (its Query Config sector count). */
  readonly maxSectors: number;
  /** The export's stable name ('' if none). */
  readonly name: string;
  /** This peer's grant is read-only. */
  readonly readOnly: boolean;
  readonly firmware: number;
}

/**
 * A whole advertisement is the set of targets in chunks 0..chunks-1 of one generation: it
 * replaces the previous set (a target missing from it is withdrawn).
 */
export interface AdvertChunk {
  readonly generation: number;
  readonly chunk: number;
  readonly chunks: number;
  readonly targets: readonly TargetAdvert[];
}

export type PeerMessage =
  | { readonly kind: 'hello'; readonly hello: Hello }
  | { readonly kind: 'error'; readonly error: PeerError }
  | { readonly kind: 'adverts'; readonly adverts: AdvertChunk };

const root = protobuf.parse(PEER_MESSAGES_PROTO, { keepCase: false }).root;
const MessageType = root.lookupType('aoegw.gateway.v1.PeerMessage');

function utf8Len(s: unknown): number {
  return typeof s === 'string' ? Buffer.byteLength(s, 'utf8') : Number.POSITIVE_INFINITY;
}

const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;

function invalidAdvert(t: TargetAdvert): string | null {
  const L = PEER_LIMITS;
  if (!u32(t.shelf) || t.shelf >= 0xffff) return 'shelf';
  if (!u32(t.slot) || t.slot >= 0xff) return 'slot';
  if (!u32(t.bufferCount) || t.bufferCount > 0xffff) return 'buffer count';
  if (t.sectors < 0n || t.sectors > L.sectors) return 'sectors';
  if (!u32(t.maxSectors) || t.maxSectors > 0xff) return 'max sectors';
  if (!u32(t.firmware) || t.firmware > 0xffff) return 'firmware';
  if (utf8Len(t.name) > L.name) return 'name too long';
  return t.configString.length > L.configString ? 'config string too long' : null;
}

/** Bounded and well-typed, or a reason it is not. */
function invalid(msg: PeerMessage): string | null {
  const L = PEER_LIMITS;
  switch (msg.kind) {
    case 'hello': {
      const h = msg.hello;
      if (!u32(h.protocolVersion)) return 'protocol version';
      if (!u32(h.requestEpochSeen ?? 0)) return 'request epoch';
      if (h.capabilities.length > L.capabilities) return 'too many capabilities';
      for (const c of h.capabilities) if (utf8Len(c) > L.capabilityLength) return 'capability too long';
      return utf8Len(h.gatewayName) > L.gatewayName ? 'gateway name too long' : null;
    }
    case 'error':
      if (!u32(msg.error.code)) return 'error code';
      return utf8Len(msg.error.message) > L.errorMessage ? 'error message too long' : null;
    case 'adverts': {
      const a = msg.adverts;
      if (!u32(a.generation)) return 'generation';
      if (!u32(a.chunks) || a.chunks < 1 || a.chunks > L.chunks) return 'chunks';
      if (!u32(a.chunk) || a.chunk >= a.chunks) return 'chunk';
      if (a.targets.length > L.targetsPerChunk) return 'too many targets';
      for (const t of a.targets) {
        const why = invalidAdvert(t);
        if (why !== null) return `target: ${why}`;
      }
      return null;
    }
    default:
      return 'unknown kind';
  }
}

/** The protobuf bytes of one message. Throws ERR_GATEWAY when it breaks PEER_LIMITS (a bug of ours). */
export function encodePeerMessage(msg: PeerMessage): Uint8Array {
  const why = invalid(msg);
  if (why !== null) throw new AoegwError('ERR_GATEWAY', `peer message: ${why}`);
  let body: Record<string, unknown>;
  switch (msg.kind) {
    case 'hello':
      body = { hello: { ...msg.hello, capabilities: [...msg.hello.capabilities] } };
      break;
    case 'error':
      body = { error: { code: msg.error.code, message: msg.error.message } };
      break;
    default:
      body = {
        adverts: {
          generation: msg.adverts.generation,
          chunk: msg.adverts.chunk,
          chunks: msg.adverts.chunks,
          targets: msg.adverts.targets.map((t) => ({ ...t, sectors: t.sectors.toString() })),
        },
      };
  }
  const bytes = MessageType.encode(MessageType.fromObject(body)).finish();
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

interface PlainAdvert {
  shelf: number;
  slot: number;
  bufferCount: number;
  sectors: string;
  configString: Uint8Array;
  maxSectors: number;
  name: string;
  readOnly: boolean;
  firmware: number;
}

interface Plain {
  body?: string;
  hello?: { protocolVersion: number; capabilities: string[]; gatewayName: string; requestEpochSeen: number };
  error?: { code: number; message: string };
  adverts?: { generation: number; chunk: number; chunks: number; targets: PlainAdvert[] };
}

/**
 * The message in buf[off, off + len), or null: not protobuf, no known body, or out of PEER_LIMITS.
 * Unknown fields are skipped (forward compatibility); never throws.
 */
export function decodePeerMessage(buf: Uint8Array, off = 0, len = buf.length - off): PeerMessage | null {
  try {
    if (!Number.isInteger(off) || !Number.isInteger(len) || off < 0 || len < 0 || off + len > buf.length) {
      return null;
    }
    const o = MessageType.toObject(MessageType.decode(buf.subarray(off, off + len)), {
      longs: String,
      bytes: Uint8Array,
      defaults: true,
      arrays: true,
      oneofs: true,
    }) as Plain;
    let msg: PeerMessage;
    if (o.body === 'hello' && o.hello) {
      msg = { kind: 'hello', hello: { ...o.hello } };
    } else if (o.body === 'error' && o.error) {
      msg = { kind: 'error', error: { code: o.error.code, message: o.error.message } };
    } else if (o.body === 'adverts' && o.adverts) {
      const a = o.adverts;
      msg = {
        kind: 'adverts',
        adverts: {
          generation: a.generation,
          chunk: a.chunk,
          chunks: a.chunks,
          targets: a.targets.map((t) => ({
            shelf: t.shelf,
            slot: t.slot,
            bufferCount: t.bufferCount,
            sectors: BigInt(t.sectors),
            configString: Uint8Array.from(t.configString),
            maxSectors: t.maxSectors,
            name: t.name,
            readOnly: t.readOnly,
            firmware: t.firmware,
          })),
        },
      };
    } else {
      return null;
    }
    return invalid(msg) === null ? msg : null;
  } catch {
    return null;
  }
}

/**
 * Splits an advertisement into chunks whose encoding fits `maxBytes` each (the tunnel's largest
 * record). An empty set is one empty chunk (it withdraws everything).
 */
export function advertChunks(
  generation: number,
  targets: readonly TargetAdvert[],
  maxBytes: number,
): Uint8Array[] {
  const groups: TargetAdvert[][] = [[]];
  for (const t of targets) {
    const cur = groups[groups.length - 1]!;
    // Receivers also bound the count per chunk: small targets under a big record bound hit it first.
    if (cur.length === PEER_LIMITS.targetsPerChunk) {
      groups.push([t]);
      continue;
    }
    const trial = encodePeerMessage({
      kind: 'adverts',
      adverts: { generation, chunk: 0, chunks: 1, targets: [...cur, t] },
    });
    // Room for the chunk fields growing by a few bytes once the real counts are in.
    if ((trial.length + 8 > maxBytes || cur.length >= PEER_LIMITS.targetsPerChunk) && cur.length > 0)
      groups.push([t]);
    else cur.push(t);
  }
  if (groups.length > PEER_LIMITS.chunks) {
    throw new AoegwError(
      'ERR_GATEWAY',
      `${targets.length} targets need more than ${PEER_LIMITS.chunks} advertisement chunks`,
    );
  }
  return groups.map((g, i) =>
    encodePeerMessage({
      kind: 'adverts',
      adverts: { generation, chunk: i, chunks: groups.length, targets: g },
    }),
  );
}
