/**
 * Windowed pooling (PRIMER §3, reductions applied per window). Each output reduces the valid
 * elements of one window; the count of valid elements c varies at the borders with padding,
 * and the count used as divisor depends on count_include_pad. The geometry is separable:
 * per spatial axis, the list over output positions of (valid, divisor) counts, and the average
 * over positions of any product of per-axis terms is the product of per-axis averages.
 *
 * - AveragePool: y = Σ_valid x / div, so E[y] = μ·E[c/d], E[y²] = μ²·E[c²/d²] + σ²·E[c/d²]
 *   (c = d without count_include_pad: variance σ²·E[1/c]).
 * - MaxPool: the exact order statistic max of c i.i.d. elements (src/analysis/quadrature.ts),
 *   mixed over the distinct border counts; padding never wins (−∞).
 * - LpPool / GlobalLpPool: (Σ|x|^p)^{1/p} over the window (reduce.ts powerSumScale).
 *
 * Neighbouring activations are assumed independent: for smooth feature maps the variance of an
 * average is larger than predicted (each note says so).
 * Backward with a coherent gradient (coherence.ts): overlapping AveragePool windows add its
 * constant part coherently; MaxPool keeps it on the share of positions that win.
 */
import { coherenceOf, withCoherence } from '../coherence.js';
import { gradScale } from '../helpers.js';
import type { Confidence, Scale } from '../scale.js';
import { unknownScale, varianceOf } from '../scale.js';
import { powerSumScale, reduceScale } from './reduce.js';
import { capped, minConfidence, mixtureScale, numel, numericShape, outputIsFloat, sparseGrad } from './shape-ops.js';
import type { OpRule, RuleContext, RuleTable } from './types.js';

/** Most window taps (output positions × kernel size, per axis) enumerated exactly. */
const MAX_ENUMERATED_TAPS = 1 << 24;

const INDEPENDENT = 'window elements assumed independent (smooth feature maps give a larger variance)';

export interface AxisWindows {
  /** Valid (in-bounds) elements of the window at each output position. */
  valid: number[];
  /** Elements counted by the divisor with count_include_pad (in-bounds or explicit padding). */
  padded: number[];
  kernel: number;
}

/**
 * The windows along one spatial axis (ONNX pooling geometry: kernel k, stride s, dilation d,
 * pads pb/pe, auto_pad, ceil_mode).
 */
export function axisWindows(
  inSize: number,
  k: number,
  s: number,
  d: number,
  pb: number,
  pe: number,
  autoPad: string,
  ceilMode: boolean,
  outSize?: number,
): AxisWindows | null {
  const span = (k - 1) * d + 1;
  let out: number;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    out = Math.ceil(inSize / s);
    const total = Math.max(0, (out - 1) * s + span - inSize);
    pb = autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
    pe = total - pb;
  } else if (autoPad === 'VALID') {
    pb = 0;
    pe = 0;
    out = Math.floor((inSize - span) / s) + 1;
  } else {
    const q = (inSize + pb + pe - span) / s;
    out = (ceilMode ? Math.ceil(q) : Math.floor(q)) + 1;
    // A last window that would start past the end of the input and the leading pad is dropped.
    if (ceilMode && (out - 1) * s >= inSize + pb) out--;
  }
  if (outSize !== undefined && outSize > 0) out = outSize;
  // The windows are enumerated one by one; a geometry no real model has (a corrupted or
  // absurd shape, stride or pad) is left unknown rather than enumerated for minutes.
  if (!Number.isSafeInteger(out) || out < 0 || out * k > MAX_ENUMERATED_TAPS) return null;
  const valid: number[] = [];
  const padded: number[] = [];
  for (let o = 0; o < out; o++) {
    const start = o * s - pb;
    let v = 0;
    let p = 0;
    for (let j = 0; j < k; j++) {
      const pos = start + j * d;
      if (pos >= 0 && pos < inSize) v++;
      if (pos >= -pb && pos < inSize + pe) p++;
    }
    valid.push(v);
    padded.push(p);
  }
  return { valid, padded, kernel: k };
}

interface Geometry {
  axes: AxisWindows[];
}

function geometry(ctx: RuleContext): Geometry | null {
  const inShape = numericShape(ctx.inputTypes[0]);
  const kernel = ctx.attrs.ints('kernel_shape');
  if (!inShape || !kernel || inShape.length !== kernel.length + 2) return null;
  const r = kernel.length;
  const strides = ctx.attrs.ints('strides') ?? new Array<number>(r).fill(1);
  const dil = ctx.attrs.ints('dilations') ?? new Array<number>(r).fill(1);
  const pads = ctx.attrs.ints('pads') ?? new Array<number>(2 * r).fill(0);
  const autoPad = ctx.attrs.string('auto_pad', 'NOTSET');
  const ceil = ctx.attrs.int('ceil_mode', 0) === 1;
  const outShape = numericShape(ctx.outputTypes[0]);
  const axes = kernel.map((k, i) =>
    axisWindows(inShape[i + 2]!, k, strides[i] ?? 1, dil[i] ?? 1, pads[i] ?? 0, pads[i + r] ?? 0, autoPad, ceil, outShape && outShape.length === r + 2 ? outShape[i + 2] : undefined),
  );
  if (axes.some((a) => a === null)) return null;
  return { axes: axes as AxisWindows[] };
}

