/**
 * Rules for ops that move, select, copy or relabel elements (PRIMER §3, last bullets): the
 * moments follow directly — unchanged for a permutation or a reshape, size-weighted for a
 * concatenation, diluted by the zeros of a constant pad, the table's own rows for a Gather on a
 * constant embedding. Integer, boolean and shape tensors carry no scale (null).
 *
 * The helpers at the top (confidence, shapes, constants, mixtures) are shared by the other
 * rule families of this folder.
 */
import { DataType, isFloatType } from '../../onnx/dtype.js';
import type { TensorType } from '../../onnx/model.js';
import { TensorData } from '../../onnx/tensor.js';
import type { Confidence, PredictedDistribution, Scale } from '../scale.js';
import { scaleDistribution, unknownScale, varianceOf } from '../scale.js';
import type { BackwardContext, OpRule, RuleContext, RuleTable } from './types.js';

// ---------------------------------------------------------------------------------------------
// Shared helpers

const ORDER: Confidence[] = ['unknown', 'low', 'medium', 'high', 'exact'];

/** The weakest of the given confidences (undefined entries are ignored). */
export function minConfidence(...cs: (Confidence | undefined)[]): Confidence {
  let best = 4;
  for (const c of cs) if (c !== undefined) best = Math.min(best, ORDER.indexOf(c));
  return ORDER[best]!;
}

/** Cap a Scale's confidence at `c` (and append a note). */
export function capped(s: Scale, c: Confidence, note?: string): Scale {
  return { ...s, confidence: minConfidence(s.confidence, c), ...(note ? { note: joinNotes(s.note, note) } : {}) };
}

export function joinNotes(...notes: (string | undefined)[]): string | undefined {
  const list = notes.filter((n): n is string => !!n);
  return list.length ? [...new Set(list)].join('; ') : undefined;
}

/** Is output i a float tensor? Unknown types count as float when `assume` says so. */
export function outputIsFloat(ctx: RuleContext, i = 0, assume = true): boolean {
  const t = ctx.outputTypes[i];
  if (!t || t.dtype === DataType.UNDEFINED) return assume;
  return isFloatType(t.dtype);
}

export function inputIsFloat(ctx: RuleContext, i: number, assume = true): boolean {
  const t = ctx.inputTypes[i];
  if (!t || t.dtype === DataType.UNDEFINED) return assume;
  return isFloatType(t.dtype);
}

/** All dims as numbers, or null when the rank or any dim is unknown. */
export function numericShape(t: TensorType | null | undefined): number[] | null {
  if (!t?.shape) return null;
  const out: number[] = [];
  for (const d of t.shape) {
    if (typeof d !== 'number') return null;
    out.push(d);
  }
  return out;
}

export function rankOf(t: TensorType | null | undefined): number | null {
  return t?.shape ? t.shape.length : null;
}

export function numel(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

export function normaliseAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

const MAX_CONSTANT = 1 << 24;

/** Values of input i when it is a constant (initializer, Constant, folded shape value). */
export function constantValues(ctx: RuleContext, i: number, limit = MAX_CONSTANT): Float64Array | null {
  if (i >= ctx.node.inputs.length || !ctx.node.inputs[i]) return null;
  const t = ctx.constant(i);
  if (t) {
    if (t.count > limit || t.dtype === DataType.STRING) return null;
    try {
      return t.toFloat64();
    } catch {
      return null;
    }
  }
  const cv = ctx.constValue(i);
  if (cv && cv.data.length <= limit) return Float64Array.from(cv.data);
  return null;
}

/** A scalar constant input (first element), or undefined. */
export function constantScalar(ctx: RuleContext, i: number): number | undefined {
  const v = constantValues(ctx, i, 1 << 16);
  return v && v.length > 0 ? v[0] : undefined;
}

export function hasInput(ctx: RuleContext, i: number): boolean {
  return i < ctx.node.inputs.length && ctx.node.inputs[i] !== '';
}

/**
 * The exact Scale of known values: moments, bound, share of zeros; the distribution is the set
 * of values when there are few distinct ones, otherwise 256 quantile atoms of a strided sample
 * (plus the exact share of zeros) — a faithful shape for the risk integrator.
 */
export function scaleOfValues(values: ArrayLike<number>, note?: string): Scale {
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  let absmax = 0;
  let zeros = 0;
  let distinct: Map<number, number> | null = new Map();
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    n++;
    sum += v;
    sumSq += v * v;
    const a = Math.abs(v);
    if (a > absmax) absmax = a;
    if (v === 0) zeros++;
    if (distinct) {
      const key = v === 0 ? 0 : v;
      distinct.set(key, (distinct.get(key) ?? 0) + 1);
      if (distinct.size > 64) distinct = null;
    }
  }
  if (n === 0) return { ...unknownScale('no finite values'), confidence: 'low' };
  let dist: PredictedDistribution;
  if (distinct) {
    dist = { kind: 'discrete', values: [...distinct.keys()], weights: [...distinct.values()].map((c) => c / n) };
  } else {
    const stride = Math.max(1, Math.floor(values.length / 65536));
    const sample: number[] = [];
    for (let i = 0; i < values.length; i += stride) {
      const v = values[i]!;
      if (Number.isFinite(v) && v !== 0) sample.push(v);
    }
    sample.sort((a, b) => a - b);
    const groups = Math.min(256, sample.length);
    const vals: number[] = [];
    const ws: number[] = [];
    const fz = zeros / n;
    for (let g = 0; g < groups; g++) {
      const a = Math.floor((g * sample.length) / groups);
      const b = Math.floor(((g + 1) * sample.length) / groups);
      if (b <= a) continue;
      let s = 0;
      for (let i = a; i < b; i++) s += sample[i]!;
      vals.push(s / (b - a));
      ws.push(((b - a) / sample.length) * (1 - fz));
    }
    if (fz > 0) {
      vals.push(0);
      ws.push(fz);
    }
    dist = { kind: 'discrete', values: vals, weights: ws };
  }
  return {
    mean: sum / n,
    meanSquare: sumSq / n,
    dist,
    absmax,
    confidence: 'exact',
    ...(zeros > 0 ? { fracZero: zeros / n } : {}),
    ...(note ? { note } : {}),
  };
}

