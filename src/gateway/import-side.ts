/**
 * Side A of the gateway (sans-I/O): remote targets presented at local shelf.slot addresses on
 * local links. Initiators talk to this gateway's MAC as if it were the target:
 * - Query Config read/test is answered here, from the exporter's advertisement, only while the
 *   import is usable (session up, advertisement fresh); sets are relayed.
 * - ATA, Query Config set, Mac Mask List and Reserve/Release are relayed as AOE_REQUEST records
 *   with the initiator's tag replaced by a request id from a bounded table; the exporter's reply
 *   gets the tag and the local shelf.slot back and leaves from this gateway's MAC.
 * - The tunnel looks loss-free to the initiator: each request is kept (a copy of its record) and
 *   resent on a timeout from the measured round trip until it is answered; an initiator's own
 *   retransmission (new tag, same command) is folded into the request already in flight. While the
 *   peer is unreachable requests are held; a request older than `failAfterMs` is failed with an ATA
 *   error (the device stays up), and everything newer carries a fence so the abandoned request can
 *   never run at the exporter after it (docs/protocol.md, 13.8).
 * - An import that becomes usable is announced (unsolicited broadcast config response), so the
 *   Linux initiator picks it up at once.
 * Frames come in per link batch (views valid during the call); replies are written into the link's
 * transmit slots; records go out through a PeerPort. Time is an argument.
 */
import { copyBytes, readU32, writeU32 } from '../aoe/bytes.js';
import {
  AOE_VERSION,
  AtaErrorBit,
  AtaStatus,
  CONFIG_STRING_OFFSET,
  Command,
  ConfigCmd,
  ETH_HEADER_SIZE,
  Flag,
  MAC_SIZE,
  Off,
  sectorsPerFrame,
} from '../aoe/constants.js';
import { DecodeError } from '../aoe/decode-error.js';
import {
  decodeQueryConfig,
  encodeQueryConfig,
  QueryConfigArg,
  type QueryConfigFields,
} from '../aoe/query-config.js';
import { AoegwError } from '../errors.js';
import { RttEstimator, type RttOptions } from '../initiator/rtt-estimator.js';
import type { FrameLink } from '../io/frame-link.js';
import { type Log, silentLog } from '../log.js';
import {
  isErrorPdu,
  isGroupMac,
  isResponsePdu,
  macEquals,
  PDU,
  PDU_ATA_HEADER,
  PDU_COMMON_HEADER,
  pduMajor,
  pduMinor,
  pduTag,
  setPduAddress,
  setPduTag,
  writeFrame,
} from './pdu.js';
import {
  type AdvertChunk,
  IN_PROGRESS,
  RECORD_AOE_REQUEST,
  REQUEST,
  REQUEST_PREFIX,
  RESPONSE,
  RESPONSE_PREFIX,
  readU64Number,
  type TargetAdvert,
  writeU64Number,
} from './peer-messages.js';
import type { PeerPort } from './peer-port.js';
import { REQUEST_WINDOW } from './request-window.js';
import { NO_SLOT, TagMap } from './tag-map.js';

export interface ImportSpec {
  /** Peer (by name) that exports the target. */
  readonly peer: string;
  /** The exporter's shelf.slot, or the export's name. */
  readonly remote: { readonly shelf: number; readonly slot: number } | { readonly name: string };
  readonly localShelf: number;
  readonly localSlot: number;
  /** Local link names the import is presented on (non-empty). */
  readonly links: readonly string[];
}

export interface ImportSideOptions {
  readonly imports: readonly ImportSpec[];
  /** Largest record the tunnel carries (bounds the sectors per frame advertised locally). */
  readonly maxRecord: number;
  /** Requests in flight across all imports. Default 4096. */
  readonly pendingCapacity?: number;
  /**
   * A request unanswered this long (peer unreachable, or its target silent) is failed with an ATA
   * error, below the Linux initiator's 180 s after which it fails the whole device. Default 120 s.
   */
  readonly failAfterMs?: number;
  /** Retransmission timeout bounds (rtt-estimator.ts). */
  readonly rtt?: RttOptions;
  /**
   * First request epoch per peer (wall-clock seconds at start by default): a restarted importer
   * numbers its requests above the previous process's, and the exporter refuses the older ones.
   */
  readonly epochBase?: number;
  readonly log?: Log;
}

export interface ImportStats {
  framesIn: number;
  notForUs: number;
  dropped: number;
  groupSource: number;
  unusable: number;
  answeredLocally: number;
  relayed: number;
  tableFull: number;
  tooLarge: number;
  sendFailed: number;
  replies: number;
  staleReplies: number;
  foreignReplies: number;
  /** Resends across the tunnel (our own timeout). */
  retransmits: number;
  /** AOE_IN_PROGRESS notices that pushed a request's next resend out (the exporter is running it). */
  inProgress: number;
  /** Initiator retransmissions folded into the request already in flight. */
  superseded: number;
  /** Requests sent again under a new seq (after a fence or an epoch change). */
  reissued: number;
  /** ATA requests failed with an ATA error after failAfterMs. */
  failed: number;
  /** Other requests given up after failAfterMs (no AoE answer fits). */
  abandoned: number;
  announcements: number;
}

/** Request numbering and round-trip estimate towards one peer. */
class PeerRequests {
  nextSeq = 1;
  /** Every seq below this that the peer has not seen must never run (we gave up on it). */
  fence = 0;
  /** Set when the peer's hello told us its newest epoch seen from us. */
  helloSeen = false;
  wasReachable = false;
  readonly rtt: RttEstimator;
  /** When the peer last became reachable: what was sent before may have been lost in the outage. */
  reachableAt = Number.NEGATIVE_INFINITY;
  /** When a hello last made requests put off by AOE_IN_PROGRESS due at once (peerHello). */
  undeferredAt = Number.NEGATIVE_INFINITY;
  constructor(
    public epoch: number,
    rtt: RttOptions | undefined,
  ) {
    this.rtt = new RttEstimator(rtt);
  }
}

