/**
 * Records larger than one datagram (docs/protocol.md, 13.9-13.10): a record never spans datagrams, so a
 * jumbo AoE frame (17 sectors, ~8.8 KB) crosses a 1452-byte tunnel as several FRAGMENT records,
 * each small enough for one datagram, and is put back together on the other side.
 *
 * FRAGMENT record value (integers big-endian, like every gateway record):
 *   [messageId u32][index u8][count u8][innerType u8][totalBytes u16][payload]
 * `totalBytes` is the inner record's value length. The payload split is fixed by (totalBytes,
 * count) alone: every fragment but the last carries `fragmentBytes = ceil(totalBytes / count)`
 * bytes at offset `index * fragmentBytes`, the last carries the rest (at least 1 byte). So any
 * fragment can be placed in the reassembly buffer the moment it arrives, in any order, and its
 * length is checked exactly.
 *
 * The Fragmenter writes each fragment into one scratch buffer and hands it to a sink that copies
 * it; the Reassembler keeps a fixed number of slots whose buffers are allocated once and reused.
 * Neither allocates per fragment, and nothing a peer sends makes the Reassembler throw or hold
 * more than maxMessages x maxMessageBytes.
 */
import { randomInt } from 'node:crypto';
import { copyBytes, readU16, readU32, writeU16, writeU32 } from '../aoe/bytes.js';
import { AoegwError } from '../errors.js';
import { MAX_RECORD_VALUE, RECORD_PADDING } from '../tunnel/records.js';

/** Record type of a fragment (the gateway's types are 2-7; see peer-messages.ts, probe-records.ts). */
export const RECORD_FRAGMENT = 5;
/** Bytes before the payload in a FRAGMENT record value. */
export const FRAGMENT_HEADER_BYTES = 9;
export const MIN_FRAGMENTS = 2;
export const MAX_FRAGMENTS = 255;

/** Receives one record to send; copies it before returning. False: it could not (stop). */
export type RecordSink = (type: number, buf: Uint8Array, off: number, len: number) => boolean;

/** Receives one reassembled inner record; the view is valid only during the call. */
export type RecordDeliver = (innerType: number, buf: Uint8Array, off: number, len: number) => void;

/** Does a record value of `lenBytes` need fragments to fit records of at most `maxRecordBytes`? */
export function needsFragments(lenBytes: number, maxRecordBytes: number): boolean {
  return lenBytes > maxRecordBytes;
}

/** Payload bytes of every fragment but the last, for a message of `totalBytes` in `count` fragments. */
export function fragmentBytesOf(totalBytes: number, count: number): number {
  return Math.ceil(totalBytes / count);
}

/**
 * Are (totalBytes, count) a split the format allows: 2..255 fragments, and a last fragment of at
 * least 1 byte and at most fragmentBytes?
 */
export function isValidSplit(totalBytes: number, count: number): boolean {
  if (count < MIN_FRAGMENTS || count > MAX_FRAGMENTS || totalBytes > MAX_RECORD_VALUE) return false;
  const last = totalBytes - (count - 1) * fragmentBytesOf(totalBytes, count);
  return last >= 1;
}

export interface FragmenterCounters {
  /** Inner records whose every fragment the sink accepted. */
  messagesSplit: number;
  /** Fragment records the sink accepted. */
  fragmentsOut: number;
  /** split() calls the sink refused part-way (the receiver expires the partial message). */
  sendFailed: number;
  /** split() calls that cannot be split: under 2 bytes, or more than 255 fragments at this size. */
  unsplittable: number;
}

export interface FragmenterOptions {
  /**
   * The largest fragment record value split() may be asked for (sizes the scratch buffer): the
   * record size at the configured tunnel MTU.
   */
  readonly maxFragmentValueBytes: number;
  readonly sink: RecordSink;
  /** First message id (default random, so a restarted sender does not reuse recent ids). */
  readonly firstMessageId?: number;
}

