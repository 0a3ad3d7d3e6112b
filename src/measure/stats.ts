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
import { MASK_FILL } from '../analysis/mask.js';
import { RiskAccumulator, type Format } from '../formats/index.js';
import type { FormatRisk } from '../report/types.js';

export interface MeasuredStats {
  count: number;
  /** Elements that are NaN or ±Inf (excluded from everything else). */
  nonFinite: number;
  /** Share of finite elements ≤ the mask-fill threshold (-1e4). */
  fracMasked: number;
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
/** Radix levels of the quantile select over |x| float32 bits (31 bits): 11 + 10 + 10. */
const COARSE_SHIFT = 20;
const COARSE_BINS = 1 << 11;
const MID_SHIFT = 10;
const MID_BINS = 1 << 10;
const LOW_BINS = 1 << 10;
/** Index (0/1) of the 32-bit word holding a double's sign and exponent. */
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

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
  /** Elements at or below an attention-mask fill (see src/analysis/mask.ts). */
  private masked = 0;
  private readonly log2 = new Float64Array(LOG2_BINS);
  /** Counts of |x| float32 bits >>> COARSE_SHIFT over every chunk (first radix level of the quantiles). */
  private readonly coarse = new Float64Array(COARSE_BINS);
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
    // Pass 1: finite count, sum, min/max, zeros (counted without a branch: ReLU outputs mix
    // zeros and non-zeros at random, and a mispredicted branch per element is the costliest
    // thing in this loop).
    let n = 0;
    let sum = 0;
    let min = this.min;
    let max = this.max;
    let zeros = 0;
    let masked = 0;
    if (values instanceof Float32Array) {
      for (let i = 0; i < len; i++) {
        const x = values[i]!;
        if (x - x !== 0) continue; // NaN or ±Inf
        n++;
        sum += x;
        if (x < min) min = x;
        if (x > max) max = x;
        zeros += +(x === 0);
        masked += +(x <= MASK_FILL);
      }
    } else {
      for (let i = 0; i < len; i++) {
        const x = values[i]!;
        if (x - x !== 0) continue;
        n++;
        sum += x;
        if (x < min) min = x;
        if (x > max) max = x;
        zeros += +(x === 0);
        masked += +(x <= MASK_FILL);
      }
    }
    const nonFinite = len - n;
    this.masked += masked;
    this.nonFinite += nonFinite;
    this.min = min;
    this.max = max;
    this.zeros += zeros;
    if (n === 0) return;
    const finite = nonFinite === 0 ? values : filterFinite(values, n);

    // Pass 2: M2 around the chunk mean, |x| (as float32 bits) for quantiles, the coarse
    // histogram of those bits and the log2 bins.
    const mean = sum / n;
    const abs = new Float32Array(n);
    const m2 =
      finite instanceof Float32Array
        ? this.pass2F32(finite, mean, abs, zeros)
        : this.pass2F64(finite, mean, abs, zeros);
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

  /**
   * Float32 data: one loop for M2, |x| bits and the coarse histogram (bits >>> 20: exponent
   * and 3 mantissa bits). The log2 bins of normal values are read off the coarse histogram
   * (8 bins per exponent); subnormals, rare, get a pass of their own. Returns the chunk's M2.
   */
  private pass2F32(finite: Float32Array, mean: number, abs: Float32Array, zeros: number): number {
    const n = finite.length;
    const bits = new Uint32Array(finite.buffer, finite.byteOffset, n);
    const absBits = new Uint32Array(abs.buffer, abs.byteOffset, n);
    const h = new Uint32Array(COARSE_BINS);
    let m2 = 0;
    for (let i = 0; i < n; i++) {
      const d = finite[i]! - mean;
      m2 += d * d;
      const b = bits[i]! & 0x7fffffff;
      absBits[i] = b;
      h[b >>> COARSE_SHIFT]!++;
    }
    const coarse = this.coarse;
    const log2 = this.log2;
    let low = 0; // zeros and subnormals: bins of exponent field 0
    for (let k = 0; k < COARSE_BINS; k++) {
      const c = h[k]!;
      if (c === 0) continue;
      coarse[k]! += c;
      const e = k >>> (23 - COARSE_SHIFT);
      if (e === 0) low += c;
      else log2[e - 127 + LOG2_OFFSET]! += c;
    }
    if (low > zeros) {
      for (let i = 0; i < n; i++) {
        const b = absBits[i]!;
        if (b !== 0 && b < 0x800000) log2[Math.floor(Math.log2(abs[i]!)) + LOG2_OFFSET]!++;
      }
    }
    return m2;
  }

