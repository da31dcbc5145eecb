/**
 * Persistent per-export protocol state (config string, Mac Mask List, reservation list), written
 * atomically: a temporary file in the same directory is written and fsync'd, renamed over the
 * old one, and the directory fsync'd, so a crash leaves either the old or the new state, whole.
 *
 * The driver writes it off the event loop (flush(): thread-pool I/O, at most one write in flight,
 * changes staged meanwhile ride the next write), so a flood of state changes costs at most one
 * write per write duration and never stalls the data path. saveSync() is for start-up and stop.
 *
 * Format (version 2): {"version":2,"exports":{"eS.L":{"config":BASE64,"masks":[P...],"reserve":[P...]}}}
 * where P = {"ns": "" | PEER_KEY_HEX, "mac": "52:54:00:12:34:56"}: entries are principals (the
 * namespace of the link the initiator came in on, and its MAC; see engine.ts). Version 1 files
 * (MAC strings only, from before principals) load as principals of the local namespace, and
 * are rewritten as version 2 by the next save.
 *
 * The path must name a regular file (or nothing yet): a symbolic link is refused (ERR_STATE_FILE)
 * rather than followed or silently replaced by the first rename. Every error names the file.
 */
import { constants, lstatSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MAX_CONFIG_STRING } from '../aoe/constants.js';
import { formatMac, macFromString } from '../aoe/mac.js';
import { AoegwError } from '../errors.js';
import { fsyncDir, writeNewFileSynced } from '../io/durable-file.js';
import type { PersistentExportState, Principal } from './export-state.js';
import { isNamespace, LOCAL_NS } from './mac-list.js';

export const STATE_FILE_VERSION = 2;

interface PrincipalJson {
  ns: string;
  mac: string;
}

interface StateFileJson {
  version: 1 | 2;
  exports: Record<
    string,
    { config: string; masks: (string | PrincipalJson)[]; reserve: (string | PrincipalJson)[] }
  >;
}

function copy(list: readonly Principal[]): Principal[] {
  return list.map((p) => ({ ns: p.ns, mac: Buffer.from(p.mac) }));
}

const TMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export class StateFile {
  private readonly states = new Map<string, PersistentExportState>();
  private dirty = false;
  private seq = 0;
  private inFlight: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  private closed = false;
  /** Completed writes. */
  writes = 0;

  constructor(readonly path: string) {
    const fail = (why: string, cause?: unknown): AoegwError =>
      new AoegwError('ERR_STATE_FILE', `state file ${path}: ${why}`, cause ? { cause } : undefined);
    let st: ReturnType<typeof lstatSync> | undefined;
    try {
      st = lstatSync(path, { throwIfNoEntry: false });
    } catch (e) {
      throw fail((e as Error).message, e);
    }
    if (st === undefined) return;
    if (st.isSymbolicLink()) {
      throw fail(
        'is a symbolic link; refusing it (the first save would replace the link, not its target): point the state path at the real file',
      );
    }
    if (!st.isFile()) throw fail('is not a regular file');
    let json: StateFileJson;
    try {
      json = JSON.parse(readFileSync(path, 'utf8')) as StateFileJson;
    } catch (e) {
      throw fail(`not valid JSON: ${(e as Error).message}`, e);
    }
    if (
      typeof json !== 'object' ||
      json === null ||
      (json.version !== 1 && json.version !== 2) ||
      typeof json.exports !== 'object' ||
      json.exports === null ||
      Array.isArray(json.exports)
    ) {
      throw fail('expected {"version":2,"exports":{...}} (or a version 1 file)');
    }
    const v1 = json.version === 1;
    for (const [key, s] of Object.entries(json.exports)) {
      if (typeof s !== 'object' || s === null) throw fail(`${key} must be an object`);
      const macs = (list: unknown, what: string): Principal[] => {
        if (!Array.isArray(list)) throw fail(`${key}.${what} must be a list`);
        return list.map((m: unknown, i) => {
          // Version 1: a MAC string, from before namespaces: the local one.
          if (v1) {
            const b = typeof m === 'string' ? macFromString(m) : null;
            if (!b) throw fail(`${key}.${what} has '${m}', not a MAC`);
            return { ns: LOCAL_NS, mac: b };
          }
          const e = m as Partial<PrincipalJson> | null;
          if (
            typeof e !== 'object' ||
            e === null ||
            Array.isArray(e) ||
            Object.keys(e).some((k) => k !== 'ns' && k !== 'mac')
          )
            throw fail(`${key}.${what}[${i}] must be {"ns": "", "mac": "52:54:00:12:34:56"}`);
          if (!isNamespace(e.ns))
            throw fail(
              `${key}.${what}[${i}].ns is ${JSON.stringify(e.ns)}: expected "" (local) or a peer key in lowercase hex`,
            );
          const b = typeof e.mac === 'string' ? macFromString(e.mac) : null;
          if (!b) throw fail(`${key}.${what}[${i}].mac has '${e.mac}', not a MAC`);
          return { ns: e.ns, mac: b };
        });
      };
      if (typeof s.config !== 'string') throw fail(`${key}.config must be a base64 string`);
      const config = Buffer.from(s.config, 'base64');
      if (config.length > MAX_CONFIG_STRING)
        throw fail(`${key}.config is longer than ${MAX_CONFIG_STRING} bytes`);
      this.states.set(key, { config, masks: macs(s.masks, 'masks'), reserve: macs(s.reserve, 'reserve') });
    }
  }

  get(key: string): PersistentExportState | undefined {
    return this.states.get(key);
  }

  /** True when something was staged that is not written yet. */
  get isDirty(): boolean {
    return this.dirty;
  }

  /**
   * Start-up check that saves will work: the directory exists (created if needed) and a file can
   * be created, written and fsync'd in it. Throws ERR_STATE_FILE naming the path.
   */
  checkWritable(): void {
    const dir = dirname(this.path);
    const tmp = this.tempPath();
    try {
      mkdirSync(dir, { recursive: true });
      rmSync(tmp, { force: true });
      writeNewFileSynced(tmp, '{}\n');
    } catch (e) {
      throw new AoegwError(
        'ERR_STATE_FILE',
        `state file ${this.path}: cannot write in ${dir}: ${(e as Error).message}`,
        { cause: e },
      );
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  /** Records the new state of one export and rewrites the file atomically, now. */
  set(key: string, state: PersistentExportState): void {
    this.stage(key, state);
    this.saveSync();
  }

  /** Records the new state without writing (see flush()). */
  stage(key: string, state: PersistentExportState): void {
    this.states.set(key, {
      config: Buffer.from(state.config),
      masks: copy(state.masks),
      reserve: copy(state.reserve),
    });
    this.dirty = true;
  }

  /** Writes the file synchronously if anything was staged since the last write. */
  saveIfDirty(): void {
    if (this.dirty) this.saveSync();
  }

  /**
   * Resolves once everything staged before the call is on disk; rejects (ERR_STATE_FILE) if the
   * write that carries it failed. At most one write is in flight: calls made during it share the
   * one next write, which starts when it ends.
   */
  flush(): Promise<void> {
    if (this.inFlight === null) {
      const w = this.writeAsync().finally(() => {
        if (this.inFlight === w) this.inFlight = null;
      });
      this.inFlight = w;
      return w;
    }
    if (this.next === null) {
      const after = this.inFlight.then(
        () => undefined,
        () => undefined,
      );
      this.next = after.then(() => {
        this.next = null;
        return this.flush();
      });
    }
    return this.next;
  }

  private tempPath(): string {
    return `${this.path}.tmp-${process.pid}-${this.seq++}`;
  }

  private content(): string {
    const json: StateFileJson = { version: STATE_FILE_VERSION, exports: {} };
    for (const [key, st] of [...this.states].sort(([a], [b]) => a.localeCompare(b))) {
      json.exports[key] = {
        config: st.config.toString('base64'),
        masks: st.masks.map((p) => ({ ns: p.ns, mac: formatMac(p.mac) })),
        reserve: st.reserve.map((p) => ({ ns: p.ns, mac: formatMac(p.mac) })),
      };
    }
    return `${JSON.stringify(json, null, 2)}\n`;
  }

  private error(e: unknown): AoegwError {
    return new AoegwError('ERR_STATE_FILE', `cannot write state file ${this.path}: ${(e as Error).message}`, {
      cause: e,
    });
  }

  private async writeAsync(): Promise<void> {
    if (!this.dirty) return;
    const text = this.content();
    this.dirty = false; // changes staged from here on need the next write
    const dir = dirname(this.path);
    const tmp = this.tempPath();
    try {
      await rm(tmp, { force: true }); // a leftover of a crashed write; never follow or reuse it
      const fh = await open(tmp, TMP_FLAGS, 0o600);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (this.closed) {
        // close() wrote the newest state synchronously: an older rename must not land after it.
        await rm(tmp, { force: true });
        return;
      }
      await rename(tmp, this.path);
      const dh = await open(dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch (e) {
      this.dirty = true;
      await rm(tmp, { force: true }).catch(() => undefined);
      throw this.error(e);
    }
    this.writes++;
  }

  /**
   * Stops async writes (one in flight does not rename any more, unless its rename already began)
   * and writes what is staged or in flight synchronously, so the file ends with the newest state.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.dirty || this.inFlight !== null) this.saveSync();
  }

  /** Synchronous atomic write (start-up, stop, tests). */
  saveSync(): void {
    const text = this.content();
    const dir = dirname(this.path);
    const tmp = this.tempPath();
    try {
      mkdirSync(dir, { recursive: true });
      rmSync(tmp, { force: true });
      writeNewFileSynced(tmp, text);
      renameSync(tmp, this.path);
      fsyncDir(dir);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw this.error(e);
    }
    this.dirty = false;
    this.writes++;
  }
}