/** Streamed moments of a (possibly external, possibly huge) tensor. */
export function tensorMoments(t: TensorData): { mean: number; meanSquare: number; absmax: number; count: number } {
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  let absmax = 0;
  for (const chunk of t.chunks()) {
    for (let i = 0; i < chunk.length; i++) {
      const v = chunk[i]!;
      if (!Number.isFinite(v)) continue;
      n++;
      sum += v;
      sumSq += v * v;
      if (Math.abs(v) > absmax) absmax = Math.abs(v);
    }
  }
  return { mean: n ? sum / n : 0, meanSquare: n ? sumSq / n : 0, absmax, count: n };
}

/** Weighted mixture of Scales (weights need not sum to 1). */
export function mixtureScale(parts: { weight: number; scale: Scale }[], note?: string): Scale {
  const live = parts.filter((p) => p.weight > 0);
  if (live.length === 0) return unknownScale(note ?? 'empty mixture');
  if (live.length === 1) return { ...live[0]!.scale, exactRisk: undefined, ...(note ? { note: joinNotes(live[0]!.scale.note, note) } : {}) };
  let total = 0;
  for (const p of live) total += p.weight;
  let mean = 0;
  let meanSquare = 0;
  let absmax: number | null = 0;
  let fracZero = 0;
  let anyZero = false;
  for (const p of live) {
    const w = p.weight / total;
    mean += w * p.scale.mean;
    meanSquare += w * p.scale.meanSquare;
    absmax = absmax === null || p.scale.absmax === null ? null : Math.max(absmax, p.scale.absmax);
    if (p.scale.fracZero !== undefined) anyZero = true;
    fracZero += w * (p.scale.fracZero ?? 0);
  }
  return {
    mean,
    meanSquare,
    dist: { kind: 'mixture', parts: live.map((p) => ({ weight: p.weight / total, dist: partDist(p.scale) })) },
    absmax,
    confidence: minConfidence(...live.map((p) => p.scale.confidence)),
    ...(anyZero && fracZero > 0 ? { fracZero } : {}),
    ...(note || live.some((p) => p.scale.note) ? { note: joinNotes(note, ...live.map((p) => p.scale.note)) } : {}),
  };
}

/** A Scale's distribution usable inside a mixture ('empirical' has no shape of its own there). */
function partDist(s: Scale): PredictedDistribution {
  if (s.dist.kind !== 'empirical') return s.dist;
  return { kind: 'gaussian', mean: s.mean, std: Math.sqrt(Math.max(0, s.meanSquare - s.mean * s.mean)) };
}

/** The exact zero, as a Scale. */
export function zeroScale(value = 0): Scale {
  return {
    mean: value,
    meanSquare: value * value,
    dist: { kind: 'discrete', values: [value], weights: [1] },
    absmax: Math.abs(value),
    confidence: 'exact',
    ...(value === 0 ? { fracZero: 1 } : {}),
  };
}

/** A gradient g that reaches only a share `frac` of the positions (the rest are zeros). */
export function sparseGrad(g: Scale, frac: number, note?: string): Scale {
  if (!(frac < 1)) return { ...g, exactRisk: undefined };
  return mixtureScale(
    [
      { weight: frac, scale: g },
      { weight: 1 - frac, scale: zeroScale() },
    ],
    note,
  );
}

