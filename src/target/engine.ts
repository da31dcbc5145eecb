/**
 * The built-in AoE target's protocol core: many exports on many links, sans-I/O. The driver hands
 * it each receive batch (frames valid during the call) and a transmit sink; the engine answers
 * into the sink and starts the exports' asynchronous BlockStore operations.
 *
 * One batch is processed as a batch:
 * 1. Every frame is decoded (reused views; hostile input is counted and dropped, never thrown)
 *    and checked in arrival order: link addressing, export match (broadcast shelf/slot → every
 *    matching export answers with its real address), allow-list, mask list, reservation, buffer
 *    count. Control commands, IDENTIFY, CHECK POWER MODE and every error are answered at once;
 *    READ/WRITE/FLUSH are copied into the DataPath's pending table (bounded per export).
 * 2. At the end of the batch the DataPath starts each export's commit group (writes coalesced
 *    into runs, linked to one sync) and the batch's coalesced reads, and answers whatever
 *    completed already; the rest is answered when the store completes (storeDone + settle), in
 *    this turn for page-cache hits, later for a slow disk: see data-path.ts.
 * 3. A write is acknowledged only after the sync covering it succeeded (sync and direct modes):
 *    an acknowledged write is durable, because the Linux initiator never flushes.
 *
 * Error mapping (Linux fails an I/O on status & 0xA9, and only retries AoE errors):
 * - unknown ATA opcode, sector count 0 or above min(export max, link MTU), W flag inconsistent
 *   with the opcode, write to a read-only export → DRDY|ERR, ABRT;
 * - range past the end → DRDY|ERR, IDNF;
 * - a store read fails → DRDY|ERR, UNC (no data);
 * - a store write or its sync fails (EIO, ENOSPC, …) → DRDY|DF|ERR, ABRT for every write of its
 *   commit group (device fault: the write may be partly on disk, it is not acknowledged);
 * - bad AoE version → AoE error 5; unknown or vendor command → AoE error 1; bad sub-command → 2;
 *   Query Config set on a different string → 4; reserved by others → 6 (ATA other than IDENTIFY,
 *   and Reserve set).
 * ATA addressed to a broadcast shelf or slot is dropped (counted): one frame must not write to, or
 * draw data replies with one tag from, several exports. Linux never sends it. Query Config, Mac
 * Mask List and Reserve/Release to a broadcast address are served by every matching export (a
 * broadcast set therefore sets every matching export, as the protocol says).
 *
 * Dropped before any export sees them (counted on the link): frames from a group-bit source MAC
 * (an answer would go to the whole group: reflection), requests with the E flag (only responses
 * carry errors), and requests to the broadcast shelf or slot over the per-source rate limit (one
 * request draws one answer per export: amplification; one token per request, so a discovery that
 * is let through sees every export).
 *
 * Access state is per principal: (namespace of the receiving link, source MAC). Local links share
 * the local namespace; a peer gateway's link has the peer's key, so one MAC behind two peers (or
 * behind a peer and on a local segment) is two principals. Namespaces are interned per engine as
 * small integers (mac-list.ts): a check compares three Smis.
 *
 * Access filters, in order: the static allow-list (configuration, local namespace only; every
 * command from another local MAC is dropped), then the Mac Mask List (ATA, Reserve/Release, Query
 * Config set and Mac Mask List edits; see config-handler.ts for why discovery and list reads stay
 * reachable), then reservations. Changes of persistent state are rate-limited per source, and with holdReply set
 * their replies are handed to the driver, which sends them once the change is durable.
 * Each reply carries the export's real shelf/slot and the receiving link's MAC as source.
 *
 * Allocation: after warm-up (first MAC of each initiator, first view of each frame and staging
 * slot) handling a batch allocates nothing on the data path.
 */
