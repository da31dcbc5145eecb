/**
 * A line writer for one fd that never blocks the event loop on a reader that stopped reading (a
 * stalled journald stream socket, a paused pipe). Each write is one pwritev2 with RWF_NOWAIT
 * (addon's writeNoWait): the fd's flags stay as they are, so other processes sharing the pipe or
 * socket keep their blocking writes. What the kernel does not take now waits in a bounded queue,
 * in order, and a timer retries; beyond the bound whole lines are dropped and counted, and one line
 * says how many once the reader has caught up. `flushSync` keeps trying for a while at exit so the
 * last lines (the shutdown, a fatal error) reach a reader that is merely slow.
 *
 * Where waiting is not the failure being fixed, the write blocks as a plain write(2) does:
 * regular files (a file write does not stall indefinitely, and RWF_NOWAIT on a buffered append may
 * never succeed) and fds that cannot write without waiting (EOPNOTSUPP: terminals, named FIFOs).
 * Should such an fd be O_NONBLOCK after all (Node's process.stderr makes a pipe or socket so), the
 * plain write says EAGAIN and the line waits in the queue like any other.
 */
import { fstatSync, writeSync } from 'node:fs';
import { constants as os } from 'node:os';
import { type NativeAddon, nativeAddon } from './native.js';

export interface NoWaitWriterOptions {
  /** Bytes of lines held while the reader is behind; lines beyond are dropped. Default 1 MiB. */
  maxQueuedBytes?: number;
  /** How long to wait before trying the queue again. Default 20 ms. */
  retryMs?: number;
  /** The line that reports `count` lines dropped since the last such line (with its newline). */
  droppedLine?: (count: number) => string;
  /**
   * The per-call non-blocking write (default: the addon's writeNoWait). Tests put the kernel's
   * rarer answers here (a partial write then an error, EPERM from a seccomp filter, no addon).
   */
  writeNoWait?: NativeAddon['writeNoWait'];
}

export interface NoWaitWriterStats {
  /** Lines the fd took whole. */
  linesWritten: number;
  /** Lines (or the rest of one) waiting for the reader now, and their bytes. */
  linesQueued: number;
  bytesQueued: number;
  /** Lines never written: the queue was full, the reader went away (EPIPE), or the write failed. */
  linesDropped: number;
  /**
   * 'nowait' (no write waits for the reader), 'blocking' (a file, a terminal, or an fd the
   * non-blocking call cannot serve: a stalled reader would hold the loop again), 'closed'.
   */
  mode: 'nowait' | 'blocking' | 'closed';
}

/** How the fd is written: without waiting, with a plain blocking write, or not at all. */
type Mode = 'nowait' | 'blocking' | 'closed';

/** attempt() outcomes besides a byte count. */
const WOULD_BLOCK = -1;
const LOST = -2;

const NEWLINE = Buffer.from('\n');

/** Lines up to this size are encoded into one reused buffer; longer ones get their own. */
const SCRATCH_BYTES = 16 * 1024;

export class NoWaitWriter {
  private mode: Mode;
  private readonly maxQueuedBytes: number;
  private readonly droppedLine: (count: number) => string;
  private readonly writeNoWait: NativeAddon['writeNoWait'];
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  /** Bytes of the line encode() encoded last. */
  private encodedLength = 0;
  /** Lines in order from `head`; a line written in part is replaced by a Buffer of its rest. */
  private readonly queue: (string | Buffer)[] = [];
  private head = 0;
  private bytesQueued = 0;
  /** Lines dropped for a full queue since the last line that said so. */
  private unreported = 0;
  private linesWritten = 0;
  private linesDropped = 0;
  private readonly retryMs: number;
  /** One timer, made on first need and re-armed with refresh(): no allocation per retry. */
  private retry: NodeJS.Timeout | undefined;
  private retryArmed = false;
  private sleepCell: Int32Array | undefined;
  /** The last line was cut short (its rest lost): a newline goes before the next one. */
  private torn = false;
  /** queue[head] is the rest of a line already written in part (not a line of its own). */
  private headIsRest = false;

