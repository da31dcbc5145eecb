import { AoegwError } from '../errors.js';
import { isValidLength, padToMinFrame } from './bytes.js';
import {
  ARG_OFFSET,
  Flag,
  MAC_SIZE,
  MAX_LIST_ENTRIES,
  MIN_FRAME,
  Off,
  RESERVE_LIST_OFFSET,
  ReserveCmd,
} from './constants.js';
import { DecodeError } from './decode-error.js';
import { ensureSpace, type HeaderFields, writeHeader } from './header.js';

/** Reusable view of the Reserve/Release argument (command 3); MACs stay in the frame. */
export class ReserveArg {
  rcmd = 0;
  nmacs = 0;
  listOffset = RESERVE_LIST_OFFSET;
}

const A = ARG_OFFSET;

/** Offset of the i-th MAC of the list. */
export function reserveMacOffset(i: number): number {
  return RESERVE_LIST_OFFSET + i * MAC_SIZE;
}

/** Checks that nmacs MACs fit in the frame; rcmd must be 0..2 except in error replies. */
export function decodeReserve(buf: Uint8Array, len: number, out: ReserveArg): number {
  if (!isValidLength(buf, len)) return DecodeError.BAD_INPUT;
  if (len < RESERVE_LIST_OFFSET) return DecodeError.TRUNCATED;
  out.rcmd = buf[A]!;
  out.nmacs = buf[A + 1]!;
  out.listOffset = RESERVE_LIST_OFFSET;
  if (reserveMacOffset(out.nmacs) > len) return DecodeError.TRUNCATED;
  if ((buf[Off.VER_FLAGS]! & Flag.ERROR) === 0 && out.rcmd > ReserveCmd.FORCE_SET) {
    return DecodeError.BAD_ARGUMENT;
  }
  return DecodeError.OK;
}

/** Full Reserve/Release frame (direction per h.flags). Pads to 60 and returns the frame length. */
export function encodeReserve(
  out: Uint8Array,
  h: HeaderFields,
  rcmd: number,
  macs: readonly Uint8Array[],
): number {
  const n = macs.length;
  if (n > MAX_LIST_ENTRIES) {
    throw new AoegwError('ERR_AOE_BAD_ARGUMENT', `${n} reserve MACs exceed the limit of 255`);
  }
  const end = reserveMacOffset(n);
  ensureSpace(out, Math.max(end, MIN_FRAME));
  writeHeader(out, h);
  out[A] = rcmd & 0xff;
  out[A + 1] = n;
  for (let i = 0; i < n; i++) {
    const mac = macs[i]!;
    const o = reserveMacOffset(i);
    for (let k = 0; k < MAC_SIZE; k++) out[o + k] = mac[k]!;
  }
  return padToMinFrame(out, end, MIN_FRAME);
}