import { AtaArg, decodeAta, writeAtaStatus } from '../aoe/ata.js';
import {
  AoeErrorCode,
  ATA_HEADER_END,
  AtaErrorBit,
  AtaFlag,
  AtaOp,
  AtaStatus,
  BROADCAST_MAJOR,
  BROADCAST_MINOR,
  COMMON_HEADER_END,
  Command,
  ConfigCmd,
  ETH_HEADER_SIZE,
  Flag,
  MAC_SIZE,
  Off,
  SECTOR_SIZE,
  sectorsPerFrame,
} from '../aoe/constants.js';
import { DecodeError } from '../aoe/decode-error.js';
import { AoeHeader, decodeHeader, writeHeaderWithFlags } from '../aoe/header.js';
import { IDENTIFY_SIZE } from '../aoe/identify.js';
import { AoegwError } from '../errors.js';
import {
  advertisedSectors,
  handleMacMask,
  handleQueryConfig,
  handleReserve,
  writeConfigArg,
} from './config-handler.js';
import {
  type EngineStatsSnapshot,
  type ExportStatsSnapshot,
  type InitiatorCounters,
  LinkCounters,
  snapshotExportCounters,
  snapshotInitiators,
  snapshotLink,
} from './counters.js';
import {
  DataPath,
  type DataPathOptions,
  type DataPathStats,
  MAX_DATA_SECTORS,
  OP_FLUSH,
  OP_READ,
  OP_WRITE,
} from './data-path.js';
import {
  type ExportOptions,
  ExportRuntime,
  type ExportStateInput,
  type PersistentExportState,
} from './export-state.js';
import { isNamespace, macHi, macLo, Namespaces } from './mac-list.js';
import { type RateLimit, SourceRateLimiter } from './rate-limit.js';
import {
  addressedToLink,
  type BatchContext,
  commitReply,
  type LinkState,
  prepareReply,
  sendAoeError,
  sendAtaStatus,
} from './reply.js';
import { DataViews, type TxSink } from './tx-sink.js';

export interface LinkInfo {
  /** The link's own MAC: unicast frames must be addressed to it; replies come from it. */
  mac: Buffer;
  /** Interface MTU; must carry at least one sector (≥ 548). */
  mtu: number;
  name: string;
  /**
   * Principal namespace of the initiators on this link: '' (default) for a local segment, a peer
   * gateway's public key (lowercase hex) for that peer's link. Mask lists, reservations,
   * rate limits and initiator stats key on (namespace, MAC); the static allow-list applies to
   * the local namespace only.
   */
  principal?: string;
}

/** An export as advertised to peer gateways. */
export interface ExportInfo {
  shelf: number;
  slot: number;
  sectors: number;
  bufferCount: number;
  maxSectors: number;
  firmwareVersion: number;
  readOnly: boolean;
  config: Buffer;
}

export interface TargetEngineOptions {
  exports?: readonly ExportOptions[];
  /**
   * Called synchronously whenever an export's config string, mask list or reservations change
   * (with fresh copies). Keep it quick: schedule the state-file write, do not do it inline.
   */
  onStateChange?: (exportKey: string, state: PersistentExportState) => void;
  /** Receives errors thrown by onStateChange (counted in stats().stateChangeErrors). */
  onError?: (err: Error) => void;
  /**
   * When set, the reply to a request that changed persistent state is not put in the sink: a copy
   * (whole frame, padded) is handed here, for the driver to send once the change is durable (or to
   * turn into an AoE error if persisting it failed). Without it such replies go out at once.
   */
  holdReply?: (linkId: number, frame: Buffer) => void;
  /**
   * Requests to the broadcast shelf or slot (one request, one answer per export: amplification),
   * per source MAC; null = unlimited. One token per request, whatever the number of exports, so
   * a discovery still sees every export. Default: DEFAULT_BROADCAST_LIMIT.
   */
  broadcastLimit?: RateLimit | null;
  /** Requests that change persistent state, per source MAC; null = unlimited. Default: DEFAULT_STATE_CHANGE_LIMIT. */
  stateChangeLimit?: RateLimit | null;
  /** Staging memory and the kernel submission of the data path (a ring's arena and submit). */
  dataPath?: DataPathOptions;
  /**
   * Monotonic clock (ms) the driver reads handleBatch's `now` from: the data path reads it once
   * per batch of completions to time requests (service time). Default performance.now.
   */
  clock?: () => number;
}