/** Splits inner records into FRAGMENT records, one Fragmenter per peer (message ids are per sender). */
export class Fragmenter {
  readonly maxFragmentValueBytes: number;
  readonly counters: FragmenterCounters = {
    messagesSplit: 0,
    fragmentsOut: 0,
    sendFailed: 0,
    unsplittable: 0,
  };
  private readonly sink: RecordSink;
  private readonly scratch: Uint8Array;
  private nextId: number;

  constructor(opts: FragmenterOptions) {
    const max = opts.maxFragmentValueBytes;
    if (!Number.isInteger(max) || max <= FRAGMENT_HEADER_BYTES || max > MAX_RECORD_VALUE) {
      throw new AoegwError(
        'ERR_GATEWAY_CONFIG',
        `maxFragmentValueBytes ${max} is not in ${FRAGMENT_HEADER_BYTES + 1}..${MAX_RECORD_VALUE}`,
      );
    }
    this.maxFragmentValueBytes = max;
    this.sink = opts.sink;
    this.scratch = new Uint8Array(max);
    this.nextId = (opts.firstMessageId ?? randomInt(0x1_0000_0000)) >>> 0;
  }

  /**
   * Sends buf[off, off + len) as fragments of a record of type `innerType`, each a record value of
   * at most `maxFragmentValueBytes` (default: the constructor's; pass the current path's record size
   * when it is smaller). True when every fragment went to the sink. Throws ERR_GATEWAY only on a
   * caller's bug (bad type, range or size), never because of the data.
   */
  split(
    innerType: number,
    buf: Uint8Array,
    off: number,
    len: number,
    maxFragmentValueBytes = this.maxFragmentValueBytes,
  ): boolean {
    checkSplitArgs(innerType, buf, off, len, maxFragmentValueBytes, this.maxFragmentValueBytes);
    const payloadMax = maxFragmentValueBytes - FRAGMENT_HEADER_BYTES;
    const count = Math.max(MIN_FRAGMENTS, Math.ceil(len / payloadMax));
    if (!isValidSplit(len, count)) {
      this.counters.unsplittable++;
      return false;
    }
    const fragmentBytes = fragmentBytesOf(len, count);
    const id = this.nextId;
    this.nextId = (id + 1) >>> 0;
    const s = this.scratch;
    writeU32(s, 0, id);
    s[5] = count;
    s[6] = innerType;
    writeU16(s, 7, len);
    for (let i = 0; i < count; i++) {
      const at = i * fragmentBytes;
      const n = i < count - 1 ? fragmentBytes : len - at;
      s[4] = i;
      copyBytes(buf, off + at, s, FRAGMENT_HEADER_BYTES, n);
      if (!this.sink(RECORD_FRAGMENT, s, 0, FRAGMENT_HEADER_BYTES + n)) {
        this.counters.sendFailed++;
        return false;
      }
      this.counters.fragmentsOut++;
    }
    this.counters.messagesSplit++;
    return true;
  }
}

function checkSplitArgs(
  innerType: number,
  buf: Uint8Array,
  off: number,
  len: number,
  maxValue: number,
  capacity: number,
): void {
  let why: string | null = null;
  if (!Number.isInteger(innerType) || innerType <= RECORD_PADDING || innerType > 0xff) why = 'inner type';
  else if (innerType === RECORD_FRAGMENT) why = 'a fragment cannot be fragmented';
  else if (!Number.isInteger(off) || !Number.isInteger(len) || off < 0 || len < 0 || off + len > buf.length)
    why = 'range';
  else if (len > MAX_RECORD_VALUE) why = 'longer than a record value';
  else if (!Number.isInteger(maxValue) || maxValue <= FRAGMENT_HEADER_BYTES || maxValue > capacity)
    why = `maxFragmentValueBytes ${maxValue} not in ${FRAGMENT_HEADER_BYTES + 1}..${capacity}`;
  if (why !== null) throw new AoegwError('ERR_GATEWAY', `fragment split: ${why}`);
}

