/**
 * Streaming statistics of one tensor, fed chunk by chunk (one chunk per run, or per slice of a
 * large initializer) and summarised at the end. Everything covers the finite elements only
 * (non-finite ones are counted apart), as validation/README.md defines.
 *
 * - Moments: per chunk a two-pass mean and M2 = Σ(x − mean)², merged across chunks with Chan's
 *   parallel formula, so the variance of a near-constant tensor does not vanish into rounding
 *   (the naive Σx²/n − mean² would). rms = √(mean² + var).
 * - Quantiles of |x| (p50, p99, p99.9): numpy's default 'linear' interpolation on the sorted
 *   values, exact and without sorting. Every chunk is counted in a histogram of the float32 bit
 *   pattern of |x| (bits >>> 15: 8 exponent + 8 mantissa bits, 256 bins per octave), in the
 *   same pass as the moments; the histogram tells which bin holds each wanted rank, and a second
 *   pass (fused with M2) picks out the elements of those few bins, among which the rank is
 *   selected (`selectQuantiles`). The data is kept for that pass (by reference with `borrow`,
 *   else copied; float64 data as float32 |x|, exact for float32/float16 sources) while the
 *   tensor's element count stays within `exactLimit`. Past the limit the quantiles are read
 *   from the histogram alone, placing a bin's elements evenly across it (≤ 2^-8 ≈ 0.4%
 *   relative).
 * - log2|x| histogram with 1-bit bins: bin k counts floor(log2|x|) = k (exact; for float32 data
 *   read off the |x| histogram, whose bins never straddle a power of two).
 * - Per-format risk: exactly `RiskAccumulator`'s (fused-risk.ts); on float32 chunks its SIMD
 *   kernel also computes the first pass above (Σx, min, max, mask fills, |x| histogram).
 */
import { MASK_FILL } from '../analysis/mask.js';
import type { Format } from '../formats/index.js';
import type { FormatRisk } from '../report/types.js';
import { FusedRisk } from './fused-risk.js';

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
/** The |x| histogram: float32 bits of |x| >>> 15 (8 exponent + 8 mantissa bits, 256 bins per octave). */
const BIN_SHIFT = 15;
const BINS = 1 << 16;
const LOW_MASK = (1 << BIN_SHIFT) - 1;
/** A gathered bin of at most this many elements is sorted; a larger one is counted by its low 15 bits. */
const SORT_MAX = 2048;
/** Index (0/1) of the 32-bit word holding a double's sign and exponent. */
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
const F32_INF_BITS = 0x7f800000;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);
/** Per-chunk counts, shared by every accumulator: all zero between calls. */
const scratchHist = new Uint32Array(BINS);
/** Bin → 1 + slot of a gathered bin during a quantile select: all 0 between calls (64 KiB, cache-friendly). */
const scratchMark = new Uint8Array(BINS);

const bitsOf = (x: number): number => ((scratchF32[0] = x), scratchU32[0]!);
const valueOf = (b: number): number => ((scratchU32[0] = b), scratchF32[0]!);

export interface StatsOptions {
  /** Keep the data for exact |x| quantiles up to this many elements in total (default 2^22). */
  exactLimit?: number;
  /**
   * The caller leaves the arrays given to `add` unmodified until the last `result()` (fresh ONNX
   * Runtime outputs, decoded weights): float32 chunks are then kept by reference instead of
   * copied. Default false.
   */
  borrow?: boolean;
}

/** One `add` call: its moments and, while quantiles stay exact, its data. */
interface Chunk {
  n: number;
  mean: number;
  /** Σ(x − mean)² over the chunk; NaN until computed (at `result`, from `values`). */
  m2: number;
  /** The chunk's float32 values (M2 pending and/or quantile gather). */
  values: Float32Array | null;
  /** Float32 bits whose low 31 bits are |x| (NaN/±Inf patterns are skipped). */
  bits: Uint32Array | null;
}

export class TensorStats {
  private n = 0;
  private nonFinite = 0;
  private min = Infinity;
  private max = -Infinity;
  private zeros = 0;
  /** Finite elements whose |x| rounds to float32 zero (= zeros, for float32 data). */
  private absZero = 0;
  /** Elements at or below an attention-mask fill (see src/analysis/mask.ts). */
  private masked = 0;
  private log2: Float64Array | null = null;
  /** Counts of non-zero |x| by float32 bits >>> 15, for bins histLo … histLo + length − 1. */
  private hist: Float64Array | null = null;
  private histLo = 0;
  private readonly chunks: Chunk[] = [];
  private keeping = true;
  private keptCount = 0;
  private readonly risk: FusedRisk;
  private readonly exactLimit: number;
  private readonly borrow: boolean;