/** Average over output positions of Π_axes h(valid, divisor). */
function separableMean(g: Geometry, h: (valid: number, div: number) => number, includePad: boolean): number {
  let prod = 1;
  for (const ax of g.axes) {
    let s = 0;
    ax.valid.forEach((v, o) => (s += h(v, includePad ? ax.padded[o]! : v)));
    prod *= ax.valid.length ? s / ax.valid.length : 1;
  }
  return prod;
}

/** Distinct window sizes (product of per-axis valid counts) and their shares of positions. */
function windowSizes(g: Geometry): Map<number, number> {
  let acc = new Map<number, number>([[1, 1]]);
  for (const ax of g.axes) {
    const here = new Map<number, number>();
    for (const v of ax.valid) here.set(v, (here.get(v) ?? 0) + 1 / ax.valid.length);
    const next = new Map<number, number>();
    for (const [a, wa] of acc) for (const [b, wb] of here) next.set(a * b, (next.get(a * b) ?? 0) + wa * wb);
    acc = next;
  }
  return acc;
}

function kernelArea(ctx: RuleContext): number | null {
  const k = ctx.attrs.ints('kernel_shape');
  return k ? numel(k) : null;
}

function clt(x: Scale, n: number): Confidence {
  return x.dist.kind === 'gaussian' || n >= 32 ? minConfidence(x.confidence, 'high') : minConfidence(x.confidence, 'medium');
}

// ---------------------------------------------------------------------------------------------

const averagePool: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx)) return [null];
    const x = ctx.inputs[0];
    if (!x) return [unknownScale('AveragePool: input scale unknown')];
    const includePad = ctx.attrs.int('count_include_pad', 0) === 1;
    const g = geometry(ctx);
    const area = kernelArea(ctx);
    if (!g) {
      if (!area) return [capped({ ...x, exactRisk: undefined }, 'low', 'AveragePool: kernel unknown')];
      return [capped(reduceScale(x, area, 'mean'), 'medium', 'AveragePool: input size unknown, border windows ignored')];
    }
    const mu = x.mean;
    const v = varianceOf(x);
    const mean = mu * separableMean(g, (c, d) => c / d, includePad);
    const meanSquare = mu * mu * separableMean(g, (c, d) => (c * c) / (d * d), includePad) + v * separableMean(g, (c, d) => c / (d * d), includePad);
    const std = Math.sqrt(Math.max(0, meanSquare - mean * mean));
    return [
      {
        mean,
        meanSquare,
        dist: { kind: 'gaussian', mean, std },
        absmax: x.absmax,
        confidence: clt(x, area ?? 1),
        note: `average of ${area ?? '?'}: ${INDEPENDENT}`,
      },
    ];
  },
  backward: (ctx) => {
    const g = ctx.outputGrads[0];
    if (!g) return [null];
    const area = kernelArea(ctx);
    const inShape = numericShape(ctx.inputTypes[0]);
    const outShape = numericShape(ctx.outputTypes[0]) ?? outShapeOf(ctx);
    if (!area || !inShape || !outShape) return [capped(g, 'low', 'AveragePool gradient: sizes unknown')];
    // Each input element sits in r windows on average, receiving g/area from each.
    const r = (numel(outShape) * area) / numel(inShape);
    const mean = (r * g.mean) / area;
    const variance = (r * varianceOf(g)) / (area * area);
    const plain: Scale = { mean, meanSquare: mean * mean + variance, dist: { kind: 'gaussian', mean, std: Math.sqrt(variance) }, absmax: null, confidence: minConfidence(g.confidence, 'medium') };
    const coh = coherenceOf(g);
    const kernel = ctx.attrs.ints('kernel_shape');
    if (!coh || !kernel || inShape.length !== kernel.length + 2) return [plain];
    // A coherent part c of g (coherence.ts): along an axis of A the r_a windows over an element
    // carry the same c, so they add coherently (r_a² instead of r_a); per axis
    // r_a = out_a·k_a / in_a. The result is still constant along A (borders aside).
    let cohGain = 1;
    let indepGain = 1;
    kernel.forEach((k, a) => {
      const ra = (outShape[a + 2]! * k) / inShape[a + 2]!;
      indepGain *= ra / (k * k);
      cohGain *= (coh.axes.includes(a + 2) ? ra * ra : ra) / (k * k);
    });
    const C = coh.share * g.meanSquare;
    const F = g.meanSquare - C;
    const total = C * cohGain + F * indepGain;
    if (!(total > 0)) return [plain];
    return [withCoherence(gradScale(total, minConfidence(g.confidence, 'medium')), { axes: coh.axes, share: (C * cohGain) / total })];
  },
};

