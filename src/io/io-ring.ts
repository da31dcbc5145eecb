/**
 * IoRing: positioned readv/writev/fdatasync through io_uring (native/io_ring.c), so block I/O
 * does not block the event loop.
 *
 * Ops are queued into typed-array tables shared with the addon (nothing is allocated per op or per
 * submit) and handed to the kernel in batches by submit(). The kernel completes inside that one
 * syscall what it can do without blocking (page-cache reads, and page-cache writes on file
 * systems that support non-blocking writes); those completions reach the handler before submit()
 * returns. The rest run in the kernel's io-wq workers, and their completions wake the event loop
 * through an eventfd.
 *
 * Flow control: at most cqEntries ops are in flight, so the kernel's completion queue cannot
 * overflow. Ops that submit() cannot hand over yet wait in a backlog (the same tables) and go as
 * completions make room. A link chain always goes to the kernel in one piece.
 *
 * Every queued op gets exactly one completion: its result, -ECANCELED when an earlier op of its
 * chain failed, or -ECANCELED when close() drops it from the backlog.
 */
import { AoegwError } from '../errors.js';
import { fromNative } from './native.js';
import { type NativeRingHandle, type RingAddon, ringAddon } from './ring-native.js';

/** results[i] is bytes transferred (≥ 0) or -errno for tokens[i]; the arrays are reused. */
export type CompletionHandler = (tokens: Int32Array, results: Int32Array, n: number) => void;

export interface IoRingStats {
  /** Batches handed to the kernel (one io_uring_enter each). */
  submits: number;
  /** Ops handed to the kernel; always completions + inFlight. */
  ops: number;
  /** Kernel completions delivered to the handler. */
  completions: number;
  /** The part of completions delivered from inside submit(). */
  inlineCompletions: number;
  /** Times the event loop woke on the ring's eventfd. */
  wakeups: number;
  /** Ops submit() had to keep back because cqEntries were already in flight (each counted once). */
  backlogged: number;
  /** Wakeups that found nothing (a submit had already taken the completions). */
  spuriousWakeups: number;
  /** Ops close() dropped from the backlog (delivered with -ECANCELED, never submitted). */
  canceled: number;
  /** Throws from the completion handler. */
  handlerErrors: number;
  /** Ops queued and not yet handed to the kernel. */
  queued: number;
}

const DEFAULT_ENTRIES = 256;
const MAX_ENTRIES = 32768;
const PAGE = 4096;
/** Arena offsets and lengths travel as int32. */
const MAX_ARENA = 0x7ffff000;
/** UIO_MAXIOV: the kernel's limit of buffers per readv/writev. */
const MAX_IOV = 1024;
/** MAX_RW_COUNT: the kernel transfers at most this much per call (results stay int32). */
const MAX_RW_BYTES = 0x7ffff000;
const ECANCELED = 125;
/** Delivery rounds per submit() or wakeup: a handler that keeps resubmitting cannot starve the loop. */
const MAX_DRAIN_ROUNDS = 8;

// Descriptor fields (native/io_ring.c).
const F_OP = 0;
const F_FD = 1;
const F_POS = 2;
const F_IOV = 3;
const F_COUNT = 4;
const F_TOKEN = 5;
const F_FLAGS = 6;

export class IoRing {
  /** Probe: whether io_uring works here (it can be disabled by sysctl or seccomp). */
  static available(): { ok: true } | { ok: false; reason: string } {
    let reason: string | null;
    try {
      reason = ringAddon().ringProbe();
    } catch (e) {
      reason = (e as Error).message;
    }
    return reason === null ? { ok: true } : { ok: false, reason };
  }

