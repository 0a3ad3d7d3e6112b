/**
 * One generic rule for every elementwise function y = f(x) (PRIMER §3, "Any elementwise f"; §4,
 * "Elementwise f"):
 *
 *   forward   E[y] = E[f(x)],  E[y²] = E[f(x)²]   by quadrature over x's predicted distribution
 *             (src/analysis/quadrature.ts: exact at f's kinks and jumps), and the distribution
 *             of y kept exact as f ∘ (x's Gaussian form) so the format risks stay exact;
 *   backward  ∂x = g·f'(x):  E[∂x²] = E[g²]·E[f'(x)²],  E[∂x] = E[g]·E[f'(x)]  (g independent of x).
 *
 * Each function is one line of UNARY: its value, derivative (a central difference when left
 * out), breakpoints (kinks and jumps), range (a bound on |y|), monotonicity, and poles (values
 * of x where f blows up: a Scale there gets confidence 'low' and a note instead of NaN).
 */
import type { ChannelStats } from '../channels.js';
import { coherenceOf, withCoherence } from '../coherence.js';
import type { Attributes } from '../../onnx/attributes.js';
import {
  type Breaks,
  gaussExpectMany,
  erf,
  expectScale,
  mapDist,
  normalCdf,
  normalPdf,
} from '../quadrature.js';
import type { Confidence, PredictedDistribution, Scale } from '../scale.js';
import { unknownScale } from '../scale.js';
import {
  capped,
  constantValues,
  hasInput,
  inputIsFloat,
  joinNotes,
  minConfidence,
  outputIsFloat,
  scaleOfValues,
} from './shape-ops.js';
import type { BackwardContext, OpRule, RuleContext, RuleTable } from './types.js';

/** A scalar function and what the integrator needs to know about it. */
export interface ScalarFn {
  f: (x: number) => number;
  /** f'(x); a central difference when absent. */
  d?: (x: number) => number;
  /** x-values where f has a kink or a jump (exact quadrature splits there). */
  breaks?: Breaks;
  /** [min, max] of f over its domain, when bounded on either side. */
  range?: [number, number];
  /** 1: non-decreasing, −1: non-increasing. */
  monotone?: 1 | -1;
  /** x-values where f is singular (Log, Reciprocal at 0). */
  poles?: number[];
  /** x-values where f' is singular (Sqrt at 0): matters for the backward pass only. */
  derivPoles?: number[];
  /** A closed-form output distribution for a Gaussian input (ReLU → 'rectified'). */
  onGaussian?: (mean: number, std: number) => PredictedDistribution;
}

/** What a table entry yields: one function, or a weighted mixture (PReLU with per-channel slopes). */
export interface UnarySpec {
  parts: { weight: number; fn: ScalarFn }[];
  note?: string;
  confidence?: Confidence;
}

export type UnaryEntry = (ctx: RuleContext) => ScalarFn | UnarySpec;

// ---------------------------------------------------------------------------------------------
// Scalar building blocks

const INF = Infinity;
const relu = (x: number): number => (x > 0 ? x : 0);
const step = (x: number): number => (x > 0 ? 1 : 0);
export const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));
const softplus = (x: number): number => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
const roundHalfEven = (x: number): number => (Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : Math.round(x));
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));

/** Breakpoints at k + offset for every integer k in range (Floor, Ceil: 0; Round: ½). */
const gridBreaks =
  (offset: number): Breaks =>
  (lo, hi) => {
    const a = Math.ceil(lo - offset);
    const b = Math.floor(hi - offset);
    if (!(b - a <= 4096)) return [];
    const out: number[] = [];
    for (let k = a; k <= b; k++) out.push(k + offset);
    return out;
  };

const hardSigmoid = (alpha: number, beta: number): ScalarFn => ({
  f: (x) => Math.min(1, Math.max(0, alpha * x + beta)),
  d: (x) => (alpha * x + beta > 0 && alpha * x + beta < 1 ? alpha : 0),
  breaks: alpha !== 0 ? [-beta / alpha, (1 - beta) / alpha] : [],
  range: [0, 1],
  monotone: alpha >= 0 ? 1 : -1,
});

const leaky = (alpha: number): ScalarFn => ({
  f: (x) => (x >= 0 ? x : alpha * x),
  d: (x) => (x > 0 ? 1 : alpha),
  breaks: [0],
  ...(alpha >= 0 ? { monotone: 1 as const } : {}),
});

