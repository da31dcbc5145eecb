/**
 * `aoegw top`'s screen, as a pure function of two samples of the control socket's `exports` (and
 * one `status`): rates are counter differences over the daemon's own clock (sampledAtMs), so a slow
 * or late poll does not distort them. One row per export, then one per initiator (principal).
 * The p99 service time is the interval's too: from the difference of the two samples' histograms.
 */
import type { ExportView, LatencyView } from '../control/status-view.js';
import { serviceTimeQuantile, serviceTimeWindow } from '../target/service-time.js';
import { summaryLines } from './cmd-status.js';

export const SORT_KEYS = ['iops', 'mbps', 'p99', 'errors', 'name'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export interface Sample {
  readonly sampledAtMs: number;
  readonly status: Record<string, unknown>;
  readonly exports: readonly ExportView[];
}

export interface TopRow {
  readonly name: string;
  /** Initiator rows sit under their export. */
  readonly initiator: boolean;
  /** Per second; NaN when there is no earlier sample to compare with. */
  readonly iops: number;
  readonly readsPerS: number;
  readonly writesPerS: number;
  readonly readMBps: number;
  readonly writeMBps: number;
  readonly pending: number;
  /** Errors answered plus requests dropped (export rows; NaN for initiators: not counted per MAC). */
  readonly errors: number;
  /** p99 service time of the requests answered between the samples (ms); NaN without any. */
  readonly p99Ms: number;
}

/** Counter growth per second; NaN if unknown (no earlier sample) or the counter went back (restart). */
function rate(cur: number, prev: number | undefined, dtS: number): number {
  if (prev === undefined || dtS <= 0 || cur < prev) return Number.NaN;
  return (cur - prev) / dtS;
}

/** p99 (ms) of the requests between two samples of one histogram; NaN if none or it restarted. */
function p99Between(cur: LatencyView | undefined, prev: LatencyView | undefined): number {
  if (cur === undefined || prev === undefined) return Number.NaN;
  const w = serviceTimeWindow(cur.buckets, prev.buckets);
  return w === null ? Number.NaN : serviceTimeQuantile(w, 0.99) / 1000;
}

/** Rows in display order: exports sorted by `sort`, each followed by its initiators sorted the same way. */
export function topRows(prev: Sample | null, cur: Sample, sort: SortKey): TopRow[] {
  const dtS = prev ? (cur.sampledAtMs - prev.sampledAtMs) / 1000 : 0;
  const before = new Map((prev?.exports ?? []).map((e) => [e.target, e]));
  const groups: { row: TopRow; initiators: TopRow[] }[] = [];
  for (const e of cur.exports) {
    const p = before.get(e.target);
    const row: TopRow = {
      name: `${e.target} ${e.readOnly ? 'ro' : 'rw'}`,
      initiator: false,
      iops: rate(e.reads + e.writes, p ? p.reads + p.writes : undefined, dtS),
      readsPerS: rate(e.reads, p?.reads, dtS),
      writesPerS: rate(e.writes, p?.writes, dtS),
      readMBps: rate(e.bytesRead, p?.bytesRead, dtS) / 1e6,
      writeMBps: rate(e.bytesWritten, p?.bytesWritten, dtS) / 1e6,
      pending: e.pending,
      errors: e.errors + e.drops,
      p99Ms: p99Between(e.latency, p?.latency),
    };
    const pi = new Map((p?.initiators ?? []).map((i) => [i.principal, i]));
    const initiators = e.initiators.map((i): TopRow => {
      const q = pi.get(i.principal);
      return {
        name: i.principal,
        initiator: true,
        iops: rate(i.requests, q?.requests, dtS),
        readsPerS: Number.NaN,
        writesPerS: Number.NaN,
        readMBps: rate(i.bytesRead, q?.bytesRead, dtS) / 1e6,
        writeMBps: rate(i.bytesWritten, q?.bytesWritten, dtS) / 1e6,
        pending: Number.NaN,
        errors: Number.NaN,
        p99Ms: p99Between(i.latency, q?.latency),
      };
    });
    groups.push({ row, initiators: initiators.sort(byKey(sort)) });
  }
  groups.sort((a, b) => byKey(sort)(a.row, b.row));
  return groups.flatMap((g) => [g.row, ...g.initiators]);
}

const num = (v: number): number => (Number.isNaN(v) ? -1 : v);

function byKey(sort: SortKey): (a: TopRow, b: TopRow) => number {
  const name = (a: TopRow, b: TopRow) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  if (sort === 'name') return name;
  const key =
    sort === 'iops'
      ? (r: TopRow) => num(r.iops)
      : sort === 'mbps'
        ? (r: TopRow) => num(r.readMBps) + num(r.writeMBps)
        : sort === 'p99'
          ? (r: TopRow) => num(r.p99Ms)
          : (r: TopRow) => num(r.errors);
  return (a, b) => key(b) - key(a) || name(a, b);
}

/**
 * A number in `w` columns: '-' when unknown, fewer decimals as it grows (decimals -1: four
 * significant digits below 1000, for latencies from 0.004 ms up).
 */
function cell(v: number, w: number, decimals = 0): string {
  if (Number.isNaN(v)) return '-'.padStart(w);
  const d = decimals >= 0 ? decimals : v < 10 ? 3 : v < 100 ? 2 : 1;
  let s = v.toFixed(v >= 1000 ? 0 : d);
  if (s.length > w) s = v.toExponential(1);
  return s.padStart(w);
}

/** Numeric columns: title, width and decimals (80 columns leave 23 for the name). */
const COLUMNS: readonly (readonly [string, number, number])[] = [
  ['IOPS', 7, 0],
  ['READ/s', 7, 0],
  ['WRITE/s', 8, 0],
  ['RD MB/s', 8, 2],
  ['WR MB/s', 8, 2],
  ['P99 ms', 7, -1],
  ['PEND', 5, 0],
  ['ERRORS', 7, 0],
];
const NUMBERS_W = COLUMNS.reduce((n, [, w]) => n + w, 0);

/** A label cut to `w` columns; an initiator's MAC is kept whole, its peer name shortened. */
function fitLabel(label: string, w: number): string {
  if (label.length <= w) return label;
  const slash = label.lastIndexOf('/');
  const keep = slash < 0 ? 0 : label.length - slash;
  if (keep > 0 && w - keep >= 4) return `${label.slice(0, w - keep - 1)}…${label.slice(slash)}`;
  return `${label.slice(0, w - 1)}…`;
}

/** The whole screen (no escape codes): at most `height` lines of at most `width` columns. */
export function renderTop(
  prev: Sample | null,
  cur: Sample,
  sort: SortKey,
  width = 80,
  height = 24,
  intervalS = 1,
): string[] {
  const nameW = Math.max(12, width - NUMBERS_W);
  const [who, what] = summaryLines(cur.status);
  const lines = [
    `${who}  sort: ${sort}  every ${intervalS}s  (s: sort, q: quit)`,
    prev ? what : `${what}  (rates from the next sample)`,
    'EXPORT / INITIATOR'.padEnd(nameW) + COLUMNS.map(([t, w]) => t.padStart(w)).join(''),
  ];
  const rows = topRows(prev, cur, sort);
  const room = Math.max(0, height - lines.length);
  const shown = rows.length > room ? rows.slice(0, Math.max(0, room - 1)) : rows;
  for (const r of shown) {
    const name = fitLabel(r.initiator ? `  ${r.name}` : r.name, nameW - 1);
    const values = [r.iops, r.readsPerS, r.writesPerS, r.readMBps, r.writeMBps, r.p99Ms, r.pending, r.errors];
    lines.push(name.padEnd(nameW) + values.map((v, i) => cell(v, COLUMNS[i]![1], COLUMNS[i]![2])).join(''));
  }
  if (shown.length < rows.length) lines.push(`… ${rows.length - shown.length} more rows`);
  if (cur.exports.length === 0) lines.push('(no built-in exports)');
  return lines.map((l) => (l.length > width ? l.slice(0, width) : l));
}
