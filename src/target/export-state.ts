/**
 * One export of the built-in target: its configuration, its protocol state (config string, Mac
 * Mask List, reservations — persisted by the driver through the engine's onStateChange hook) and
 * its counters.
 */
import {
  BROADCAST_MAJOR,
  BROADCAST_MINOR,
  LBA48_MAX,
  MAC_SIZE,
  MAX_CONFIG_STRING,
} from '../aoe/constants.js';
import { buildIdentify, IDENTIFY_SIZE } from '../aoe/identify.js';
import { AoegwError } from '../errors.js';
import type { BlockStore } from './block-store.js';
import {
  DEFAULT_INITIATOR_IDLE_MS,
  DEFAULT_MAX_INITIATORS,
  ExportCounters,
  type InitiatorCounters,
  InitiatorTable,
  MAX_INITIATORS,
} from './counters.js';
import {
  isNamespace,
  LOCAL_NS,
  type MacTable,
  macBuffer,
  macSet,
  macToNumber,
  Namespaces,
  PrincipalList,
} from './mac-list.js';

export const DEFAULT_BUFFER_COUNT = 64;
export const DEFAULT_MAX_MASK_ENTRIES = 64;

/**
 * An initiator as the target's access state knows it: the principal namespace of the link it
 * came in on ('' = local links, a peer gateway's public key in hex for that peer's link) and its
 * MAC. The same MAC in two namespaces is two principals.
 */
export interface Principal {
  ns: string;
  /** 6 bytes. */
  mac: Buffer;
}

/** The state an export keeps across restarts. Buffers are copies: the engine never keeps them. */
export interface PersistentExportState {
  /** Query Config string, ≤ 1024 bytes. */
  config: Buffer;
  /** Mac Mask List, in list order. */
  masks: Principal[];
  /** Reserve/Release list. */
  reserve: Principal[];
}

/** Initial state as given: a bare 6-byte MAC is a principal of the local namespace. */
export interface ExportStateInput {
  config: Buffer;
  masks?: readonly (Principal | Uint8Array)[];
  reserve?: readonly (Principal | Uint8Array)[];
}

export interface ExportOptions {
  /** 0..65534 (0xFFFF is the broadcast shelf). */
  shelf: number;
  /** 0..254 (0xFF is the broadcast slot). */
  slot: number;
  store: BlockStore;
  /** Name in stats and onStateChange; default `e${shelf}.${slot}`. */
  key?: string;
  /** Refuse writes even if the store accepts them (ORed with store.readOnly). */
  readOnly?: boolean;
  /** Advertised buffer count = max ATA requests accepted per receive batch; default 64, min 2, max 65535. */
  bufferCount?: number;
  /**
   * Requests waiting for the store at most (1..65535; default 2 × bufferCount, at least 64): a slow
   * store backs up alone, its requests beyond this are dropped (the initiator retransmits).
   */
  queueLimit?: number;
  /** Max sectors per ATA command (1..255); the link MTU limits it further. Default 255. */
  maxSectorsPerFrame?: number;
  /**
   * Static allow-list of local MACs: frames on local links from other MACs are dropped (counted).
   * It does not apply to peer links (another principal namespace: a peer's grant is its list).
   * Empty/undefined = everyone.
   */
  allowMacs?: readonly Uint8Array[];
  /** Links this export is served on; undefined = every link. */
  linkIds?: readonly number[];
  /** IDENTIFY strings (ASCII; 20 / 40 / 8 characters). */
  serial?: string;
  /** IDENTIFY world wide name (64 bits), e.g. derived from a stable export name. */
  wwn?: bigint;
  model?: string;
  firmware?: string;
  /** Query Config firmware version field (16 bits). Default 1. */
  firmwareVersion?: number;
  /** Mac Mask List capacity, 1..255 (vblade: 32). Default 64, which fits a reply on any link. */
  maxMaskEntries?: number;
  /** Per-initiator counters kept, 0..256 (beyond: aggregated as 'other'). Default 32. */
  maxInitiators?: number;
  /** An initiator idle this long (ms) may be aged out into 'other' when the table is full. Default 10 min. */
  initiatorIdleMs?: number;
  /** State loaded from the state file. */
  initialState?: ExportStateInput;
}

