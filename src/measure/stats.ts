/**
 * Streaming statistics of one tensor, fed chunk by chunk (one chunk per run, or per slice of a
 * large initializer) and summarised at the end. Everything covers the finite elements only
 * (non-finite ones are counted apart), as validation/README.md defines.
 *
 * - Moments: per chunk a two-pass mean and M2 = Σ(x − mean)², merged across chunks with Chan's
 *   parallel formula, so the variance of a near-constant tensor does not vanish into rounding
 *   (the naive Σx²/n − mean² would). rms = √(mean² + var).
 * - Quantiles of |x| (p50, p99, p99.9): numpy's default 'linear' interpolation on the sorted
 *   values, found without sorting by a radix select on the float32 bits (`exactQuantiles`). The
 *   |x| of every chunk are kept (as float32, exact for float32/float16 data) while the tensor's
 *   total element count stays within `exactLimit`, so one run — or several small ones — gives
 *   exact numpy quantiles. Past the limit the kept values are poured into a fine
 *   histogram over the float32 bit pattern of |x| (bits >>> 15: 8 exponent + 8 mantissa bits,
 *   256 bins per octave, each bin ≤ 2^-8 ≈ 0.4% wide in relative terms), and quantiles are read
 *   from it by placing a bin's elements evenly across it. Float64 values are binned through
 *   float32 rounding.
 * - log2|x| histogram with 1-bit bins: bin k counts floor(log2|x|) = k (exact, from the exponent
 *   bits for float32 data).
 * - Per-format risk from the formats module's RiskAccumulator.
 */
import { RiskAccumulator, type Format } from '../formats/index.js';
import type { FormatRisk } from '../report/types.js';

export interface MeasuredStats {
  count: number;
  /** Elements that are NaN or ±Inf (excluded from everything else). */
  nonFinite: number;
  mean: number;
  std: number;
  rms: number;
  min: number;
  max: number;
  absmax: number;
  fracZero: number;
  absP50: number;
  absP99: number;
  absP999: number;
  /** Whether the quantiles are exact (else from the fine histogram, ≤ 0.4% relative). */
  quantilesExact: boolean;
  log2Hist: { log2Min: number; counts: number[] };
  risk: Record<string, FormatRisk>;
}

/** floor(log2|x|) ranges over [-1074, 1023] for float64. */
const LOG2_OFFSET = 1075;
const LOG2_BINS = 2100;
const FINE_BINS = 1 << 16;
/** Below this many elements exact quantiles sort instead of radix-selecting. */
const SORT_BELOW = 1 << 15;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

export interface StatsOptions {
  /** Keep exact |x| for quantiles up to this many elements in total (default 2^22). */
  exactLimit?: number;
}

export class TensorStats {
  private n = 0;
  private nonFinite = 0;
  private meanAcc = 0;
  private m2 = 0;
  private min = Infinity;
  private max = -Infinity;
  private zeros = 0;
  private readonly log2 = new Float64Array(LOG2_BINS);
  private kept: Float32Array[] | null = [];
  private keptCount = 0;
  private fine: Float64Array | null = null;
  private readonly risk: RiskAccumulator;
  private readonly exactLimit: number;

  constructor(
    private readonly formats: Format[],
    opts: StatsOptions = {},
  ) {
    this.risk = new RiskAccumulator(formats);
    this.exactLimit = opts.exactLimit ?? 1 << 22;
  }

  get count(): number {
    return this.n;
  }