/** Sum of r independent copies of g: mean rμ, variance rσ² (broadcast / reuse in the backward pass). */
export function sumOfCopies(g: Scale, r: number, note?: string): Scale {
  if (r === 1) return { ...g, exactRisk: undefined };
  const mean = r * g.mean;
  const variance = r * varianceOf(g);
  const std = Math.sqrt(variance);
  return {
    mean,
    meanSquare: variance + mean * mean,
    dist: { kind: 'gaussian', mean, std },
    absmax: g.absmax === null ? null : g.absmax * r,
    confidence: minConfidence(g.confidence, 'high'),
    ...(note ? { note } : {}),
  };
}

function noExact(s: Scale): Scale {
  return s.exactRisk ? { ...s, exactRisk: undefined } : s;
}

/** The data input's scale; when missing on a float path, an explicit unknown. */
function dataScale(ctx: RuleContext, i = 0): Scale | null {
  const s = ctx.inputs[i];
  if (s) return s;
  const v = constantValues(ctx, i);
  if (v && inputIsFloat(ctx, i, false)) return scaleOfValues(v);
  return null;
}

// ---------------------------------------------------------------------------------------------
// Forward rules

/** Same elements in another arrangement: the Scale (even the exact risk) carries over. */
const samePermutation: OpRule = {
  forward: (ctx) => {
    const x = dataScale(ctx);
    return [outputIsFloat(ctx) ? (x ?? (inputIsFloat(ctx, 0, false) ? unknownScale(`${ctx.node.opType}: input scale unknown`) : null)) : null];
  },
  backward: (ctx) => [gradOf(ctx, 0), ...ctx.node.inputs.slice(1).map(() => null)],
};

/** A subset of the elements (slice, gather on activations): same moments, exact risk dropped. */
function subsetRule(scatterFraction: (ctx: BackwardContext) => number | null): OpRule {
  return {
    forward: (ctx) => {
      const x = dataScale(ctx);
      if (!outputIsFloat(ctx)) return [null];
      return [x ? noExact(x) : inputIsFloat(ctx, 0, false) ? unknownScale(`${ctx.node.opType}: input scale unknown`) : null];
    },
    backward: (ctx) => {
      const g = ctx.outputGrads[0];
      const rest = ctx.node.inputs.slice(1).map(() => null);
      if (!g) return [null, ...rest];
      const f = scatterFraction(ctx);
      return [f === null ? capped(g, 'medium', 'gradient scattered into an input of unknown size') : sparseGrad(g, f, 'gradient scattered back: zeros elsewhere'), ...rest];
    },
  };
}

function gradOf(ctx: BackwardContext, i: number): Scale | null {
  const g = ctx.outputGrads[i];
  return g ? noExact(g) : null;
}

/** numel(out)/numel(in) when both are known. */
function sizeRatio(ctx: RuleContext, outIndex = 0, inIndex = 0): number | null {
  const a = numericShape(ctx.outputTypes[outIndex]);
  const b = numericShape(ctx.inputTypes[inIndex]);
  if (!a || !b) return null;
  const nb = numel(b);
  return nb > 0 ? numel(a) / nb : null;
}

/** Broadcast copies (Expand, Tile): the forward Scale is the same; the gradient sums r copies. */
const replicate: OpRule = {
  forward: samePermutation.forward,
  backward: (ctx) => {
    const g = ctx.outputGrads[0];
    const rest = ctx.node.inputs.slice(1).map(() => null);
    if (!g) return [null, ...rest];
    const r = sizeRatio(ctx);
    return [r === null ? capped(g, 'low', 'broadcast factor unknown') : sumOfCopies(g, Math.max(1, r), `sum of ${r} broadcast copies of the gradient`), ...rest];
  },
};

/** Split: every piece has the input's moments; backward concatenates the pieces' gradients. */
const split: OpRule = {
  forward: (ctx) => {
    const x = dataScale(ctx);
    return ctx.node.outputs.map((_, i) => (outputIsFloat(ctx, i) ? (x ? noExact(x) : unknownScale('Split: input scale unknown')) : null));
  },
  backward: (ctx) => {
    const parts: { weight: number; scale: Scale }[] = [];
    let sizesKnown = true;
    ctx.node.outputs.forEach((_, i) => {
      const shape = numericShape(ctx.outputTypes[i]);
      const w = shape ? numel(shape) : 1;
      if (!shape) sizesKnown = false;
      parts.push({ weight: w, scale: ctx.outputGrads[i] ?? zeroScale() });
    });
    if (ctx.outputGrads.every((g) => !g)) return ctx.node.inputs.map(() => null);
    const s = mixtureScale(parts, 'concatenation of the outputs’ gradients');
    return [sizesKnown ? s : capped(s, 'medium', 'piece sizes unknown: equal weights'), ...ctx.node.inputs.slice(1).map(() => null)];
  },
};

