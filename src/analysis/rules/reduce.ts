/**
 * Reductions over n elements (PRIMER §3: "ReduceMean over n independent elements: mean μ,
 * variance σ²/n. ReduceSum: n·μ, n·σ²"), with n the product of the reduced dims.
 *
 * Every rule here assumes the reduced elements are independent. Where they are not — the
 * spatial positions of one channel of a conv feature map, the tokens of one sequence — the
 * variance of a mean or sum is larger than predicted (each Scale says so in its note), and
 * the measured mode is the check.
 *
 * - Mean / Sum / SumSquare / L1: sums of n i.i.d. terms → Gaussian by the CLT, first two moments
 *   exact (E[x⁴] by quadrature for SumSquare).
 * - L2, LogSum, LogSumExp: an elementwise function of such a sum (quadrature via the generic rule).
 * - Max / Min: the exact order statistic max of n i.i.d. draws (src/analysis/quadrature.ts:
 *   F_max = F^n, as a pushforward of a Gaussian), not the μ + σ√(2 ln n) asymptote.
 * - Prod: E[Πx] = μⁿ, E[(Πx)²] = (E[x²])ⁿ, exact for independent factors but a wild, heavy-tailed
 *   distribution: confidence 'low'.
 * - TopK values: a random element of the top k of n, from the distribution's atoms.
 *
 * Backward: Mean / Sum broadcast g (÷ n) over the reduced axes, so the input's gradient is the
 * same at every reduced position: it is marked coherent along those axes (coherence.ts), which
 * the weight-gradient and broadcast rules upstream use.
 */
import { atomsOf, expectDist, expectScale, extremeOfK, registerPushforward } from '../quadrature.js';
import type { Confidence, PredictedDistribution, Scale } from '../scale.js';
import { scaleBy, unknownScale, varianceOf } from '../scale.js';
import {
  capped,
  constantScalar,
  constantValues,
  hasInput,
  joinNotes,
  minConfidence,
  normaliseAxis,
  numel,
  numericShape,
  outputIsFloat,
  rankOf,
  sparseGrad,
} from './shape-ops.js';
import type { BackwardContext, OpRule, RuleContext, RuleTable } from './types.js';
import { applyElementwise, UNARY } from './unary.js';
import { withCoherence } from '../coherence.js';

const INDEPENDENT = 'reduced elements assumed independent (correlated inputs, e.g. feature maps, give a larger variance)';

interface Extent {
  /** Number of elements reduced into each output; null when unknown. */
  n: number | null;
  /** The op is the identity (noop_with_empty_axes with no axes). */
  identity: boolean;
}

/** Axes from the attribute (older opsets) or the constant second input, and n = Π of their dims. */
export function reduceExtent(ctx: RuleContext): Extent {
  const op = ctx.node.opType;
  const inShape = ctx.inputTypes[0]?.shape ?? null;
  const rank = rankOf(ctx.inputTypes[0]);
  if (op.startsWith('Global')) {
    if (!inShape) return { n: null, identity: false };
    return { n: product(inShape.slice(2)), identity: false };
  }
  const axesFromInput = op === 'ReduceSum' ? ctx.opset >= 13 : ctx.opset >= 18;
  let axes: number[] | null | undefined;
  if (axesFromInput) {
    if (hasInput(ctx, 1)) {
      const v = constantValues(ctx, 1);
      if (!v) return fallbackExtent(ctx);
      axes = Array.from(v);
    } else axes = [];
  } else axes = ctx.attrs.ints('axes') ?? [];
  if (axes.length === 0) {
    if (ctx.attrs.int('noop_with_empty_axes', 0) === 1) return { n: 1, identity: true };
    if (!inShape) return fallbackExtent(ctx);
    return { n: product(inShape), identity: false };
  }
  if (!inShape || rank === null) return fallbackExtent(ctx);
  const dims = [...new Set(axes.map((a) => normaliseAxis(a, rank)))].map((a) => inShape[a] ?? null);
  return { n: product(dims), identity: false };
}

