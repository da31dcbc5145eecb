import { AoegwError } from '../errors.js';
import { isValidLength, padToMinFrame } from './bytes.js';
import {
  ARG_OFFSET,
  DirectiveCmd,
  Flag,
  MAC_MASK_DIRECTIVE_SIZE,
  MAC_MASK_LIST_OFFSET,
  MAC_SIZE,
  MAX_LIST_ENTRIES,
  MaskCmd,
  MIN_FRAME,
  Off,
} from './constants.js';
import { DecodeError } from './decode-error.js';
import { ensureSpace, type HeaderFields, writeHeader } from './header.js';

/** Mac Mask List argument (command 2) without its directives. */
export interface MacMaskFields {
  mcmd: number;
  merror: number;
}

export interface MacDirective {
  dcmd: number;
  /** 6 bytes. */
  mac: Uint8Array;
}

/** Reusable view; directives stay in the frame, read them with readDirective(). */
export class MacMaskArg implements MacMaskFields {
  mcmd = 0;
  merror = 0;
  count = 0;
  listOffset = MAC_MASK_LIST_OFFSET;
}

const A = ARG_OFFSET;

/** Offset of directive i: reserved byte, then dcmd, then the MAC. */
export function directiveOffset(i: number): number {
  return MAC_MASK_LIST_OFFSET + i * MAC_MASK_DIRECTIVE_SIZE;
}

/**
 * Decodes the argument and checks that `count` directives fit in the frame. mcmd must be 0..1
 * (except in error replies, which echo the request) and, in requests, every dcmd 0..2: a target
 * answers a violation with AoE error 2 (the view is filled).
 */
export function decodeMacMask(buf: Uint8Array, len: number, out: MacMaskArg): number {
  if (!isValidLength(buf, len)) return DecodeError.BAD_INPUT;
  if (len < MAC_MASK_LIST_OFFSET) return DecodeError.TRUNCATED;
  out.mcmd = buf[A + 1]!;
  out.merror = buf[A + 2]!;
  out.count = buf[A + 3]!;
  out.listOffset = MAC_MASK_LIST_OFFSET;
  if (directiveOffset(out.count) > len) return DecodeError.TRUNCATED;
  const vf = buf[Off.VER_FLAGS]!;
  if ((vf & Flag.ERROR) !== 0) return DecodeError.OK;
  if (out.mcmd > MaskCmd.EDIT) return DecodeError.BAD_ARGUMENT;
  if ((vf & Flag.RESPONSE) === 0) {
    for (let i = 0; i < out.count; i++) {
      if (buf[directiveOffset(i) + 1]! > DirectiveCmd.DELETE) return DecodeError.BAD_ARGUMENT;
    }
  }
  return DecodeError.OK;
}

/** Copies directive i's MAC into macOut[macOff..] and returns its dcmd. Caller checks i < count. */
export function readDirective(buf: Uint8Array, i: number, macOut: Uint8Array, macOff = 0): number {
  const o = directiveOffset(i);
  for (let k = 0; k < MAC_SIZE; k++) macOut[macOff + k] = buf[o + 2 + k]!;
  return buf[o + 1]!;
}

/** Full Mac Mask List frame (direction per h.flags). Pads to 60 and returns the frame length. */
export function encodeMacMask(
  out: Uint8Array,
  h: HeaderFields,
  m: MacMaskFields,
  directives: readonly MacDirective[],
): number {
  const n = directives.length;
  if (n > MAX_LIST_ENTRIES) {
    throw new AoegwError('ERR_AOE_BAD_ARGUMENT', `${n} mask directives exceed the limit of 255`);
  }
  const end = directiveOffset(n);
  ensureSpace(out, Math.max(end, MIN_FRAME));
  writeHeader(out, h);
  out[A] = 0;
  out[A + 1] = m.mcmd & 0xff;
  out[A + 2] = m.merror & 0xff;
  out[A + 3] = n;
  for (let i = 0; i < n; i++) {
    const d = directives[i]!;
    const o = directiveOffset(i);
    out[o] = 0;
    out[o + 1] = d.dcmd & 0xff;
    for (let k = 0; k < MAC_SIZE; k++) out[o + 2 + k] = d.mac[k]!;
  }
  return padToMinFrame(out, end, MIN_FRAME);
}