function concatWeights(ctx: RuleContext): { weights: number[]; known: boolean } {
  const rank = rankOf(ctx.outputTypes[0]) ?? rankOf(ctx.inputTypes.find((t) => t?.shape) ?? null);
  const axisAttr = ctx.attrs.int('axis', 0);
  let known = rank !== null;
  const weights = ctx.node.inputs.map((_, i) => {
    const t = ctx.inputTypes[i];
    if (rank === null || !t?.shape) {
      known = false;
      return 1;
    }
    const d = t.shape[normaliseAxis(axisAttr, rank)];
    if (typeof d !== 'number') {
      known = false;
      return 1;
    }
    return d;
  });
  return known ? { weights, known } : { weights: weights.map(() => 1), known };
}

/** Concat: a size-weighted mixture of the inputs (sizes along the axis). */
const concat: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx)) return [null];
    const { weights, known } = concatWeights(ctx);
    const parts = ctx.node.inputs.map((_, i) => ({ weight: weights[i]!, scale: dataScale(ctx, i) ?? unknownScale('Concat: an input scale is unknown') }));
    const s = mixtureScale(parts);
    return [known ? s : capped(s, 'medium', 'Concat: sizes along the axis unknown, inputs weighted equally')];
  },
  backward: (ctx) => {
    const g = ctx.outputGrads[0];
    return ctx.node.inputs.map(() => (g ? noExact(g) : null));
  },
};

/** Pad: constant mode mixes in the pad value for the padded share; other modes repeat data. */
const pad: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx)) return [null];
    const x = dataScale(ctx) ?? unknownScale('Pad: input scale unknown');
    const mode = ctx.attrs.string('mode', 'constant');
    if (mode !== 'constant') return [noExact(x)];
    const value = ctx.opset < 11 ? ctx.attrs.float('value', 0) : hasInput(ctx, 2) ? constantScalar(ctx, 2) : 0;
    const inShape = numericShape(ctx.inputTypes[0]);
    let outShape = numericShape(ctx.outputTypes[0]);
    if (!outShape && inShape) {
      const pads = ctx.opset < 11 ? ctx.attrs.ints('pads') ?? null : constantValues(ctx, 1);
      const axesVals = ctx.opset >= 18 && hasInput(ctx, 3) ? constantValues(ctx, 3) : null;
      if (pads) {
        const rank = inShape.length;
        const axes = axesVals ? Array.from(axesVals, (a) => normaliseAxis(a, rank)) : inShape.map((_, i) => i);
        outShape = [...inShape];
        axes.forEach((a, k) => (outShape![a] = inShape[a]! + Number(pads[k]) + Number(pads[k + axes.length])));
      }
    }
    if (!inShape || !outShape) return [capped(noExact(x), 'medium', 'Pad: padded share unknown, treated as small')];
    const kept = numel(inShape.map((d, i) => Math.min(d, outShape![i]!)));
    const frac = 1 - kept / Math.max(1, numel(outShape));
    if (value === undefined) {
      const v = ctx.inputs[2];
      const part = v ?? unknownScale('Pad: pad value unknown');
      return [mixtureScale([{ weight: 1 - frac, scale: x }, { weight: frac, scale: part }], 'Pad value not constant')];
    }
    if (frac <= 0) return [noExact(x)];
    return [mixtureScale([{ weight: 1 - frac, scale: x }, { weight: frac, scale: zeroScale(value) }], `Pad: ${(100 * frac).toPrecision(3)}% of the output is the pad value ${value}`)];
  },
  backward: (ctx) => [gradOf(ctx, 0), ...ctx.node.inputs.slice(1).map(() => null)],
};

/** Cast: float→float keeps the moments (rounding is the format's business); ints carry no scale. */
function castForward(ctx: RuleContext): (Scale | null)[] {
  if (!outputIsFloat(ctx, 0, true)) return [null];
  const x = ctx.inputs[0];
  if (x) return [noExact(x)];
  const v = constantValues(ctx, 0);
  if (v) return [scaleOfValues(v)];
  const t = ctx.inputTypes[0];
  if (t?.dtype === DataType.BOOL) {
    return [
      {
        mean: 0.5,
        meanSquare: 0.5,
        dist: { kind: 'discrete', values: [0, 1], weights: [0.5, 0.5] },
        absmax: 1,
        confidence: 'low',
        note: 'cast of a boolean tensor of unknown values: {0, 1}, proportions guessed',
      },
    ];
  }
  return [unknownScale('cast of an integer tensor whose values are not known')];
}