/** The reduced axes (non-negative, of the input), when known. */
export function reducedAxes(ctx: RuleContext): number[] | null {
  const op = ctx.node.opType;
  const rank = rankOf(ctx.inputTypes[0]);
  if (rank === null) return null;
  if (op.startsWith('Global')) return Array.from({ length: Math.max(0, rank - 2) }, (_, k) => k + 2);
  const axesFromInput = op === 'ReduceSum' ? ctx.opset >= 13 : ctx.opset >= 18;
  let axes: number[];
  if (axesFromInput) {
    if (hasInput(ctx, 1)) {
      const v = constantValues(ctx, 1);
      if (!v) return null;
      axes = Array.from(v);
    } else axes = [];
  } else axes = ctx.attrs.ints('axes') ?? [];
  if (axes.length === 0) return ctx.attrs.int('noop_with_empty_axes', 0) === 1 ? [] : Array.from({ length: rank }, (_, k) => k);
  return [...new Set(axes.map((a) => normaliseAxis(a, rank)))].sort((a, b) => a - b);
}

function product(dims: readonly (number | string | null)[]): number | null {
  let n = 1;
  for (const d of dims) {
    if (typeof d !== 'number') return null;
    n *= d;
  }
  return n;
}

/** When the axes or dims are not known: numel(in)/numel(out) if both shapes are numeric. */
function fallbackExtent(ctx: RuleContext): Extent {
  const a = numericShape(ctx.inputTypes[0]);
  const b = numericShape(ctx.outputTypes[0]);
  if (a && b && numel(b) > 0) return { n: numel(a) / numel(b), identity: false };
  return { n: null, identity: false };
}

function gaussian(mean: number, variance: number, confidence: Confidence, note?: string): Scale {
  const std = Math.sqrt(Math.max(0, variance));
  return {
    mean,
    meanSquare: mean * mean + Math.max(0, variance),
    dist: { kind: 'gaussian', mean, std },
    absmax: null,
    confidence,
    ...(note ? { note } : {}),
  };
}

/** Confidence of a CLT Gaussian for a sum of n terms: a Gaussian input stays exact in shape. */
function cltConfidence(x: Scale, n: number): Confidence {
  if (x.dist.kind === 'gaussian' || n >= 32) return minConfidence(x.confidence, 'high');
  return minConfidence(x.confidence, 'medium');
}

type Kind = 'mean' | 'sum' | 'sumSquare' | 'l1' | 'l2' | 'logSum' | 'logSumExp' | 'max' | 'min' | 'prod';