interface PeerAdverts {
  byAddress: Map<number, TargetAdvert>;
  byName: Map<string, TargetAdvert>;
  receivedAt: number;
  /** Chunks of a generation being assembled. */
  partial: { generation: number; chunks: number; got: Map<number, readonly TargetAdvert[]> } | null;
}

class ImportRuntime {
  advert: TargetAdvert | null = null;
  usable = false;
  reportedMissing = false;
  /** Requests of this import in the pending table (bounded: one import cannot take them all). */
  pending = 0;
  /** Last usability change: flapping is not logged or announced more than once a second. */
  lastFlipAt = Number.NEGATIVE_INFINITY;
  /** Usability changed and is not yet logged/announced. */
  changed = false;
  /** Config string as last learned (advert, or a relayed set's reply). */
  config: Uint8Array = new Uint8Array(0);
  /** Taken out by a reload: not presented, never used again (its index is not reused). */
  removed = false;
  readonly linkIds: number[];
  constructor(
    readonly index: number,
    readonly spec: ImportSpec,
    linkIds: number[],
  ) {
    this.linkIds = linkIds;
  }
  get label(): string {
    const r = this.spec.remote;
    const remote = 'name' in r ? r.name : `e${r.shelf}.${r.slot}`;
    return `import e${this.spec.localShelf}.${this.spec.localSlot} (${this.spec.peer}:${remote})`;
  }
  /** The structured side of `label`, for log lines. */
  get fields(): { import: string; peer: string } {
    return { import: `e${this.spec.localShelf}.${this.spec.localSlot}`, peer: this.spec.peer };
  }
}

/** The least wait for a request's next copy after the exporter said it is running it. */
export const IN_PROGRESS_WAIT_MS = 250;
/**
 * The most: a reply lost on the way back, or a request the exporter lost (a restart without a new
 * session seen here, a frame a native target never got: B forgets it after 10 s), is recovered by
 * the next copy, so the wait bounds that recovery; twice the round-trip timeout's ceiling.
 */
export const IN_PROGRESS_MAX_WAIT_MS = 2000;

const EMPTY_ADVERTS = (): PeerAdverts => ({
  byAddress: new Map(),
  byName: new Map(),
  receivedAt: Number.NEGATIVE_INFINITY,
  partial: null,
});

export class ImportSide {
  readonly stats: ImportStats = {
    framesIn: 0,
    notForUs: 0,
    dropped: 0,
    groupSource: 0,
    unusable: 0,
    answeredLocally: 0,
    relayed: 0,
    tableFull: 0,
    tooLarge: 0,
    sendFailed: 0,
    replies: 0,
    staleReplies: 0,
    foreignReplies: 0,
    retransmits: 0,
    inProgress: 0,
    superseded: 0,
    reissued: 0,
    failed: 0,
    abandoned: 0,
    announcements: 0,
  };
  /** By index (removed ones stay, marked: pending slots name imports by index). */
  private readonly imports: ImportRuntime[];
  /** Per link id: local address (major*256+minor) → import. */
  private readonly byLink: Map<number, ImportRuntime>[] = [];
  private readonly linkIdByName = new Map<string, number>();
  private readonly links: FrameLink[] = [];
  private readonly ports = new Map<string, PeerPort>();
  private readonly adverts = new Map<string, PeerAdverts>();
  private readonly table: TagMap;
  private readonly failAfterMs: number;
  private readonly maxRecord: number;
  private readonly log: Log;
  private readonly rttOptions: RttOptions | undefined;
  private readonly epochBase: number;
  private readonly requests = new Map<string, PeerRequests>();
  // Per pending slot.
  private readonly pImport: Int32Array;
  private readonly pLink: Int32Array;
  private readonly pTag: Uint32Array;
  private readonly pCommand: Uint8Array;
  private readonly pMac: Uint8Array;
  /** The record as sent (prefix + PDU), kept for resends; allocated once per slot, grown rarely. */
  private readonly pRecord: (Buffer | null)[];
  private readonly pLen: Int32Array;
  private readonly pFirstAt: Float64Array;
  private readonly pSentAt: Float64Array;
  private readonly pDueAt: Float64Array;
  private readonly pTries: Uint8Array;
  /** 1 while the slot's next send is put off by the exporter's AOE_IN_PROGRESS (handleInProgress). */
  private readonly pDeferred: Uint8Array;
  private readonly pSeq: Float64Array;
  private readonly pEpoch: Uint32Array;
  /** The number a request had before it was renumbered (epoch 0: never renumbered). */
  private readonly pPrevSeq: Float64Array;
  private readonly pPrevEpoch: Uint32Array;
  /** Initiator retransmissions are found by a hash of (import, MAC, ATA argument): chained buckets. */
  private readonly pHash: Uint32Array;
  private readonly pNext: Int32Array;
  private readonly buckets: Int32Array;
  /** No slot is due before this (a lower bound; the scan finds the exact next one). */
  private nextDue = Number.POSITIVE_INFINITY;
  /** Decoded Query Config of the frame being handled, and the reused parts of local answers. */
  private readonly qc = new QueryConfigArg();
  private readonly replyHeader: {
    dst: Buffer;
    src: Uint8Array;
    flags: number;
    error: number;
    major: number;
    minor: number;
    command: number;
    tag: number;
  } = {
    dst: Buffer.alloc(MAC_SIZE),
    src: Buffer.alloc(MAC_SIZE),
    flags: Flag.RESPONSE,
    error: 0,
    major: 0,
    minor: 0,
    command: Command.QUERY_CONFIG,
    tag: 0,
  };
  private readonly replyArg: QueryConfigFields = {
    bufferCount: 0,
    firmwareVersion: 0,
    sectorCount: 0,
    aoeVersion: AOE_VERSION,
    ccmd: 0,
  };