  /**
   * Float64 data: the same, with the log2 bins from the double's own exponent field (|x| is
   * kept rounded to float32, whose bits feed the coarse histogram). Returns the chunk's M2.
   */
  private pass2F64(finite: Float64Array, mean: number, abs: Float32Array, zeros: number): number {
    const n = finite.length;
    const words = new Uint32Array(finite.buffer, finite.byteOffset, 2 * n);
    const absBits = new Uint32Array(abs.buffer, abs.byteOffset, n);
    const h = new Uint32Array(COARSE_BINS);
    const fields = new Uint32Array(2048);
    let m2 = 0;
    for (let i = 0; i < n; i++) {
      const x = finite[i]!;
      const d = x - mean;
      m2 += d * d;
      abs[i] = Math.abs(x); // float32 rounding (exact for float32/float16 sources)
      h[absBits[i]! >>> COARSE_SHIFT]!++;
      fields[(words[2 * i + HI]! >>> 20) & 0x7ff]!++;
    }
    const coarse = this.coarse;
    for (let k = 0; k < COARSE_BINS; k++) coarse[k]! += h[k]!;
    const log2 = this.log2;
    for (let e = 1; e < 2047; e++) if (fields[e] !== 0) log2[e - 1023 + LOG2_OFFSET]! += fields[e]!;
    if (fields[0]! > zeros) {
      for (let i = 0; i < n; i++) {
        const a = Math.abs(finite[i]!);
        if (a !== 0 && a < 2 ** -1022) log2[Math.floor(Math.log2(a)) + LOG2_OFFSET]!++;
      }
    }
    return m2;
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
        fracZero: NaN, fracMasked: 0, absP50: NaN, absP99: NaN, absP999: NaN, quantilesExact: true, log2Hist, risk,
      };
    }
    const variance = Math.max(0, this.m2 / n);
    const mean = this.meanAcc;
    const qs = [0.5, 0.99, 0.999];
    let quant: number[];
    let exact: boolean;
    if (this.kept) {
      quant = exactQuantiles(this.kept, this.keptCount, qs, this.coarse);
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
      fracMasked: this.masked / n,
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
 * element of rank r is found by a radix select over its 31 bits in three levels: a histogram
 * of the top 11 bits (`coarse`, when the caller has it already; it must count exactly the
 * elements of `arrays`) locates each wanted rank's bin; one branchless pass gathers the
 * elements of those few bins; a histogram of their next 10 bits, then of the last 10 bits of
 * the elements sharing the located 21-bit prefix, gives the exact value. O(n), one pass over the
 * data beyond the histogram.
 */
export function exactQuantiles(arrays: Float32Array[], total: number, qs: number[], coarse?: ArrayLike<number>): number[] {
  if (total === 0) return qs.map(() => NaN);
  if (total <= SORT_BELOW) {
    // Small: sorting beats the radix select's fixed cost.
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
  let hist = coarse;
  if (!hist) {
    const h = new Float64Array(COARSE_BINS);
    for (const v of views) for (let i = 0; i < v.length; i++) h[v[i]! >>> COARSE_SHIFT]!++;
    hist = h;
  }
  const bitsOfRank = selectRanks(views, hist, want);
  const values = bitsOfRank.map((b) => ((scratchU32[0] = b), scratchF32[0]!));
  return qs.map((q, i) => {
    const pos = q * (total - 1);
    const a = values[2 * i]!;
    const b = values[2 * i + 1]!;
    const f = pos - Math.floor(pos);
    return f === 0 ? a : a + (b - a) * f;
  });
}

/** Where each rank falls in a histogram: bin and rank within the bin. */
function locate(hist: ArrayLike<number>, from: number, bins: number, ranks: number[]): { bin: number; rest: number }[] {
  const located = ranks.map(() => ({ bin: bins - 1, rest: 0 }));
  const order = ranks.map((_, i) => i).sort((a, b) => ranks[a]! - ranks[b]!);
  let k = 0;
  let acc = 0;
  for (let b = 0; b < bins && k < order.length; b++) {
    const c = hist[from + b]!;
    while (k < order.length && ranks[order[k]!]! < acc + c) {
      located[order[k]!] = { bin: b, rest: ranks[order[k]!]! - acc };
      k++;
    }
    acc += c;
  }
  return located;
}

/** The bit patterns of the elements of the given ranks (see `exactQuantiles`). */
function selectRanks(views: Uint32Array[], coarse: ArrayLike<number>, ranks: number[]): number[] {
  // Level 1: the top 11 bits.
  const l1 = locate(coarse, 0, COARSE_BINS, ranks);
  const slotOf = new Int32Array(COARSE_BINS).fill(-1);
  const bins: number[] = [];
  let m = 0;
  for (const { bin } of l1) {
    if (slotOf[bin] !== -1) continue;
    slotOf[bin] = bins.length;
    bins.push(bin);
    m += coarse[bin]!;
  }
  // Gather the elements of those bins, without a branch (always write, advance when wanted).
  const cand = new Uint32Array(m + 1);
  let k = 0;
  for (const v of views) {
    for (let i = 0; i < v.length; i++) {
      const b = v[i]!;
      cand[k] = b;
      k += (slotOf[b >>> COARSE_SHIFT]! >>> 31) ^ 1;
    }
  }
  // Level 2: the next 10 bits, one histogram per gathered bin.
  const mid = new Float64Array(bins.length * MID_BINS);
  for (let i = 0; i < m; i++) {
    const b = cand[i]!;
    mid[slotOf[b >>> COARSE_SHIFT]! * MID_BINS + ((b >>> MID_SHIFT) & (MID_BINS - 1))]!++;
  }
  // Level 3: the last 10 bits of the elements sharing each located 21-bit prefix, all prefixes
  // in one pass (a level-2 key maps to its prefix's histogram, or to a dummy one).
  const l2 = l1.map(({ bin, rest }) => {
    const slot = slotOf[bin]!;
    const [{ bin: sub, rest: rest2 }] = locate(mid, slot * MID_BINS, MID_BINS, [rest]) as [{ bin: number; rest: number }];
    return { key: slot * MID_BINS + sub, prefix: (bin << (COARSE_SHIFT - MID_SHIFT)) | sub, rest: rest2 };
  });
  const lowOf = new Int32Array(bins.length * MID_BINS); // 0: dummy, else 1 + index of the prefix
  const prefixes: number[] = [];
  for (const { key } of l2) if (lowOf[key] === 0) lowOf[key] = prefixes.push(key);
  const low = new Float64Array((prefixes.length + 1) * LOW_BINS);
  for (let i = 0; i < m; i++) {
    const b = cand[i]!;
    const key = slotOf[b >>> COARSE_SHIFT]! * MID_BINS + ((b >>> MID_SHIFT) & (MID_BINS - 1));
    low[lowOf[key]! * LOW_BINS + (b & (LOW_BINS - 1))]!++;
  }
  return l2.map(({ key, prefix, rest }) => {
    const [{ bin: last }] = locate(low, lowOf[key]! * LOW_BINS, LOW_BINS, [rest]) as [{ bin: number; rest: number }];
    return ((prefix << MID_SHIFT) | last) >>> 0;
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
