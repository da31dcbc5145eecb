/**
 * Where the engine writes replies, and cached views of frames' ATA data areas.
 */
import { ATA_DATA_OFFSET, SECTOR_SIZE } from '../aoe/constants.js';

/**
 * Transmit side of a link, as FrameLink provides it: `txSlot()` returns the next free slot (the
 * same one until it is committed), `txCommit(len)` queues it. Replies are built in place in the
 * slot; a read's data is copied in from its staging slot when the store completed (data-path.ts).
 */
export interface TxSink {
  txSlot(): Buffer;
  txCommit(length: number): void;
  /** Sends what is committed (replies completed outside the link's own receive batch). */
  flush?(): unknown;
}

/**
 * Views of frame[36, 36 + n × 512), cached per (frame buffer, n): frames are preallocated arena
 * slots that the links reuse, so after warm-up a lookup allocates nothing.
 */
export class DataViews {
  private readonly data = new WeakMap<Uint8Array, (Buffer | undefined)[]>();
  private readonly whole = new WeakMap<Uint8Array, (Buffer | undefined)[]>();

  /** frame[36, 36 + sectors × 512). */
  get(frame: Buffer, sectors: number): Buffer {
    return view(this.data, frame, sectors, ATA_DATA_OFFSET);
  }

  /** frame[0, 36 + sectors × 512): a whole ATA frame with that much data. */
  frame(frame: Buffer, sectors: number): Buffer {
    return view(this.whole, frame, sectors, 0);
  }
}

function view(
  cache: WeakMap<Uint8Array, (Buffer | undefined)[]>,
  frame: Buffer,
  sectors: number,
  start: number,
): Buffer {
  let row = cache.get(frame);
  if (row === undefined) {
    row = [];
    cache.set(frame, row);
  }
  let v = row[sectors];
  if (v === undefined) {
    v = frame.subarray(start, ATA_DATA_OFFSET + sectors * SECTOR_SIZE);
    row[sectors] = v;
  }
  return v;
}
