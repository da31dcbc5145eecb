/**
 * The peers of the enrollment file (docs/gateway.md, "Enrollment file"): read-only, for the config
 * loader, which validates them with the config's own peers. The file holds invite secrets, so it
 * must be a regular file owned by this user (or root) that group and others cannot access;
 * anything else is refused as a problem, not read. A missing file means no enrolled peers.
 * The invites are not looked at here (src/enroll owns them).
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { obj, type Problems } from './validate.js';

export const ENROLLMENT_FILE_VERSION = 1;

/** The `peers` list of a parsed enrollment file (problems recorded in `p`, [] on any). */
export function enrolledPeersOf(p: Problems, doc: unknown): unknown[] {
  const o = obj(p, doc, '(top level)');
  if (!o) return [];
  if (o.version !== ENROLLMENT_FILE_VERSION) {
    p.add('version', o.version, `${ENROLLMENT_FILE_VERSION} (a file written by a newer aoegw?)`);
    return [];
  }
  if (o.peers === undefined) return [];
  if (!Array.isArray(o.peers)) {
    p.add('peers', o.peers, 'a list of peers');
    return [];
  }
  return o.peers;
}

/**
 * Opens the enrollment file with the checks above; the text, null when the file does not exist,
 * or undefined when it is refused (recorded in `p`).
 */
export function readEnrollmentText(p: Problems, file: string): string | null | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang us before the isFile() check.
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    p.note('', code === 'ELOOP' ? 'is a symbolic link (refused)' : `cannot read it: ${(e as Error).message}`);
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      p.note('', 'is not a regular file (refused)');
      return undefined;
    }
    const uid = process.getuid?.() ?? 0;
    if (st.uid !== uid && st.uid !== 0) {
      p.note('', `is owned by uid ${st.uid}, not by this user (${uid}) or root (refused)`);
      return undefined;
    }
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      p.note(
        '',
        `permissions ${mode} let group or others access it (it holds invite secrets); run chmod 600 ${file}`,
      );
      return undefined;
    }
    return readFileSync(fd, 'utf8');
  } catch (e) {
    p.note('', `cannot read it: ${(e as Error).message}`);
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The enrolled peers (raw objects, validated by the config loader); [] when the file is missing. */
export function readEnrolledPeers(p: Problems, file: string): unknown[] {
  const text = readEnrollmentText(p, file);
  if (text === null || text === undefined) return [];
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    p.note('', `cannot read it as JSON: ${(e as Error).message}`);
    return [];
  }
  return enrolledPeersOf(p, doc);
}
