/**
 * Windowed ATA I/O to one AoE target — the initiator's protocol core. No sockets and no timers:
 * frames go into a FrameSink, replies come in through onReply(), time comes from the caller
 * (tick(now)), so the whole retransmission logic is unit-testable with a fake clock.
 *
 * Behaviour modelled on what the Linux driver does, because targets are built for it:
 * - an I/O is split into frames of at most `sectorsPerFrame` sectors;
 * - at most `window` frames are outstanding (never more than the target's buffer count);
 * - a frame that times out is sent again with a NEW tag (a late reply to the old tag is then
 *   recognised as stale instead of being taken for the retransmit's);
 * - tags keep bit 31 clear; a reply is matched by shelf/slot and tag, never by source MAC.
 *
 * Hot path: slot state lives in preallocated typed arrays, and the header/ATA views are reused,
 * so sending and receiving frames allocates nothing (one object per I/O, not per frame).
 */
import { AtaArg, decodeAta, encodeAtaRequest } from '../aoe/ata.js';
import { AtaFlag, AtaOp, AtaStatus, Command, SECTOR_SIZE } from '../aoe/constants.js';
import type { AoeHeader } from '../aoe/header.js';
import { AoegwError } from '../errors.js';
import { RttEstimator } from './rtt-estimator.js';

export interface FrameSink {
  txSlot(): Buffer;
  txCommit(length: number): void;
}

export interface TargetClientOptions {
  major: number;
  minor: number;
  /** MAC the target answered from (unicast destination of our requests). */
  targetMac: Buffer;
  ownMac: Buffer;
  /** Max sectors per frame: min(target's sector count, (our MTU - 36) / 512). */
  sectorsPerFrame: number;
  /** Max outstanding frames; clamp to the target's buffer count. */
  window: number;
  /** Use 48-bit commands (READ/WRITE SECTORS EXT). Default true. */
  lba48?: boolean;
  /** Initial retransmission timeout (ms). Linux starts at 250 ms. */
  initialRtoMs?: number;
  minRtoMs?: number;
  maxRtoMs?: number;
  /** Give up on an I/O after this long without an answer (ms). */
  giveUpMs?: number;
}

export type IoCallback = (err: AoegwError | null, io: Io) => void;

/** One submitted I/O (read, write or no-data command). */
export class Io {
  framesLeft = 0;
  nextSector = 0; // next sector (relative) not yet put into a frame
  error: AoegwError | null = null;
  submittedAt = 0;
  /** Status/error/sector-count of the last reply (IDENTIFY, CHECK POWER MODE callers read these). */
  status = 0;
  ataError = 0;
  replySectorCount = 0;
  constructor(
    readonly op: number,
    readonly lba: number,
    readonly sectors: number,
    readonly buf: Uint8Array | null,
    readonly bufOff: number,
    readonly write: boolean,
    readonly cb: IoCallback,
  ) {}
}

export interface ClientStats {
  framesSent: number;
  retransmits: number;
  staleReplies: number;
  badReplies: number;
  ataErrors: number;
  aoeErrors: number;
  timeouts: number;
  iosCompleted: number;
}

const MAX_WINDOW = 1024;