/** Why accept() dropped a fragment as malformed; each has a counter `malformed<Reason>`. */
export type MalformedReason =
  /** Value shorter than the 9-byte header (or a range outside the buffer). */
  | 'header'
  /** count < 2. */
  | 'count'
  /** index >= count. */
  | 'index'
  /** innerType is 0 (padding) or FRAGMENT (no nesting). */
  | 'innerType'
  /** (totalBytes, count) is no valid split (isValidSplit). */
  | 'split'
  /** Payload length differs from what index, count and totalBytes give. */
  | 'size'
  /** count, innerType or totalBytes differ from earlier fragments of the same message id. */
  | 'mismatch';

/** What accept() did with one fragment. */
export type FragmentResult = 'stored' | 'delivered' | 'duplicate' | 'tooLarge' | MalformedReason;

/**
 * Every fragment accept() sees ends in exactly one bucket, so
 *   fragmentsIn = malformed + tooLarge + duplicates
 *               + partsDelivered + partsExpired + partsEvicted + partsReset + partsHeld
 * where malformed is the sum of the malformed* reasons and partsHeld is Reassembler#partsHeld (the
 * fragments of incomplete messages still waiting).
 */
export interface ReassemblerCounters {
  fragmentsIn: number;
  messagesReassembled: number;
  /** Fragments of delivered messages. */
  partsDelivered: number;
  /** Incomplete messages dropped after timeoutMs, and their fragments. */
  expired: number;
  partsExpired: number;
  /** Incomplete messages dropped to make room for a new message id, and their fragments. */
  evicted: number;
  partsEvicted: number;
  /** Fragments of incomplete messages dropped by reset(). */
  partsReset: number;
  /** A fragment index already held for that message. */
  duplicates: number;
  /** totalBytes over maxMessageBytes. */
  tooLarge: number;
  /** Sum of the malformed* counters. */
  malformed: number;
  malformedHeader: number;
  malformedCount: number;
  malformedIndex: number;
  malformedInnerType: number;
  malformedSplit: number;
  malformedSize: number;
  malformedMismatch: number;
}

export function emptyReassemblerCounters(): ReassemblerCounters {
  return {
    fragmentsIn: 0,
    messagesReassembled: 0,
    partsDelivered: 0,
    expired: 0,
    partsExpired: 0,
    evicted: 0,
    partsEvicted: 0,
    partsReset: 0,
    duplicates: 0,
    tooLarge: 0,
    malformed: 0,
    malformedHeader: 0,
    malformedCount: 0,
    malformedIndex: 0,
    malformedInnerType: 0,
    malformedSplit: 0,
    malformedSize: 0,
    malformedMismatch: 0,
  };
}

const MALFORMED_KEY = {
  header: 'malformedHeader',
  count: 'malformedCount',
  index: 'malformedIndex',
  innerType: 'malformedInnerType',
  split: 'malformedSplit',
  size: 'malformedSize',
  mismatch: 'malformedMismatch',
} as const satisfies Record<MalformedReason, keyof ReassemblerCounters>;

export const REASSEMBLY_DEFAULTS = {
  maxMessages: 32,
  maxMessageBytes: MAX_RECORD_VALUE,
  timeoutMs: 2000,
} as const;

export interface ReassemblerOptions {
  readonly deliver: RecordDeliver;
  /** Incomplete messages held at once (default 32); a new one beyond evicts the oldest. */
  readonly maxMessages?: number;
  /** Largest inner record value accepted (default 65535); each slot's buffer has this size. */
  readonly maxMessageBytes?: number;
  /** An incomplete message is dropped this long after its first fragment arrived (default 2000). */
  readonly timeoutMs?: number;
}

/** Bitmap words per slot: one bit per fragment index (count <= 255). */
const WORDS = 8;

/**
 * Puts fragments of one peer back together. One per peer session: reset() it when the session
 * changes so fragments of an old sender never meet a new sender's message ids. Not reentrant:
 * deliver must not call accept().
 *
 * A message's lifetime counts from its first fragment, not its latest, so a peer dribbling
 * fragments cannot keep a slot forever.
 */
