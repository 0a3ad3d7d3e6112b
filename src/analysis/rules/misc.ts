/**
 * The leftovers: ops that are neither matmul-like, normalising, elementwise nor reshaping.
 *
 * - LRN: y = x / (bias + α/size·Σ_window x²)^β; the window sum of squares concentrates at
 *   size·E[x²], so y ≈ x / (bias + α·E[x²])^β ('medium').
 * - CumSum: element j of an axis of length L sums j+1 terms (j for exclusive): E[y_j²] =
 *   (j+1)σ² + (j+1)²μ², averaged over j (a variance growing with the position).
 * - Trilu: the kept triangle keeps x, the rest are exact zeros (share from the last two dims).
 * - OneHot: {off, on} with shares (d−1)/d and 1/d; EyeLike, Hardmax likewise.
 * - Scatter*: a mixture of data and updates, weighted by how many positions the updates hit.
 * - RNN / GRU / LSTM: hidden states are bounded by tanh; their scale from the steady state of the
 *   recurrences with Gaussian pre-activations (moments of W, R, B from the initializers), by
 *   quadrature of the gate non-linearities — independent units assumed: 'low'.
 * - Mod by a constant: an elementwise function with a jump at every multiple of the divisor.
 * - RandomNormal / RandomUniform (and …Like), Bernoulli: the distribution they draw from.
 * - Comparisons and other boolean/integer ops: no scale.
 */
import { DataType, isFloatType } from '../../onnx/dtype.js';
import { gaussExpectPiecewise } from '../quadrature.js';
import type { PredictedDistribution, Scale } from '../scale.js';
import { scaleBy, unknownScale, varianceOf } from '../scale.js';
import {
  capped,
  constantScalar,
  constantValues,
  hasInput,
  minConfidence,
  mixtureScale,
  normaliseAxis,
  numel,
  numericShape,
  outputIsFloat,
  sparseGrad,
  zeroScale,
} from './shape-ops.js';
import type { OpRule, RuleContext, RuleTable } from './types.js';
import { applyElementwise, sigmoid, UNARY, type ScalarFn } from './unary.js';

function gaussianMoments(mean: number, meanSquare: number, confidence: Scale['confidence'], note?: string, absmax: number | null = null): Scale {
  const std = Math.sqrt(Math.max(0, meanSquare - mean * mean));
  return { mean, meanSquare: Math.max(meanSquare, mean * mean), dist: { kind: 'gaussian', mean, std }, absmax, confidence, ...(note ? { note } : {}) };
}

// ---------------------------------------------------------------------------------------------

/**
 * LRN: y = x / (bias + α/size·Σ_window x²)^β, the window over channels
 * [c − ⌊(size−1)/2⌋, c + ⌈(size−1)/2⌉] clipped to the C channels. x's own term is kept exact and
 * the m−1 neighbours' squares are replaced by their mean (m−1)·E[x²], so at each window size m
 * y = f_m(x) = x / (bias + α/size·(x² + (m−1)E[x²]))^β: the generic rule on a mixture over m.
 */
function lrnSpec(ctx: RuleContext, m2: number): { weight: number; fn: ScalarFn }[] {
  const alpha = ctx.attrs.float('alpha', 1e-4);
  const beta = ctx.attrs.float('beta', 0.75);
  const bias = ctx.attrs.float('bias', 1);
  const size = ctx.attrs.int('size', 1);
  const C = ctx.inputTypes[0]?.shape?.[1];
  const counts = new Map<number, number>();
  if (typeof C === 'number' && C > 0) {
    const lo = Math.floor((size - 1) / 2);
    const hi = Math.ceil((size - 1) / 2);
    for (let c = 0; c < C; c++) {
      const m = Math.min(C - 1, c + hi) - Math.max(0, c - lo) + 1;
      counts.set(m, (counts.get(m) ?? 0) + 1);
    }
  } else counts.set(size, 1);
  return [...counts.entries()].map(([m, w]) => {
    const rest = (m - 1) * m2;
    return { weight: w, fn: { f: (v: number) => v / Math.pow(bias + (alpha / size) * (v * v + rest), beta), monotone: 1 as const } };
  });
}

