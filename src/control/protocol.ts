/**
 * The control socket's wire format: one JSON object per line each way. A request names a command
 * (`{"cmd":"reload"}`); every response carries `ok` and, when false, `errors` (one message per
 * problem). The socket is a UNIX stream socket of mode 0600: whoever can open it is the operator.
 */

/** Longest request line accepted (bytes); a longer one closes the connection. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** Longest response a client reads (status of many exports and peers fits easily). */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export interface ControlRequest {
  readonly cmd: string;
  readonly [key: string]: unknown;
}

export type ControlResponse =
  | ({ readonly ok: true } & Record<string, unknown>)
  | { readonly ok: false; readonly errors: readonly string[] };

/** The request in one line, or a reason it is not one. */
export function parseRequest(line: string): ControlRequest | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const cmd = (v as Record<string, unknown>).cmd;
  if (typeof cmd !== 'string' || !/^[a-z][a-z-]{0,31}$/.test(cmd))
    return 'no "cmd" (a lowercase command name)';
  return v as ControlRequest;
}

/** bigint-safe JSON for responses (stats hold bigint counters). */
export function encodeResponse(r: ControlResponse): string {
  return `${JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`;
}
