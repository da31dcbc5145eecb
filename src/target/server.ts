/**
 * The target's thin driver: opens the links and the file stores from a TargetSpec, wires every
 * link's receive batches into the one TargetEngine, persists protocol state, announces the exports
 * and shuts down cleanly. All protocol behaviour is in the engine.
 *
 * Start-up checks before any link opens: the state file loads (ERR_STATE_FILE) and its directory
 * is writable (ERR_STATE_FILE), every export opens (ERR_STORE_OPEN), and no two writable exports
 * overlap on the same file or device (ERR_STORE_OPEN).
 *
 * Persisting protocol state: the engine stages each change in the StateFile and hands the change's
 * reply back (holdReply) instead of sending it. After each batch that changed something the
 * server asks for a write (off the event loop, at most one in flight, later changes ride the next
 * one) and sends the held replies when it completed; if it failed, they go out as AoE error 3
 * (device unavailable) instead: no change is acknowledged before it is durable.
 */

import { createHash } from 'node:crypto';
import { AoeErrorCode, Flag, Off } from '../aoe/constants.js';
import { macFromString } from '../aoe/mac.js';
import { AoegwError } from '../errors.js';
import type { FrameLink, LinkStateEvent } from '../io/frame-link.js';
import type { IoRingStats } from '../io/io-ring.js';
import { PacketLink } from '../io/packet-link.js';
import { type Log, silentLog } from '../log.js';
import { type BlockIo, connectRing, openBlockIo } from './block-io.js';
import type { BlockStore } from './block-store.js';
import type { EngineStatsSnapshot } from './counters.js';
import type { DataPathStats } from './data-path.js';
import { TargetEngine } from './engine.js';
import { FileStore, overlaps } from './file-store.js';
import { MemoryStore } from './memory-store.js';
import {
  type ExportSpec,
  type LinkSpec,
  serviceMacOf,
  type TargetSpec,
  warnIfOwnMacUnknown,
} from './spec.js';
import { StateFile } from './state-file.js';

export interface ServerStats {
  engine: EngineStatsSnapshot;
  links: Record<string, ReturnType<FrameLink['stats']>>;
  stateWrites: number;
  stateWriteErrors: number;
  /** Replies to state changes sent after their write completed, and sent as errors after it failed. */
  heldRepliesSent: number;
  heldRepliesFailed: number;
  /** How block I/O reaches the kernel, the requests waiting for it, and the ring's counters. */
  blockIo: {
    description: string;
    /** Per export key: 'io_uring', 'synchronous' (with the reason when the ring exists) or 'memory'. */
    exports: Record<string, string>;
    dataPath: DataPathStats;
    ring?: IoRingStats;
  };
}

interface HeldReply {
  linkId: number;
  frame: Buffer;
}

export interface TargetServerOptions {
  /** Opens a link by config (tests inject fakes); default: PacketLink. */
  openLink?: (link: LinkSpec) => FrameLink;
  log?: Log;
  now?: () => number;
}

interface ServedLink {
  readonly name: string;
  readonly link: FrameLink;
  readonly spec: LinkSpec;
  unsubscribe: () => void;
}

export class TargetServer {
  readonly engine: TargetEngine;
  /** By engine link id (ids are never reused). */
  private readonly links = new Map<number, ServedLink>();
  private nextLinkId = 0;
  /** Every open store: served, or retired and waiting for its requests to complete. */
  private readonly stores: BlockStore[] = [];
  /** Served exports by key, with their store. */
  private readonly served = new Map<string, { spec: ExportSpec; store: BlockStore }>();
  /** How each export's store reaches the kernel (stats). */
  private readonly storeIo: Record<string, string> = {};
  private readonly state: StateFile;
  private readonly io: BlockIo;
  private stopped = false;
  private readonly log: Log;
  /** Replies held during the current batch (see holdReply). */
  private held: HeldReply[] = [];
  /** A change was staged since the last persist() (after a failed write, only a new change retries). */
  private changed = false;
  stateWriteErrors = 0;
  heldRepliesSent = 0;
  heldRepliesFailed = 0;

