/**
 * Service time of the target's READ/WRITE/FLUSH requests: a fixed log-scale histogram (4 buckets
 * per octave of microseconds, 1 µs to 67 s), preallocated, so recording is a bucket index and two
 * additions — nothing allocated, no clock read (the data path hands in the difference of its batch
 * timestamps; see data-path.ts for what is measured).
 *
 * Buckets: [0,1) [1,2) [2,3) [3,4) µs, then 4 per octave: [4,5) [5,6) [6,7) [7,8) [8,10) … up to
 * [58.7 s, 67.1 s), which also holds anything longer (the Linux initiator gives up after 60 s).
 * A percentile is reported as the upper edge of the bucket that holds it: at most 25 % above the
 * true value, never below it.
 *
 * Counts only grow (cumulative since the export or principal started): readers take snapshots and
 * window them themselves (aoegw top, Prometheus' rate()), so readers never disturb each other.
 */

/** Buckets: 4 below 4 µs, then 4 per octave for 24 octaves (4 µs to 2^26 µs). */
export const SERVICE_TIME_BUCKETS = 100;
/** Upper edge of the last bucket, µs (≈ 67 s); longer times are counted in the last bucket. */
export const SERVICE_TIME_LIMIT_US = 2 ** 26;
const LAST = SERVICE_TIME_BUCKETS - 1;

/** The bucket of `us` microseconds (fractions, negatives and NaN land in bucket 0). */
export function serviceTimeBucket(us: number): number {
  if (!(us >= 4)) return us > 0 ? us | 0 : 0;
  if (us >= SERVICE_TIME_LIMIT_US) return LAST;
  const v = us | 0;
  const e = 31 - Math.clz32(v); // v in [2^e, 2^(e+1)), e ≥ 2
  return ((e - 1) << 2) + ((v >>> (e - 2)) & 3);
}

/** Upper edge (exclusive) of bucket `i`, µs. */
export function serviceTimeUpperUs(i: number): number {
  if (i < 4) return i + 1;
  return (5 + (i & 3)) * 2 ** ((i >> 2) - 1);
}

/** Lower edge (inclusive) of bucket `i`, µs. */
export function serviceTimeLowerUs(i: number): number {
  if (i < 4) return i;
  return (4 + (i & 3)) * 2 ** ((i >> 2) - 1);
}

/** Non-zero buckets as [upper edge µs, count] in edge order, plus the count and the sum. */
export interface ServiceTimeSnapshot {
  count: number;
  sumUs: number;
  buckets: [number, number][];
}

export class ServiceTimeHistogram {
  /** Float64: exact to 2^53 (a Uint32 would wrap after an hour at a million IOPS). */
  readonly counts = new Float64Array(SERVICE_TIME_BUCKETS);
  count = 0;
  sumUs = 0;

  /** Records `us` µs; pass a whole number (a fraction is boxed when the call is not inlined). */
  record(us: number): void {
    this.counts[serviceTimeBucket(us)]!++;
    this.count++;
    this.sumUs += us;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sumUs = 0;
  }

  /** Adds another histogram's counts (a principal aged out into "other"). */
  add(o: ServiceTimeHistogram): void {
    const c = this.counts;
    for (let i = 0; i < SERVICE_TIME_BUCKETS; i++) c[i] = c[i]! + o.counts[i]!;
    this.count += o.count;
    this.sumUs += o.sumUs;
  }

  snapshot(): ServiceTimeSnapshot {
    const buckets: [number, number][] = [];
    for (let i = 0; i < SERVICE_TIME_BUCKETS; i++) {
      const n = this.counts[i]!;
      if (n > 0) buckets.push([serviceTimeUpperUs(i), n]);
    }
    return { count: this.count, sumUs: this.sumUs, buckets };
  }
}

/**
 * The value (µs, a bucket's upper edge) at or below which fraction `q` (0..1) of the samples of
 * `buckets` ([upper edge, count] in edge order, as in a snapshot) fall; NaN without samples.
 */
export function serviceTimeQuantile(buckets: readonly (readonly [number, number])[], q: number): number {
  let total = 0;
  for (const [, n] of buckets) total += n;
  if (total <= 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [le, n] of buckets) {
    seen += n;
    if (seen >= rank) return le;
  }
  return buckets[buckets.length - 1]![0];
}

/**
 * Buckets of `cur` minus `prev` (two snapshots of one histogram): the samples between them. Null
 * when a count went back (the export was re-created: its counts started again).
 */
export function serviceTimeWindow(
  cur: readonly (readonly [number, number])[],
  prev: readonly (readonly [number, number])[],
): [number, number][] | null {
  const before = new Map(prev.map(([le, n]) => [le, n]));
  const out: [number, number][] = [];
  for (const [le, n] of cur) {
    const d = n - (before.get(le) ?? 0);
    if (d < 0) return null;
    if (d > 0) out.push([le, d]);
    before.delete(le);
  }
  for (const n of before.values()) if (n > 0) return null;
  return out;
}
