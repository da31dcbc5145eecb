/**
 * Fixtures for the gateway sides without sockets: a PeerPort pipe that delivers records to the
 * other gateway asynchronously (copied, one receive batch per event-loop turn, like a UDP
 * receive batch), links on in-memory segments, and a TargetEngine served on a FrameLink.
 */
import { type AoeMessage, decodeFrame } from '../../../src/aoe/index.js';
import { REQUEST, type TargetAdvert, writeU64Number } from '../../../src/gateway/peer-messages.js';
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

  /** Nudges received (requests going unanswered). */
  nudges = 0;
  /** When the far side was last heard from (the tests' clock); +Infinity = always. */
  heardAt = Number.POSITIVE_INFINITY;

  connected(_now: number): boolean {
    return this.up;
  }

  reachable(_now: number): boolean {
    return this.up;
  }

  lastHeardAt(): number {
    return this.heardAt;
  }

  nudge(_now: number): void {
    this.nudges++;
  }

  send(type: number, buf: Uint8Array, off: number, len: number): boolean {
    if (!this.accept) return false;
    const rec = { type, bytes: Buffer.from(buf.subarray(off, off + len)) };
    this.sent.push(rec);
    if (this.receiver) {
      const copy = { type, bytes: Buffer.from(rec.bytes) };
      const fate = this.fault?.(copy) ?? 'pass';
      if (fate === 'drop') return true;
      if (fate === 'hold') {
        this.held.push(copy);
        return true;
      }
      if (typeof fate === 'number') {
        this.deliverLater(copy, fate);
        return true;
      }
      if (fate === 'dup') this.deliverLater({ type, bytes: Buffer.from(rec.bytes) }, 0);
      this.queue.push(copy);
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

  /**
   * Decides each record's fate before it is queued for delivery (tests of loss, duplication and
   * delay): 'pass', 'drop', 'dup' (delivered twice), 'hold' (kept in `held` until released), or a
   * delay in ms (delivered later, on its own).
   */
  fault: ((rec: SentRecord) => 'pass' | 'drop' | 'dup' | 'hold' | number) | null = null;
  readonly held: SentRecord[] = [];

  /** Delivers held record `i` (removing it), as a batch of one. */
  release(i = 0): void {
    const [r] = this.held.splice(i, 1);
    if (r) this.deliverLater(r, 0);
  }

  private deliverLater(r: SentRecord, delayMs: number): void {
    setTimeout(() => {
      this.receiver?.(r.type, r.bytes, 0, r.bytes.length);
      this.onBatchEnd?.();
    }, delayMs);
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

let autoSeq = 1;

/**
 * An AOE_REQUEST record: [epoch][seq][fence][initiator MAC][the PDU of `frame`]. Without `seq`
 * each call numbers a new request (epoch 1, fence 0).
 */
export function requestRecord(
  initiatorMac: Buffer,
  frame: Buffer,
  o: { epoch?: number; seq?: number; fence?: number } = {},
): Buffer {
  const head = Buffer.alloc(REQUEST.MAC);
  head.writeUInt32BE(o.epoch ?? 1, REQUEST.EPOCH);
  writeU64Number(head, REQUEST.SEQ, o.seq ?? autoSeq++);
  writeU64Number(head, REQUEST.FENCE, o.fence ?? 0);
  return Buffer.concat([head, initiatorMac, frame.subarray(14)]);
}

/** What a daemon advertises for the engine's export e{shelf}.{slot} (as Gateway.advertsFor does). */
export function advertOf(engine: TargetEngine, shelf: number, slot: number, name = ''): TargetAdvert {
  const info = engine.exportInfo(`e${shelf}.${slot}`)!;
  return {
    shelf,
    slot,
    bufferCount: info.bufferCount,
    sectors: BigInt(info.sectors),
    configString: info.config,
    maxSectors: info.maxSectors,
    name,
    readOnly: false,
    firmware: info.firmwareVersion,
  };
}
