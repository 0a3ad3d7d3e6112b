/**
 * Exact statistics of stored tensors (initializers, Constant nodes): PRIMER §2 "Initializers are
 * known exactly: read their real statistics (and their exact cast errors), do not assume".
 * Everything streams through `TensorData.chunks()`, so a multi-gigabyte weight never sits in
 * memory decoded; results are cached per tensor.
 */
import { MASK_FILL } from './mask.js';
import { RiskAccumulator, type Risk } from '../formats/risk.js';
import type { Format } from '../formats/format.js';
import type { TensorData } from '../onnx/tensor.js';
import type { PredictedDistribution, Scale } from './scale.js';

/** At most this many distinct values make a tensor 'discrete' (masks, 0/1, small lookup sets). */
export const MAX_DISCRETE = 16;

export interface TensorStats {
  count: number;
  /** Finite elements (every statistic below is over these). */
  finite: number;
  nonFinite: number;
  mean: number;
  meanSquare: number;
  absmax: number;
  min: number;
  max: number;
  fracZero: number;
  /** value → share, when the tensor holds at most MAX_DISCRETE distinct finite values. */
  distinct: Map<number, number> | null;
  /** Exact risk per format name (shares over finite elements). */
  risk: Record<string, Risk>;
}

const statsCache = new WeakMap<TensorData, Map<string, TensorStats>>();

/**
 * A running weight pass (weight-pass.ts) that can deliver a tensor's statistics on demand: called
 * on a cache miss, it blocks until the tensor is read and seeded (or throws its read error).
 */
let weightSource: ((t: TensorData) => void) | null = null;

export function setWeightSource(source: ((t: TensorData) => void) | null): void {
  weightSource = source;
}

/** Exact statistics and per-format risk of a stored tensor, streamed chunk by chunk. */
export function tensorStats(t: TensorData, formats: Format[]): TensorStats {
  const key = formats.map((f) => f.name).join(',');
  let byKey = statsCache.get(t);
  if (!byKey) statsCache.set(t, (byKey = new Map()));
  let hit = byKey.get(key);
  if (!hit && weightSource) {
    weightSource(t);
    hit = byKey.get(key);
  }
  if (hit) return hit;

  const acc = new RiskAccumulator(formats);
  let n = 0;
  let nonFinite = 0;
  let sum = 0;
  let sumSq = 0;
  let absmax = 0;
  let min = Infinity;
  let max = -Infinity;
  let zeros = 0;
  // Distinct values in order of first appearance (−0 counted as 0, as a Map key would be) while
  // there are at most MAX_DISCRETE of them; then only the running sums (a tighter loop).
  const dValues: number[] = [];
  const dCounts: number[] = [];
  let tracking = true;
  for (const chunk of t.chunks()) {
    acc.add(chunk);
    let i = 0;
    const len = chunk.length;
    for (; tracking && i < len; i++) {
      const x = chunk[i]!;
      if (!Number.isFinite(x)) {
        nonFinite++;
        continue;
      }
      n++;
      sum += x;
      sumSq += x * x;
      const a = Math.abs(x);
      if (a > absmax) absmax = a;
      if (x < min) min = x;
      if (x > max) max = x;
      if (x === 0) zeros++;
      let k = 0;
      while (k < dValues.length && dValues[k] !== x) k++;
      if (k < dValues.length) dCounts[k]!++;
      else if (dValues.length < MAX_DISCRETE) {
        dValues.push(x === 0 ? 0 : x);
        dCounts.push(1);
      } else tracking = false;
    }
    for (; i < len; i++) {
      const x = chunk[i]!;
      if (!Number.isFinite(x)) {
        nonFinite++;
        continue;
      }
      n++;
      sum += x;
      sumSq += x * x;
      const a = Math.abs(x);
      if (a > absmax) absmax = a;
      if (x < min) min = x;
      if (x > max) max = x;
      if (x === 0) zeros++;
    }
  }
  let distinct: Map<number, number> | null = null;
  if (tracking) {
    distinct = new Map();
    for (let k = 0; k < dValues.length; k++) distinct.set(dValues[k]!, n > 0 ? dCounts[k]! / n : 0);
  }
  const stats: TensorStats = {
    count: t.count,
    finite: n,
    nonFinite,
    mean: n > 0 ? sum / n : 0,
    meanSquare: n > 0 ? sumSq / n : 0,
    absmax,
    min: n > 0 ? min : 0,
    max: n > 0 ? max : 0,
    fracZero: n > 0 ? zeros / n : 0,
    distinct: n > 0 ? distinct : null,
    risk: acc.result().formats,
  };
  byKey.set(key, stats);
  return stats;
}

