/**
 * One daemon per state file: an exclusive flock on `<stateFile>.lock`, held for the process's
 * life (the kernel drops it when the process ends, even by SIGKILL, so it never goes stale). Taken
 * before any link or export opens: a second daemon for the same config (by hand beside systemd, a
 * second start) stops there instead of answering initiators beside the first and rewriting the
 * same state file. The file holds the holder's pid, for the message.
 */
import { closeSync, constants, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { AoegwError } from '../errors.js';
import { fromNative, nativeAddon } from './native.js';

/** Takes the lock of `stateFile` or throws ERR_DAEMON_RUNNING naming the holder. Never released. */
export function lockStateFile(stateFile: string): void {
  const path = `${stateFile}.lock`;
  let fd: number;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw new AoegwError('ERR_STATE_FILE', `cannot open the lock ${path}: ${(e as Error).message}`);
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
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  // The descriptor stays open (and locked) until the process ends.
}