export class Reassembler {
  readonly counters: ReassemblerCounters = emptyReassemblerCounters();
  readonly maxMessages: number;
  readonly maxMessageBytes: number;
  readonly timeoutMs: number;
  private readonly deliver: RecordDeliver;
  private readonly live: Uint8Array;
  private readonly ids: Uint32Array;
  private readonly counts: Uint8Array;
  private readonly types: Uint8Array;
  private readonly totals: Uint16Array;
  private readonly received: Uint16Array;
  private readonly startedMs: Float64Array;
  /** Opening order, for evicting the oldest (ties in startedMs included). */
  private readonly opened: Float64Array;
  private readonly have: Uint32Array;
  private readonly buffers: (Uint8Array | undefined)[];
  private nLive = 0;
  private nOpened = 0;
  private nAllocated = 0;
  private held = 0;
  private nextExpiryMs = Number.POSITIVE_INFINITY;

  constructor(opts: ReassemblerOptions) {
    const D = REASSEMBLY_DEFAULTS;
    this.maxMessages = opts.maxMessages ?? D.maxMessages;
    this.maxMessageBytes = opts.maxMessageBytes ?? D.maxMessageBytes;
    this.timeoutMs = opts.timeoutMs ?? D.timeoutMs;
    if (!Number.isInteger(this.maxMessages) || this.maxMessages < 1 || this.maxMessages > 4096) {
      throw new AoegwError('ERR_GATEWAY_CONFIG', `maxMessages ${this.maxMessages} is not in 1..4096`);
    }
    const m = this.maxMessageBytes;
    if (!Number.isInteger(m) || m < MIN_FRAGMENTS || m > MAX_RECORD_VALUE) {
      throw new AoegwError('ERR_GATEWAY_CONFIG', `maxMessageBytes ${m} is not in 2..${MAX_RECORD_VALUE}`);
    }
    if (!(Number.isFinite(this.timeoutMs) && this.timeoutMs > 0)) {
      throw new AoegwError('ERR_GATEWAY_CONFIG', `timeoutMs ${this.timeoutMs} must be > 0`);
    }
    this.deliver = opts.deliver;
    const n = this.maxMessages;
    this.live = new Uint8Array(n);
    this.ids = new Uint32Array(n);
    this.counts = new Uint8Array(n);
    this.types = new Uint8Array(n);
    this.totals = new Uint16Array(n);
    this.received = new Uint16Array(n);
    this.startedMs = new Float64Array(n);
    this.opened = new Float64Array(n);
    this.have = new Uint32Array(n * WORDS);
    this.buffers = new Array<Uint8Array | undefined>(n).fill(undefined);
  }

  /** Incomplete messages held now. */
  get messagesHeld(): number {
    return this.nLive;
  }

  /** Fragments of incomplete messages held now (the last term of the counters' identity). */
  get partsHeld(): number {
    return this.held;
  }

  /** Reassembly buffers allocated so far: never more than maxMessages, each maxMessageBytes. */
  get buffersAllocated(): number {
    return this.nAllocated;
  }

  /** Accepts one FRAGMENT record value buf[off, off + len) (a view valid during the call). */
  accept(buf: Uint8Array, off: number, len: number, nowMs: number): FragmentResult {
    const c = this.counters;
    c.fragmentsIn++;
    if (nowMs >= this.nextExpiryMs) this.expire(nowMs);
    // (A range outside buf is a caller's bug; counted here rather than read as zeros.)
    if (len < FRAGMENT_HEADER_BYTES || off < 0 || off + len > buf.length) return this.malformed('header');
    const id = readU32(buf, off);
    const index = buf[off + 4]!;
    const count = buf[off + 5]!;
    const innerType = buf[off + 6]!;
    const total = readU16(buf, off + 7);
    if (count < MIN_FRAGMENTS) return this.malformed('count');
    if (index >= count) return this.malformed('index');
    if (innerType === RECORD_PADDING || innerType === RECORD_FRAGMENT) return this.malformed('innerType');
    if (!isValidSplit(total, count)) return this.malformed('split');
    const fragmentBytes = fragmentBytesOf(total, count);
    const at = index * fragmentBytes;
    const payload = len - FRAGMENT_HEADER_BYTES;
    if (payload !== (index < count - 1 ? fragmentBytes : total - at)) return this.malformed('size');
    if (total > this.maxMessageBytes) {
      c.tooLarge++;
      return 'tooLarge';
    }

    let s = this.find(id);
    if (s >= 0) {
      if (this.counts[s] !== count || this.types[s] !== innerType || this.totals[s] !== total) {
        return this.malformed('mismatch');
      }
    } else {
      s = this.open(id, count, innerType, total, nowMs);
    }
    const word = s * WORDS + (index >>> 5);
    const bit = 1 << (index & 31);
    if ((this.have[word]! & bit) !== 0) {
      c.duplicates++;
      return 'duplicate';
    }
    this.have[word] = this.have[word]! | bit;
    copyBytes(buf, off + FRAGMENT_HEADER_BYTES, this.buffers[s]!, at, payload);
    this.held++;
    const got = this.received[s]! + 1;
    this.received[s] = got;
    if (got < count) return 'stored';

    this.held -= count;
    c.partsDelivered += count;
    c.messagesReassembled++;
    try {
      this.deliver(innerType, this.buffers[s]!, 0, total);
    } finally {
      this.free(s);
    }
    return 'delivered';
  }