function fail(msg: string): AoegwError {
  return new AoegwError('ERR_TARGET_CONFIG', msg);
}

function intIn(name: string, v: number | undefined, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min || v > max)
    throw fail(`${name} must be an integer in ${min}..${max}, got ${v}`);
  return v;
}

function macNumbers(name: string, macs: readonly Uint8Array[]): number[] {
  return macs.map((m, i) => {
    if (!(m instanceof Uint8Array) || m.length !== MAC_SIZE) throw fail(`${name}[${i}] is not a 6-byte MAC`);
    return macToNumber(m);
  });
}

function principals(
  name: string,
  list: readonly (Principal | Uint8Array)[],
  namespaces: Namespaces,
): { nss: number[]; macs: number[] } {
  const nss: number[] = [];
  const macs: number[] = [];
  list.forEach((p, i) => {
    const bare = p instanceof Uint8Array;
    const ns = bare ? LOCAL_NS : (p as Principal | null)?.ns;
    const mac = bare ? p : (p as Principal | null)?.mac;
    if (!isNamespace(ns)) throw fail(`${name}[${i}]: namespace must be '' or lowercase hex`);
    if (!(mac instanceof Uint8Array) || mac.length !== MAC_SIZE)
      throw fail(`${name}[${i}] is not a 6-byte MAC`);
    nss.push(namespaces.intern(ns));
    macs.push(macToNumber(mac));
  });
  return { nss, macs };
}

export function exportKeyOf(shelf: number, slot: number): string {
  return `e${shelf}.${slot}`;
}

/** Runtime state of one export (internal to the engine). */
export class ExportRuntime {
  readonly key: string;
  readonly shelf: number;
  readonly slot: number;
  /** shelf × 256 + slot. */
  readonly address: number;
  /** Creation order; sort key when coalescing. */
  readonly ordinal: number;
  readonly store: BlockStore;
  readonly readOnly: boolean;
  readonly sectors: number;
  readonly bufferCount: number;
  readonly maxSectors: number;
  readonly firmwareVersion: number;
  readonly maxMasks: number;
  readonly identify: Buffer = Buffer.alloc(IDENTIFY_SIZE);
  readonly allow: MacTable<true> | null;
  readonly linkIds: Set<number> | null;
  config: Buffer;
  /** Principals (namespace id, MAC): see Namespaces. */
  readonly masks = new PrincipalList();
  readonly reserve = new PrincipalList();
  private readonly namespaces: Namespaces;
  readonly c = new ExportCounters();
  readonly initiators: InitiatorTable;
  /** Requests waiting for the store at most (see DataPath); beyond, requests are dropped. */
  readonly queueLimit: number;
  // Per-batch scratch (valid while batchGen equals the engine's generation).
  batchGen = -1;
  batchUsed = 0;
  // DataPath state: requests waiting for the store, the queue of writes/FLUSHes not yet started
  // (pending-table indices, -1 = none), the commit group in flight.
  outstanding = 0;
  /** Holds a share of the staging pool (DataPath.join / leave). */
  poolMember = false;
  qHead = -1;
  qTail = -1;
  gHead = -1;
  groupInFlight = false;
  groupFailed = false;
  groupRemaining = 0;
  batchMark = -1;

