/**
 * The one interface every layer uses to move Ethernet frames: native AF_PACKET sockets, TAP
 * devices and the in-memory fake all implement it.
 *
 * Receive: the handler is called once per batch with preallocated full-slot views and a lengths
 * array. A length <= 0 marks a slot whose frame was truncated (counted in stats): skip it.
 * Views are only valid during the call; copy what must outlive it.
 *
 * Transmit, zero-copy: `const buf = link.txSlot(); const n = encode(buf, ...); link.txCommit(n);`
 * Committed frames go out together in one sendmmsg: when the arena fills, on `flush()`, or at the
 * end of the current microtask checkpoint (so replies to one receive batch leave as one batch).
 */
export type BatchHandler = (frames: readonly Buffer[], lengths: Int32Array, count: number) => void;

export interface LinkStats {
  rxFrames: number;
  rxBatches: number;
  rxTruncated: number;
  rxErrors: number;
  txFrames: number;
  txBatches: number;
  txDropped: number;
  txErrors: number;
  kernelDrops: number;
  handlerErrors: number;
}

export interface FrameLink {
  readonly name: string;
  readonly mac: Buffer;
  readonly mtu: number;
  /** Largest frame this link carries: MTU + 14-byte Ethernet header. */
  readonly maxFrame: number;
  onBatch(handler: BatchHandler): void;
  onError(handler: (err: Error) => void): void;
  txSlot(): Buffer;
  txCommit(length: number): void;
  /** Up to n consecutive uncommitted slots addressable via txSlotAt (see BatchedLink). */
  txReserve(n: number): number;
  txSlotAt(k: number): Buffer;
  /** Copies one frame into the next slot and commits it. */
  send(frame: Uint8Array, length?: number): void;
  flush(): number;
  pause(): void;
  resume(): void;
  stats(): LinkStats;
  close(): void;
}