  private constructor(
    private readonly cfg: TargetSpec,
    private readonly opts: TargetServerOptions,
  ) {
    this.log = opts.log ?? silentLog;
    this.state = new StateFile(cfg.stateFile);
    this.io = openBlockIo(cfg.blockIo ?? 'auto');
    const ring = this.io.ring;
    this.engine = new TargetEngine({
      ...(ring ? { dataPath: { staging: ring.arena, submit: () => ring.submit() } } : {}),
      // The clock of handleBatch's `now` (startLink): service times subtract one from the other.
      ...(opts.now ? { clock: opts.now } : {}),
      // Staged here; written after the batch (persist()), and the change's reply is held until then.
      onStateChange: (key, st) => {
        this.state.stage(key, st);
        this.changed = true;
      },
      onError: (e) => this.log.error(`state change failed: ${e.message}`),
      holdReply: (linkId, frame) => this.held.push({ linkId, frame }),
    });
    if (ring) connectRing(ring, this.engine, this.log);
  }

  static start(cfg: TargetSpec, opts: TargetServerOptions = {}): TargetServer {
    const s = new TargetServer(cfg, opts);
    s.log.info(`block I/O: ${s.io.description}`);
    try {
      s.state.checkWritable();
      s.openExports();
      s.open();
    } catch (e) {
      s.stop();
      throw e;
    }
    return s;
  }

  private open(): void {
    const opened: { id: number; entry: ServedLink }[] = [];
    for (const l of this.cfg.links) opened.push(this.register(l));
    for (const { id, entry } of opened) this.startLink(id, entry);
  }

  /** The gateway passes its own opener (its shared links); this default serves a target on its own. */
  private openLink(l: LinkSpec): FrameLink {
    if (this.opts.openLink) return this.opts.openLink(l);
    return PacketLink.open({
      iface: l.iface,
      batch: l.batch,
      busyPollUs: l.busyPollUs,
      ...(l.netns ? { netns: l.netns } : {}),
      ...(l.mac ? { serviceMac: serviceMacOf(l)! } : {}),
    });
  }

  /** Opens a link and registers it with the engine (not yet receiving). */
  private register(l: LinkSpec): { id: number; entry: ServedLink } {
    const link = this.openLink(l);
    warnIfOwnMacUnknown(link, l, this.log);
    const id = this.nextLinkId++;
    const entry: ServedLink = { name: l.name, link, spec: l, unsubscribe: () => {} };
    this.links.set(id, entry);
    this.engine.addLink(id, { mac: link.mac, mtu: link.mtu, name: l.name, principal: l.principal ?? '' });
    for (const [key, { spec }] of this.served)
      if (l.everyExport || spec.links.includes(l.name)) this.engine.serveOn(key, id);
    return { id, entry };
  }

  private startLink(id: number, entry: ServedLink): void {
    const { name, link } = entry;
    const now = this.opts.now ?? (() => performance.now());
    link.onError((err) => this.log.warn(`link ${name}: ${err.message}`, { link: name }));
    link.onBatch((frames, lens, count) => {
      this.engine.handleBatch(id, frames, lens, count, link, now());
      if (this.changed) this.persist();
    });
    const n = this.engine.announce(id, link);
    link.flush();
    this.log.info(`link ${name}: serving ${n} exports, mtu ${link.mtu}`, { link: name });
    entry.unsubscribe = link.onLinkState((ev) => this.onLinkState(id, name, link, ev));
  }

  /** Serves on one more link while running (a peer added by a reload). */
  addLink(l: LinkSpec): void {
    if (this.stopped) throw new AoegwError('ERR_USAGE', 'the target is stopped');
    if ([...this.links.values()].some((x) => x.name === l.name))
      throw new AoegwError('ERR_USAGE', `link ${l.name} is served twice`);
    const { id, entry } = this.register(l);
    this.startLink(id, entry);
  }