  constructor(
    private readonly fd: number,
    opts: NoWaitWriterOptions = {},
  ) {
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 1 << 20;
    this.droppedLine = opts.droppedLine ?? ((n) => `${n} lines dropped: the reader was not reading\n`);
    // Loaded at the first write that needs it: a file or a terminal is written without the addon.
    this.writeNoWait = opts.writeNoWait ?? ((fd, b, o, l) => nativeAddon().writeNoWait(fd, b, o, l));
    this.retryMs = opts.retryMs ?? 20;
    this.mode = initialMode(fd);
  }

  write(line: string): void {
    if (this.mode === 'closed') {
      this.linesDropped++;
      return;
    }
    // Behind other lines already waiting: keep the order.
    if (this.head < this.queue.length) {
      this.enqueue(line, Buffer.byteLength(line));
      return;
    }
    this.writeFirst(line);
  }

  /**
   * At exit: keep trying the queue, sleeping briefly between tries, until it is empty (true) or
   * `timeoutMs` has passed (false: the reader is stalled, the rest is lost). Not a bound where the
   * plain write is used: a terminal paused with XOFF or a file on a hung mount can hold one write
   * past it (those are not the stalls this writer is for).
   */
  flushSync(timeoutMs = 2000): boolean {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.drain()) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      this.sleepCell ??= new Int32Array(new SharedArrayBuffer(4));
      Atomics.wait(this.sleepCell, 0, 0, Math.min(5, left));
    }
  }

  stats(): NoWaitWriterStats {
    return {
      linesWritten: this.linesWritten,
      linesQueued: this.queue.length - this.head,
      bytesQueued: this.bytesQueued,
      linesDropped: this.linesDropped,
      mode: this.mode,
    };
  }

  /** A line with nothing queued before it: straight to the fd, the rest (if any) queued. */
  private writeFirst(line: string): void {
    if (this.torn && this.mendTear() === WOULD_BLOCK) {
      this.enqueue(line, Buffer.byteLength(line));
      return;
    }
    const buf = this.encode(line);
    const len = this.encodedLength;
    const n = this.attempt(buf, 0, len);
    if (n === len) this.linesWritten++;
    else if (n === LOST) this.linesDropped++;
    else if (n === WOULD_BLOCK) this.enqueue(line, len);
    else this.enqueueRest(buf, n, len);
  }

  /** `line` as bytes in the scratch buffer when it fits, else in a buffer of its own. */
  private encode(line: string): Buffer {
    if (line.length <= SCRATCH_BYTES / 3 || Buffer.byteLength(line) <= SCRATCH_BYTES) {
      this.encodedLength = this.scratch.write(line, 0);
      return this.scratch;
    }
    const b = Buffer.from(line);
    this.encodedLength = b.length;
    return b;
  }

  private enqueue(line: string, bytes: number): void {
    if (this.bytesQueued + bytes > this.maxQueuedBytes) {
      this.linesDropped++;
      this.unreported++;
      return;
    }
    this.queue.push(line);
    this.bytesQueued += bytes;
    this.armRetry();
  }

  /** The rest of a line the fd took in part: queued whatever the bound, or the stream tears. */
  private enqueueRest(buf: Buffer, from: number, to: number): void {
    const rest = Buffer.allocUnsafe(to - from);
    buf.copy(rest, 0, from, to);
    this.queue.push(rest); // nothing was queued (writeFirst): it is the head
    this.headIsRest = true;
    this.bytesQueued += rest.length;
    this.armRetry();
  }

  private armRetry(): void {
    if (this.retryArmed) return;
    this.retryArmed = true;
    if (this.retry) this.retry.refresh();
    // The queue is not a reason to keep the process alive: flushSync at exit empties it.
    else this.retry = setTimeout(() => this.onRetry(), this.retryMs).unref();
  }

  private onRetry(): void {
    this.retryArmed = false;
    if (!this.drain()) this.armRetry();
  }

  /** Writes queued lines while the fd takes them; true when nothing is left. */
  private drain(): boolean {
    while (this.head < this.queue.length) {
      const item = this.queue[this.head]!;
      if (!this.headIsRest && this.torn && this.mendTear() === WOULD_BLOCK) return false;
      const buf = typeof item === 'string' ? this.encode(item) : item;
      const len = typeof item === 'string' ? this.encodedLength : item.length;
      const n = this.attempt(buf, 0, len);
      if (n === WOULD_BLOCK) {
        // A long line (the SIGUSR1 counters) keeps its bytes: not encoded anew every retry.
        if (typeof item === 'string' && buf !== this.scratch) this.queue[this.head] = buf;
        return false;
      }
      if (n === LOST) {
        if (this.mode === 'closed') return true; // close() dropped and counted the queue
        // The rest of a line written in part: the next line must not be glued onto it.
        if (this.headIsRest) this.torn = true;
        this.linesDropped++;
        this.shift(len);
        continue;
      }
      if (n < len) {
        // The fd is full again: keep the rest at the head, without re-encoding it each try.
        this.bytesQueued -= n;
        const rest = Buffer.allocUnsafe(len - n);
        buf.copy(rest, 0, n, len);
        this.queue[this.head] = rest;
        this.headIsRest = true;
        return false;
      }
      this.linesWritten++;
      this.shift(len);
    }
    this.queue.length = 0;
    this.head = 0;
    if (this.unreported > 0 && this.mode !== 'closed') {
      const count = this.unreported;
      this.unreported = 0;
      this.writeFirst(this.droppedLine(count));
      return this.head >= this.queue.length;
    }
    return true;
  }

  private shift(bytes: number): void {
    this.queue[this.head] = '';
    this.head++;
    this.headIsRest = false;
    this.bytesQueued -= bytes;
    // Compact now and then so a long stall does not leave a long array of written slots.
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  /** One write of buf[off, off + len): bytes taken, WOULD_BLOCK, or LOST (the bytes are dropped). */
  private attempt(buf: Buffer, off: number, len: number): number {
    if (this.mode === 'nowait') {
      let n: number;
      try {
        n = this.writeNoWait(this.fd, buf, off, len);
      } catch {
        // No addon (or one without writeNoWait): a log must not throw into the code that logs.
        n = -os.errno.EOPNOTSUPP;
      }
      if (n > 0 || (n === 0 && len === 0)) return n;
      if (n === 0 || n === -os.errno.EAGAIN) return WOULD_BLOCK;
      if (
        n === -os.errno.EPIPE ||
        n === -os.errno.ECONNRESET ||
        n === -os.errno.ENOTCONN ||
        n === -os.errno.EBADF
      )
        return this.close();
      // EOPNOTSUPP (a terminal, a named FIFO), or the call cannot be made here at all (ENOSYS,
      // EINVAL, EPERM from a seccomp filter): the plain write from now on, rather than losing every
      // later line to the same error. Anything else (EIO, ENOSPC…) loses this line only.
      if (
        n !== -os.errno.EOPNOTSUPP &&
        n !== -os.errno.ENOSYS &&
        n !== -os.errno.EINVAL &&
        n !== -os.errno.EPERM
      )
        return LOST;
      this.mode = 'blocking';
    }
    if (this.mode === 'blocking') return this.writeBlocking(buf, off, len);
    return LOST;
  }

  /**
   * write(2) until all of it is taken; a failed write drops the line (a log must not throw).
   * EAGAIN: the fd is O_NONBLOCK after all (Node's process.stderr sets it on a pipe or socket), so
   * what is left waits in the queue like any other.
   */
  private writeBlocking(buf: Buffer, off: number, len: number): number {
    let done = 0;
    try {
      while (done < len) done += writeSync(this.fd, buf, off + done, len - done);
      return len;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') return done > 0 ? done : WOULD_BLOCK;
      if (done > 0) this.torn = true;
      return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ENOTCONN' || code === 'EBADF'
        ? this.close()
        : LOST;
    }
  }

  /**
   * A newline after a line whose rest was lost (a write failed after taking part of it), so the
   * next line starts a line of its own. WOULD_BLOCK: try again later; anything else: go on (the
   * next line is written either way, glued if the newline could not be).
   */
  private mendTear(): number {
    const n = this.attempt(NEWLINE, 0, 1);
    if (n === WOULD_BLOCK) return WOULD_BLOCK;
    if (n === 1) this.torn = false;
    return n;
  }

  /** The reader went away for good: everything queued and everything later is dropped. */
  private close(): number {
    this.mode = 'closed';
    this.linesDropped += this.queue.length - this.head;
    this.queue.length = 0;
    this.head = 0;
    this.headIsRest = false;
    this.bytesQueued = 0;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    this.retryArmed = false;
    return LOST;
  }
}

function initialMode(fd: number): Mode {
  try {
    return fstatSync(fd).isFile() ? 'blocking' : 'nowait';
  } catch {
    return 'closed';
  }
}
