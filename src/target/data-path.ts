/**
 * The engine's READ/WRITE/FLUSH path, asynchronous: a request is copied out of its receive frame
 * into a preallocated pending entry (its AoE/ATA header and, for a write, its data in a staging
 * slot), the store operations start at the end of the receive batch, and the reply is built when
 * they complete — in the same turn for page-cache hits and memory stores, later for a slow disk,
 * whose requests wait alone while every other export, link and the tunnel keep going.
 *
 * Per export, writes and FLUSHes form commit groups: the first group starts at once; while it is
 * in flight, later writes queue (bounded: `queueLimit` pending requests per export, beyond which
 * requests are dropped and the initiator retransmits) and start together as the next group when
 * it ends. A group is its writes coalesced into runs of contiguous LBAs (in LBA order, or arrival
 * order when two overlap: the later write wins, as sent), each run one store write linked to the
 * next, then one sync linked after them when the export syncs writes (sync and direct modes) or
 * the group has a FLUSH. The group's replies go out together, in arrival order, when its last
 * operation completed: a write is acknowledged only after the sync that covers it succeeded, and a
 * failed write or sync fails every write of the group (DRDY|DF|ERR, ABRT), never a false success.
 *
 * Reads are coalesced the same way per batch and answered when their run completes (a failed run:
 * DRDY|ERR, UNC, no data). Groups start before the batch's reads, so a read sees the writes of its
 * batch on a store that completes in order.
 *
 * Completions are queued (a store may complete inside the call that started it) and handled by
 * settle(): at the end of each receive batch and after each batch of ring completions. Replies to
 * links other than the one being served are flushed by settle().
 *
 * Service time (the latency percentiles of `aoegw status`, `top` and the metrics): per request,
 * from its receive batch's timestamp (`now` of handleBatch, read by the driver once per batch,
 * right after the batch left the kernel) to the clock read once per pass of settle() over
 * completions — just before the replies they release are built and flushed together. Two clock
 * reads per request would cost more than the histogram; with one per batch, every request of a
 * batch shares its batch's times, which is what it really waits for (its reply leaves with the
 * batch's). So a request served inline (memory store, synchronous I/O) is timed as its whole
 * batch: parsing, the store calls and building every reply of it, not its own share; a request
 * that waited for a ring completion or behind a commit group is timed to that completion batch.
 * Not measured: time in the kernel's socket buffers before the batch was received, and the send
 * (sendmmsg) after the replies were built.
 *
 * Allocation: staging memory, the pending table and the run table are preallocated; views of
 * staging slots are cached. After warm-up nothing is allocated per request.
 */
import { writeAtaStatus } from '../aoe/ata.js';
import { ATA_DATA_OFFSET, ATA_HEADER_END, AtaErrorBit, AtaStatus, SECTOR_SIZE } from '../aoe/constants.js';
import { writeResponseHeader } from '../aoe/header.js';
import type { InitiatorCounters } from './counters.js';
import type { ExportRuntime } from './export-state.js';
import { type LinkState, sendReply } from './reply.js';
import { SERVICE_TIME_LIMIT_US } from './service-time.js';

/** Bytes of staging per pending request: the largest data area one frame may carry. */
export const STAGING_STRIDE = 16384;
/** Sectors per frame the engine serves at most (a 16 KiB staging slot). */
export const MAX_DATA_SECTORS = STAGING_STRIDE / SECTOR_SIZE;
/** Pending requests (and staging slots) by default: 16 MiB of staging. */
export const DEFAULT_STAGING_SLOTS = 1024;
/** Most staging slots reserved for one export (DataPath.join): a queue depth of 16 each. */
export const MAX_SHARE = 16;

export const OP_READ = 1;
export const OP_WRITE = 2;
export const OP_FLUSH = 3;
const RUN_READ = 1;
const RUN_WRITE = 2;
const RUN_SYNC = 3;
const STATUS_OK = AtaStatus.DRDY;
const STATUS_ERR = AtaStatus.DRDY | AtaStatus.ERR;
const STATUS_FAULT = AtaStatus.DRDY | AtaStatus.DF | AtaStatus.ERR;
const NONE = -1;

export interface DataPathOptions {
  /** Staging memory of `slots` × STAGING_STRIDE bytes (a ring's registered arena); default: allocated here. */
  staging?: Buffer;
  slots?: number;
  /** Hands the operations stores queued to the kernel (a ring's submit); called by settle(). */
  submit?: () => void;
  /**
   * Monotonic ms, the clock of handleBatch's `now` (service times); default performance.now, which
   * in Node 20 allocates its result (a heap number per read: per batch of completions, not per
   * request).
   */
  clock?: () => number;
}