  constructor(opts: ImportSideOptions) {
    this.maxRecord = opts.maxRecord;
    this.table = new TagMap(opts.pendingCapacity ?? 4096);
    this.failAfterMs = opts.failAfterMs ?? 120_000;
    this.log = opts.log ?? silentLog;
    this.rttOptions = opts.rtt;
    this.epochBase = opts.epochBase ?? Math.floor(Date.now() / 1000);
    const cap = this.table.capacity;
    this.pImport = new Int32Array(cap);
    this.pLink = new Int32Array(cap);
    this.pTag = new Uint32Array(cap);
    this.pCommand = new Uint8Array(cap);
    this.pMac = new Uint8Array(cap * MAC_SIZE);
    this.pRecord = new Array<Buffer | null>(cap).fill(null);
    this.pLen = new Int32Array(cap);
    this.pFirstAt = new Float64Array(cap);
    this.pSentAt = new Float64Array(cap);
    this.pDueAt = new Float64Array(cap);
    this.pTries = new Uint8Array(cap);
    this.pDeferred = new Uint8Array(cap);
    this.pSeq = new Float64Array(cap);
    this.pEpoch = new Uint32Array(cap);
    this.pPrevSeq = new Float64Array(cap);
    this.pPrevEpoch = new Uint32Array(cap);
    this.pHash = new Uint32Array(cap);
    this.pNext = new Int32Array(cap).fill(NO_SLOT);
    this.buckets = new Int32Array(cap * 2).fill(NO_SLOT);
    this.imports = opts.imports.map((spec, i) => new ImportRuntime(i, spec, []));
  }

  /** Registers a local link (before any frame); imports listing it are presented on it. */
  addLink(name: string, link: FrameLink): number {
    const id = this.links.length;
    this.links.push(link);
    this.linkIdByName.set(name, id);
    const map = new Map<number, ImportRuntime>();
    for (const imp of this.imports) {
      if (imp.removed || !imp.spec.links.includes(name)) continue;
      map.set(imp.spec.localShelf * 256 + imp.spec.localSlot, imp);
      imp.linkIds.push(id);
    }
    this.byLink.push(map);
    return id;
  }

  linkId(name: string): number | undefined {
    return this.linkIdByName.get(name);
  }

  private live(): ImportRuntime[] {
    return this.imports.filter((i) => !i.removed);
  }

  private advertFor(imp: ImportRuntime, st: PeerAdverts): TargetAdvert | null {
    const r = imp.spec.remote;
    return ('name' in r ? st.byName.get(r.name) : st.byAddress.get(r.shelf * 256 + r.slot)) ?? null;
  }

  /**
   * Presents one more import (a reload) on its links, which must be registered: usable at once if
   * its peer already offers the target (then announced), else when the peer's adverts offer it.
   */
  addImport(spec: ImportSpec, now: number): void {
    const local = spec.localShelf * 256 + spec.localSlot;
    const linkIds = spec.links.map((n) => {
      const id = this.linkIdByName.get(n);
      if (id === undefined) throw new AoegwError('ERR_GATEWAY_CONFIG', `import link ${n} is not registered`);
      return id;
    });
    for (const id of linkIds)
      if (this.byLink[id]!.has(local))
        throw new AoegwError(
          'ERR_GATEWAY_CONFIG',
          `e${spec.localShelf}.${spec.localSlot} is already imported on that link`,
        );
    const imp = new ImportRuntime(this.imports.length, spec, linkIds);
    this.imports.push(imp);
    for (const id of linkIds) this.byLink[id]!.set(local, imp);
    const st = this.adverts.get(spec.peer);
    if (st && st.receivedAt > Number.NEGATIVE_INFINITY) {
      imp.advert = this.advertFor(imp, st);
      if (imp.advert) imp.config = imp.advert.configString;
    }
    this.refresh(now);
  }

  /**
   * Stops presenting an import (a reload): its pending ATA requests fail at once with an ATA error
   * (others are dropped), and frames for its address are no longer answered. False if none.
   */
  removeImport(peer: string, localShelf: number, localSlot: number): boolean {
    const imp = this.imports.find(
      (i) =>
        !i.removed &&
        i.spec.peer === peer &&
        i.spec.localShelf === localShelf &&
        i.spec.localSlot === localSlot,
    );
    if (!imp) return false;
    const r = this.requests.get(peer);
    const cap = this.table.capacity;
    for (let s = 0; s < cap; s++) {
      if (!this.table.isLive(s) || this.pImport[s] !== imp.index) continue;
      if (r) this.fail(s, imp, r);
      else this.releaseSlot(s);
    }
    for (const id of imp.linkIds) {
      const map = this.byLink[id];
      if (map?.get(localShelf * 256 + localSlot) === imp) map.delete(localShelf * 256 + localSlot);
    }
    imp.removed = true;
    imp.usable = false;
    imp.advert = null;
    this.log.info(`${imp.label}: removed`, imp.fields);
    return true;
  }

  /** Forgets a peer (a reload removed it): its imports are removed, their requests failed. */
  removePeer(peer: string): void {
    for (const imp of this.live())
      if (imp.spec.peer === peer) this.removeImport(peer, imp.spec.localShelf, imp.spec.localSlot);
    this.ports.delete(peer);
    this.adverts.delete(peer);
    this.requests.delete(peer);
  }

  /** The tunnel side of a peer (by name). */
  addPeer(port: PeerPort): void {
    this.ports.set(port.name, port);
    if (!this.adverts.has(port.name)) this.adverts.set(port.name, EMPTY_ADVERTS());
    if (!this.requests.has(port.name))
      this.requests.set(port.name, new PeerRequests(this.epochBase >>> 0 || 1, this.rttOptions));
  }

