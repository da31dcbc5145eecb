/**
 * Side B of the gateway (sans-I/O): what peers may use here, checked on every record after
 * decryption. Deny by default: a peer reaches only the targets its grants name, and a read-only
 * grant lets through only reads (READ, IDENTIFY, CHECK POWER MODE, FLUSH) and the read forms of
 * Query Config, Mac Mask List and Reserve/Release. Everything else from a read-only peer is
 * refused with the protocol's error: ATA ABRT for writes and unknown ATA commands, AoE errors for
 * config sets (4), mask edits (2) and reservations (6). A request for a target that is not
 * granted is dropped and counted, exactly as if the target did not exist.
 *
 * Allowed requests go to a built-in export through the peer's TunnelPeerLink (batched; the
 * daemon calls endBatch() after each UDP receive batch), or to a native target via ForwardSide.
 *
 * The importer resends a request until it is answered, so every request passes the peer's
 * at-most-once window first (request-window.ts): a duplicate is absorbed while the request runs,
 * answered from the reply cache once it is done (reply-cache.ts), and a request the importer has
 * given up on, or one from an older importer process, never runs. Requests in flight here carry
 * this side's own tag (a bounded table) towards the engine and native targets; every reply comes
 * back through completion(), which restores the importer's tag, keeps the reply if the request
 * must not run twice, and sends it.
 */
import { copyBytes, readU32, writeU32 } from '../aoe/bytes.js';
import {
  AOE_VERSION,
  AoeErrorCode,
  AtaErrorBit,
  AtaOp,
  AtaStatus,
  Command,
  ConfigCmd,
  Flag,
  MaskCmd,
  ReserveCmd,
} from '../aoe/constants.js';
import { MAX_RECORD_VALUE } from '../tunnel/records.js';
import type { ForwardSide } from './forward-side.js';
import {
  isErrorPdu,
  isGroupMac,
  isResponsePdu,
  PDU,
  PDU_ATA_HEADER,
  PDU_COMMON_HEADER,
  pduMajor,
  pduMinor,
  pduTag,
  setPduAddress,
  setPduTag,
} from './pdu.js';
import type { TunnelPeerLink } from './peer-link.js';
import {
  IN_PROGRESS,
  RECORD_AOE_IN_PROGRESS,
  RECORD_AOE_RESPONSE,
  REQUEST,
  REQUEST_PREFIX,
  RESPONSE,
  RESPONSE_PREFIX,
  readU64Number,
  writeU64Number,
} from './peer-messages.js';
import type { PeerPort } from './peer-port.js';
import { ReplyCache, type ReplyCacheOptions } from './reply-cache.js';
import { RequestWindow, Verdict } from './request-window.js';
import { NO_SLOT, TagMap } from './tag-map.js';

export interface Grant {
  readonly shelf: number;
  readonly slot: number;
  readonly readOnly: boolean;
}

export interface ExportSideStats {
  requests: number;
  malformed: number;
  groupSource: number;
  denied: number;
  /**
   * A PDU for a granted export larger than the peer's engine link carries (no importer sends one):
   * dropped before it takes a window entry or an in-flight slot.
   */
  tooLarge: number;
  readOnlyRefused: number;
  toExports: number;
  toForwards: number;
  /** Duplicates of a request still running: dropped (its reply will come), answered with AOE_IN_PROGRESS. */
  dupInProgress: number;
  /** Duplicates of a finished request answered from the reply cache (not run again). */
  dupAnswered: number;
  /** Duplicates of a finished read run again (reads change nothing). */
  dupRerun: number;
  /** Duplicates of a finished write whose kept reply is gone: dropped, not run again. */
  dupLost: number;
  /** Refused: from an older importer process (epoch). */
  staleEpoch: number;
  /** Refused: below the importer's fence (it gave up on them). */
  staleFence: number;
  /** Refused: below the window. */
  staleOld: number;
  /** No room (in-flight table, or the export's buffer count for this peer): the importer resends. */
  busy: number;
  /** Replies for requests no longer in flight here (expired). */
  lateReplies: number;
  /** In-flight requests that never got a reply (a silent native target, a frame the engine ignored). */
  expired: number;
  /**
   * Requests for a target whose grant a reload took away: ATA ones answered with ABRT, others with
   * AoE error 3, so the importer fails them at once instead of resending them until its deadline.
   */
  revoked: number;
  /** In-flight requests failed the same way when their grant (or their export) went. */
  revokedInFlight: number;
}

