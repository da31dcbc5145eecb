/**
 * The two steps every atomic file write here is made of (state file, config edits, enrollment
 * file, service-MAC records): a new file written and fsynced before it is renamed into place, and
 * the directory fsynced after the rename so the new name survives a crash too.
 */
import { closeSync, constants, fsyncSync, openSync, writeFileSync } from 'node:fs';

/** Create only: never an existing file, never through a symbolic link. */
const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Creates `path` (mode `mode`, default 0600) holding `text`, on disk when this returns. `prepare`
 * runs on the descriptor before the write (e.g. to give it another file's mode and owner).
 * Throws the system error; the caller names the file and removes what is left.
 */
export function writeNewFileSynced(
  path: string,
  text: string,
  o: { mode?: number; prepare?: (fd: number) => void } = {},
): void {
  const fd = openSync(path, NEW_FILE, o.mode ?? 0o600);
  try {
    o.prepare?.(fd);
    writeFileSync(fd, text); // loops until every byte is written
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes the directory's entries (a rename into it) durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