  add(values: Float32Array | Float64Array): void {
    const len = values.length;
    if (len === 0) return;
    // Pass 1: finite count, sum, min/max, zeros.
    let n = 0;
    let sum = 0;
    let min = this.min;
    let max = this.max;
    let zeros = 0;
    for (let i = 0; i < len; i++) {
      const x = values[i]!;
      if (x - x !== 0) continue; // NaN or ±Inf
      n++;
      sum += x;
      if (x < min) min = x;
      if (x > max) max = x;
      if (x === 0) zeros++;
    }
    const nonFinite = len - n;
    this.nonFinite += nonFinite;
    this.min = min;
    this.max = max;
    this.zeros += zeros;
    if (n === 0) return;
    const finite = nonFinite === 0 ? values : filterFinite(values, n);

    // Pass 2: M2 around the chunk mean, |x| for quantiles, log2 bins.
    const mean = sum / n;
    let m2 = 0;
    const abs = new Float32Array(n);
    const log2 = this.log2;
    if (finite instanceof Float32Array && finite.byteOffset % 4 === 0) {
      const bits = new Uint32Array(finite.buffer, finite.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const x = finite[i]!;
        const d = x - mean;
        m2 += d * d;
        const b = bits[i]! & 0x7fffffff;
        if (b !== 0) {
          const e = b >>> 23;
          log2[(e !== 0 ? e - 127 : Math.floor(Math.log2(Math.abs(x)))) + LOG2_OFFSET]!++;
        }
        abs[i] = Math.abs(x);
      }
    } else {
      for (let i = 0; i < n; i++) {
        const x = finite[i]!;
        const d = x - mean;
        m2 += d * d;
        const a = Math.abs(x);
        if (a !== 0) log2[Math.floor(Math.log2(a)) + LOG2_OFFSET]!++;
        abs[i] = a; // float32 rounding (exact for float32/float16 sources)
      }
    }
    // Chan et al.: merge (n, mean, M2) of the chunk into the running totals.
    const tot = this.n + n;
    const delta = mean - this.meanAcc;
    this.m2 += m2 + (delta * delta * this.n * n) / tot;
    this.meanAcc += (delta * n) / tot;
    this.n = tot;

    if (this.kept && this.keptCount + n <= this.exactLimit) {
      this.kept.push(abs);
      this.keptCount += n;
    } else {
      if (this.kept) {
        for (const k of this.kept) this.binFine(k);
        this.kept = null;
        this.keptCount = 0;
      }
      this.binFine(abs);
    }
    this.risk.add(finite);
  }

  private binFine(abs: Float32Array): void {
    const fine = (this.fine ??= new Float64Array(FINE_BINS));
    const bits = new Uint32Array(abs.buffer, abs.byteOffset, abs.length);
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i]!;
      if (b !== 0) fine[b >>> 15]!++;
    }
  }

  result(): MeasuredStats {
    const n = this.n;
    const risk = riskRecord(this.risk, this.formats);
    let lo = 0;
    let hi = LOG2_BINS - 1;
    while (lo < LOG2_BINS && this.log2[lo] === 0) lo++;
    while (hi >= lo && this.log2[hi] === 0) hi--;
    const counts = lo <= hi ? Array.from(this.log2.subarray(lo, hi + 1)) : [];
    const log2Hist = { log2Min: lo <= hi ? lo - LOG2_OFFSET : 0, counts };
    if (n === 0) {
      return {
        count: 0, nonFinite: this.nonFinite, mean: NaN, std: NaN, rms: NaN, min: NaN, max: NaN, absmax: NaN,
        fracZero: NaN, absP50: NaN, absP99: NaN, absP999: NaN, quantilesExact: true, log2Hist, risk,
      };
    }
    const variance = Math.max(0, this.m2 / n);
    const mean = this.meanAcc;
    const qs = [0.5, 0.99, 0.999];
    let quant: number[];
    let exact: boolean;
    if (this.kept) {
      quant = exactQuantiles(this.kept, this.keptCount, qs);
      exact = true;
    } else {
      quant = qs.map((q) => this.fineQuantile(q));
      exact = false;
    }
    return {
      count: n,
      nonFinite: this.nonFinite,
      mean,
      std: Math.sqrt(variance),
      rms: Math.sqrt(mean * mean + variance),
      min: this.min,
      max: this.max,
      absmax: Math.max(Math.abs(this.min), Math.abs(this.max)),
      fracZero: this.zeros / n,
      absP50: quant[0]!,
      absP99: quant[1]!,
      absP999: quant[2]!,
      quantilesExact: exact,
      log2Hist,
      risk,
    };
  }

  /** The element of rank r (0-based, fractional ranks interpolate) from the fine histogram. */
  private fineQuantile(q: number): number {
    const pos = q * (this.n - 1);
    const i = Math.floor(pos);
    const a = this.rankValue(i);
    if (pos === i) return a;
    return a + (this.rankValue(i + 1) - a) * (pos - i);
  }

  private rankValue(rank: number): number {
    if (rank < this.zeros) return 0;
    let r = rank - this.zeros;
    const fine = this.fine!;
    for (let b = 0; b < FINE_BINS; b++) {
      const c = fine[b]!;
      if (c === 0) continue;
      if (r < c) {
        scratchU32[0] = b << 15;
        const lo = scratchF32[0]!;
        scratchU32[0] = Math.min(((b + 1) << 15) >>> 0, 0x7f800000);
        const hi = scratchF32[0]!;
        return lo + ((r + 0.5) / c) * (hi - lo);
      }
      r -= c;
    }
    return this.max;
  }
}