  /** `namespaces`: the engine's (shared by its exports and links); a private one by default. */
  constructor(cfg: ExportOptions, ordinal: number, namespaces = new Namespaces()) {
    this.namespaces = namespaces;
    if (typeof cfg !== 'object' || cfg === null) throw fail('export config must be an object');
    if (cfg.shelf === undefined || cfg.slot === undefined) throw fail('export needs a shelf and a slot');
    this.shelf = intIn('shelf', cfg.shelf, 0, BROADCAST_MAJOR - 1, 0);
    this.slot = intIn('slot', cfg.slot, 0, BROADCAST_MINOR - 1, 0);
    this.key = cfg.key ?? exportKeyOf(this.shelf, this.slot);
    this.address = this.shelf * 256 + this.slot;
    this.ordinal = ordinal;
    const store = cfg.store;
    if (!store || typeof store.read !== 'function') throw fail(`export ${this.key} has no store`);
    if (!Number.isInteger(store.sectors) || store.sectors < 0 || store.sectors > LBA48_MAX) {
      throw fail(`export ${this.key}: store capacity ${store.sectors} sectors out of range`);
    }
    this.store = store;
    this.sectors = store.sectors;
    this.readOnly = cfg.readOnly === true || store.readOnly;
    // Linux makes a device with a buffer count < 2 unusable (AOE-FACTS): clamp rather than refuse.
    this.bufferCount = Math.min(
      0xffff,
      Math.max(2, Math.floor(cfg.bufferCount ?? DEFAULT_BUFFER_COUNT) || 2),
    );
    this.queueLimit = intIn('queueLimit', cfg.queueLimit, 1, 65535, Math.max(64, 2 * this.bufferCount));
    this.maxSectors = intIn('maxSectorsPerFrame', cfg.maxSectorsPerFrame, 1, 255, 255);
    this.firmwareVersion = intIn('firmwareVersion', cfg.firmwareVersion, 0, 0xffff, 1);
    this.maxMasks = intIn('maxMaskEntries', cfg.maxMaskEntries, 1, 255, DEFAULT_MAX_MASK_ENTRIES);
    this.initiators = new InitiatorTable(
      intIn('maxInitiators', cfg.maxInitiators, 0, MAX_INITIATORS, DEFAULT_MAX_INITIATORS),
      intIn('initiatorIdleMs', cfg.initiatorIdleMs, 0, 2 ** 31, DEFAULT_INITIATOR_IDLE_MS),
    );
    if (cfg.allowMacs && cfg.allowMacs.length > 0) {
      macNumbers('allowMacs', cfg.allowMacs); // validates
      this.allow = macSet(cfg.allowMacs);
    } else {
      this.allow = null;
    }
    this.linkIds = cfg.linkIds ? new Set(cfg.linkIds) : null;
    buildIdentify(this.identify, {
      sectors: this.sectors,
      serial: cfg.serial ?? `AOEGW-E${this.shelf}.${this.slot}`,
      model: cfg.model ?? 'aoegw built-in target',
      firmware: cfg.firmware ?? '0.1',
      ...(cfg.wwn !== undefined ? { wwn: cfg.wwn } : {}),
    });
    const st = cfg.initialState;
    this.config = Buffer.alloc(0);
    if (st) {
      if (!Buffer.isBuffer(st.config) || st.config.length > MAX_CONFIG_STRING) {
        throw fail(`export ${this.key}: config string must be a Buffer of at most 1024 bytes`);
      }
      this.config = Buffer.from(st.config);
      const masks = principals('masks', st.masks ?? [], namespaces);
      if (masks.macs.length > this.maxMasks)
        throw fail(`export ${this.key}: ${masks.macs.length} masks exceed ${this.maxMasks}`);
      this.masks.setAll(masks.nss, masks.macs);
      const reserve = principals('reserve', st.reserve ?? [], namespaces);
      if (reserve.macs.length > 255) throw fail(`export ${this.key}: more than 255 reserve entries`);
      this.reserve.setAll(reserve.nss, reserve.macs);
    }
  }

  servedOn(linkId: number): boolean {
    return this.linkIds === null || this.linkIds.has(linkId);
  }

  /** Counters of one initiator (bounded table, preallocated: see InitiatorTable). */
  initiator(hi: number, lo: number, now: number, ns: number): InitiatorCounters {
    return this.initiators.get(hi, lo, now, ns);
  }

  /** Name of a namespace id (stats, persistence). */
  nsName(id: number): string {
    return this.namespaces.name(id);
  }

  /** Fresh copies of the persistent state. */
  state(): PersistentExportState {
    return {
      config: Buffer.from(this.config),
      masks: this.list(this.masks),
      reserve: this.list(this.reserve),
    };
  }

  private list(l: PrincipalList): Principal[] {
    const out: Principal[] = [];
    for (let i = 0; i < l.size; i++)
      out.push({ ns: this.namespaces.name(l.nsAt(i)), mac: macBuffer(l.macAt(i)) });
    return out;
  }
}
