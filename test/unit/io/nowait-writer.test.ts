/**
 * NoWaitWriter on real fds. The stalled reader is a `cat` stopped with SIGSTOP on the other end of a
 * Unix stream socket (what journald's stream socket is; Node's stdio 'pipe' is a socketpair), its
 * output going to a file; SIGCONT lets it read. An anonymous pipe (pipe(2), as a shell makes) is
 * tested through a child process, since Node cannot make one in this process. Also: a regular
 * file, a pty master (EOPNOTSUPP) and a reader that went away (EPIPE).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { constants as os, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NoWaitWriter } from '../../../src/io/nowait-writer.js';

/** More than a Unix socket's send buffer (about 200 KiB) or a pipe (64 KiB) holds, less than the bound. */
const MORE_THAN_BUFFERED = 512 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let fds: number[];
let children: ChildProcess[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nowait-writer-'));
  fds = [];
  children = [];
});
afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const fd of fds) closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
});

function open(path: string, flags: number): number {
  const fd = openSync(path, flags);
  fds.push(fd);
  return fd;
}

/** The state letter of /proc/PID/stat ('T': stopped). */
function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0]!;
}

/**
 * A `cat` that is stopped before it reads anything: `fd` is this process's end of its stdin
 * socket, `out` the file it copies to once resumed.
 */
async function stalledReader() {
  const out = join(dir, `out-${children.length}`);
  const outFd = open(out, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC);
  const cat = spawn('cat', [], { stdio: ['pipe', outFd, 'ignore'] });
  children.push(cat);
  cat.kill('SIGSTOP');
  while (procState(cat.pid!) !== 'T') await sleep(5);
  const fd = (cat.stdin as unknown as { _handle: { fd: number } })._handle.fd;
  const exited = new Promise<void>((r) => cat.once('exit', () => r()));
  return {
    fd,
    pid: cat.pid!,
    resume: () => cat.kill('SIGCONT'),
    /** What cat wrote so far. */
    text: () => readFileSync(out, 'utf8'),
    /** End of input for cat (closes our end); resolves when it has exited. */
    finish: async () => {
      cat.stdin!.destroy();
      await exited;
    },
    kill: async () => {
      cat.kill('SIGKILL');
      await exited;
    },
  };
}

/** Waits until `done` holds, reading nothing itself (the timers keep running meanwhile). */
async function until(done: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(10);
  }
}

const line = (i: number) => `line ${String(i).padStart(6, '0')} ${'x'.repeat(80)}\n`;

const allLines = (count: number, from = 0) =>
  Array.from({ length: count }, (_, i) => line(from + i)).join('');
const lineCount = (bytes: number) => Math.ceil(bytes / line(0).length);

describe('NoWaitWriter on a socket whose reader stopped reading', () => {
  it('writes return at once, lines queue, then all arrive in order exactly once', async () => {
    const r = await stalledReader();
    const w = new NoWaitWriter(r.fd);
    const count = lineCount(MORE_THAN_BUFFERED);
    const t0 = performance.now();
    for (let i = 0; i < count; i++) w.write(line(i));
    expect(performance.now() - t0).toBeLessThan(1000);
    const queued = w.stats();
    expect(queued.linesQueued).toBeGreaterThan(0);
    // A line the socket took in part is queued too (its rest).
    expect(queued.linesWritten + queued.linesQueued).toBe(count);
    expect(queued.linesDropped).toBe(0);

    r.resume();
    await until(() => w.stats().linesQueued === 0);
    await r.finish();
    expect(r.text()).toBe(allLines(count));
    expect(w.stats()).toEqual({
      linesWritten: count,
      linesQueued: 0,
      bytesQueued: 0,
      linesDropped: 0,
      mode: 'nowait',
    });
  }, 10_000);

  it('beyond the bound lines are dropped, counted, and one line says so once the reader catches up', async () => {
    const r = await stalledReader();
    const w = new NoWaitWriter(r.fd, { maxQueuedBytes: 8 * 1024, droppedLine: (n) => `dropped ${n}\n` });
    const count = lineCount(MORE_THAN_BUFFERED);
    for (let i = 0; i < count; i++) w.write(line(i));
    const s = w.stats();
    expect(s.linesDropped).toBeGreaterThan(0);
    expect(s.bytesQueued).toBeLessThanOrEqual(8 * 1024 + line(0).length);

    r.resume();
    await until(() => r.text().includes('dropped'));
    // Counted once: a later line follows without another report.
    w.write(line(count));
    await r.finish();
    const kept = count - s.linesDropped;
    expect(r.text()).toBe(`${allLines(kept)}dropped ${s.linesDropped}\n${line(count)}`);
  }, 10_000);

  it('EPIPE (the reader went away) stops writing and drops what is queued, without throwing', async () => {
    const r = await stalledReader();
    const w = new NoWaitWriter(r.fd, { retryMs: 5 });
    for (let i = 0; i < lineCount(MORE_THAN_BUFFERED); i++) w.write(line(i));
    const queued = w.stats().linesQueued;
    expect(queued).toBeGreaterThan(0);
    await r.kill();
    await until(() => w.stats().linesQueued === 0); // the retry meets EPIPE
    expect(w.stats()).toMatchObject({ bytesQueued: 0, linesDropped: queued });
    expect(() => w.write('after\n')).not.toThrow();
    expect(w.stats().linesDropped).toBe(queued + 1);
  });

  it('flushSync delivers queued lines to a slow reader', async () => {
    const r = await stalledReader();
    const w = new NoWaitWriter(r.fd);
    const count = lineCount(MORE_THAN_BUFFERED);
    for (let i = 0; i < count; i++) w.write(line(i));
    expect(w.stats().linesQueued).toBeGreaterThan(0);
    // Another process resumes the reader after 300 ms: flushSync blocks this one meanwhile.
    children.push(spawn('sh', ['-c', `sleep 0.3; kill -CONT ${r.pid}`], { stdio: 'ignore' }));
    const t0 = performance.now();
    expect(w.flushSync(5000)).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(w.stats().linesQueued).toBe(0);
    await r.finish();
    expect(r.text()).toBe(allLines(count));
  }, 10_000);

  it('flushSync gives up after its timeout when the reader is stalled', async () => {
    const r = await stalledReader();
    const w = new NoWaitWriter(r.fd);
    for (let i = 0; i < lineCount(MORE_THAN_BUFFERED); i++) w.write(line(i));
    const queued = w.stats().linesQueued;
    expect(queued).toBeGreaterThan(0);
    const t0 = performance.now();
    expect(w.flushSync(300)).toBe(false);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1500);
    expect(w.stats().linesQueued).toBe(queued);
  });
});

