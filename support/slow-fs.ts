/**
 * slow-fs for tests: a real FUSE file system (support/slow-fs/slow-fs.c, built into build/slow-fs by
 * scripts/setup.sh) whose fsync can be made slow and whose writes, reads and fsyncs can be made to
 * fail, mounted on a temporary directory and controlled at runtime through its control file.
 * See docs/slow-fs.md.
 *
 *   const fs = await mountSlowFs({ fsyncDelayMs: 20 });
 *   // ... put an image in fs.dir, serve it, fdatasync takes >= 20 ms ...
 *   await fs.set({ failWrite: 'ENOSPC' });
 *   await fs.unmount();
 *
 * The daemon runs in the foreground as our child (killed by PID, never by name); unmount() stops it
 * with SIGTERM (it unmounts itself), falls back to a lazy unmount if it died without doing so, and
 * removes the temporary directories.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Spawned, spawnTracked } from './processes.js';
import { sleep } from './wait.js';

export const SLOW_FS_BIN = join(import.meta.dirname, '..', 'build', 'slow-fs');
/** Name of the control file at the root of the mount (not listed by readdir). */
export const SLOW_FS_CONTROL = '.slowfs';

/** The errors a failure setting can inject; 'none' turns the failure off. */
export type SlowFsError = 'none' | 'EIO' | 'ENOSPC' | 'EROFS' | 'EDQUOT';

export interface SlowFsSettings {
  /** Sleep after every fsync/fdatasync (which first syncs the backing file for real). */
  fsyncDelayMs: number;
  /** Sleep before every write request that reaches the daemon. */
  writeDelayMs: number;
  /** Sleep before every read request that reaches the daemon (page-cache hits never do). */
  readDelayMs: number;
  /** Every write (and fallocate) fails with this error, nothing written, until 'none'. */
  failWrite: SlowFsError;
  /** Every fsync/fdatasync fails with this error (after fsyncDelayMs), until 'none'. */
  failFsync: SlowFsError;
  /** Every read that reaches the daemon fails with this error, until 'none'. */
  failRead: SlowFsError;
}

export interface SlowFsStats {
  /** fsync and fdatasync requests that succeeded (datasyncs counts the fdatasync ones again). */
  fsyncs: number;
  datasyncs: number;
  /** Write and read requests served (not system calls: the kernel splits and caches). */
  writes: number;
  reads: number;
  bytesWritten: number;
  bytesRead: number;
  /** Injected failures returned. */
  writeErrors: number;
  fsyncErrors: number;
  readErrors: number;
  /** fsyncs inside the daemon right now, and the most there ever were at once. */
  fsyncsInFlight: number;
  maxFsyncsInFlight: number;
}

/** Control-file key of every setting and counter: the daemon's spelling. */
export const SLOW_FS_SETTING_KEYS: Record<keyof SlowFsSettings, string> = {
  fsyncDelayMs: 'fsync_delay_ms',
  writeDelayMs: 'write_delay_ms',
  readDelayMs: 'read_delay_ms',
  failWrite: 'fail_write',
  failFsync: 'fail_fsync',
  failRead: 'fail_read',
};
export const SLOW_FS_STAT_KEYS: Record<keyof SlowFsStats, string> = {
  fsyncs: 'fsyncs',
  datasyncs: 'datasyncs',
  writes: 'writes',
  reads: 'reads',
  bytesWritten: 'bytes_written',
  bytesRead: 'bytes_read',
  writeErrors: 'write_errors',
  fsyncErrors: 'fsync_errors',
  readErrors: 'read_errors',
  fsyncsInFlight: 'fsyncs_in_flight',
  maxFsyncsInFlight: 'max_fsyncs_in_flight',
};

/** The control-file text that applies `s` (one write: the daemon applies all lines or none). */
export function slowFsControlText(s: Partial<SlowFsSettings>): string {
  let text = '';
  for (const [k, v] of Object.entries(s)) {
    if (v === undefined) continue;
    const key = SLOW_FS_SETTING_KEYS[k as keyof SlowFsSettings];
    if (key === undefined) throw new Error(`slow-fs: unknown setting ${k}`);
    text += `${key}=${v}\n`;
  }
  return text;
}

/** Parses the control file's `key=value` lines into settings and counters. */
export function parseSlowFsControl(text: string): { settings: SlowFsSettings; stats: SlowFsStats } {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) kv.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  const get = (key: string) => {
    const v = kv.get(key);
    if (v === undefined) throw new Error(`slow-fs: control file lacks ${key}:\n${text}`);
    return v;
  };
  const settings = {} as Record<string, string | number>;
  for (const [k, key] of Object.entries(SLOW_FS_SETTING_KEYS)) {
    const v = get(key);
    settings[k] = key.startsWith('fail_') ? v : Number(v);
  }
  const stats = {} as Record<string, number>;
  for (const [k, key] of Object.entries(SLOW_FS_STAT_KEYS)) stats[k] = Number(get(key));
  return { settings: settings as unknown as SlowFsSettings, stats: stats as unknown as SlowFsStats };
}