/** Forward Scale of a reduction of kind `kind` over n i.i.d. elements of x. */
export function reduceScale(x: Scale, n: number, kind: Kind): Scale {
  if (n <= 0) return { ...unknownScale('empty reduction'), confidence: 'low' };
  switch (kind) {
    case 'mean': {
      if (n === 1) return { ...x, exactRisk: undefined };
      const s = gaussian(x.mean, varianceOf(x) / n, cltConfidence(x, n), `mean of ${n}: ${INDEPENDENT}`);
      return { ...s, absmax: x.absmax };
    }
    case 'sum': {
      if (n === 1) return { ...x, exactRisk: undefined };
      return gaussian(n * x.mean, n * varianceOf(x), cltConfidence(x, n), `sum of ${n}: ${INDEPENDENT}`);
    }
    case 'sumSquare':
      return powerSumScale(x, n, 2, false);
    case 'l2':
      return powerSumScale(x, n, 2, true);
    case 'l1': {
      const r = expectScale(x, [Math.abs, (v) => v * v], [0]);
      const m1 = r.values[0]!;
      return gaussian(n * m1, n * Math.max(0, r.values[1]! - m1 * m1), cltConfidence(x, n), `sum of ${n} magnitudes: ${INDEPENDENT}`);
    }
    case 'logSum': {
      const s = reduceScale(x, n, 'sum');
      return applyElementwise(s, { parts: [{ weight: 1, fn: logFn() }] }, 'log');
    }
    case 'logSumExp': {
      // LSE = log Σ e^x. Law of large numbers: Σ e^x ≈ n E[e^x] ± √(n Var e^x), so
      // LSE ≈ log n + log E[e^x] with std ≈ √(Var e^x / n)/E[e^x]. It is also ≥ max x, which
      // dominates when e^x is heavy-tailed (σ large): take the larger and say which.
      const r = expectScale(x, [Math.exp, (v) => Math.exp(2 * v)]);
      const e1 = r.values[0]!;
      const e2 = r.values[1]!;
      const lln = Math.log(n) + Math.log(e1);
      const relStd = Math.sqrt(Math.max(0, e2 - e1 * e1) / n) / e1;
      const mx = reduceScale(x, n, 'max');
      let confidence: Confidence = relStd < 0.3 ? 'high' : 'medium';
      let center = lln;
      let std = Math.min(relStd, 1);
      let note = `log-sum-exp of ${n}: ${INDEPENDENT}`;
      if (!(Number.isFinite(lln)) || mx.mean > lln) {
        center = mx.mean;
        std = Math.sqrt(varianceOf(mx));
        confidence = 'medium';
        note = joinNotes(note, 'dominated by the maximum')!;
      }
      return gaussian(center, std * std, minConfidence(x.confidence, confidence), note);
    }
    case 'max':
    case 'min': {
      if (n === 1) return { ...x, exactRisk: undefined };
      const { dist, approximate } = extremeOfK(x.dist, n, kind, { mean: x.mean, meanSquare: x.meanSquare });
      const r = expectScale({ ...x, dist }, [(v) => v, (v) => v * v]);
      return {
        mean: r.values[0]!,
        meanSquare: r.values[1]!,
        dist,
        absmax: x.absmax,
        confidence: minConfidence(x.confidence, approximate ? 'medium' : 'high'),
        note: `${kind} of ${n}: ${INDEPENDENT}`,
        ...(x.fracZero !== undefined && kind === 'max' ? fracZeroOfMax(x, dist) : {}),
      };
    }
    case 'prod': {
      const big = Number.MAX_VALUE;
      let mean = Math.pow(x.mean, n);
      let meanSquare = Math.pow(x.meanSquare, n);
      let note = `product of ${n}: moments exact for independent factors, distribution heavy-tailed`;
      if (!Number.isFinite(meanSquare) || !Number.isFinite(mean)) {
        meanSquare = Math.min(meanSquare, big);
        mean = Math.max(-big, Math.min(big, Number.isFinite(mean) ? mean : Math.sign(mean) * big));
        note += '; it overflows double precision';
      }
      return gaussian(mean, Math.max(0, meanSquare - mean * mean), 'low', note);
    }
  }
}

/**
 * S = Σ|x|^p over n i.i.d. elements (ReduceSumSquare: p = 2; LpPool: any p), or its p-th root
 * (ReduceL2, LpPool). S is positive and right-skewed: a moment-matched Gamma(a, θ) in
 * Wilson–Hilferty form, aθ·(1 − 1/(9a) + z/(3√a))³ with z ~ N(0,1) — a pushforward, so the
 * root of it stays a pushforward too. When x has exact zeros (ReLU outputs) and n is small, S
 * is a mixture over the number K ~ Bin(n, 1 − P(x=0)) of non-zero terms (K = 0: exactly 0).
 * E[S] = n·E|x|^p exactly; for p = 2 and the root, E[‖x‖²] = n·E[x²] exactly as well.
 */
