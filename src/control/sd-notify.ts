/**
 * systemd's notify protocol (sd_notify(3)) without libsystemd: READY=1, RELOADING=1, STOPPING=1,
 * STATUS= and WATCHDOG=1 datagrams to $NOTIFY_SOCKET, sent by the native addon (Node's dgram has
 * no AF_UNIX). Everything is a no-op when the daemon was not started by a service manager.
 *
 * The environment is consumed at open: NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are removed
 * from the given env (process.env by default), so no child process talks to our manager in our
 * name. A socket that goes away never stops the daemon: failures are counted, the first is logged.
 */
import { nativeAddon } from '../io/native.js';
import { type Log, silentLog } from '../log.js';

export interface SdNotifyOptions {
  /** Read, then stripped of the three variables. */
  env?: NodeJS.ProcessEnv;
  log?: Log;
  /** The datagram sender (tests may inject one; default: the addon's notifySend). */
  send?: (path: string, message: string) => void;
  /** Our PID, compared with WATCHDOG_PID. */
  pid?: number;
  /** CLOCK_MONOTONIC in µs (RELOADING=1 carries it for Type=notify-reload). */
  monotonicUsec?: () => bigint;
}

export class SdNotify {
  /** Datagrams sent, and those that could not be. */
  sent = 0;
  failures = 0;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private lastStatus: string | undefined;

  private constructor(
    /** The notify socket (a path or `@abstract`), or undefined: every call is a no-op. */
    readonly socket: string | undefined,
    /** The watchdog interval in µs that applies to us, or 0. */
    readonly watchdogUsec: number,
    private readonly send: (path: string, message: string) => void,
    private readonly log: Log,
    private readonly monotonicUsec: () => bigint,
  ) {}

  static open(o: SdNotifyOptions = {}): SdNotify {
    const env = o.env ?? process.env;
    const log = o.log ?? silentLog;
    const pid = o.pid ?? process.pid;
    let socket = env.NOTIFY_SOCKET || undefined;
    const usec = env.WATCHDOG_USEC;
    const watchdogPid = env.WATCHDOG_PID;
    delete env.NOTIFY_SOCKET;
    delete env.WATCHDOG_USEC;
    delete env.WATCHDOG_PID;
    if (socket !== undefined && !socket.startsWith('/') && !socket.startsWith('@')) {
      log.warn(`systemd: NOTIFY_SOCKET=${socket} is not a unix socket path or @name; not notifying`);
      socket = undefined;
    }
    // sd_watchdog_enabled(3): the watchdog is ours when WATCHDOG_PID is absent or our PID.
    let watchdogUsec = 0;
    if (
      socket !== undefined &&
      usec !== undefined &&
      (watchdogPid === undefined || Number(watchdogPid) === pid)
    ) {
      const n = Number(usec);
      if (Number.isSafeInteger(n) && n > 0) watchdogUsec = n;
      else log.warn(`systemd: WATCHDOG_USEC=${usec} is not a positive number of µs; no watchdog pings`);
    }
    const send = o.send ?? ((path: string, message: string) => nativeAddon().notifySend(path, message));
    const mono = o.monotonicUsec ?? (() => process.hrtime.bigint() / 1000n);
    return new SdNotify(socket, watchdogUsec, send, log, mono);
  }

  get enabled(): boolean {
    return this.socket !== undefined;
  }

  /** READY=1: started, or done with a reload. */
  ready(status?: string): void {
    this.notify(['READY=1', ...this.statusField(status)]);
  }

  /** RELOADING=1 (with MONOTONIC_USEC, which Type=notify-reload requires); READY=1 ends it. */
  reloading(status?: string): void {
    this.notify(['RELOADING=1', `MONOTONIC_USEC=${this.monotonicUsec()}`, ...this.statusField(status)]);
  }

  stopping(status?: string): void {
    this.stop();
    this.notify(['STOPPING=1', ...this.statusField(status)]);
  }

  /** STATUS=: one line for `systemctl status`; not sent again while it is unchanged. */
  status(text: string): void {
    const f = this.statusField(text);
    if (f.length > 0 && f[0] !== `STATUS=${this.lastStatus}`) this.notify(f);
  }

  watchdog(): void {
    this.notify(['WATCHDOG=1']);
  }

  /**
   * Pings at half the interval from a timer: a ping proves the event loop still runs. The timer is
   * unref'd: it never keeps an otherwise finished daemon alive.
   */
  startWatchdog(): void {
    if (!this.enabled || this.watchdogUsec === 0 || this.watchdogTimer) return;
    const everyMs = Math.max(1, Math.floor(this.watchdogUsec / 2000));
    this.watchdog();
    this.watchdogTimer = setInterval(() => this.watchdog(), everyMs);
    this.watchdogTimer.unref();
  }

  /** Sends `line()` as STATUS= every `everyMs` when it changed (peers going up or down). */
  trackStatus(line: () => string, everyMs = 5000): void {
    if (!this.enabled || this.statusTimer) return;
    this.statusTimer = setInterval(() => this.status(line()), everyMs);
    this.statusTimer.unref();
  }

  /** Stops the timers (STOPPING=1 does too). */
  stop(): void {
    clearInterval(this.watchdogTimer);
    clearInterval(this.statusTimer);
    this.watchdogTimer = undefined;
    this.statusTimer = undefined;
  }

  private statusField(text: string | undefined): string[] {
    if (text === undefined || text === '') return [];
    // One datagram holds newline-separated assignments: the status must stay one line.
    const line = text.replace(/[\r\n]+/g, ' ');
    return [`STATUS=${line}`];
  }

  private notify(fields: string[]): void {
    if (this.socket === undefined) return;
    try {
      this.send(this.socket, fields.join('\n'));
      this.sent++;
      const s = fields.find((f) => f.startsWith('STATUS='));
      if (s !== undefined) this.lastStatus = s.slice('STATUS='.length);
    } catch (e) {
      this.failures++;
      if (this.failures === 1) {
        this.log.warn(
          `systemd: cannot notify ${this.socket} (${(e as Error).message}); further failures are only counted`,
        );
      }
    }
  }
}