  /**
   * Stops serving on a link and closes it (a peer removed by a reload). Requests of the link still
   * waiting for their store complete; their replies are dropped (the link is gone).
   */
  removeLink(name: string): boolean {
    for (const [id, entry] of this.links) {
      if (entry.name !== name) continue;
      this.links.delete(id);
      this.engine.removeLink(id);
      entry.unsubscribe();
      try {
        entry.link.pause();
        entry.link.close();
      } catch (e) {
        this.log.warn(`closing link ${name}: ${(e as Error).message}`, { link: name });
      }
      return true;
    }
    return false;
  }

  /**
   * A link went down (nothing to do: it drops what is sent and waits) or is back / changed: the
   * engine learns its MAC and MTU again (sectors per frame follow the MTU) and the exports are
   * re-announced, so initiators re-learn the target after an outage or an MTU change.
   */
  private onLinkState(id: number, name: string, link: FrameLink, ev: LinkStateEvent): void {
    if (this.stopped) return;
    if (ev.state === 'down') {
      this.log.warn(`link ${name}: down (${ev.reason}), waiting for it to return`, { link: name });
      return;
    }
    try {
      this.engine.addLink(id, {
        mac: ev.mac,
        mtu: ev.mtu,
        name,
        principal: this.links.get(id)?.spec.principal ?? '',
      });
    } catch (e) {
      this.log.error(`link ${name}: ${(e as Error).message}; not serving on it`, { link: name });
      return;
    }
    const n = this.engine.announce(id, link);
    link.flush();
    this.log.info(`link ${name}: up (${ev.reason}), mtu ${ev.mtu}, re-announced ${n} exports`, {
      link: name,
    });
  }

  /** Opens every export's store and registers it; refuses overlapping writable exports. */
  private openExports(): void {
    const stores = this.openStores(this.cfg.exports);
    /** Exports that skip the ring, by reason. */
    const skipped = new Map<string, string[]>();
    for (const [i, e] of this.cfg.exports.entries()) {
      const store = stores[i]!;
      try {
        this.serve(e, store);
      } catch (err) {
        this.discardStores(stores.slice(i + 1));
        throw err;
      }
      const key = `e${e.shelf}.${e.slot}`;
      const why = store instanceof FileStore ? store.synchronousWhy : undefined;
      if (why) skipped.set(why, [...(skipped.get(why) ?? []), key]);
    }
    for (const [why, keys] of skipped)
      this.log.info(`block I/O: ${keys.join(', ')} served synchronously (${why})`);
  }

  /**
   * Opens the stores of exports to add (startup, or a reload before anything is applied), checked
   * against each other and against the exports served but those in `replacing` (keys). Throws
   * ERR_STORE_OPEN, with every store it opened closed again.
   */
  openStores(exports: readonly ExportSpec[], replacing: readonly string[] = []): BlockStore[] {
    const files: { key: string; path: string; store: FileStore }[] = [];
    for (const [key, { spec, store }] of this.served)
      if (!replacing.includes(key) && store instanceof FileStore && !store.readOnly)
        files.push({ key, path: spec.path, store });
    const opened: BlockStore[] = [];
    try {
      for (const e of exports) {
        const store = openStore(e, this.io);
        opened.push(store);
        const key = `e${e.shelf}.${e.slot}`;
        if (store instanceof FileStore && !store.readOnly) {
          for (const o of files) {
            if (overlaps(o.store.identity, store.identity)) {
              throw new AoegwError(
                'ERR_STORE_OPEN',
                `exports ${o.key} (${o.path}) and ${key} (${e.path}) are both writable and overlap on the same ${store.identity.kind === 'block' ? 'device' : 'file'}: each would overwrite the other's data`,
              );
            }
          }
          files.push({ key, path: e.path, store });
        }
      }
    } catch (e) {
      for (const s of opened) closeQuietly(s);
      throw e;
    }
    return opened;
  }

  /** Closes stores from openStores() that were not served after all. */
  discardStores(stores: readonly BlockStore[]): void {
    for (const s of stores) closeQuietly(s);
  }