  /** Throws AoegwError('ERR_IO_RING', reason) when io_uring is unavailable. entries default 256. */
  static open(opts: { arenaBytes: number; entries?: number }): IoRing {
    const entries = opts.entries ?? DEFAULT_ENTRIES;
    const bytes = opts.arenaBytes;
    if (!Number.isInteger(bytes) || bytes < PAGE || bytes > MAX_ARENA || bytes % PAGE !== 0) {
      throw new AoegwError(
        'ERR_IO_RING',
        `arenaBytes must be a multiple of ${PAGE} from ${PAGE} to ${MAX_ARENA} (got ${bytes})`,
      );
    }
    if (!Number.isInteger(entries) || entries < 1 || entries > MAX_ENTRIES) {
      throw new AoegwError('ERR_IO_RING', `entries must be 1..${MAX_ENTRIES} (got ${entries})`);
    }
    const native = ringAddon();
    try {
      return new IoRing(native, native.ringOpen({ entries, arenaBytes: bytes }));
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** Registered memory (4096-aligned): every op buffer must be a view of it, else the op throws ERR_IO_RING at queue time. */
  readonly arena: Buffer;
  /** SQ entries the kernel granted (entries rounded up to a power of two): the largest batch and link chain. */
  readonly sqEntries: number;
  /** CQ entries (2 × sqEntries): the most ops in flight at once. */
  readonly cqEntries: number;
  /**
   * Kernel workers (io-wq, shared by every ring of the process) that may block in ops on regular
   * files at once: at least min(sqEntries, 4 × online CPUs), so one slow file cannot hold the
   * others' ops; 0 when the kernel cannot tell (before 5.15).
   */
  readonly ioWorkers: number;

  private readonly native: RingAddon;
  private readonly h: NativeRingHandle;
  private readonly arenaBuffer: ArrayBuffer;
  private readonly stride: number;
  private readonly opRead: number;
  private readonly opWrite: number;
  private readonly opSync: number;
  private desc: Float64Array;
  private iov: Int32Array;
  private readonly cqe: Int32Array;
  private readonly tokens: Int32Array;
  private readonly results: Int32Array;
  private handler: CompletionHandler | undefined;
  private errorHandler: ((err: unknown) => void) | undefined;

  // The queue: ops [head, submitEnd) were asked to be submitted (the backlog, while they wait for
  // room), ops [submitEnd, tail) are queued only. chainLen ops at the tail link to the next op.
  private head = 0;
  private submitEnd = 0;
  private tail = 0;
  private iovTail = 0;
  private chainLen = 0;
  private inFlightOps = 0;
  private delivering = false;
  /** Ops went to the kernel without their completions being read: look again before returning. */
  private reapNeeded = false;
  private closing = false;
  private closeDeferred = false;

  private submits = 0;
  private opsSubmitted = 0;
  private completions = 0;
  private inlineCompletions = 0;
  private backlogged = 0;
  private backlogCounted = 0;
  private canceled = 0;
  private handlerErrors = 0;

  /** The eventfd callback: one function for the ring's lifetime. */
  private readonly onReady = (n: number): void => this.drain(n, false);

  private constructor(native: RingAddon, o: ReturnType<RingAddon['ringOpen']>) {
    this.native = native;
    this.h = o.handle;
    this.arenaBuffer = o.arena;
    this.arena = Buffer.from(o.arena);
    this.sqEntries = o.sqEntries;
    this.cqEntries = o.cqEntries;
    this.ioWorkers = o.ioWorkers;
    this.stride = native.RING_DESC_STRIDE;
    this.opRead = native.RING_OP_READV;
    this.opWrite = native.RING_OP_WRITEV;
    this.opSync = native.RING_OP_FDATASYNC;
    // Room for a full SQ plus a full backlog before the tables grow; two buffers per op on average.
    const ops = 2 * this.sqEntries;
    this.desc = new Float64Array(ops * this.stride);
    this.iov = new Int32Array(ops * 2 * 2);
    // The completion table holds a full CQ: one harvest takes everything in flight.
    this.cqe = new Int32Array(this.cqEntries * 2);
    this.tokens = new Int32Array(this.cqEntries);
    this.results = new Int32Array(this.cqEntries);
    try {
      native.ringTables(this.h, { desc: this.desc, iov: this.iov, cqe: this.cqe });
      native.ringStart(this.h, this.onReady);
    } catch (e) {
      native.ringClose(this.h);
      throw e;
    }
  }

  /** Ops submitted to the kernel and not yet completed. */
  get inFlight(): number {
    return this.inFlightOps;
  }

  /** Queue ops (not yet submitted). bufs[0..count) are consecutive in the file from pos. link: the next queued op starts only after this one succeeds (io_uring IOSQE_IO_LINK; a failure cancels the rest of the chain with -ECANCELED). */
  readv(
    fd: number,
    pos: number,
    bufs: readonly Uint8Array[],
    count: number,
    token: number,
    link = false,
  ): void {
    this.queueRw(this.opRead, fd, pos, bufs, count, token, link);
  }

  writev(
    fd: number,
    pos: number,
    bufs: readonly Uint8Array[],
    count: number,
    token: number,
    link = false,
  ): void {
    this.queueRw(this.opWrite, fd, pos, bufs, count, token, link);
  }

  fdatasync(fd: number, token: number, link = false): void {
    this.checkOp(fd, 0, token);
    this.reserve(0);
    this.put(this.opSync, fd, 0, this.iovTail, 0, token, link);
  }

  /**
   * One io_uring_enter for everything queued; completions already posted are delivered to the
   * handler before this returns. Returns the ops submitted. Auto-submits when the SQ fills while
   * queueing. An open link chain ends here (its last op links to nothing). Called from inside the
   * handler, it submits, and the completions follow as soon as the handler returns.
   */
  submit(): number {
    if (this.closing) throw new AoegwError('ERR_CLOSED', 'io ring is closed');
    // Nothing queued, nothing to reap (a server whose stores all completed synchronously).
    if (this.tail === this.head && this.inFlightOps === 0) return 0;
    if (this.chainLen > 0) {
      this.desc[(this.tail - 1) * this.stride + F_FLAGS] = 0;
      this.chainLen = 0;
    }
    this.submitEnd = this.tail;
    const before = this.opsSubmitted;
    if (this.delivering) {
      this.push(false);
    } else {
      const n = this.push(true);
      if (n > 0) this.drain(n, true);
    }
    return this.opsSubmitted - before;
  }

  /** handler(tokens, results, n): results[i] = bytes (≥ 0) or −errno for tokens[i]. Called from submit() (inline completions) and from the event loop (later ones, via eventfd). The arrays are reused: read them during the call only. */
  onCompletions(handler: (tokens: Int32Array, results: Int32Array, n: number) => void): void {
    this.handler = handler;
  }

  /** Where a throw from the completion handler goes (the ring carries on). Without one, it is rethrown as an uncaught exception. */
  onError(handler: (err: unknown) => void): void {
    this.errorHandler = handler;
  }

  stats(): IoRingStats {
    const n = this.native.ringStats(this.h);
    return {
      submits: this.submits,
      ops: this.opsSubmitted,
      completions: this.completions,
      inlineCompletions: this.inlineCompletions,
      wakeups: n.wakeups,
      backlogged: this.backlogged,
      spuriousWakeups: n.spuriousWakeups,
      canceled: this.canceled,
      handlerErrors: this.handlerErrors,
      queued: this.tail - this.head,
    };
  }

  /**
   * Stops the eventfd poll (the process may exit) and, once nothing is in flight, unmaps the ring.
   * Blocks until in-flight ops complete (a kernel worker may still be writing into the arena) and
   * delivers their completions; queued ops never submitted complete with -ECANCELED. Called from
   * the handler, it takes effect when the handler returns; closing twice is a no-op.
   */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.delivering) {
      this.closeDeferred = true;
      return;
    }
    this.finishClose();
  }

