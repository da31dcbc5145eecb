/**
 * The kernel's io_uring and sendmmsg tracepoints, recorded in a private tracefs instance, for the
 * ring-mode ordering proof (strace cannot see io_uring: the writes and fdatasyncs are not system
 * calls of the daemon, they are ring entries the kernel runs, often in its io-wq workers).
 *
 * An instance (`/sys/kernel/tracing/instances/aoegw-<our pid>-<n>`) has its own buffer, clock and
 * event switches, so nothing global is changed and other tracers on the machine are not
 * disturbed. Its clock is `mono` (one clock for every CPU: an io-wq worker's completion on one CPU
 * and the daemon's sendmmsg on the other compare correctly); the `trace` file lists the events of
 * every CPU merged in timestamp order. The instance is deleted by remove(), or at process exit.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const TRACEFS = '/sys/kernel/tracing';

const EVENTS = [
  'io_uring/io_uring_submit_req',
  'io_uring/io_uring_complete',
  'syscalls/sys_enter_sendmmsg',
] as const;

/** Why the trace cannot be taken here, or undefined when it can. */
export function uringTraceSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (tracefs)';
  if (!existsSync(join(TRACEFS, 'instances'))) return `tracefs is not mounted at ${TRACEFS}`;
  for (const e of EVENTS) {
    if (!existsSync(join(TRACEFS, 'events', e, 'format'))) return `tracepoint ${e} is missing`;
  }
  return undefined;
}

export type TraceEvent =
  | { kind: 'submit'; tid: number; ctx: string; req: string; userData: number; opcode: string; flags: number }
  | { kind: 'complete'; tid: number; ctx: string; req: string; userData: number; result: number }
  | { kind: 'sendmmsg'; tid: number; fd: number; vlen: number };