  /** Serves an export on its store (from openStores()) while running, and announces it. */
  addExport(e: ExportSpec, store: BlockStore): void {
    if (this.stopped) throw new AoegwError('ERR_USAGE', 'the target is stopped');
    this.serve(e, store);
    const why = store instanceof FileStore ? store.synchronousWhy : undefined;
    if (why) this.log.info(`block I/O: e${e.shelf}.${e.slot} served synchronously (${why})`);
    for (const [id, { link }] of this.links) {
      try {
        this.engine.announce(id, link);
        link.flush();
      } catch (err) {
        this.log.warn(`announcing on ${this.links.get(id)?.name}: ${(err as Error).message}`);
      }
    }
  }

  private serve(e: ExportSpec, store: BlockStore): void {
    const key = `e${e.shelf}.${e.slot}`;
    const byName = new Map([...this.links].map(([id, l]) => [l.name, id] as const));
    const linkIds = e.links.length
      ? [
          ...e.links.map((n) => byName.get(n)).filter((id): id is number => id !== undefined),
          ...[...this.links].filter(([, l]) => l.spec.everyExport).map(([id]) => id),
        ]
      : null;
    const initial = this.state.get(key);
    try {
      this.engine.addExport({
        shelf: e.shelf,
        slot: e.slot,
        key,
        store,
        readOnly: e.readOnly,
        bufferCount: e.bufferCount,
        allowMacs: e.allowMacs.map((m) => macFromString(m)!),
        ...(linkIds ? { linkIds } : {}),
        serial: e.serial ?? serialFor(e),
        ...(e.name ? { wwn: wwnFor(e.name) } : {}),
        model: e.model ?? 'aoegw built-in target',
        firmware: '0.1.0',
        ...(initial ? { initialState: initial } : {}),
      });
    } catch (err) {
      closeQuietly(store);
      throw err;
    }
    this.stores.push(store);
    this.served.set(key, { spec: e, store });
    this.storeIo[key] = ioOf(store);
    this.log.info(
      `export ${key}: ${store.description}, ${store.sectors} sectors, buffer count ${e.bufferCount}`,
      {
        export: key,
      },
    );
  }

