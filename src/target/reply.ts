/**
 * Building replies in place in transmit slots. A reply starts as a copy of the request's first
 * bytes (header and argument); writeResponseHeader then swaps the addresses, sets R (and E), and
 * writes the export's real shelf/slot (Linux matches replies on them and rejects broadcast ones).
 */
import { writeAtaStatus } from '../aoe/ata.js';
import { padToMinFrame } from '../aoe/bytes.js';
import { ATA_HEADER_END, MIN_FRAME, Off } from '../aoe/constants.js';
import { writeResponseHeader } from '../aoe/header.js';
import type { LinkCounters } from './counters.js';
import type { ExportRuntime } from './export-state.js';
import type { TxSink } from './tx-sink.js';

/** A registered link, as the engine keeps it. */
export interface LinkState {
  readonly id: number;
  readonly name: string;
  readonly mac: Buffer;
  readonly mtu: number;
  /** Principal namespace of the initiators on this link, interned (0 = local; see mac-list.ts). */
  readonly ns: number;
  /** floor((mtu − 36) / 512), ≥ 1. */
  readonly maxSectors: number;
  readonly c: LinkCounters;
  /** Where replies to this link go (the sink of its latest batch): completions answer later. */
  sink: TxSink | undefined;
  /** DataPath's mark: this link has replies to flush. */
  dirtyGen: number;
}

/** What the per-command handlers need while one batch is processed. */
export interface BatchContext {
  link: LinkState;
  sink: TxSink;
  /** Bytes one transmit slot holds (min of the slot and MTU + 14). */
  slotCap: number;
  /** Sectors per ATA frame on this link now: min(link MTU, slot capacity). */
  linkSectors: number;
  /** The principal of the frame being served: the link's namespace id and the source MAC as halves. */
  srcNs: number;
  srcHi: number;
  srcLo: number;
  /** Called after an export's config string, mask list or reservations changed. */
  stateChanged(exp: ExportRuntime): void;
  /**
   * Whether the current frame's sender may change persistent state now (rate limit per source;
   * asked once per frame, the answer is kept for every export the frame addresses).
   */
  mayChange(): boolean;
  /** Set by stateChanged when the driver holds such replies: commitReply hands the reply to held(). */
  hold: boolean;
  /** Takes a held reply: slot[0, len), padded. */
  held(slot: Buffer, len: number): void;
  /** A frame addressed to `exp` is malformed for its command (counted once per frame on the link). */
  malformed(exp: ExportRuntime): void;
}

/** Copies req[0, copyLen) into slot and turns it into a response header. */
export function prepareReply(
  slot: Buffer,
  ctx: BatchContext,
  exp: ExportRuntime,
  req: Buffer,
  copyLen: number,
  aoeError = 0,
): void {
  // A byte loop: Buffer#copy of a partial source allocates a view, and this runs per reply.
  for (let i = 0; i < copyLen; i++) slot[i] = req[i]!;
  writeResponseHeader(slot, ctx.link.mac, exp.shelf, exp.slot, aoeError);
}

/** Pads, commits slot[0, len) to the link's sink and counts it (replies built outside a batch too). */
export function sendReply(link: LinkState, sink: TxSink, slot: Buffer, len: number): void {
  sink.txCommit(padToMinFrame(slot, len, MIN_FRAME));
  link.c.framesOut++;
}

/** Pads and commits (or hands a held reply to ctx.held), counts. */
export function commitReply(ctx: BatchContext, slot: Buffer, len: number): void {
  if (ctx.hold) {
    // Not committed: the slot is reused by the next reply.
    ctx.held(slot, padToMinFrame(slot, len, MIN_FRAME));
    return;
  }
  sendReply(ctx.link, ctx.sink, slot, len);
}

/**
 * AoE-level error reply (E flag, error code): the request echoed up to `echoLen` bytes (header
 * only for unknown commands; header + argument for ATA, never the data; whole small frames for
 * the other commands), so an error reply is never larger than the request.
 */
export function sendAoeError(
  ctx: BatchContext,
  exp: ExportRuntime,
  req: Buffer,
  echoLen: number,
  code: number,
): void {
  const slot = ctx.sink.txSlot();
  const n = Math.min(echoLen, ctx.slotCap);
  prepareReply(slot, ctx, exp, req, n, code);
  exp.c.aoeErrors++;
  commitReply(ctx, slot, n);
}

/** ATA reply without data: status/error registers set, argument otherwise echoed. */
export function sendAtaStatus(
  ctx: BatchContext,
  exp: ExportRuntime,
  req: Buffer,
  status: number,
  error: number,
): void {
  const slot = ctx.sink.txSlot();
  prepareReply(slot, ctx, exp, req, ATA_HEADER_END);
  writeAtaStatus(slot, status, error);
  commitReply(ctx, slot, ATA_HEADER_END);
}

/** True when the unicast destination is the link's MAC, or the frame is broadcast. */
export function addressedToLink(buf: Uint8Array, mac: Uint8Array): boolean {
  let own = true;
  let bcast = true;
  for (let i = 0; i < 6; i++) {
    const b = buf[Off.DST + i]!;
    if (b !== mac[i]) own = false;
    if (b !== 0xff) bcast = false;
  }
  return own || bcast;
}
