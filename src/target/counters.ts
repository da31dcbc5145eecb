/**
 * Counters of the target engine. Mutable classes with fixed numeric fields (cheap to bump on the
 * hot path, nothing allocated per frame) and plain snapshot objects for stats().
 */
import { formatMac } from '../aoe/mac.js';
import { macFromNumber } from './mac-list.js';
import { ServiceTimeHistogram, type ServiceTimeSnapshot } from './service-time.js';

export class LinkCounters {
  batches = 0;
  framesIn = 0;
  framesOut = 0;
  /** Truncated by the link, too short for their command, or inconsistent (e.g. write data missing). */
  malformed = 0;
  /** Not EtherType 0x88A2 (TAP links see everything). */
  notAoe = 0;
  /** Responses (R set): a target ignores them. */
  responses = 0;
  /** Unicast to another MAC, or for a shelf/slot no export on this link has. */
  notForUs = 0;
  /** Source MAC with the group bit (multicast/broadcast): never a real sender; answering it reflects. */
  groupSource = 0;
  /** Replies to state changes handed to the driver to send once durable (not in framesOut). */
  framesHeld = 0;
  /** Requests with the E (error) flag set: only responses carry errors. */
  errorFlag = 0;
  /** Requests to the broadcast shelf or slot refused by the per-source rate limit (amplification). */
  broadcastRateLimited = 0;
}

export class InitiatorCounters {
  /** The principal: namespace id and MAC halves (see mac-list.ts); meaningless for the aggregate. */
  ns = -1;
  hi = -1;
  lo = -1;
  requests = 0;
  bytesRead = 0;
  bytesWritten = 0;
  lastSeen = 0;
  /** Service time of its READ/WRITE/FLUSH requests (preallocated with the table). */
  readonly service = new ServiceTimeHistogram();

  reset(ns: number, hi: number, lo: number): void {
    this.ns = ns;
    this.hi = hi;
    this.lo = lo;
    this.requests = 0;
    this.bytesRead = 0;
    this.bytesWritten = 0;
    this.lastSeen = 0;
    this.service.reset();
  }
}

/** Default per-export initiators tracked by MAC, and how long one may be idle before it is aged out. */
export const DEFAULT_MAX_INITIATORS = 32;
export const MAX_INITIATORS = 256;
export const DEFAULT_INITIATOR_IDLE_MS = 600_000;

/**
 * Per-initiator counters of one export, bounded whatever the number of (spoofed) source MACs: at
 * most `capacity` MACs, preallocated; when full, the entry idle longest is folded into `other` and
 * reused if it was idle for `idleMs`, else the new MAC counts in `other`. After the table filled,
 * a new MAC allocates nothing. Lookups scan (capacity ≤ 256) behind a last-hit cache: a batch
 * usually comes from one initiator.
 */
export class InitiatorTable {
  private readonly entries: InitiatorCounters[];
  private n = 0;
  private last = -1;
  readonly other = new InitiatorCounters();
  /** True once anything was counted in `other`. */
  otherUsed = false;
  /** Entries aged out into `other`. */
  agedOut = 0;

  constructor(
    readonly capacity: number,
    private readonly idleMs = DEFAULT_INITIATOR_IDLE_MS,
  ) {
    this.entries = [];
    for (let i = 0; i < capacity; i++) this.entries.push(new InitiatorCounters());
  }

  get size(): number {
    return this.n;
  }

  /** Counters of principal (ns, hi, lo); ns 0 = the local namespace. */
  get(hi: number, lo: number, now: number, ns = 0): InitiatorCounters {
    const es = this.entries;
    const l = this.last;
    if (l >= 0 && es[l]!.hi === hi && es[l]!.lo === lo && es[l]!.ns === ns) return es[l]!;
    for (let i = 0; i < this.n; i++) {
      const e = es[i]!;
      if (e.hi === hi && e.lo === lo && e.ns === ns) {
        this.last = i;
        return e;
      }
    }
    if (this.n < this.capacity) {
      const e = es[this.n]!;
      e.reset(ns, hi, lo);
      this.last = this.n++;
      return e;
    }
    let idle = -1;
    for (let i = 0; i < this.n; i++) if (idle < 0 || es[i]!.lastSeen < es[idle]!.lastSeen) idle = i;
    this.otherUsed = true;
    if (idle < 0 || now - es[idle]!.lastSeen < this.idleMs) return this.other;
    const e = es[idle]!;
    const o = this.other;
    o.requests += e.requests;
    o.bytesRead += e.bytesRead;
    o.bytesWritten += e.bytesWritten;
    o.lastSeen = Math.max(o.lastSeen, e.lastSeen);
    o.service.add(e.service);
    this.agedOut++;
    e.reset(ns, hi, lo);
    this.last = idle;
    return e;
  }

  /** Entries by requests, busiest first (off the hot path). */
  forEach(fn: (c: InitiatorCounters) => void): void {
    const list = this.entries.slice(0, this.n).sort((a, b) => b.requests - a.requests);
    for (const c of list) fn(c);
  }
}

