/**
 * The three non-ATA commands: Query Config (1), Mac Mask List (2), Reserve/Release (3).
 *
 * Scope of the Mac Mask List (a non-empty list makes an export ignore unlisted MACs):
 * - ATA (IDENTIFY included), Reserve/Release and Query Config set (ccmd 3/4) from unlisted MACs
 *   are dropped and counted (drops.masked): they use or take over the disk.
 * - Query Config read/test (ccmd 0/1/2) is answered for everyone: it only reveals what discovery
 *   reveals anyway, and an administrator on an unlisted host (or `aoegw discover`) can see that
 *   the export exists and why it does not serve them, instead of a silent nothing.
 * - Mac Mask List reads are answered for everyone; edits from unlisted MACs are dropped (counted)
 *   like the other commands: an open edit let any host empty the list or, by a toggle flood,
 *   persistently lock everyone out. An edit that leaves out the editor's own MAC locks that
 *   editor out too: recovery is editing the state file while the target is stopped (see
 *   docs/target.md). Masks are spoofable anyway (AOE-FACTS): they prevent mistakes, not attacks;
 *   the static allow-list (configuration, not protocol) is the stricter filter for every command.
 * - Principals: every check and edit is per (namespace of the receiving link, MAC); see engine.ts.
 *   The mask list is one list of principals: non-empty, it drops the commands above from every
 *   principal not on it, whatever its namespace. An edit adds and deletes MACs in the editor's own
 *   namespace and leaves the other namespaces' entries in place; a read lists the MACs of the
 *   reader's own namespace only (another site's initiator MACs are not disclosed), so a reader
 *   may see an empty list while entries of other namespaces exclude it. The capacity
 *   (maxMaskEntries) is shared by every namespace.
 * - Changes of persistent state are rate-limited per source (ctx.mayChange): over the limit the
 *   request is dropped unanswered (the initiator retries), so a toggle flood cannot drive the
 *   state file.
 */
import { writeU16 } from '../aoe/bytes.js';
import {
  AOE_VERSION,
  AoeErrorCode,
  ARG_OFFSET,
  CONFIG_STRING_OFFSET,
  ConfigCmd,
  DecodeError,
  DirectiveCmd,
  MAC_MASK_DIRECTIVE_SIZE,
  MAC_MASK_LIST_OFFSET,
  MAC_SIZE,
  MaskCmd,
  MaskError,
  RESERVE_LIST_OFFSET,
  ReserveCmd,
} from '../aoe/index.js';
import { decodeMacMask, directiveOffset, MacMaskArg } from '../aoe/mac-mask.js';
import { decodeQueryConfig, QueryConfigArg } from '../aoe/query-config.js';
import { decodeReserve, ReserveArg, reserveMacOffset } from '../aoe/reserve.js';
import type { ExportRuntime } from './export-state.js';
import { macFromNumber, macToNumber } from './mac-list.js';
import { type BatchContext, commitReply, prepareReply, sendAoeError } from './reply.js';

const A = ARG_OFFSET;
// Scratch views: handlers run synchronously and keep nothing in them.
const qc = new QueryConfigArg();
const mm = new MacMaskArg();
const rv = new ReserveArg();

/** Sector count an export advertises on a link: min(export max, what the link carries). */
export function advertisedSectors(exp: ExportRuntime, linkSectors: number): number {
  return Math.min(exp.maxSectors, linkSectors);
}

/**
 * Writes the Query Config argument and string at offset 24 of `out` (header already there) and
 * returns the end offset. The string is cut to `cap` bytes of frame if the link is too small
 * for it (MTU < 1042 with a long string).
 */
export function writeConfigArg(
  out: Buffer,
  exp: ExportRuntime,
  sectors: number,
  ccmd: number,
  cap: number,
): number {
  writeU16(out, A, exp.bufferCount);
  writeU16(out, A + 2, exp.firmwareVersion);
  out[A + 4] = sectors;
  out[A + 5] = (AOE_VERSION << 4) | (ccmd & 0x0f);
  const n = Math.max(0, Math.min(exp.config.length, cap - CONFIG_STRING_OFFSET));
  writeU16(out, A + 6, n);
  exp.config.copy(out, CONFIG_STRING_OFFSET, 0, n);
  return CONFIG_STRING_OFFSET + n;
}

function configEquals(
  exp: ExportRuntime,
  buf: Buffer,
  off: number,
  len: number,
  prefixOnly: boolean,
): boolean {
  const cfg = exp.config;
  if (prefixOnly ? len > cfg.length : len !== cfg.length) return false;
  for (let i = 0; i < len; i++) if (cfg[i] !== buf[off + i]) return false;
  return true;
}

function masked(exp: ExportRuntime, ctx: BatchContext): boolean {
  return exp.masks.size > 0 && !exp.masks.has(ctx.srcNs, ctx.srcHi, ctx.srcLo);
}