  constructor(
    private readonly formats: Format[],
    opts: StatsOptions = {},
  ) {
    this.risk = new FusedRisk(formats);
    this.exactLimit = opts.exactLimit ?? 1 << 22;
    this.borrow = opts.borrow ?? false;
  }

  get count(): number {
    return this.n;
  }

  add(values: Float32Array | Float64Array): void {
    if (values.length === 0) return;
    if (values instanceof Float32Array) this.addF32(values);
    else {
      this.risk.addF64(values);
      this.addF64(values);
    }
  }

  /**
   * Float32 data: one pass for the count, sum, min/max, zeros, mask fills and the |x|
   * histogram (zeros counted without a branch: ReLU outputs mix zeros and non-zeros at random).
   * M2 waits for the mean: it is computed at `result` together with the quantile gather, or
   * right away when the data is not kept.
   */
  private addF32(values: Float32Array): void {
    const len = values.length;
    const bits = new Uint32Array(values.buffer, values.byteOffset, len);
    const fused = this.risk.addF32(values);
    if (fused) {
      const { finite: n, zeros, sum, min, max, masked, lo } = fused.stats;
      this.finishF32(values, bits, fused.kernel.hist, n, sum, min, max, zeros, masked, lo);
      return;
    }
    const h = scratchHist;
    let n = 0;
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    let zeros = 0;
    let masked = 0;
    let lo = F32_INF_BITS; // smallest non-zero |x| bits
    for (let i = 0; i < len; i++) {
      const b = bits[i]! & 0x7fffffff;
      if (b >= F32_INF_BITS) continue; // NaN or ±Inf
      const x = values[i]!;
      n++;
      sum += x;
      if (x < min) min = x;
      if (x > max) max = x;
      zeros += +(b === 0);
      masked += +(x <= MASK_FILL);
      h[b >>> BIN_SHIFT]!++;
      if (b < lo && b !== 0) lo = b;
    }
    this.finishF32(values, bits, h, n, sum, min, max, zeros, masked, lo);
  }

  /** Fold a float32 chunk's first-pass results (counted in `h`, zeroed here) into the totals. */
  private finishF32(values: Float32Array, bits: Uint32Array, h: Uint32Array, n: number, sum: number, min: number, max: number, zeros: number, masked: number, lo: number): void {
    this.nonFinite += values.length - n;
    if (n === 0) return;
    this.masked += masked;
    this.zeros += zeros;
    this.absZero += zeros;
    if (min < this.min) this.min = min;
    if (max > this.max) this.max = max;
    h[0]! -= zeros;
    if (lo !== F32_INF_BITS) this.harvest(h, lo >>> BIN_SHIFT, bitsOf(Math.max(-min, max)) >>> BIN_SHIFT, bits, true);
    this.addChunk(n, sum / n, values, null);
  }

  /**
   * Float64 data: the same, with M2 computed here, the log2 bins from the double's own exponent
   * field, and |x| rounded to float32 for the histogram and the quantiles (exact for
   * float32/float16 sources).
   */
  private addF64(values: Float64Array): void {
    const len = values.length;
    let n = 0;
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    let zeros = 0;
    let masked = 0;
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
    this.nonFinite += len - n;
    if (n === 0) return;
    this.masked += masked;
    this.zeros += zeros;
    if (min < this.min) this.min = min;
    if (max > this.max) this.max = max;
    const mean = sum / n;
    const words = new Uint32Array(values.buffer, values.byteOffset, 2 * len);
    const abs = new Float32Array(n);
    const absBits = new Uint32Array(abs.buffer);
    const fields = new Uint32Array(2048);
    const h = scratchHist;
    let m2 = 0;
    let k = 0;
    let lo = F32_INF_BITS;
    let hi = 0;
    let absZero = 0;
    for (let i = 0; i < len; i++) {
      const x = values[i]!;
      if (x - x !== 0) continue;
      const d = x - mean;
      m2 += d * d;
      abs[k] = Math.abs(x); // float32 rounding
      const b = absBits[k++]!;
      h[b >>> BIN_SHIFT]!++;
      absZero += +(b === 0);
      if (b < lo && b !== 0) lo = b;
      if (b > hi) hi = b;
      fields[(words[2 * i + HI]! >>> 20) & 0x7ff]!++;
    }
    this.absZero += absZero;
    h[0]! -= absZero;
    if (lo !== F32_INF_BITS) this.harvest(h, lo >>> BIN_SHIFT, hi >>> BIN_SHIFT, absBits, false);
    const log2 = (this.log2 ??= new Float64Array(LOG2_BINS));
    for (let e = 1; e < 2047; e++) if (fields[e] !== 0) log2[e - 1023 + LOG2_OFFSET]! += fields[e]!;
    if (fields[0]! > zeros) {
      for (let i = 0; i < len; i++) {
        const a = Math.abs(values[i]!);
        if (a !== 0 && a < 2 ** -1022) log2[Math.floor(Math.log2(a)) + LOG2_OFFSET]!++;
      }
    }
    this.addChunk(n, mean, null, absBits, m2);
  }

