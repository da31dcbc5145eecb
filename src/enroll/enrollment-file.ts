/**
 * The enrollment file on disk (content and operations: enrollment-doc.ts). It holds PSKs, so it
 * has the key file's rules: a regular file (not a symbolic link), owned by this user or root, mode
 * 0600; anything else is refused before it is read. Writes are atomic (a temporary file in the
 * same directory, fsync, rename, directory fsync) and keep the enrolled peers of the version they
 * replace as `<file>.prev` (not its invites: see saveEnrollment), put into place before the
 * rename so that the file itself never goes missing: a missing file reads as "no invites, no
 * enrolled peers", which would silently drop the peers.
 *
 * The invite CLI and the daemon both rewrite the file: updateEnrollment() runs its
 * read-modify-write under `<file>.lock` so that one never overwrites the other's change.
 */
import {
  closeSync,
  constants,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { AoegwError, errnoText } from '../errors.js';
import { fsyncDir, writeNewFileSynced } from '../io/durable-file.js';
import {
  EMPTY_ENROLLMENT,
  type EnrollmentDoc,
  EnrollmentFormatError,
  enrollmentJson,
  parseEnrollment,
  pruneExpired,
} from './enrollment-doc.js';

/** Where a gateway keeps its enrollment file: its `enrollmentFile` key, by default beside the state file. */
export function enrollmentPathOf(spec: {
  readonly stateFile: string;
  readonly enrollmentFile?: string;
}): string {
  return spec.enrollmentFile ?? join(dirname(spec.stateFile), 'enrollment.json');
}

function fileError(path: string, why: string, cause?: unknown): AoegwError {
  return new AoegwError(
    'ERR_ENROLLMENT_FILE',
    `enrollment file ${path}: ${why}`,
    cause ? { cause } : undefined,
  );
}

/** Reads and checks the file; a missing file is an empty document. Throws ERR_ENROLLMENT_FILE. */
export function loadEnrollment(path: string): EnrollmentDoc {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the daemon before the isFile() check.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return EMPTY_ENROLLMENT;
    if (code === 'ELOOP')
      throw fileError(path, 'is a symbolic link (refused): point the path at the real file');
    throw fileError(path, `cannot open it: ${errnoText(e)}`, e);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw fileError(path, 'is not a regular file');
    const uid = process.getuid?.() ?? 0;
    if (st.uid !== uid && st.uid !== 0) {
      throw fileError(
        path,
        `is owned by uid ${st.uid}, not by this user (${uid}) or root (refused: it holds PSKs)`,
      );
    }
    if ((st.mode & 0o077) !== 0) {
      throw fileError(
        path,
        `permissions ${(st.mode & 0o777).toString(8).padStart(4, '0')} let group or others access it (it holds PSKs); run chmod 600 ${path}`,
      );
    }
    text = readFileSync(fd, 'utf8');
  } catch (e) {
    if (e instanceof AoegwError) throw e;
    throw fileError(path, `cannot read it: ${errnoText(e)}`, e);
  } finally {
    closeSync(fd);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    // Only the position: some JSON.parse messages quote the text around it, which may be a PSK.
    const at = /position (\d+)/.exec((e as Error).message);
    throw fileError(
      path,
      `is not valid JSON${at ? ` (at character ${at[1]})` : ''}; its previous version is ${path}.prev`,
    );
  }
  try {
    return parseEnrollment(json);
  } catch (e) {
    if (e instanceof EnrollmentFormatError) throw fileError(path, e.message);
    throw e;
  }
}

const TMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
let seq = 0;

/**
 * Writes the document atomically (mode 0600), dropping expired invites, and keeps the replaced
 * version's enrolled peers as `<path>.prev` — without its pending invites: restoring `.prev` must
 * never revive an invite that was burned or cancelled since, and `.prev` then holds no PSK. (A
 * replaced version that does not parse is kept as it is, for whoever repairs it.) Throws
 * ERR_ENROLLMENT_FILE naming the file and the cause.
 */
