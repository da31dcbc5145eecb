/**
 * Counters of the target engine. Mutable classes with fixed numeric fields (cheap to bump on the
 * hot path, nothing allocated per frame) and plain snapshot objects for stats().
 */
import { formatMac } from '../aoe/mac.js';
import { type MacTable, macFromNumber } from './mac-list.js';

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
}

export class InitiatorCounters {
  requests = 0;
  bytesRead = 0;
  bytesWritten = 0;
  lastSeen = 0;
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
}

export interface InitiatorStatsSnapshot {
  requests: number;
  bytesRead: number;
  bytesWritten: number;
  lastSeen: number;
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
  drops: { allowList: number; masked: number; bufferFull: number; broadcastAta: number; malformed: number };
  configTestMiss: number;
  stateChanges: number;
  /** Keyed by MAC ('aa:bb:cc:dd:ee:ff'); 'other' aggregates MACs beyond the per-export limit. */
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
  };
}

export function snapshotInitiators(
  table: MacTable<InitiatorCounters>,
  other: InitiatorCounters | null,
): Record<string, InitiatorStatsSnapshot> {
  const out: Record<string, InitiatorStatsSnapshot> = {};
  const mac = Buffer.alloc(6);
  const put = (name: string, c: InitiatorCounters) => {
    out[name] = {
      requests: c.requests,
      bytesRead: c.bytesRead,
      bytesWritten: c.bytesWritten,
      lastSeen: c.lastSeen,
    };
  };
  table.forEach((n, c) => {
    macFromNumber(n, mac);
    put(formatMac(mac), c);
  });
  if (other) put('other', other);
  return out;
}

export function snapshotExportCounters(
  c: ExportCounters,
): Omit<ExportStatsSnapshot, 'shelf' | 'slot' | 'storeDescription' | 'readOnly' | 'initiators'> {
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
    },
    configTestMiss: c.configTestMiss,
    stateChanges: c.stateChanges,
  };
}
