/**
 * Small helpers the op rules share: reading constant operands, shapes and confidences, and
 * building a Scale from moments and a distribution.
 */
import type { Dim } from '../onnx/model.js';
import type { TensorData } from '../onnx/tensor.js';
import { gaussianOf, momentsOf } from './dist.js';
import type { RuleContext } from './rules/types.js';
import type { Confidence, PredictedDistribution, Scale } from './scale.js';
import { valueBuckets } from './weights.js';

const ORDER: Confidence[] = ['exact', 'high', 'medium', 'low', 'unknown'];

/** The weakest of some confidences; 'exact' inputs give a 'high' result (the rule's assumptions apply). */
export function derivedConfidence(...scales: (Scale | null | undefined)[]): Confidence {
  let worst = 1;
  for (const s of scales) if (s) worst = Math.max(worst, ORDER.indexOf(s.confidence));
  return ORDER[worst]!;
}

export function weaker(c: Confidence, floor: Confidence): Confidence {
  return ORDER[Math.max(ORDER.indexOf(c), ORDER.indexOf(floor))]!;
}

/** Array-like values of a constant operand: stored tensor or folded value. */
export type ConstSource = TensorData | { dims: number[]; data: ArrayLike<number> };

export function constSource(ctx: RuleContext, i: number): ConstSource | null {
  if (!ctx.node.inputs[i]) return null;
  const t = ctx.constant(i);
  if (t) return t;
  const v = ctx.constValue(i);
  if (v) return { dims: v.dims, data: v.data };
  return null;
}

/** All values of a small constant operand (≤ limit elements), else null. */
export function constArray(ctx: RuleContext, i: number, limit = 1 << 22): ArrayLike<number> | null {
  const src = constSource(ctx, i);
  if (!src) return null;
  if ('chunks' in src) return src.count <= limit ? src.toFloat64() : null;
  return src.data.length <= limit ? src.data : null;
}

/** The value of a constant operand whose elements are all equal (a scalar in effect), else null. */
export function scalarConst(ctx: RuleContext, i: number): number | null {
  const src = constSource(ctx, i);
  if (!src) return null;
  const n = 'chunks' in src ? src.count : src.data.length;
  if (n === 0 || n > 1 << 16) return null;
  const a = constArray(ctx, i)!;
  const v = a[0]!;
  for (let k = 1; k < a.length; k++) if (a[k] !== v && !(a[k] !== a[k] && v !== v)) return null;
  return v;
}

/**
 * A usable distribution for input i: its own, or for stored tensors with many values
 * ('empirical') quantile buckets of the real values, or a Gaussian with the input's moments.
 */
export function shapeFor(ctx: RuleContext, i: number): PredictedDistribution {
  const s = ctx.inputs[i]!;
  return distFor(s, constSource(ctx, i));
}

export function distFor(s: Scale, src?: ConstSource | null): PredictedDistribution {
  if (s.dist.kind !== 'empirical') return s.dist;
  if (src) return valueBuckets(src);
  return gaussianOf(s.mean, s.meanSquare);
}

export function shapeOf(ctx: RuleContext, i: number): Dim[] | null {
  return ctx.inputTypes[i]?.shape ?? null;
}

export function outShapeOf(ctx: RuleContext, i = 0): Dim[] | null {
  return ctx.outputTypes[i]?.shape ?? null;
}

/** Product of dims when all known. */
export function knownProduct(dims: Dim[] | null | undefined): number | null {
  if (!dims) return null;
  let p = 1;
  for (const d of dims) {
    if (typeof d !== 'number') return null;
    p *= d;
  }
  return p;
}

/** Element count of input i (from its type, else from a constant). */
export function countOf(ctx: RuleContext, i: number): number | null {
  const k = knownProduct(shapeOf(ctx, i));
  if (k !== null) return k;
  const src = constSource(ctx, i);
  if (!src) return null;
  return 'chunks' in src ? src.count : src.data.length;
}

export interface ScaleExtras {
  absmax?: number | null;
  fracZero?: number;
  note?: string;
}

/** A Scale from moments and a distribution (moments are the rule's; the distribution gives the shape). */
export function makeScale(mean: number, meanSquare: number, dist: PredictedDistribution, confidence: Confidence, extra: ScaleExtras = {}): Scale {
  const ms = Math.max(meanSquare, mean * mean);
  const s: Scale = { mean, meanSquare: ms, dist, absmax: extra.absmax ?? null, confidence };
  if (extra.fracZero !== undefined) s.fracZero = extra.fracZero;
  if (extra.note) s.note = extra.note;
  if (!Number.isFinite(mean) || !Number.isFinite(ms)) {
    s.confidence = 'low';
    s.note = `${s.note ? s.note + '; ' : ''}moments not finite`;
  }
  return s;
}

/** A Scale whose moments are those of its distribution. */
export function scaleFromDist(dist: PredictedDistribution, confidence: Confidence, extra: ScaleExtras = {}): Scale {
  const m = momentsOf(dist) ?? { mean: 0, meanSquare: 0 };
  return makeScale(m.mean, m.meanSquare, dist, confidence, extra);
}

/** Combine notes. */
export function joinNotes(...notes: (string | undefined)[]): string | undefined {
  const n = notes.filter((x): x is string => !!x);
  return n.length ? [...new Set(n)].join('; ') : undefined;
}

/** A gradient scale: zero mean, given mean square (gradients are sums of many signed terms). */
export function gradScale(meanSquare: number, confidence: Confidence = 'medium', fracZero = 0): Scale {
  const ms = Math.max(0, meanSquare);
  const std = Math.sqrt(ms / Math.max(1e-300, 1 - fracZero));
  const dist: PredictedDistribution =
    fracZero > 0
      ? {
          kind: 'mixture',
          parts: [
            { weight: fracZero, dist: { kind: 'discrete', values: [0], weights: [1] } },
            { weight: 1 - fracZero, dist: { kind: 'gaussian', mean: 0, std } },
          ],
        }
      : { kind: 'gaussian', mean: 0, std };
  return { mean: 0, meanSquare: ms, dist, absmax: null, confidence, ...(fracZero > 0 ? { fracZero } : {}) };
}

/** Number of elements a broadcast input is repeated over in the output (sum of gradient copies). */
export function broadcastRepeat(ctx: RuleContext, i: number): number {
  const out = knownProduct(outShapeOf(ctx, 0));
  const inp = countOf(ctx, i);
  if (out === null || inp === null || inp === 0) return 1;
  return Math.max(1, out / inp);
}
