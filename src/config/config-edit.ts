/**
 * Safe edits of the config and enrollment files, for the CLI's `peer …` and `export …`: read,
 * apply a pure edit, validate the result with the full validator (the config with the enrolled
 * peers), and only when it has no problem write it atomically, keeping the previous version as
 * `<file>.prev`; a refused edit writes nothing. The config is written here — a temporary file in
 * the same directory with the original's mode and owner, fsync, rename, fsync of the directory —
 * in its own JSON style (json-format.ts); a config changed by someone else between our read and
 * our rename is not overwritten: the edit is redone on the new content. The enrollment file is
 * written by src/enroll, under the lock its other writers (invite CLI, daemon) take.
 */
import {
  closeSync,
  constants,
  copyFileSync,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  type Stats,
} from 'node:fs';
import { dirname } from 'node:path';
import { type EnrollmentDoc, enrollmentJson } from '../enroll/enrollment-doc.js';
import { updateEnrollment } from '../enroll/enrollment-file.js';
import { AoegwError } from '../errors.js';
import { fsyncDir, writeNewFileSynced } from '../io/durable-file.js';
import { checkGatewayDoc, derivedPaths } from './gateway-config.js';
import { formatJson, styleOf } from './json-format.js';
import { readConfigDoc } from './target-config.js';
import { obj, Problems } from './validate.js';

export interface EditResult {
  /** The file written (symbolic links of a config file resolved). */
  readonly file: string;
  /** False when the edit changed nothing (nothing written). */
  readonly changed: boolean;
  /** The previous version, when written. */
  readonly prev?: string;
}

export interface EditTarget {
  /** How the file is named in messages: "config", "enrollment file". */
  readonly label: string;
  readonly file: string;
  /** The file's text (throws AoegwError when it cannot or must not be read). */
  readonly read: (file: string) => string;
  /** Problems of a candidate content (the whole validation, not only this file's part). */
  readonly validate: (doc: unknown) => Problems;
}

const ATTEMPTS = 3;

function configError(label: string, file: string, why: string, cause?: unknown): AoegwError {
  return new AoegwError('ERR_CONFIG', `${label} ${file}: ${why}`, cause ? { cause } : undefined);
}

function refused(label: string, file: string, problems: Problems): AoegwError {
  const lines = problems.lines();
  const count = lines.length === 1 ? 'a problem' : `${lines.length} problems`;
  return configError(
    label,
    file,
    `edit refused, nothing written: the result would have ${count}:\n${lines.map((l) => `  ${l}`).join('\n')}`,
  );
}

