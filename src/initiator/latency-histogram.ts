/**
 * Log-linear latency histogram in microseconds (like HdrHistogram with 3 significant bits):
 * fixed memory, O(1) record, no allocation, percentiles within ~6 %.
 */
const SUB_BITS = 4; // 16 linear buckets per power of two
const SUB = 1 << SUB_BITS;
const POWERS = 40;

export class LatencyHistogram {
  private readonly counts = new Float64Array(POWERS * SUB);
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = 0;

  record(us: number): void {
    const v = us < 1 ? 1 : Math.floor(us);
    this.counts[bucketOf(v)]!++;
    this.count++;
    this.sum += us;
    if (us < this.min) this.min = us;
    if (us > this.max) this.max = us;
  }

  /** Value (µs) at or below which `p` percent of samples fall; upper edge of its bucket. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(bucketUpper(i), this.max);
    }
    return this.max;
  }

  get mean(): number {
    return this.count ? this.sum / this.count : 0;
  }

  merge(other: LatencyHistogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] = this.counts[i]! + other.counts[i]!;
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }
}

function bucketOf(v: number): number {
  if (v < SUB) return v;
  const power = 31 - Math.clz32(v); // v in [2^power, 2^(power+1))
  const shift = power - SUB_BITS;
  const sub = (v >>> shift) - SUB; // 0..SUB-1
  const idx = (power - SUB_BITS + 1) * SUB + sub;
  return Math.min(idx, POWERS * SUB - 1);
}

function bucketUpper(idx: number): number {
  if (idx < SUB) return idx;
  const power = Math.floor(idx / SUB) - 1 + SUB_BITS;
  const sub = idx % SUB;
  const shift = power - SUB_BITS;
  return ((SUB + sub + 1) << shift) - 1;
}
