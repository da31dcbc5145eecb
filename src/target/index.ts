/**
 * Built-in AoE target core (sans-I/O): the engine, the store interface it serves from, and the
 * in-memory store. The driver (links, file stores, state files) lives around it.
 */
export type { BlockStore } from './block-store.js';
export type {
  EngineStatsSnapshot,
  ExportStatsSnapshot,
  InitiatorStatsSnapshot,
  LinkStatsSnapshot,
} from './counters.js';
export { type LinkInfo, TargetEngine, type TargetEngineOptions } from './engine.js';
export {
  DEFAULT_BUFFER_COUNT,
  DEFAULT_MAX_MASK_ENTRIES,
  type ExportOptions,
  type ExportStateInput,
  exportKeyOf,
  type PersistentExportState,
  type Principal,
} from './export-state.js';
export { LOCAL_NS, macFromNumber, macToNumber } from './mac-list.js';
export { MemoryStore, type MemoryStoreOptions, type StoreOp } from './memory-store.js';
export { DataViews, type TxSink } from './tx-sink.js';