const cast: OpRule = {
  forward: castForward,
  backward: (ctx) => [inputIsFloat(ctx, 0, true) ? gradOf(ctx, 0) : null, ...ctx.node.inputs.slice(1).map(() => null)],
};

/** ConstantOfShape: every element is the attribute's value (default float 0). */
const constantOfShape: OpRule = {
  forward: (ctx) => {
    const proto = ctx.attrs.tensor('value');
    let value = 0;
    let dtype: number = DataType.FLOAT;
    if (proto) {
      const t = new TensorData(proto, null);
      dtype = t.dtype;
      value = t.count > 0 ? t.toFloat64()[0]! : 0;
    }
    const outType = ctx.outputTypes[0]?.dtype ?? dtype;
    return [isFloatType(outType) ? zeroScale(value) : null];
  },
};

/** Range: an arithmetic progression; exact moments when start/limit/delta are constants. */
const range: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx, 0, false)) return [null];
    const start = constantScalar(ctx, 0);
    const limit = constantScalar(ctx, 1);
    const delta = constantScalar(ctx, 2);
    if (start === undefined || limit === undefined || delta === undefined || delta === 0) {
      return [{ ...unknownScale('Range with non-constant bounds'), confidence: 'low' }];
    }
    const n = Math.max(0, Math.ceil((limit - start) / delta));
    if (n === 0) return [zeroScale()];
    if (n <= 4096) return [scaleOfValues(Array.from({ length: n }, (_, i) => start + i * delta))];
    const last = start + (n - 1) * delta;
    const mean = (start + last) / 2;
    // Σ (s + iδ)² / n = s² + sδ(n−1) + δ²(n−1)(2n−1)/6
    const meanSquare = start * start + start * delta * (n - 1) + (delta * delta * (n - 1) * (2 * n - 1)) / 6;
    const lo = Math.min(start, last);
    const hi = Math.max(start, last);
    return [{ mean, meanSquare, dist: { kind: 'uniform', lo, hi }, absmax: Math.max(Math.abs(lo), Math.abs(hi)), confidence: 'exact' }];
  },
};

/** Outputs that are integers, booleans or shapes: no scale. */
const noScale: OpRule = { forward: (ctx) => ctx.node.outputs.map(() => null) };

/** Dropout at inference is the identity; in training mode it zeroes a share r and scales by 1/(1−r). */
const dropout: OpRule = {
  forward: (ctx) => {
    const x = dataScale(ctx) ?? unknownScale('Dropout: input scale unknown');
    const training = hasInput(ctx, 2) ? constantScalar(ctx, 2) : 0;
    const ratio = ctx.opset < 12 ? ctx.attrs.float('ratio', 0.5) : hasInput(ctx, 1) ? constantScalar(ctx, 1) ?? 0.5 : 0.5;
    let y: Scale = x;
    if (training === undefined) y = capped(x, 'low', 'Dropout: training mode not constant, assumed off');
    else if (training && ratio > 0 && ratio < 1) {
      const scaled = { ...x, mean: x.mean / (1 - ratio), meanSquare: x.meanSquare / (1 - ratio) ** 2, absmax: x.absmax === null ? null : x.absmax / (1 - ratio) };
      y = mixtureScale([{ weight: 1 - ratio, scale: { ...scaled, dist: scaleDistribution(x.dist, 1 / (1 - ratio)) } }, { weight: ratio, scale: zeroScale() }], `Dropout (training, ratio ${ratio})`);
    }
    return ctx.node.outputs.map((_, i) => (i === 0 ? (outputIsFloat(ctx, 0) ? noExact(y) : null) : null));
  },
  backward: (ctx) => [gradOf(ctx, 0), ...ctx.node.inputs.slice(1).map(() => null)],
};

// ---------------------------------------------------------------------------------------------
// Gather

function gatherAxis(ctx: RuleContext, rank: number): number {
  return normaliseAxis(ctx.attrs.int('axis', 0), rank);
}

/**
 * Gather: on a constant table with constant ids, the exact moments of the looked-up rows
 * (with repeats); with unknown ids, the whole table's (every row equally likely); on
 * activations, the input's moments (a subset of the elements).
 */