export class TargetClient {
  readonly major: number;
  readonly minor: number;
  readonly targetMac: Buffer;
  readonly sectorsPerFrame: number;
  readonly window: number;
  readonly stats: ClientStats = {
    framesSent: 0,
    retransmits: 0,
    staleReplies: 0,
    badReplies: 0,
    ataErrors: 0,
    aoeErrors: 0,
    timeouts: 0,
    iosCompleted: 0,
  };
  private readonly lba48: boolean;
  private readonly ownMac: Buffer;
  private readonly rtt: RttEstimator;
  private readonly giveUp: number;
  // Per-slot state of outstanding frames.
  private readonly slotTag: Uint32Array;
  private readonly slotIo: (Io | null)[];
  private readonly slotSector: Float64Array; // sector offset within the I/O
  private readonly slotCount: Uint16Array;
  private readonly slotSentAt: Float64Array;
  private readonly slotFirstSentAt: Float64Array;
  private readonly slotRetries: Uint8Array;
  private readonly freeSlots: Int32Array;
  private freeTop: number;
  private tagGen = 1;
  private closed = false;
  private readonly queue: Io[] = [];
  private queueHead = 0;
  private readonly ata = new AtaArg();
  private readonly hdr = {
    dst: Buffer.alloc(6),
    src: Buffer.alloc(6),
    flags: 0,
    error: 0,
    major: 0,
    minor: 0,
    command: Command.ATA,
    tag: 0,
  };
  private readonly ataOut = { aflags: 0, errFeature: 0, sectorCount: 0, cmdStatus: 0, lba: 0 };

  constructor(
    private readonly sink: FrameSink,
    opts: TargetClientOptions,
  ) {
    this.major = opts.major;
    this.minor = opts.minor;
    this.targetMac = Buffer.from(opts.targetMac);
    this.ownMac = Buffer.from(opts.ownMac);
    this.sectorsPerFrame = Math.max(1, Math.min(255, opts.sectorsPerFrame));
    this.window = Math.max(1, Math.min(MAX_WINDOW, opts.window));
    this.lba48 = opts.lba48 ?? true;
    this.rtt = new RttEstimator({
      initialRtoMs: opts.initialRtoMs ?? 250,
      minRtoMs: opts.minRtoMs ?? 20,
      maxRtoMs: opts.maxRtoMs ?? 4000,
    });
    this.giveUp = opts.giveUpMs ?? 15_000;
    const w = this.window;
    this.slotTag = new Uint32Array(w);
    this.slotIo = new Array<Io | null>(w).fill(null);
    this.slotSector = new Float64Array(w);
    this.slotCount = new Uint16Array(w);
    this.slotSentAt = new Float64Array(w);
    this.slotFirstSentAt = new Float64Array(w);
    this.slotRetries = new Uint8Array(w);
    this.freeSlots = new Int32Array(w);
    for (let i = 0; i < w; i++) this.freeSlots[i] = w - 1 - i;
    this.freeTop = w;
    this.hdr.dst.set(this.targetMac);
    this.hdr.src.set(this.ownMac);
    this.hdr.major = this.major;
    this.hdr.minor = this.minor;
  }

  /** Frames in flight. */
  get outstanding(): number {
    return this.window - this.freeTop;
  }

  get pendingIos(): number {
    return this.queue.length - this.queueHead + this.outstanding;
  }

  get currentRtoMs(): number {
    return this.rtt.rtoMs();
  }

  read(lba: number, sectors: number, into: Uint8Array, off: number, now: number, cb: IoCallback): Io {
    const op = this.lba48 ? AtaOp.READ_SECTORS_EXT : AtaOp.READ_SECTORS;
    return this.submit(new Io(op, lba, sectors, into, off, false, cb), now);
  }

  write(lba: number, sectors: number, from: Uint8Array, off: number, now: number, cb: IoCallback): Io {
    const op = this.lba48 ? AtaOp.WRITE_SECTORS_EXT : AtaOp.WRITE_SECTORS;
    return this.submit(new Io(op, lba, sectors, from, off, true, cb), now);
  }

  /** A single-frame command (IDENTIFY into a 512-byte buffer, FLUSH CACHE, CHECK POWER MODE). */
  command(op: number, into: Uint8Array | null, now: number, cb: IoCallback): Io {
    const sectors = op === AtaOp.IDENTIFY_DEVICE ? 1 : 0;
    return this.submit(new Io(op, 0, sectors, into, 0, false, cb), now);
  }