const lrn: OpRule = {
  forward: (ctx) => {
    const x = ctx.inputs[0];
    if (!outputIsFloat(ctx)) return [null];
    if (!x) return [unknownScale('LRN: input scale unknown')];
    const y = applyElementwise(x, { parts: lrnSpec(ctx, x.meanSquare) }, 'LRN');
    return [capped(y, 'medium', 'LRN: neighbours’ squares replaced by their mean')];
  },
  backward: (ctx) => {
    const g = ctx.outputGrads[0];
    const x = ctx.inputs[0];
    if (!g || !x) return [g ? capped(g, 'low') : null];
    const d = Math.pow(ctx.attrs.float('bias', 1) + ctx.attrs.float('alpha', 1e-4) * x.meanSquare, ctx.attrs.float('beta', 0.75));
    return [capped(scaleBy(g, 1 / d), 'medium')];
  },
};

/** CumSum over an axis of length L: a mixture over positions of sums of j terms. */
const cumSum: OpRule = {
  forward: (ctx) => {
    const x = ctx.inputs[0];
    if (!outputIsFloat(ctx)) return [null];
    if (!x) return [unknownScale('CumSum: input scale unknown')];
    const shape = ctx.inputTypes[0]?.shape ?? null;
    const axis = constantScalar(ctx, 1);
    const L = shape && axis !== undefined ? shape[normaliseAxis(axis, shape.length)] : null;
    if (typeof L !== 'number') return [{ ...unknownScale('CumSum: axis length unknown'), confidence: 'low' }];
    const exclusive = ctx.attrs.int('exclusive', 0) === 1;
    const mu = x.mean;
    const v = varianceOf(x);
    // Up to 16 groups of consecutive positions, each a Gaussian N(cμ, cσ²) at its mean count c.
    const groups = Math.min(16, L);
    const parts: { weight: number; scale: Scale }[] = [];
    for (let gi = 0; gi < groups; gi++) {
      const a = Math.floor((gi * L) / groups);
      const b = Math.floor(((gi + 1) * L) / groups);
      if (b <= a) continue;
      let m1 = 0;
      let m2 = 0;
      for (let j = a; j < b; j++) {
        const c = exclusive ? j : j + 1;
        m1 += c * mu;
        m2 += c * v + c * c * mu * mu;
      }
      m1 /= b - a;
      m2 /= b - a;
      parts.push({ weight: b - a, scale: gaussianMoments(m1, m2, minConfidence(x.confidence, 'high')) });
    }
    return [mixtureScale(parts, `cumulative sum over ${L}: elements assumed independent`)];
  },
  backward: (ctx) => {
    const g = ctx.outputGrads[0];
    if (!g) return [null, null];
    // ∂x_j = Σ_{k ≥ j} g_k: the same growth, reversed.
    const shape = ctx.inputTypes[0]?.shape ?? null;
    const axis = constantScalar(ctx, 1);
    const L = shape && axis !== undefined ? shape[normaliseAxis(axis, shape.length)] : null;
    if (typeof L !== 'number') return [capped(g, 'low', 'CumSum gradient: axis length unknown'), null];
    const mean = ((L + 1) / 2) * g.mean;
    const variance = ((L + 1) / 2) * varianceOf(g) + ((L * L - 1) / 12) * g.mean * g.mean;
    return [gaussianMoments(mean, mean * mean + variance, minConfidence(g.confidence, 'medium')), null];
  },
};

/** Share of the last two dims kept by Trilu (upper: j − i ≥ k; lower: j − i ≤ k). */
export function triluKeptShare(N: number, M: number, k: number, upper: boolean): number {
  let kept = 0;
  for (let i = 0; i < N; i++) {
    // upper: j ≥ i + k; lower: j ≤ i + k
    const count = upper ? M - Math.min(M, Math.max(0, i + k)) : Math.min(M, Math.max(0, i + k + 1));
    kept += count;
  }
  return kept / (N * M);
}