function outShapeOf(ctx: RuleContext): number[] | null {
  const g = geometry(ctx);
  const inShape = numericShape(ctx.inputTypes[0]);
  if (!g || !inShape) return null;
  return [inShape[0]!, inShape[1]!, ...g.axes.map((a) => a.valid.length)];
}

/** max of the window's valid elements, mixed over the distinct window sizes. */
const maxPool: OpRule = {
  forward: (ctx) => {
    const x = ctx.inputs[0];
    const outs: (Scale | null)[] = ctx.node.outputs.map(() => null);
    if (!outputIsFloat(ctx)) return outs;
    if (!x) {
      outs[0] = unknownScale('MaxPool: input scale unknown');
      return outs;
    }
    const g = geometry(ctx);
    const area = kernelArea(ctx);
    let sizes: Map<number, number>;
    let note: string | undefined;
    if (g) sizes = windowSizes(g);
    else if (area) {
      sizes = new Map([[area, 1]]);
      note = 'MaxPool: input size unknown, border windows ignored';
    } else {
      outs[0] = capped({ ...x, exactRisk: undefined }, 'low', 'MaxPool: kernel unknown');
      return outs;
    }
    const parts = [...sizes.entries()].map(([c, w]) => ({ weight: w, scale: reduceScale(x, c, 'max') }));
    let y = mixtureScale(parts, `max of ${area ?? '?'}: ${INDEPENDENT}`);
    if (note) y = capped(y, 'medium', note);
    outs[0] = { ...y, absmax: x.absmax };
    return outs;
  },
  backward: (ctx) => {
    const g = ctx.outputGrads[0];
    if (!g) return [null];
    const inShape = numericShape(ctx.inputTypes[0]);
    const outShape = numericShape(ctx.outputTypes[0]) ?? outShapeOf(ctx);
    if (!inShape || !outShape) return [capped(g, 'low', 'MaxPool gradient: sizes unknown')];
    // Every window sends its g to its arg-max: the gradient energy is conserved over the input.
    const ratio = numel(outShape) / numel(inShape);
    const frac = Math.min(1, ratio);
    const cond = { ...g, meanSquare: (g.meanSquare * ratio) / frac, mean: (g.mean * ratio) / frac, exactRisk: undefined };
    // A coherent part c of g lands on the share `frac` of positions: its part constant along the
    // same axes is c·frac, so the coherent share becomes κ·frac (coherence.ts).
    const coh = coherenceOf(g);
    const res = capped(sparseGrad({ ...cond, coherent: undefined }, frac, 'only each window’s maximum receives its gradient'), 'medium');
    return [withCoherence(res, coh ? { axes: coh.axes, share: coh.share * frac } : null)];
  },
};

function lpForward(ctx: RuleContext): (Scale | null)[] {
  if (!outputIsFloat(ctx)) return [null];
  const x = ctx.inputs[0];
  if (!x) return [unknownScale(`${ctx.node.opType}: input scale unknown`)];
  const p = ctx.attrs.int('p', 2);
  if (ctx.node.opType === 'GlobalLpPool') {
    const shape = ctx.inputTypes[0]?.shape;
    const dims = shape?.slice(2) ?? null;
    const n = dims && dims.every((d): d is number => typeof d === 'number') ? numel(dims) : null;
    if (n === null) return [{ ...unknownScale('GlobalLpPool: spatial size unknown'), confidence: 'low' }];
    return [powerSumScale(x, n, p, true)];
  }
  const g = geometry(ctx);
  const area = kernelArea(ctx);
  const sizes = g ? windowSizes(g) : area ? new Map([[area, 1]]) : null;
  if (!sizes) return [{ ...unknownScale('LpPool: kernel unknown'), confidence: 'low' }];
  const y = mixtureScale([...sizes.entries()].map(([c, w]) => ({ weight: w, scale: powerSumScale(x, c, p, true) })));
  return [g ? y : capped(y, 'medium', 'LpPool: input size unknown, border windows ignored')];
}

const lpPool: OpRule = {
  forward: lpForward,
  backward: (ctx) => {
    const g = ctx.outputGrads[0];
    return [g ? capped(g, 'low', 'LpPool gradient: not modelled, passed through') : null];
  },
};

export const rules: RuleTable = {
  AveragePool: averagePool,
  MaxPool: maxPool,
  LpPool: lpPool,
  GlobalLpPool: lpPool,
};

export { geometry, separableMean, windowSizes };