const gather: OpRule = {
  // The channel view of an embedding lookup (channels.ts) reads the table's column sums.
  reads: (_node, attrs, stored) => (stored(0)?.length === 2 && (attrs.int('axis', 0) ?? 0) === 0 ? [{ input: 0, from: 0, to: 1 }] : []),
  forward: (ctx) => {
    if (!outputIsFloat(ctx)) return [null];
    const x = ctx.inputs[0];
    const table = ctx.constant(0);
    if (table && table.isFloat && table.count <= 1 << 26) {
      const ids = constantValues(ctx, 1);
      const outCount = ids ? numel(table.dims) / Math.max(1, table.dims[gatherAxis(ctx, table.dims.length)] ?? 1) * ids.length : Infinity;
      // Exact looked-up rows only for tables small enough to decode whole (bounded memory).
      if (ids && table.dims.length > 0 && outCount <= 1 << 24 && table.count <= 1 << 22) {
        const values = table.toFloat64();
        const dims = table.dims;
        const axis = gatherAxis(ctx, dims.length);
        const D = dims[axis]!;
        const outer = numel(dims.slice(0, axis));
        const inner = numel(dims.slice(axis + 1));
        const picked = new Float64Array(outer * inner * ids.length);
        let k = 0;
        for (let o = 0; o < outer; o++) {
          for (const raw of ids) {
            const id = raw < 0 ? raw + D : raw;
            if (id < 0 || id >= D) continue;
            const base = (o * D + id) * inner;
            for (let j = 0; j < inner; j++) picked[k++] = values[base + j]!;
          }
        }
        return [scaleOfValues(picked.subarray(0, k), 'rows of a constant table at constant ids')];
      }
      const whole = x ?? scaleOfValues(table.toFloat64());
      return [capped(whole, 'high', 'rows of a constant table at unknown ids: the whole table’s moments')];
    }
    if (x) return [noExact(x)];
    if (table && table.isFloat) {
      const m = tensorMoments(table);
      return [{ mean: m.mean, meanSquare: m.meanSquare, dist: { kind: 'gaussian', mean: m.mean, std: Math.sqrt(Math.max(0, m.meanSquare - m.mean * m.mean)) }, absmax: m.absmax, confidence: 'high', note: 'large table: moments exact, shape assumed Gaussian' }];
    }
    return [inputIsFloat(ctx, 0, false) ? unknownScale('Gather: input scale unknown') : null];
  },
  backward: (ctx) => {
    const g = ctx.outputGrads[0];
    if (!g) return [null, null];
    const inShape = numericShape(ctx.inputTypes[0]);
    const idShape = numericShape(ctx.inputTypes[1]);
    const ids = constantValues(ctx, 1);
    if (!inShape || inShape.length === 0) return [capped(g, 'low', 'Gather gradient: table size unknown'), null];
    const axis = gatherAxis(ctx, inShape.length);
    const D = inShape[axis]!;
    // Row v of the table receives the sum of the gradients of its c_v look-ups:
    // E[row²] = c_v σ² + c_v² μ²; averaged over all D rows.
    let counts: number[] | null = null;
    if (ids) {
      counts = new Array<number>(D).fill(0);
      for (const raw of ids) {
        const id = raw < 0 ? raw + D : raw;
        if (id >= 0 && id < D) counts[id]!++;
      }
    }
    const N = ids ? ids.length : idShape ? numel(idShape) : null;
    if (N === null) return [capped(g, 'low', 'Gather gradient: number of look-ups unknown'), null];
    const variance = varianceOf(g);
    let m2 = 0;
    let m1 = 0;
    let hit = 0;
    if (counts) {
      for (const c of counts) {
        m2 += c * variance + c * c * g.mean * g.mean;
        m1 += c * g.mean;
        if (c > 0) hit++;
      }
      m2 /= D;
      m1 /= D;
    } else {
      // Ids uniform over D rows: counts ~ Binomial(N, 1/D): E[c] = N/D, E[c²] = N/D (1 − 1/D) + (N/D)².
      const ec = N / D;
      const ec2 = ec * (1 - 1 / D) + ec * ec;
      m2 = ec * variance + ec2 * g.mean * g.mean;
      m1 = ec * g.mean;
      hit = D * (1 - Math.pow(1 - 1 / D, N));
    }
    const fracHit = Math.min(1, hit / D);
    const condMean = fracHit > 0 ? m1 / fracHit : 0;
    const condM2 = fracHit > 0 ? m2 / fracHit : 0;
    const active: Scale = {
      mean: condMean,
      meanSquare: condM2,
      dist: { kind: 'gaussian', mean: condMean, std: Math.sqrt(Math.max(0, condM2 - condMean * condMean)) },
      absmax: null,
      confidence: minConfidence(g.confidence, ids ? 'high' : 'medium'),
    };
    return [sparseGrad(active, fracHit, 'embedding gradient: only looked-up rows are non-zero'), null];
  },
};

// ---------------------------------------------------------------------------------------------
// Resize / Upsample

type Coord = (o: number, inSize: number, outSize: number, scale: number) => number;