  /**
   * The peer's hello: the newest epoch of ours it has accepted. Our requests must be numbered
   * above it (else it refuses them as an older process's); pending ones are reissued.
   */
  peerHello(peer: string, requestEpochSeen: number, now = 0): void {
    const r = this.requests.get(peer);
    if (r === undefined || requestEpochSeen >= 0xffff_ffff) return;
    if (!r.helloSeen) {
      // Nothing was sent to this peer yet (requests wait for this hello): the epoch is fixed now,
      // above any this peer has seen, so our first request can never meet an older process's seqs.
      r.helloSeen = true;
      if (requestEpochSeen >= r.epoch) r.epoch = requestEpochSeen + 1;
      if (this.table.size > 0) this.nextDue = Number.NEGATIVE_INFINITY;
      return;
    }
    // A later hello means a new session: the peer may have restarted and lost what it said it
    // was running. Requests put off by its AOE_IN_PROGRESS go again now, not at their late due
    // time; at most once a second, so that a peer alternating notices and hellos cannot make us
    // send request data back to it as fast as it likes.
    if (now - r.undeferredAt >= 1000) {
      r.undeferredAt = now;
      this.undefer(peer);
    }
    // Later hellos (every session up) carry our own epoch back. Only a higher one means another
    // process numbers requests above us with our key: renumber above it (each renumbered request
    // is fenced when answered, so its older number cannot run after it).
    if (requestEpochSeen > r.epoch) {
      this.log.warn(
        `peer ${peer}: it has seen request epoch ${requestEpochSeen} above ours (${r.epoch}): is another gateway using this key?`,
      );
      r.epoch = requestEpochSeen + 1;
      r.nextSeq = 1;
      r.fence = 0;
      if (this.table.size > 0) {
        r.reachableAt = Number.POSITIVE_INFINITY;
        this.nextDue = Number.NEGATIVE_INFINITY;
      }
    }
  }

  /** Every request to `peer` put off by AOE_IN_PROGRESS is due at once. */
  private undefer(peer: string): void {
    let any = false;
    for (let s = 0; s < this.table.capacity; s++) {
      if (this.pDeferred[s] === 0 || !this.table.isLive(s)) continue;
      if (this.imports[this.pImport[s]!]!.spec.peer !== peer) continue;
      this.pDeferred[s] = 0;
      this.pDueAt[s] = 0;
      any = true;
    }
    if (any) this.nextDue = Number.NEGATIVE_INFINITY;
  }

  /** The epoch we number requests to `peer` with (for status and tests). */
  requestEpoch(peer: string): number {
    return this.requests.get(peer)?.epoch ?? 0;
  }

  /** Round-trip estimate towards each peer, for status. */
  rttStatus(): { peer: string; srttMs: number; rtoMs: number; samples: number }[] {
    return [...this.requests].map(([peer, r]) => ({
      peer,
      srttMs: Math.round(r.rtt.srttMs * 100) / 100,
      rtoMs: Math.round(r.rtt.rtoMs() * 100) / 100,
      samples: r.rtt.samples,
    }));
  }

  /** Names of the peers imports use (the daemon connects to them). */
  peersUsed(): string[] {
    return [...new Set(this.live().map((i) => i.spec.peer))];
  }

  /** Usable imports, for status. */
  status(): {
    local: string;
    peer: string;
    remote: string;
    usable: boolean;
    bufferCount: number;
    pending: number;
  }[] {
    return this.live().map((i) => ({
      local: `e${i.spec.localShelf}.${i.spec.localSlot}`,
      peer: i.spec.peer,
      remote: 'name' in i.spec.remote ? i.spec.remote.name : `e${i.spec.remote.shelf}.${i.spec.remote.slot}`,
      usable: i.usable,
      bufferCount: i.advert?.bufferCount ?? 0,
      pending: i.pending,
    }));
  }

  get pending(): number {
    return this.table.size;
  }

  // ---- advertisements ----------------------------------------------------------------------

  /** One chunk of a peer's advertisement; a complete generation replaces what the peer offered. */
  handleAdverts(peer: string, a: AdvertChunk, now: number): void {
    let st = this.adverts.get(peer);
    if (!st) {
      st = EMPTY_ADVERTS();
      this.adverts.set(peer, st);
    }
    if (st.partial === null || st.partial.generation !== a.generation || st.partial.chunks !== a.chunks) {
      st.partial = { generation: a.generation, chunks: a.chunks, got: new Map() };
    }
    st.partial.got.set(a.chunk, a.targets);
    if (st.partial.got.size < a.chunks) return;
    const byAddress = new Map<number, TargetAdvert>();
    const byName = new Map<string, TargetAdvert>();
    for (const targets of st.partial.got.values()) {
      for (const t of targets) {
        byAddress.set(t.shelf * 256 + t.slot, t);
        if (t.name !== '') byName.set(t.name, t);
      }
    }
    st.byAddress = byAddress;
    st.byName = byName;
    st.receivedAt = now;
    st.partial = null;
    for (const imp of this.imports) {
      if (imp.removed || imp.spec.peer !== peer) continue;
      const adv = this.advertFor(imp, st);
      if (adv === null && !imp.reportedMissing) {
        // A typo in the import, or a grant the peer does not give us: say so once.
        this.log.warn(
          `${imp.label}: peer ${peer} does not offer this target (not granted, or no such target)`,
          imp.fields,
        );
      }
      imp.reportedMissing = adv === null;
      imp.advert = adv;
      if (adv) imp.config = adv.configString;
    }
    this.refresh(now);
  }

  /**
   * Re-evaluates which imports are usable (answered and announced: the peer offers the target and
   * is reachable now); announces those that just became usable.
   */
  refresh(now: number): void {
    for (const [name, r] of this.requests) {
      const reachable = this.ports.get(name)?.reachable(now) ?? false;
      // A peer that comes back gets its held requests at once, not at their next timeout.
      if (reachable && !r.wasReachable) {
        r.reachableAt = now;
        if (this.table.size > 0) this.nextDue = Number.NEGATIVE_INFINITY;
      }
      r.wasReachable = reachable;
    }
    for (const imp of this.imports) {
      if (imp.removed) continue;
      const port = this.ports.get(imp.spec.peer);
      const usable = imp.advert !== null && port !== undefined && port.reachable(now);
      if (usable !== imp.usable) {
        imp.usable = usable;
        imp.changed = true;
      }
      // A peer that flaps its advertisements must not turn into a broadcast and log storm here:
      // a change is logged and announced at most once a second (a later tick catches up).
      if (!imp.changed || now - imp.lastFlipAt < 1000) continue;
      imp.changed = false;
      imp.lastFlipAt = now;
      this.log[imp.usable ? 'info' : 'warn'](
        `${imp.label}: ${imp.usable ? 'usable' : 'not usable'}`,
        imp.fields,
      );
      if (imp.usable) this.announce(imp);
    }
  }