export interface DataPathStats {
  /** Requests waiting for their store now. */
  pending: number;
  /** Requests dropped because every staging slot was taken. */
  dropPoolFull: number;
  /** Completions of unknown runs (a store broke its contract): counted, ignored. */
  strayCompletions: number;
  /** Replies lost because their link was gone or its transmit failed. */
  replyLost: number;
}

export class DataPath {
  private readonly slots: number;
  private readonly staging: Buffer;
  private readonly submitOps: (() => void) | undefined;
  private readonly clock: () => number;
  /**
   * Timestamps (ms) of the batch being received and of the completions being handled: in a
   * Float64Array, where storing a fractional number allocates nothing.
   */
  private readonly at = new Float64Array(2);
  // Pending requests (struct of arrays, index = staging slot).
  private readonly kind: Uint8Array;
  private readonly linkOf: Int32Array;
  private readonly lba: Float64Array;
  private readonly count: Int32Array;
  private readonly status: Uint8Array;
  private readonly error: Uint8Array;
  /** The receive batch's timestamp (ms): service time starts there. */
  private readonly recvAt: Float64Array;
  /** Arrival-order list: an export's queue, then its group. */
  private readonly qNext: Int32Array;
  /** Members of one store operation (run). */
  private readonly rNext: Int32Array;
  private readonly exp: (ExportRuntime | null)[];
  private readonly ini: (InitiatorCounters | null)[];
  private readonly hdr: Buffer;
  private readonly free: Int32Array;
  private nFree: number;
  /**
   * Fair shares of the staging pool: each export (join) may always take `share` slots, whatever
   * the others hold; the rest is first come, first served. Without them, a few exports backed up
   * behind slow disks (each up to its queueLimit) could hold every slot and starve the others.
   * Half the pool is shared out (at most MAX_SHARE per export), half stays free for whoever is busy.
   */
  private share = 0;
  /** Slots of the members' shares not in use: the others may not take them. Never above nFree but transiently. */
  private unusedShares = 0;
  private readonly members: ExportRuntime[] = [];
  private readonly stageViews: (Buffer | undefined)[][];
  // Runs (one per store operation; the token the store completes).
  private runKind = new Uint8Array(0);
  private runFirst = new Int32Array(0);
  private runBytes = new Float64Array(0);
  private runExp: (ExportRuntime | null)[] = [];
  private runFree = new Int32Array(0);
  private nRunFree = 0;
  // This batch.
  private readonly batchReads: Int32Array;
  private nBatchReads = 0;
  private batchExports: ExportRuntime[] = [];
  private nBatchExports = 0;
  private batchGen = 0;
  // Scratch for sorting and store calls.
  private readonly order: Int32Array;
  private readonly bufs: Buffer[] = [];
  // Completions not yet handled.
  private cqToken = new Int32Array(64);
  private cqResult = new Int32Array(64);
  private cqHead = 0;
  private cqTail = 0;
  private settling = false;
  private started = false;
  private dirty: LinkState[] = [];
  private nDirty = 0;
  private dirtyGen = 0;
  private readonly s: DataPathStats = { pending: 0, dropPoolFull: 0, strayCompletions: 0, replyLost: 0 };

