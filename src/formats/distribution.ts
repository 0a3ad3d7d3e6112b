/**
 * Element distributions of a tensor (PRIMER §2: Gaussian, rectified, bounded, discrete/constant,
 * heavy-tailed) and their law of |x|, which is all the risk of a sign-symmetric format depends on.
 */

import { integrate, normalMass, normalPdf, normalTail } from './special.js';

export type Distribution =
  | { kind: 'gaussian'; mean: number; std: number }
  /** max(0, z) with z ~ N(mean, std²): mean and std are those of the parent z. */
  | { kind: 'rectified'; mean: number; std: number }
  | { kind: 'uniform'; lo: number; hi: number }
  | { kind: 'laplace'; mean: number; scale: number }
  /** Finitely many values with (unnormalised, non-negative) weights; a constant is one value. */
  | { kind: 'discrete'; values: number[]; weights: number[] };

/**
 * The law of |x|: an atom at zero plus a continuous part, described by what the risk integrals
 * need. Masses are for the continuous part only.
 */
export interface AbsLaw {
  /** P(x == 0) exactly (the rectified's dead half). */
  atomZero: number;
  /** Density of |x| at a > 0. */
  pdf(a: number): number;
  /** P(u < |x| < v), accurate for tiny intervals and deep tails. */
  mass(u: number, v: number): number;
  /** P(|x| > a). */
  tail(a: number): number;
  /** E[x²]. */
  secondMoment: number;
  /** [lo, hi]: outside it the continuous part has mass below ~1e-32 (noise there is negligible). */
  lo: number;
  hi: number;
  /** Points in (lo, hi) where pdf is not smooth (kinks, jumps). */
  breaks: number[];
  /** Length over which pdf changes smoothly (σ, Laplace scale); Infinity if piecewise constant. */
  scale: number;
}

export interface DiscreteLaw {
  values: number[];
  /** Normalised to sum 1. */
  probs: number[];
}

/** Half-width of the noise window in σ: Q(12) ≈ 1.8e-33. */
const GAUSS_K = 12;
/** Half-width of the noise window in Laplace scales: e^-75 ≈ 2.7e-33. */
const LAPLACE_K = 75;

function check(ok: boolean, what: string): void {
  if (!ok) throw new RangeError(`invalid distribution: ${what}`);
}

/** The law of |x| for d, or the discrete law when d has no continuous part (incl. degenerate). */
export function absLaw(d: Distribution): AbsLaw | DiscreteLaw {
  switch (d.kind) {
    case 'gaussian':
      check(Number.isFinite(d.mean) && Number.isFinite(d.std) && d.std >= 0, 'gaussian needs finite mean and std >= 0');
      if (d.std === 0) return { values: [d.mean], probs: [1] };
      return gaussianAbs(Math.abs(d.mean), d.std);
    case 'rectified':
      check(Number.isFinite(d.mean) && Number.isFinite(d.std) && d.std >= 0, 'rectified needs finite mean and std >= 0');
      if (d.std === 0) return { values: [Math.max(0, d.mean)], probs: [1] };
      return rectifiedAbs(d.mean, d.std);
    case 'uniform':
      check(Number.isFinite(d.lo) && Number.isFinite(d.hi) && d.lo <= d.hi, 'uniform needs finite lo <= hi');
      if (d.lo === d.hi) return { values: [d.lo], probs: [1] };
      return uniformAbs(d.lo, d.hi);
    case 'laplace':
      check(Number.isFinite(d.mean) && Number.isFinite(d.scale) && d.scale >= 0, 'laplace needs finite mean and scale >= 0');
      if (d.scale === 0) return { values: [d.mean], probs: [1] };
      return laplaceAbs(Math.abs(d.mean), d.scale);
    case 'discrete': {
      check(d.values.length === d.weights.length && d.values.length > 0, 'discrete needs as many weights as values (at least one)');
      check(d.values.every(Number.isFinite), 'discrete values must be finite');
      check(d.weights.every((w) => Number.isFinite(w) && w >= 0), 'discrete weights must be finite and >= 0');
      const total = d.weights.reduce((s, w) => s + w, 0);
      check(total > 0, 'discrete weights must not all be zero');
      return { values: [...d.values], probs: d.weights.map((w) => w / total) };
    }
  }
}

export function isDiscrete(law: AbsLaw | DiscreteLaw): law is DiscreteLaw {
  return 'probs' in law;
}

