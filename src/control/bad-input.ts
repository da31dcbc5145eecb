/**
 * Rate-limited warnings for bad input (docs/operations.md, "Logs"). Malformed frames, refused
 * datagrams and records are only counted where they arrive (per frame a counter, never a log
 * line); every interval the reporter compares two snapshots of those counters and logs one
 * warning per counter that grew, with how much. A flood costs one line per reason per interval.
 */
import type { Log, LogFields } from '../log.js';
import { RX_NAMES, Rx } from '../tunnel/endpoint.js';

export const BAD_INPUT_INTERVAL_MS = 10_000;

/** The counters read, as Gateway.stats() has them (a structural subset: tests build their own). */
export interface BadInputStats {
  readonly links: Readonly<Record<string, { readonly rxTruncated: number }>>;
  readonly target: {
    /** Keyed by the engine's link id; the name is inside. */
    readonly engine: {
      readonly links: Readonly<Record<string, { readonly name: string; readonly malformed: number }>>;
    };
  } | null;
  readonly forwards: { readonly malformed: number } | null;
  readonly exportSide: { readonly malformed: number; readonly denied: number };
  readonly peers: readonly {
    readonly name: string;
    readonly records: { readonly controlMalformed: number };
  }[];
  readonly tunnel: { readonly rx: readonly number[] } | null;
}

/** One counter of refused input: its identity, value, and how to say that it grew by `n`. */
export interface BadInputCounter {
  readonly key: string;
  readonly count: number;
  readonly fields: LogFields;
  readonly say: (n: number) => string;
}

export interface BadInputWarning {
  readonly msg: string;
  readonly fields: LogFields;
}

/** Datagram outcomes that are refusals (everything from MALFORMED on). */
const TUNNEL_REJECTS = RX_NAMES.map((name, i) => ({ name, i })).filter(({ i }) => i >= Rx.MALFORMED);

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

export function badInputCounters(s: BadInputStats): BadInputCounter[] {
  const out: BadInputCounter[] = [];
  for (const [id, l] of Object.entries(s.target?.engine.links ?? {})) {
    const link = l.name;
    out.push({
      key: `target/${id}/${link}/malformed`,
      count: l.malformed,
      fields: { reason: 'malformed', link },
      say: (n) => `dropped ${plural(n, 'malformed AoE frame', 'malformed AoE frames')} on link ${link}`,
    });
  }
  for (const [link, l] of Object.entries(s.links))
    out.push({
      key: `link/${link}/truncated`,
      count: l.rxTruncated,
      fields: { reason: 'truncated', link },
      say: (n) => `dropped ${plural(n, 'frame', 'frames')} longer than the MTU on link ${link}`,
    });
  if (s.forwards)
    out.push({
      key: 'forwards/malformed',
      count: s.forwards.malformed,
      fields: { reason: 'malformed' },
      say: (n) => `dropped ${plural(n, 'malformed AoE frame', 'malformed AoE frames')} for forwarded targets`,
    });
  out.push(
    {
      key: 'exportSide/malformed',
      count: s.exportSide.malformed,
      fields: { reason: 'malformed' },
      say: (n) => `dropped ${plural(n, 'malformed request', 'malformed requests')} from peers`,
    },
    {
      key: 'exportSide/denied',
      count: s.exportSide.denied,
      fields: { reason: 'not granted' },
      say: (n) => `refused ${plural(n, 'request', 'requests')} from peers for targets not granted to them`,
    },
  );
  for (const p of s.peers)
    out.push({
      key: `peer/${p.name}/controlMalformed`,
      count: p.records.controlMalformed,
      fields: { reason: 'malformed control record', peer: p.name },
      say: (n) =>
        `dropped ${plural(n, 'malformed control record', 'malformed control records')} from peer ${p.name}`,
    });
  if (s.tunnel) {
    const rx = s.tunnel.rx;
    for (const { name, i } of TUNNEL_REJECTS)
      out.push({
        key: `tunnel/${name}`,
        count: rx[i] ?? 0,
        fields: { reason: name },
        say: (n) =>
          `rejected ${plural(n, 'tunnel datagram', 'tunnel datagrams')}: ${name.replace(/_/g, ' ')}`,
      });
  }
  return out;
}

/**
 * One warning per counter that grew between two snapshots taken `intervalMs` apart. A counter
 * that went down was re-created (a reload): all of its count is new. A counter new in `next`
 * counts from zero.
 */
export function badInputWarnings(
  prev: readonly BadInputCounter[],
  next: readonly BadInputCounter[],
  intervalMs: number,
): BadInputWarning[] {
  const before = new Map(prev.map((c) => [c.key, c.count]));
  const secs = Math.round(intervalMs / 1000);
  const out: BadInputWarning[] = [];
  for (const c of next) {
    const was = before.get(c.key) ?? 0;
    const n = c.count >= was ? c.count - was : c.count;
    if (n > 0) out.push({ msg: `${c.say(n)} in the last ${secs} s`, fields: { ...c.fields, count: n } });
  }
  return out;
}

/** Every `intervalMs` (unref'd: it keeps nothing alive), the warnings since the previous look. */
export function startBadInputReporter(o: { stats: () => BadInputStats; log: Log; intervalMs?: number }): {
  stop(): void;
} {
  const intervalMs = o.intervalMs ?? BAD_INPUT_INTERVAL_MS;
  let prev = badInputCounters(o.stats());
  const timer = setInterval(() => {
    try {
      const next = badInputCounters(o.stats());
      for (const w of badInputWarnings(prev, next, intervalMs)) o.log.warn(w.msg, w.fields);
      prev = next;
    } catch (e) {
      o.log.error(`bad input report: ${(e as Error).message}`);
    }
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