  constructor(
    private readonly links: ReadonlyMap<number, LinkState>,
    opts: DataPathOptions = {},
  ) {
    const slots =
      opts.slots ?? (opts.staging ? Math.floor(opts.staging.length / STAGING_STRIDE) : DEFAULT_STAGING_SLOTS);
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`staging slots ${slots}`);
    if (opts.staging && opts.staging.length < slots * STAGING_STRIDE)
      throw new RangeError(`staging of ${opts.staging.length} bytes holds fewer than ${slots} slots`);
    this.slots = slots;
    this.staging = opts.staging ?? Buffer.alloc(slots * STAGING_STRIDE);
    this.submitOps = opts.submit;
    this.clock = opts.clock ?? (() => performance.now());
    this.kind = new Uint8Array(slots);
    this.linkOf = new Int32Array(slots);
    this.lba = new Float64Array(slots);
    this.count = new Int32Array(slots);
    this.status = new Uint8Array(slots);
    this.error = new Uint8Array(slots);
    this.recvAt = new Float64Array(slots);
    this.qNext = new Int32Array(slots).fill(NONE);
    this.rNext = new Int32Array(slots).fill(NONE);
    this.exp = new Array(slots).fill(null);
    this.ini = new Array(slots).fill(null);
    this.hdr = Buffer.alloc(slots * ATA_HEADER_END);
    this.free = new Int32Array(slots);
    for (let i = 0; i < slots; i++) this.free[i] = slots - 1 - i;
    this.nFree = slots;
    this.stageViews = Array.from({ length: slots }, () => []);
    this.batchReads = new Int32Array(slots);
    this.order = new Int32Array(slots);
    this.growRuns(64);
  }

  /** Requests waiting for their store. */
  get pending(): number {
    return this.slots - this.nFree;
  }

  stats(): DataPathStats {
    return { ...this.s, pending: this.pending };
  }

  /** A receive batch starts: its requests' service time counts from `now` (ms, the clock's). */
  receiving(now: number): void {
    this.at[0] = now;
  }

  /**
   * Takes one READ/WRITE/FLUSH of the current batch (`req` is its whole frame, valid only during
   * the call). False when the export's queue or the staging pool is full: the request is dropped
   * (the initiator retransmits), the caller counts it.
   */
  accept(
    kind: number,
    exp: ExportRuntime,
    ini: InitiatorCounters,
    linkId: number,
    req: Buffer,
    data: Buffer | null,
    lba: number,
    sectors: number,
  ): boolean {
    if (exp.outstanding >= exp.queueLimit) return false;
    const own = exp.poolMember && exp.outstanding < this.shareOf(exp);
    // Past its share an export takes only slots no other export's share needs.
    if (this.nFree === 0 || (!own && this.nFree <= this.unusedShares)) {
      this.s.dropPoolFull++;
      return false;
    }
    const p = this.free[--this.nFree]!;
    if (own) this.unusedShares--;
    exp.outstanding++;
    this.kind[p] = kind;
    this.linkOf[p] = linkId;
    this.lba[p] = lba;
    this.count[p] = sectors;
    this.status[p] = STATUS_OK;
    this.error[p] = 0;
    this.recvAt[p] = this.at[0]!;
    this.qNext[p] = NONE;
    this.rNext[p] = NONE;
    this.exp[p] = exp;
    this.ini[p] = ini;
    // A byte loop: a partial Buffer#copy would allocate a view per request.
    const h = this.hdr;
    const base = p * ATA_HEADER_END;
    for (let i = 0; i < ATA_HEADER_END; i++) h[base + i] = req[i]!;
    if (kind === OP_READ) {
      this.batchReads[this.nBatchReads++] = p;
      return true;
    }
    if (data !== null) this.staging.set(data, p * STAGING_STRIDE);
    if (exp.qTail === NONE) exp.qHead = p;
    else this.qNext[exp.qTail] = p;
    exp.qTail = p;
    if (exp.batchMark !== this.batchGen) {
      exp.batchMark = this.batchGen;
      if (this.nBatchExports === this.batchExports.length) this.batchExports.push(exp);
      else this.batchExports[this.nBatchExports] = exp;
      this.nBatchExports++;
    }
    return true;
  }

  /** End of a receive batch's parsing: start its commit groups, then its reads. */
  startBatch(): void {
    for (let i = 0; i < this.nBatchExports; i++) {
      const exp = this.batchExports[i]!;
      this.batchExports[i] = null as unknown as ExportRuntime;
      if (!exp.groupInFlight && exp.qHead !== NONE) this.startGroup(exp);
    }
    this.nBatchExports = 0;
    this.batchGen++;
    const n = this.nBatchReads;
    this.nBatchReads = 0;
    if (n === 0) return;
    const o = this.order;
    for (let j = 0; j < n; j++) o[j] = this.batchReads[j]!;
    this.sortByLba(n);
    let s = 0;
    while (s < n) {
      const first = o[s]!;
      const exp = this.exp[first]!;
      let end = this.lba[first]! + this.count[first]!;
      let e = s + 1;
      while (e < n) {
        const k = o[e]!;
        if (this.exp[k] !== exp || this.lba[k] !== end) break;
        end += this.count[k]!;
        e++;
      }
      this.startRun(RUN_READ, exp, s, e, false);
      s = e;
    }
  }

  /** A store's completion: queued, handled by settle(). */
  done(token: number, result: number): void {
    if (this.cqTail === this.cqToken.length) this.compactCompletions();
    this.cqToken[this.cqTail] = token;
    this.cqResult[this.cqTail++] = result;
  }

  /**
   * Handles every completion queued (starting the next groups they release), flushes the replies
   * that made, then hands the started operations to the kernel, until nothing is left. The
   * replies go before the submit: an acknowledgement never waits for the next group's
   * io_uring_enter, and none leaves after a write of a later group could have completed (the
   * ring's completions run concurrently in the kernel's workers). Re-entrant calls (a ring
   * delivering completions inside submit) return at once.
   */
  settle(): void {
    if (this.settling) return;
    this.settling = true;
    try {
      for (;;) {
        // One clock read per pass: the replies of these completions are built and sent together.
        if (this.cqHead !== this.cqTail) this.at[1] = this.clock();
        while (this.cqHead !== this.cqTail) {
          const token = this.cqToken[this.cqHead]!;
          const result = this.cqResult[this.cqHead++]!;
          this.complete(token, result);
        }
        this.cqHead = 0;
        this.cqTail = 0;
        if (!this.started) break;
        this.started = false;
        this.flushDirty();
        this.submitOps?.();
      }
    } finally {
      this.settling = false;
      this.flushDirty();
    }
  }

  // ---- groups and runs -----------------------------------------------------------------------

  private startGroup(exp: ExportRuntime): void {
    const head = exp.qHead;
    exp.qHead = NONE;
    exp.qTail = NONE;
    exp.gHead = head;
    exp.groupInFlight = true;
    exp.groupFailed = false;
    exp.groupRemaining = 0;
    let n = 0;
    let flush = false;
    const o = this.order;
    for (let p = head; p !== NONE; p = this.qNext[p]!) {
      if (this.kind[p] === OP_WRITE) o[n++] = p;
      else flush = true;
    }
    const sync = flush || (n > 0 && exp.store.syncsWrites);
    if (n > 0) {
      this.sortByLba(n);
      if (this.overlaps(n)) {
        n = 0;
        for (let p = head; p !== NONE; p = this.qNext[p]!) if (this.kind[p] === OP_WRITE) o[n++] = p;
      }
      let s = 0;
      while (s < n) {
        let end = this.lba[o[s]!]! + this.count[o[s]!]!;
        let e = s + 1;
        while (e < n && this.lba[o[e]!] === end) {
          end += this.count[o[e]!]!;
          e++;
        }
        this.startRun(RUN_WRITE, exp, s, e, sync);
        s = e;
      }
    }
    if (sync) {
      const r = this.newRun(RUN_SYNC, exp, NONE, 0);
      exp.groupRemaining++;
      if (flush) exp.c.storeFlushes++;
      else exp.c.storeCommits++;
      this.started = true;
      exp.store.sync(r);
    }
  }

  /** One store read or write of order[s..e) (consecutive LBAs of one export). */
  private startRun(kind: number, exp: ExportRuntime, s: number, e: number, link: boolean): void {
    const o = this.order;
    const bufs = this.bufs;
    let bytes = 0;
    for (let j = s; j < e; j++) {
      const p = o[j]!;
      this.rNext[p] = j + 1 < e ? o[j + 1]! : NONE;
      const v = this.stageView(p, this.count[p]!);
      bytes += v.length;
      if (j - s === bufs.length) bufs.push(v);
      else bufs[j - s] = v;
    }
    const r = this.newRun(kind, exp, o[s]!, bytes);
    this.started = true;
    if (kind === RUN_READ) {
      exp.c.storeReadv++;
      exp.store.read(this.lba[o[s]!]!, bufs, e - s, r);
    } else {
      exp.groupRemaining++;
      exp.c.storeWritev++;
      exp.store.write(this.lba[o[s]!]!, bufs, e - s, r, link);
    }
  }

  private complete(r: number, result: number): void {
    if (r < 0 || r >= this.runKind.length || this.runKind[r] === 0) {
      this.s.strayCompletions++;
      return;
    }
    const kind = this.runKind[r]!;
    const exp = this.runExp[r]!;
    const ok = kind === RUN_SYNC ? result === 0 : result === this.runBytes[r];
    const first = this.runFirst[r]!;
    this.releaseRun(r);
    if (!ok) exp.c.storeErrors++;
    if (kind === RUN_READ) {
      for (let p = first; p !== NONE; ) {
        const next = this.rNext[p]!;
        if (ok) this.reply(p, STATUS_OK, 0, true);
        else this.reply(p, STATUS_ERR, AtaErrorBit.UNC, false);
        this.release(p);
        p = next;
      }
      return;
    }
    if (!ok) {
      if (kind === RUN_SYNC) exp.groupFailed = true;
      for (let p = first; p !== NONE; p = this.rNext[p]!) {
        this.status[p] = STATUS_FAULT;
        this.error[p] = AtaErrorBit.ABRT;
      }
    }
    if (--exp.groupRemaining === 0) this.finishGroup(exp);
  }

  /** Every reply of the group, in arrival order; then the next group, if requests queued meanwhile. */
  private finishGroup(exp: ExportRuntime): void {
    for (let p = exp.gHead; p !== NONE; ) {
      const next = this.qNext[p]!;
      if (exp.groupFailed) this.reply(p, STATUS_FAULT, AtaErrorBit.ABRT, false);
      else this.reply(p, this.status[p]!, this.error[p]!, false);
      this.release(p);
      p = next;
    }
    exp.gHead = NONE;
    exp.groupInFlight = false;
    if (exp.qHead !== NONE) this.startGroup(exp);
  }

  // ---- replies -------------------------------------------------------------------------------

  /** The reply to pending request p, built from its saved header in its link's next transmit slot. */
  private reply(p: number, status: number, error: number, withData: boolean): void {
    const exp = this.exp[p]!;
    const link = this.links.get(this.linkOf[p]!);
    const sink = link?.sink;
    if (link === undefined || sink === undefined) {
      this.s.replyLost++;
      return;
    }
    const n = this.count[p]!;
    const bytes = withData ? n * SECTOR_SIZE : 0;
    let slot: Buffer;
    try {
      slot = sink.txSlot();
    } catch {
      this.s.replyLost++;
      return;
    }
    // The link's MTU may have shrunk since the request came: answer without data then.
    const fits = ATA_HEADER_END + bytes <= Math.min(slot.length, link.mtu + 14);
    if (!fits) {
      status = STATUS_ERR;
      error = AtaErrorBit.ABRT;
    }
    const h = this.hdr;
    const base = p * ATA_HEADER_END;
    for (let i = 0; i < ATA_HEADER_END; i++) slot[i] = h[base + i]!;
    writeResponseHeader(slot, link.mac, exp.shelf, exp.slot, 0);
    writeAtaStatus(slot, status, error);
    let len = ATA_HEADER_END;
    if (status === STATUS_OK) {
      if (withData && fits) {
        slot.set(this.stageView(p, n), ATA_DATA_OFFSET);
        len += bytes;
        exp.c.reads++;
        exp.c.bytesRead += bytes;
        this.ini[p]!.bytesRead += bytes;
      } else if (this.kind[p] === OP_WRITE) {
        const w = n * SECTOR_SIZE;
        exp.c.writes++;
        exp.c.bytesWritten += w;
        this.ini[p]!.bytesWritten += w;
      }
    } else exp.c.ataErrors++;
    try {
      sendReply(link, sink, slot, len);
    } catch {
      this.s.replyLost++;
      return;
    }
    // Whole µs as a small integer: a fractional number passed to record() would be boxed (allocated).
    const dt = (this.at[1]! - this.recvAt[p]!) * 1000;
    const us = dt < SERVICE_TIME_LIMIT_US ? (dt > 0 ? dt | 0 : 0) : SERVICE_TIME_LIMIT_US;
    exp.c.service.record(us);
    this.ini[p]!.service.record(us);
    if (link.dirtyGen !== this.dirtyGen) {
      link.dirtyGen = this.dirtyGen;
      if (this.nDirty === this.dirty.length) this.dirty.push(link);
      else this.dirty[this.nDirty] = link;
      this.nDirty++;
    }
  }

  private flushDirty(): void {
    const n = this.nDirty;
    this.nDirty = 0;
    this.dirtyGen++;
    for (let i = 0; i < n; i++) {
      const link = this.dirty[i]!;
      this.dirty[i] = null as unknown as LinkState;
      try {
        link.sink?.flush?.();
      } catch {
        this.s.replyLost++;
      }
    }
  }

  // ---- tables --------------------------------------------------------------------------------

  /** An export starts to be served: it gets its share of the staging pool (the others' shrink). */
  join(exp: ExportRuntime): void {
    if (exp.poolMember) return;
    exp.poolMember = true;
    this.members.push(exp);
    this.reshare();
  }

  /** An export is retired: its requests in flight still complete, its share goes to the others. */
  leave(exp: ExportRuntime): void {
    if (!exp.poolMember) return;
    exp.poolMember = false;
    this.members.splice(this.members.indexOf(exp), 1);
    this.reshare();
  }

  private reshare(): void {
    const n = this.members.length;
    this.share = n === 0 ? 0 : Math.min(MAX_SHARE, Math.floor(this.slots / (2 * n)));
    let unused = 0;
    for (const e of this.members) unused += Math.max(0, this.shareOf(e) - e.outstanding);
    this.unusedShares = unused;
  }

  /** An export's share, never more than it may queue: slots it could not use stay free for others. */
  private shareOf(exp: ExportRuntime): number {
    return Math.min(this.share, exp.queueLimit);
  }

  private release(p: number): void {
    const exp = this.exp[p]!;
    exp.outstanding--;
    if (exp.poolMember && exp.outstanding < this.shareOf(exp)) this.unusedShares++;
    this.exp[p] = null;
    this.ini[p] = null;
    this.free[this.nFree++] = p;
  }

  private newRun(kind: number, exp: ExportRuntime, first: number, bytes: number): number {
    if (this.nRunFree === 0) this.growRuns(this.runKind.length * 2);
    const r = this.runFree[--this.nRunFree]!;
    this.runKind[r] = kind;
    this.runExp[r] = exp;
    this.runFirst[r] = first;
    this.runBytes[r] = bytes;
    return r;
  }

  private releaseRun(r: number): void {
    this.runKind[r] = 0;
    this.runExp[r] = null;
    this.runFree[this.nRunFree++] = r;
  }

  private growRuns(cap: number): void {
    const old = this.runKind.length;
    const kind = new Uint8Array(cap);
    kind.set(this.runKind);
    const first = new Int32Array(cap);
    first.set(this.runFirst);
    const bytes = new Float64Array(cap);
    bytes.set(this.runBytes);
    const free = new Int32Array(cap);
    free.set(this.runFree.subarray(0, this.nRunFree));
    for (let r = cap - 1; r >= old; r--) free[this.nRunFree++] = r;
    this.runKind = kind;
    this.runFirst = first;
    this.runBytes = bytes;
    this.runFree = free;
    while (this.runExp.length < cap) this.runExp.push(null);
  }

  private compactCompletions(): void {
    const live = this.cqTail - this.cqHead;
    if (this.cqHead > 0 && live < this.cqToken.length / 2) {
      this.cqToken.copyWithin(0, this.cqHead, this.cqTail);
      this.cqResult.copyWithin(0, this.cqHead, this.cqTail);
    } else {
      const t = new Int32Array(this.cqToken.length * 2);
      const r = new Int32Array(this.cqToken.length * 2);
      t.set(this.cqToken.subarray(this.cqHead, this.cqTail));
      r.set(this.cqResult.subarray(this.cqHead, this.cqTail));
      this.cqToken = t;
      this.cqResult = r;
    }
    this.cqHead = 0;
    this.cqTail = live;
  }

  /** staging[p × STRIDE, + sectors × 512), cached. */
  private stageView(p: number, sectors: number): Buffer {
    const row = this.stageViews[p]!;
    let v = row[sectors];
    if (v === undefined) {
      const off = p * STAGING_STRIDE;
      v = this.staging.subarray(off, off + sectors * SECTOR_SIZE);
      row[sectors] = v;
    }
    return v;
  }

  /** Stable insertion sort of order[0..n) by export, then LBA (batches are small and mostly sorted). */
  private sortByLba(n: number): void {
    const o = this.order;
    for (let j = 1; j < n; j++) {
      const k = o[j]!;
      const ek = this.exp[k]!.ordinal;
      const lk = this.lba[k]!;
      let q = j - 1;
      while (q >= 0) {
        const m = o[q]!;
        const em = this.exp[m]!.ordinal;
        if (em < ek || (em === ek && this.lba[m]! <= lk)) break;
        o[q + 1] = m;
        q--;
      }
      o[q + 1] = k;
    }
  }

  /** Two writes of order[0..n) (sorted, one export) overlap. */
  private overlaps(n: number): boolean {
    const o = this.order;
    for (let j = 1; j < n; j++) {
      const a = o[j - 1]!;
      if (this.lba[o[j]!]! < this.lba[a]! + this.count[a]!) return true;
    }
    return false;
  }
}
