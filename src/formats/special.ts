/**
 * Special functions and quadrature for risk prediction: a complementary error function that keeps
 * its relative accuracy deep in the tail (fractions down to 1e-9 and far below must be right to
 * 1e-3 relative), normal probabilities built on it, and Gauss–Legendre quadrature.
 */

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const INV_SQRT_PI = 1 / Math.sqrt(Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * erf for 0 <= x < ~3 from the all-positive series
 *   erf(x) = 2/√π · e^{-x²} · Σ_{n≥0} 2^n x^{2n+1} / (1·3·5·…·(2n+1)),
 * which, unlike the alternating Taylor series, has no cancellation.
 */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/**
 * erfc for x >= 2.5 from its continued fraction
 *   erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
 * evaluated by the modified Lentz method; relative accuracy ~1e-15 until e^{-x²} underflows.
 */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let C = x;
  let D = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    D = x + a * D;
    D = D === 0 ? 1 / tiny : 1 / D;
    C = x + a / C;
    if (C === 0) C = tiny;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return (INV_SQRT_PI * Math.exp(-x * x)) / f;
}

/** Complementary error function, relative error ~1e-14 for all x where the result is normal. */
export function erfc(x: number): number {
  if (x !== x) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x === Infinity) return 0;
  if (x < 2.5) return 1 - erfSeries(x);
  return erfcContinuedFraction(x);
}

/** Standard normal density. */
export function normalPdf(z: number): number {
  return INV_SQRT_2PI * Math.exp(-0.5 * z * z);
}

/** Upper tail of the standard normal, P(Z > z), accurate in relative terms for large z. */
export function normalTail(z: number): number {
  return 0.5 * erfc(z * Math.SQRT1_2);
}

/**
 * P(z1 < Z < z2) for standard normal Z without catastrophic cancellation: differences of tails
 * taken on the side where both are small, or Gauss–Legendre on φ when the interval is so narrow
 * (relative to how fast φ changes there) that any difference of tails would cancel.
 */
export function normalMass(z1: number, z2: number): number {
  if (!(z2 > z1)) return 0;
  const reach = Math.max(1, Math.abs(z1), Math.abs(z2));
  if ((z2 - z1) * reach <= 0.5) return integrate(normalPdf, z1, z2);
  if (z1 >= 0) return normalTail(z1) - normalTail(z2);
  if (z2 <= 0) return normalTail(-z2) - normalTail(-z1);
  return 1 - normalTail(z2) - normalTail(-z1);
}

/**
 * Gauss–Legendre nodes and weights on [-1, 1], by Newton's method on the Legendre polynomial P_n
 * (three-term recurrence), starting from the usual cosine estimate of each root.
 */
export function gaussLegendre(n: number): { nodes: Float64Array; weights: Float64Array } {
  const nodes = new Float64Array(n);
  const weights = new Float64Array(n);
  for (let i = 0; i < Math.ceil(n / 2); i++) {
    let z = Math.cos((Math.PI * (i + 0.75)) / (n + 0.5));
    let dp = 0;
    for (let iter = 0; iter < 100; iter++) {
      let p0 = 1;
      let p1 = z;
      for (let k = 2; k <= n; k++) {
        const p2 = ((2 * k - 1) * z * p1 - (k - 1) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      dp = (n * (z * p1 - p0)) / (z * z - 1);
      const dz = p1 / dp;
      z -= dz;
      if (Math.abs(dz) < 1e-16) break;
    }
    nodes[i] = -z;
    nodes[n - 1 - i] = z;
    weights[i] = weights[n - 1 - i] = 2 / ((1 - z * z) * dp * dp);
  }
  return { nodes, weights };
}

const GL = gaussLegendre(10);

/**
 * ∫_a^b fn, by 10-point Gauss–Legendre on ceil((b-a)/maxWidth) equal pieces. Exact for polynomials
 * of degree 19; for an analytic fn varying on a length L, pieces of width ≤ L/2 give ~1e-15.
 */
export function integrate(fn: (x: number) => number, a: number, b: number, maxWidth = Infinity): number {
  if (!(b > a)) return 0;
  const pieces = Number.isFinite(maxWidth) ? Math.max(1, Math.ceil((b - a) / maxWidth)) : 1;
  const h = (b - a) / pieces;
  let total = 0;
  for (let p = 0; p < pieces; p++) {
    const lo = a + p * h;
    const hi = p === pieces - 1 ? b : lo + h;
    const mid = (lo + hi) / 2;
    const half = (hi - lo) / 2;
    let s = 0;
    for (let i = 0; i < GL.nodes.length; i++) s += GL.weights[i]! * fn(mid + half * GL.nodes[i]!);
    total += s * half;
  }
  return total;
}
