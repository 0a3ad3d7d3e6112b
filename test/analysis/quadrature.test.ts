import { describe, expect, it } from 'vitest';
import {
  distMoments,
  erf,
  erfc,
  expectDist,
  extremeOfK,
  gaussExpect,
  gaussExpectPiecewise,
  hermiteRule,
  integrateInterval,
  legendreRule,
  mapDist,
  maxOfKNormal,
  normalCdf,
  normalPdf,
  normalQuantile,
} from '../../src/analysis/quadrature.js';
import { draw, stats } from '../helpers/mc.js';

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

describe('special functions', () => {
  it('erf and erfc match reference values to ~1e-14 relative', () => {
    // Reference values (high-precision tables).
    expect(rel(erf(0.5), 0.5204998778130465)).toBeLessThan(1e-14);
    expect(rel(erf(1), 0.8427007929497149)).toBeLessThan(1e-14);
    expect(rel(erfc(2), 0.004677734981047266)).toBeLessThan(1e-13);
    expect(rel(erfc(3), 2.209049699858544e-5)).toBeLessThan(1e-13);
    expect(rel(erfc(5), 1.5374597944280349e-12)).toBeLessThan(1e-13);
    expect(rel(erfc(10), 2.088487583762545e-45)).toBeLessThan(1e-13);
    expect(erf(-0.7)).toBe(-erf(0.7));
    expect(rel(normalCdf(-10), 7.619853024160527e-24)).toBeLessThan(1e-13);
  });

  it('normal quantile inverts the CDF, including deep tails', () => {
    for (const p of [1e-300, 1e-20, 1e-10, 0.001, 0.1, 0.5, 0.7, 0.975, 1 - 1e-12]) {
      const t = normalQuantile(p);
      expect(rel(normalCdf(t), p)).toBeLessThan(1e-12);
    }
    expect(Math.abs(normalQuantile(0.975) - 1.959963984540054)).toBeLessThan(1e-14);
  });
});

describe('Gauss–Hermite rule', () => {
  it.each([1, 2, 5, 10, 20, 64, 100])('n = %i integrates polynomials of degree ≤ 2n−1 exactly', (n) => {
    const { nodes, weights } = hermiteRule(n);
    // E[t^{2k}] = (2k−1)!!, odd moments 0.
    const maxDeg = Math.min(2 * n - 1, 16);
    for (let deg = 0; deg <= maxDeg; deg++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += weights[i]! * nodes[i]! ** deg;
      let exact = deg % 2 === 1 ? 0 : 1;
      // Scale of the terms that cancel: E[|t|^deg] ≤ (deg)!! (the next even moment).
      let size = 1;
      for (let j = deg - 1 + (deg % 2); j > 0; j -= 2) size *= j;
      for (let j = deg - 1; j > 0 && deg % 2 === 0; j -= 2) exact *= j;
      expect(Math.abs(s - exact)).toBeLessThan(1e-13 * size + 1e-15);
    }
  });

  it('E[exp(z)] = e^{μ+σ²/2} to 1e-13 (n = 64)', () => {
    for (const [m, s] of [
      [0, 1],
      [0.3, 1.2],
      [-1, 2],
    ] as const) {
      expect(rel(gaussExpect(m, s, Math.exp), Math.exp(m + (s * s) / 2))).toBeLessThan(1e-13);
    }
  });

  it('E[tanh] is odd in the mean', () => {
    expect(Math.abs(gaussExpect(0, 1.7, Math.tanh))).toBeLessThan(1e-16);
    expect(gaussExpect(0.4, 1.3, Math.tanh) + gaussExpect(-0.4, 1.3, Math.tanh)).toBeCloseTo(0, 15);
  });

  it('is only algebraically accurate on a kink (why the piecewise rule exists)', () => {
    const gh = gaussExpect(0, 1, (x) => Math.max(0, x), 64);
    const exact = 1 / Math.sqrt(2 * Math.PI);
    expect(rel(gh, exact)).toBeGreaterThan(1e-6);
    expect(rel(gaussExpectPiecewise(0, 1, (x) => Math.max(0, x), [0]), exact)).toBeLessThan(1e-13);
  });
});

describe('Gauss–Legendre', () => {
  it('integrates polynomials and smooth functions on an interval', () => {
    const { nodes, weights } = legendreRule(12);
    let s = 0;
    for (let i = 0; i < 12; i++) s += weights[i]! * nodes[i]! ** 22;
    expect(rel(s, 2 / 23)).toBeLessThan(1e-14);
    expect(rel(integrateInterval(Math.exp, 0, 3), Math.exp(3) - 1)).toBeLessThan(1e-14);
    expect(rel(integrateInterval(Math.abs, -1, 2, [0]), 2.5)).toBeLessThan(1e-14);
  });
});

