/**
 * Records: the plaintext of a transport message (docs/protocol.md, "Records"). Zero or more
 * records, each [type u8][length u16 big-endian][value], optionally followed by padding: a type
 * byte of 0 ends the list and every byte after it is padding (senders write zeros, receivers ignore
 * them). An empty plaintext is a keepalive.
 *
 * The writer packs into a caller's buffer and the reader is a cursor over one, so the data path
 * allocates nothing; packRecords()/unpackRecords() are the copying conveniences for everything
 * else. Nothing here throws on bytes from the wire.
 */

export const RECORD_PADDING = 0;
/** Opaque application data (tests and benchmarks); the gateway uses types 2-4 (peer-messages.ts). */
export const RECORD_AOE = 1;
/** The gateway's peer messages (src/gateway/peer-messages.ts); opaque to the tunnel. */
export const RECORD_CONTROL = 2;

export const RECORD_HEADER_LEN = 3;
export const MAX_RECORD_VALUE = 0xffff;

/**
 * Appends records to buf[start, start + capacity). `length` is the bytes used so far. Reusable:
 * reset() starts a new plaintext in the same (or another) buffer.
 */
export class RecordWriter {
  buf: Uint8Array;
  start: number;
  capacity: number;
  length = 0;
  /** Records added since the last reset(). */
  count = 0;

  constructor(buf: Uint8Array, start = 0, capacity = buf.length - start) {
    this.buf = buf;
    this.start = start;
    this.capacity = capacity;
  }

  reset(buf: Uint8Array = this.buf, start = this.start, capacity = this.capacity): void {
    this.buf = buf;
    this.start = start;
    this.capacity = capacity;
    this.length = 0;
    this.count = 0;
  }

  /** Would a record with a `len`-byte value fit in the space left? */
  fits(len: number): boolean {
    return this.length + RECORD_HEADER_LEN + len <= this.capacity;
  }

  /** Append one record; false (and nothing written) when it does not fit or is malformed. */
  add(type: number, src: Uint8Array, srcOff: number, len: number): boolean {
    if (
      !Number.isInteger(type) ||
      type < 1 ||
      type > 0xff ||
      !Number.isInteger(len) ||
      len < 0 ||
      len > MAX_RECORD_VALUE ||
      srcOff < 0 ||
      srcOff + len > src.length ||
      !this.fits(len)
    ) {
      return false;
    }
    const o = this.start + this.length;
    const b = this.buf;
    b[o] = type;
    b[o + 1] = len >>> 8;
    b[o + 2] = len & 0xff;
    b.set(src.subarray(srcOff, srcOff + len), o + RECORD_HEADER_LEN);
    this.length += RECORD_HEADER_LEN + len;
    this.count++;
    return true;
  }

  /**
   * Pad a non-empty plaintext with zeros up to a multiple of `multiple`, without exceeding the
   * capacity. Returns the padded length. The first zero byte is the padding type.
   */
  pad(multiple: number): number {
    if (this.length === 0 || multiple <= 1) return this.length;
    const target = Math.min(Math.ceil(this.length / multiple) * multiple, this.capacity);
    if (target > this.length) this.buf.fill(0, this.start + this.length, this.start + target);
    this.length = target;
    return target;
  }
}

/**
 * Cursor over the records in buf[off, off + len): `while (r.next()) use(r.type, r.offset, r.length)`.
 * next() returns false at the end of the list (end of input or padding) or on malformed input,
 * which sets `malformed`.
 */
export class RecordReader {
  type = 0;
  offset = 0;
  length = 0;
  malformed = false;
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private end = 0;

  reset(buf: Uint8Array, off: number, len: number): this {
    this.buf = buf;
    const okRange = Number.isInteger(off) && Number.isInteger(len) && off >= 0 && len >= 0;
    this.pos = okRange ? off : 0;
    this.end = okRange ? Math.min(off + len, buf.length) : 0;
    this.malformed = !okRange || off + len > buf.length;
    this.type = 0;
    this.offset = 0;
    this.length = 0;
    return this;
  }

  next(): boolean {
    if (this.malformed || this.pos >= this.end) return false;
    const b = this.buf;
    const type = b[this.pos]!;
    if (type === RECORD_PADDING) {
      this.pos = this.end;
      return false;
    }
    if (this.pos + RECORD_HEADER_LEN > this.end) {
      this.malformed = true;
      return false;
    }
    const len = (b[this.pos + 1]! << 8) | b[this.pos + 2]!;
    const valueAt = this.pos + RECORD_HEADER_LEN;
    if (valueAt + len > this.end) {
      this.malformed = true;
      return false;
    }
    this.type = type;
    this.offset = valueAt;
    this.length = len;
    this.pos = valueAt + len;
    return true;
  }
}

/** Number of records in buf[off, off + len), or -1 when the list is malformed. */
export function countRecords(buf: Uint8Array, off: number, len: number, reader = new RecordReader()): number {
  reader.reset(buf, off, len);
  let n = 0;
  while (reader.next()) n++;
  return reader.malformed ? -1 : n;
}

export interface RecordValue {
  readonly type: number;
  readonly data: Uint8Array;
}

/** Copies of the records in buf[off, off + len), or null when malformed. */
export function unpackRecords(buf: Uint8Array, off = 0, len = buf.length - off): RecordValue[] | null {
  const r = new RecordReader().reset(buf, off, len);
  const out: RecordValue[] = [];
  while (r.next()) out.push({ type: r.type, data: buf.slice(r.offset, r.offset + r.length) });
  return r.malformed ? null : out;
}

/**
 * Greedy in-order packing of records into plaintexts of at most `maxPlaintext` bytes each (the
 * endpoint's transport path does the same incrementally). Returns null if a record can never fit.
 */
export function packRecords(
  records: readonly RecordValue[],
  maxPlaintext: number,
  padMultiple = 0,
): Uint8Array[] | null {
  const out: Uint8Array[] = [];
  const scratch = new Uint8Array(Math.max(0, maxPlaintext));
  const w = new RecordWriter(scratch);
  const emit = () => {
    if (w.count === 0) return;
    out.push(scratch.slice(0, w.pad(padMultiple)));
    w.reset();
  };
  for (const r of records) {
    if (!w.fits(r.data.length)) emit();
    if (!w.add(r.type, r.data, 0, r.data.length)) return null;
  }
  emit();
  return out;
}