export interface SlowFs {
  /** The mount point: put files here. */
  dir: string;
  /** The backing directory the files really live in (read it to check what reached "the disk"). */
  backingDir: string;
  /** The daemon's PID. */
  pid: number;
  set(settings: Partial<SlowFsSettings>): Promise<void>;
  settings(): Promise<SlowFsSettings>;
  stats(): Promise<SlowFsStats>;
  /** Daemon output so far (its stderr carries rejected control lines and libfuse errors). */
  output(): string;
  /** Stops the daemon, makes sure nothing stays mounted, removes the temporary directories. */
  unmount(): Promise<void>;
}

export interface SlowFsOptions extends Partial<SlowFsSettings> {
  /** Upper bound on the daemon's request threads (default 32). */
  maxThreads?: number;
}

/** Why slow-fs tests cannot run here, or undefined when they can. */
export function slowFsSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'slow-fs needs Linux FUSE';
  if (!existsSync('/dev/fuse')) return '/dev/fuse is missing (modprobe fuse)';
  if (!existsSync(SLOW_FS_BIN)) return `${SLOW_FS_BIN} is missing (run scripts/setup.sh)`;
  if (process.getuid?.() !== 0 && !hasFusermount())
    return 'not root and no fusermount3 (apt-get install fuse3)';
  return undefined;
}

function hasFusermount(): boolean {
  return spawnSync('sh', ['-c', 'command -v fusermount3']).status === 0;
}

/** Whether `dir` is a mount point now (field 5 of /proc/self/mountinfo; octal escapes for blanks). */
export function isMounted(dir: string): boolean {
  const esc = dir.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === esc);
}

const mounted = new Set<string>();
let exitHook = false;

/** Lazy unmount of a mount whose daemon is gone (or going): fusermount3 first, then umount. */
function forceUnmount(dir: string): void {
  if (!isMounted(dir)) return;
  if (spawnSync('fusermount3', ['-u', '-z', dir]).status === 0 && !isMounted(dir)) return;
  spawnSync('umount', ['-l', dir]);
}

export async function mountSlowFs(opts: SlowFsOptions = {}): Promise<SlowFs> {
  const skip = slowFsSkipReason();
  if (skip) throw new Error(`slow-fs: ${skip}`);
  const root = mkdtempSync(join(tmpdir(), 'aoegw-slowfs-'));
  const backingDir = join(root, 'backing');
  const dir = join(root, 'mnt');
  mkdirSync(backingDir);
  mkdirSync(dir);
  const args = [
    `--fsync-delay-ms=${opts.fsyncDelayMs ?? 0}`,
    `--write-delay-ms=${opts.writeDelayMs ?? 0}`,
    `--read-delay-ms=${opts.readDelayMs ?? 0}`,
    `--max-threads=${opts.maxThreads ?? 32}`,
    backingDir,
    dir,
  ];
  const proc: Spawned = spawnTracked(SLOW_FS_BIN, args);
  const pid = proc.child.pid!;
  mounted.add(dir);
  if (!exitHook) {
    exitHook = true;
    // processes.ts SIGKILLs the daemons on exit (its hook runs first); detach what they leave.
    process.on('exit', () => {
      for (const d of mounted) forceUnmount(d);
    });
  }

  let done = false;
  const unmount = async () => {
    if (done) return;
    done = true;
    if (proc.child.exitCode === null && proc.child.signalCode === null) await proc.stop('SIGTERM');
    forceUnmount(dir);
    mounted.delete(dir);
    if (isMounted(dir)) throw new Error(`slow-fs: ${dir} is still mounted`);
    rmSync(root, { recursive: true, force: true });
  };

  // Live when the kernel lists the mount and a request (stat of the control file) is answered.
  const end = Date.now() + 10_000;
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      await unmount();
      throw new Error(`slow-fs exited before mounting:\n${proc.output()}`);
    }
    if (isMounted(dir)) {
      try {
        if (statSync(join(dir, SLOW_FS_CONTROL)).isFile()) break;
      } catch {}
    }
    if (Date.now() > end) {
      await unmount();
      throw new Error(`slow-fs did not mount ${dir} within 10 s:\n${proc.output()}`);
    }
    await sleep(10);
  }

  const control = join(dir, SLOW_FS_CONTROL);
  const read = async () => parseSlowFsControl(await readFile(control, 'utf8'));
  const fs: SlowFs = {
    dir,
    backingDir,
    pid,
    set: async (s) => {
      const text = slowFsControlText(s);
      try {
        await writeFile(control, text);
      } catch (e) {
        throw new Error(`slow-fs rejected ${JSON.stringify(text)}: ${(e as Error).message}`);
      }
    },
    settings: async () => (await read()).settings,
    stats: async () => (await read()).stats,
    output: () => proc.output(),
    unmount,
  };
  const failures: Partial<SlowFsSettings> = {};
  if (opts.failWrite) failures.failWrite = opts.failWrite;
  if (opts.failFsync) failures.failFsync = opts.failFsync;
  if (opts.failRead) failures.failRead = opts.failRead;
  if (Object.keys(failures).length > 0) await fs.set(failures);
  return fs;
}
