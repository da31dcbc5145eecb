/**
 * The two protobuf wire types invite tokens use, by hand: varint (0) and length-delimited (2).
 * Stricter than protobuf parsers (a token has exactly one encoding): varints are minimal and at
 * most 2^53 - 1, and the other wire types are errors. Pure; errors are WireError with a message
 * that names the field and the offset, never the bytes.
 */

export const WIRE_VARINT = 0;
export const WIRE_LEN = 2;

export class WireError extends Error {}

/** One field as read: `value` is the varint, or the [start, end) of the length-delimited bytes. */
export interface WireField {
  readonly num: number;
  readonly wire: typeof WIRE_VARINT | typeof WIRE_LEN;
  /** Offset of the field's tag (what a trailing check covers starts before it). */
  readonly tagAt: number;
  readonly varint: number;
  readonly start: number;
  readonly end: number;
}

const MAX_FIELD = 2 ** 29 - 1;

/** Appends a varint (0 ≤ v ≤ 2^53 - 1) to `out`. */
export function pushVarint(out: number[], v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint ${v} is not in 0..2^53-1`);
  let x = v;
  while (x >= 0x80) {
    out.push((x % 0x80) | 0x80);
    x = Math.floor(x / 0x80);
  }
  out.push(x);
}

export function pushTag(out: number[], num: number, wire: number): void {
  pushVarint(out, num * 8 + wire);
}

export function pushBytes(out: number[], num: number, bytes: Uint8Array): void {
  pushTag(out, num, WIRE_LEN);
  pushVarint(out, bytes.length);
  for (const b of bytes) out.push(b);
}

/** Reads a varint at `at`; returns [value, next offset]. */
function readVarint(buf: Uint8Array, at: number, what: string): [number, number] {
  let v = 0;
  let scale = 1;
  for (let i = at; i < buf.length; i++) {
    const b = buf[i]!;
    v += (b & 0x7f) * scale;
    if (!Number.isSafeInteger(v)) throw new WireError(`${what} at byte ${at} is larger than 2^53 - 1`);
    if ((b & 0x80) === 0) {
      if (b === 0 && i > at) throw new WireError(`${what} at byte ${at} is not minimally encoded`);
      return [v, i + 1];
    }
    scale *= 0x80;
  }
  throw new WireError(`${what} at byte ${at} is truncated (the token ends inside it)`);
}

/** Splits a message into its fields, in order. Throws WireError on any malformation. */
export function readFields(buf: Uint8Array): WireField[] {
  const fields: WireField[] = [];
  let at = 0;
  while (at < buf.length) {
    const tagAt = at;
    const [tag, afterTag] = readVarint(buf, at, 'field tag');
    const num = Math.floor(tag / 8);
    const wire = tag % 8;
    if (num === 0 || num > MAX_FIELD) throw new WireError(`field number ${num} at byte ${tagAt} is invalid`);
    if (wire === WIRE_VARINT) {
      const [v, next] = readVarint(buf, afterTag, `field ${num} value`);
      fields.push({ num, wire, tagAt, varint: v, start: afterTag, end: next });
      at = next;
    } else if (wire === WIRE_LEN) {
      const [len, start] = readVarint(buf, afterTag, `field ${num} length`);
      if (len > buf.length - start) {
        throw new WireError(
          `field ${num} at byte ${tagAt} says ${len} bytes but only ${buf.length - start} remain (truncated?)`,
        );
      }
      fields.push({ num, wire, tagAt, varint: len, start, end: start + len });
      at = start + len;
    } else {
      throw new WireError(
        `field ${num} at byte ${tagAt} has wire type ${wire}; tokens use only varint (0) and length-delimited (2)`,
      );
    }
  }
  return fields;
}