  /**
   * Move bins lo…hi of the scratch counts into the tensor's histogram (zeroing them), and, for
   * float32 data, its log2 bins: a bin's floor(log2|x|) is its exponent field's for normal
   * values, and for subnormals m·2^-149 with m ≥ 2^15 it is fixed by the bin as well; the few
   * subnormals below 2^-134 (bin 0) take a pass over `bits` of their own.
   */
  private harvest(h: Uint32Array, lo: number, hi: number, bits: Uint32Array, log2FromBins: boolean): void {
    let dst = this.hist;
    if (!dst) {
      dst = this.hist = new Float64Array(hi - lo + 1);
      this.histLo = lo;
    } else if (lo < this.histLo || hi >= this.histLo + dst.length) {
      const nlo = Math.min(lo, this.histLo);
      const nhi = Math.max(hi, this.histLo + dst.length - 1);
      const grown = new Float64Array(nhi - nlo + 1);
      grown.set(dst, this.histLo - nlo);
      dst = this.hist = grown;
      this.histLo = nlo;
    }
    const off = lo - this.histLo;
    if (!log2FromBins) {
      for (let k = lo; k <= hi; k++) {
        const c = h[k]!;
        if (c === 0) continue;
        h[k] = 0;
        dst[off + k - lo]! += c;
      }
      return;
    }
    const log2 = (this.log2 ??= new Float64Array(LOG2_BINS));
    let tiny = 0;
    for (let k = lo; k <= hi; k++) {
      const c = h[k]!;
      if (c === 0) continue;
      h[k] = 0;
      dst[off + k - lo]! += c;
      const field = k >>> 8;
      if (field > 0) log2[field - 127 + LOG2_OFFSET]! += c;
      else if (k > 0) log2[BIN_SHIFT + 31 - Math.clz32(k) - 149 + LOG2_OFFSET]! += c;
      else tiny = c;
    }
    if (tiny > 0) {
      for (let i = 0; i < bits.length; i++) {
        const b = bits[i]! & 0x7fffffff;
        if (b !== 0 && b <= LOW_MASK) log2[31 - Math.clz32(b) - 149 + LOG2_OFFSET]!++;
      }
    }
  }

  private addChunk(n: number, mean: number, values: Float32Array | null, bits: Uint32Array | null, m2 = NaN): void {
    this.n += n;
    if (this.keeping && this.keptCount + n <= this.exactLimit) {
      this.keptCount += n;
      if (values) {
        const v = this.borrow ? values : values.slice();
        this.chunks.push({ n, mean, m2, values: v, bits: new Uint32Array(v.buffer, v.byteOffset, v.length) });
      } else this.chunks.push({ n, mean, m2, values: null, bits });
      return;
    }
    // Past the exact limit: quantiles come from the histogram, the data is not kept.
    if (this.keeping) {
      this.keeping = false;
      for (const c of this.chunks) {
        if (c.values && Number.isNaN(c.m2)) c.m2 = m2Around(c.values, c.mean);
        c.values = null;
        c.bits = null;
      }
    }
    this.chunks.push({ n, mean, m2: values ? m2Around(values, mean) : m2, values: null, bits: null });
  }