describe('gaussExpectPiecewise against closed forms (≤ 1e-12 relative)', () => {
  it('ReLU of N(0, σ²): E[y] = σ/√(2π), E[y²] = σ²/2', () => {
    for (const s of [0.01, 1, 3, 1000]) {
      expect(rel(gaussExpectPiecewise(0, s, (x) => Math.max(0, x), [0]), s / Math.sqrt(2 * Math.PI))).toBeLessThan(1e-13);
      expect(rel(gaussExpectPiecewise(0, s, (x) => Math.max(0, x) ** 2, [0]), (s * s) / 2)).toBeLessThan(1e-13);
    }
  });

  it('ReLU of N(μ, σ²): μΦ(μ/σ) + σφ(μ/σ) and (μ²+σ²)Φ + μσφ', () => {
    for (const [m, s] of [
      [0.5, 1],
      [-2, 0.7],
      [3, 0.5],
    ] as const) {
      const a = m / s;
      expect(rel(gaussExpectPiecewise(m, s, (x) => Math.max(0, x), [0]), m * normalCdf(a) + s * normalPdf(a))).toBeLessThan(1e-12);
      // (the closed form itself cancels for μ < 0: compare to 1e-10 there)
      expect(rel(gaussExpectPiecewise(m, s, (x) => Math.max(0, x) ** 2, [0]), (m * m + s * s) * normalCdf(a) + m * s * normalPdf(a))).toBeLessThan(m < 0 ? 1e-10 : 1e-12);
    }
  });

  it('|z|, sign, clip', () => {
    expect(rel(gaussExpectPiecewise(0, 2, Math.abs, [0]), 2 * Math.sqrt(2 / Math.PI))).toBeLessThan(1e-13);
    expect(rel(gaussExpectPiecewise(0.3, 1, Math.sign, [0]), 2 * normalCdf(0.3) - 1)).toBeLessThan(1e-13);
    const clip2 = (x: number): number => Math.min(1, Math.max(-1, x)) ** 2;
    const exact = 2 * normalCdf(1) - 1 - 2 * normalPdf(1) + 2 * (1 - normalCdf(1));
    expect(rel(gaussExpectPiecewise(0, 1, clip2, [-1, 1]), exact)).toBeLessThan(1e-13);
  });

  it('exp with a large σ follows the mass outwards: E[e^z] = e^{σ²/2} for σ = 5', () => {
    expect(rel(gaussExpectPiecewise(0, 5, Math.exp), Math.exp(12.5))).toBeLessThan(1e-12);
  });

  it('a degenerate Gaussian is a point mass', () => {
    expect(gaussExpectPiecewise(2, 0, (x) => x * x)).toBe(4);
  });
});

describe('distributions', () => {
  it('uniform and laplace moments', () => {
    const u = distMoments({ kind: 'uniform', lo: -1, hi: 2 });
    expect(rel(u.mean, 0.5)).toBeLessThan(1e-12);
    expect(rel(u.meanSquare, 1)).toBeLessThan(1e-12);
    const l = distMoments({ kind: 'laplace', mean: 0.5, scale: 2 });
    expect(rel(l.mean, 0.5)).toBeLessThan(1e-10);
    expect(rel(l.meanSquare, 0.25 + 8)).toBeLessThan(1e-10);
  });

  it('composed pushforwards keep their kinks: min(relu(z), 1)', () => {
    const r = mapDist({ kind: 'rectified', mean: 0, std: 1 }, (x) => Math.min(x, 1), 'clip', [1]).dist;
    const m = distMoments(r);
    const exact = normalPdf(0) - normalPdf(1) + 1 - normalCdf(1);
    expect(rel(m.mean, exact)).toBeLessThan(1e-12);
    // and a second layer through an unknown (registered) function
    const r2 = mapDist(r, (x) => (x > 0.5 ? 1 : 0), 'step', [0.5]).dist;
    expect(rel(distMoments(r2).mean, 1 - normalCdf(0.5))).toBeLessThan(1e-12);
  });

  it('skips non-finite values and reports their mass', () => {
    const r = expectDist({ kind: 'gaussian', mean: 0, std: 1 }, [Math.log], [0]);
    expect(r.invalid).toBeCloseTo(0.5, 12);
  });

  it('order statistics: E[max of 2 N(0,1)] = 1/√π, of 3 = 3/(2√π); E[max²] of 2 = 1', () => {
    const m2 = distMoments(extremeOfK({ kind: 'gaussian', mean: 0, std: 1 }, 2, 'max').dist);
    expect(rel(m2.mean, 1 / Math.sqrt(Math.PI))).toBeLessThan(1e-12);
    expect(rel(m2.meanSquare, 1)).toBeLessThan(1e-12);
    const m3 = distMoments(extremeOfK({ kind: 'gaussian', mean: 0, std: 1 }, 3, 'max').dist);
    expect(rel(m3.mean, 3 / (2 * Math.sqrt(Math.PI)))).toBeLessThan(1e-12);
    const min3 = distMoments(extremeOfK({ kind: 'gaussian', mean: 1, std: 2 }, 3, 'min').dist);
    expect(rel(min3.mean, 1 - (2 * 3) / (2 * Math.sqrt(Math.PI)))).toBeLessThan(1e-12);
    expect(maxOfKNormal(0.3, 1)).toBe(0.3);
  });

  it('order statistics of a large sample and of a rectified input match Monte Carlo', () => {
    const k = 1000;
    const m = distMoments(extremeOfK({ kind: 'gaussian', mean: 0, std: 1 }, k, 'max').dist);
    // Reference: E[max of 1000 N(0,1)] = 3.2414717...
    expect(Math.abs(m.mean - 3.241467)).toBeLessThan(1e-4);
    const d = extremeOfK({ kind: 'rectified', mean: -0.5, std: 1 }, 4, 'max').dist;
    const pred = distMoments(d);
    const xs = draw({ kind: 'rectified', mean: -0.5, std: 1 }, 4 * 100000, 7);
    const maxes = new Float64Array(100000);
    for (let i = 0; i < maxes.length; i++) maxes[i] = Math.max(xs[4 * i]!, xs[4 * i + 1]!, xs[4 * i + 2]!, xs[4 * i + 3]!);
    const s = stats(maxes);
    expect(Math.abs(pred.mean - s.mean)).toBeLessThan(5 * s.seMean);
    expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThan(5 * s.seMeanSquare);
  });

  it('order statistics of a discrete distribution are exact', () => {
    const d = extremeOfK({ kind: 'discrete', values: [0, 1], weights: [0.5, 0.5] }, 3, 'max').dist;
    expect(distMoments(d).mean).toBeCloseTo(1 - 0.125, 14);
  });
});
