/**
 * What PacketLink and TapLink share beyond the arenas: Ethernet-frame receive handlers and the
 * copying send. Each subclass only knows how to open its kind of file descriptor.
 */
import { AoegwError } from '../errors.js';
import { BatchedLink } from './batched-link.js';
import type { BatchHandler, FrameLink } from './frame-link.js';

export abstract class BatchedFrameLink extends BatchedLink implements FrameLink {
  abstract readonly name: string;
  abstract readonly mac: Buffer;
  abstract readonly mtu: number;
  abstract readonly maxFrame: number;
  private handler: BatchHandler | undefined;

  onBatch(handler: BatchHandler): void {
    this.handler = handler;
    this.startReceiving((count) => this.handler?.(this.rxViews, this.rxLen, count));
  }

  resume(): void {
    if (this.handler) this.onBatch(this.handler);
  }

  send(frame: Uint8Array, length = frame.length): void {
    if (length > this.maxFrame) {
      throw new AoegwError(
        'ERR_FRAME_TOO_LARGE',
        `frame of ${length} bytes exceeds ${this.name}'s ${this.maxFrame}`,
      );
    }
    const slot = this.txSlot();
    slot.set(length === frame.length ? frame : frame.subarray(0, length));
    this.txCommit(length);
  }
}