describe('NoWaitWriter on an anonymous pipe', () => {
  it('a writer on a shell pipe whose reader waits does not block, leaves the fd blocking, and flushSync delivers every line', () => {
    // A child process: only pipe(2), as a shell makes, gives a pipe that takes RWF_NOWAIT (a named
    // FIFO says EOPNOTSUPP). On fd 3, which Node leaves alone (touching process.stdout would set
    // O_NONBLOCK on its pipe). The reader starts only once the writer's loop is over (the gate
    // file): a write that waited for it would never get there.
    const script = join(dir, 'writer.ts');
    const gate = join(dir, 'gate');
    const writer = resolve(import.meta.dirname, '../../../src/io/nowait-writer.ts');
    writeFileSync(
      script,
      `import { readFileSync, writeFileSync } from 'node:fs';
import { NoWaitWriter } from ${JSON.stringify(writer)};
const line = ${line.toString()};
const w = new NoWaitWriter(3);
const t0 = performance.now();
for (let i = 0; i < ${lineCount(MORE_THAN_BUFFERED)}; i++) w.write(line(i));
const took = performance.now() - t0;
const queued = w.stats().linesQueued;
const flags = Number.parseInt(/flags:\\s*(\\d+)/.exec(readFileSync('/proc/self/fdinfo/3', 'utf8'))[1], 8);
writeFileSync(${JSON.stringify(gate)}, '');
const flushed = w.flushSync(5000);
process.stderr.write(JSON.stringify({ took, queued, flags, flushed }));
`,
    );
    const out = join(dir, 'out');
    const reader = 'while [ ! -e "$2" ]; do sleep 0.05; done; sleep 0.2; exec cat';
    const run = spawn(
      'sh',
      ['-c', `node --import tsx "$0" 3>&1 >/dev/null | { ${reader}; } > "$1"`, script, out, gate],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        cwd: resolve(import.meta.dirname, '../../..'),
      },
    );
    children.push(run);
    return new Promise<void>((done, fail) => {
      let err = '';
      run.stderr!.on('data', (d) => {
        err += d;
      });
      run.once('exit', (code) => {
        try {
          expect(code, err).toBe(0);
          const report = JSON.parse(err) as { took: number; queued: number; flags: number; flushed: boolean };
          expect(report.took).toBeLessThan(2000);
          expect(report.queued).toBeGreaterThan(0);
          expect(report.flags & constants.O_NONBLOCK).toBe(0);
          expect(report.flushed).toBe(true);
          expect(readFileSync(out, 'utf8')).toBe(allLines(lineCount(MORE_THAN_BUFFERED)));
          done();
        } catch (e) {
          fail(e);
        }
      });
    });
  }, 20_000);
});