export interface ExportSideOptions {
  /** Requests in flight here across all peers. Default 4096. */
  readonly inFlightCapacity?: number;
  /** A request with no reply after this is forgotten (a later copy may run). Default 10 s. */
  readonly inFlightTimeoutMs?: number;
  readonly replyCache?: ReplyCacheOptions;
  /** Clock for the reply cache (ms). Default performance.now. */
  readonly clock?: () => number;
}

interface PeerEntry {
  index: number;
  port: PeerPort;
  grants: Map<number, Grant>;
  /** Addresses a reload took from this peer's grants (refused, not ignored, until granted again). */
  revoked: Set<number>;
  removed: boolean;
  link: TunnelPeerLink | null;
  window: RequestWindow;
  cache: ReplyCache;
  /** What the engine link and the forward side send replies to. */
  completion: PeerPort;
  /** Requests in flight per built-in export address, bounded by its buffer count. */
  inFlight: Map<number, number>;
  inFlightTotal: number;
}

/**
 * Requests that change nothing: they may run twice (everything else is answered from the reply
 * cache), and they are all a read-only grant lets through. The PDU is at buf[p, p + len).
 */
function changesNothing(buf: Uint8Array, p: number, len: number): boolean {
  switch (buf[p + PDU.COMMAND]) {
    case Command.ATA: {
      if (len < PDU_ATA_HEADER || (buf[p + PDU.ATA_AFLAGS]! & 0x01) !== 0) return false;
      const op = buf[p + PDU.ATA_CMD_STATUS]!;
      return (
        op === AtaOp.READ_SECTORS ||
        op === AtaOp.READ_SECTORS_EXT ||
        op === AtaOp.IDENTIFY_DEVICE ||
        op === AtaOp.CHECK_POWER_MODE ||
        // A flush run twice changes nothing either.
        op === AtaOp.FLUSH_CACHE ||
        op === AtaOp.FLUSH_CACHE_EXT
      );
    }
    case Command.QUERY_CONFIG:
      return len >= PDU_COMMON_HEADER + 8 && (buf[p + PDU.QC_VERSION_CCMD]! & 0x0f) < ConfigCmd.SET_IF_EMPTY;
    case Command.MAC_MASK:
      return len >= PDU_COMMON_HEADER + 4 && buf[p + PDU.MM_MCMD] === MaskCmd.READ;
    case Command.RESERVE:
      return len >= PDU_COMMON_HEADER + 2 && buf[p + PDU.RR_RCMD] === ReserveCmd.READ;
    default:
      return false;
  }
}

export class ExportSide {
  readonly stats: ExportSideStats = {
    requests: 0,
    malformed: 0,
    groupSource: 0,
    denied: 0,
    tooLarge: 0,
    readOnlyRefused: 0,
    toExports: 0,
    toForwards: 0,
    dupInProgress: 0,
    dupAnswered: 0,
    dupRerun: 0,
    dupLost: 0,
    staleEpoch: 0,
    staleFence: 0,
    staleOld: 0,
    busy: 0,
    lateReplies: 0,
    expired: 0,
    revoked: 0,
    revokedInFlight: 0,
  };
  private readonly peers = new Map<string, PeerEntry>();
  private readonly peerList: PeerEntry[] = [];
  private readonly dirty: TunnelPeerLink[] = [];
  /** Room to echo the largest control request: a Mac Mask List of 255 directives. */
  private readonly reply = Buffer.alloc(PDU_COMMON_HEADER + 4 + 255 * 8);
  /** One AOE_RESPONSE record being built (the tunnel copies it). */
  private readonly response = Buffer.alloc(RESPONSE_PREFIX + MAX_RECORD_VALUE);
  /** One AOE_IN_PROGRESS record being built. */
  private readonly inProgress = Buffer.alloc(IN_PROGRESS.LENGTH);
  private readonly table: TagMap;
  private readonly timeoutMs: number;
  private readonly clock: () => number;
  private readonly cacheOptions: ReplyCacheOptions | undefined;
  // Per in-flight slot.
  private readonly fPeer: Int32Array;
  private readonly fEpoch: Uint32Array;
  private readonly fSeq: Float64Array;
  private readonly fTag: Uint32Array;
  private readonly fKeep: Uint8Array;
  /** Built-in export address, or -1 (a forward). */
  private readonly fAddress: Int32Array;
  /** The target's address and the AoE command (to fail it when its grant goes). */
  private readonly fTarget: Int32Array;
  private readonly fCommand: Uint8Array;
  /** Built-in exports by address → buffer count. */
  private readonly exports: Map<number, number>;

