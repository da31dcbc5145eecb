/**
 * The checks every config loader shares. Validation collects problems instead of stopping at the
 * first: each check records what is wrong in a Problems list and returns a safe fallback, so one
 * run reports every problem of a file. Each problem names the key path, the value found and what
 * is expected; the loader wraps them with the file name.
 */
import convict from 'convict';

export interface Problem {
  /** The file the problem is in, when it is not the one being loaded (e.g. "enrollment file F"). */
  readonly where?: string;
  /** Key path, e.g. "peers[0].allow[1].access" ("" for the whole file). */
  readonly path: string;
  /** "path = value: expected …", or a message of its own (file-level problems, convict's). */
  readonly text: string;
}

export class Problems {
  private readonly items: Problem[];

  constructor(
    private readonly where?: string,
    shared?: Problem[],
  ) {
    this.items = shared ?? [];
  }

  /** A view that records into the same list, each problem labelled with `where`. */
  in(where: string): Problems {
    return new Problems(where, this.items);
  }

  add(path: string, value: unknown, expected: string): void {
    this.note(path, `${path} = ${JSON.stringify(value)}: expected ${expected}`);
  }

  /** A problem with a message of its own. */
  note(path: string, text: string): void {
    this.items.push({ ...(this.where !== undefined ? { where: this.where } : {}), path, text });
  }

  get count(): number {
    return this.items.length;
  }

  get list(): readonly Problem[] {
    return this.items;
  }

  /** One line per problem, prefixed with its file when it is not the main one. */
  lines(): string[] {
    return this.items.map((p) => (p.where !== undefined ? `${p.where}: ${p.text}` : p.text));
  }

  /** The loaders' message: one problem on the first line, several one per line after a count. */
  message(file: string): string {
    const lines = this.lines();
    if (lines.length === 1) return `config ${file}: ${lines[0]}`;
    return `config ${file}: ${lines.length} problems:\n${lines.map((l) => `  ${l}`).join('\n')}`;
  }
}

export function obj(p: Problems, v: unknown, path: string): Record<string, unknown> | undefined {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  p.add(path, v, 'an object');
  return undefined;
}

/** The list, or [] (recorded) when it is not one. */
export function list(p: Problems, v: unknown, path: string, what: string): unknown[] {
  if (Array.isArray(v)) return v;
  p.add(path, v, `a list of ${what}`);
  return [];
}

/** An integer in min..max; on a problem the default (or min) so later checks can go on. */
export function int(
  p: Problems,
  o: Record<string, unknown>,
  key: string,
  path: string,
  min: number,
  max: number,
  dflt?: number,
): number {
  const v = o[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    p.add(`${path}.${key}`, o[key], `an integer in ${min}..${max}`);
    return dflt ?? min;
  }
  return v;
}

export function bool(
  p: Problems,
  o: Record<string, unknown>,
  key: string,
  path: string,
  dflt: boolean,
): boolean {
  const v = o[key] ?? dflt;
  if (typeof v !== 'boolean') {
    p.add(`${path}.${key}`, o[key], 'true or false');
    return dflt;
  }
  return v;
}

/** A non-empty string, or undefined (recorded). */
export function str(
  p: Problems,
  o: Record<string, unknown>,
  key: string,
  path: string,
  dflt?: string,
): string | undefined {
  const v = o[key] ?? dflt;
  if (typeof v !== 'string' || v.length === 0) {
    p.add(`${path}.${key}`, o[key], 'a non-empty string');
    return undefined;
  }
  return v;
}

export function checkKeys(
  p: Problems,
  o: Record<string, unknown>,
  path: string,
  allowed: readonly string[],
): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) p.add(`${path}.${k}`, o[k], `one of the known keys (${allowed.join(', ')})`);
  }
}

convict.addFormat({ name: 'aoegw-any', validate: () => {} });

/**
 * Top-level keys and types with convict: its messages ("configuration param 'x' not declared in
 * the schema", "listen: must be of type String: value was 5") become problems, one per line, and
 * the properties (defaults filled in) are returned even when some are wrong.
 */
export function convictLoad<S extends Record<string, unknown>>(
  p: Problems,
  schema: convict.Schema<S>,
  doc: Record<string, unknown>,
): S {
  const conf = convict(schema);
  conf.load(structuredClone(doc));
  try {
    conf.validate({ allowed: 'strict' });
  } catch (e) {
    for (const line of (e as Error).message.split('\n')) {
      const path = /^configuration param '([^']*)'/.exec(line)?.[1] ?? /^([\w.]+): /.exec(line)?.[1] ?? '';
      if (line.trim() !== '') p.note(path, line);
    }
  }
  return conf.getProperties() as S;
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
