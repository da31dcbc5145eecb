/**
 * Shared benchmark plumbing: medians over interleaved rounds, CPU time of other processes, and
 * replacing one generated section of docs/benchmarks.md.
 */
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { IdentifyParsed } from '../src/aoe/identify.js';
import type { Initiator } from '../src/initiator/initiator.js';
import { identify } from '../src/initiator/operations.js';
import type { TargetClient } from '../src/initiator/target-client.js';

export const repoRoot = join(import.meta.dirname, '..');

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** User+system CPU seconds a process has used so far (from /proc/PID/stat). */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = 100; // USER_HZ on Linux
  return (Number(fields[11]) + Number(fields[12])) / hz;
}

/** Resident set size of a process in MiB. */
export function processRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : 0;
}

export function table(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Replaces (or appends) the section between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`. */
export function writeSection(name: string, body: string): void {
  const path = join(repoRoot, 'docs', 'benchmarks.md');
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  let doc = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n';
  const block = `${start}\n${body.trim()}\n${end}`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i >= 0 && j > i) doc = doc.slice(0, i) + block + doc.slice(j + end.length);
  else doc = `${doc.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, doc);
}

export function machineLine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return `${new Date().toISOString().slice(0, 10)}, ${cpu}, ${awaitNproc()} cores, Node ${process.version}, load average before the run ${load}`;
}

function awaitNproc(): number {
  return readFileSync('/proc/cpuinfo', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('processor')).length;
}

/** Rejects when `p` does not settle within `ms`: a hung stack fails its cell, not the whole run. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: no result within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** An image of `bytes` whose every MiB is non-zero data (tmpfs holes would read as the zero page). */
export function filledImage(path: string, bytes: number): string {
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 0x9e3779b1) >>> 0, i);
  const fd = openSync(path, 'w');
  try {
    for (let off = 0; off < bytes; off += chunk.length) writeSync(fd, chunk, 0, chunk.length, off);
  } finally {
    closeSync(fd);
  }
  return path;
}

/**
 * Finds `target` through `ini` and IDENTIFYs it, retrying discovery for up to `waitMs`: behind a
 * tunnel the first frames may wait for a handshake or an advertisement.
 */
export async function openTarget(
  ini: Initiator,
  target: { major: number; minor: number },
  waitMs: number,
  queryMs: number,
): Promise<{ c: TargetClient; ident: IdentifyParsed }> {
  let advert: Awaited<ReturnType<Initiator['queryConfig']>>[number] | undefined;
  const until = Date.now() + waitMs;
  while (!advert && Date.now() < until) [advert] = await ini.queryConfig(queryMs, target);
  if (!advert) throw new Error(`e${target.major}.${target.minor} did not answer in ${waitMs / 1000} s`);
  const c = ini.client(advert);
  return { c, ident: await withTimeout(identify(ini, c), waitMs, 'IDENTIFY') };
}

/** Closes what a benchmark set up, newest first; a failure is reported and the rest still close. */
export async function closeAll(closers: (() => unknown)[]): Promise<void> {
  for (const c of closers.splice(0).reverse()) {
    try {
      await c();
    } catch (e) {
      process.stderr.write(`cleanup: ${(e as Error).message}\n`);
    }
  }
}

/**
 * Per-thread CPU of one process: nanoseconds on CPU (schedstat, exact, unlike the 10 ms ticks of
 * /proc/PID/stat), thread name and context switches, by thread id. Diff two snapshots with
 * threadCpuDelta(): io_uring's io-wq workers (iou-wrk-*) come and go.
 */
export type ThreadSnapshot = Map<string, { comm: string; ns: number; switches: number }>;

export function threadSnapshot(pid: number): ThreadSnapshot {
  const out: ThreadSnapshot = new Map();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      let switches = 0;
      for (const m of status.matchAll(/_ctxt_switches:\s+(\d+)/g)) switches += Number(m[1]);
      out.set(tid, { comm, ns, switches });
    } catch {
      // the thread exited between readdir and read
    }
  }
  return out;
}

/** CPU seconds between two snapshots: the event loop (main thread), io-wq workers, the rest (libuv pool, V8). */
export interface ThreadCpu {
  loop: number;
  iowq: number;
  other: number;
  /** Voluntary + involuntary context switches of every thread. */
  switches: number;
}

export function threadCpuDelta(pid: number, a: ThreadSnapshot, b: ThreadSnapshot): ThreadCpu {
  const out: ThreadCpu = { loop: 0, iowq: 0, other: 0, switches: 0 };
  for (const [tid, t] of b) {
    const t0 = a.get(tid);
    const s = (t.ns - (t0?.ns ?? 0)) / 1e9;
    out.switches += t.switches - (t0?.switches ?? 0);
    if (tid === String(pid)) out.loop += s;
    else if (t.comm.startsWith('iou-wrk')) out.iowq += s;
    else out.other += s;
  }
  return out;
}