describe('NoWaitWriter on a named FIFO', () => {
  it('no RWF_NOWAIT there (EOPNOTSUPP), but on an O_NONBLOCK fd EAGAIN queues as well', async () => {
    // What the daemon meets: Node's process.stderr sets O_NONBLOCK on a pipe it is given.
    const path = join(dir, 'fifo');
    execFileSync('mkfifo', [path]);
    const readFd = open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const w = new NoWaitWriter(open(path, constants.O_WRONLY | constants.O_NONBLOCK));
    const count = lineCount(MORE_THAN_BUFFERED);
    for (let i = 0; i < count; i++) w.write(line(i));
    expect(w.stats().linesQueued).toBeGreaterThan(0);
    const buf = Buffer.allocUnsafe(64 * 1024);
    let text = '';
    await until(() => {
      for (;;) {
        try {
          const n = readSync(readFd, buf, 0, buf.length, null);
          if (n === 0) break;
          text += buf.toString('utf8', 0, n);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break;
          throw e;
        }
      }
      return w.stats().linesQueued === 0 && text.length === allLines(count).length;
    });
    expect(text).toBe(allLines(count));
  });
});

describe('NoWaitWriter where waiting is not the failure', () => {
  it('a regular file gets every line with a plain write, nothing queued', () => {
    const path = join(dir, 'log');
    const fd = open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND);
    const w = new NoWaitWriter(fd);
    const count = lineCount(MORE_THAN_BUFFERED);
    for (let i = 0; i < count; i++) {
      w.write(line(i));
      expect(w.stats().linesQueued).toBe(0);
    }
    expect(readFileSync(path, 'utf8')).toBe(allLines(count));
    expect(w.stats().linesWritten).toBe(count);
  });

  it('a terminal (pty master: EOPNOTSUPP) falls back to a plain write', () => {
    const fd = open('/dev/ptmx', constants.O_WRONLY | constants.O_NOCTTY);
    const w = new NoWaitWriter(fd);
    for (let i = 0; i < 3; i++) w.write(`tty ${i}\n`);
    expect(w.stats()).toEqual({
      linesWritten: 3,
      linesQueued: 0,
      bytesQueued: 0,
      linesDropped: 0,
      mode: 'blocking',
    });
  });

  it('a line longer than the reused buffer, and one with multi-byte characters, arrive whole', async () => {
    const r = await stalledReader();
    const w = new NoWaitWriter(r.fd);
    const long = `${'é'.repeat(300_000)}\n`;
    w.write(long);
    w.write('ünïcödé\n');
    expect(w.stats().linesQueued).toBeGreaterThan(0);
    r.resume();
    await until(() => w.stats().linesQueued === 0);
    await r.finish();
    expect(r.text()).toBe(`${long}ünïcödé\n`);
  });
});

describe('NoWaitWriter when the non-blocking call itself fails (scripted answers, a real file behind)', () => {
  /** A file to receive what the plain write falls back to, and what reached it. */
  const fileFd = () => {
    const path = join(dir, 'fallback.log');
    const fd = open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC);
    return { fd, text: () => readFileSync(path, 'utf8') };
  };

  it('no addon (the call throws): the plain write, nothing thrown at the caller', () => {
    const f = fileFd();
    // The fd is a file only so that the plain write behind can be read back; the writer is put on
    // the path a socket or a pipe takes.
    const w = new NoWaitWriter(f.fd, {
      writeNoWait: () => {
        throw new TypeError('writeNoWait is not a function');
      },
    });
    (w as unknown as { mode: string }).mode = 'nowait';
    expect(() => w.write('one\n')).not.toThrow();
    w.write('two\n');
    expect(f.text()).toBe('one\ntwo\n');
    expect(w.stats()).toMatchObject({ linesWritten: 2, linesDropped: 0 });
  });

  it('an errno the call cannot get past (EPERM from a seccomp filter): the plain write from then on', () => {
    const f = fileFd();
    let calls = 0;
    const w = new NoWaitWriter(f.fd, {
      writeNoWait: () => {
        calls++;
        return -os.errno.EPERM;
      },
    });
    (w as unknown as { mode: string }).mode = 'nowait';
    for (let i = 0; i < 3; i++) w.write(`line ${i}\n`);
    expect(calls).toBe(1);
    expect(f.text()).toBe('line 0\nline 1\nline 2\n');
    expect(w.stats().mode).toBe('blocking'); // shown in status.log: a stall would hold the loop again
  });

  it('a line whose rest is lost after a partial write is ended with a newline before the next', async () => {
    const got: string[] = [];
    const answers: number[] = [5, -os.errno.EAGAIN, -os.errno.EIO];
    const w = new NoWaitWriter(open('/dev/null', constants.O_WRONLY), {
      retryMs: 1,
      writeNoWait: (_fd, b, o, l) => {
        const a = answers.shift();
        const n = a === undefined ? l : a > 0 ? Math.min(a, l) : a;
        if (n > 0) got.push(Buffer.from(b.subarray(o, o + n)).toString());
        return n;
      },
    });
    (w as unknown as { mode: string }).mode = 'nowait';
    w.write('{"msg":"torn"}\n'); // 5 bytes taken, the rest queued
    w.write('{"msg":"next"}\n');
    await until(() => w.stats().linesQueued === 0); // EAGAIN, then EIO: the rest is lost
    expect(got.join('')).toBe('{"msg\n{"msg":"next"}\n');
    expect(w.stats()).toMatchObject({ linesWritten: 1, linesDropped: 1 });
  });
});