  result(): MeasuredStats {
    const n = this.n;
    const risk = this.risk.result();
    const log2 = this.log2;
    let lo = 0;
    let hi = LOG2_BINS - 1;
    if (log2) {
      while (lo < LOG2_BINS && log2[lo] === 0) lo++;
      while (hi >= lo && log2[hi] === 0) hi--;
    }
    const counts = log2 && lo <= hi ? Array.from(log2.subarray(lo, hi + 1)) : [];
    const log2Hist = { log2Min: log2 && lo <= hi ? lo - LOG2_OFFSET : 0, counts };
    if (n === 0) {
      return {
        count: 0, nonFinite: this.nonFinite, mean: NaN, std: NaN, rms: NaN, min: NaN, max: NaN, absmax: NaN,
        fracZero: NaN, fracMasked: 0, absP50: NaN, absP99: NaN, absP999: NaN, quantilesExact: true, log2Hist, risk,
      };
    }
    const qs = [0.5, 0.99, 0.999];
    let quant: number[];
    if (this.keeping) {
      // Pass 2 over the kept data: the pending M2 and the elements of the quantiles' bins.
      quant = selectQuantiles(this.hist, this.histLo, this.absZero, n, qs, (mark, cand, fill) => {
        for (const c of this.chunks) {
          if (c.values && Number.isNaN(c.m2)) {
            c.m2 = m2AndGather(c.values, c.bits!, c.mean, mark, cand, fill);
            if (!this.borrow) c.values = null;
          } else if (c.bits) gather(c.bits, mark, cand, fill);
        }
      });
    } else quant = qs.map((q) => this.histQuantile(q));
    // Chan et al.: merge the chunks' (n, mean, M2), in order.
    let count = 0;
    let mean = 0;
    let m2 = 0;
    for (const c of this.chunks) {
      if (Number.isNaN(c.m2) && c.values) c.m2 = m2Around(c.values, c.mean);
      const tot = count + c.n;
      const delta = c.mean - mean;
      m2 += c.m2 + (delta * delta * count * c.n) / tot;
      mean += (delta * c.n) / tot;
      count = tot;
    }
    const variance = Math.max(0, m2 / n);
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
      quantilesExact: this.keeping,
      log2Hist,
      risk,
    };
  }

  /** Quantile from the histogram alone: a bin's elements placed evenly across it (≤ 0.4% relative). */
  private histQuantile(q: number): number {
    const pos = q * (this.n - 1);
    const i = Math.floor(pos);
    const a = this.rankValue(i);
    if (pos === i) return a;
    return a + (this.rankValue(i + 1) - a) * (pos - i);
  }

  private rankValue(rank: number): number {
    if (rank < this.absZero) return 0;
    let r = rank - this.absZero;
    const hist = this.hist!;
    for (let j = 0; j < hist.length; j++) {
      const c = hist[j]!;
      if (c === 0) continue;
      if (r < c) {
        const b = this.histLo + j;
        const lo = valueOf(b << BIN_SHIFT);
        const hi = valueOf(Math.min(((b + 1) << BIN_SHIFT) >>> 0, F32_INF_BITS - 1)); // the top bin ends at float32 max, not ∞
        return lo + ((r + 0.5) / c) * (hi - lo);
      }
      r -= c;
    }
    return this.max;
  }
}

/** Σ(x − mean)² over the finite elements of a float32 chunk. */
function m2Around(values: Float32Array, mean: number): number {
  let m2 = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (x - x !== 0) continue;
    const d = x - mean;
    m2 += d * d;
  }
  return m2;
}

/** `m2Around` fused with `gather` (one pass over the chunk). */
function m2AndGather(values: Float32Array, bits: Uint32Array, mean: number, mark: Uint8Array, cand: Uint32Array, fill: Int32Array): number {
  let m2 = 0;
  for (let i = 0; i < values.length; i++) {
    const b = bits[i]! & 0x7fffffff;
    if (b >= F32_INF_BITS) continue;
    const d = values[i]! - mean;
    m2 += d * d;
    const s = mark[b >>> BIN_SHIFT]!;
    if (s !== 0 && b !== 0) cand[fill[s - 1]!++] = b;
  }
  return m2;
}

/** Copy the |x| bits of the elements in marked bins to their slot's part of `cand`. */
function gather(bits: Uint32Array, mark: Uint8Array, cand: Uint32Array, fill: Int32Array): void {
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]! & 0x7fffffff;
    if (b >= F32_INF_BITS || b === 0) continue;
    const s = mark[b >>> BIN_SHIFT]!;
    if (s !== 0) cand[fill[s - 1]!++] = b;
  }
}

type Gatherer = (mark: Uint8Array, cand: Uint32Array, fill: Int32Array) => void;