const swish = (alpha: number): ScalarFn => ({
  f: (x) => x * sigmoid(alpha * x),
  d: (x) => {
    const s = sigmoid(alpha * x);
    return s + alpha * x * s * (1 - s);
  },
});

const elu = (alpha: number, gamma = 1): ScalarFn => ({
  f: (x) => gamma * (x > 0 ? x : alpha * Math.expm1(x)),
  d: (x) => gamma * (x > 0 ? 1 : alpha * Math.exp(x)),
  breaks: [0],
  ...(alpha >= 0 && gamma >= 0 ? { monotone: 1 as const } : {}),
});

/** Clip bounds: attributes before opset 11, optional inputs 1 and 2 after. */
function clipSpec(ctx: RuleContext): ScalarFn | UnarySpec {
  let lo = -INF;
  let hi = INF;
  const notes: string[] = [];
  if (ctx.opset < 11) {
    lo = ctx.attrs.float('min', -3.4028234663852886e38);
    hi = ctx.attrs.float('max', 3.4028234663852886e38);
  } else {
    const bound = (i: number, fallback: number): number => {
      if (!hasInput(ctx, i)) return fallback;
      const c = constantValues(ctx, i, 1);
      if (c && c.length > 0) return c[0]!;
      notes.push(`Clip ${i === 1 ? 'min' : 'max'} is not a constant: its predicted mean is used`);
      return ctx.inputs[i]?.mean ?? fallback;
    };
    lo = bound(1, -INF);
    hi = bound(2, INF);
  }
  const fn: ScalarFn = {
    f: (x) => Math.min(hi, Math.max(lo, x)),
    d: (x) => (x > lo && x < hi ? 1 : 0),
    breaks: [lo, hi].filter(Number.isFinite),
    range: [Math.min(lo, hi), hi],
    monotone: 1,
  };
  return notes.length ? { parts: [{ weight: 1, fn }], note: notes.join('; '), confidence: 'low' } : fn;
}

/** PRelu: slope tensor broadcast over x; a constant per-channel slope gives a mixture of leaky ReLUs. */
function preluSpec(ctx: RuleContext): ScalarFn | UnarySpec {
  const slopes = constantValues(ctx, 1);
  if (!slopes || slopes.length === 0) {
    const s = ctx.inputs[1];
    const a = s?.mean ?? 0.25;
    return { parts: [{ weight: 1, fn: leaky(a) }], note: 'PRelu slope not constant: its predicted mean is used', confidence: 'low' };
  }
  const counts = new Map<number, number>();
  for (const v of slopes) counts.set(v, (counts.get(v) ?? 0) + 1);
  let groups = [...counts.entries()].map(([a, c]) => ({ a, c }));
  if (groups.length > 32) {
    const sorted = Array.from(slopes).sort((p, q) => p - q);
    groups = [];
    for (let k = 0; k < 32; k++) {
      const lo = Math.floor((k * sorted.length) / 32);
      const hi = Math.floor(((k + 1) * sorted.length) / 32);
      if (hi <= lo) continue;
      let s = 0;
      for (let i = lo; i < hi; i++) s += sorted[i]!;
      groups.push({ a: s / (hi - lo), c: hi - lo });
    }
  }
  if (groups.length === 1) return leaky(groups[0]!.a);
  // Each slope value covers an equal share of the elements (per-channel broadcast).
  return { parts: groups.map((g) => ({ weight: g.c, fn: leaky(g.a) })) };
}

// ---------------------------------------------------------------------------------------------
// The table: adding a function is one line.

const a = (ctx: RuleContext): Attributes => ctx.attrs;