  // ---------- queueing ----------

  private checkOp(fd: number, pos: number, token: number): void {
    if (this.closing) throw new AoegwError('ERR_CLOSED', 'io ring is closed');
    if ((fd | 0) !== fd || fd < 0) throw new AoegwError('ERR_IO_RING', `fd must be a descriptor (got ${fd})`);
    if (!Number.isSafeInteger(pos) || pos < 0) {
      throw new AoegwError('ERR_IO_RING', `position must be a byte offset ≥ 0 (got ${pos})`);
    }
    if ((token | 0) !== token) throw new AoegwError('ERR_IO_RING', `token must be an int32 (got ${token})`);
    if (this.chainLen >= this.sqEntries) {
      throw new AoegwError(
        'ERR_IO_RING',
        `a link chain cannot be longer than the SQ (${this.sqEntries} ops)`,
      );
    }
  }

  private queueRw(
    op: number,
    fd: number,
    pos: number,
    bufs: readonly Uint8Array[],
    count: number,
    token: number,
    link: boolean,
  ): void {
    this.checkOp(fd, pos, token);
    if ((count | 0) !== count || count < 1 || count > MAX_IOV || count > bufs.length) {
      throw new AoegwError(
        'ERR_IO_RING',
        `count must be 1..${Math.min(MAX_IOV, bufs.length)} (got ${count})`,
      );
    }
    const ab = this.arenaBuffer;
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const b = bufs[i]!;
      if (b.buffer !== ab) {
        throw new AoegwError('ERR_IO_RING', `buffer ${i} of the op is not a view of the ring's arena`);
      }
      bytes += b.byteLength;
    }
    if (bytes > MAX_RW_BYTES) {
      throw new AoegwError('ERR_IO_RING', `an op moves at most ${MAX_RW_BYTES} bytes (got ${bytes})`);
    }
    this.reserve(count);
    const iov = this.iov;
    const first = this.iovTail;
    for (let i = 0; i < count; i++) {
      const b = bufs[i]!;
      iov[2 * (first + i)] = b.byteOffset;
      iov[2 * (first + i) + 1] = b.byteLength;
    }
    this.iovTail = first + count;
    this.put(op, fd, pos, first, count, token, link);
  }

  private put(
    op: number,
    fd: number,
    pos: number,
    first: number,
    count: number,
    token: number,
    link: boolean,
  ) {
    const d = this.desc;
    const o = this.tail * this.stride;
    d[o + F_OP] = op;
    d[o + F_FD] = fd;
    d[o + F_POS] = pos;
    d[o + F_IOV] = first;
    d[o + F_COUNT] = count;
    d[o + F_TOKEN] = token;
    d[o + F_FLAGS] = link ? 1 : 0;
    this.tail++;
    this.chainLen = link ? this.chainLen + 1 : 0;
  }

  /** Makes room for one more op with `iovs` buffers. */
  private reserve(iovs: number): void {
    if (this.tail - this.submitEnd >= this.sqEntries) {
      // The SQ is full: hand over the complete chains (the open one stays until it is complete).
      this.submitEnd = this.tail - this.chainLen;
      this.push(false);
    }
    if (this.tail < this.desc.length / this.stride && this.iovTail + iovs <= this.iov.length / 2) return;
    this.makeRoom(iovs);
  }

  /** Moves the live part of the queue to the front of the tables, into bigger ones if need be. */
  private makeRoom(iovs: number): void {
    const s = this.stride;
    const ops = this.tail - this.head;
    const iovBase = ops > 0 ? this.desc[this.head * s + F_IOV]! : this.iovTail;
    const liveIovs = this.iovTail - iovBase;
    let desc = this.desc;
    let iov = this.iov;
    if (ops + 1 > desc.length / s || liveIovs + iovs > iov.length / 2) {
      // Allocation happens only here, while the queue finds its working size.
      desc = new Float64Array(Math.max(desc.length * 2, (ops + 1) * s));
      iov = new Int32Array(Math.max(iov.length * 2, (liveIovs + iovs) * 2));
      desc.set(this.desc.subarray(this.head * s, this.tail * s));
      iov.set(this.iov.subarray(iovBase * 2, this.iovTail * 2));
      this.native.ringTables(this.h, { desc, iov });
      this.desc = desc;
      this.iov = iov;
    } else {
      desc.copyWithin(0, this.head * s, this.tail * s);
      iov.copyWithin(0, iovBase * 2, this.iovTail * 2);
    }
    for (let i = 0; i < ops; i++) desc[i * s + F_IOV] = desc[i * s + F_IOV]! - iovBase;
    this.submitEnd -= this.head;
    this.tail = ops;
    this.head = 0;
    this.iovTail = liveIovs;
  }

  // ---------- submission ----------

  /**
   * Hands the backlog to the kernel as far as the SQ and the in-flight cap allow. With `harvest`,
   * returns the completions then copied into the completion table; without, leaves them posted.
   */
  private push(harvest: boolean): number {
    let n = 0;
    let reaped = false;
    let sent = false;
    while (this.head < this.submitEnd) {
      const count = this.sendable();
      if (count === 0) break;
      const last = harvest && this.head + count === this.submitEnd;
      try {
        n = this.native.ringSubmit(this.h, count, this.head, last ? 1 : 0);
      } catch (e) {
        throw fromNative(e);
      }
      this.head += count;
      this.inFlightOps += count;
      this.submits++;
      this.opsSubmitted += count;
      this.backlogCounted = Math.max(0, this.backlogCounted - count);
      sent = true;
      reaped = last;
    }
    this.settleQueue();
    if (harvest && !reaped) return this.reap();
    if (!harvest && sent) this.reapNeeded = true;
    return harvest ? n : 0;
  }

  /** How many ops from the head can go now: whole chains only, within the SQ and the in-flight cap. */
  private sendable(): number {
    let n = Math.min(this.submitEnd - this.head, this.sqEntries, this.cqEntries - this.inFlightOps);
    if (n <= 0) return 0;
    if (this.head + n < this.submitEnd) {
      const d = this.desc;
      const s = this.stride;
      while (n > 0 && d[(this.head + n - 1) * s + F_FLAGS] === 1) n--;
    }
    return n;
  }

  private settleQueue(): void {
    if (this.head === this.tail) {
      this.head = this.submitEnd = this.tail = this.iovTail = 0;
    }
    const backlog = this.submitEnd - this.head;
    if (backlog > this.backlogCounted) this.backlogged += backlog - this.backlogCounted;
    this.backlogCounted = backlog;
  }

  private reap(): number {
    try {
      return this.native.ringReap(this.h);
    } catch (e) {
      throw fromNative(e);
    }
  }

  // ---------- completions ----------

  /** Delivers `first` completions already in the table, then whatever follows. */
  private drain(first: number, inline: boolean): void {
    let n = first;
    this.delivering = true;
    try {
      for (let round = 1; ; round++) {
        if (n > 0) this.deliver(n, inline);
        if (this.closing) break;
        // Completions made room: the backlog can go.
        if (this.head < this.submitEnd) this.push(false);
        if (n < this.cqEntries && !this.reapNeeded) break;
        // Enough for one turn of the event loop: what is left stays posted, and its eventfd
        // signal brings it back (a handler that keeps resubmitting cannot starve the loop).
        if (round === MAX_DRAIN_ROUNDS) break;
        this.reapNeeded = false;
        n = this.reap();
        if (n === 0) break;
      }
    } finally {
      this.delivering = false;
    }
    if (this.closeDeferred) this.finishClose();
  }

  private deliver(n: number, inline: boolean): void {
    const cqe = this.cqe;
    const tokens = this.tokens;
    const results = this.results;
    for (let i = 0; i < n; i++) {
      tokens[i] = cqe[2 * i]!;
      results[i] = cqe[2 * i + 1]!;
    }
    this.inFlightOps -= n;
    this.completions += n;
    if (inline) this.inlineCompletions += n;
    this.callHandler(n);
  }

  private callHandler(n: number): void {
    const handler = this.handler;
    if (handler === undefined) return;
    try {
      handler(this.tokens, this.results, n);
    } catch (e) {
      this.handlerErrors++;
      this.report(e);
    }
  }

  private report(e: unknown): void {
    const onError = this.errorHandler;
    if (onError !== undefined) {
      try {
        onError(e);
        return;
      } catch (again) {
        e = again;
      }
    }
    queueMicrotask(() => {
      throw e;
    });
  }

  // ---------- close ----------

  private finishClose(): void {
    this.closeDeferred = false;
    // While closing, a handler calling submit() or queueing gets ERR_CLOSED, and nothing nests.
    this.delivering = true;
    try {
      this.native.ringStop(this.h);
      this.cancelQueued();
      while (this.inFlightOps > 0) {
        const n = this.native.ringWait(this.h);
        if (n === 0) break;
        this.deliver(n, false);
      }
    } finally {
      this.delivering = false;
      this.native.ringClose(this.h);
    }
  }

  /** Completes every op never handed to the kernel with -ECANCELED. */
  private cancelQueued(): void {
    const tokens = this.tokens;
    const results = this.results;
    const d = this.desc;
    const s = this.stride;
    while (this.head < this.tail) {
      const n = Math.min(tokens.length, this.tail - this.head);
      for (let i = 0; i < n; i++) {
        tokens[i] = d[(this.head + i) * s + F_TOKEN]!;
        results[i] = -ECANCELED;
      }
      this.head += n;
      this.canceled += n;
      this.callHandler(n);
    }
    this.submitEnd = this.head;
    this.chainLen = 0;
    this.settleQueue();
  }
}
