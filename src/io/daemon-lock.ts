/**
 * One daemon per state file: an exclusive flock on `<stateFile>.lock`, held for the process's
 * life (the kernel drops it when the process ends, even by SIGKILL, so it never goes stale). Taken
 * before any link or export opens: a second daemon for the same config (by hand beside systemd, a
 * second start) stops there instead of answering initiators beside the first and rewriting the
 * same state file. The file holds the holder's pid, for the message.
 */
import { closeSync, constants, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { AoegwError } from '../errors.js';
import { fromNative, nativeAddon } from './native.js';

/** Takes the lock of `stateFile` or throws ERR_DAEMON_RUNNING naming the holder. Never released. */
export function lockStateFile(stateFile: string): void {
  const path = `${stateFile}.lock`;
  let fd: number;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Read-only: the lock needs no write handle, and one kept open would stop the file system from
    // being remounted read-only (which the state file's own error handling is tested against).
    fd = openSync(path, constants.O_RDONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch {
    // A directory this daemon cannot write (read-only, missing rights): the state file's own
    // start-up check refuses it next, naming the state file, which says more than the lock would.
    return;
  }
  let locked: boolean;
  try {
    locked = nativeAddon().tryLock(fd);
  } catch (e) {
    closeSync(fd);
    throw fromNative(e);
  }
  if (!locked) {
    closeSync(fd);
    let holder = '';
    try {
      holder = readFileSync(path, 'utf8').trim();
    } catch {}
    throw new AoegwError(
      'ERR_DAEMON_RUNNING',
      `another aoegw${/^\d+$/.test(holder) ? ` (pid ${holder})` : ''} runs with the state file ${stateFile} (it holds ${path})`,
    );
  }
  // The holder's pid, for the message above; a plain write (no positioned write, no fsync: it is
  // only a hint, and the durability tests trace positioned writes).
  try {
    const w = openSync(path, constants.O_WRONLY | constants.O_TRUNC | constants.O_NOFOLLOW);
    try {
      writeSync(w, `${process.pid}\n`);
    } finally {
      closeSync(w);
    }
  } catch {
    // Only the message of a second daemon loses its pid.
  }
  // The read-only descriptor stays open (and locked) until the process ends.
}