const trilu: OpRule = {
  forward: (ctx) => {
    const x = ctx.inputs[0];
    if (!outputIsFloat(ctx)) return [null];
    if (!x) return [unknownScale('Trilu: input scale unknown')];
    const shape = numericShape(ctx.inputTypes[0]);
    const k = hasInput(ctx, 1) ? constantScalar(ctx, 1) : 0;
    const upper = ctx.attrs.int('upper', 1) === 1;
    if (!shape || shape.length < 2 || k === undefined) {
      return [capped(mixtureScale([{ weight: 1, scale: x }, { weight: 1, scale: zeroScale() }]), 'medium', 'Trilu: matrix size unknown, half kept')];
    }
    const share = triluKeptShare(shape[shape.length - 2]!, shape[shape.length - 1]!, k, upper);
    return [mixtureScale([{ weight: share, scale: x }, { weight: 1 - share, scale: zeroScale() }], `Trilu keeps ${(100 * share).toPrecision(3)}%`)];
  },
  backward: (ctx) => {
    const g = ctx.outputGrads[0];
    if (!g) return [null, null];
    const shape = numericShape(ctx.inputTypes[0]);
    const k = hasInput(ctx, 1) ? constantScalar(ctx, 1) : 0;
    if (!shape || shape.length < 2 || k === undefined) return [capped(g, 'low'), null];
    return [sparseGrad(g, triluKeptShare(shape[shape.length - 2]!, shape[shape.length - 1]!, k, ctx.attrs.int('upper', 1) === 1)), null];
  },
};

function twoValues(off: number, on: number, pOn: number, confidence: Scale['confidence'] = 'exact', note?: string): Scale {
  const mean = off * (1 - pOn) + on * pOn;
  const meanSquare = off * off * (1 - pOn) + on * on * pOn;
  const zero = (off === 0 ? 1 - pOn : 0) + (on === 0 ? pOn : 0);
  return {
    mean,
    meanSquare,
    dist: { kind: 'discrete', values: [off, on], weights: [1 - pOn, pOn] },
    absmax: Math.max(Math.abs(off), Math.abs(on)),
    confidence,
    ...(zero > 0 ? { fracZero: zero } : {}),
    ...(note ? { note } : {}),
  };
}

const oneHot: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx, 0, false)) return [null];
    const depth = constantScalar(ctx, 1);
    const values = constantValues(ctx, 2);
    const off = values?.[0] ?? 0;
    const on = values?.[1] ?? 1;
    if (depth === undefined || depth <= 0) return [twoValues(off, on, 0.5, 'low', 'OneHot: depth unknown')];
    return [twoValues(off, on, 1 / depth, values ? 'exact' : 'low')];
  },
};

const eyeLike: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx, 0, true)) return [null];
    const shape = numericShape(ctx.inputTypes[0]);
    if (!shape || shape.length !== 2) return [twoValues(0, 1, 0.1, 'low', 'EyeLike: size unknown')];
    const [N, M] = shape as [number, number];
    const k = ctx.attrs.int('k', 0);
    let ones = 0;
    for (let i = 0; i < N; i++) if (i + k >= 0 && i + k < M) ones++;
    return [twoValues(0, 1, ones / (N * M))];
  },
};

const hardmax: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx)) return [null];
    const shape = ctx.inputTypes[0]?.shape ?? null;
    const axis = ctx.attrs.int('axis', ctx.opset >= 13 ? -1 : 1);
    let n: number | null = null;
    if (shape) {
      if (ctx.opset >= 13) {
        const d = shape[normaliseAxis(axis, shape.length)];
        n = typeof d === 'number' ? d : null;
      } else {
        const tail = shape.slice(normaliseAxis(axis, shape.length));
        n = tail.every((d): d is number => typeof d === 'number') ? numel(tail) : null;
      }
    }
    return [n ? twoValues(0, 1, 1 / n) : twoValues(0, 1, 0.1, 'low', 'Hardmax: size unknown')];
  },
};