/**
 * Linux broadcasts one Query Config per interface every 60 s and on load (aoe-discover does the
 * same on demand): a burst of 8 per source and one a second more leave discovery untouched, while
 * a flood from one MAC draws at most one answer per export a second, and from every source
 * together at most 64 broadcast requests a second.
 */
export const DEFAULT_BROADCAST_LIMIT: RateLimit = { rate: 1, burst: 8, globalRate: 64, globalBurst: 128 };
/** Administrators change config strings, masks and reservations rarely; a toggle flood is an attack. */
export const DEFAULT_STATE_CHANGE_LIMIT: RateLimit = {
  rate: 10,
  burst: 20,
  globalRate: 50,
  globalBurst: 100,
};

const STATUS_OK = AtaStatus.DRDY;
const STATUS_ERR = AtaStatus.DRDY | AtaStatus.ERR;
const BROADCAST = Buffer.alloc(MAC_SIZE, 0xff);

export class TargetEngine {
  private readonly links = new Map<number, LinkState>();
  private readonly namespaces = new Namespaces();
  private readonly byAddress = new Map<number, ExportRuntime>();
  private readonly byKey = new Map<string, ExportRuntime>();
  private exportList: ExportRuntime[] = [];
  private nextOrdinal = 0;
  private readonly onStateChange: TargetEngineOptions['onStateChange'];
  private readonly onError: TargetEngineOptions['onError'];
  private readonly holdReply: TargetEngineOptions['holdReply'];
  private readonly bcastLimit: SourceRateLimiter | null;
  private readonly changeLimit: SourceRateLimiter | null;
  private now = 0;
  /** Frames seen (a sequence number, so a frame that changes several exports takes one token). */
  private frameSeq = 0;
  private changeSeq = -1;
  private changeOk = false;
  private stateChangeErrors = 0;
  private readonly hdr = new AoeHeader();
  private readonly ata = new AtaArg();
  private readonly views = new DataViews();
  private readonly ctx: BatchContext;
  private gen = 0;
  private frameMalformed = false;
  private readonly data: DataPath;
  private readonly storeDoneFn = (token: number, result: number) => this.data.done(token, result);