  /**
   * `exports`: built-in exports by address (shelf*256+slot) → buffer count; `forwards`: native
   * targets, or null.
   */
  constructor(
    exports: ReadonlyMap<number, number>,
    private readonly forwards: ForwardSide | null,
    opts: ExportSideOptions = {},
  ) {
    this.exports = new Map(exports);
    this.table = new TagMap(opts.inFlightCapacity ?? 4096);
    this.timeoutMs = opts.inFlightTimeoutMs ?? 10_000;
    this.clock = opts.clock ?? (() => performance.now());
    this.cacheOptions = opts.replyCache;
    const cap = this.table.capacity;
    this.fPeer = new Int32Array(cap);
    this.fEpoch = new Uint32Array(cap);
    this.fSeq = new Float64Array(cap);
    this.fTag = new Uint32Array(cap);
    this.fKeep = new Uint8Array(cap);
    this.fAddress = new Int32Array(cap);
    this.fTarget = new Int32Array(cap);
    this.fCommand = new Uint8Array(cap);
  }

  /**
   * A peer and what it may use; `link` is its engine link (null when no export is granted). The
   * link's and the forward side's replies to this peer are routed through completion().
   */
  addPeer(port: PeerPort, grants: readonly Grant[], link: TunnelPeerLink | null = null): void {
    const map = new Map<number, Grant>();
    for (const g of grants) map.set(g.shelf * 256 + g.slot, g);
    const index = this.peerList.length;
    const entry: PeerEntry = {
      index,
      port,
      grants: map,
      revoked: new Set(),
      removed: false,
      link,
      window: new RequestWindow(),
      cache: new ReplyCache(this.cacheOptions),
      completion: {
        name: port.name,
        connected: (now) => port.connected(now),
        reachable: (now) => port.reachable(now),
        lastHeardAt: () => port.lastHeardAt(),
        nudge: (now) => port.nudge(now),
        send: (type, buf, off, len) => this.completion(entry, type, buf, off, len),
      },
      inFlight: new Map(),
      inFlightTotal: 0,
    };
    this.peers.set(port.name, entry);
    this.peerList.push(entry);
    // Replies of the engine link and of native targets pass through completion().
    link?.setPort(entry.completion);
    this.forwards?.addPeer(entry.completion);
  }

  /**
   * Replaces what a peer may use (a reload). Its requests in flight on a target it may no longer
   * use fail at once (ATA ABRT, or AoE error 3), and later ones are refused the same way; a wider
   * grant works with the next request. Returns the number of addresses whose grant changed.
   */
  setGrants(peer: string, grants: readonly Grant[]): number {
    const e = this.peers.get(peer);
    if (!e) return 0;
    const next = new Map<number, Grant>();
    for (const g of grants) next.set(g.shelf * 256 + g.slot, g);
    let changed = 0;
    for (const [a, g] of e.grants) {
      const n = next.get(a);
      if (n === undefined) {
        e.revoked.add(a);
        changed++;
      } else if (n.readOnly !== g.readOnly) changed++;
    }
    for (const a of next.keys()) {
      if (!e.grants.has(a)) changed++;
      e.revoked.delete(a);
    }
    e.grants = next;
    // Read-only now: what is in flight may already be writing; it completes as granted when sent.
    this.failInFlight(e, (a) => !next.has(a));
    return changed;
  }

  /** A built-in export appeared (a reload); `bufferCount` bounds each peer's requests to it. */
  setExport(address: number, bufferCount: number): void {
    this.exports.set(address, bufferCount);
  }

  /**
   * A built-in export went (a reload): later requests to it are not passed on. Those in flight
   * are answered as the engine completes them (an accepted write is not left unanswered).
   */
  deleteExport(address: number): void {
    this.exports.delete(address);
  }