export function saveEnrollment(path: string, doc: EnrollmentDoc, nowMs = Date.now()): void {
  const text = enrollmentText(pruneExpired(doc, nowMs));
  const dir = dirname(path);
  const tmp = `${path}.tmp-${process.pid}-${seq++}`;
  const prevTmp = `${path}.prev.tmp-${process.pid}-${seq++}`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st?.isSymbolicLink())
      throw fileError(path, 'is a symbolic link (refused): point the path at the real file');
    rmSync(tmp, { force: true });
    writeNewFileSynced(tmp, text);
    if (st !== undefined) {
      // The previous version under its second name first: the file itself is never absent, and
      // .prev is always a whole version.
      rmSync(prevTmp, { force: true });
      const peersOnly = previousPeers(path);
      if (peersOnly === undefined) linkSync(path, prevTmp);
      else writeNewFileSynced(prevTmp, peersOnly);
      renameSync(prevTmp, `${path}.prev`);
    }
    renameSync(tmp, path);
    fsyncDir(dir);
  } catch (e) {
    rmSync(tmp, { force: true });
    rmSync(prevTmp, { force: true });
    if (e instanceof AoegwError) throw e;
    throw fileError(path, `cannot write it: ${errnoText(e)}`, e);
  }
}

function enrollmentText(doc: EnrollmentDoc): string {
  return `${JSON.stringify(enrollmentJson(doc), null, 2)}\n`;
}

/** The file's current version without its pending invites, or undefined when it does not parse. */
function previousPeers(path: string): string | undefined {
  try {
    const current = parseEnrollment(JSON.parse(readFileSync(path, 'utf8')));
    return enrollmentText({ ...current, invites: [] });
  } catch {
    return undefined;
  }
}

/** How long updateEnrollment waits for another process's update before giving up. */
export const LOCK_WAIT_MS = 3000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `<path>.lock` (O_EXCL, holding our pid); a lock whose process is gone is taken over. */
function lock(path: string, waitMs: number): string {
  const lockPath = `${path}.lock`;
  const deadline = Date.now() + waitMs;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // The lock appears with its holder's pid already in it (written to a private name first, then
  // linked), so a lock file is never empty: a holder that died is always recognisable.
  const mine = `${lockPath}.${process.pid}-${seq++}`;
  try {
    const fd = openSync(mine, TMP_FLAGS, 0o600);
    try {
      writeFileSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    rmSync(mine, { force: true });
    throw fileError(path, `cannot create ${mine}: ${errnoText(e)}`, e);
  }
  try {
    for (;;) {
      try {
        linkSync(mine, lockPath);
        return lockPath;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
          throw fileError(path, `cannot create ${lockPath}: ${errnoText(e)}`, e);
      }
      const holder = readLockPid(lockPath);
      if (holder === null ? lockAgeMs(lockPath) > STALE_EMPTY_LOCK_MS : !isAlive(holder)) {
        rmSync(lockPath, { force: true });
        continue;
      }
      if (Date.now() >= deadline) {
        throw fileError(
          path,
          `locked by ${holder === null ? 'another process' : `process ${holder}`} (another aoegw invite, or the daemon) for over ${waitMs} ms; try again, or remove ${lockPath} if no aoegw is running`,
        );
      }
      sleepSync(20);
    }
  } finally {
    rmSync(mine, { force: true });
  }
}

/** An empty lock (left by an older aoegw that died while creating it) is stale after this. */
const STALE_EMPTY_LOCK_MS = 5000;

function lockAgeMs(lockPath: string): number {
  try {
    return Date.now() - lstatSync(lockPath).mtimeMs;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

function readLockPid(lockPath: string): number | null {
  let fd: number;
  try {
    fd = openSync(lockPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(32);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const pid = Number(buf.toString('utf8', 0, n).trim());
    // Locks are created with their pid in them: an empty or garbled one is judged by its age.
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Read-modify-write under the file's lock: loads the document, applies `change` (which may throw
 * to abandon the update), saves the result, and returns it (as saved: without expired invites).
 * Synchronous: the lock is held for one read and one atomic write, a few milliseconds.
 */
export function updateEnrollment(
  path: string,
  change: (doc: EnrollmentDoc) => EnrollmentDoc,
  nowMs = Date.now(),
  waitMs = LOCK_WAIT_MS,
): EnrollmentDoc {
  const lockPath = lock(path, waitMs);
  try {
    const next = pruneExpired(change(loadEnrollment(path)), nowMs);
    saveEnrollment(path, next, nowMs);
    return next;
  } finally {
    rmSync(lockPath, { force: true });
  }
}