  /** Periodic work: resend and fail what is due, re-evaluate usability. */
  tick(now: number): void {
    this.refresh(now);
    this.retransmit(now);
  }

  /** When the next resend or failure is due (ms); +Infinity when nothing is pending. */
  nextDueAt(): number {
    return this.table.size === 0 ? Number.POSITIVE_INFINITY : this.nextDue;
  }

  /**
   * Resends every request whose timeout passed, fails those older than failAfterMs. One pass over
   * the table's typed arrays; it runs only when something is due.
   */
  retransmit(now: number): void {
    if (this.table.size === 0 || now < this.nextDue) return;
    let next = Number.POSITIVE_INFINITY;
    const cap = this.table.capacity;
    for (let s = 0; s < cap; s++) {
      if (!this.table.isLive(s)) continue;
      const imp = this.imports[this.pImport[s]!]!;
      const r = this.requests.get(imp.spec.peer)!;
      if (now - this.pFirstAt[s]! >= this.failAfterMs) {
        this.fail(s, imp, r);
        continue;
      }
      if (this.pDueAt[s]! > now && this.pSentAt[s]! >= r.reachableAt) {
        if (this.pDueAt[s]! < next) next = this.pDueAt[s]!;
        continue;
      }
      this.sendSlot(s, imp, r, now);
      if (this.pDueAt[s]! < next) next = this.pDueAt[s]!;
    }
    for (const r of this.requests.values())
      if (r.reachableAt === Number.POSITIVE_INFINITY) r.reachableAt = now;
    this.nextDue = next;
  }

  /** A link came back (or changed MTU/MAC): tell its initiators about every usable import again. */
  linkUp(linkId: number): void {
    for (const imp of this.byLink[linkId]?.values() ?? []) if (imp.usable) this.announce(imp, [linkId]);
  }

  private announce(imp: ImportRuntime, linkIds: readonly number[] = imp.linkIds): void {
    for (const id of linkIds) {
      const link = this.links[id]!;
      const slot = link.txSlot();
      const len = this.writeConfigReply(slot, link, imp, BROADCAST, 0, 0, ConfigCmd.READ);
      if (len === 0) continue;
      link.txCommit(len);
      this.stats.announcements++;
    }
  }

  // ---- local frames ------------------------------------------------------------------------

  /** One receive batch of local link `linkId`. */
  handleFrames(
    linkId: number,
    frames: readonly Buffer[],
    lengths: Int32Array | readonly number[],
    count: number,
    now: number,
  ): void {
    const map = this.byLink[linkId];
    const link = this.links[linkId];
    if (map === undefined || link === undefined) return;
    const st = this.stats;
    for (let i = 0; i < count; i++) {
      const len = lengths[i]!;
      const f = frames[i]!;
      st.framesIn++;
      if (len < ETH_HEADER_SIZE + PDU_COMMON_HEADER || f[12] !== 0x88 || f[13] !== 0xa2) {
        st.notForUs++;
        continue;
      }
      const p = ETH_HEADER_SIZE;
      if (isResponsePdu(f, p)) {
        st.notForUs++;
        continue;
      }
      if (f[p]! >>> 4 !== AOE_VERSION || isErrorPdu(f, p)) {
        st.dropped++;
        continue;
      }
      if (isGroupMac(f, Off.SRC)) {
        st.groupSource++;
        continue;
      }
      const toUs = macEquals(f, Off.DST, link.mac);
      if (!toUs && !isGroupMac(f, Off.DST)) {
        st.notForUs++;
        continue;
      }
      const major = pduMajor(f, p);
      const minor = pduMinor(f, p);
      if (major !== 0xffff && minor !== 0xff) {
        const imp = map.get(major * 256 + minor);
        if (imp === undefined) st.notForUs++;
        else this.request(imp, linkId, link, f, len, now, false);
        continue;
      }
      let matched = false;
      for (const imp of map.values()) {
        if (
          (major === 0xffff || major === imp.spec.localShelf) &&
          (minor === 0xff || minor === imp.spec.localSlot)
        ) {
          matched = true;
          this.request(imp, linkId, link, f, len, now, true);
        }
      }
      if (!matched) st.notForUs++;
    }
  }

  private request(
    imp: ImportRuntime,
    linkId: number,
    link: FrameLink,
    f: Buffer,
    len: number,
    now: number,
    broadcast: boolean,
  ): void {
    const st = this.stats;
    const p = ETH_HEADER_SIZE;
    const command = f[p + PDU.COMMAND]!;
    let hash = 0;
    if (command === Command.ATA && !broadcast && len >= ETH_HEADER_SIZE + PDU_ATA_HEADER) {
      hash = this.ataHash(imp.index, f);
      const same = this.findRetransmission(imp.index, hash, f, len);
      if (same !== NO_SLOT) {
        // The initiator timed out and resent with a new tag: the request is already in flight
        // (or held); its answer — or its ATA error, even if the target has gone since — must
        // carry the newest tag, the only one Linux still waits for.
        this.pTag[same] = pduTag(f, p);
        this.pLink[same] = linkId;
        st.superseded++;
        return;
      }
      // A write must carry the data its sector count says: a target drops a short one silently,
      // which would hold a slot here and at the exporter until they expire.
      const sectors = f[p + PDU.ATA_SECTORS]!;
      if (
        (f[p + PDU.ATA_AFLAGS]! & 0x01) !== 0 &&
        (sectors === 0 || len < ETH_HEADER_SIZE + PDU_ATA_HEADER + sectors * 512)
      ) {
        st.dropped++;
        return;
      }
    }
    // A target the peer never offered (or withdrew) is not there: silence, as a missing target
    // gives; Linux keeps retrying. One it offered is only unreachable for now: its requests are
    // held and resent, but discovery (and anything broadcast) is answered only while it is usable.
    if (imp.advert === null || (broadcast && !imp.usable)) {
      st.unusable++;
      return;
    }
    if (command === Command.QUERY_CONFIG) {
      if (decodeQueryConfig(f, len, this.qc) !== DecodeError.OK) {
        st.dropped++;
        return;
      }
      if (this.qc.ccmd <= ConfigCmd.TEST_PREFIX) {
        if (imp.usable) this.answerQuery(imp, link, f);
        else st.unusable++;
        return;
      }
    } else if (command === Command.ATA && broadcast) {
      // One frame must not reach several targets (and Linux never sends it).
      st.dropped++;
      return;
    }
    this.relay(imp, linkId, f, len, command, hash, now);
  }

