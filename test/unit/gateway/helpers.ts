/**
 * Fixtures for the gateway sides without sockets: a PeerPort pipe that delivers records to the
 * other gateway asynchronously (copied, one receive batch per event-loop turn, like a UDP
 * receive batch), links on in-memory segments, and a TargetEngine served on a FrameLink.
 */
import { type AoeMessage, decodeFrame } from '../../../src/aoe/index.js';
import type { PeerPort } from '../../../src/gateway/peer-port.js';
import type { FrameLink } from '../../../src/io/frame-link.js';
import { TargetEngine } from '../../../src/target/engine.js';
import type { ExportOptions } from '../../../src/target/export-state.js';

export interface SentRecord {
  type: number;
  bytes: Buffer;
}

export type RecordSink = (type: number, buf: Uint8Array, off: number, len: number) => void;

/**
 * One direction of a tunnel between two gateways. Every record sent is copied and logged; when a
 * receiver is attached, the records sent during one turn are delivered together on the next
 * (setImmediate), then `onBatchEnd` runs, as the daemon's endBatch after a UDP receive batch.
 */
export class PipePort implements PeerPort {
  up = true;
  /** When false, send() refuses (no session, queue full). */
  accept = true;
  readonly sent: SentRecord[] = [];
  private receiver: RecordSink | null = null;
  private onBatchEnd: (() => void) | null = null;
  private queue: SentRecord[] = [];
  private scheduled = false;

  constructor(readonly name: string) {}

  connected(_now: number): boolean {
    return this.up;
  }

  send(type: number, buf: Uint8Array, off: number, len: number): boolean {
    if (!this.accept) return false;
    const rec = { type, bytes: Buffer.from(buf.subarray(off, off + len)) };
    this.sent.push(rec);
    if (this.receiver) {
      this.queue.push({ type, bytes: Buffer.from(rec.bytes) });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    }
    return true;
  }

  /** Attaches the far side: records go to `receiver`, then `batchEnd` after each batch. */
  connect(receiver: RecordSink, batchEnd?: () => void): void {
    this.receiver = receiver;
    this.onBatchEnd = batchEnd ?? null;
  }

  /** Takes (and forgets) what was sent so far. */
  take(): SentRecord[] {
    return this.sent.splice(0);
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (const r of batch) this.receiver?.(r.type, r.bytes, 0, r.bytes.length);
    this.onBatchEnd?.();
  }
}

/** Serves `engine` on `link` as engine link `id` (what TargetServer does per link). */
export function serveEngine(
  engine: TargetEngine,
  id: number,
  link: FrameLink,
  now: () => number = () => 0,
): void {
  engine.addLink(id, { mac: link.mac, mtu: link.mtu, name: link.name });
  link.onBatch((frames, lens, n) => engine.handleBatch(id, frames, lens, n, link, now()));
}

export function engineWith(...exports: ExportOptions[]): TargetEngine {
  const e = new TargetEngine();
  for (const x of exports) e.addExport(x);
  return e;
}

/** Collects every frame a link receives (copied). */
export function capture(link: FrameLink): Buffer[] {
  const got: Buffer[] = [];
  link.onBatch((frames, lens, n) => {
    for (let i = 0; i < n; i++) got.push(Buffer.from(frames[i]!.subarray(0, lens[i]!)));
  });
  return got;
}

export function decode(frame: Uint8Array): AoeMessage {
  const r = decodeFrame(frame);
  if (!r.ok) throw r.error;
  return r.value;
}

/** Lets setImmediate/microtask deliveries run (FakeLink and PipePort are asynchronous). */
export async function settle(turns = 6): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

/** An AOE_REQUEST record: [initiator MAC][the PDU of `frame`]. */
export function requestRecord(initiatorMac: Buffer, frame: Buffer): Buffer {
  return Buffer.concat([initiatorMac, frame.subarray(14)]);
}