/**
 * numpy.quantile(|x|, q, method='linear') from the exact histogram of the non-zero |x| by
 * float32 bits >>> 15 (`hist`, bins from `histLo`) and the number of zeros: each wanted rank's
 * bin is located in the histogram; `gather` then copies the elements of those few bins (one
 * pass over the data), and the rank is selected among them — by sorting when the bin holds few
 * elements, else by counting their low 15 bits. The bit pattern of a non-negative float32
 * orders like its value, so this is exact. O(n).
 */
function selectQuantiles(hist: Float64Array | null, histLo: number, zeros: number, total: number, qs: number[], gatherInto: Gatherer): number[] {
  if (total === 0) return qs.map(() => NaN);
  const ranks: number[] = [];
  for (const q of qs) {
    const lo = Math.floor(q * (total - 1));
    ranks.push(lo, Math.min(lo + 1, total - 1));
  }
  // Locate each rank: a zero, or (slot of its bin, rank within the bin).
  const order = ranks.map((_, i) => i).sort((a, b) => ranks[a]! - ranks[b]!);
  const where: { bin: number; rest: number }[] = ranks.map(() => ({ bin: -1, rest: 0 }));
  let k = 0;
  while (k < order.length && ranks[order[k]!]! < zeros) k++;
  let acc = zeros;
  if (hist) {
    for (let j = 0; j < hist.length && k < order.length; j++) {
      const c = hist[j]!;
      while (k < order.length && ranks[order[k]!]! < acc + c) {
        where[order[k]!] = { bin: histLo + j, rest: ranks[order[k]!]! - acc };
        k++;
      }
      acc += c;
    }
  }
  const bins: number[] = [];
  const counts: number[] = [];
  for (const w of where) {
    if (w.bin < 0 || scratchMark[w.bin] !== 0) continue;
    bins.push(w.bin);
    scratchMark[w.bin] = bins.length;
    counts.push(hist![w.bin - histLo]!);
  }
  const start = new Int32Array(bins.length + 1);
  for (let s = 0; s < bins.length; s++) start[s + 1] = start[s]! + counts[s]!;
  const fill = start.slice(0, bins.length);
  const cand = new Uint32Array(start[bins.length]!);
  try {
    if (bins.length > 0) gatherInto(scratchMark, cand, fill);
  } finally {
    for (const b of bins) scratchMark[b] = 0;
  }
  const sorted = new Set<number>();
  const lowHist = new Map<number, Uint32Array>();
  const bitsAt = ({ bin, rest }: { bin: number; rest: number }): number => {
    if (bin < 0) return 0;
    const s = bins.indexOf(bin);
    const part = cand.subarray(start[s]!, start[s + 1]!);
    if (part.length <= SORT_MAX) {
      if (!sorted.has(s)) (part.sort(), sorted.add(s));
      return part[rest]!;
    }
    let low = lowHist.get(s);
    if (!low) {
      low = new Uint32Array(LOW_MASK + 1);
      for (let i = 0; i < part.length; i++) low[part[i]! & LOW_MASK]!++;
      lowHist.set(s, low);
    }
    let r = rest;
    for (let j = 0; j <= LOW_MASK; j++) {
      if (r < low[j]!) return ((bin << BIN_SHIFT) | j) >>> 0;
      r -= low[j]!;
    }
    throw new Error('quantile select: histogram and data disagree');
  };
  const values = where.map((w) => valueOf(bitsAt(w)));
  return qs.map((q, i) => {
    const pos = q * (total - 1);
    const a = values[2 * i]!;
    const b = values[2 * i + 1]!;
    const f = pos - Math.floor(pos);
    return f === 0 ? a : a + (b - a) * f;
  });
}

/**
 * numpy.quantile(|x|, q, method='linear') over the union of `arrays` (non-negative finite
 * float32), exactly, without sorting (see `selectQuantiles`).
 */
export function exactQuantiles(arrays: Float32Array[], total: number, qs: number[]): number[] {
  const hist = new Float64Array(BINS);
  let zeros = 0;
  const views = arrays.map((a) => new Uint32Array(a.buffer, a.byteOffset, a.length));
  for (const v of views) {
    for (let i = 0; i < v.length; i++) {
      const b = v[i]! & 0x7fffffff;
      if (b === 0) zeros++;
      else hist[b >>> BIN_SHIFT]!++;
    }
  }
  return selectQuantiles(hist, 0, zeros, total, qs, (mark, cand, fill) => {
    for (const v of views) gather(v, mark, cand, fill);
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
