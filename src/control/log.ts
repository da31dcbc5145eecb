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
  const format = flags.logFormat ?? nonEmpty(env.AOEGW_LOG_FORMAT);
  const level = flags.logLevel ?? nonEmpty(env.AOEGW_LOG_LEVEL);
  const from = (flag: string, envName: string, given: string | undefined) =>
    given === undefined ? '' : flags[flag as 'logFormat'] !== undefined ? `--${kebab(flag)}` : envName;
  return {
    format:
      format === undefined
        ? stderrIsTty
          ? 'human'
          : 'json'
        : oneOf(LOG_FORMATS, format, from('logFormat', 'AOEGW_LOG_FORMAT', format)),
    level:
      level === undefined ? 'info' : oneOf(LOG_LEVELS, level, from('logLevel', 'AOEGW_LOG_LEVEL', level)),
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function oneOf<T extends string>(allowed: readonly T[], v: string, what: string): T {
  if (!(allowed as readonly string[]).includes(v))
    throw new AoegwError('ERR_USAGE', `${what} ${v}: expected one of ${allowed.join(', ')}`);
  return v as T;
}

/**
 * A Log on pino. `write` receives each finished line (tests); by default stderr, written
 * synchronously so that lines and the daemon's other stderr writes keep their order.
 */
export function openLog(settings: LogSettings, write?: (line: string) => void): Log {
  const sink: { write(s: string): void } = write
    ? { write }
    : pino.destination({ fd: 2, sync: true, minLength: 0 });
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
 * convention ("link lan: …", "peer b: …", "export e1.1: …").
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
]);

/** One pino JSON line as `aoegw: [warning: ]message key=value …\n`. */
export function humanLine(json: string): string {
  const r = JSON.parse(json) as Record<string, unknown>;
  const level = r.level === 'info' ? '' : r.level === 'warn' ? 'warning: ' : `${String(r.level)}: `;
  let extra = '';
  for (const [k, v] of Object.entries(r)) {
    if (HUMAN_HIDDEN.has(k)) continue;
    extra += ` ${k}=${typeof v === 'string' && /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)}`;
  }
  return `aoegw: ${level}${String(r.msg ?? '')}${extra}\n`;
}