// "  comm-tid  [cpu] flags  ts: name: fields" (syscall events: "ts: sys_name(fields)").
const LINE = /^\s*(.*?)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(\w+)(?::\s+|\()(.*)$/;

/** Parses the `trace` file: the three events above, in file (= timestamp) order; other lines are skipped. */
export function parseTrace(text: string): TraceEvent[] {
  const out: TraceEvent[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const tid = Number(m[2]);
    const name = m[5]!;
    const rest = m[6]!;
    if (name === 'io_uring_submit_req') {
      const f = /ring (\S+), req (\S+), user_data 0x([0-9a-f]+), opcode (\S+), flags 0x([0-9a-f]+)/.exec(
        rest,
      );
      if (f) {
        out.push({
          kind: 'submit',
          tid,
          ctx: f[1]!,
          req: f[2]!,
          userData: Number.parseInt(f[3]!, 16),
          opcode: f[4]!,
          flags: Number.parseInt(f[5]!, 16),
        });
      }
    } else if (name === 'io_uring_complete') {
      const f = /ring (\S+), req (\S+), user_data 0x([0-9a-f]+), result (-?\d+)/.exec(rest);
      if (f) {
        out.push({
          kind: 'complete',
          tid,
          ctx: f[1]!,
          req: f[2]!,
          userData: Number.parseInt(f[3]!, 16),
          result: Number(f[4]),
        });
      }
    } else if (name === 'sys_sendmmsg' || name === 'sys_enter_sendmmsg') {
      const f = /fd: (?:0x)?([0-9a-f]+).*vlen: (?:0x)?([0-9a-f]+)/.exec(rest);
      if (f)
        out.push({ kind: 'sendmmsg', tid, fd: Number.parseInt(f[1]!, 16), vlen: Number.parseInt(f[2]!, 16) });
    }
  }
  return out;
}

const live = new Set<string>();
let hook = false;
let seq = 0;

function removeInstance(dir: string): void {
  if (!existsSync(dir)) return;
  try {
    writeFileSync(join(dir, 'tracing_on'), '0');
  } catch {}
  // rmdir disables the instance's events and frees its buffer.
  rmdirSync(dir);
}

export class UringTrace {
  readonly dir: string;
  private stopped = false;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * A new instance recording the three events (sendmmsg only from `sendmmsgPid`, when given: the
   * machine is shared, other processes send too), and `extraEvents` ("system/event") for a
   * diagnosis. Buffer: `bufferKb` per CPU.
   */
  static start(o: { sendmmsgPid?: number; bufferKb?: number; extraEvents?: string[] } = {}): UringTrace {
    const dir = join(TRACEFS, 'instances', `aoegw-${process.pid}-${seq++}`);
    mkdirSync(dir);
    live.add(dir);
    if (!hook) {
      hook = true;
      process.on('exit', () => {
        for (const d of live) {
          try {
            removeInstance(d);
          } catch {}
        }
      });
    }
    const t = new UringTrace(dir);
    try {
      writeFileSync(join(dir, 'tracing_on'), '0');
      writeFileSync(join(dir, 'trace_clock'), 'mono');
      writeFileSync(join(dir, 'buffer_size_kb'), String(o.bufferKb ?? 8192));
      if (o.sendmmsgPid !== undefined) {
        writeFileSync(
          join(dir, 'events', 'syscalls', 'sys_enter_sendmmsg', 'filter'),
          `common_pid == ${o.sendmmsgPid}`,
        );
      }
      for (const e of [...EVENTS, ...(o.extraEvents ?? [])])
        writeFileSync(join(dir, 'events', e, 'enable'), '1');
      writeFileSync(join(dir, 'tracing_on'), '1');
    } catch (e) {
      t.remove();
      throw e;
    }
    return t;
  }

  /** Stops recording and returns what was recorded; the instance stays until remove(). */
  stop(): { events: TraceEvent[]; text: string; lost: number } {
    if (!this.stopped) {
      writeFileSync(join(this.dir, 'tracing_on'), '0');
      this.stopped = true;
    }
    const text = readFileSync(join(this.dir, 'trace'), 'utf8');
    // per_cpu/cpuN/stats "overrun": events lost because the buffer was full.
    let lost = 0;
    for (const cpu of readdirSafe(join(this.dir, 'per_cpu'))) {
      const stats = readFileSync(join(this.dir, 'per_cpu', cpu, 'stats'), 'utf8');
      lost += Number(/overrun: (\d+)/.exec(stats)?.[1] ?? 0);
    }
    return { events: parseTrace(text), text, lost };
  }

  /** Deletes the instance (idempotent). */
  remove(): void {
    removeInstance(this.dir);
    live.delete(this.dir);
  }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export interface AckOrder {
  /** Ring contexts the daemon submitted to. */
  rings: number;
  /** Write completions (WRITE, WRITEV). */
  writes: number;
  /** Successful FSYNC completions. */
  fsyncs: number;
  /** The daemon's sendmmsg calls. */
  sends: number;
  /** sendmmsg calls while a completed write was not yet covered by a completed FSYNC. */
  violations: number;
  /** Completions with an error. */
  failed: number;
}

/**
 * Walks the trace in timestamp order, keeping only the io_uring events of the daemon's rings (the
 * ring contexts the daemon's own thread submitted to: completions may come from io-wq workers)
 * and the daemon's sendmmsg calls. A WRITE/WRITEV completion makes the export "dirty", an FSYNC
 * completion (linked after the writes of its group) makes it clean; a sendmmsg while dirty is an
 * acknowledgement that may have left before its write was durable: a violation.
 */
export function ackOrder(events: TraceEvent[], pid: number): AckOrder {
  const rings = new Set<string>();
  for (const e of events) if (e.kind === 'submit' && e.tid === pid) rings.add(e.ctx);
  const opOf = new Map<string, string>();
  let dirty = false;
  let writes = 0;
  let fsyncs = 0;
  let sends = 0;
  let violations = 0;
  let failed = 0;
  for (const e of events) {
    if (e.kind === 'submit' && rings.has(e.ctx)) opOf.set(`${e.ctx}/${e.req}`, e.opcode);
    else if (e.kind === 'complete' && rings.has(e.ctx)) {
      const op = opOf.get(`${e.ctx}/${e.req}`);
      if (e.result < 0) failed++;
      if (op === 'WRITE' || op === 'WRITEV') {
        writes++;
        dirty = true;
      } else if (op === 'FSYNC' && e.result === 0) {
        fsyncs++;
        dirty = false;
      }
    } else if (e.kind === 'sendmmsg' && e.tid === pid) {
      sends++;
      if (dirty) violations++;
    }
  }
  return { rings: rings.size, writes, fsyncs, sends, violations, failed };
}