export const UNARY: Record<string, UnaryEntry> = {
  Relu: () => ({ f: relu, d: step, breaks: [0], range: [0, INF], monotone: 1, onGaussian: (mean, std) => ({ kind: 'rectified', mean, std }) }),
  LeakyRelu: (c) => leaky(a(c).float('alpha', 0.01)),
  PRelu: preluSpec,
  Elu: (c) => elu(a(c).float('alpha', 1)),
  Selu: (c) => elu(a(c).float('alpha', 1.67326319217681884765625), a(c).float('gamma', 1.05070102214889526367188)),
  Celu: (c) => { const al = a(c).float('alpha', 1); return { f: (x) => relu(x) + Math.min(0, al * Math.expm1(x / al)), d: (x) => (x > 0 ? 1 : Math.exp(x / al)), breaks: [0], monotone: 1 }; },
  Gelu: (c) => (a(c).string('approximate', 'none') === 'tanh' ? { f: geluTanh } : { f: (x) => x * normalCdf(x), d: (x) => normalCdf(x) + x * normalPdf(x) }),
  Swish: (c) => swish(a(c).float('alpha', 1)),
  Silu: () => swish(1),
  QuickGelu: (c) => swish(a(c).float('alpha', 1.702)),
  Sigmoid: () => ({ f: sigmoid, d: (x) => sigmoid(x) * (1 - sigmoid(x)), range: [0, 1], monotone: 1 }),
  HardSigmoid: (c) => hardSigmoid(a(c).float('alpha', 0.2), a(c).float('beta', 0.5)),
  HardSwish: () => ({ f: (x) => x * Math.min(1, Math.max(0, x / 6 + 0.5)), d: (x) => (x < -3 ? 0 : x > 3 ? 1 : (2 * x + 3) / 6), breaks: [-3, 3] }),
  Tanh: () => ({ f: Math.tanh, d: (x) => 1 - Math.tanh(x) ** 2, range: [-1, 1], monotone: 1 }),
  Erf: () => ({ f: erf, d: (x) => (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x), range: [-1, 1], monotone: 1 }),
  Exp: () => ({ f: Math.exp, d: Math.exp, range: [0, INF], monotone: 1 }),
  Log: () => ({ f: Math.log, d: (x) => 1 / x, poles: [0], monotone: 1 }),
  Sqrt: () => ({ f: Math.sqrt, d: (x) => 0.5 / Math.sqrt(x), range: [0, INF], monotone: 1, derivPoles: [0] }),
  Reciprocal: () => ({ f: (x) => 1 / x, d: (x) => -1 / (x * x), poles: [0] }),
  Abs: () => ({ f: Math.abs, d: Math.sign, breaks: [0], range: [0, INF] }),
  Neg: () => ({ f: (x) => -x, d: () => -1, monotone: -1, onGaussian: (mean, std) => ({ kind: 'gaussian', mean: -mean, std }) }),
  Softplus: () => ({ f: softplus, d: sigmoid, range: [0, INF], monotone: 1 }),
  Softsign: () => ({ f: (x) => x / (1 + Math.abs(x)), d: (x) => 1 / (1 + Math.abs(x)) ** 2, range: [-1, 1], monotone: 1 }),
  Mish: () => ({ f: (x) => x * Math.tanh(softplus(x)) }),
  Sin: () => ({ f: Math.sin, d: Math.cos, range: [-1, 1] }),
  Cos: () => ({ f: Math.cos, d: (x) => -Math.sin(x), range: [-1, 1] }),
  Atan: () => ({ f: Math.atan, d: (x) => 1 / (1 + x * x), range: [-Math.PI / 2, Math.PI / 2], monotone: 1 }),
  Asin: () => ({ f: Math.asin, d: (x) => 1 / Math.sqrt(1 - x * x), range: [-Math.PI / 2, Math.PI / 2], monotone: 1, derivPoles: [-1, 1] }),
  Acos: () => ({ f: Math.acos, d: (x) => -1 / Math.sqrt(1 - x * x), range: [0, Math.PI], monotone: -1, derivPoles: [-1, 1] }),
  Sinh: () => ({ f: Math.sinh, d: Math.cosh, monotone: 1 }),
  Cosh: () => ({ f: Math.cosh, d: Math.sinh, range: [1, INF] }),
  Asinh: () => ({ f: Math.asinh, d: (x) => 1 / Math.sqrt(x * x + 1), monotone: 1 }),
  Acosh: () => ({ f: Math.acosh, d: (x) => 1 / Math.sqrt(x * x - 1), range: [0, INF], monotone: 1, derivPoles: [1] }),
  Atanh: () => ({ f: Math.atanh, d: (x) => 1 / (1 - x * x), poles: [-1, 1], monotone: 1 }),
  Floor: () => ({ f: Math.floor, d: () => 0, breaks: gridBreaks(0), monotone: 1 }),
  Ceil: () => ({ f: Math.ceil, d: () => 0, breaks: gridBreaks(0), monotone: 1 }),
  Round: () => ({ f: roundHalfEven, d: () => 0, breaks: gridBreaks(0.5), monotone: 1 }),
  Sign: () => ({ f: Math.sign, d: () => 0, breaks: [0], range: [-1, 1], monotone: 1 }),
  Clip: clipSpec,
  ThresholdedRelu: (c) => { const al = a(c).float('alpha', 1); return { f: (x) => (x > al ? x : 0), d: (x) => (x > al ? 1 : 0), breaks: [al] }; },
  Shrink: (c) => { const l = a(c).float('lambd', 0.5), b = a(c).float('bias', 0); return { f: (x) => (x < -l ? x + b : x > l ? x - b : 0), d: (x) => (x < -l || x > l ? 1 : 0), breaks: [-l, l] }; },
};

