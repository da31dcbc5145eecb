/**
 * Where the engine writes replies, and cached views of frames' ATA data areas.
 */
import { ATA_DATA_OFFSET, SECTOR_SIZE } from '../aoe/constants.js';

/**
 * Transmit side of a link, as FrameLink provides it: `txSlot()` returns the next free slot (the
 * same one until it is committed), `txCommit(len)` queues it.
 *
 * Optional zero-copy extension for coalesced reads. With only txSlot/txCommit one reply can be
 * under construction at a time, so a read group spanning several reply frames is read into the
 * engine's scratch frames and copied (one memcpy per frame). A sink that can expose several
 * uncommitted slots at once lets the engine read one group straight into the reply frames:
 * - `txReserve(n)`: make up to n consecutive uncommitted slots addressable (flushing committed
 *   frames first if fewer remain) and return how many are (>= 1; fewer than n when n exceeds the
 *   arena). Committing them in order must not transmit any of them early.
 * - `txSlotAt(k)`: the k-th uncommitted slot, k < the last txReserve() result; txSlotAt(0) is
 *   txSlot(). The engine then calls txCommit once per slot, in order.
 * For BatchedLink that is: `txReserve(n) { if (batch - pending < min(n, batch)) flush();
 * return min(n, batch - pending) }` and `txSlotAt(k) { return txViews[pending + k] }`.
 */
export interface TxSink {
  txSlot(): Buffer;
  txCommit(length: number): void;
  txReserve?(n: number): number;
  txSlotAt?(k: number): Buffer;
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