  /** Drops incomplete messages older than timeoutMs. Returns how many. */
  tick(nowMs: number): number {
    return nowMs >= this.nextExpiryMs ? this.expire(nowMs) : 0;
  }

  /** Drops every incomplete message (a new session); buffers stay for reuse, counters stay. */
  reset(): void {
    for (let s = 0; s < this.maxMessages; s++) {
      if (this.live[s] !== 1) continue;
      this.counters.partsReset += this.received[s]!;
      this.held -= this.received[s]!;
      this.free(s);
    }
    this.nextExpiryMs = Number.POSITIVE_INFINITY;
  }

  private malformed(why: MalformedReason): MalformedReason {
    this.counters.malformed++;
    this.counters[MALFORMED_KEY[why]]++;
    return why;
  }

  private find(id: number): number {
    if (this.nLive === 0) return -1;
    for (let s = 0; s < this.maxMessages; s++) if (this.live[s] === 1 && this.ids[s] === id) return s;
    return -1;
  }

  /** A slot for a new message: a free one, else the oldest incomplete one evicted. */
  private open(id: number, count: number, innerType: number, total: number, nowMs: number): number {
    let s = -1;
    let oldest = -1;
    for (let i = 0; i < this.maxMessages; i++) {
      if (this.live[i] !== 1) {
        s = i;
        break;
      }
      if (oldest < 0 || this.opened[i]! < this.opened[oldest]!) oldest = i;
    }
    if (s < 0) {
      s = oldest;
      this.counters.evicted++;
      this.counters.partsEvicted += this.received[s]!;
      this.held -= this.received[s]!;
      this.free(s);
    }
    if (this.buffers[s] === undefined) {
      this.buffers[s] = new Uint8Array(this.maxMessageBytes);
      this.nAllocated++;
    }
    this.live[s] = 1;
    this.nLive++;
    this.ids[s] = id;
    this.counts[s] = count;
    this.types[s] = innerType;
    this.totals[s] = total;
    this.received[s] = 0;
    this.startedMs[s] = nowMs;
    this.opened[s] = this.nOpened++;
    this.have.fill(0, s * WORDS, s * WORDS + WORDS);
    this.nextExpiryMs = Math.min(this.nextExpiryMs, nowMs + this.timeoutMs);
    return s;
  }

  private free(s: number): void {
    if (this.live[s] !== 1) return;
    this.live[s] = 0;
    this.nLive--;
  }

  private expire(nowMs: number): number {
    let n = 0;
    let next = Number.POSITIVE_INFINITY;
    for (let s = 0; s < this.maxMessages; s++) {
      if (this.live[s] !== 1) continue;
      const deadline = this.startedMs[s]! + this.timeoutMs;
      if (nowMs >= deadline) {
        this.counters.expired++;
        this.counters.partsExpired += this.received[s]!;
        this.held -= this.received[s]!;
        this.free(s);
        n++;
      } else if (deadline < next) {
        next = deadline;
      }
    }
    this.nextExpiryMs = next;
    return n;
  }
}