  constructor(opts: TargetEngineOptions = {}) {
    this.onStateChange = opts.onStateChange;
    this.onError = opts.onError;
    this.holdReply = opts.holdReply;
    const bl = opts.broadcastLimit === undefined ? DEFAULT_BROADCAST_LIMIT : opts.broadcastLimit;
    this.bcastLimit = bl === null ? null : new SourceRateLimiter(bl);
    const cl = opts.stateChangeLimit === undefined ? DEFAULT_STATE_CHANGE_LIMIT : opts.stateChangeLimit;
    this.changeLimit = cl === null ? null : new SourceRateLimiter(cl);
    this.data = new DataPath(this.links, {
      ...opts.dataPath,
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
    this.ctx = {
      link: undefined as unknown as LinkState,
      sink: undefined as unknown as TxSink,
      slotCap: 0,
      linkSectors: 0,
      srcNs: 0,
      srcHi: 0,
      srcLo: 0,
      hold: false,
      stateChanged: (exp) => {
        this.stateChanged(exp);
        if (this.holdReply !== undefined) this.ctx.hold = true;
      },
      mayChange: () => {
        if (this.changeSeq !== this.frameSeq) {
          this.changeSeq = this.frameSeq;
          const c = this.ctx;
          this.changeOk =
            this.changeLimit === null || this.changeLimit.take(c.srcHi, c.srcLo, this.now, c.srcNs);
        }
        return this.changeOk;
      },
      held: (slot, len) => {
        this.ctx.link.c.framesHeld++;
        this.holdReply!(this.ctx.link.id, Buffer.from(slot.subarray(0, len)));
      },
      malformed: (exp) => {
        exp.c.dropMalformed++;
        this.frameMalformed = true;
      },
    };
    for (const e of opts.exports ?? []) this.addExport(e);
  }

  // ---- configuration -------------------------------------------------------------------------

  /** Registers (or updates) a link. Throws ERR_TARGET_CONFIG if its MTU cannot carry a sector. */
  addLink(linkId: number, info: LinkInfo): void {
    if (!Number.isInteger(linkId))
      throw new AoegwError('ERR_TARGET_CONFIG', `link id ${linkId} is not an integer`);
    if (!Buffer.isBuffer(info.mac) || info.mac.length !== MAC_SIZE) {
      throw new AoegwError('ERR_TARGET_CONFIG', `link ${info.name}: MAC must be 6 bytes`);
    }
    const maxSectors = sectorsPerFrame(info.mtu);
    if (maxSectors < 1) {
      throw new AoegwError('ERR_TARGET_CONFIG', `link ${info.name}: MTU ${info.mtu} cannot carry one sector`);
    }
    const principal = info.principal ?? '';
    if (!isNamespace(principal)) {
      throw new AoegwError(
        'ERR_TARGET_CONFIG',
        `link ${info.name}: principal namespace must be '' or lowercase hex, got ${JSON.stringify(principal)}`,
      );
    }
    const old = this.links.get(linkId);
    this.links.set(linkId, {
      id: linkId,
      name: info.name,
      mac: Buffer.from(info.mac),
      mtu: info.mtu,
      ns: this.namespaces.intern(principal),
      maxSectors,
      c: old?.c ?? new LinkCounters(),
      sink: old?.sink,
      dirtyGen: -1,
    });
  }

  removeLink(linkId: number): boolean {
    return this.links.delete(linkId);
  }

  /** Adds an export; returns its key. Throws ERR_TARGET_CONFIG on bad config or a duplicate address/key. */
  addExport(cfg: ExportOptions): string {
    const exp = new ExportRuntime(cfg, this.nextOrdinal, this.namespaces);
    if (this.byAddress.has(exp.address)) {
      throw new AoegwError('ERR_TARGET_CONFIG', `e${exp.shelf}.${exp.slot} is exported twice`);
    }
    if (this.byKey.has(exp.key))
      throw new AoegwError('ERR_TARGET_CONFIG', `export key ${exp.key} is used twice`);
    this.nextOrdinal++;
    exp.store.attach(this.storeDoneFn);
    this.byAddress.set(exp.address, exp);
    this.byKey.set(exp.key, exp);
    this.exportList = [...this.exportList, exp];
    this.data.join(exp);
    return exp.key;
  }

  /** Stops serving an export (its store is the caller's to close). */
  removeExport(key: string): boolean {
    return this.retireExport(key) !== undefined;
  }

  /**
   * Stops serving an export; requests already accepted still complete (and are answered). The
   * store is the caller's to close once `pending()` is 0: never while an operation is in flight.
   */
  retireExport(key: string): { pending(): number } | undefined {
    const exp = this.byKey.get(key);
    if (!exp) return undefined;
    this.byKey.delete(key);
    this.byAddress.delete(exp.address);
    this.exportList = this.exportList.filter((e) => e !== exp);
    this.data.leave(exp);
    return { pending: () => exp.outstanding };
  }

  /** Serves an export limited to some links on one more (a peer's link: its grants decide). */
  serveOn(key: string, linkId: number): void {
    this.byKey.get(key)?.linkIds?.add(linkId);
  }

  exportKeys(): string[] {
    return this.exportList.map((e) => e.key);
  }

  /** What a peer gateway advertises of an export: capacity, limits and its config string (a copy). */
  exportInfo(key: string): ExportInfo | undefined {
    const e = this.byKey.get(key);
    if (!e) return undefined;
    return {
      shelf: e.shelf,
      slot: e.slot,
      sectors: e.sectors,
      bufferCount: e.bufferCount,
      maxSectors: e.maxSectors,
      firmwareVersion: e.firmwareVersion,
      readOnly: e.readOnly,
      config: Buffer.from(e.config),
    };
  }

  /** Current persistent state of an export (copies), or undefined. */
  exportState(key: string): PersistentExportState | undefined {
    return this.byKey.get(key)?.state();
  }

  /**
   * Replaces parts of an export's persistent state (control API: e.g. clear a reservation).
   * Validated like initial state; calls onStateChange.
   */
  setExportState(key: string, state: Partial<ExportStateInput>): void {
    const exp = this.byKey.get(key);
    if (!exp) throw new AoegwError('ERR_TARGET_CONFIG', `no export ${key}`);
    const cur = exp.state();
    const next = {
      config: state.config ?? cur.config,
      masks: state.masks ?? cur.masks,
      reserve: state.reserve ?? cur.reserve,
    };
    // Validate through the same constructor path, then adopt the validated values.
    const probe = new ExportRuntime(
      {
        shelf: exp.shelf,
        slot: exp.slot,
        store: exp.store,
        maxMaskEntries: exp.maxMasks,
        initialState: next,
      },
      -1,
      this.namespaces,
    );
    exp.config = probe.config;
    const m = probe.masks.toArrays();
    exp.masks.setAll(m.nss, m.macs);
    const r = probe.reserve.toArrays();
    exp.reserve.setAll(r.nss, r.macs);
    this.stateChanged(exp);
  }

  // ---- data path -----------------------------------------------------------------------------

  /**
   * Processes one receive batch of link `linkId`: frames[i][0, lengths[i]) for i < count (a length
   * ≤ 0 marks a frame the link truncated). Replies go to `sink`; `now` (ms, read from the clock of
   * options.clock when the batch arrived) stamps initiator stats and starts its requests' service time.
   * Never throws on frame content; throws ERR_TARGET_CONFIG for an unregistered link.
   */
  handleBatch(
    linkId: number,
    frames: readonly Buffer[],
    lengths: Int32Array | readonly number[],
    count: number,
    sink: TxSink,
    now: number,
  ): void {
    const link = this.links.get(linkId);
    if (link === undefined) throw new AoegwError('ERR_TARGET_CONFIG', `link ${linkId} is not registered`);
    const n = Math.min(count, frames.length, lengths.length);
    this.begin(link, sink);
    link.c.batches++;
    this.now = now;
    this.data.receiving(now);
    try {
      for (let i = 0; i < n; i++) this.frame(frames[i]!, lengths[i]!, now);
    } finally {
      this.data.startBatch();
      this.data.settle();
    }
  }

  /** A store operation ended (for stores whose completions arrive through a ring): see settle(). */
  storeDone(token: number, result: number): void {
    this.data.done(token, result);
  }

  /**
   * Answers every request whose store operations completed (and starts what they release).
   * Called by handleBatch; the driver calls it after delivering a batch of ring completions.
   */
  settle(): void {
    this.data.settle();
  }

  /** READ/WRITE/FLUSH requests waiting for their store. */
  get pendingRequests(): number {
    return this.data.pending;
  }

  dataPathStats(): DataPathStats {
    return this.data.stats();
  }

  /** One unsolicited broadcast Query Config response per export served on the link. Returns the count. */
  announce(linkId: number, sink: TxSink): number {
    const link = this.links.get(linkId);
    if (link === undefined) throw new AoegwError('ERR_TARGET_CONFIG', `link ${linkId} is not registered`);
    this.begin(link, sink);
    const ctx = this.ctx;
    const h = {
      dst: BROADCAST,
      src: link.mac,
      flags: Flag.RESPONSE,
      error: 0,
      major: 0,
      minor: 0,
      command: Command.QUERY_CONFIG,
      tag: 0,
    };
    let sent = 0;
    for (const exp of this.exportList) {
      if (!exp.servedOn(linkId)) continue;
      h.major = exp.shelf;
      h.minor = exp.slot;
      const slot = sink.txSlot();
      writeHeaderWithFlags(slot, h, Flag.RESPONSE);
      const end = writeConfigArg(
        slot,
        exp,
        advertisedSectors(exp, ctx.linkSectors),
        ConfigCmd.READ,
        ctx.slotCap,
      );
      commitReply(ctx, slot, end);
      sent++;
    }
    return sent;
  }

  stats(): EngineStatsSnapshot {
    const links: EngineStatsSnapshot['links'] = {};
    for (const l of this.links.values()) links[String(l.id)] = snapshotLink(l.name, l.mac, l.mtu, l.c);
    const exports: Record<string, ExportStatsSnapshot> = {};
    for (const e of this.exportList) {
      exports[e.key] = {
        shelf: e.shelf,
        slot: e.slot,
        storeDescription: e.store.description,
        readOnly: e.readOnly,
        ...snapshotExportCounters(e.c),
        pending: e.outstanding,
        initiators: snapshotInitiators(e.initiators, (id) => this.namespaces.name(id)),
      };
    }
    return { links, exports, stateChangeErrors: this.stateChangeErrors };
  }

  // ---- internals -----------------------------------------------------------------------------

  private begin(link: LinkState, sink: TxSink): void {
    const ctx = this.ctx;
    ctx.link = link;
    ctx.sink = sink;
    link.sink = sink;
    ctx.hold = false;
    ctx.slotCap = Math.min(sink.txSlot().length, link.mtu + ETH_HEADER_SIZE);
    ctx.linkSectors = Math.max(
      0,
      Math.min(link.maxSectors, MAX_DATA_SECTORS, Math.floor((ctx.slotCap - ATA_HEADER_END) / SECTOR_SIZE)),
    );
    this.gen++;
  }

  private stateChanged(exp: ExportRuntime): void {
    exp.c.stateChanges++;
    if (!this.onStateChange) return;
    try {
      this.onStateChange(exp.key, exp.state());
    } catch (e) {
      this.stateChangeErrors++;
      this.onError?.(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private frame(buf: Buffer, len: number, now: number): void {
    const c = this.ctx.link.c;
    c.framesIn++;
    if (!(len > 0) || buf === undefined || len > buf.length) {
      c.malformed++;
      return;
    }
    const h = this.hdr;
    const e = decodeHeader(buf, len, h);
    if (e === DecodeError.NOT_AOE) {
      c.notAoe++;
      return;
    }
    if (e !== DecodeError.OK && e !== DecodeError.BAD_VERSION && e !== DecodeError.UNKNOWN_COMMAND) {
      c.malformed++;
      return;
    }
    // From here every header field is valid, even for a bad version or unknown command.
    // A group (multicast/broadcast) source is never a real sender: answering it would send the
    // reply to the whole group (reflection). Nothing legitimate is lost by dropping it.
    if ((buf[Off.SRC]! & 1) !== 0) {
      c.groupSource++;
      return;
    }
    if ((h.flags & Flag.RESPONSE) !== 0) {
      c.responses++;
      return;
    }
    // E without R: only responses carry errors; a request claiming one is not served.
    if ((h.flags & Flag.ERROR) !== 0) {
      c.errorFlag++;
      return;
    }
    const link = this.ctx.link;
    if (!addressedToLink(buf, link.mac)) {
      c.notForUs++;
      return;
    }
    const major = h.major;
    const minor = h.minor;
    this.frameMalformed = false;
    this.frameSeq++;
    if (major !== BROADCAST_MAJOR && minor !== BROADCAST_MINOR) {
      const exp = this.byAddress.get(major * 256 + minor);
      if (exp === undefined || !exp.servedOn(link.id)) {
        c.notForUs++;
        return;
      }
      this.serve(exp, buf, len, e, false, now);
      if (this.frameMalformed) c.malformed++;
      return;
    }
    // One request, one answer per matching export: rate-limited per source (ATA to a broadcast
    // address is never answered, see ataRequest).
    if (
      h.command !== Command.ATA &&
      this.bcastLimit !== null &&
      !this.bcastLimit.take(macHi(buf, Off.SRC), macLo(buf, Off.SRC), now, link.ns)
    ) {
      c.broadcastRateLimited++;
      return;
    }
    let matched = false;
    const list = this.exportList;
    for (let k = 0; k < list.length; k++) {
      const exp = list[k]!;
      if (
        (major === BROADCAST_MAJOR || major === exp.shelf) &&
        (minor === BROADCAST_MINOR || minor === exp.slot) &&
        exp.servedOn(link.id)
      ) {
        matched = true;
        this.serve(exp, buf, len, e, true, now);
      }
    }
    if (!matched) c.notForUs++;
    if (this.frameMalformed) c.malformed++;
  }

  private serve(
    exp: ExportRuntime,
    buf: Buffer,
    len: number,
    headerError: number,
    broadcast: boolean,
    now: number,
  ): void {
    const ctx = this.ctx;
    const hi = macHi(buf, Off.SRC);
    const lo = macLo(buf, Off.SRC);
    const ns = ctx.link.ns;
    ctx.srcNs = ns;
    ctx.srcHi = hi;
    ctx.srcLo = lo;
    // The allow-list names local MACs: a peer link's initiators are another namespace, admitted
    // by the peer's grant (checked before the engine), neither admitted nor blocked by it.
    if (ns === 0 && exp.allow !== null && exp.allow.get(hi, lo) === undefined) {
      exp.c.dropAllowList++;
      return;
    }
    const ini = exp.initiator(hi, lo, now, ns);
    ini.requests++;
    ini.lastSeen = now;
    if (headerError === DecodeError.BAD_VERSION) {
      exp.c.otherCommand++;
      sendAoeError(ctx, exp, buf, COMMON_HEADER_END, AoeErrorCode.UNSUPPORTED_VERSION);
      return;
    }
    switch (this.hdr.command) {
      case Command.ATA:
        this.ataRequest(exp, buf, len, broadcast, ini);
        return;
      // ctx.hold turns true when the handler changed persistent state: its reply is held.
      case Command.QUERY_CONFIG:
        handleQueryConfig(ctx, exp, buf, len);
        ctx.hold = false;
        return;
      case Command.MAC_MASK:
        handleMacMask(ctx, exp, buf, len);
        ctx.hold = false;
        return;
      case Command.RESERVE:
        handleReserve(ctx, exp, buf, len);
        ctx.hold = false;
        return;
      default:
        // Unknown (4..0xEF) and vendor (0xF0..0xFF) commands: we implement no vendor command.
        exp.c.otherCommand++;
        sendAoeError(ctx, exp, buf, COMMON_HEADER_END, AoeErrorCode.UNRECOGNIZED_COMMAND);
        return;
    }
  }

  private ataError(exp: ExportRuntime, buf: Buffer, error: number): void {
    exp.c.ataErrors++;
    sendAtaStatus(this.ctx, exp, buf, STATUS_ERR, error);
  }

  private ataRequest(
    exp: ExportRuntime,
    buf: Buffer,
    len: number,
    broadcast: boolean,
    ini: InitiatorCounters,
  ): void {
    const c = exp.c;
    const ctx = this.ctx;
    c.ata++;
    if (broadcast) {
      c.dropBroadcastAta++;
      return;
    }
    const a = this.ata;
    if (decodeAta(buf, len, a) !== DecodeError.OK) {
      ctx.malformed(exp);
      return;
    }
    if (exp.masks.size > 0 && !exp.masks.has(ctx.srcNs, ctx.srcHi, ctx.srcLo)) {
      c.dropMasked++;
      return;
    }
    const op = a.cmdStatus;
    if (
      exp.reserve.size > 0 &&
      op !== AtaOp.IDENTIFY_DEVICE &&
      !exp.reserve.has(ctx.srcNs, ctx.srcHi, ctx.srcLo)
    ) {
      sendAoeError(ctx, exp, buf, ATA_HEADER_END, AoeErrorCode.TARGET_RESERVED);
      return;
    }
    if (exp.batchGen !== this.gen) {
      exp.batchGen = this.gen;
      exp.batchUsed = 0;
    }
    if (exp.batchUsed >= exp.bufferCount) {
      c.dropBufferFull++;
      return;
    }
    exp.batchUsed++;
    switch (op) {
      case AtaOp.READ_SECTORS:
      case AtaOp.READ_SECTORS_EXT:
        c.ataRead++;
        this.dataRequest(exp, buf, ini, false, op === AtaOp.READ_SECTORS_EXT);
        return;
      case AtaOp.WRITE_SECTORS:
      case AtaOp.WRITE_SECTORS_EXT:
        c.ataWrite++;
        this.dataRequest(exp, buf, ini, true, op === AtaOp.WRITE_SECTORS_EXT);
        return;
      case AtaOp.IDENTIFY_DEVICE: {
        c.ataIdentify++;
        if (ctx.slotCap < ATA_HEADER_END + IDENTIFY_SIZE) {
          this.ataError(exp, buf, AtaErrorBit.ABRT);
          return;
        }
        const slot = ctx.sink.txSlot();
        prepareReply(slot, ctx, exp, buf, ATA_HEADER_END);
        writeAtaStatus(slot, STATUS_OK, 0);
        slot[COMMON_HEADER_END + 2] = 1; // the sector the reply carries, whatever the request said
        slot.set(exp.identify, ATA_HEADER_END);
        commitReply(ctx, slot, ATA_HEADER_END + IDENTIFY_SIZE);
        return;
      }
      case AtaOp.FLUSH_CACHE:
      case AtaOp.FLUSH_CACHE_EXT:
        c.ataFlush++;
        if (!this.data.accept(OP_FLUSH, exp, ini, ctx.link.id, buf, null, 0, 0)) c.dropBufferFull++;
        return;
      case AtaOp.CHECK_POWER_MODE: {
        c.ataCheckPower++;
        const slot = ctx.sink.txSlot();
        prepareReply(slot, ctx, exp, buf, ATA_HEADER_END);
        writeAtaStatus(slot, STATUS_OK, 0);
        slot[COMMON_HEADER_END + 2] = 0xff; // sector count: active or idle
        commitReply(ctx, slot, ATA_HEADER_END);
        return;
      }
      default:
        c.ataOther++;
        this.ataError(exp, buf, AtaErrorBit.ABRT);
        return;
    }
  }

  private dataRequest(
    exp: ExportRuntime,
    buf: Buffer,
    ini: InitiatorCounters,
    write: boolean,
    ext: boolean,
  ): void {
    const a = this.ata;
    const n = a.sectorCount;
    // Sector count 0 means 256 (or 65536) sectors in ATA: no AoE frame carries that.
    // The E flag decides how the address was decoded (28 or 48 bits); an EXT opcode without it
    // (or the reverse) would silently land on another LBA, so it is refused.
    if (
      ext !== ((a.aflags & AtaFlag.LBA48) !== 0) ||
      write !== ((a.aflags & AtaFlag.WRITE) !== 0) ||
      (write && exp.readOnly) ||
      n === 0 ||
      n > Math.min(exp.maxSectors, this.ctx.linkSectors)
    ) {
      this.ataError(exp, buf, AtaErrorBit.ABRT);
      return;
    }
    if (a.lba + n > exp.sectors) {
      this.ataError(exp, buf, AtaErrorBit.IDNF);
      return;
    }
    const data = write ? this.views.get(buf, n) : null;
    const kind = write ? OP_WRITE : OP_READ;
    if (!this.data.accept(kind, exp, ini, this.ctx.link.id, buf, data, a.lba, n)) exp.c.dropBufferFull++;
  }
}