const COORD: Record<string, Coord> = {
  half_pixel: (o, _i, _n, s) => (o + 0.5) / s - 0.5,
  half_pixel_symmetric: (o, inSize, outSize, s) => {
    const adjustment = outSize / (s * inSize);
    const offset = (inSize / 2) * (1 - adjustment);
    return offset + (o + 0.5) / s - 0.5;
  },
  pytorch_half_pixel: (o, _i, outSize, s) => (outSize > 1 ? (o + 0.5) / s - 0.5 : 0),
  align_corners: (o, inSize, outSize) => (outSize === 1 ? 0 : (o * (inSize - 1)) / (outSize - 1)),
  asymmetric: (o, _i, _n, s) => o / s,
  tf_crop_and_resize: (o, inSize, outSize) => (outSize === 1 ? (inSize - 1) / 2 : (o * (inSize - 1)) / (outSize - 1)),
};

function cubicKernel(t: number, a: number): number {
  const x = Math.abs(t);
  if (x <= 1) return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1;
  if (x < 2) return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a;
  return 0;
}

/**
 * Per output position along one axis, the interpolation weights on input positions (repeated
 * clamped indices merged). Returns the averages over positions of Σw² and (Σw)².
 */
export function interpolationFactors(
  mode: string,
  coord: Coord,
  inSize: number,
  outSize: number,
  scale: number,
  cubicA = -0.75,
  excludeOutside = false,
): { sumSq: number; sumSquared: number } {
  if (mode === 'nearest' || inSize <= 0 || outSize <= 0) return { sumSq: 1, sumSquared: 1 };
  let sumSq = 0;
  let sumSquared = 0;
  for (let o = 0; o < outSize; o++) {
    let x = coord(o, inSize, outSize, scale);
    const w = new Map<number, number>();
    if (mode === 'cubic') {
      const base = Math.floor(x);
      const frac = x - base;
      for (let k = -1; k <= 2; k++) {
        let idx = base + k;
        let weight = cubicKernel(k - frac, cubicA);
        if (idx < 0 || idx >= inSize) {
          if (excludeOutside) weight = 0;
          idx = Math.min(inSize - 1, Math.max(0, idx));
        }
        w.set(idx, (w.get(idx) ?? 0) + weight);
      }
      if (excludeOutside) {
        let s = 0;
        for (const v of w.values()) s += v;
        if (s !== 0) for (const [k, v] of w) w.set(k, v / s);
      }
    } else {
      x = Math.min(inSize - 1, Math.max(0, x));
      const i0 = Math.floor(x);
      const frac = x - i0;
      const i1 = Math.min(inSize - 1, i0 + 1);
      w.set(i0, (w.get(i0) ?? 0) + (1 - frac));
      w.set(i1, (w.get(i1) ?? 0) + frac);
    }
    let s2 = 0;
    let s1 = 0;
    for (const v of w.values()) {
      s2 += v * v;
      s1 += v;
    }
    sumSq += s2;
    sumSquared += s1 * s1;
  }
  return { sumSq: sumSq / outSize, sumSquared: sumSquared / outSize };
}

interface ResizePlan {
  mode: string;
  /** Π over axes of the mean Σw² (variance factor) and mean (Σw)² (mean² factor). */
  varFactor: number;
  meanFactor: number;
  known: boolean;
  ratio: number | null;
}

function resizePlan(ctx: RuleContext): ResizePlan {
  const op = ctx.node.opType;
  let mode = ctx.attrs.string('mode', 'nearest');
  if (mode === 'bilinear' || mode === 'trilinear') mode = 'linear';
  const coordName = op === 'Upsample' || ctx.opset < 11 ? 'asymmetric' : ctx.attrs.string('coordinate_transformation_mode', 'half_pixel');
  const coord = COORD[coordName] ?? COORD.half_pixel!;
  const inShape = numericShape(ctx.inputTypes[0]);
  let outShape = numericShape(ctx.outputTypes[0]);
  let scales: number[] | null = null;
  if (op === 'Upsample') scales = ctx.opset < 9 ? ctx.attrs.floats('scales') ?? null : toArr(constantValues(ctx, 1));
  else if (ctx.opset < 11) scales = toArr(constantValues(ctx, 1));
  else {
    scales = hasInput(ctx, 2) ? toArr(constantValues(ctx, 2)) : null;
    if (scales && scales.length === 0) scales = null;
    if (!outShape && inShape && hasInput(ctx, 3)) outShape = toArr(constantValues(ctx, 3));
  }
  const axesAttr = ctx.opset >= 18 ? ctx.attrs.ints('axes') : undefined;
  if (inShape && !outShape && scales) {
    const axes = axesAttr ?? inShape.map((_, i) => i);
    outShape = [...inShape];
    axes.forEach((a, k) => (outShape![normaliseAxis(a, inShape.length)] = Math.floor(inShape[normaliseAxis(a, inShape.length)]! * scales![k]!)));
  }
  if (!inShape || !outShape || outShape.length !== inShape.length) return { mode, varFactor: 1, meanFactor: 1, known: false, ratio: null };
  const fullScales = inShape.map((d, i) => outShape![i]! / d);
  if (scales && scales.length === inShape.length) scales.forEach((s, i) => (fullScales[i] = s));
  else if (scales && axesAttr && scales.length === axesAttr.length) axesAttr.forEach((a, k) => (fullScales[normaliseAxis(a, inShape.length)] = scales![k]!));
  let varFactor = 1;
  let meanFactor = 1;
  const cubicA = ctx.attrs.float('cubic_coeff_a', -0.75);
  const exclude = ctx.attrs.int('exclude_outside', 0) === 1;
  inShape.forEach((d, i) => {
    const o = outShape![i]!;
    if (o === d && fullScales[i] === 1) return;
    const f = interpolationFactors(mode, coord, d, o, fullScales[i]!, cubicA, exclude);
    varFactor *= f.sumSq;
    meanFactor *= f.sumSquared;
  });
  return { mode, varFactor, meanFactor, known: true, ratio: numel(outShape) / Math.max(1, numel(inShape)) };
}