export function powerSumScale(x: Scale, n: number, p: number, root: boolean): Scale {
  const r = expectScale(x, [(v) => Math.abs(v) ** p, (v) => Math.abs(v) ** (2 * p), (v) => (v === 0 ? 1 : 0)], [0]);
  const mp = r.values[0]!;
  const m2p = r.values[1]!;
  const f0 = Math.min(1, r.values[2]!);
  const confidence = cltConfidence(x, n);
  const note = root ? `L${p} norm of ${n}: ${INDEPENDENT}` : `sum of ${n} |x|^${p}: ${INDEPENDENT}`;
  const exactMean = n * mp;
  if (f0 > 1e-6 && f0 < 1 && n <= 256) {
    // Conditional moments of |x|^p given x ≠ 0, then a binomial mixture over K.
    const cm = mp / (1 - f0);
    const cm2 = m2p / (1 - f0);
    const parts: { weight: number; dist: PredictedDistribution }[] = [];
    let m1 = 0;
    let m2 = 0;
    let logW = n * Math.log(f0); // K = 0
    for (let K = 0; K <= n; K++) {
      if (K > 0) logW += Math.log((n - K + 1) / K) + Math.log1p(-f0) - Math.log(f0);
      const w = Math.exp(logW);
      if (w < 1e-12) continue;
      const part = gammaForm(K * cm, K * Math.max(0, cm2 - cm * cm), p, root, K);
      parts.push({ weight: w, dist: part.dist });
      m1 += w * part.mean;
      m2 += w * part.meanSquare;
    }
    let total = 0;
    for (const q of parts) total += q.weight;
    m1 /= total;
    m2 /= total;
    const meanSquare = root && p === 2 ? exactMean : root ? m2 : exactMean * exactMean + n * Math.max(0, m2p - mp * mp);
    return { mean: root ? m1 : exactMean, meanSquare: Math.max(meanSquare, m1 * m1), dist: { kind: 'mixture', parts }, absmax: null, confidence, note, fracZero: f0 ** n };
  }
  const g = gammaForm(exactMean, n * Math.max(0, m2p - mp * mp), p, root, n);
  const meanSquare = root ? (p === 2 ? Math.max(exactMean, g.mean * g.mean) : g.meanSquare) : exactMean * exactMean + n * Math.max(0, m2p - mp * mp);
  return { mean: root ? g.mean : exactMean, meanSquare, dist: g.dist, absmax: null, confidence, note };
}

/** Wilson–Hilferty Gamma with the given mean and variance (or its p-th root): dist and moments. */
function gammaForm(mean: number, variance: number, p: number, root: boolean, n: number): { mean: number; meanSquare: number; dist: PredictedDistribution } {
  if (!(variance > 0) || !(mean > 0)) {
    const v = root ? Math.pow(Math.max(0, mean), 1 / p) : Math.max(0, mean);
    return { mean: v, meanSquare: v * v, dist: { kind: 'discrete', values: [v], weights: [1] } };
  }
  const a = (mean * mean) / variance;
  const theta = variance / mean;
  const c = 1 - 1 / (9 * a);
  const s3 = 1 / (3 * Math.sqrt(a));
  const power = root ? 3 / p : 3;
  const scale = root ? Math.pow(a * theta, 1 / p) : a * theta;
  const fn = (z: number): number => scale * Math.pow(Math.max(0, c + s3 * z), power);
  registerPushforward(fn, [-c / s3], 1);
  const dist: PredictedDistribution = { kind: 'pushforward', mean: 0, std: 1, fn, label: root ? `‖x‖${p}(${n})` : `Σ|x|^${p}(${n})` };
  const rq = expectDist(dist, [(v) => v, (v) => v * v], [0]);
  return { mean: rq.values[0]!, meanSquare: rq.values[1]!, dist };
}

function fracZeroOfMax(_x: Scale, dist: PredictedDistribution): { fracZero?: number } {
  const r = expectScale({ mean: 0, meanSquare: 1, dist, absmax: null, confidence: 'high' }, [(v) => (v === 0 ? 1 : 0)], [0]);
  const z = r.values[0]!;
  return z > 1e-12 ? { fracZero: z } : {};
}

function logFn() {
  const entry = UNARY.Log!;
  return entry(undefined as unknown as RuleContext) as import('./unary.js').ScalarFn;
}

const KIND: Record<string, Kind> = {
  ReduceMean: 'mean',
  ReduceSum: 'sum',
  ReduceSumSquare: 'sumSquare',
  ReduceL1: 'l1',
  ReduceL2: 'l2',
  ReduceLogSum: 'logSum',
  ReduceLogSumExp: 'logSumExp',
  ReduceMax: 'max',
  ReduceMin: 'min',
  ReduceProd: 'prod',
  GlobalAveragePool: 'mean',
  GlobalMaxPool: 'max',
};

