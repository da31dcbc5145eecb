/**
 * A daemon's stderr read back (docs/operations.md, "Logs"): off a terminal it writes one JSON
 * object per line; other lines (the SIGUSR1 stats dump, a fatal error) are not log records.
 */
export interface LogRecord {
  level: string;
  time: string;
  msg: string;
  [field: string]: unknown;
}

/** The log records in `out`, in order; lines that are not records are skipped. */
export function logRecords(out: string): LogRecord[] {
  const records: LogRecord[] = [];
  for (const line of out.split('\n')) {
    if (!line.startsWith('{"level"')) continue;
    try {
      records.push(JSON.parse(line) as LogRecord);
    } catch {
      // A line still being written.
    }
  }
  return records;
}

/** The messages of `out`'s log records. */
export function logMessages(out: string): string[] {
  return logRecords(out).map((r) => r.msg);
}