function toArr(v: Float64Array | null): number[] | null {
  return v ? Array.from(v) : null;
}

/**
 * Resize/Upsample: nearest copies elements (same moments); linear/cubic mixes neighbours
 * y = Σ w_i x_i, so with independent neighbours E[y] = μ (Σw = 1) and
 * Var[y] = σ² Σw², averaged over output positions and multiplied across axes
 * (2× bilinear, half_pixel: (0.75² + 0.25²)² = 0.390625).
 */
const resize: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx)) return [null];
    const x = dataScale(ctx) ?? unknownScale('Resize: input scale unknown');
    const plan = resizePlan(ctx);
    if (plan.mode === 'nearest') return [noExact(x)];
    if (!plan.known) return [capped(noExact(x), 'medium', 'Resize: sizes unknown, interpolation smoothing ignored')];
    const variance = varianceOf(x) * plan.varFactor;
    const mean = x.mean * Math.sqrt(plan.meanFactor);
    return [
      {
        mean,
        meanSquare: mean * mean + variance,
        dist: { kind: 'gaussian', mean, std: Math.sqrt(variance) },
        absmax: plan.mode === 'linear' ? x.absmax : null,
        confidence: minConfidence(x.confidence, 'high'),
        note: `${plan.mode} interpolation: variance × ${plan.varFactor.toPrecision(4)} (neighbours assumed independent)`,
      },
    ];
  },
  backward: (ctx) => {
    const g = ctx.outputGrads[0];
    const rest = ctx.node.inputs.slice(1).map(() => null);
    if (!g) return [null, ...rest];
    const plan = resizePlan(ctx);
    if (plan.ratio === null) return [capped(g, 'low', 'Resize gradient: sizes unknown'), ...rest];
    if (plan.mode === 'nearest') return [sumOfCopies(g, Math.max(1, plan.ratio), 'sum of the gradients of the copies'), ...rest];
    // ∂x_i = Σ_o w_oi g_o: mean ratio·μ_g, variance ratio·σ_g²·(mean Σw²).
    const mean = plan.ratio * g.mean;
    const variance = plan.ratio * varianceOf(g) * plan.varFactor;
    return [{ mean, meanSquare: mean * mean + variance, dist: { kind: 'gaussian', mean, std: Math.sqrt(variance) }, absmax: null, confidence: minConfidence(g.confidence, 'medium') }, ...rest];
  },
};

// ---------------------------------------------------------------------------------------------

const sliceFraction = (ctx: BackwardContext): number | null => {
  const r = sizeRatio(ctx);
  return r === null ? null : Math.min(1, r);
};

export const rules: RuleTable = {
  Reshape: samePermutation,
  Transpose: samePermutation,
  Squeeze: samePermutation,
  Unsqueeze: samePermutation,
  Flatten: samePermutation,
  Identity: samePermutation,
  DepthToSpace: samePermutation,
  SpaceToDepth: samePermutation,
  ReverseSequence: samePermutation,
  Expand: replicate,
  Tile: replicate,
  Slice: subsetRule(sliceFraction),
  GatherElements: subsetRule(sliceFraction),
  GatherND: subsetRule(sliceFraction),
  Compress: subsetRule(sliceFraction),
  Gather: gather,
  Split: split,
  Concat: concat,
  Pad: pad,
  Cast: cast,
  CastLike: cast,
  Dropout: dropout,
  ConstantOfShape: constantOfShape,
  Range: range,
  Resize: resize,
  Upsample: resize,
  Shape: noScale,
  Size: noScale,
  NonZero: noScale,
};