/** Scatter: data everywhere except the positions the updates write. */
const scatter: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx)) return [null];
    const data = ctx.inputs[0] ?? unknownScale('Scatter: data scale unknown');
    const updIndex = 2;
    const upd = ctx.inputs[updIndex] ?? unknownScale('Scatter: updates scale unknown');
    const dShape = numericShape(ctx.inputTypes[0]);
    const uShape = numericShape(ctx.inputTypes[updIndex]);
    const share = dShape && uShape ? Math.min(1, numel(uShape) / Math.max(1, numel(dShape))) : null;
    const reduction = ctx.attrs.string('reduction', 'none');
    let written: Scale = upd;
    if (reduction === 'add') {
      const mean = data.mean + upd.mean;
      written = gaussianMoments(mean, mean * mean + varianceOf(data) + varianceOf(upd), minConfidence(data.confidence, upd.confidence, 'medium'));
    } else if (reduction === 'mul') {
      written = gaussianMoments(data.mean * upd.mean, data.meanSquare * upd.meanSquare, minConfidence(data.confidence, upd.confidence, 'medium'));
    } else if (reduction !== 'none') {
      written = capped(upd, 'low', `Scatter reduction '${reduction}' approximated by the updates`);
    }
    if (share === null) return [capped(mixtureScale([{ weight: 1, scale: data }, { weight: 1, scale: written }]), 'low', 'Scatter: sizes unknown')];
    return [mixtureScale([{ weight: 1 - share, scale: data }, { weight: share, scale: written }])];
  },
};

/** Mod by a constant divisor: an elementwise function (generic rule), jumps at multiples of it. */
const mod: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx, 0, false)) return [null];
    const x = ctx.inputs[0];
    const c = constantValues(ctx, 1, 1);
    if (!x || !c || c[0] === 0) return [{ ...unknownScale('Mod: operands not modelled'), confidence: 'low' }];
    const b = c[0]!;
    const fmod = ctx.attrs.int('fmod', 0) === 1;
    const fn: ScalarFn = {
      f: fmod ? (v) => v % b : (v) => v - b * Math.floor(v / b),
      d: () => 1,
      breaks: (lo, hi) => {
        const a = Math.ceil(Math.min(lo / b, hi / b));
        const e = Math.floor(Math.max(lo / b, hi / b));
        if (!(e - a <= 4096)) return [];
        const out: number[] = [];
        for (let k = a; k <= e; k++) out.push(k * b);
        return out;
      },
      range: [-Math.abs(b), Math.abs(b)],
    };
    return [applyElementwise(x, { parts: [{ weight: 1, fn }] }, 'Mod')];
  },
};

// ---------------------------------------------------------------------------------------------
// Random generators

function attrDtype(ctx: RuleContext, fallback: number): number {
  return ctx.attrs.int('dtype', fallback);
}

const randomNormal: OpRule = {
  forward: (ctx) => {
    const like = ctx.node.opType.endsWith('Like');
    const dtype = like ? attrDtype(ctx, ctx.inputTypes[0]?.dtype ?? DataType.FLOAT) : attrDtype(ctx, DataType.FLOAT);
    if (!isFloatType(dtype)) return [null];
    const mean = ctx.attrs.float('mean', 0);
    const std = ctx.attrs.float('scale', 1);
    return [{ mean, meanSquare: mean * mean + std * std, dist: { kind: 'gaussian', mean, std }, absmax: null, confidence: 'exact' }];
  },
};

const randomUniform: OpRule = {
  forward: (ctx) => {
    const like = ctx.node.opType.endsWith('Like');
    const dtype = like ? attrDtype(ctx, ctx.inputTypes[0]?.dtype ?? DataType.FLOAT) : attrDtype(ctx, DataType.FLOAT);
    if (!isFloatType(dtype)) return [null];
    const lo = ctx.attrs.float('low', 0);
    const hi = ctx.attrs.float('high', 1);
    return [{ mean: (lo + hi) / 2, meanSquare: (lo * lo + lo * hi + hi * hi) / 3, dist: { kind: 'uniform', lo, hi }, absmax: Math.max(Math.abs(lo), Math.abs(hi)), confidence: 'exact' }];
  },
};

const bernoulli: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx, 0, true)) return [null];
    const p = ctx.inputs[0];
    const pm = p ? Math.min(1, Math.max(0, p.mean)) : 0.5;
    return [twoValues(0, 1, pm, p ? minConfidence(p.confidence, 'high') : 'low')];
  },
};

// ---------------------------------------------------------------------------------------------
// Recurrent cells

