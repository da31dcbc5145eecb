/**
 * Shared fixtures for the target engine tests: frame builders over the codec's encodeFrame, a
 * recording transmit sink and a one-call batch runner.
 */
import { expect } from 'vitest';
import {
  type AoeMessage,
  type AtaMessage,
  decodeFrame,
  encodeFrame,
  formatMac,
  type MacMaskMessage,
  type QueryConfigMessage,
  type ReserveMessage,
} from '../../../src/aoe/index.js';
import type { BlockStore, StoreDone } from '../../../src/target/block-store.js';
import { TargetEngine, type TargetEngineOptions } from '../../../src/target/engine.js';
import type { ExportOptions, PersistentExportState } from '../../../src/target/export-state.js';
import { MemoryStore, type MemoryStoreOptions } from '../../../src/target/memory-store.js';
import type { TxSink } from '../../../src/target/tx-sink.js';
import { sampleUntilUnder } from '../../helpers/heap-sampling.js';

export const TARGET_MAC = '02:00:00:00:00:aa';
export const INI_MAC = '52:54:00:00:00:01';
export const INI2_MAC = '52:54:00:00:00:02';
export const BCAST = 'ff:ff:ff:ff:ff:ff';
export const LINK = 1;

export function mac(s: string): Buffer {
  return Buffer.from(s.split(':').map((x) => Number.parseInt(x, 16)));
}

/** Deterministic sector content: byte j of sector s. */
export function pattern(sectors: number, seed = 1): Buffer {
  const b = Buffer.alloc(sectors * 512);
  for (let s = 0; s < sectors; s++) {
    for (let j = 0; j < 512; j++) b[s * 512 + j] = (s * 7 + j * 13 + seed) & 0xff;
  }
  return b;
}

let nextTag = 1;
export function freshTag(): number {
  nextTag = (nextTag + 1) & 0x7fffffff || 1;
  return nextTag;
}

interface Addr {
  src?: string;
  dst?: string;
  major?: number;
  minor?: number;
  tag?: number;
}

function base(a: Addr) {
  return {
    dst: a.dst ?? TARGET_MAC,
    src: a.src ?? INI_MAC,
    response: false,
    errorFlag: false,
    error: 0,
    major: a.major ?? 1,
    minor: a.minor ?? 0,
    tag: a.tag ?? freshTag(),
  };
}

export interface AtaOpts extends Addr {
  op: number;
  lba?: number;
  count?: number;
  lba48?: boolean;
  write?: boolean;
  data?: Buffer;
}

export function ata(o: AtaOpts): Buffer {
  const write = o.write ?? (o.op === 0x30 || o.op === 0x34);
  const msg: AtaMessage = {
    ...base(o),
    command: 'ata',
    lba48: o.lba48 ?? (o.op === 0x24 || o.op === 0x34),
    device: false,
    async: false,
    write,
    errFeature: 0,
    sectorCount: o.count ?? (o.op === 0xec ? 1 : 0),
    cmdStatus: o.op,
    lba: o.lba ?? 0,
    data: o.data ?? (write ? Buffer.alloc((o.count ?? 0) * 512) : Buffer.alloc(0)),
  };
  return encodeFrame(msg);
}

export const read = (lba: number, count: number, a: Addr = {}) => ata({ op: 0x24, lba, count, ...a });
export const write = (lba: number, data: Buffer, a: Addr = {}) =>
  ata({ op: 0x34, lba, count: data.length / 512, data, ...a });

export function qc(o: Addr & { ccmd?: number; config?: string | Buffer; version?: number } = {}): Buffer {
  const msg: QueryConfigMessage = {
    ...base(o),
    command: 'query-config',
    bufferCount: 0,
    firmwareVersion: 0,
    sectorCount: 0,
    aoeVersion: o.version ?? 0,
    ccmd: o.ccmd ?? 0,
    config: typeof o.config === 'string' ? Buffer.from(o.config) : (o.config ?? Buffer.alloc(0)),
  };
  return encodeFrame(msg);
}

export function mask(o: Addr & { mcmd: number; directives?: { dcmd: number; mac: string }[] }): Buffer {
  const msg: MacMaskMessage = {
    ...base(o),
    command: 'mac-mask',
    mcmd: o.mcmd,
    merror: 0,
    directives: o.directives ?? [],
  };
  return encodeFrame(msg);
}

export function reserve(o: Addr & { rcmd: number; macs?: string[] }): Buffer {
  const msg: ReserveMessage = { ...base(o), command: 'reserve', rcmd: o.rcmd, macs: o.macs ?? [] };
  return encodeFrame(msg);
}

/**
 * Transmit sink over an arena of `slots` frames. Committed frames are copied out to `sent` at
 * once (and 'tx:<tag>' logged), so the arena only models which slots are addressable.
 */
export class RecordingSink implements TxSink {
  readonly sent: Buffer[] = [];
  private readonly arena: Buffer[];
  private pending = 0;
  private readonly log: string[] | undefined;