function reduceForward(ctx: RuleContext): (Scale | null)[] {
  if (!outputIsFloat(ctx)) return [null];
  const x = ctx.inputs[0];
  const op = ctx.node.opType;
  if (!x) return [unknownScale(`${op}: input scale unknown`)];
  const { n, identity } = reduceExtent(ctx);
  if (identity) return [{ ...x, exactRisk: undefined }];
  if (n === null) {
    // Unknown extent: the mean keeps μ and its variance is at most σ² (n = 1); other kinds are unknown.
    const kind = KIND[op]!;
    if (kind === 'mean') return [capped(reduceScale(x, 1, 'mean'), 'low', 'reduced size unknown: variance of the mean bounded by the input’s')];
    if (kind === 'max' || kind === 'min') return [capped({ ...x, exactRisk: undefined }, 'low', 'reduced size unknown: the input’s scale')];
    return [{ ...unknownScale(`${op}: reduced size unknown`), confidence: 'unknown' }];
  }
  return [reduceScale(x, n, KIND[op]!)];
}

function reduceBackward(ctx: BackwardContext): (Scale | null)[] {
  const rest = ctx.node.inputs.slice(1).map(() => null);
  const g = ctx.outputGrads[0];
  if (!g) return [null, ...rest];
  const x = ctx.inputs[0];
  const { n, identity } = reduceExtent(ctx);
  if (identity) return [g, ...rest];
  if (n === null || !x) return [capped(g, 'low', 'reduction size unknown: gradient passed through'), ...rest];
  const kind = KIND[ctx.node.opType]!;
  // ∂x = g/n (mean) or g (sum) broadcast over the reduced axes: the same value at every reduced
  // position — fully coherent along them (coherence.ts).
  const spread = (s: Scale): Scale => {
    const axes = reducedAxes(ctx);
    return withCoherence({ ...s, exactRisk: undefined }, axes && axes.length && n > 1 ? { axes, share: 1 } : null);
  };
  switch (kind) {
    case 'mean':
      return [spread(scaleBy(g, 1 / n)), ...rest];
    case 'sum':
      return [spread(g), ...rest];
    case 'max':
    case 'min':
      // Only the arg-extreme of each group receives g.
      return [sparseGrad(g, 1 / n, `only the ${kind} of each ${n} receives a gradient`), ...rest];
    case 'sumSquare':
      // ∂x = 2x·g: E = 4 E[x²] E[g²].
      return [gaussian(2 * x.mean * g.mean, 4 * x.meanSquare * g.meanSquare - 4 * (x.mean * g.mean) ** 2, minConfidence(g.confidence, x.confidence, 'high')), ...rest];
    case 'l2':
      // ∂x = g·x/‖x‖, ‖x‖² ≈ n E[x²]: E[∂x²] ≈ E[g²]/n.
      return [gaussian(0, g.meanSquare / n, minConfidence(g.confidence, 'medium')), ...rest];
    case 'l1': {
      const s = expectScale(x, [Math.sign], [0]).values[0]!;
      return [gaussian(g.mean * s, g.meanSquare - (g.mean * s) ** 2, minConfidence(g.confidence, 'high')), ...rest];
    }
    case 'logSumExp': {
      // ∂x = g·softmax(x): E[p²] ≈ E[e^{2x}] / (n E[e^x])².
      const r = expectScale(x, [Math.exp, (v) => Math.exp(2 * v)]);
      const ep2 = r.values[1]! / (n * r.values[0]!) ** 2;
      return [gaussian(g.mean / n, Math.max(0, g.meanSquare * ep2 - (g.mean / n) ** 2), minConfidence(g.confidence, 'medium')), ...rest];
    }
    case 'logSum': {
      const s = n * x.mean;
      return [gaussian(g.mean / s, Math.max(0, g.meanSquare / (s * s) - (g.mean / s) ** 2), 'low', 'gradient of log Σx ≈ g/Σx'), ...rest];
    }
    case 'prod':
      return [capped(g, 'low', 'gradient of a product: not modelled'), ...rest];
  }
}

const reduceRule: OpRule = { forward: reduceForward, backward: reduceBackward };

