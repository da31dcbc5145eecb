/**
 * The few checks every config loader shares. Each failure names the key path, the value found and
 * what is expected, and is thrown as ConfigError (the loader wraps it with the file name).
 */
export class ConfigError extends Error {}

export function fail(path: string, value: unknown, expected: string): never {
  throw new ConfigError(`${path} = ${JSON.stringify(value)}: expected ${expected}`);
}

export function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, v, 'an object');
  return v as Record<string, unknown>;
}

export function list(v: unknown, path: string, what: string): unknown[] {
  if (!Array.isArray(v)) fail(path, v, `a list of ${what}`);
  return v;
}

export function int(
  o: Record<string, unknown>,
  key: string,
  path: string,
  min: number,
  max: number,
  dflt?: number,
): number {
  const v = o[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(`${path}.${key}`, o[key], `an integer in ${min}..${max}`);
  }
  return v;
}

export function bool(o: Record<string, unknown>, key: string, path: string, dflt: boolean): boolean {
  const v = o[key] ?? dflt;
  if (typeof v !== 'boolean') fail(`${path}.${key}`, o[key], 'true or false');
  return v;
}

export function str(o: Record<string, unknown>, key: string, path: string, dflt?: string): string {
  const v = o[key] ?? dflt;
  if (typeof v !== 'string' || v.length === 0) fail(`${path}.${key}`, o[key], 'a non-empty string');
  return v;
}

export function checkKeys(o: Record<string, unknown>, path: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) fail(`${path}.${k}`, o[k], `one of the known keys (${allowed.join(', ')})`);
  }
}

/** "S.L" or "eS.L" with shelf 0..65534 and slot 0..254, or null. */
export function parseShelfSlot(s: unknown): { shelf: number; slot: number } | null {
  if (typeof s !== 'string') return null;
  const m = /^e?(\d{1,5})\.(\d{1,3})$/.exec(s);
  if (!m || Number(m[1]) > 0xfffe || Number(m[2]) > 0xfe) return null;
  return { shelf: Number(m[1]), slot: Number(m[2]) };
}

/** "host:port" (IPv4, hostname-free) or "[v6]:port", or null. Port 0 only when allowed. */
export function parseHostPort(s: unknown, allowZero = false): { address: string; port: number } | null {
  if (typeof s !== 'string') return null;
  const m = /^\[([0-9a-fA-F:.%\w]+)\]:(\d{1,5})$/.exec(s) ?? /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[2]);
  if (port > 65535 || (port === 0 && !allowZero)) return null;
  if (!m[0].startsWith('[') && m[1]!.split('.').some((x) => Number(x) > 255)) return null;
  return { address: m[1]!, port };
}