/**
 * numpy.quantile(|x|, q, method='linear') over the union of `arrays` (non-negative float32)
 * without sorting: the bit pattern of a non-negative float32 orders like its value, so the
 * element of rank r is found by a two-level radix select — a histogram of the high 16 bits
 * locates its bin, a histogram of the low 16 bits inside that bin gives the exact value. O(n).
 */
export function exactQuantiles(arrays: Float32Array[], total: number, qs: number[]): number[] {
  if (total === 0) return qs.map(() => NaN);
  if (total <= SORT_BELOW) {
    // Small: sorting beats the radix select's fixed cost (its 2^16-bin histograms).
    let all: Float32Array;
    if (arrays.length === 1) all = arrays[0]!.slice();
    else {
      all = new Float32Array(total);
      let o = 0;
      for (const a of arrays) (all.set(a, o), (o += a.length));
    }
    all.sort();
    return qs.map((q) => linearQuantile(all, q));
  }
  const want: number[] = [];
  for (const q of qs) {
    const pos = q * (total - 1);
    const lo = Math.floor(pos);
    want.push(lo, Math.min(lo + 1, total - 1));
  }
  const views = arrays.map((a) => new Uint32Array(a.buffer, a.byteOffset, a.length));
  const high = new Uint32Array(1 << 16);
  for (const v of views) for (let i = 0; i < v.length; i++) high[v[i]! >>> 16]!++;
  // Bin of each wanted rank: one cumulative sweep over the bins for all ranks (in rank order).
  const located: { bin: number; rest: number }[] = want.map(() => ({ bin: high.length - 1, rest: 0 }));
  const order = want.map((_, i) => i).sort((a, b) => want[a]! - want[b]!);
  let k = 0;
  let acc = 0;
  for (let b = 0; b < high.length && k < order.length; b++) {
    const c = high[b]!;
    while (k < order.length && want[order[k]!]! < acc + c) {
      located[order[k]!] = { bin: b, rest: want[order[k]!]! - acc };
      k++;
    }
    acc += c;
  }
  const slotOf = new Int8Array(1 << 16).fill(-1);
  const lows: Uint32Array[] = [];
  for (const { bin } of located) if (slotOf[bin] === -1) (slotOf[bin] = lows.length), lows.push(new Uint32Array(1 << 16));
  for (const v of views) {
    for (let i = 0; i < v.length; i++) {
      const b = v[i]!;
      const slot = slotOf[b >>> 16]!;
      if (slot >= 0) lows[slot]![b & 0xffff]!++;
    }
  }
  const values = located.map(({ bin, rest }) => {
    const h = lows[slotOf[bin]!]!;
    let acc = 0;
    for (let k = 0; k < h.length; k++) {
      acc += h[k]!;
      if (rest < acc) {
        scratchU32[0] = ((bin << 16) | k) >>> 0;
        return scratchF32[0]!;
      }
    }
    return NaN;
  });
  return qs.map((q, i) => {
    const pos = q * (total - 1);
    const a = values[2 * i]!;
    const b = values[2 * i + 1]!;
    const f = pos - Math.floor(pos);
    return f === 0 ? a : a + (b - a) * f;
  });
}

/** numpy.quantile(…, method='linear') of an ascending array. */
export function linearQuantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = q * (n - 1);
  const i = Math.floor(pos);
  const a = sorted[i]!;
  if (i + 1 >= n) return a;
  return a + (sorted[i + 1]! - a) * (pos - i);
}

function filterFinite(v: Float32Array | Float64Array, n: number): Float32Array | Float64Array {
  const out = v instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
  let o = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (x - x === 0) out[o++] = x;
  }
  return out;
}

/** The accumulator's per-format results keyed by format name, in the report's shape (∞ SQNR → null). */
function riskRecord(acc: RiskAccumulator, formats: Format[]): Record<string, FormatRisk> {
  const res = acc.result().formats;
  const out: Record<string, FormatRisk> = {};
  for (const f of formats) {
    const r = res[f.name];
    if (!r) continue;
    out[f.name] = {
      overflow: r.overflow,
      underflow: r.underflow,
      subnormal: r.subnormal,
      sqnrDb: Number.isFinite(r.sqnrDb) ? r.sqnrDb : null,
    };
  }
  return out;
}