function statOf(file: string): Stats {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    return fstatSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** `<file>.prev` = the version about to be replaced (a hard link to it, or a copy with its mode). */
function keepPrevious(file: string, st: Stats): string {
  const prev = `${file}.prev`;
  const tmp = `${prev}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  try {
    linkSync(file, tmp);
  } catch {
    copyFileSync(file, tmp, constants.COPYFILE_EXCL);
    const fd = openSync(tmp, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      fchmodSync(fd, st.mode & 0o7777);
      if (st.uid !== process.getuid?.() || st.gid !== process.getgid?.()) fchownSync(fd, st.uid, st.gid);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  renameSync(tmp, prev);
  return prev;
}

/**
 * Applies `edit` to the file's parsed content (a copy: the edit may change it in place and
 * return it) and writes the result when it is valid. Throws ERR_CONFIG naming every problem of a
 * refused result; whatever `edit` throws (e.g. "no such peer") passes through.
 */
export function editJsonFile(target: EditTarget, edit: (doc: unknown) => unknown): EditResult {
  const { label, file, read, validate } = target;
  for (let attempt = 1; ; attempt++) {
    const text = read(file);
    let before: unknown;
    try {
      before = JSON.parse(text);
    } catch (e) {
      throw configError(label, file, `cannot read it as JSON: ${(e as Error).message}`, e);
    }
    const after = edit(structuredClone(before));
    const out = formatJson(after, styleOf(text, before));
    if (JSON.stringify(after) === JSON.stringify(before)) return { file, changed: false };
    const problems = validate(after);
    if (problems.count > 0) throw refused(label, file, problems);
    const st = statOf(file);
    const dir = dirname(file);
    const tmp = `${file}.tmp-${process.pid}-${attempt}`;
    try {
      rmSync(tmp, { force: true });
      writeNewFileSynced(tmp, out, {
        // The original's mode and owner (the daemon may run as another user than the operator).
        prepare: (fd) => {
          fchmodSync(fd, st.mode & 0o7777);
          if (st.uid !== process.getuid?.() || st.gid !== process.getgid?.()) fchownSync(fd, st.uid, st.gid);
        },
      });
      // Someone else wrote the file since we read it: redo the edit on their version.
      if (read(file) !== text) {
        rmSync(tmp, { force: true });
        if (attempt < ATTEMPTS) continue;
        throw configError(
          label,
          file,
          `changed by another writer ${ATTEMPTS} times while editing; try again`,
        );
      }
      const prev = keepPrevious(file, st);
      renameSync(tmp, file);
      fsyncDir(dir);
      return { file, changed: true, prev };
    } catch (e) {
      rmSync(tmp, { force: true });
      if (e instanceof AoegwError) throw e;
      throw configError(label, file, `cannot write it: ${(e as Error).message}`, e);
    }
  }
}

/** The config's parsed content and its enrollment file's path (ERR_CONFIG when unreadable). */
export function readGatewayConfigDoc(configFile: string): {
  doc: Record<string, unknown>;
  enrollmentFile: string;
} {
  const p = new Problems();
  const doc = readConfigDoc(p, configFile);
  if (!doc) throw new AoegwError('ERR_CONFIG', p.message(configFile));
  return { doc, enrollmentFile: derivedPaths(doc).enrollmentFile };
}

/** Edits a gateway config file; the result is validated with the enrollment file's peers. */
export function editGatewayConfig(configFile: string, edit: (doc: unknown) => unknown): EditResult {
  let file: string;
  try {
    file = realpathSync(configFile);
  } catch (e) {
    throw configError('config', configFile, `cannot read it: ${(e as Error).message}`, e);
  }
  return editJsonFile(
    {
      label: 'config',
      file,
      read: (f) => {
        try {
          return readFileSync(f, 'utf8');
        } catch (e) {
          throw configError('config', f, `cannot read it: ${(e as Error).message}`, e);
        }
      },
      validate: (doc) => {
        const p = new Problems();
        const o = obj(p, doc, '(top level)');
        if (o) checkGatewayDoc(p, o);
        return p;
      },
    },
    edit,
  );
}

/**
 * Edits the enrollment file of a gateway config under its lock (src/enroll: the invite CLI and the
 * daemon write it too), validating the resulting enrolled peers with the config: a refused result
 * leaves the file as it was. The document is src/enroll's (invites parsed, peers raw).
 */
export function editEnrollmentFile(
  configFile: string,
  change: (doc: EnrollmentDoc) => EnrollmentDoc,
): EditResult {
  const { doc: config, enrollmentFile } = readGatewayConfigDoc(configFile);
  let changed = false;
  updateEnrollment(enrollmentFile, (doc) => {
    const next = change(doc);
    changed = JSON.stringify(enrollmentJson(next)) !== JSON.stringify(enrollmentJson(doc));
    if (!changed) return doc;
    const p = new Problems(`config ${configFile}`);
    checkGatewayDoc(p, config, { peers: next.peers });
    if (p.count > 0) throw refused('enrollment file', enrollmentFile, p);
    return next;
  });
  return changed
    ? { file: enrollmentFile, changed, prev: `${enrollmentFile}.prev` }
    : { file: enrollmentFile, changed };
}