export class ExportCounters {
  // Requests by AoE command (after the allow-list).
  ata = 0;
  queryConfig = 0;
  macMask = 0;
  reserve = 0;
  /** Bad version, unknown or vendor command. */
  otherCommand = 0;
  // ATA requests by opcode (after mask, reservation and buffer-count checks).
  ataRead = 0;
  ataWrite = 0;
  ataIdentify = 0;
  ataFlush = 0;
  ataCheckPower = 0;
  ataOther = 0;
  // Successful data transfer.
  reads = 0;
  writes = 0;
  bytesRead = 0;
  bytesWritten = 0;
  // Store calls: fewer readv/writev than reads/writes means coalescing worked.
  storeReadv = 0;
  storeWritev = 0;
  storeCommits = 0;
  storeFlushes = 0;
  // Errors answered.
  ataErrors = 0;
  aoeErrors = 0;
  storeErrors = 0;
  // Dropped without an answer.
  dropAllowList = 0;
  dropMasked = 0;
  dropBufferFull = 0;
  dropBroadcastAta = 0;
  dropMalformed = 0;
  /** Query Config test (ccmd 1/2) that did not match: no answer, as the protocol says. */
  configTestMiss = 0;
  stateChanges = 0;
  /** State-changing requests refused by the per-source rate limit (dropped, not answered). */
  dropStateRate = 0;
  /** Service time of READ/WRITE/FLUSH requests answered (see data-path.ts). */
  readonly service = new ServiceTimeHistogram();
}

export interface LinkStatsSnapshot {
  name: string;
  mac: string;
  mtu: number;
  batches: number;
  framesIn: number;
  framesOut: number;
  malformed: number;
  notAoe: number;
  responses: number;
  notForUs: number;
  groupSource: number;
  framesHeld: number;
  errorFlag: number;
  broadcastRateLimited: number;
}

export interface InitiatorStatsSnapshot {
  requests: number;
  bytesRead: number;
  bytesWritten: number;
  lastSeen: number;
  serviceTime: ServiceTimeSnapshot;
}

export interface ExportStatsSnapshot {
  shelf: number;
  slot: number;
  /** The store's description. */
  storeDescription: string;
  readOnly: boolean;
  requests: { ata: number; queryConfig: number; macMask: number; reserve: number; other: number };
  ata: { read: number; write: number; identify: number; flush: number; checkPower: number; other: number };
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  store: { readv: number; writev: number; commits: number; flushes: number };
  errors: { ata: number; aoe: number; store: number };
  drops: {
    allowList: number;
    masked: number;
    bufferFull: number;
    broadcastAta: number;
    malformed: number;
    stateRate: number;
  };
  configTestMiss: number;
  stateChanges: number;
  /** Service time of READ/WRITE/FLUSH requests answered since the export started (service-time.ts). */
  serviceTime: ServiceTimeSnapshot;
  /** READ/WRITE/FLUSH requests accepted and waiting for the store now. */
  pending: number;
  /**
   * Keyed by MAC ('aa:bb:cc:dd:ee:ff'), busiest first, at most the per-export limit; 'other'
   * aggregates MACs beyond it and entries aged out after being idle.
   */
  initiators: Record<string, InitiatorStatsSnapshot>;
}

export interface EngineStatsSnapshot {
  links: Record<string, LinkStatsSnapshot>;
  exports: Record<string, ExportStatsSnapshot>;
  stateChangeErrors: number;
}

export function snapshotLink(name: string, mac: Uint8Array, mtu: number, c: LinkCounters): LinkStatsSnapshot {
  return {
    name,
    mac: formatMac(mac),
    mtu,
    batches: c.batches,
    framesIn: c.framesIn,
    framesOut: c.framesOut,
    malformed: c.malformed,
    notAoe: c.notAoe,
    responses: c.responses,
    notForUs: c.notForUs,
    groupSource: c.groupSource,
    framesHeld: c.framesHeld,
    errorFlag: c.errorFlag,
    broadcastRateLimited: c.broadcastRateLimited,
  };
}

/**
 * Keyed by MAC for the local namespace and by "namespace/MAC" (peer key hex / MAC) for the others:
 * one MAC behind two peers is two initiators.
 */
export function snapshotInitiators(
  table: InitiatorTable,
  nsName: (id: number) => string = () => '',
): Record<string, InitiatorStatsSnapshot> {
  const out: Record<string, InitiatorStatsSnapshot> = {};
  const mac = Buffer.alloc(6);
  const put = (name: string, c: InitiatorCounters) => {
    out[name] = {
      requests: c.requests,
      bytesRead: c.bytesRead,
      bytesWritten: c.bytesWritten,
      lastSeen: c.lastSeen,
      serviceTime: c.service.snapshot(),
    };
  };
  table.forEach((c) => {
    macFromNumber(c.hi * 0x100_0000 + c.lo, mac);
    const ns = nsName(c.ns);
    put(ns === '' ? formatMac(mac) : `${ns}/${formatMac(mac)}`, c);
  });
  if (table.otherUsed) put('other', table.other);
  return out;
}

export function snapshotExportCounters(
  c: ExportCounters,
): Omit<ExportStatsSnapshot, 'shelf' | 'slot' | 'storeDescription' | 'readOnly' | 'pending' | 'initiators'> {
  return {
    requests: {
      ata: c.ata,
      queryConfig: c.queryConfig,
      macMask: c.macMask,
      reserve: c.reserve,
      other: c.otherCommand,
    },
    ata: {
      read: c.ataRead,
      write: c.ataWrite,
      identify: c.ataIdentify,
      flush: c.ataFlush,
      checkPower: c.ataCheckPower,
      other: c.ataOther,
    },
    reads: c.reads,
    writes: c.writes,
    bytesRead: c.bytesRead,
    bytesWritten: c.bytesWritten,
    store: { readv: c.storeReadv, writev: c.storeWritev, commits: c.storeCommits, flushes: c.storeFlushes },
    errors: { ata: c.ataErrors, aoe: c.aoeErrors, store: c.storeErrors },
    drops: {
      allowList: c.dropAllowList,
      masked: c.dropMasked,
      bufferFull: c.dropBufferFull,
      broadcastAta: c.dropBroadcastAta,
      malformed: c.dropMalformed,
      stateRate: c.dropStateRate,
    },
    configTestMiss: c.configTestMiss,
    stateChanges: c.stateChanges,
    serviceTime: c.service.snapshot(),
  };
}
