/**
 * Safe edits of a JSON config or enrollment file, for the CLI's `peer …` and `export …`: read,
 * apply a pure edit, validate the result with the full validator (the config with the enrolled
 * peers), and only when it has no problem write it atomically — a temporary file in the same
 * directory with the original's mode and owner, fsync, rename, fsync of the directory — keeping
 * the previous version as `<file>.prev`. A refused edit writes nothing. The file keeps its JSON
 * style (json-format.ts). A file changed by someone else between our read and our rename (the
 * daemon enrolling a peer) is not overwritten: the edit is redone on the new content.
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
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { AoegwError } from '../errors.js';
import { enrolledPeersOf, readEnrollmentText } from './enrollment-peers.js';
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
const TMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

function configError(label: string, file: string, why: string, cause?: unknown): AoegwError {
  return new AoegwError('ERR_CONFIG', `${label} ${file}: ${why}`, cause ? { cause } : undefined);
}

function statOf(file: string): Stats {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    return fstatSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
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
    if (problems.count > 0) {
      const lines = problems.lines();
      throw configError(
        label,
        file,
        `edit refused, nothing written: the result would have ${lines.length === 1 ? 'a problem' : `${lines.length} problems`}:\n${lines.map((l) => `  ${l}`).join('\n')}`,
      );
    }
    const st = statOf(file);
    const dir = dirname(file);
    const tmp = `${file}.tmp-${process.pid}-${attempt}`;
    let fd = -1;
    try {
      rmSync(tmp, { force: true });
      fd = openSync(tmp, TMP_FLAGS, 0o600);
      // The original's mode and owner (the daemon may run as another user than the operator).
      fchmodSync(fd, st.mode & 0o7777);
      if (st.uid !== process.getuid?.() || st.gid !== process.getgid?.()) fchownSync(fd, st.uid, st.gid);
      writeFileSync(fd, out);
      fsyncSync(fd);
      closeSync(fd);
      fd = -1;
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
      if (fd >= 0) closeSync(fd);
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

/** Edits the enrollment file of a gateway config; the result is validated with the config. */
export function editEnrollmentFile(configFile: string, edit: (doc: unknown) => unknown): EditResult {
  const { doc: config, enrollmentFile } = readGatewayConfigDoc(configFile);
  const label = 'enrollment file';
  return editJsonFile(
    {
      label,
      file: enrollmentFile,
      read: (f) => {
        const p = new Problems(`${label} ${f}`);
        const text = readEnrollmentText(p, f);
        if (text === null) throw configError(label, f, 'does not exist');
        if (text === undefined) throw new AoegwError('ERR_CONFIG', p.lines().join('\n'));
        return text;
      },
      validate: (doc) => {
        const p = new Problems(`config ${configFile}`);
        const peers = enrolledPeersOf(p.in(`${label} ${enrollmentFile}`), doc);
        checkGatewayDoc(p, config, { peers });
        return p;
      },
    },
    edit,
  );
}