// ---------------------------------------------------------------------------------------------
// The rule

function specOf(ctx: RuleContext): UnarySpec {
  const entry = UNARY[ctx.node.opType];
  if (!entry) throw new Error(`no elementwise function for ${ctx.node.opType}`);
  const s = entry(ctx);
  return 'parts' in s ? s : { parts: [{ weight: 1, fn: s }] };
}

function centralDifference(f: (x: number) => number): (x: number) => number {
  return (x) => {
    const h = 1e-6 * Math.max(1, Math.abs(x));
    return (f(x + h) - f(x - h)) / (2 * h);
  };
}

/** f with the neighbourhoods |x − p| < δ of its poles left out (NaN: counted as invalid mass). */
function excise(f: (x: number) => number, poles: number[] | undefined, delta: number): { f: (x: number) => number; breaks: number[] } {
  if (!poles?.length || !(delta > 0)) return { f, breaks: poles ?? [] };
  const breaks = poles.flatMap((p) => [p - delta, p, p + delta]);
  return { f: (x) => (poles.some((p) => Math.abs(x - p) < delta) ? NaN : f(x)), breaks };
}

function joinBreaks(...bs: (Breaks | undefined)[]): Breaks {
  const fixed: number[] = [];
  const fns: ((lo: number, hi: number) => number[])[] = [];
  for (const b of bs) {
    if (!b) continue;
    if (typeof b === 'function') fns.push(b);
    else fixed.push(...b);
  }
  if (fns.length === 0) return fixed;
  return (lo, hi) => [...fixed, ...fns.flatMap((f) => f(lo, hi))];
}

/** NaN → 0 and ±∞ → ±max double: the distribution stays integrable, the overflow stays visible. */
function finiteOrHuge(f: (x: number) => number): (x: number) => number {
  return (x) => {
    const y = f(x);
    if (Number.isNaN(y)) return 0;
    if (y === Infinity) return Number.MAX_VALUE;
    if (y === -Infinity) return -Number.MAX_VALUE;
    return y;
  };
}

/** Pole neighbourhood half-width: a thousandth of the input's RMS. */
function poleDelta(x: Scale): number {
  return 1e-3 * Math.sqrt(Math.max(x.meanSquare, 1e-300));
}

const INVALID_TOL = 1e-9;

function pct(p: number): string {
  return `${(100 * p).toPrecision(2)}%`;
}

/**
 * Forward scale of y = f(x) for a Scale x. Exported for the other families that apply an
 * elementwise function to a predicted tensor (activations inside RNN cells, …).
 */
