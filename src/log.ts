/**
 * The logger every daemon component takes: a message at a level plus structured fields. Below
 * every layer (like errors.ts) so that target/, tunnel/, gateway/ and control/ share one type;
 * the real sink (pino: JSON for journald, a human line on a terminal) lives in control/log.ts.
 * Components never log per frame: counters say what happens per frame, the log what changed.
 */

export type LogFields = Readonly<Record<string, unknown>>;

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Log {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** The same sink with `bindings` added to every line (a component, a link, a peer). */
  child(bindings: LogFields): Log;
}

/** A log that drops everything (components built without one). */
export const silentLog: Log = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLog,
};

/**
 * Every message as a plain line to `write`, with its level and fields (bindings merged) beside
 * it: for tests and tools that only want the text.
 */
export function lineLog(
  write: (line: string, level: LogLevel, fields: LogFields) => void,
  bindings: LogFields = {},
): Log {
  const at =
    (level: LogLevel) =>
    (msg: string, fields?: LogFields): void =>
      write(msg, level, fields ? { ...bindings, ...fields } : bindings);
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => lineLog(write, { ...bindings, ...more }),
  };
}