  /** Query Config read / test exact / test prefix (decoded into this.qc), answered from the advertisement. */
  private answerQuery(imp: ImportRuntime, link: FrameLink, f: Buffer): void {
    const q = this.qc;
    const cfg = imp.config;
    if (q.ccmd === ConfigCmd.TEST_EXACT || q.ccmd === ConfigCmd.TEST_PREFIX) {
      const exact = q.ccmd === ConfigCmd.TEST_EXACT;
      if (exact ? q.configLength !== cfg.length : q.configLength > cfg.length) return;
      for (let i = 0; i < q.configLength; i++) if (f[q.configOffset + i] !== cfg[i]) return;
    }
    const slot = link.txSlot();
    const n = this.writeConfigReply(slot, link, imp, f, Off.SRC, pduTag(f, ETH_HEADER_SIZE), q.ccmd);
    if (n === 0) return;
    link.txCommit(n);
    this.stats.answeredLocally++;
  }

  /**
   * A Query Config response for an import, from this gateway's MAC on `link`; 0 (counted) when
   * the config string does not fit the link's frame: the string comes from the peer, and writing
   * past the slot would throw out of the record or receive handler.
   */
  private writeConfigReply(
    out: Buffer,
    link: FrameLink,
    imp: ImportRuntime,
    dst: Uint8Array,
    dstOff: number,
    tag: number,
    ccmd: number,
  ): number {
    const adv = imp.advert!;
    if (CONFIG_STRING_OFFSET + imp.config.length > Math.min(link.maxFrame, out.length)) {
      this.stats.tooLarge++;
      return 0;
    }
    const h = this.replyHeader;
    for (let i = 0; i < MAC_SIZE; i++) h.dst[i] = dst[dstOff + i]!;
    h.src = link.mac;
    h.major = imp.spec.localShelf;
    h.minor = imp.spec.localSlot;
    h.tag = tag;
    const r = this.replyArg;
    r.bufferCount = Math.max(2, Math.min(adv.bufferCount, 0xffff));
    r.firmwareVersion = adv.firmware;
    r.sectorCount = this.sectorsFor(imp, link);
    r.ccmd = ccmd;
    return encodeQueryConfig(out, h, r, imp.config);
  }

  /** Sectors per frame: the exporter's, the local link's and the tunnel record's, whichever is least. */
  private sectorsFor(imp: ImportRuntime, link: FrameLink): number {
    const remote = imp.advert?.maxSectors || 2;
    const tunnel = Math.floor((this.maxRecord - REQUEST_PREFIX - PDU_ATA_HEADER) / 512);
    return Math.max(1, Math.min(remote, sectorsPerFrame(link.mtu), tunnel, 255));
  }

  /** `hash`: the ATA request's retransmission hash (ataHash), 0 for other commands. */
  private relay(
    imp: ImportRuntime,
    linkId: number,
    f: Buffer,
    len: number,
    command: number,
    hash: number,
    now: number,
  ): void {
    const st = this.stats;
    const port = this.ports.get(imp.spec.peer);
    const r = this.requests.get(imp.spec.peer);
    const adv = imp.advert;
    if (port === undefined || r === undefined || adv === null) {
      st.unusable++;
      return;
    }
    const pduLen = len - ETH_HEADER_SIZE;
    if (REQUEST_PREFIX + pduLen > this.maxRecord) {
      st.tooLarge++;
      return;
    }
    // One import (one initiator flooding it, or one peer that never answers) may hold a share of
    // the table, not all of it: the other imports keep working.
    if (imp.pending >= Math.max(16, Math.min(4 * adv.bufferCount, this.table.capacity >> 2))) {
      st.tableFull++;
      return;
    }
    const s = this.table.take(now);
    if (s === NO_SLOT) {
      st.tableFull++;
      return;
    }
    this.pImport[s] = imp.index;
    imp.pending++;
    this.pLink[s] = linkId;
    this.pTag[s] = pduTag(f, ETH_HEADER_SIZE);
    this.pCommand[s] = command;
    const mo = s * MAC_SIZE;
    for (let i = 0; i < MAC_SIZE; i++) this.pMac[mo + i] = f[Off.SRC + i]!;
    let out = this.pRecord[s] ?? null;
    const recLen = REQUEST_PREFIX + pduLen;
    if (out === null || out.length < recLen) {
      // Once per slot (and when a larger frame first uses it): no allocation per request.
      out = Buffer.alloc(Math.max(recLen, 1100));
      this.pRecord[s] = out;
    }
    this.pLen[s] = recLen;
    for (let i = 0; i < MAC_SIZE; i++) out[REQUEST.MAC + i] = f[Off.SRC + i]!;
    copyBytes(f, ETH_HEADER_SIZE, out, REQUEST_PREFIX, pduLen);
    setPduTag(out, REQUEST_PREFIX, this.table.tagOf(s));
    setPduAddress(out, REQUEST_PREFIX, adv.shelf, adv.slot);
    this.pSeq[s] = 0; // numbered on first send
    this.pEpoch[s] = 0;
    this.pPrevEpoch[s] = 0;
    this.pTries[s] = 0;
    this.pDeferred[s] = 0;
    this.pFirstAt[s] = now;
    this.pHash[s] = hash;
    if (command === Command.ATA) this.hashInsert(s, hash);
    this.sendSlot(s, imp, r, now);
    if (this.pDueAt[s]! < this.nextDue) this.nextDue = this.pDueAt[s]!;
    st.relayed++;
  }

