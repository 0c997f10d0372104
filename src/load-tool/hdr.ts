/**
 * A high-dynamic-range histogram of non-negative integers (latencies in nanoseconds), log-linear like
 * HdrHistogram: values below 128 have a bucket each; above, every power of two [2^k, 2^(k+1)) is split
 * into 128 equal buckets of width 2^(k-7). A bucket's representative value is its midpoint, so a
 * reported value is within 1/256 (0.39%) of any value recorded in that bucket: comfortably under the
 * 1% the tool promises. Values at or above 2^40 ns (about 18 minutes) land in the last bucket.
 *
 * Recording is a few integer operations and one array increment (no allocation), so it can run for
 * every received packet. Histograms merge by adding their count arrays, which is how worker threads'
 * histograms are combined: `snapshot()` gives a structured-clone-friendly copy.
 */

/** log2 of the number of sub-buckets per power of two. */
const SUB_BITS = 7;
const SUB_COUNT = 1 << SUB_BITS;
/** Values are clamped below 2^MAX_EXP. */
const MAX_EXP = 40;
const MAX_VALUE = 2 ** MAX_EXP - 1;
/** Buckets: SUB_COUNT exact ones, then SUB_COUNT per octave 2^7 … 2^39. */
export const BUCKET_COUNT = SUB_COUNT + (MAX_EXP - SUB_BITS) * SUB_COUNT;
const TWO_POW_31 = 2 ** 31;

/** Bucket index of `v` (an integer in [0, MAX_VALUE]). */
export function bucketIndex(v: number): number {
  if (v < SUB_COUNT) return v;
  // k = floor(log2 v), computed exactly with clz32 on the high or low 31 bits.
  const k = v < TWO_POW_31 ? 31 - Math.clz32(v) : 31 + (31 - Math.clz32(Math.floor(v / TWO_POW_31)));
  const width = 2 ** (k - SUB_BITS);
  const sub = Math.floor(v / width) - SUB_COUNT;
  return SUB_COUNT + (k - SUB_BITS) * SUB_COUNT + sub;
}

/** Lowest value of bucket `i` and its width. */
export function bucketRange(i: number): { readonly low: number; readonly width: number } {
  if (i < SUB_COUNT) return { low: i, width: 1 };
  const j = i - SUB_COUNT;
  const octave = Math.floor(j / SUB_COUNT);
  const sub = j - octave * SUB_COUNT;
  const width = 2 ** octave;
  return { low: (SUB_COUNT + sub) * width, width };
}

/** A histogram as plain data, for postMessage and JSON. */
export interface HistogramSnapshot {
  readonly counts: Float64Array;
  readonly total: number;
  readonly min: number;
  readonly max: number;
  readonly sum: number;
}

/** A histogram for JSON: its non-empty buckets as [index, count] pairs, and the exact min, max and sum. */
export interface SparseHistogram {
  readonly buckets: readonly (readonly [number, number])[];
  readonly min: number;
  readonly max: number;
  readonly sum: number;
}

export class HdrHistogram {
  readonly counts = new Float64Array(BUCKET_COUNT);
  total = 0;
  /** Exact smallest and largest recorded values (the buckets only bound them). */
  min = Number.POSITIVE_INFINITY;
  max = 0;
  sum = 0;

  /** Records one value; negatives count as 0, non-integers are truncated, huge values are clamped. */
  record(value: number): void {
    let v = value > 0 ? Math.floor(value) : 0;
    if (v > MAX_VALUE) v = MAX_VALUE;
    this.counts[bucketIndex(v)]!++;
    this.total++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = 0;
    this.sum = 0;
  }

  /** Adds another histogram's counts (from this process or a snapshot from a worker). */
  merge(other: HistogramSnapshot): void {
    if (other.total === 0) return;
    const c = this.counts;
    const o = other.counts;
    const n = Math.min(c.length, o.length);
    for (let i = 0; i < n; i++) c[i]! += o[i]!;
    this.total += other.total;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  /** Adds a histogram read back from JSON (`toSparse`); buckets out of range or not counts are skipped. */
  mergeSparse(other: SparseHistogram): void {
    let total = 0;
    for (const [i, n] of other.buckets) {
      if (!Number.isInteger(i) || i < 0 || i >= BUCKET_COUNT || !(n > 0)) continue;
      this.counts[i]! += n;
      total += n;
    }
    if (total === 0) return;
    this.total += total;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  toSparse(): SparseHistogram {
    const buckets: [number, number][] = [];
    const c = this.counts;
    for (let i = 0; i < c.length; i++) if (c[i]! > 0) buckets.push([i, c[i]!]);
    return { buckets, min: this.total === 0 ? 0 : this.min, max: this.max, sum: this.sum };
  }

  snapshot(): HistogramSnapshot {
    return { counts: this.counts.slice(), total: this.total, min: this.min, max: this.max, sum: this.sum };
  }

  /**
   * The value at percentile `p` (0 < p ≤ 100): the midpoint of the bucket holding the ⌈p% × total⌉-th
   * smallest value, clamped to the exact min and max. NaN when empty.
   */
  percentile(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((Math.min(100, Math.max(0, p)) / 100) * this.total));
    let seen = 0;
    const c = this.counts;
    for (let i = 0; i < c.length; i++) {
      seen += c[i]!;
      if (seen >= rank) {
        const { low, width } = bucketRange(i);
        const mid = low + (width - 1) / 2;
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }

  mean(): number {
    return this.total === 0 ? Number.NaN : this.sum / this.total;
  }
}

/** RFC 3550 §6.4.1 / A.8 interarrival jitter of one flow, in the units of the transit times it is fed. */
export class JitterEstimator {
  private lastTransit = 0;
  private hasLast = false;
  jitter = 0;

  /** `transit` = arrival time − send time of one packet (any fixed offset between clocks cancels out). */
  update(transit: number): void {
    if (this.hasLast) {
      const d = Math.abs(transit - this.lastTransit);
      this.jitter += (d - this.jitter) / 16;
    }
    this.lastTransit = transit;
    this.hasLast = true;
  }

  get samples(): boolean {
    return this.hasLast;
  }

  reset(): void {
    this.lastTransit = 0;
    this.hasLast = false;
    this.jitter = 0;
  }
}