interface GateStats {
  /** E[w], E[w²] of the input weights and recurrent weights of one gate, per direction merged. */
  w1: number;
  w2: number;
  r1: number;
  r2: number;
  /** E[b], E[b²] of the combined bias Wb + Rb. */
  b1: number;
  b2: number;
}

/** Per-gate moments of W [dirs, G·H, I], R [dirs, G·H, H], B [dirs, 2·G·H]. */
function gateStats(ctx: RuleContext, gates: number, hidden: number): { stats: GateStats[]; known: boolean } {
  const W = constantValues(ctx, 1);
  const R = constantValues(ctx, 2);
  const B = hasInput(ctx, 3) ? constantValues(ctx, 3) : null;
  const wShape = ctx.constant(1)?.dims ?? numericShape(ctx.inputTypes[1]);
  const I = wShape ? wShape[2] ?? 1 : 1;
  const stats: GateStats[] = [];
  let known = !!(W && R);
  for (let g = 0; g < gates; g++) {
    const s: GateStats = { w1: 0, w2: 1 / Math.max(1, I), r1: 0, r2: 1 / Math.max(1, hidden), b1: 0, b2: 0 };
    if (W && R) {
      const dirs = Math.max(1, Math.round(W.length / (gates * hidden * I)));
      let n = 0;
      let a1 = 0;
      let a2 = 0;
      for (let d = 0; d < dirs; d++) {
        const base = d * gates * hidden * I + g * hidden * I;
        for (let k = 0; k < hidden * I && base + k < W.length; k++) {
          const v = W[base + k]!;
          a1 += v;
          a2 += v * v;
          n++;
        }
      }
      s.w1 = n ? a1 / n : 0;
      s.w2 = n ? a2 / n : 0;
      n = 0;
      a1 = 0;
      a2 = 0;
      for (let d = 0; d < dirs; d++) {
        const base = d * gates * hidden * hidden + g * hidden * hidden;
        for (let k = 0; k < hidden * hidden && base + k < R.length; k++) {
          const v = R[base + k]!;
          a1 += v;
          a2 += v * v;
          n++;
        }
      }
      s.r1 = n ? a1 / n : 0;
      s.r2 = n ? a2 / n : 0;
    }
    if (B) {
      const dirs = Math.max(1, Math.round(B.length / (2 * gates * hidden)));
      let n = 0;
      let a1 = 0;
      let a2 = 0;
      for (let d = 0; d < dirs; d++) {
        for (let u = 0; u < hidden; u++) {
          const wb = B[d * 2 * gates * hidden + g * hidden + u] ?? 0;
          const rb = B[d * 2 * gates * hidden + gates * hidden + g * hidden + u] ?? 0;
          a1 += wb + rb;
          a2 += (wb + rb) ** 2;
          n++;
        }
      }
      s.b1 = n ? a1 / n : 0;
      s.b2 = n ? a2 / n : 0;
    } else if (hasInput(ctx, 3)) known = false;
    stats.push(s);
  }
  return { stats, known };
}

/** Pre-activation N(m, v) of a gate: Σ_I x w + Σ_H h r + b (PRIMER §3 matmul rule). */
function preact(s: GateStats, I: number, x1: number, x2: number, H: number, h1: number, h2: number, hScale = 1): { mean: number; std: number } {
  const mm = I * x1 * s.w1 + H * h1 * s.r1 * hScale;
  const sq = I * x2 * s.w2 + I * (I - 1) * x1 * x1 * s.w1 * s.w1 + (H * h2 * s.r2 + H * (H - 1) * h1 * h1 * s.r1 * s.r1) * hScale * hScale;
  const mean = s.b1 + mm;
  const meanSquare = s.b2 + 2 * s.b1 * mm + sq;
  return { mean, std: Math.sqrt(Math.max(0, meanSquare - mean * mean)) };
}

function moments(f: (x: number) => number, p: { mean: number; std: number }, breaks: number[] = []): [number, number] {
  return [gaussExpectPiecewise(p.mean, p.std, f, breaks), gaussExpectPiecewise(p.mean, p.std, (x) => f(x) ** 2, breaks)];
}