  /** Forgets a peer (a reload removed it): its requests in flight are dropped, unanswered. */
  removePeer(peer: string): void {
    const e = this.peers.get(peer);
    if (!e) return;
    this.peers.delete(peer);
    e.removed = true;
    e.grants = new Map();
    e.link = null;
    const cap = this.table.capacity;
    for (let s = 0; s < cap; s++) {
      if (!this.table.isLive(s) || this.fPeer[s] !== e.index) continue;
      this.unaccount(e, s);
      this.table.release(s);
    }
    this.forwards?.removePeer(peer);
  }

  /** Answers `e`'s requests in flight whose target `match`es with the protocol's error. */
  private failInFlight(e: PeerEntry, match: (address: number) => boolean): void {
    const cap = this.table.capacity;
    const r = this.reply;
    for (let s = 0; s < cap; s++) {
      if (!this.table.isLive(s) || this.fPeer[s] !== e.index || !match(this.fTarget[s]!)) continue;
      const a = this.fTarget[s]!;
      const command = this.fCommand[s]!;
      r.fill(0, 0, PDU_ATA_HEADER);
      setPduAddress(r, 0, a >>> 8, a & 0xff);
      r[PDU.COMMAND] = command;
      setPduTag(r, 0, this.table.tagOf(s));
      let len: number = PDU_COMMON_HEADER;
      if (command === Command.ATA) {
        r[PDU.VER_FLAGS] = (AOE_VERSION << 4) | Flag.RESPONSE;
        r[PDU.ATA_ERR_FEATURE] = AtaErrorBit.ABRT;
        r[PDU.ATA_CMD_STATUS] = AtaStatus.DRDY | AtaStatus.ERR;
        len = PDU_ATA_HEADER;
      } else {
        r[PDU.VER_FLAGS] = (AOE_VERSION << 4) | Flag.RESPONSE | Flag.ERROR;
        r[PDU.ERROR] = AoeErrorCode.DEVICE_UNAVAILABLE;
      }
      this.completion(e, RECORD_AOE_RESPONSE, r, 0, len);
      this.stats.revokedInFlight++;
    }
  }

  /** Sets the peer's engine link; its replies go through completion(). */
  setLink(peer: string, link: TunnelPeerLink): void {
    const e = this.peers.get(peer);
    if (!e) return;
    e.link = link;
    link.setPort(e.completion);
  }

  /** The port a peer's engine link and the forward side send replies to (through completion()). */
  completionPort(peer: string): PeerPort {
    const e = this.peers.get(peer);
    if (!e) throw new Error(`no peer ${peer}`);
    return e.completion;
  }

  /** The newest request epoch accepted from `peer` (its hello is told so). */
  requestEpochSeen(peer: string): number {
    return this.peers.get(peer)?.window.epoch ?? 0;
  }

  /** Requests in flight here now. */
  get inFlight(): number {
    return this.table.size;
  }

  /** Periodic work: forget requests that never got a reply (a later copy may run). */
  tick(now: number): void {
    this.stats.expired += this.table.expire(now - this.timeoutMs, (s) => {
      const e = this.peerList[this.fPeer[s]!]!;
      e.window.forget(this.fEpoch[s]!, this.fSeq[s]!);
      this.unaccount(e, s);
    });
  }

  grants(peer: string): Grant[] {
    return [...(this.peers.get(peer)?.grants.values() ?? [])];
  }

