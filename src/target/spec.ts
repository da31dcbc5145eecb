import { macFromString } from '../aoe/mac.js';
import type { ServiceMac } from '../io/service-mac.js';
import type { Log } from '../log.js';
/**
 * What the target driver is asked to serve: links and exports as plain, validated data. The config
 * layer (config/target-config.ts) produces these from a file or command-line flags; the target
 * owns the types, so nothing in target/ imports from the layers above it.
 */

export type Durability = 'sync' | 'writeback' | 'direct';

export interface LinkSpec {
  name: string;
  iface: string;
  netns?: string;
  batch: number;
  /** Keep polling this many µs after the last frame before sleeping (0 = off). */
  busyPollUs: number;
  /** `iface` names a TAP device this process creates (for an initiator on the same host). */
  tap?: boolean;
  /** MTU of a TAP device. */
  mtu?: number;
  /**
   * Service MAC ("aa:bb:…", lowercase) set on `iface` while the link is open and put back after:
   * the address initiators know moves with an active/passive failover.
   */
  mac?: string;
  /**
   * Principal namespace of the initiators on this link (engine LinkInfo.principal): absent or ''
   * for a local segment; a peer gateway's public key in hex for that peer's link.
   */
  principal?: string;
  /**
   * Serves every export, whatever the export's own link list (a peer gateway's link: the peer's
   * grants decide what it reaches).
   */
  everyExport?: boolean;
}

export interface ExportSpec {
  shelf: number;
  slot: number;
  path: string;
  readOnly: boolean;
  durability: Durability;
  offset: number;
  length?: number;
  bufferCount: number;
  /** Link names this export is served on; empty = all links. */
  links: string[];
  /** Static MAC allow-list; empty = everyone (the AoE mask list still applies). */
  allowMacs: string[];
  serial?: string;
  model?: string;
  /** Stable name that follows the export through gateways (IDENTIFY serial when no serial is set). */
  name?: string;
}

/**
 * How block I/O reaches the kernel: `ring` = io_uring (off the event loop; start-up fails if the
 * kernel refuses it), `sync` = synchronous calls on the event loop (a slow disk stalls the
 * process), `auto` (default) = the ring when the kernel offers it, else sync with a warning.
 */
export type BlockIoMode = 'auto' | 'ring' | 'sync';
export const BLOCK_IO_MODES: readonly BlockIoMode[] = ['auto', 'ring', 'sync'];

export interface TargetSpec {
  stateFile: string;
  links: LinkSpec[];
  exports: ExportSpec[];
  /** Default 'auto'. */
  blockIo?: BlockIoMode;
}

/**
 * A link's service MAC, held by the daemon of `config` (the absolute path of its config file, if it
 * has one: `aoegw release-mac --config` finds the records by it).
 */
export function serviceMacOf(link: LinkSpec, config?: string): ServiceMac | undefined {
  const mac = link.mac === undefined ? null : macFromString(link.mac);
  if (!mac) return undefined;
  return config === undefined ? { mac } : { mac, config };
}

/** Says so when a link holds its service MAC without knowing the interface's own address. */
export function warnIfOwnMacUnknown(link: object, l: LinkSpec, log: Log): void {
  if ((link as { ownMacKnown?: boolean }).ownMacKnown === false) {
    log.warn(
      `link ${l.name}: ${l.iface} already had the service MAC ${l.mac} and no record of its own address: it cannot be put back at stop (set it by hand: ip link set ${l.iface} address …)`,
      { link: l.name },
    );
  }
}
