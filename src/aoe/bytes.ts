/**
 * Big-endian field access by plain byte math, so the codec works on any Uint8Array (Buffer or
 * not) without DataView or Buffer method allocations. Callers check bounds first.
 */

export function readU16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

export function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

export function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** True when `len` is an integer in [0, buf.length]; NaN, negatives and fractions fail. */
export function isValidLength(buf: Uint8Array, len: number): boolean {
  return Number.isInteger(len) && len >= 0 && len <= buf.length;
}

/** Zero-fills [len, 60) and returns the length to send. */
export function padToMinFrame(out: Uint8Array, len: number, min: number): number {
  if (len >= min) return len;
  out.fill(0, len, min);
  return min;
}

/** Copies `len` bytes; small copies without creating views (see the comment on Buffer sources). */
export function copyBytes(
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
  len: number,
): void {
  if (srcOff === 0 && len === src.length) {
    dst.set(src, dstOff);
    return;
  }
  if (src === dst) {
    dst.copyWithin(dstOff, srcOff, srcOff + len);
    return;
  }
  // Buffer.copy is a native memmove; a JS byte loop costs ~10x more for a jumbo frame's 8 KiB of
  // data (measured in bench:initiator, seq write at MTU 9000). On Node 20 a partial source costs one
  // short-lived Uint8Array view (lib/buffer.js _copyActual): cheaper than the loop above 64 bytes.
  if (Buffer.isBuffer(src)) {
    src.copy(dst, dstOff, srcOff, srcOff + len);
    return;
  }
  if (len > 64) {
    dst.set(src.subarray(srcOff, srcOff + len), dstOff);
    return;
  }
  for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i]!;
}
