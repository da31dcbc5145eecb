/** The log options of the daemon commands (run, serve) and the log they open. */
import type { Command } from 'commander';
import { LOG_FORMATS, logSettings, openLog } from '../control/log.js';
import { LOG_LEVELS, type Log } from '../log.js';

export interface LogCliOptions {
  logFormat?: string;
  logLevel?: string;
}

export function addLogOptions(cmd: Command): Command {
  return cmd
    .option(
      '--log-format <format>',
      `${LOG_FORMATS.join(' or ')} (default: json unless stderr is a terminal; or $AOEGW_LOG_FORMAT)`,
    )
    .option('--log-level <level>', `${LOG_LEVELS.join(', ')} (default info; or $AOEGW_LOG_LEVEL)`);
}

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