// ---------------------------------------------------------------------------------------------
// TopK

/**
 * TopK values: each output element is one of the k largest (smallest) of n along the axis. A
 * random one of them is distributed as f(v)·(n/k)·P(at most k−1 of the other n−1 exceed v):
 * computed on the atoms of x's distribution, moment-matched to a Gaussian. Indices: ints.
 */
export function topKScale(x: Scale, n: number, k: number, largest: boolean): Scale {
  if (k >= n) return { ...x, exactRisk: undefined };
  const { values, probs } = atomsOf(x.dist, { mean: x.mean, meanSquare: x.meanSquare });
  let F = 0;
  let m1 = 0;
  let m2 = 0;
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    const p = probs[i]!;
    // Probability that another draw lies strictly beyond v (≈ 1 − F at the atom's midpoint).
    const beyond = largest ? Math.max(0, 1 - F - p / 2) : Math.min(1, F + p / 2);
    F += p;
    const w = p * binomialCdf(n - 1, beyond, k - 1);
    m1 += w * values[i]!;
    m2 += w * values[i]! ** 2;
    total += w;
  }
  if (!(total > 0)) return capped({ ...x, exactRisk: undefined }, 'low', 'TopK: tail not resolved');
  m1 /= total;
  m2 /= total;
  const s = gaussian(m1, m2 - m1 * m1, minConfidence(x.confidence, 'medium'), `top ${k} of ${n}: ${INDEPENDENT}`);
  return { ...s, absmax: x.absmax };
}

/** P(Bin(m, q) ≤ j), summed in logs (m up to millions). */
function binomialCdf(m: number, q: number, j: number): number {
  if (q <= 0) return 1;
  if (q >= 1) return j >= m ? 1 : 0;
  if (j >= m) return 1;
  const lp = Math.log1p(-q);
  const lq = Math.log(q);
  let logTerm = m * lp;
  let maxLog = logTerm;
  const logs: number[] = [logTerm];
  for (let i = 0; i < j; i++) {
    logTerm += Math.log((m - i) / (i + 1)) + lq - lp;
    logs.push(logTerm);
    if (logTerm > maxLog) maxLog = logTerm;
  }
  let s = 0;
  for (const l of logs) s += Math.exp(l - maxLog);
  return Math.min(1, Math.exp(maxLog) * s);
}

const topK: OpRule = {
  forward: (ctx) => {
    const x = ctx.inputs[0];
    if (!outputIsFloat(ctx, 0)) return [null, null];
    if (!x) return [unknownScale('TopK: input scale unknown'), null];
    const shape = ctx.inputTypes[0]?.shape ?? null;
    const axis = ctx.attrs.int('axis', -1);
    const n = shape ? shape[normaliseAxis(axis, shape.length)] : null;
    const k = ctx.opset < 10 ? ctx.attrs.int('k') : constantScalar(ctx, 1);
    const largest = ctx.attrs.int('largest', 1) === 1;
    if (typeof n !== 'number' || k === undefined) return [capped({ ...x, exactRisk: undefined }, 'low', 'TopK: n or k unknown'), null];
    return [topKScale(x, n, k, largest), null];
  },
  backward: (ctx) => {
    const g = ctx.outputGrads[0];
    const shape = ctx.inputTypes[0]?.shape ?? null;
    const n = shape ? shape[normaliseAxis(ctx.attrs.int('axis', -1), shape.length)] : null;
    const k = ctx.opset < 10 ? ctx.attrs.int('k') : constantScalar(ctx, 1);
    if (!g) return [null, null];
    if (typeof n !== 'number' || k === undefined) return [capped(g, 'low', 'TopK gradient: sizes unknown'), null];
    return [sparseGrad(g, Math.min(1, k / n), 'only the selected elements receive a gradient'), null];
  },
};

const argRule: OpRule = { forward: (ctx) => ctx.node.outputs.map(() => null) };

export const rules: RuleTable = {
  ...Object.fromEntries(Object.keys(KIND).map((op) => [op, reduceRule])),
  ArgMax: argRule,
  ArgMin: argRule,
  TopK: topK,
};
