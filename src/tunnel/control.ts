/**
 * Control messages: one protobuf `ControlMessage` per RECORD_CONTROL record (docs/protocol.md,
 * "Control messages"). The schema is parsed at load time by protobufjs from the text below; there
 * is no code generation step. decodeControl() never throws: hostile bytes give null.
 */

import protobuf from 'protobufjs';
import { AoegwError } from '../errors.js';

/** The normative schema (docs/protocol.md repeats it). Field numbers are the compatibility contract. */
export const CONTROL_PROTO = `
syntax = "proto3";
package aoegw.tunnel.v1;

message Hello {
  uint32 protocol_version = 1;
  repeated string capabilities = 2;
  string gateway_name = 3;
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
}

message ControlMessage {
  oneof body {
    Hello hello = 1;
    Error error = 2;
    TargetAdvert target_advert = 3;
  }
}
`;

/** Error codes carried in Error.code. Unknown codes must be accepted (and treated as UNSPECIFIED). */
export const ControlErrorCode = {
  UNSPECIFIED: 0,
  PROTOCOL: 1,
  UNSUPPORTED_VERSION: 2,
  NOT_AUTHORIZED: 3,
  NO_SUCH_TARGET: 4,
  INTERNAL: 5,
} as const;

/** Semantic bounds enforced on decode (and encode), beyond what protobuf itself checks (strings in UTF-8 bytes). */
export const CONTROL_LIMITS = {
  capabilities: 64,
  capabilityLength: 64,
  gatewayName: 255,
  errorMessage: 1024,
  /** AoE's config string is at most 1024 bytes. */
  configString: 1024,
  shelf: 0xffff,
  slot: 0xff,
  bufferCount: 0xffff,
  /** AoE addresses sectors with 48-bit LBAs. */
  sectors: (1n << 48n) - 1n,
} as const;

export interface Hello {
  readonly protocolVersion: number;
  readonly capabilities: readonly string[];
  readonly gatewayName: string;
}

export interface ControlError {
  readonly code: number;
  readonly message: string;
}

export interface TargetAdvert {
  readonly shelf: number;
  readonly slot: number;
  readonly bufferCount: number;
  readonly sectors: bigint;
  readonly configString: Uint8Array;
}

export type ControlMessage =
  | { readonly kind: 'hello'; readonly hello: Hello }
  | { readonly kind: 'error'; readonly error: ControlError }
  | { readonly kind: 'targetAdvert'; readonly targetAdvert: TargetAdvert };

const root = protobuf.parse(CONTROL_PROTO, { keepCase: false }).root;
const ControlType = root.lookupType('aoegw.tunnel.v1.ControlMessage');

function utf8Len(s: string): number {
  return typeof s === 'string' ? Buffer.byteLength(s, 'utf8') : Number.POSITIVE_INFINITY;
}

/** Bounded and well-typed, or a reason it is not. */
function invalid(msg: ControlMessage): string | null {
  const L = CONTROL_LIMITS;
  const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
  switch (msg.kind) {
    case 'hello': {
      const h = msg.hello;
      if (!u32(h.protocolVersion)) return 'protocol version';
      if (h.capabilities.length > L.capabilities) return 'too many capabilities';
      for (const c of h.capabilities) if (utf8Len(c) > L.capabilityLength) return 'capability too long';
      if (utf8Len(h.gatewayName) > L.gatewayName) return 'gateway name too long';
      return null;
    }
    case 'error':
      if (!u32(msg.error.code)) return 'error code';
      return utf8Len(msg.error.message) > L.errorMessage ? 'error message too long' : null;
    case 'targetAdvert': {
      const t = msg.targetAdvert;
      if (!u32(t.shelf) || t.shelf > L.shelf) return 'shelf';
      if (!u32(t.slot) || t.slot > L.slot) return 'slot';
      if (!u32(t.bufferCount) || t.bufferCount > L.bufferCount) return 'buffer count';
      if (t.sectors < 0n || t.sectors > L.sectors) return 'sectors';
      return t.configString.length > L.configString ? 'config string too long' : null;
    }
    default:
      return 'unknown kind';
  }
}

/** The protobuf bytes of one control message. Throws ERR_TUNNEL_CONFIG when it breaks CONTROL_LIMITS. */
export function encodeControl(msg: ControlMessage): Uint8Array {
  const why = invalid(msg);
  if (why !== null) throw new AoegwError('ERR_TUNNEL_CONFIG', `control message: ${why}`);
  let body: Record<string, unknown>;
  switch (msg.kind) {
    case 'hello':
      body = {
        hello: {
          protocolVersion: msg.hello.protocolVersion,
          capabilities: [...msg.hello.capabilities],
          gatewayName: msg.hello.gatewayName,
        },
      };
      break;
    case 'error':
      body = { error: { code: msg.error.code, message: msg.error.message } };
      break;
    default: {
      const t = msg.targetAdvert;
      body = {
        targetAdvert: {
          shelf: t.shelf,
          slot: t.slot,
          bufferCount: t.bufferCount,
          sectors: t.sectors.toString(),
          configString: t.configString,
        },
      };
    }
  }
  const bytes = ControlType.encode(ControlType.fromObject(body)).finish();
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

interface Plain {
  body?: string;
  hello?: { protocolVersion: number; capabilities: string[]; gatewayName: string };
  error?: { code: number; message: string };
  targetAdvert?: {
    shelf: number;
    slot: number;
    bufferCount: number;
    sectors: string;
    configString: Uint8Array;
  };
}

/**
 * The control message in buf[off, off + len), or null: not protobuf, no (known) body, or out of
 * CONTROL_LIMITS. Unknown fields are skipped (forward compatibility); never throws.
 */
export function decodeControl(buf: Uint8Array, off = 0, len = buf.length - off): ControlMessage | null {
  try {
    if (!Number.isInteger(off) || !Number.isInteger(len) || off < 0 || len < 0 || off + len > buf.length) {
      return null;
    }
    const decoded = ControlType.decode(buf.subarray(off, off + len));
    const o = ControlType.toObject(decoded, {
      longs: String,
      bytes: Uint8Array,
      defaults: true,
      arrays: true,
      oneofs: true,
    }) as Plain;
    let msg: ControlMessage;
    if (o.body === 'hello' && o.hello) {
      msg = {
        kind: 'hello',
        hello: {
          protocolVersion: o.hello.protocolVersion,
          capabilities: o.hello.capabilities,
          gatewayName: o.hello.gatewayName,
        },
      };
    } else if (o.body === 'error' && o.error) {
      msg = { kind: 'error', error: { code: o.error.code, message: o.error.message } };
    } else if (o.body === 'targetAdvert' && o.targetAdvert) {
      const t = o.targetAdvert;
      msg = {
        kind: 'targetAdvert',
        targetAdvert: {
          shelf: t.shelf,
          slot: t.slot,
          bufferCount: t.bufferCount,
          sectors: BigInt(t.sectors),
          configString: Uint8Array.from(t.configString),
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
