/**
 * A peer as one more link of the built-in target's engine: requests that arrived from the peer
 * in one UDP receive batch are handed to the engine as one frame batch (one group commit, one
 * coalescing pass), and every reply frame the engine writes becomes an AOE_RESPONSE record.
 *
 * Frames are rebuilt as Ethernet frames the engine already understands: destination this link's
 * (virtual, locally administered) MAC, source the initiator's MAC from the record. The engine then
 * sees the same initiator identity a local link would show it.
 */
import { ETH_HEADER_SIZE } from '../aoe/constants.js';
import {
  type BatchHandler,
  emptyLinkStats,
  type FrameLink,
  type LinkStateHandler,
  type LinkStats,
} from '../io/frame-link.js';
import { writeFrame } from './pdu.js';
import { RECORD_AOE_RESPONSE } from './peer-messages.js';
import type { PeerPort } from './peer-port.js';

export class TunnelPeerLink implements FrameLink {
  readonly name: string;
  readonly mac: Buffer;
  readonly mtu: number;
  readonly maxFrame: number;
  private readonly batch: number;
  private readonly rx: Buffer[];
  private readonly rxLen: Int32Array;
  private nRx = 0;
  private readonly tx: Buffer[];
  private txCursor = 0;
  private handler: BatchHandler | undefined;
  private errorHandler: (err: Error) => void = () => {};
  private paused = false;
  private closed = false;
  private readonly s: LinkStats = emptyLinkStats();

  /**
   * `mtu`: the largest PDU a record carries each way (the Ethernet payload the engine may fill).
   * `ordinal` makes the virtual MAC unique per peer.
   */
  constructor(
    private port: PeerPort,
    ordinal: number,
    mtu: number,
    batch = 64,
  ) {
    this.name = `peer:${port.name}`;
    this.mac = Buffer.from([
      0x02,
      0xa0,
      0xe0,
      (ordinal >>> 16) & 0xff,
      (ordinal >>> 8) & 0xff,
      ordinal & 0xff,
    ]);
    this.mtu = mtu;
    this.maxFrame = mtu + ETH_HEADER_SIZE;
    this.batch = batch;
    this.rx = Array.from({ length: batch }, () => Buffer.alloc(this.maxFrame));
    this.rxLen = new Int32Array(batch);
    this.tx = Array.from({ length: batch }, () => Buffer.alloc(this.maxFrame));
  }

  /** Replies go to `port` from now on (the export side's completion port: tags, reply cache). */
  setPort(port: PeerPort): void {
    this.port = port;
  }

  /** The peer's name (its PeerPort's). */
  get peerName(): string {
    return this.port.name;
  }

  /** Adds one request from the peer to the current batch (delivering a full batch first). */
  push(initiatorMac: Uint8Array, macOff: number, pdu: Uint8Array, pduOff: number, pduLen: number): boolean {
    if (this.closed || ETH_HEADER_SIZE + pduLen > this.maxFrame) {
      this.s.rxTruncated++;
      return false;
    }
    if (this.nRx === this.batch) this.deliver();
    const f = this.rx[this.nRx]!;
    this.rxLen[this.nRx++] = writeFrame(f, this.mac, 0, initiatorMac, macOff, pdu, pduOff, pduLen);
    return true;
  }

  /** Hands the collected requests to the engine as one batch (end of a UDP receive batch). */
  deliver(): void {
    const n = this.nRx;
    if (n === 0) return;
    this.nRx = 0;
    if (!this.handler || this.paused || this.closed) {
      this.s.kernelDrops += n;
      return;
    }
    this.s.rxFrames += n;
    this.s.rxBatches++;
    try {
      this.handler(this.rx, this.rxLen, n);
    } catch (e) {
      this.s.handlerErrors++;
      this.errorHandler(e instanceof Error ? e : new Error(String(e)));
    }
  }

  onBatch(handler: BatchHandler): void {
    this.handler = handler;
  }

  onError(handler: (err: Error) => void): void {
    this.errorHandler = handler;
  }

  /** A peer link has no interface to lose: reachability is the import side's business (adverts). */
  readonly state = 'up' as const;

  onLinkState(_handler: LinkStateHandler): () => void {
    return () => {};
  }

  txSlot(): Buffer {
    return this.tx[this.txCursor]!;
  }

  /** The reply in the current slot becomes a record now (the tunnel copies it). */
  txCommit(length: number): void {
    const f = this.tx[this.txCursor]!;
    this.txCursor = (this.txCursor + 1) % this.batch;
    // Announcements (broadcast config responses) are for local segments; peers get adverts.
    if ((f[0]! & 1) === 1) return;
    if (length <= ETH_HEADER_SIZE || this.closed) {
      this.s.txErrors++;
      return;
    }
    if (this.port.send(RECORD_AOE_RESPONSE, f, ETH_HEADER_SIZE, length - ETH_HEADER_SIZE)) this.s.txFrames++;
    else this.s.txDropped++;
  }

  send(frame: Uint8Array, length = frame.length): void {
    const slot = this.txSlot();
    slot.set(frame.subarray(0, length));
    this.txCommit(length);
  }

  /** Records leave with the tunnel's flush at the end of the batch. */
  flush(): number {
    return 0;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  stats(): LinkStats {
    return { ...this.s };
  }

  close(): void {
    this.closed = true;
    this.nRx = 0;
  }
}