  /** An AOE_REQUEST record from `peer`: buf[off, off + len) = [epoch][seq][fence][initiator MAC][PDU]. */
  handleRequest(peer: string, buf: Uint8Array, off: number, len: number, now: number): void {
    const st = this.stats;
    st.requests++;
    const entry = this.peers.get(peer);
    const p = off + REQUEST_PREFIX;
    const pduLen = len - REQUEST_PREFIX;
    if (entry === undefined || pduLen < PDU_COMMON_HEADER) {
      st.malformed++;
      return;
    }
    const epoch = readU32(buf, off + REQUEST.EPOCH);
    const seq = readU64Number(buf, off + REQUEST.SEQ);
    const fence = readU64Number(buf, off + REQUEST.FENCE);
    if (epoch === 0 || seq < 1 || seq === Number.POSITIVE_INFINITY || fence === Number.POSITIVE_INFINITY) {
      st.malformed++;
      return;
    }
    if (isGroupMac(buf, off + REQUEST.MAC)) {
      st.groupSource++;
      return;
    }
    if (isResponsePdu(buf, p) || isErrorPdu(buf, p) || buf[p]! >>> 4 !== AOE_VERSION) {
      st.malformed++;
      return;
    }
    const address = pduMajor(buf, p) * 256 + pduMinor(buf, p);
    const grant = entry.grants.get(address);
    if (grant === undefined) {
      if (entry.revoked.has(address) && !tooShort(buf, p, pduLen)) {
        this.refuseRevoked(entry, buf, off, p, pduLen);
        return;
      }
      st.denied++;
      return;
    }
    const isExport = this.exports.has(address);
    if (isExport && entry.link !== null && pduLen > entry.link.mtu) {
      st.tooLarge++;
      return;
    }
    if (grant.readOnly && tooShort(buf, p, pduLen)) {
      // What a read-only request would do cannot be judged without its argument, and a native
      // target may fill the missing bytes from its previous frame: dropped, not passed on.
      st.malformed++;
      return;
    }
    const epochBefore = entry.window.epoch;
    const verdict = entry.window.admit(epoch, seq, fence);
    // A new importer epoch numbers from 1 again: the old epoch's kept replies answer nothing now.
    if (entry.window.epoch !== epochBefore) entry.cache.clear();
    switch (verdict) {
      case Verdict.IN_PROGRESS: {
        // The importer's timer ran out before the request did (a slow fsync): say it is running,
        // so it waits longer instead of sending the data again at every timeout.
        st.dupInProgress++;
        const n = this.inProgress;
        writeU32(n, IN_PROGRESS.EPOCH, epoch);
        writeU64Number(n, IN_PROGRESS.SEQ, seq);
        writeU32(n, IN_PROGRESS.TAG, pduTag(buf, p));
        entry.port.send(RECORD_AOE_IN_PROGRESS, n, 0, IN_PROGRESS.LENGTH);
        return;
      }
      case Verdict.DONE_CACHED: {
        const kept = entry.cache.get(seq, now);
        if (kept === null) {
          st.dupLost++;
          return;
        }
        setPduTag(kept, 0, pduTag(buf, p));
        this.sendResponse(entry, epoch, seq, kept, 0, kept.length);
        st.dupAnswered++;
        return;
      }
      case Verdict.STALE_EPOCH:
        st.staleEpoch++;
        return;
      case Verdict.STALE_FENCE:
        st.staleFence++;
        return;
      case Verdict.STALE_OLD:
        st.staleOld++;
        return;
      case Verdict.RERUN:
        st.dupRerun++;
        break;
      default:
        break;
    }
    const s = this.takeSlot(entry, isExport ? address : -1, now);
    if (s === NO_SLOT) {
      entry.window.forget(epoch, seq);
      st.busy++;
      return;
    }
    this.fEpoch[s] = epoch;
    this.fSeq[s] = seq;
    this.fTag[s] = pduTag(buf, p);
    this.fKeep[s] = changesNothing(buf, p, pduLen) ? 0 : 1;
    this.fTarget[s] = address;
    this.fCommand[s] = buf[p + PDU.COMMAND]!;
    // From here on the request carries our tag; completion() puts the importer's back.
    setPduTag(buf, p, this.table.tagOf(s));
    if (grant.readOnly && this.refuseWrite(entry.completion, buf, p, pduLen)) {
      st.readOnlyRefused++;
      return;
    }
    if (isExport) {
      const link = entry.link;
      if (link?.push(buf, off + REQUEST.MAC, buf, p, pduLen)) {
        st.toExports++;
        if (!this.dirty.includes(link)) this.dirty.push(link);
        return;
      }
      st.denied++;
    } else if (this.forwards?.has(address >>> 8, address & 0xff)) {
      st.toForwards++;
      if (this.forwards.relay(peer, buf, p, pduLen, now)) return;
    } else {
      st.denied++;
    }
    // Not run: a later copy may run.
    entry.window.forget(epoch, seq);
    this.unaccount(entry, s);
    this.table.release(s);
  }