export function handleQueryConfig(ctx: BatchContext, exp: ExportRuntime, buf: Buffer, len: number): void {
  exp.c.queryConfig++;
  let e = decodeQueryConfig(buf, len, qc);
  // (Requests with E set never get here: the engine drops them.)
  if (e === DecodeError.OK && qc.aoeVersion > AOE_VERSION) e = DecodeError.BAD_VERSION;
  else if (e === DecodeError.OK && qc.ccmd > ConfigCmd.FORCE_SET) e = DecodeError.BAD_ARGUMENT;
  // Error replies echo the argument and the string (the decoder has bounded it), except an
  // over-long string, which is not echoed: its length field is zeroed to keep the reply consistent.
  if (e === DecodeError.BAD_VERSION || e === DecodeError.BAD_ARGUMENT) {
    const code = e === DecodeError.BAD_VERSION ? AoeErrorCode.UNSUPPORTED_VERSION : AoeErrorCode.BAD_ARGUMENT;
    sendAoeError(ctx, exp, buf, CONFIG_STRING_OFFSET + qc.configLength, code);
    return;
  }
  if (e === DecodeError.STRING_TOO_LONG) {
    const slot = ctx.sink.txSlot();
    prepareReply(slot, ctx, exp, buf, CONFIG_STRING_OFFSET, AoeErrorCode.BAD_ARGUMENT);
    writeU16(slot, A + 6, 0);
    exp.c.aoeErrors++;
    commitReply(ctx, slot, CONFIG_STRING_OFFSET);
    return;
  }
  if (e !== DecodeError.OK) {
    ctx.malformed(exp);
    return;
  }
  const ccmd = qc.ccmd;
  switch (ccmd) {
    case ConfigCmd.READ:
      break;
    case ConfigCmd.TEST_EXACT:
    case ConfigCmd.TEST_PREFIX:
      if (!configEquals(exp, buf, qc.configOffset, qc.configLength, ccmd === ConfigCmd.TEST_PREFIX)) {
        exp.c.configTestMiss++;
        return;
      }
      break;
    default: {
      // SET_IF_EMPTY, FORCE_SET (the decoder bounds ccmd to 0..4).
      if (masked(exp, ctx)) {
        exp.c.dropMasked++;
        return;
      }
      const same = configEquals(exp, buf, qc.configOffset, qc.configLength, false);
      // Setting the string it already has succeeds: a retransmitted set must not turn into error 4.
      if (ccmd === ConfigCmd.SET_IF_EMPTY && exp.config.length > 0 && !same) {
        sendAoeError(
          ctx,
          exp,
          buf,
          CONFIG_STRING_OFFSET + qc.configLength,
          AoeErrorCode.CONFIG_STRING_PRESENT,
        );
        return;
      }
      if (!same) {
        if (!ctx.mayChange()) {
          exp.c.dropStateRate++;
          return;
        }
        exp.config = Buffer.from(buf.subarray(qc.configOffset, qc.configOffset + qc.configLength));
        ctx.stateChanged(exp);
      }
    }
  }
  const slot = ctx.sink.txSlot();
  prepareReply(slot, ctx, exp, buf, ARG_OFFSET);
  const end = writeConfigArg(slot, exp, advertisedSectors(exp, ctx.linkSectors), ccmd, ctx.slotCap);
  commitReply(ctx, slot, end);
}

/**
 * Edits the principal list (nss/macs, copies) per the request's directives, every MAC taken in
 * namespace `ns`; returns 0 or a MaskError. `max` bounds the whole list (all namespaces).
 */
function applyDirectives(
  buf: Buffer,
  count: number,
  ns: number,
  nss: number[],
  macs: number[],
  max: number,
): number {
  for (let i = 0; i < count; i++) {
    const o = directiveOffset(i);
    const dcmd = buf[o + 1]!;
    const mac = macToNumber(buf, o + 2);
    let at = -1;
    for (let j = 0; j < macs.length && at < 0; j++) if (macs[j] === mac && nss[j] === ns) at = j;
    if (dcmd === DirectiveCmd.ADD) {
      if (at >= 0) continue;
      if (macs.length >= max) return MaskError.LIST_FULL;
      nss.push(ns);
      macs.push(mac);
    } else if (dcmd === DirectiveCmd.DELETE) {
      if (at >= 0) {
        nss.splice(at, 1);
        macs.splice(at, 1);
      }
    } else if (dcmd !== DirectiveCmd.NONE) {
      return MaskError.BAD_DIRECTIVE;
    }
  }
  return 0;
}

/**
 * Mac Mask List. Read: the list (the requester's namespace only). Edit: directives applied in
 * order, atomically — on the first failing directive (bad dcmd → merror 2, list full → merror 3)
 * nothing changes and the reply echoes the request with merror set. Success replies list the resulting MACs as entries with
 * dcmd 0 (they are list entries, not directives). Adding a listed MAC or deleting an unlisted one
 * is a no-op, so retransmitted edits are harmless.
 */