export function applyElementwise(x: Scale, spec: UnarySpec, label: string): Scale {
  let total = 0;
  for (const p of spec.parts) total += p.weight;
  let m1 = 0;
  let m2 = 0;
  let zero = 0;
  let invalid = 0;
  let approximate = false;
  let absmax: number | null = 0;
  const dists: { weight: number; dist: PredictedDistribution }[] = [];
  const delta = poleDelta(x);
  const fallback = { mean: x.mean, meanSquare: x.meanSquare };
  for (const { weight, fn } of spec.parts) {
    const w = weight / (total || 1);
    const ex = excise(fn.f, fn.poles, delta);
    const breaks = joinBreaks(fn.breaks, ex.breaks);
    const fs = ex.f;
    const r = expectScale(x, [fs, (v) => fs(v) ** 2, (v) => (fs(v) === 0 ? 1 : 0)], breaks);
    const valid = 1 - r.invalid;
    if (valid > 1e-300) {
      m1 += (w * r.values[0]!) / valid;
      m2 += (w * r.values[1]!) / valid;
      zero += (w * r.values[2]!) / valid;
    }
    invalid += w * r.invalid;
    // Distribution of y.
    let dist: PredictedDistribution;
    if (fn.onGaussian && (x.dist.kind === 'gaussian' || (x.dist.kind === 'rectified' && label === 'Relu'))) {
      dist = x.dist.kind === 'gaussian' ? fn.onGaussian(x.dist.mean, x.dist.std) : x.dist;
    } else {
      const m = mapDist(x.dist, finiteOrHuge(fn.f), label, breaks, fallback, fn.monotone ?? 0);
      dist = m.dist;
      approximate ||= m.approximate;
    }
    dists.push({ weight: w, dist });
    // Bound on |y|.
    let bound: number | null = null;
    if (fn.range && Number.isFinite(fn.range[0]) && Number.isFinite(fn.range[1])) bound = Math.max(Math.abs(fn.range[0]), Math.abs(fn.range[1]));
    if (x.absmax !== null && fn.monotone) {
      const b = Math.max(Math.abs(fn.f(-x.absmax)), Math.abs(fn.f(x.absmax)));
      if (Number.isFinite(b)) bound = bound === null ? b : Math.min(bound, b);
    }
    absmax = absmax === null || bound === null ? null : Math.max(absmax, bound);
  }
  const exactInput = x.dist.kind === 'discrete' && x.confidence === 'exact';
  let confidence = minConfidence(x.confidence, exactInput ? 'exact' : 'high', approximate ? 'medium' : undefined, spec.confidence);
  let note = joinNotes(spec.note, approximate ? `${label}: input shape unknown, moment-matched Gaussian used` : undefined);
  if (invalid > INVALID_TOL) {
    confidence = minConfidence(confidence, 'low');
    note = joinNotes(note, `${label}: ${pct(invalid)} of the input lies outside the domain or near a pole; moments are over the rest`);
  }
  if (invalid >= 1 - 1e-12) return { ...unknownScale(`${label}: the whole input lies outside the domain`), confidence: 'low' };
  const dist: PredictedDistribution = dists.length === 1 ? dists[0]!.dist : { kind: 'mixture', parts: dists };
  return {
    mean: m1,
    meanSquare: Math.max(m2, m1 * m1),
    dist,
    absmax,
    confidence,
    ...(zero > 1e-12 ? { fracZero: Math.min(1, zero) } : {}),
    ...(note ? { note } : {}),
  };
}

function forward(ctx: RuleContext): (Scale | null)[] {
  const label = ctx.node.opType;
  if (!outputIsFloat(ctx)) return ctx.node.outputs.map(() => null);
  const spec = specOf(ctx);
  // A constant input: apply f to the real values.
  if (spec.parts.length === 1 && inputIsFloat(ctx, 0, false)) {
    const vals = constantValues(ctx, 0, 1 << 22);
    if (vals) {
      const f = spec.parts[0]!.fn.f;
      const out = new Float64Array(vals.length);
      for (let i = 0; i < vals.length; i++) out[i] = f(vals[i]!);
      const s = scaleOfValues(out);
      return [spec.confidence ? capped(s, spec.confidence, spec.note) : s];
    }
  }
  const x = ctx.inputs[0];
  if (!x) return [unknownScale(`${label}: input scale unknown`)];
  return [applyElementwise(x, spec, label)];
}