  /** A slot for a request of `entry` to `address` (-1: a forward), within the peer's share and the export's buffer count. */
  private takeSlot(entry: PeerEntry, address: number, now: number): number {
    // One peer may hold half the table at most: the others keep working.
    if (entry.inFlightTotal >= this.table.capacity >> 1) return NO_SLOT;
    let n = 0;
    if (address >= 0) {
      n = entry.inFlight.get(address) ?? 0;
      // The engine drops what exceeds the buffer count in a batch, silently; refusing here lets
      // the importer resend at once instead of waiting for our in-flight timeout.
      if (n >= Math.max(1, this.exports.get(address) ?? 1)) return NO_SLOT;
    }
    const s = this.table.take(now);
    if (s === NO_SLOT) return NO_SLOT;
    this.fPeer[s] = entry.index;
    this.fAddress[s] = address;
    if (address >= 0) entry.inFlight.set(address, n + 1);
    entry.inFlightTotal++;
    return s;
  }

  private unaccount(entry: PeerEntry, s: number): void {
    const a = this.fAddress[s]!;
    if (a >= 0) entry.inFlight.set(a, Math.max(0, (entry.inFlight.get(a) ?? 1) - 1));
    if (entry.inFlightTotal > 0) entry.inFlightTotal--;
  }

  /**
   * A reply for one of `entry`'s requests (from the engine link, the forward side, or a refusal
   * here): buf[off, off + len) is the PDU with our tag; the 12 bytes before `off`, when there are
   * that many, may be overwritten (sendResponse). Restores the importer's tag, keeps the
   * reply when the request must not run twice, marks the request done and sends the reply.
   */
  private completion(entry: PeerEntry, type: number, buf: Uint8Array, off: number, len: number): boolean {
    if (type !== RECORD_AOE_RESPONSE || len < PDU_COMMON_HEADER) return entry.port.send(type, buf, off, len);
    const s = this.table.find(pduTag(buf, off));
    if (s === NO_SLOT || this.fPeer[s] !== entry.index) {
      this.stats.lateReplies++;
      return false;
    }
    setPduTag(buf, off, this.fTag[s]!);
    const seq = this.fSeq[s]!;
    // A request that changes something never runs again, whether or not its reply fits the cache
    // (a duplicate whose reply is not kept is dropped); only one that changes nothing may rerun.
    const once = this.fKeep[s] === 1;
    // A late answer from an older epoch is still sent (the importer matches it by tag), but its
    // seq now names another request: it must not be kept as that one's reply.
    if (once && this.fEpoch[s] === entry.window.epoch) entry.cache.put(seq, buf, off, len, this.clock());
    const epoch = this.fEpoch[s]!;
    entry.window.done(epoch, seq, once);
    this.unaccount(entry, s);
    this.table.release(s);
    return this.sendResponse(entry, epoch, seq, buf, off, len);
  }

  /**
   * An AOE_RESPONSE record: the (epoch, seq) of the request it answers, then the PDU. Replies of
   * the engine link and of native targets are Ethernet frames whose 14 header bytes before the PDU
   * are spent: the prefix is written there, in place, and the data is not copied (the tunnel
   * copies it once). Others (refusals, kept replies) are copied behind a prefix.
   */
  private sendResponse(
    entry: PeerEntry,
    epoch: number,
    seq: number,
    pdu: Uint8Array,
    off: number,
    len: number,
  ): boolean {
    let out = pdu;
    let at = off - RESPONSE_PREFIX;
    if (at < 0) {
      if (RESPONSE_PREFIX + len > this.response.length) return false;
      copyBytes(pdu, off, this.response, RESPONSE_PREFIX, len);
      out = this.response;
      at = 0;
    }
    writeU32(out, at + RESPONSE.EPOCH, epoch);
    writeU64Number(out, at + RESPONSE.SEQ, seq);
    return entry.port.send(RECORD_AOE_RESPONSE, out, at, RESPONSE_PREFIX + len);
  }