/** The activation named in `activations` at index i (default by the op's definition). */
function activation(ctx: RuleContext, i: number, fallback: 'Sigmoid' | 'Tanh'): { f: (x: number) => number; known: boolean } {
  const names = ctx.attrs.strings('activations');
  const name = names?.[i] ?? fallback;
  if (name === 'Sigmoid') return { f: sigmoid, known: true };
  if (name === 'Tanh') return { f: Math.tanh, known: true };
  const entry = UNARY[name];
  if (entry) {
    try {
      const spec = entry(ctx);
      const fn = 'parts' in spec ? spec.parts[0]!.fn : spec;
      return { f: fn.f, known: true };
    } catch {
      /* fall through */
    }
  }
  return { f: fallback === 'Sigmoid' ? sigmoid : Math.tanh, known: false };
}

/** A bounded hidden-state law with E[h²] = m2: tanh(τz), τ chosen by bisection. */
function boundedScale(mean: number, m2: number, note: string): Scale {
  const target = Math.min(0.999, Math.max(1e-12, m2));
  let lo = 0;
  let hi = 50;
  for (let it = 0; it < 80; it++) {
    const mid = 0.5 * (lo + hi);
    if (gaussExpectPiecewise(0, mid, (x) => Math.tanh(x) ** 2) < target) lo = mid;
    else hi = mid;
  }
  const tau = 0.5 * (lo + hi);
  const dist: PredictedDistribution = { kind: 'pushforward', mean: 0, std: tau, fn: Math.tanh, label: 'tanh' };
  return { mean, meanSquare: Math.max(m2, mean * mean), dist, absmax: 1, confidence: 'low', note };
}

function recurrent(kind: 'RNN' | 'GRU' | 'LSTM'): OpRule {
  return {
    forward: (ctx) => {
      const outs: (Scale | null)[] = ctx.node.outputs.map(() => null);
      if (!outputIsFloat(ctx)) return outs;
      const x = ctx.inputs[0];
      const H = ctx.attrs.int('hidden_size', 0) || (numericShape(ctx.inputTypes[2])?.[2] ?? 0);
      const xShape = ctx.inputTypes[0]?.shape ?? null;
      const layout = ctx.attrs.int('layout', 0);
      const T = xShape ? xShape[layout === 0 ? 0 : 1] : null;
      const I = (xShape && typeof xShape[2] === 'number' ? xShape[2] : null) ?? ctx.constant(1)?.dims[2] ?? 1;
      if (!x || !H) {
        ctx.node.outputs.forEach((_, i) => (outs[i] = { ...unknownScale(`${kind}: input or hidden size unknown`), confidence: 'low' }));
        return outs;
      }
      const gates = kind === 'LSTM' ? 4 : kind === 'GRU' ? 3 : 1;
      const { stats, known } = gateStats(ctx, gates, H);
      const f = activation(ctx, 0, kind === 'RNN' ? 'Tanh' : 'Sigmoid');
      const g = activation(ctx, 1, 'Tanh');
      const hAct = activation(ctx, 2, 'Tanh');
      const steps = typeof T === 'number' && T > 0 ? Math.min(T, 2000) : 200;
      const h0 = hasInput(ctx, 5) ? ctx.inputs[5] : null;
      const c0 = kind === 'LSTM' && hasInput(ctx, 6) ? ctx.inputs[6] : null;
      let h1 = h0?.mean ?? 0;
      let h2 = h0?.meanSquare ?? 0;
      let c1 = c0?.mean ?? 0;
      let c2 = c0?.meanSquare ?? 0;
      let sumH1 = 0;
      let sumH2 = 0;
      for (let t = 0; t < steps; t++) {
        if (kind === 'RNN') {
          [h1, h2] = moments(f.f, preact(stats[0]!, I, x.mean, x.meanSquare, H, h1, h2));
        } else if (kind === 'GRU') {
          // gates z, r, h (ONNX order zrh)
          const [z1, z2] = moments(f.f, preact(stats[0]!, I, x.mean, x.meanSquare, H, h1, h2));
          const [r1, r2] = moments(f.f, preact(stats[1]!, I, x.mean, x.meanSquare, H, h1, h2));
          // the candidate sees r⊙h: E[(r h)²] = E[r²]E[h²]
          const [n1, n2] = moments(g.f, preact(stats[2]!, I, x.mean, x.meanSquare, H, r1 * h1, r2 * h2));
          const nh1 = (1 - z1) * n1 + z1 * h1;
          const nh2 = (1 - 2 * z1 + z2) * n2 + z2 * h2 + 2 * (z1 - z2) * n1 * h1;
          h1 = nh1;
          h2 = nh2;
        } else {
          // gates i, o, f, c (ONNX order iofc)
          const [i1, i2] = moments(f.f, preact(stats[0]!, I, x.mean, x.meanSquare, H, h1, h2));
          const [o1, o2] = moments(f.f, preact(stats[1]!, I, x.mean, x.meanSquare, H, h1, h2));
          const [f1, f2] = moments(f.f, preact(stats[2]!, I, x.mean, x.meanSquare, H, h1, h2));
          const [g1, g2] = moments(g.f, preact(stats[3]!, I, x.mean, x.meanSquare, H, h1, h2));
          const nc1 = f1 * c1 + i1 * g1;
          const nc2 = f2 * c2 + i2 * g2 + 2 * f1 * c1 * i1 * g1;
          c1 = nc1;
          c2 = nc2;
          const cStd = Math.sqrt(Math.max(0, c2 - c1 * c1));
          const [t1, t2] = moments(hAct.f, { mean: c1, std: cStd });
          h1 = o1 * t1;
          h2 = o2 * t2;
        }
        sumH1 += h1;
        sumH2 += h2;
      }
      const note = `${kind}: recurrence of moments over ${steps} steps with independent Gaussian pre-activations${known ? '' : ' (weights not constant: unit-scale weights assumed)'}${f.known && g.known && hAct.known ? '' : '; an activation is not modelled'}`;
      const Y = boundedScale(sumH1 / steps, sumH2 / steps, note);
      const Yh = boundedScale(h1, h2, note);
      if (outputIsFloat(ctx, 0)) outs[0] = Y;
      if (outs.length > 1 && outputIsFloat(ctx, 1)) outs[1] = Yh;
      if (kind === 'LSTM' && outs.length > 2 && outputIsFloat(ctx, 2)) {
        outs[2] = { ...gaussianMoments(c1, c2, 'low', note) };
      }
      return outs;
    },
  };
}

