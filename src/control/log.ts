/**
 * The daemon's log sink (docs/operations.md, "Logs"): pino writing synchronously to stderr (no
 * worker thread, nothing buffered at exit). JSON lines when stderr is not a terminal (journald,
 * files, pipes), `aoegw: message key=value` on a terminal; a flag or the environment overrides
 * both the format and the level. Fields that could carry a secret are redacted whatever the
 * caller passed: defence in depth, the call sites log none.
 */
import { pino } from 'pino';
import { AoegwError } from '../errors.js';
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
 * A Log on pino. `write` receives each finished line (tests); by default stderr, written
 * synchronously so that lines and the daemon's other stderr writes keep their order.
 */
export function openLog(settings: LogSettings, write?: (line: string) => void): Log {
  const sink: { write(s: string): void } = write ? { write } : stderrSink();
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

/**
 * fd 2, written synchronously. A log that cannot be written must not stop the storage it is about:
 * pino stops writing at EPIPE (nobody reads any more); other write errors (ENOSPC under a
 * redirect to a full disk) are dropped here. Not solved: a reader that stays connected but stops
 * reading (a stalled journald, a paused pipe) blocks the write, and with it the event loop, as
 * process.stderr did before; under systemd the watchdog then restarts the daemon. Writing
 * asynchronously would lose the last lines at exit, and a non-blocking fd 2 would change the
 * pipe for every process that shares it.
 */
function stderrSink(): { write(s: string): void } {
  const dest = pino.destination({ fd: 2, sync: true, minLength: 0, maxLength: 1 << 20 });
  dest.on('error', () => {});
  return dest;
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
