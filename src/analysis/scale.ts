/**
 * Scale: what unitscale predicts about one tensor without running the model — its first two
 * moments (unit scaling's currency: PRIMER §2) plus the shape of its distribution, which
 * decides the format risks (a rectified tensor has exact zeros; a bounded one cannot
 * overflow; a mask holds a few discrete values).
 */
import type { Risk } from '../formats/risk.js';

export type Confidence = 'exact' | 'high' | 'medium' | 'low' | 'unknown';

/**
 * The predicted distribution of a tensor's elements (analysis-side; risk.ts in src/formats
 * integrates the basic kinds, the analysis adds composite ones on top).
 */
export type PredictedDistribution =
  /** N(mean, std²). */
  | { kind: 'gaussian'; mean: number; std: number }
  /** max(0, z) with z ~ N(mean, std²): the parameters are the parent's. */
  | { kind: 'rectified'; mean: number; std: number }
  | { kind: 'uniform'; lo: number; hi: number }
  | { kind: 'laplace'; mean: number; scale: number }
  /** Finitely many values (masks, constants, ids cast to float). */
  | { kind: 'discrete'; values: number[]; weights: number[] }
  /** f(z) with z ~ N(mean, std²): an elementwise function of a Gaussian, kept exact for risk. */
  | { kind: 'pushforward'; mean: number; std: number; fn: (z: number) => number; label: string }
  /** A weighted mixture (e.g. scores + a mask: most elements Gaussian, some at -3.4e38). */
  | { kind: 'mixture'; parts: { weight: number; dist: PredictedDistribution }[] }
  /** Measured from real data (weights): the risk is exact, not integrated. */
  | { kind: 'empirical' };

export interface Scale {
  /** E[x] */
  mean: number;
  /** E[x²] (RMS²). */
  meanSquare: number;
  dist: PredictedDistribution;
  /** A known bound on |x| (exact for constants, 1 for softmax, …); null when unbounded/unknown. */
  absmax: number | null;
  confidence: Confidence;
  /** Exact per-format risk, when computed from real values (initializers, constants). */
  exactRisk?: Record<string, Risk>;
  /** Share of exact zeros, when known. */
  fracZero?: number;
  /** A human note: why this tensor is special or why the prediction is weak. */
  note?: string;
  /**
   * Gradients only (backward pass): the share of E[x²] in a component constant along some axes
   * (coherence.ts). The gradient of a mean over H×W is the same at every position; sums over those
   * positions (weight gradients, broadcast operands) then add coherently.
   */
  coherent?: Coherence;
}

/**
 * A tensor modelled as c + w: c constant along `axes` (for fixed other indices; independent
 * across them), w independent from position to position. `share` = E[c²]/E[x²] ∈ (0, 1].
 */
export interface Coherence {
  /** Axes of the tensor (non-negative, sorted) along which c is constant. */
  axes: number[];
  share: number;
}

export function rmsOf(s: Scale): number {
  return Math.sqrt(Math.max(0, s.meanSquare));
}

export function varianceOf(s: Scale): number {
  return Math.max(0, s.meanSquare - s.mean * s.mean);
}

export function gaussianScale(mean: number, std: number, confidence: Confidence = 'high', note?: string): Scale {
  return {
    mean,
    meanSquare: mean * mean + std * std,
    dist: { kind: 'gaussian', mean, std },
    absmax: null,
    confidence,
    ...(note ? { note } : {}),
  };
}

/** Gaussian with the given moments (the default shape when a rule knows only E[x], E[x²]). */
export function scaleFromMoments(mean: number, meanSquare: number, confidence: Confidence = 'high', note?: string): Scale {
  const std = Math.sqrt(Math.max(0, meanSquare - mean * mean));
  return { ...gaussianScale(mean, std, confidence, note), meanSquare: Math.max(meanSquare, mean * mean) };
}

/** Multiply a tensor by a constant c: every moment and bound follows exactly. */
export function scaleBy(s: Scale, c: number): Scale {
  return {
    ...s,
    mean: s.mean * c,
    meanSquare: s.meanSquare * c * c,
    dist: scaleDistribution(s.dist, c),
    absmax: s.absmax === null ? null : s.absmax * Math.abs(c),
    exactRisk: undefined,
  };
}

export function scaleDistribution(d: PredictedDistribution, c: number): PredictedDistribution {
  switch (d.kind) {
    case 'gaussian':
      return { kind: 'gaussian', mean: d.mean * c, std: d.std * Math.abs(c) };
    case 'rectified':
      // c·max(0,z) = max(0, c·z) for c ≥ 0; for c < 0 it is a negated rectified: keep as pushforward.
      return c >= 0
        ? { kind: 'rectified', mean: d.mean * c, std: d.std * c }
        : { kind: 'pushforward', mean: d.mean, std: d.std, fn: (z) => c * Math.max(0, z), label: `${c}·relu` };
    case 'uniform':
      return c >= 0 ? { kind: 'uniform', lo: d.lo * c, hi: d.hi * c } : { kind: 'uniform', lo: d.hi * c, hi: d.lo * c };
    case 'laplace':
      return { kind: 'laplace', mean: d.mean * c, scale: d.scale * Math.abs(c) };
    case 'discrete':
      return { kind: 'discrete', values: d.values.map((v) => v * c), weights: d.weights };
    case 'pushforward': {
      const fn = d.fn;
      return { ...d, fn: (z) => c * fn(z), label: `${c}·${d.label}` };
    }
    case 'mixture':
      return { kind: 'mixture', parts: d.parts.map((p) => ({ weight: p.weight, dist: scaleDistribution(p.dist, c) })) };
    case 'empirical':
      return d;
  }
}

/** Nothing is known (an op without a rule): reported as unknown, propagation continues. */
export function unknownScale(note: string): Scale {
  return { mean: 0, meanSquare: 1, dist: { kind: 'gaussian', mean: 0, std: 1 }, absmax: null, confidence: 'unknown', note };
}