export function handleMacMask(ctx: BatchContext, exp: ExportRuntime, buf: Buffer, len: number): void {
  exp.c.macMask++;
  const e = decodeMacMask(buf, len, mm);
  if (e === DecodeError.TRUNCATED || e === DecodeError.BAD_INPUT) {
    ctx.malformed(exp);
    return;
  }
  const mcmd = buf[A + 1]!;
  if (mcmd > MaskCmd.EDIT) {
    sendAoeError(ctx, exp, buf, MAC_MASK_LIST_OFFSET, AoeErrorCode.BAD_ARGUMENT);
    return;
  }
  if (mcmd === MaskCmd.EDIT && masked(exp, ctx)) {
    exp.c.dropMasked++;
    return;
  }
  let merror = e === DecodeError.BAD_ARGUMENT ? MaskError.BAD_DIRECTIVE : 0;
  if (merror === 0 && mcmd === MaskCmd.EDIT && mm.count > 0) {
    const next = exp.masks.toArrays();
    merror = applyDirectives(buf, mm.count, ctx.srcNs, next.nss, next.macs, exp.maxMasks);
    if (merror === 0 && !exp.masks.equals(next.nss, next.macs)) {
      if (!ctx.mayChange()) {
        exp.c.dropStateRate++;
        return;
      }
      exp.masks.setAll(next.nss, next.macs);
      ctx.stateChanged(exp);
    }
  }
  const slot = ctx.sink.txSlot();
  if (merror !== 0) {
    const n = Math.min(directiveOffset(mm.count), ctx.slotCap);
    prepareReply(slot, ctx, exp, buf, n);
    slot[A + 2] = merror;
    commitReply(ctx, slot, n);
    return;
  }
  prepareReply(slot, ctx, exp, buf, ARG_OFFSET + 2);
  const fit = Math.floor((ctx.slotCap - MAC_MASK_LIST_OFFSET) / MAC_MASK_DIRECTIVE_SIZE);
  slot[A + 2] = 0;
  // Entries of the requester's namespace only: a reply never discloses other sites' MACs.
  const list = exp.masks;
  let n = 0;
  for (let i = 0; i < list.size && n < fit; i++) {
    if (list.nsAt(i) !== ctx.srcNs) continue;
    const o = directiveOffset(n++);
    slot[o] = 0;
    slot[o + 1] = DirectiveCmd.NONE;
    macFromNumber(list.macAt(i), slot, o + 2);
  }
  slot[A + 3] = n;
  commitReply(ctx, slot, directiveOffset(n));
}

/**
 * Reserve/Release. Read: the list (the requester's namespace only). Set: allowed when the list is
 * empty or the sender (principal) is on it, else AoE error 6; force set: always. A set replaces
 * the whole list by the listed MACs in the sender's namespace; one with no MACs releases.
 * Duplicates are dropped.
 */
export function handleReserve(ctx: BatchContext, exp: ExportRuntime, buf: Buffer, len: number): void {
  exp.c.reserve++;
  if (masked(exp, ctx)) {
    exp.c.dropMasked++;
    return;
  }
  const e = decodeReserve(buf, len, rv);
  if (e === DecodeError.BAD_ARGUMENT || (e === DecodeError.OK && rv.rcmd > ReserveCmd.FORCE_SET)) {
    sendAoeError(ctx, exp, buf, RESERVE_LIST_OFFSET, AoeErrorCode.BAD_ARGUMENT);
    return;
  }
  if (e !== DecodeError.OK) {
    ctx.malformed(exp);
    return;
  }
  if (rv.rcmd === ReserveCmd.SET || rv.rcmd === ReserveCmd.FORCE_SET) {
    if (
      rv.rcmd === ReserveCmd.SET &&
      exp.reserve.size > 0 &&
      !exp.reserve.has(ctx.srcNs, ctx.srcHi, ctx.srcLo)
    ) {
      sendAoeError(ctx, exp, buf, Math.min(len, reserveMacOffset(rv.nmacs)), AoeErrorCode.TARGET_RESERVED);
      return;
    }
    const next: number[] = [];
    for (let i = 0; i < rv.nmacs; i++) {
      const mac = macToNumber(buf, reserveMacOffset(i));
      if (!next.includes(mac)) next.push(mac);
    }
    // (A loop, not next.map(() => ctx.srcNs): a closure over ctx would allocate a context on
    // every call of this function, reads included.)
    const nss: number[] = [];
    for (let i = 0; i < next.length; i++) nss.push(ctx.srcNs);
    if (!exp.reserve.equals(nss, next)) {
      if (!ctx.mayChange()) {
        exp.c.dropStateRate++;
        return;
      }
      exp.reserve.setAll(nss, next);
      ctx.stateChanged(exp);
    }
  }
  const slot = ctx.sink.txSlot();
  prepareReply(slot, ctx, exp, buf, ARG_OFFSET + 1);
  const fit = Math.floor((ctx.slotCap - RESERVE_LIST_OFFSET) / MAC_SIZE);
  // The requester's namespace only, as for the mask list.
  const list = exp.reserve;
  let n = 0;
  for (let i = 0; i < list.size && n < fit; i++) {
    if (list.nsAt(i) === ctx.srcNs) macFromNumber(list.macAt(i), slot, reserveMacOffset(n++));
  }
  slot[A + 1] = n;
  commitReply(ctx, slot, reserveMacOffset(n));
}