  /**
   * A request for a target whose grant was revoked: ATA ABRT (an ATA request) or AoE error 3,
   * under the importer's own numbering, so it fails the I/O at once. Nothing runs.
   */
  private refuseRevoked(entry: PeerEntry, buf: Uint8Array, off: number, p: number, len: number): void {
    const r = this.reply;
    let n: number;
    if (buf[p + PDU.COMMAND] === Command.ATA) {
      copyBytes(buf, p, r, 0, PDU_ATA_HEADER);
      r[PDU.VER_FLAGS] = (AOE_VERSION << 4) | Flag.RESPONSE;
      r[PDU.ERROR] = 0;
      r[PDU.ATA_ERR_FEATURE] = AtaErrorBit.ABRT;
      r[PDU.ATA_CMD_STATUS] = AtaStatus.DRDY | AtaStatus.ERR;
      n = PDU_ATA_HEADER;
    } else {
      n = Math.min(len, r.length);
      copyBytes(buf, p, r, 0, n);
      r[PDU.VER_FLAGS] = (AOE_VERSION << 4) | Flag.RESPONSE | Flag.ERROR;
      r[PDU.ERROR] = AoeErrorCode.DEVICE_UNAVAILABLE;
    }
    this.stats.revoked++;
    this.sendResponse(
      entry,
      readU32(buf, off + REQUEST.EPOCH),
      readU64Number(buf, off + REQUEST.SEQ),
      r,
      0,
      n,
    );
  }

  /** End of a UDP receive batch: each peer's requests go to the engine as one batch. */
  endBatch(): void {
    while (this.dirty.length > 0) this.dirty.pop()!.deliver();
  }

  /**
   * For a read-only grant: answers and returns true when the request would change anything.
   * The PDU at buf[p, p + len), at least its command's argument long (tooShort).
   */
  private refuseWrite(port: PeerPort, buf: Uint8Array, p: number, len: number): boolean {
    // What a read-only grant lets through is what may run twice: the same rule (changesNothing).
    if (changesNothing(buf, p, len)) return false;
    switch (buf[p + PDU.COMMAND]) {
      case Command.ATA:
        this.sendAtaAbort(port, buf, p);
        return true;
      case Command.QUERY_CONFIG:
        this.sendAoeError(port, buf, p, len, AoeErrorCode.CONFIG_STRING_PRESENT);
        return true;
      case Command.MAC_MASK:
        this.sendAoeError(port, buf, p, len, AoeErrorCode.BAD_ARGUMENT);
        return true;
      case Command.RESERVE:
        this.sendAoeError(port, buf, p, len, AoeErrorCode.TARGET_RESERVED);
        return true;
      default:
        return false; // unknown commands change nothing; the target answers error 1
    }
  }

  private sendAtaAbort(port: PeerPort, buf: Uint8Array, p: number): void {
    const r = this.reply;
    copyBytes(buf, p, r, 0, PDU_ATA_HEADER);
    r[PDU.VER_FLAGS] = (AOE_VERSION << 4) | Flag.RESPONSE;
    r[PDU.ERROR] = 0;
    r[PDU.ATA_ERR_FEATURE] = AtaErrorBit.ABRT;
    r[PDU.ATA_CMD_STATUS] = AtaStatus.DRDY | AtaStatus.ERR;
    port.send(RECORD_AOE_RESPONSE, r, 0, PDU_ATA_HEADER);
  }

  /**
   * An AoE error echoes the request (as vblade and our engine do): the argument's counts and
   * lengths must match what follows them, or the reply does not even decode.
   */
  private sendAoeError(port: PeerPort, buf: Uint8Array, p: number, len: number, code: number): void {
    const r = this.reply;
    const n = Math.min(len, r.length);
    copyBytes(buf, p, r, 0, n);
    r[PDU.VER_FLAGS] = (AOE_VERSION << 4) | Flag.RESPONSE | Flag.ERROR;
    r[PDU.ERROR] = code;
    port.send(RECORD_AOE_RESPONSE, r, 0, n);
  }
}

/** Shorter than its command's argument (ATA 12, Query Config 8, Mac Mask 4, Reserve 2 bytes). */
function tooShort(buf: Uint8Array, p: number, len: number): boolean {
  switch (buf[p + PDU.COMMAND]) {
    case Command.ATA:
      return len < PDU_ATA_HEADER;
    case Command.QUERY_CONFIG:
      return len < PDU_COMMON_HEADER + 8;
    case Command.MAC_MASK:
      return len < PDU_COMMON_HEADER + 4;
    case Command.RESERVE:
      return len < PDU_COMMON_HEADER + 2;
    default:
      return false;
  }
}