  constructor(opts: { slotSize?: number; slots?: number; log?: string[] } = {}) {
    this.log = opts.log;
    const size = opts.slotSize ?? 9014;
    this.arena = Array.from({ length: opts.slots ?? 64 }, () => Buffer.alloc(size, 0xee));
  }

  txSlot(): Buffer {
    if (this.pending === this.arena.length) this.pending = 0;
    return this.arena[this.pending]!;
  }

  txCommit(len: number): void {
    const slot = this.arena[this.pending]!;
    if (len < 60 || len > slot.length) throw new Error(`bad commit length ${len}`);
    const f = Buffer.from(slot.subarray(0, len));
    this.sent.push(f);
    this.log?.push(`tx:${f.readUInt32BE(20)}`);
    this.pending++;
    if (this.pending === this.arena.length) this.pending = 0;
  }

  /** Decoded replies (throws if one does not decode). */
  decoded(): AoeMessage[] {
    return this.sent.map((f) => {
      const r = decodeFrame(f);
      if (!r.ok) throw r.error;
      return r.value;
    });
  }

  take(): AoeMessage[] {
    const d = this.decoded();
    this.sent.length = 0;
    return d;
  }
}

export interface Setup {
  engine: TargetEngine;
  store: MemoryStore;
  sink: RecordingSink;
  changes: { key: string; state: PersistentExportState }[];
  log: string[];
  run(frames: Buffer[], opts?: { linkId?: number; sink?: TxSink; now?: number }): AoeMessage[];
}

export function setup(
  o: {
    sectors?: number;
    storeOpts?: MemoryStoreOptions;
    exp?: Partial<ExportOptions>;
    engine?: TargetEngineOptions;
    mtu?: number;
    slots?: number;
  } = {},
): Setup {
  const log: string[] = [];
  const store = new MemoryStore(pattern(o.sectors ?? 64), {
    onEvent: (op, lba, n) => log.push(op === 'sync' ? op : `${op}:${lba}+${n}`),
    ...o.storeOpts,
  });
  const changes: Setup['changes'] = [];
  const engine = new TargetEngine({
    onStateChange: (key, state) => changes.push({ key, state }),
    ...o.engine,
  });
  engine.addExport({ shelf: 1, slot: 0, store, ...o.exp });
  engine.addLink(LINK, { mac: mac(TARGET_MAC), mtu: o.mtu ?? 9000, name: 'test0' });
  const sink = new RecordingSink({ log, slots: o.slots ?? 64 });
  const s: Setup = {
    engine,
    store,
    sink,
    changes,
    log,
    run(frames, ro = {}) {
      runBatch(engine, frames, ro.sink ?? sink, ro.linkId ?? LINK, ro.now ?? 0);
      return sink.take();
    },
  };
  return s;
}

/** Copies frames into arena-like full-size buffers (as links deliver them) and runs one batch. */
export function runBatch(engine: TargetEngine, frames: Buffer[], sink: TxSink, linkId = LINK, now = 0): void {
  const slots = frames.map((f) => {
    const b = Buffer.alloc(Math.max(9014, f.length), 0xdd);
    f.copy(b);
    return b;
  });
  const lens = Int32Array.from(frames.map((f) => f.length));
  engine.handleBatch(linkId, slots, lens, frames.length, sink, now);
}

export function byTag(replies: AoeMessage[], tag: number): AoeMessage[] {
  return replies.filter((r) => r.tag === tag);
}

export function tagOf(frame: Buffer): number {
  return frame.readUInt32BE(20);
}

export { formatMac };

/** A store that keeps nothing and completes every operation at once (reads mark byte 0 with the LBA). */
export function nullStore(sectors = 1 << 20): BlockStore {
  let done: StoreDone = () => {};
  const bytes = (bufs: readonly Uint8Array[], count: number) => {
    let n = 0;
    for (let i = 0; i < count; i++) n += bufs[i]!.length;
    return n;
  };
  return {
    sectors,
    readOnly: false,
    syncsWrites: true,
    description: 'null',
    attach: (d) => {
      done = d;
    },
    read(lba, bufs, count, token) {
      for (let i = 0; i < count; i++) bufs[i]![0] = lba & 0xff;
      done(token, bytes(bufs, count));
    },
    write: (_lba, bufs, count, token) => done(token, bytes(bufs, count)),
    sync: (token) => done(token, 0),
    close() {},
  };
}

/**
 * The engine's steady state allocates nothing per frame: `batch(i)` (one or more handleBatch calls
 * for batch number i) is warmed up 5000 times, then run in passes of 20 000 under the heap sampler
 * until a pass allocates less than 64 KiB (sampleUntilUnder: a
 * per-frame allocation shows in every pass, the JIT's warm-up only in some). Returns the batches
 * run in all (for the caller's counter checks).
 */
export async function expectNoAllocationPerFrame(batch: (i: number) => void): Promise<number> {
  for (let i = 0; i < 5000; i++) batch(i);
  const r = await sampleUntilUnder((pass) => {
    for (let i = 0; i < 20_000; i++) batch(5000 + pass * 20_000 + i);
  }, 64 * 1024);
  expect(r.best, r.report).toBeLessThan(64 * 1024);
  return 5000 + 20_000 * r.passes.length;
}
