/**
 * Monte-Carlo helpers for rule tests: draw from a PredictedDistribution, sample moments, and a
 * tolerance from the sampling error.
 */
import type { PredictedDistribution } from '../../src/analysis/scale.js';
import { gaussian, laplace, mulberry32, uniform53 } from './random.js';

export type Rng = () => number;

export function rng(seed: number): Rng {
  return mulberry32(seed);
}

export function sample(d: PredictedDistribution, r: Rng): number {
  switch (d.kind) {
    case 'gaussian':
      return d.mean + d.std * gaussian(r);
    case 'rectified':
      return Math.max(0, d.mean + d.std * gaussian(r));
    case 'pushforward':
      return d.fn(d.mean + d.std * gaussian(r));
    case 'uniform':
      return d.lo + (d.hi - d.lo) * uniform53(r);
    case 'laplace':
      return laplace(r, d.mean, d.scale);
    case 'discrete': {
      let total = 0;
      for (const w of d.weights) total += w;
      let u = uniform53(r) * total;
      for (let i = 0; i < d.values.length; i++) {
        u -= d.weights[i]!;
        if (u <= 0) return d.values[i]!;
      }
      return d.values[d.values.length - 1]!;
    }
    case 'mixture': {
      let total = 0;
      for (const p of d.parts) total += p.weight;
      let u = uniform53(r) * total;
      for (const p of d.parts) {
        u -= p.weight;
        if (u <= 0) return sample(p.dist, r);
      }
      return sample(d.parts[d.parts.length - 1]!.dist, r);
    }
    case 'empirical':
      throw new Error('cannot sample an empirical distribution');
  }
}

export function draw(d: PredictedDistribution, n: number, seed = 1): Float64Array {
  const r = rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = sample(d, r);
  return out;
}

export function gaussians(n: number, mean = 0, std = 1, seed = 1): Float64Array {
  const r = rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + std * gaussian(r);
  return out;
}

export interface Stats {
  mean: number;
  meanSquare: number;
  /** Standard errors of the two estimates. */
  seMean: number;
  seMeanSquare: number;
  absmax: number;
  fracZero: number;
}

export function stats(xs: ArrayLike<number>): Stats {
  const n = xs.length;
  let s1 = 0;
  let s2 = 0;
  let s4 = 0;
  let absmax = 0;
  let zeros = 0;
  for (let i = 0; i < n; i++) {
    const x = xs[i]!;
    s1 += x;
    s2 += x * x;
    s4 += x * x * x * x;
    absmax = Math.max(absmax, Math.abs(x));
    if (x === 0) zeros++;
  }
  const mean = s1 / n;
  const meanSquare = s2 / n;
  return {
    mean,
    meanSquare,
    seMean: Math.sqrt(Math.max(0, meanSquare - mean * mean) / n),
    seMeanSquare: Math.sqrt(Math.max(0, s4 / n - meanSquare * meanSquare) / n),
    absmax,
    fracZero: zeros / n,
  };
}

/** |predicted − measured| within k standard errors (plus a tiny absolute floor). */
export function withinSE(predicted: number, measured: number, se: number, k = 5, floor = 1e-12): boolean {
  return Math.abs(predicted - measured) <= k * se + floor;
}