  private submit(io: Io, now: number): Io {
    if (io.sectors < 0 || (io.buf && io.bufOff + io.sectors * SECTOR_SIZE > io.buf.length)) {
      throw new AoegwError('ERR_USAGE', `I/O of ${io.sectors} sectors does not fit its buffer`);
    }
    const isData = io.op !== AtaOp.IDENTIFY_DEVICE && io.sectors > 0;
    io.framesLeft = isData ? Math.ceil(io.sectors / this.sectorsPerFrame) : 1;
    io.submittedAt = now;
    this.queue.push(io);
    this.pump(now);
    return io;
  }

  /** Puts queued work into free window slots. */
  private pump(now: number): void {
    while (!this.closed && this.freeTop > 0 && this.queueHead < this.queue.length) {
      const io = this.queue[this.queueHead]!;
      const isData = io.op !== AtaOp.IDENTIFY_DEVICE && io.sectors > 0;
      const count = isData ? Math.min(this.sectorsPerFrame, io.sectors - io.nextSector) : io.sectors;
      const slot = this.freeSlots[--this.freeTop]!;
      this.slotIo[slot] = io;
      this.slotSector[slot] = io.nextSector;
      this.slotCount[slot] = count;
      this.slotRetries[slot] = 0;
      this.slotFirstSentAt[slot] = now;
      io.nextSector += count;
      if (!isData || io.nextSector >= io.sectors) {
        this.queueHead++;
        if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
          this.queue.splice(0, this.queueHead); // compact occasionally, not per I/O
          this.queueHead = 0;
        }
      }
      this.sendSlot(slot, now);
    }
  }

  private sendSlot(slot: number, now: number): void {
    const io = this.slotIo[slot]!;
    const count = this.slotCount[slot]!;
    const rel = this.slotSector[slot]!;
    // New tag per (re)transmission: generation in bits 16..30, slot in bits 0..15, bit 31 clear.
    this.tagGen = (this.tagGen + 1) & 0x7fff || 1;
    const tag = ((this.tagGen << 16) | slot) >>> 0;
    this.slotTag[slot] = tag;
    this.slotSentAt[slot] = now;
    this.hdr.tag = tag;
    const a = this.ataOut;
    const isRw = io.op !== AtaOp.IDENTIFY_DEVICE && io.sectors > 0;
    const lba = isRw ? io.lba + rel : 0;
    a.aflags = (isRw && this.lba48 ? AtaFlag.LBA48 : 0) | (io.write ? AtaFlag.WRITE : 0);
    a.errFeature = 0;
    a.sectorCount = count;
    a.cmdStatus = io.op;
    a.lba = lba;
    const out = this.sink.txSlot();
    const len = io.write
      ? encodeAtaRequest(out, this.hdr, a, io.buf, io.bufOff + rel * SECTOR_SIZE, count * SECTOR_SIZE)
      : encodeAtaRequest(out, this.hdr, a);
    this.sink.txCommit(len);
    this.stats.framesSent++;
  }

  /**
   * Handles an ATA reply whose common header `h` was decoded from `buf` (R set, our shelf/slot).
   * Returns false if the reply was not ours (stale tag, unknown slot) or malformed.
   */
  onReply(buf: Uint8Array, len: number, h: AoeHeader, now: number): boolean {
    const slot = h.tag & 0xffff;
    if (slot >= this.window || this.slotIo[slot] === null || this.slotTag[slot] !== h.tag >>> 0) {
      this.stats.staleReplies++;
      return false;
    }
    const io = this.slotIo[slot]!;
    const count = this.slotCount[slot]!;
    if (h.isError) {
      // The target refused at the AoE level (reserved, bad argument, ...): fail the I/O.
      this.stats.aoeErrors++;
      this.complete(
        slot,
        now,
        new AoegwError(
          'ERR_AOE_ERROR_REPLY',
          `target e${this.major}.${this.minor} answered AoE error ${h.error}`,
        ),
      );
      return true;
    }
    const ata = this.ata;
    if (decodeAta(buf, len, ata) !== 0) {
      this.stats.badReplies++;
      return false; // malformed: leave it to the retransmission timer
    }
    if ((ata.cmdStatus & (AtaStatus.BSY | AtaStatus.DF | AtaStatus.DRQ | AtaStatus.ERR)) !== 0) {
      this.stats.ataErrors++;
      io.status = ata.cmdStatus;
      io.ataError = ata.errFeature;
      this.complete(
        slot,
        now,
        new AoegwError(
          'ERR_ATA',
          `ATA command 0x${io.op.toString(16)} at LBA ${io.lba + this.slotSector[slot]!} failed: status 0x${ata.cmdStatus.toString(16)} error 0x${ata.errFeature.toString(16)}`,
        ),
      );
      return true;
    }
    const expectData = io.write ? 0 : count * SECTOR_SIZE;
    if (expectData > 0) {
      // Judge by the frame's length, not the reply's sector count: vblade answers with the count
      // it has left to do (0), and Linux likewise only looks at how much data arrived.
      if (len - ata.dataOffset < expectData) {
        this.stats.badReplies++;
        return false;
      }
      const dst = io.bufOff + this.slotSector[slot]! * SECTOR_SIZE;
      io.buf!.set(buf.subarray(ata.dataOffset, ata.dataOffset + expectData), dst);
    }
    io.status = ata.cmdStatus;
    io.ataError = ata.errFeature;
    io.replySectorCount = ata.sectorCount;
    // Karn's rule: only replies to frames sent once are samples.
    if (this.slotRetries[slot] === 0) this.rtt.sample(now - this.slotSentAt[slot]!);
    this.complete(slot, now, null);
    return true;
  }

  private complete(slot: number, now: number, err: AoegwError | null): void {
    const io = this.slotIo[slot]!;
    this.slotIo[slot] = null;
    this.slotTag[slot] = 0;
    this.freeSlots[this.freeTop++] = slot;
    if (err && !io.error) io.error = err;
    io.framesLeft--;
    if (io.framesLeft === 0 || (err && this.abandonRemaining(io))) {
      this.stats.iosCompleted++;
      io.cb(io.error, io);
    }
    this.pump(now);
  }

  /** After an error, frames of the same I/O not yet sent are dropped; returns true if none remain in flight. */
  private abandonRemaining(io: Io): boolean {
    if (io.nextSector < io.sectors && this.queue[this.queueHead] === io) {
      io.framesLeft -= Math.ceil((io.sectors - io.nextSector) / this.sectorsPerFrame);
      io.nextSector = io.sectors;
      this.queueHead++;
    }
    return io.framesLeft === 0;
  }

  /** Retransmits frames whose timer expired; fails I/Os past the give-up time. */
  tick(now: number): void {
    for (let slot = 0; slot < this.window; slot++) {
      const io = this.slotIo[slot];
      if (!io) continue;
      const retries = this.slotRetries[slot]!;
      if (now - this.slotFirstSentAt[slot]! >= this.giveUp) {
        this.stats.timeouts++;
        this.complete(
          slot,
          now,
          new AoegwError(
            'ERR_TIMEOUT',
            `no answer from e${this.major}.${this.minor} for ${Math.round(now - this.slotFirstSentAt[slot]!)} ms`,
          ),
        );
        continue;
      }
      const timeout = this.rtt.rtoMs(retries + 1);
      if (now - this.slotSentAt[slot]! < timeout) continue;
      this.slotRetries[slot] = Math.min(255, retries + 1);
      this.stats.retransmits++;
      this.sendSlot(slot, now);
    }
  }

  /** Fails everything pending (used when closing). */
  abortAll(reason: AoegwError): void {
    this.closed = true;
    for (let slot = 0; slot < this.window; slot++) if (this.slotIo[slot]) this.complete(slot, 0, reason);
    while (this.queueHead < this.queue.length) {
      const io = this.queue[this.queueHead++]!;
      io.error ??= reason;
      io.cb(io.error, io);
    }
    this.queue.length = 0;
    this.queueHead = 0;
  }
}