  /**
   * Sends (or resends) slot `s`: numbers it if new or if its number may no longer run (an epoch
   * change, or below the fence), writes the current fence, and sets the next timeout. A peer that
   * cannot be sent to now leaves the request held for the next try.
   */
  private sendSlot(s: number, imp: ImportRuntime, r: PeerRequests, now: number): void {
    const port = this.ports.get(imp.spec.peer)!;
    if (!r.helloSeen) {
      // Until the peer's hello fixes our epoch nothing is numbered or sent: held.
      this.pDueAt[s] = Math.min(now + 100, this.pFirstAt[s]! + this.failAfterMs);
      return;
    }
    const out = this.pRecord[s]!;
    // A request far behind the newest would leave the exporter's window (it refuses seqs more
    // than REQUEST_WINDOW below its highest): fence it off and give it a fresh number.
    if (this.pEpoch[s] === r.epoch && this.pSeq[s]! > 0 && r.nextSeq - this.pSeq[s]! > REQUEST_WINDOW / 2)
      r.fence = Math.max(r.fence, this.pSeq[s]! + 1);
    if (this.pEpoch[s] !== r.epoch || this.pSeq[s]! < r.fence) {
      if (this.pEpoch[s] !== 0) {
        // The old number may still run at the exporter (once); remember it, so its answer is
        // recognised — and then the new number is fenced (handleResponse).
        this.stats.reissued++;
        this.pPrevEpoch[s] = this.pEpoch[s]!;
        this.pPrevSeq[s] = this.pSeq[s]!;
      }
      this.pEpoch[s] = r.epoch;
      this.pSeq[s] = r.nextSeq++;
      // A new number is a new request for the exporter: it may run once more (same data).
      this.pTries[s] = 0;
      writeU32(out, REQUEST.EPOCH, r.epoch);
      writeU64Number(out, REQUEST.SEQ, this.pSeq[s]!);
    }
    writeU64Number(out, REQUEST.FENCE, r.fence);
    const tries = Math.min(this.pTries[s]! + 1, 255);
    this.pTries[s] = tries;
    this.pDeferred[s] = 0;
    this.pSentAt[s] = now;
    // Due again at its next timeout, or when it is to be failed, whichever is first.
    this.pDueAt[s] = Math.min(now + r.rtt.rtoMs(tries), this.pFirstAt[s]! + this.failAfterMs);
    if (tries > 1) this.stats.retransmits++;
    // Unanswered several times: the daemon decides what that suggests (a lost session, or a path
    // that no longer carries datagrams this large), at most once a second.
    if (tries >= 3) port.nudge(now);
    if (!port.send(RECORD_AOE_REQUEST, out, 0, this.pLen[s]!)) this.stats.sendFailed++;
  }

  /**
   * Gives up on slot `s` (older than failAfterMs): an ATA request is answered with an ATA error
   * (status DRDY|ERR, error ABRT), which Linux reports for that I/O while the device stays up.
   * Every later send carries a fence above its seq, so the request can never run after them.
   */
  private fail(s: number, imp: ImportRuntime, r: PeerRequests): void {
    if (this.pEpoch[s] === r.epoch && this.pSeq[s]! + 1 > r.fence) r.fence = this.pSeq[s]! + 1;
    const link = this.links[this.pLink[s]!];
    const rec = this.pRecord[s]!;
    if (
      this.pCommand[s] === Command.ATA &&
      link !== undefined &&
      this.pLen[s]! >= REQUEST_PREFIX + PDU_ATA_HEADER
    ) {
      const out = link.txSlot();
      const n = writeFrame(out, this.pMac, s * MAC_SIZE, link.mac, 0, rec, REQUEST_PREFIX, PDU_ATA_HEADER);
      const p = ETH_HEADER_SIZE;
      out[p + PDU.VER_FLAGS] = (AOE_VERSION << 4) | Flag.RESPONSE;
      out[p + PDU.ERROR] = 0;
      setPduTag(out, p, this.pTag[s]!);
      setPduAddress(out, p, imp.spec.localShelf, imp.spec.localSlot);
      out[p + PDU.ATA_ERR_FEATURE] = AtaErrorBit.ABRT;
      out[p + PDU.ATA_CMD_STATUS] = AtaStatus.DRDY | AtaStatus.ERR;
      link.txCommit(n);
      this.stats.failed++;
    } else {
      this.stats.abandoned++;
    }
    this.releaseSlot(s);
  }

  /** A hash of what identifies an ATA request apart from its tag: import, initiator, argument. */
  private ataHash(importIndex: number, f: Buffer): number {
    let h = (0x811c9dc5 ^ importIndex) >>> 0;
    for (let i = Off.SRC; i < Off.SRC + MAC_SIZE; i++) h = Math.imul(h ^ f[i]!, 0x01000193);
    const a = ETH_HEADER_SIZE + PDU.ATA_AFLAGS;
    for (let i = a; i < a + 10; i++) if (i !== a + 1) h = Math.imul(h ^ f[i]!, 0x01000193);
    return h >>> 0;
  }

  /** A pending ATA request of this import from the same initiator with the same argument and data. */
  private findRetransmission(importIndex: number, hash: number, f: Buffer, len: number): number {
    const pduLen = len - ETH_HEADER_SIZE;
    for (let s = this.buckets[hash & (this.buckets.length - 1)]!; s !== NO_SLOT; s = this.pNext[s]!) {
      if (this.pHash[s] !== hash || this.pImport[s] !== importIndex) continue;
      if (this.pLen[s] !== REQUEST_PREFIX + pduLen) continue;
      if (!macEquals(f, Off.SRC, this.pMac.subarray(s * MAC_SIZE, s * MAC_SIZE + MAC_SIZE))) continue;
      const rec = this.pRecord[s]!;
      let same = true;
      // The argument (but the error/feature byte) and every data byte: a different write to the
      // same sectors is a new request, not a retransmission.
      for (let i: number = PDU.ATA_AFLAGS; i < pduLen && same; i++) {
        if (i === PDU.ATA_ERR_FEATURE) continue;
        if (rec[REQUEST_PREFIX + i] !== f[ETH_HEADER_SIZE + i]) same = false;
      }
      if (same) return s;
    }
    return NO_SLOT;
  }

