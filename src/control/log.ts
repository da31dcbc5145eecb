/**
 * The daemon's log sink (docs/operations.md, "Logs"): pino writing to stderr through a writer that
 * never blocks (io/nowait-writer.ts; no worker thread, what waits is flushed at exit). JSON lines when stderr is not a terminal (journald,
 * files, pipes), `aoegw: message key=value` on a terminal; a flag or the environment overrides
 * both the format and the level. Fields that could carry a secret are redacted whatever the
 * caller passed: defence in depth, the call sites log none.
 */
import { pino } from 'pino';
import { AoegwError } from '../errors.js';
import { NoWaitWriter, type NoWaitWriterStats } from '../io/nowait-writer.js';
import { LOG_LEVELS, type Log, type LogFields, type LogLevel } from '../log.js';

export const LOG_FORMATS = ['json', 'human'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LogSettings {
  readonly format: LogFormat;
  readonly level: LogLevel;
}

/** Any field of these names, at the top or one level down, is written as "[redacted]". */
const SECRET_FIELDS = ['privateKey', 'secretKey', 'psk', 'token', 'inviteToken', 'secret', 'password'];
export const REDACTED_PATHS: readonly string[] = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`]);

/**
 * --log-format / --log-level first, then AOEGW_LOG_FORMAT / AOEGW_LOG_LEVEL, then: JSON unless
 * stderr is a terminal, level info.
 */
export function logSettings(
  flags: { logFormat?: string | undefined; logLevel?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
  stderrIsTty: boolean = process.stderr.isTTY === true,
): LogSettings {
  // Under systemd, stderr is the journal's socket (JOURNAL_STREAM): not a terminal, so JSON.
  const format = chosen(flags.logFormat, '--log-format', env.AOEGW_LOG_FORMAT, 'AOEGW_LOG_FORMAT');
  const level = chosen(flags.logLevel, '--log-level', env.AOEGW_LOG_LEVEL, 'AOEGW_LOG_LEVEL');
  return {
    format: format ? oneOf(LOG_FORMATS, format) : stderrIsTty ? 'human' : 'json',
    level: level ? oneOf(LOG_LEVELS, level) : 'info',
  };
}

/** The flag's value, else the environment's (unset or empty: none), with where it came from. */
function chosen(
  flag: string | undefined,
  flagName: string,
  envValue: string | undefined,
  envName: string,
): { value: string; from: string } | undefined {
  if (flag !== undefined) return { value: flag, from: flagName };
  if (envValue !== undefined && envValue !== '') return { value: envValue, from: envName };
  return undefined;
}

function oneOf<T extends string>(allowed: readonly T[], c: { value: string; from: string }): T {
  if (!(allowed as readonly string[]).includes(c.value))
    throw new AoegwError('ERR_USAGE', `${c.from} ${c.value}: expected one of ${allowed.join(', ')}`);
  return c.value as T;
}

/**
 * A Log on pino. `write` receives each finished line (tests); by default stderr (stderrSink).
 */
export function openLog(settings: LogSettings, write?: (line: string) => void): Log {
  const sink: { write(s: string): void } = write ? { write } : stderrSink(settings.format);
  const dest = settings.format === 'json' ? sink : { write: (s: string) => sink.write(humanLine(s)) };
  const logger = pino(
    {
      level: settings.level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    },
    dest,
  );
  return wrap(logger);
}

/** How long exit waits for a slow reader to take the lines still queued. */
const EXIT_FLUSH_MS = 2000;

/** One writer for fd 2 per process, however many logs are opened (its dropped-lines line in the first one's format), flushed once at exit. */
let stderrWriter: NoWaitWriter | undefined;

/**
 * fd 2 through a NoWaitWriter, so a reader that stays connected but stops reading (a stalled
 * journald, a paused pipe) cannot stop the storage the log is about: a write never blocks the
 * event loop; up to 1 MiB of lines waits in order for the reader, later lines are dropped and one
 * line says how many once it reads again; at exit the queue gets EXIT_FLUSH_MS to drain. A reader
 * that went away (EPIPE) ends the writing; other write errors (ENOSPC under a redirect to a full
 * disk) drop the line. Still blocking: a terminal (no non-blocking write per call; not where
 * stalls happen). The SIGUSR1 counters go through it too (stderrLine); not the line of an error
 * that ends the process (cli/main.ts, which loads no logger), which may come before log lines
 * still queued. Not chosen: setting
 * O_NONBLOCK ourselves (the file description is shared with every process on the pipe; Node's
 * process.stderr does set it on a pipe or socket, which the writer copes with too) and an
 * asynchronous pino destination (it loses the last lines at exit).
 */
function stderrSink(format: LogFormat): { write(s: string): void } {
  if (!stderrWriter) {
    stderrWriter = new NoWaitWriter(2, { droppedLine: (count) => droppedLine(count, format) });
    const writer = stderrWriter;
    process.once('exit', () => writer.flushSync(EXIT_FLUSH_MS));
  }
  return stderrWriter;
}

/**
 * A line of the daemon's own on stderr (the SIGUSR1 counters): behind the log lines still waiting
 * and, like them, never waiting for a reader that stopped reading; straight to process.stderr
 * while no log writes there.
 */
export function stderrLine(line: string): void {
  if (stderrWriter) stderrWriter.write(line);
  else process.stderr.write(line);
}

/** The stderr writer's counters, or undefined while no log writes to stderr. */
export function stderrLogStats(): NoWaitWriterStats | undefined {
  return stderrWriter?.stats();
}

/** The line the writer adds once the reader catches up after lines were dropped, as pino would write it. */
export function droppedLine(count: number, format: LogFormat): string {
  const json = `${JSON.stringify({
    level: 'warn',
    time: new Date().toISOString(),
    pid: process.pid,
    msg: `log: ${count} lines dropped: stderr's reader was not reading`,
    dropped: count,
  })}\n`;
  return format === 'json' ? json : humanLine(json);
}

function wrap(p: pino.Logger): Log {
  return {
    debug: (msg, f) => (f ? p.debug(f, msg) : p.debug(msg)),
    info: (msg, f) => (f ? p.info(f, msg) : p.info(msg)),
    warn: (msg, f) => (f ? p.warn(f, msg) : p.warn(msg)),
    error: (msg, f) => (f ? p.error(f, msg) : p.error(msg)),
    child: (bindings: LogFields) => wrap(p.child(bindings)),
  };
}

/**
 * Not repeated on a terminal: the record's frame, and the names a message already starts with by
 * convention ("link lan: …", "peer b: …", "export e1.1: …", "import e7.1 (…)", "forward e1.0: …",
 * "enrollment of NAME …").
 */
const HUMAN_HIDDEN = new Set([
  'level',
  'time',
  'pid',
  'hostname',
  'msg',
  'component',
  'link',
  'peer',
  'export',
  'import',
  'forward',
  'invite',
]);

/** One pino JSON line as `aoegw: [warning: ]message key=value …\n`. */
export function humanLine(json: string): string {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(json) as Record<string, unknown>;
  } catch {
    // Never expected from pino; a log line must not throw into the code that logs.
    return `aoegw: ${json.trimEnd()}\n`;
  }
  const level = r.level === 'info' ? '' : r.level === 'warn' ? 'warning: ' : `${String(r.level)}: `;
  let extra = '';
  for (const [k, v] of Object.entries(r)) {
    if (HUMAN_HIDDEN.has(k)) continue;
    extra += ` ${k}=${typeof v === 'string' && /^[^\s"=]+$/.test(v) ? visible(v) : visible(JSON.stringify(v))}`;
  }
  return `aoegw: ${level}${visible(String(r.msg ?? ''))}${extra}\n`;
}

/**
 * Control characters (C0, DEL, C1) as \xNN, line/paragraph separators and bidirectional overrides
 * as \uNNNN: a message may carry text a peer or an initiator chose
 * (an error from a peer, a config string), and on a terminal an escape sequence or a newline in it
 * would rewrite the screen or forge a log line of its own.
 */
function visible(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c === 0x2028 || c === 0x2029 || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069))
      out += `\\u${c.toString(16)}`;
    else out += ch;
  }
  return out;
}