  /**
   * Stops serving an export while running. Requests it accepted complete and are answered (an
   * acknowledged write stays acknowledged); its store is closed once the last one completed, never
   * before. Resolves then.
   */
  removeExport(key: string): Promise<void> {
    const entry = this.served.get(key);
    const retired = this.engine.retireExport(key);
    if (!entry || !retired) return Promise.resolve();
    this.served.delete(key);
    const close = () => {
      const i = this.stores.indexOf(entry.store);
      // stop() closed it already.
      if (i < 0) return;
      this.stores.splice(i, 1);
      delete this.storeIo[key];
      try {
        entry.store.close();
        this.log.info(`export ${key}: closed`, { export: key });
      } catch (e) {
        this.log.error(`export ${key}: closing its store failed: ${(e as Error).message}`, { export: key });
      }
    };
    if (retired.pending() === 0) {
      close();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setInterval(() => {
        if (retired.pending() > 0 && !this.stopped) return;
        clearInterval(t);
        close();
        resolve();
      }, 5);
      t.unref();
    });
  }

  /** Writes the staged state (coalesced, off the event loop), then releases this batch's held replies. */
  private persist(): void {
    this.changed = false;
    const replies = this.held;
    if (replies.length > 0) this.held = [];
    this.state.flush().then(
      () => this.release(replies, 0),
      (e: Error) => {
        this.stateWriteErrors++;
        this.log.error(
          `${e.message} (the change is in effect until restart; its request was answered with an error)`,
        );
        this.release(replies, AoeErrorCode.DEVICE_UNAVAILABLE);
      },
    );
  }

  /** Sends held replies, or AoE error `error` in their place (the reply with E set and the code). */
  private release(replies: HeldReply[], error: number): void {
    if (this.stopped || replies.length === 0) return;
    const touched = new Set<FrameLink>();
    for (const r of replies) {
      const link = this.links.get(r.linkId)?.link;
      if (link === undefined) continue;
      if (error !== 0) {
        r.frame[Off.VER_FLAGS] = r.frame[Off.VER_FLAGS]! | Flag.ERROR;
        r.frame[Off.ERROR] = error;
        this.heldRepliesFailed++;
      } else this.heldRepliesSent++;
      try {
        const slot = link.txSlot();
        if (r.frame.length > slot.length) continue;
        r.frame.copy(slot);
        link.txCommit(r.frame.length);
        touched.add(link);
      } catch (e) {
        this.log.warn(`sending a held reply: ${(e as Error).message}`);
      }
    }
    for (const link of touched) {
      try {
        link.flush();
      } catch (e) {
        this.log.warn(`sending held replies: ${(e as Error).message}`);
      }
    }
  }

  stats(): ServerStats {
    const links: ServerStats['links'] = {};
    for (const { name, link } of this.links.values()) links[name] = link.stats();
    return {
      engine: this.engine.stats(),
      links,
      stateWrites: this.state.writes,
      stateWriteErrors: this.stateWriteErrors,
      heldRepliesSent: this.heldRepliesSent,
      heldRepliesFailed: this.heldRepliesFailed,
      blockIo: {
        description: this.io.description,
        exports: { ...this.storeIo },
        dataPath: this.engine.dataPathStats(),
        ...(this.io.ring && !this.stopped ? { ring: this.io.ring.stats() } : {}),
      },
    };
  }

  /**
   * Stops receiving, sends what is queued, and makes every acknowledged write durable. Requests
   * still waiting for their store are finished first (closing the ring waits for the kernel), their
   * replies dropped with the links: unacknowledged, so the initiator retries them elsewhere or later.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const { link } of this.links.values()) {
      try {
        link.pause();
        link.close();
      } catch (e) {
        this.log.warn(`closing link: ${(e as Error).message}`);
      }
    }
    try {
      this.io.ring?.close();
    } catch (e) {
      this.log.warn(`closing the block I/O ring: ${(e as Error).message}`);
    }
    // Changes in effect but not yet written (their replies were never sent): keep them anyway.
    try {
      this.state.close();
    } catch (e) {
      this.log.error((e as Error).message);
    }
    let failure: unknown;
    for (const s of this.stores.splice(0)) {
      try {
        s.close();
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure) throw new AoegwError('ERR_SYSCALL', `closing a store failed: ${(failure as Error).message}`);
  }
}

function closeQuietly(s: BlockStore): void {
  try {
    s.close();
  } catch {
    // Opened and never served: nothing was written through it.
  }
}

/**
 * `memory:SIZE` (e.g. memory:1g) is a volatile RAM disk — for tests and as a benchmark ceiling;
 * anything else is a file or block device.
 */
function openStore(e: ExportSpec, io: BlockIo): BlockStore {
  const mem = /^memory:(\d+)([kmg]?)$/i.exec(e.path);
  if (mem) {
    const bytes =
      Number(mem[1]) *
      { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[mem[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
    if (bytes < 512 || bytes % 512 !== 0 || bytes > 64 * 1024 ** 3) {
      throw new AoegwError('ERR_STORE_OPEN', `export ${e.path}: size must be a multiple of 512 up to 64g`);
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
    ...(io.ring ? { ring: io.ring, memoryFsSync: io.memoryFsSync } : {}),
  });
}

/** How a store reaches the kernel, for the stats. */
function ioOf(store: BlockStore): string {
  if (!(store instanceof FileStore)) return 'memory';
  if (!store.synchronous) return 'io_uring';
  return store.synchronousWhy ? `synchronous (${store.synchronousWhy})` : 'synchronous';
}

/**
 * A named export's world wide name: NAA 3 (locally assigned) and 60 bits of SHA-256 of the name, so
 * the disk keeps its WWN wherever it is served and under any shelf.slot.
 */
function wwnFor(name: string): bigint {
  const h = createHash('sha256').update(`aoegw export ${name}`).digest();
  return (3n << 60n) | (h.readBigUInt64BE(0) & ((1n << 60n) - 1n));
}

/** A stable serial per export so initiators can tell exports apart. */
function serialFor(e: ExportSpec): string {
  // A named export keeps its serial when its shelf.slot changes (and through gateways).
  return e.name ? e.name.slice(0, 20) : `AOEGW-${e.shelf}-${e.slot}`;
}
