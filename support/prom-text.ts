/**
 * A small parser of the Prometheus text exposition format (version 0.0.4), for tests that scrape
 * `/metrics`: prom-client writes the format but does not read it. Comments give each family's
 * type; every other line is one sample, `name{label="value",…} number`.
 */

export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface PromScrape {
  readonly samples: readonly PromSample[];
  /** Family name → `counter`, `gauge`, … from `# TYPE` lines. */
  readonly types: ReadonlyMap<string, string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

export function parsePromText(text: string): PromScrape {
  const samples: PromSample[] = [];
  const types = new Map<string, string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+TYPE\s+(\S+)\s+(\S+)$/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      continue;
    }
    const name = NAME.exec(line)?.[0];
    if (!name) throw new Error(`line ${i + 1}: no metric name: ${line}`);
    let pos = name.length;
    const labels: Record<string, string> = {};
    if (line[pos] === '{') {
      pos++;
      while (line[pos] !== '}') {
        const key = NAME.exec(line.slice(pos))?.[0];
        if (!key || line[pos + key.length] !== '=' || line[pos + key.length + 1] !== '"')
          throw new Error(`line ${i + 1}: bad label at ${pos}: ${line}`);
        pos += key.length + 2;
        let value = '';
        for (;;) {
          const c = line[pos++];
          if (c === undefined) throw new Error(`line ${i + 1}: unterminated label value: ${line}`);
          if (c === '"') break;
          if (c === '\\') {
            const e = line[pos++];
            value += e === 'n' ? '\n' : (e ?? '');
          } else value += c;
        }
        labels[key] = value;
        if (line[pos] === ',') pos++;
        else if (line[pos] !== '}') throw new Error(`line ${i + 1}: expected , or } at ${pos}: ${line}`);
      }
      pos++;
    }
    const rest = line.slice(pos).trim().split(/\s+/);
    const value = parsePromNumber(rest[0] ?? '');
    if (rest.length < 1 || rest.length > 2 || Number.isNaN(value) !== (rest[0] === 'NaN'))
      throw new Error(`line ${i + 1}: bad value: ${line}`);
    samples.push({ name, labels, value });
  }
  return { samples, types };
}

function parsePromNumber(s: string): number {
  if (s === '+Inf') return Number.POSITIVE_INFINITY;
  if (s === '-Inf') return Number.NEGATIVE_INFINITY;
  if (s === 'NaN') return Number.NaN;
  return s.trim() === '' ? Number.NaN : Number(s);
}

/** The samples of `name` whose labels include `labels`. */
export function promSamples(
  scrape: PromScrape,
  name: string,
  labels: Record<string, string> = {},
): PromSample[] {
  return scrape.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

/** The one sample of `name` with exactly these labels' values (others may be present), or undefined. */
export function promValue(
  scrape: PromScrape,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = promSamples(scrape, name, labels);
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]?.value;
}

/** Sum over the samples of `name` whose labels include `labels` (0 when there are none). */
export function promSum(scrape: PromScrape, name: string, labels: Record<string, string> = {}): number {
  return promSamples(scrape, name, labels).reduce((n, s) => n + s.value, 0);
}
