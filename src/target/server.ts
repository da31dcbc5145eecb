/**
 * The target's thin driver: opens the links and the file stores from a TargetSpec, wires every
 * link's receive batches into the one TargetEngine, persists protocol state, announces the exports
 * and shuts down cleanly. All protocol behaviour is in the engine.
 */

import { macFromString } from '../aoe/mac.js';
import { AoegwError } from '../errors.js';
import type { FrameLink } from '../io/frame-link.js';
import { PacketLink } from '../io/packet-link.js';
import type { BlockStore } from './block-store.js';
import type { EngineStatsSnapshot } from './counters.js';
import { TargetEngine } from './engine.js';
import { FileStore } from './file-store.js';
import { MemoryStore } from './memory-store.js';
import type { ExportSpec, LinkSpec, TargetSpec } from './spec.js';
import { StateFile } from './state-file.js';

export interface ServerStats {
  engine: EngineStatsSnapshot;
  links: Record<string, ReturnType<FrameLink['stats']>>;
  stateWriteErrors: number;
}

export interface TargetServerOptions {
  /** Opens a link by config (tests inject fakes); default: PacketLink. */
  openLink?: (link: LinkSpec) => FrameLink;
  log?: (line: string) => void;
  now?: () => number;
}

export class TargetServer {
  readonly engine: TargetEngine;
  private readonly links: { name: string; link: FrameLink }[] = [];
  private readonly stores: BlockStore[] = [];
  private readonly state: StateFile;
  private stopped = false;
  stateWriteErrors = 0;

  private constructor(
    private readonly cfg: TargetSpec,
    private readonly opts: TargetServerOptions,
  ) {
    this.state = new StateFile(cfg.stateFile);
    this.engine = new TargetEngine({
      // Staged here, written once at the end of the receive batch (see open()), before that
      // batch's replies leave: an acknowledged change is on disk, and a flood of state-changing
      // frames costs one atomic write per batch, not one per frame.
      onStateChange: (key, st) => this.state.stage(key, st),
      onError: (e) => this.log(`state file write failed: ${e.message}`),
    });
  }

  static start(cfg: TargetSpec, opts: TargetServerOptions = {}): TargetServer {
    const s = new TargetServer(cfg, opts);
    try {
      s.open();
    } catch (e) {
      s.stop();
      throw e;
    }
    return s;
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  private open(): void {
    const openLink =
      this.opts.openLink ??
      ((l: LinkSpec) =>
        PacketLink.open({
          iface: l.iface,
          batch: l.batch,
          busyPollUs: l.busyPollUs,
          ...(l.netns ? { netns: l.netns } : {}),
        }));
    const linkIds = new Map<string, number>();
    for (const [id, l] of this.cfg.links.entries()) {
      const link = openLink(l);
      this.links.push({ name: l.name, link });
      linkIds.set(l.name, id);
      this.engine.addLink(id, { mac: link.mac, mtu: link.mtu, name: l.name });
    }
    for (const e of this.cfg.exports) {
      const store = openStore(e);
      this.stores.push(store);
      const key = `e${e.shelf}.${e.slot}`;
      const initial = this.state.get(key);
      this.engine.addExport({
        shelf: e.shelf,
        slot: e.slot,
        key,
        store,
        readOnly: e.readOnly,
        bufferCount: e.bufferCount,
        allowMacs: e.allowMacs.map((m) => macFromString(m)!),
        ...(e.links.length ? { linkIds: e.links.map((n) => linkIds.get(n)!) } : {}),
        serial: e.serial ?? serialFor(e),
        model: e.model ?? 'aoegw built-in target',
        firmware: '0.1.0',
        ...(initial ? { initialState: initial } : {}),
      });
      this.log(
        `export ${key}: ${store.description}, ${store.sectors} sectors, buffer count ${e.bufferCount}`,
      );
    }
    const now = this.opts.now ?? (() => performance.now());
    for (const [id, { name, link }] of this.links.entries()) {
      link.onError((err) => this.log(`link ${name}: ${err.message}`));
      link.onBatch((frames, lens, count) => {
        this.engine.handleBatch(id, frames, lens, count, link, now());
        try {
          this.state.saveIfDirty();
        } catch (e) {
          // The change is in effect in memory and its reply is already built; say so loudly.
          this.stateWriteErrors++;
          this.log(`${(e as Error).message} (protocol state changes are NOT persisted)`);
        }
      });
      const n = this.engine.announce(id, link);
      link.flush();
      this.log(`link ${name}: serving ${n} exports, mtu ${link.mtu}`);
    }
  }

  stats(): ServerStats {
    const links: ServerStats['links'] = {};
    for (const { name, link } of this.links) links[name] = link.stats();
    return { engine: this.engine.stats(), links, stateWriteErrors: this.stateWriteErrors };
  }

  /**
   * Stops receiving, sends what is queued, and makes every acknowledged write durable. Batches are
   * served synchronously, so no request is half-done when this runs.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const { link } of this.links) {
      try {
        link.pause();
        link.close();
      } catch (e) {
        this.log(`closing link: ${(e as Error).message}`);
      }
    }
    let failure: unknown;
    for (const s of this.stores) {
      try {
        s.close();
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure) throw new AoegwError('ERR_SYSCALL', `closing a store failed: ${(failure as Error).message}`);
  }
}

/**
 * `memory:SIZE` (e.g. memory:1g) is a volatile RAM disk — for tests and as a benchmark ceiling;
 * anything else is a file or block device.
 */
function openStore(e: ExportSpec): BlockStore {
  const mem = /^memory:(\d+)([kmg]?)$/i.exec(e.path);
  if (mem) {
    const bytes =
      Number(mem[1]) *
      { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[mem[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
    if (bytes < 512 || bytes % 512 !== 0 || bytes > 64 * 1024 ** 3) {
      throw new AoegwError('ERR_USAGE', `export ${e.path}: size must be a multiple of 512 up to 64g`);
    }
    // Touch every page now: a RAM disk should own its RAM, and first-touch page faults would
    // otherwise be billed to the first writes (they made RAM writes look slower than tmpfs).
    return new MemoryStore(Buffer.allocUnsafe(bytes).fill(0), {
      readOnly: e.readOnly,
      description: `${e.path} (volatile)`,
    });
  }
  return new FileStore({
    path: e.path,
    readOnly: e.readOnly,
    durability: e.durability,
    offset: e.offset,
    ...(e.length !== undefined ? { length: e.length } : {}),
  });
}

/** A stable serial per export so initiators can tell exports apart. */
function serialFor(e: ExportSpec): string {
  return `AOEGW-${e.shelf}-${e.slot}`;
}