/** |x| for x ~ N(μ, σ²), μ >= 0: density φ((a-μ)/σ)/σ + φ((a+μ)/σ)/σ. */
function gaussianAbs(mu: number, sigma: number): AbsLaw {
  return {
    atomZero: 0,
    pdf: (a) => (normalPdf((a - mu) / sigma) + normalPdf((a + mu) / sigma)) / sigma,
    mass: (u, v) => normalMass((u - mu) / sigma, (v - mu) / sigma) + normalMass((u + mu) / sigma, (v + mu) / sigma),
    tail: (a) => normalTail((a - mu) / sigma) + normalTail((a + mu) / sigma),
    secondMoment: mu * mu + sigma * sigma,
    lo: Math.max(0, mu - GAUSS_K * sigma),
    hi: mu + GAUSS_K * sigma,
    breaks: [],
    scale: sigma,
  };
}

/** x = max(0, z), z ~ N(μ, σ²): an atom Q(μ/σ) at 0 and the density of z on (0, ∞). */
function rectifiedAbs(mu: number, sigma: number): AbsLaw {
  const lo = Math.max(0, mu - GAUSS_K * sigma);
  const hi = Math.max(0, mu + GAUSS_K * sigma);
  const pdf = (a: number): number => normalPdf((a - mu) / sigma) / sigma;
  // E[max(0,z)²] = (μ²+σ²)Φ(μ/σ) + μσφ(μ/σ): every term is positive for μ >= 0; for μ < 0 the
  // two terms cancel, so integrate a²·pdf directly instead.
  const t = mu / sigma;
  const secondMoment =
    mu >= 0
      ? (mu * mu + sigma * sigma) * (1 - normalTail(t)) + mu * sigma * normalPdf(t)
      : integrate((a) => a * a * pdf(a), lo, hi, sigma / 2);
  return {
    atomZero: normalTail(t),
    pdf,
    mass: (u, v) => normalMass((Math.max(u, 0) - mu) / sigma, (Math.max(v, 0) - mu) / sigma),
    tail: (a) => normalTail((Math.max(a, 0) - mu) / sigma),
    secondMoment,
    lo,
    hi,
    breaks: [],
    scale: sigma,
  };
}

/** x ~ U(lo, hi): |x| has a piecewise-constant density (two overlapping pieces when lo < 0 < hi). */
function uniformAbs(lo: number, hi: number): AbsLaw {
  const width = hi - lo;
  // Length of [u, v] ∩ [lo, hi] plus length of [-v, -u] ∩ [lo, hi].
  const overlap = (u: number, v: number): number =>
    Math.max(0, Math.min(v, hi) - Math.max(u, lo)) + Math.max(0, Math.min(-u, hi) - Math.max(-v, lo));
  const absLo = lo <= 0 && hi >= 0 ? 0 : Math.min(Math.abs(lo), Math.abs(hi));
  const absHi = Math.max(Math.abs(lo), Math.abs(hi));
  const breaks = [Math.abs(lo), Math.abs(hi)].filter((b) => b > absLo && b < absHi);
  return {
    atomZero: 0,
    pdf: (a) => ((a > lo && a < hi ? 1 : 0) + (-a > lo && -a < hi ? 1 : 0)) / width,
    mass: (u, v) => (v > u ? overlap(u, v) / width : 0),
    tail: (a) => overlap(a, absHi) / width,
    secondMoment: (lo * lo + lo * hi + hi * hi) / 3,
    lo: absLo,
    hi: absHi,
    breaks,
    scale: Infinity,
  };
}

/** |x| for x ~ Laplace(μ, b), μ >= 0; kink of the density at μ. */
function laplaceAbs(mu: number, b: number): AbsLaw {
  // P(t1 < x < t2) from the two exponential branches, with expm1 so narrow intervals keep precision.
  const massX = (t1: number, t2: number): number => {
    if (!(t2 > t1)) return 0;
    if (t2 <= mu) return -0.5 * Math.exp((t2 - mu) / b) * Math.expm1(-(t2 - t1) / b);
    if (t1 >= mu) return -0.5 * Math.exp(-(t1 - mu) / b) * Math.expm1(-(t2 - t1) / b);
    return massX(t1, mu) + massX(mu, t2);
  };
  const tailX = (t: number): number => (t >= mu ? 0.5 * Math.exp(-(t - mu) / b) : 1 - 0.5 * Math.exp((t - mu) / b));
  const lo = Math.max(0, mu - LAPLACE_K * b);
  return {
    atomZero: 0,
    pdf: (a) => (Math.exp(-Math.abs(a - mu) / b) + Math.exp(-(a + mu) / b)) / (2 * b),
    mass: (u, v) => massX(u, v) + massX(-v, -u),
    // P(|x| > a) = P(x > a) + P(x < -a); the second is always a left-branch tail.
    tail: (a) => tailX(a) + 0.5 * Math.exp((-a - mu) / b),
    secondMoment: mu * mu + 2 * b * b,
    lo,
    hi: mu + LAPLACE_K * b,
    breaks: mu > lo ? [mu] : [],
    scale: b,
  };
}
