/**
 * Persistent per-export protocol state (config string, Mac Mask List, reservation list), written
 * atomically: a temporary file in the same directory is written and fsync'd, renamed over the
 * old one, and the directory fsync'd, so a crash leaves either the old or the new state, whole.
 */
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { formatMac, macFromString } from '../aoe/mac.js';
import { AoegwError } from '../errors.js';
import type { PersistentExportState } from './export-state.js';

interface StateFileJson {
  version: 1;
  exports: Record<string, { config: string; masks: string[]; reserve: string[] }>;
}

export class StateFile {
  private readonly states = new Map<string, PersistentExportState>();
  private dirty = false;
  writes = 0;

  constructor(readonly path: string) {
    if (!existsSync(path)) return;
    let json: StateFileJson;
    try {
      json = JSON.parse(readFileSync(path, 'utf8')) as StateFileJson;
    } catch (e) {
      throw new AoegwError('ERR_USAGE', `state file ${path} is not valid JSON: ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (json?.version !== 1 || typeof json.exports !== 'object' || json.exports === null) {
      throw new AoegwError('ERR_USAGE', `state file ${path}: expected {"version":1,"exports":{...}}`);
    }
    for (const [key, s] of Object.entries(json.exports)) {
      const macs = (list: unknown, what: string): Buffer[] => {
        if (!Array.isArray(list))
          throw new AoegwError('ERR_USAGE', `state file ${path}: ${key}.${what} must be a list`);
        return list.map((m) => {
          const b = typeof m === 'string' ? macFromString(m) : null;
          if (!b)
            throw new AoegwError('ERR_USAGE', `state file ${path}: ${key}.${what} has '${m}', not a MAC`);
          return b;
        });
      };
      this.states.set(key, {
        config: Buffer.from(typeof s.config === 'string' ? s.config : '', 'base64'),
        masks: macs(s.masks, 'masks'),
        reserve: macs(s.reserve, 'reserve'),
      });
    }
  }

  get(key: string): PersistentExportState | undefined {
    return this.states.get(key);
  }

  /** Records the new state of one export and rewrites the file atomically. */
  set(key: string, state: PersistentExportState): void {
    this.stage(key, state);
    this.save();
  }

  /**
   * Records the new state without writing: the driver calls saveIfDirty() once per receive batch,
   * so a burst of state-changing frames costs one atomic write, not one per frame.
   */
  stage(key: string, state: PersistentExportState): void {
    this.states.set(key, {
      config: Buffer.from(state.config),
      masks: state.masks.map((m) => Buffer.from(m)),
      reserve: state.reserve.map((m) => Buffer.from(m)),
    });
    this.dirty = true;
  }

  /** Writes the file if anything was staged since the last write. */
  saveIfDirty(): void {
    if (this.dirty) this.save();
  }

  private save(): void {
    const json: StateFileJson = { version: 1, exports: {} };
    for (const [key, st] of [...this.states].sort(([a], [b]) => a.localeCompare(b))) {
      json.exports[key] = {
        config: st.config.toString('base64'),
        masks: st.masks.map((m) => formatMac(m)),
        reserve: st.reserve.map((m) => formatMac(m)),
      };
    }
    const dir = dirname(this.path);
    mkdirSync(dir, { recursive: true });
    const tmp = `${this.path}.tmp-${process.pid}`;
    rmSync(tmp, { force: true }); // a leftover of a crashed write; never follow or reuse it
    let fd = -1;
    try {
      fd = openSync(
        tmp,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      writeFileSync(fd, `${JSON.stringify(json, null, 2)}\n`); // loops until every byte is written
      fsyncSync(fd);
      closeSync(fd);
      fd = -1;
      renameSync(tmp, this.path);
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      rmSync(tmp, { force: true });
      throw new AoegwError('ERR_SYSCALL', `cannot write state file ${this.path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
    this.dirty = false;
    this.writes++;
  }
}