/** The Scale of a stored float tensor: exact moments, bound and risk; 'discrete' when it has few values. */
export function weightScale(t: TensorData, formats: Format[]): Scale {
  const s = tensorStats(t, formats);
  let dist: PredictedDistribution = { kind: 'empirical' };
  let note: string | undefined;
  if (s.distinct && s.distinct.size > 0) {
    const values = [...s.distinct.keys()];
    dist = { kind: 'discrete', values, weights: values.map((v) => s.distinct!.get(v)!) };
    const fill = values.filter((v) => v <= MASK_FILL);
    if (fill.length > 0 && values.length > 1) {
      const share = fill.reduce((a, v) => a + s.distinct!.get(v)!, 0);
      const lowest = Math.min(...fill);
      note = `mask: ${(share * 100).toFixed(1)}% filled with ${lowest <= -3.4e38 ? 'float32 min' : lowest.toPrecision(3)} (${lowest.toPrecision(6)})`;
    }
  }
  if (s.nonFinite > 0) note = `${note ? note + '; ' : ''}${s.nonFinite} non-finite values`;
  return {
    mean: s.mean,
    meanSquare: s.meanSquare,
    dist,
    absmax: s.absmax,
    confidence: 'exact',
    exactRisk: s.risk,
    fracZero: s.fracZero,
    ...(note ? { note } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Structured statistics for the linear rules (exact given the weights)

export interface SliceSums {
  /** Number of slices (output units): columns of a [K, N] matrix, output channels of a conv. */
  slices: number;
  /** mean over slices of S = Σ_k w_k. */
  meanSum: number;
  /** mean over slices of S². */
  meanSumSq: number;
  /** max over slices of Σ_k |w_k| (a hard gain bound: |y| ≤ this · max|x|). */
  maxAbsSum: number;
  /** S per slice. */
  sums: Float64Array;
  /** Q = Σ_k w_k² per slice (the per-unit gain on a centred input: E[y_n²] ∋ σ²·Q_n). */
  sumSqs: Float64Array;
}

const sliceCache = new WeakMap<object, Map<string, SliceSums>>();

/**
 * Sums over the axes [from, to) of a tensor, for every index of the other axes (the fan-in sums of
 * each output unit): mean S, mean S², max Σ|w|. `values` may be a stored tensor (streamed) or a
 * folded array.
 */
export function sliceSums(src: TensorData | { dims: number[]; data: ArrayLike<number> }, from: number, to: number): SliceSums {
  const dims = src.dims;
  const key = `${from}:${to}`;
  let byKey = sliceCache.get(src);
  if (!byKey) sliceCache.set(src, (byKey = new Map()));
  let hit = byKey.get(key);
  if (!hit && weightSource && 'chunks' in src) {
    weightSource(src);
    hit = byKey.get(key);
  }
  if (hit) return hit;
  const inner = dims.slice(to).reduce((a, b) => a * b, 1);
  const mid = dims.slice(from, to).reduce((a, b) => a * b, 1);
  const outer = dims.slice(0, from).reduce((a, b) => a * b, 1);
  const slices = outer * inner;
  const S = new Float64Array(slices);
  const A = new Float64Array(slices);
  const Q = new Float64Array(slices);
  let offset = 0;
  const feed = (chunk: ArrayLike<number>): void => {
    for (let j = 0; j < chunk.length; j++) {
      const i = offset + j;
      const x = chunk[j]!;
      if (!Number.isFinite(x)) continue;
      const slice = Math.floor(i / (mid * inner)) * inner + (i % inner);
      S[slice]! += x;
      A[slice]! += Math.abs(x);
      Q[slice]! += x * x;
    }
    offset += chunk.length;
  };
  if ('chunks' in src) for (const c of src.chunks()) feed(c);
  else feed(src.data);
  const out = summariseSlices(S, A, Q);
  byKey.set(key, out);
  return out;
}

/** The SliceSums of per-slice Σw, Σ|w| and Σw² (also used by the parallel weight pass). */
export function summariseSlices(S: Float64Array, A: Float64Array, Q: Float64Array): SliceSums {
  const slices = S.length;
  let m1 = 0;
  let m2 = 0;
  let mx = 0;
  for (let s = 0; s < slices; s++) {
    m1 += S[s]!;
    m2 += S[s]! * S[s]!;
    if (A[s]! > mx) mx = A[s]!;
  }
  return { slices, meanSum: slices ? m1 / slices : 0, meanSumSq: slices ? m2 / slices : 0, maxAbsSum: mx, sums: S, sumSqs: Q };
}

/**
 * Hand in statistics computed elsewhere (src/analysis/weight-pass.ts reads every weight once, in
 * parallel, before propagation): later `tensorStats` / `sliceSums` calls find them in the cache.
 */
export function seedTensorStats(t: TensorData, formats: Format[], stats: TensorStats): void {
  const key = formats.map((f) => f.name).join(',');
  let byKey = statsCache.get(t);
  if (!byKey) statsCache.set(t, (byKey = new Map()));
  byKey.set(key, stats);
}

export function seedSliceSums(t: TensorData, from: number, to: number, sums: SliceSums): void {
  let byKey = sliceCache.get(t);
  if (!byKey) sliceCache.set(t, (byKey = new Map()));
  byKey.set(`${from}:${to}`, sums);
}

/** Whether `sliceSums(t, from, to)` is already known (no read needed). */
export function hasSliceSums(t: object, from: number, to: number): boolean {
  return sliceCache.get(t)?.has(`${from}:${to}`) ?? false;
}

const bucketCache = new WeakMap<object, PredictedDistribution>();

/**
 * The law of a stored tensor's values as a discrete distribution over at most `n` equal-weight
 * quantile buckets (each bucket at its mean; the RMS of each bucket kept by splitting it in two
 * points ±spread when the bucket is wide). Used as the shape of a constant operand in products
 * (per-channel scales) where its exact risk is not the question. Large tensors are sampled with a
 * fixed stride.
 */
export function valueBuckets(src: TensorData | { dims: number[]; data: ArrayLike<number> }, n = 24): PredictedDistribution {
  const hit = bucketCache.get(src);
  if (hit) return hit;
  const LIMIT = 1 << 20;
  const count = src.dims.reduce((a, b) => a * b, 1);
  const stride = Math.max(1, Math.ceil(count / LIMIT));
  const vals: number[] = [];
  let offset = 0;
  const feed = (chunk: ArrayLike<number>): void => {
    for (let j = 0; j < chunk.length; j++) {
      if ((offset + j) % stride === 0 && Number.isFinite(chunk[j]!)) vals.push(chunk[j]!);
    }
    offset += chunk.length;
  };
  if ('chunks' in src) for (const c of src.chunks()) feed(c);
  else feed(src.data);
  vals.sort((a, b) => a - b);
  const values: number[] = [];
  const weights: number[] = [];
  const k = Math.min(n, vals.length);
  for (let b = 0; b < k; b++) {
    const lo = Math.floor((b * vals.length) / k);
    const hi = Math.floor(((b + 1) * vals.length) / k);
    if (hi <= lo) continue;
    let s = 0;
    let s2 = 0;
    for (let i = lo; i < hi; i++) {
      s += vals[i]!;
      s2 += vals[i]! * vals[i]!;
    }
    const m = s / (hi - lo);
    const sd = Math.sqrt(Math.max(0, s2 / (hi - lo) - m * m));
    const w = (hi - lo) / vals.length;
    if (sd > 1e-12 * Math.abs(m)) {
      values.push(m - sd, m + sd);
      weights.push(w / 2, w / 2);
    } else {
      values.push(m);
      weights.push(w);
    }
  }
  const d: PredictedDistribution = values.length ? { kind: 'discrete', values, weights } : { kind: 'discrete', values: [0], weights: [1] };
  bucketCache.set(src, d);
  return d;
}
