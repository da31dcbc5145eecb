/** The log options of the daemon commands (run, serve) and the log they open. */
import { LOG_FORMATS, logSettings, openLog } from '../control/log.js';
import { LOG_LEVELS, type Log } from '../log.js';

export interface LogCliOptions {
  logFormat?: string;
  logLevel?: string;
}

/** `.option(...LOG_FORMAT_OPTION)` on a daemon command. */
export const LOG_FORMAT_OPTION = [
  '--log-format <format>',
  `${LOG_FORMATS.join(' or ')} (default: json unless stderr is a terminal; or $AOEGW_LOG_FORMAT)`,
] as const;

export const LOG_LEVEL_OPTION = [
  '--log-level <level>',
  `${LOG_LEVELS.join(', ')} (default info; or $AOEGW_LOG_LEVEL)`,
] as const;

/** The daemon's log on stderr; a bad format or level is a usage error before anything starts. */
export function openDaemonLog(o: LogCliOptions): Log {
  return openLog(logSettings(o));
}

/**
 * A one-shot command's progress lines (enroll): for the operator in front of it, so human unless
 * $AOEGW_LOG_FORMAT asks for JSON.
 */
export function openCommandLog(): Log {
  return openLog(logSettings({}, process.env, true));
}