/** Backward: E[∂x²] = E[g²]·E[f'(x)²]; positions where f' = 0 get exact zeros. */
function backward(ctx: BackwardContext): (Scale | null)[] {
  const rest = ctx.node.inputs.slice(1).map(() => null);
  const g = ctx.outputGrads[0];
  if (!g) return [null, ...rest];
  const x = ctx.inputs[0];
  if (!x) return [capped(g, 'low', `${ctx.node.opType}: input scale unknown, gradient passed through`), ...rest];
  const spec = specOf(ctx);
  let total = 0;
  for (const p of spec.parts) total += p.weight;
  let d1 = 0;
  let d2 = 0;
  let zero = 0;
  let invalid = 0;
  const delta = poleDelta(x);
  const derivs: { w: number; f: (v: number) => number; breaks: Breaks }[] = [];
  for (const { weight, fn } of spec.parts) {
    const w = weight / (total || 1);
    const d = fn.d ?? centralDifference(fn.f);
    const ex = excise(d, [...(fn.poles ?? []), ...(fn.derivPoles ?? [])], delta);
    derivs.push({ w, f: ex.f, breaks: joinBreaks(fn.breaks, ex.breaks) });
    const r = expectScale(x, [ex.f, (v) => ex.f(v) ** 2, (v) => (ex.f(v) === 0 ? 1 : 0)], joinBreaks(fn.breaks, ex.breaks));
    const valid = 1 - r.invalid;
    if (valid > 1e-300) {
      d1 += (w * r.values[0]!) / valid;
      d2 += (w * r.values[1]!) / valid;
      zero += (w * r.values[2]!) / valid;
    }
    invalid += w * r.invalid;
  }
  const mean = g.mean * d1;
  const meanSquare = g.meanSquare * d2;
  let confidence = minConfidence(g.confidence, x.confidence, 'high', spec.confidence);
  let note: string | undefined = spec.note;
  if (invalid > INVALID_TOL) {
    confidence = minConfidence(confidence, 'low');
    note = joinNotes(note, `${ctx.node.opType} gradient: ${pct(invalid)} of the input is near a singularity of f'`);
  }
  let dist: PredictedDistribution;
  if (zero > 1e-9 && zero < 1) {
    const cm = mean / (1 - zero);
    const cs = Math.sqrt(Math.max(0, meanSquare / (1 - zero) - cm * cm));
    dist = {
      kind: 'mixture',
      parts: [
        { weight: zero, dist: { kind: 'discrete', values: [0], weights: [1] } },
        { weight: 1 - zero, dist: { kind: 'gaussian', mean: cm, std: cs } },
      ],
    };
  } else if (zero >= 1) {
    dist = { kind: 'discrete', values: [0], weights: [1] };
  } else {
    dist = { kind: 'gaussian', mean, std: Math.sqrt(Math.max(0, meanSquare - mean * mean)) };
  }
  const out: Scale = {
    mean,
    meanSquare: Math.max(meanSquare, mean * mean),
    dist,
    absmax: null,
    confidence,
    ...(zero > 1e-9 ? { fracZero: Math.min(1, zero) } : {}),
    ...(note ? { note } : {}),
  };
  // A coherent part c of g (constant along some axes) gives c·f'(x), whose part constant along
  // them is c·E[f'(x)] — per channel when x's channels differ (coherence.ts): the share becomes
  // κ·E_c[E[f'|c]²]/E[f'²].
  const coh = coherenceOf(g);
  if (!coh || !(d2 > 0)) return [withCoherence(out, null), ...rest];
  const e1sq = channelDerivativePower(ctx.channels?.(0) ?? null, coh.axes, derivs) ?? d1 * d1;
  return [withCoherence(out, { axes: coh.axes, share: (coh.share * Math.min(e1sq, d2)) / d2 }), ...rest];
}

/** Largest channel count for which E[f'] is integrated per channel. */
const CHANNEL_DERIV_LIMIT = 4096;

/**
 * E_c[(E[f'(x_c)])²] over the channels of x (each ~ N(μ_c, v_c)), when the channel axis is not
 * among the coherent axes; null when x has no Gaussian channel view.
 */
function channelDerivativePower(ch: ChannelStats | null, axes: number[], derivs: { w: number; f: (v: number) => number; breaks: Breaks }[]): number | null {
  if (!ch || !ch.gaussian || axes.includes(ch.axis) || (ch.minor !== undefined && axes.includes(ch.minor))) return null;
  const C = ch.mean.length;
  if (C === 0 || C > CHANNEL_DERIV_LIMIT) return null;
  let acc = 0;
  for (let c = 0; c < C; c++) {
    const mu = ch.mean[c]!;
    const sd = Math.sqrt(Math.max(0, ch.ms[c]! - mu * mu));
    let e = 0;
    for (const d of derivs) {
      const r = gaussExpectMany(mu, sd, [d.f], d.breaks);
      const ok = 1 - r.invalid;
      e += d.w * (ok > 0 ? r.values[0]! / ok : 0);
    }
    acc += e * e;
  }
  return acc / C;
}

const elementwise: OpRule = { forward, backward };

export const rules: RuleTable = Object.fromEntries(Object.keys(UNARY).map((op) => [op, elementwise]));