  private hashInsert(s: number, hash: number): void {
    const b = hash & (this.buckets.length - 1);
    this.pNext[s] = this.buckets[b]!;
    this.buckets[b] = s;
  }

  private hashRemove(s: number): void {
    const b = this.pHash[s]! & (this.buckets.length - 1);
    let prev = NO_SLOT;
    for (let x = this.buckets[b]!; x !== NO_SLOT; x = this.pNext[x]!) {
      if (x === s) {
        if (prev === NO_SLOT) this.buckets[b] = this.pNext[x]!;
        else this.pNext[prev] = this.pNext[x]!;
        this.pNext[s] = NO_SLOT;
        return;
      }
      prev = x;
    }
  }

  private releaseSlot(s: number): void {
    const imp = this.imports[this.pImport[s]!];
    if (imp && imp.pending > 0) imp.pending--;
    if (this.pCommand[s] === Command.ATA) this.hashRemove(s);
    this.table.release(s);
  }

  // ---- replies from the exporter ------------------------------------------------------------

  /**
   * An AOE_IN_PROGRESS record from `peer`: the exporter got a resent copy of a request that is
   * still running there. Its next copy waits twice the request's age, within
   * [IN_PROGRESS_WAIT_MS, IN_PROGRESS_MAX_WAIT_MS], instead of the round-trip timeout (which backs
   * off to at most 1 s): a 4 s fsync then costs 5 copies of the data instead of 10
   * (reliability.test.ts). Not longer: a lost reply, or a request the exporter lost, is recovered
   * only by the next copy; and the peer's next hello (a new session: it may have restarted) sends
   * every put-off request at once. The failAfterMs deadline is unchanged. Anything that does not
   * name the request's current number at this peer is ignored (and counted as stale).
   */
  handleInProgress(peer: string, rec: Uint8Array, off: number, len: number, now: number): void {
    if (len !== IN_PROGRESS.LENGTH) {
      this.stats.dropped++;
      return;
    }
    const s = this.table.find(readU32(rec, off + IN_PROGRESS.TAG));
    if (
      s === NO_SLOT ||
      this.pSeq[s] === 0 || // held, never numbered: no copy of it can be running
      this.imports[this.pImport[s]!]!.spec.peer !== peer ||
      readU32(rec, off + IN_PROGRESS.EPOCH) !== this.pEpoch[s] ||
      readU64Number(rec, off + IN_PROGRESS.SEQ) !== this.pSeq[s]
    ) {
      this.stats.staleReplies++;
      return;
    }
    const age = now - this.pFirstAt[s]!;
    const wait = Math.min(Math.max(2 * age, IN_PROGRESS_WAIT_MS), IN_PROGRESS_MAX_WAIT_MS);
    const due = Math.min(now + wait, this.pFirstAt[s]! + this.failAfterMs);
    if (due > this.pDueAt[s]!) {
      this.pDueAt[s] = due;
      this.pDeferred[s] = 1;
    }
    this.stats.inProgress++;
  }

  /** An AOE_RESPONSE record from `peer`: buf[off, off + len) is the PDU. */
  handleResponse(peer: string, rec: Uint8Array, recOff: number, recLen: number, now: number): void {
    const st = this.stats;
    const buf = rec;
    const off = recOff + RESPONSE_PREFIX;
    const len = recLen - RESPONSE_PREFIX;
    if (len < PDU_COMMON_HEADER || !isResponsePdu(buf, off)) {
      st.dropped++;
      return;
    }
    const s = this.table.find(pduTag(buf, off));
    if (s === NO_SLOT) {
      st.staleReplies++;
      return;
    }
    const imp = this.imports[this.pImport[s]!]!;
    // A peer answers only its own requests: the request id alone must not let one peer answer
    // for another's target.
    if (imp.spec.peer !== peer || buf[off + PDU.COMMAND] !== this.pCommand[s]) {
      st.foreignReplies++;
      return;
    }
    // The answer names the request number it answers: the current one, or the one before a
    // renumbering. Anything else (an older process's answer that happens to carry this tag, an
    // older number) answers some other request.
    const epoch = readU32(rec, recOff + RESPONSE.EPOCH);
    const seq = readU64Number(rec, recOff + RESPONSE.SEQ);
    const r = this.requests.get(peer)!;
    if (epoch === this.pEpoch[s] && seq === this.pSeq[s]) {
      // Karn: only a request sent once measures the round trip unambiguously.
      if (this.pTries[s] === 1) r.rtt.sample(now - this.pSentAt[s]!);
    } else if (this.pPrevEpoch[s] !== 0 && epoch === this.pPrevEpoch[s] && seq === this.pPrevSeq[s]) {
      // The old number ran; the new one may still be on its way: it must never run after this.
      if (this.pEpoch[s] === r.epoch) r.fence = Math.max(r.fence, this.pSeq[s]! + 1);
    } else {
      st.staleReplies++;
      return;
    }
    const link = this.links[this.pLink[s]!]!;
    if (ETH_HEADER_SIZE + len > link.maxFrame) {
      st.tooLarge++;
      this.releaseSlot(s);
      return;
    }
    const out = link.txSlot();
    const n = writeFrame(out, this.pMac, s * MAC_SIZE, link.mac, 0, buf, off, len);
    setPduTag(out, ETH_HEADER_SIZE, this.pTag[s]!);
    setPduAddress(out, ETH_HEADER_SIZE, imp.spec.localShelf, imp.spec.localSlot);
    // A relayed set changed the string: later local answers must say so.
    if (
      this.pCommand[s] === Command.QUERY_CONFIG &&
      !isErrorPdu(buf, off) &&
      decodeQueryConfig(out, n, this.qc) === DecodeError.OK
    ) {
      imp.config = Uint8Array.from(
        out.subarray(this.qc.configOffset, this.qc.configOffset + this.qc.configLength),
      );
    }
    link.txCommit(n);
    this.releaseSlot(s);
    st.replies++;
  }
}

const BROADCAST = Buffer.alloc(MAC_SIZE, 0xff);
