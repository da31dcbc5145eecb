/**
 * AoE wire codec. Two layers:
 * - hot path: reusable views (AoeHeader, AtaArg, ...) filled by decodeX(buf, len, out) → 0 or a
 *   DecodeError number, and encoders writing into a caller's buffer → frame length;
 * - friendly: decodeFrame → Result<AoeMessage> (never throws) and encodeFrame, built on the above.
 */

export {
  AtaArg,
  type AtaFields,
  decodeAta,
  encodeAta,
  encodeAtaRequest,
  encodeAtaResponse,
  writeAtaArg,
  writeAtaStatus,
} from './ata.js';
export { isValidLength, padToMinFrame } from './bytes.js';
export * from './constants.js';
export {
  DecodeError,
  type DecodeErrorValue,
  DecodeFlags,
  decodeErrorCode,
  decodeErrorToAoegw,
} from './decode-error.js';
export { decodeFrame } from './decode-frame.js';
export { encodeFrame } from './encode-frame.js';
export {
  AoeHeader,
  decodeHeader,
  type HeaderFields,
  writeHeader,
  writeHeaderWithFlags,
  writeResponseHeader,
} from './header.js';
export {
  buildIdentify,
  IDENTIFY_SIZE,
  type IdentifyInfo,
  type IdentifyParsed,
  parseIdentify,
} from './identify.js';
export { BROADCAST_MAC, formatMac, isBroadcastMac, isMacString, macFromString, parseMacInto } from './mac.js';
export {
  decodeMacMask,
  directiveOffset,
  encodeMacMask,
  type MacDirective,
  MacMaskArg,
  type MacMaskFields,
  readDirective,
} from './mac-mask.js';
export type {
  AoeMessage,
  AoeMessageBase,
  AtaMessage,
  DecodeFrameOptions,
  MacMaskMessage,
  QueryConfigMessage,
  ReserveMessage,
  Result,
  VendorMessage,
} from './message.js';
export {
  decodeQueryConfig,
  encodeQueryConfig,
  QueryConfigArg,
  type QueryConfigFields,
} from './query-config.js';
export { decodeReserve, encodeReserve, ReserveArg, reserveMacOffset } from './reserve.js';