// ---------------------------------------------------------------------------------------------

const noScale: OpRule = { forward: (ctx) => ctx.node.outputs.map(() => null) };

const sameScale = (note: string): OpRule => ({
  forward: (ctx) => {
    if (!outputIsFloat(ctx)) return [null];
    const x = ctx.inputs[0];
    return [x ? capped({ ...x, exactRisk: undefined }, 'medium', note) : unknownScale(note)];
  },
});

export const rules: RuleTable = {
  LRN: lrn,
  CumSum: cumSum,
  Trilu: trilu,
  OneHot: oneHot,
  EyeLike: eyeLike,
  Hardmax: hardmax,
  ScatterND: scatter,
  ScatterElements: scatter,
  Scatter: scatter,
  Mod: mod,
  RandomNormal: randomNormal,
  RandomNormalLike: randomNormal,
  RandomUniform: randomUniform,
  RandomUniformLike: randomUniform,
  Bernoulli: bernoulli,
  RNN: recurrent('RNN'),
  GRU: recurrent('GRU'),
  LSTM: recurrent('LSTM'),
  GridSample: sameScale('GridSample: interpolated samples of the input (smoothing ignored)'),
  RoiAlign: sameScale('RoiAlign: averages of bilinear samples (smoothing ignored)'),
  IsNaN: noScale,
  IsInf: noScale,
  Not: noScale,
  And: noScale,
  Or: noScale,
  Xor: noScale,
  Equal: noScale,
  Less: noScale,
  LessOrEqual: noScale,
  Greater: noScale,
  GreaterOrEqual: noScale,
  BitShift: noScale,
  BitwiseAnd: noScale,
  BitwiseOr: noScale,
  BitwiseXor: noScale,
  BitwiseNot: noScale,
  NonMaxSuppression: noScale,
  Multinomial: noScale,
};
