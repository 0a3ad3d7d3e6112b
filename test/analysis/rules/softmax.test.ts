import { describe, expect, it } from 'vitest';
import { momentsOf } from '../../../src/analysis/dist.js';
import { distRisk } from '../../../src/analysis/risk.js';
import { rules as binary } from '../../../src/analysis/rules/binary.js';
import { rules, softmaxProbLaw } from '../../../src/analysis/rules/softmax.js';
import { gaussianScale, type Scale } from '../../../src/analysis/scale.js';
import { parseFormat } from '../../../src/formats/index.js';
import { RiskAccumulator } from '../../../src/formats/risk.js';
import { gaussians, stats } from '../../helpers/mc.js';
import { backwardContext, chainContexts, ruleContext } from '../../helpers/rule-context.js';

const F32_MIN = -3.4028234663852886e38;

/** Softmax of each row of n logits; masked entries (mask[k] true) get the fill value. */
function softmaxRows(x: Float64Array, n: number, masked?: (row: number, k: number) => boolean): Float64Array {
  const p = new Float64Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    let mx = -Infinity;
    const v = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      v[k] = masked?.(r, k) ? F32_MIN : x[r * n + k]!;
      mx = Math.max(mx, v[k]!);
    }
    let s = 0;
    for (let k = 0; k < n; k++) s += Math.exp(v[k]! - mx);
    for (let k = 0; k < n; k++) p[r * n + k] = Math.exp(v[k]! - mx) / s;
  }
  return p;
}

describe('Softmax: mean exactly 1/n, E[p²] ≈ e^{σ²}/n² (PRIMER §3)', () => {
  const n = 32;
  const rows = 20000;
  for (const sigma of [0.3, 1, 2.5]) {
    it(`logits N(0.4, ${sigma}²)`, () => {
      const x = gaussians(rows * n, 0.4, sigma, 1);
      const s = stats(softmaxRows(x, n));
      const pred = rules.Softmax!.forward(ruleContext({ op: 'Softmax', attrs: { axis: -1 }, inputs: [{ scale: gaussianScale(0.4, sigma), shape: [rows, n] }] }))[0]!;
      expect(pred.mean).toBeCloseTo(1 / n, 12);
      expect(pred.absmax).toBe(1);
      // Fenton–Wilkinson is an approximation of the sum of lognormals: a few % at large σ.
      expect(Math.abs(pred.meanSquare - s.meanSquare) / s.meanSquare).toBeLessThan(sigma > 2 ? 0.08 : 0.02);
      if (sigma < 1) expect(Math.abs(pred.meanSquare - Math.exp(sigma * sigma) / (n * n)) / pred.meanSquare).toBeLessThan(0.02);
    });
  }

  it('the law of p (a logistic pushforward) has the right FP8 underflow share', () => {
    const sigma = 3;
    const x = gaussians(rows * n, 0, sigma, 2);
    const p = softmaxRows(x, n);
    const e4m3 = parseFormat('e4m3');
    const acc = new RiskAccumulator([e4m3]);
    acc.add(p);
    const measured = acc.result().formats.e4m3!;
    const law = softmaxProbLaw(n, sigma * sigma);
    const predicted = distRisk(law, [e4m3]).e4m3!;
    expect(Math.abs(predicted.underflow - measured.underflow)).toBeLessThan(0.03);
    expect(momentsOf(law)!.mean).toBeCloseTo(1 / n, 6);
  });
});

describe('Softmax over masked logits', () => {
  const n = 16;
  const rows = 16;
  const batches = 800;
  // A causal mask [rows, n] stored with float32 min above the diagonal.
  const mask: number[] = [];
  for (let r = 0; r < rows; r++) for (let k = 0; k < n; k++) mask.push(k > r ? F32_MIN : 0);

  it('reads the unmasked count of every row from the stored mask (scores + mask → Softmax)', () => {
    const sigma = 0.8;
    const x = gaussians(batches * rows * n, 0, sigma, 3);
    const p = softmaxRows(x, n, (r, k) => k > r % rows);
    const s = stats(p);
    const maskScale: Scale = {
      mean: 0,
      meanSquare: 0,
      dist: { kind: 'discrete', values: [0, F32_MIN], weights: [136 / 256, 120 / 256] },
      absmax: -F32_MIN,
      confidence: 'exact',
    };
    const [addCtx, smCtx] = chainContexts([
      { op: 'Add', inputs: [{ scale: gaussianScale(0, sigma), shape: [batches, rows, n] }, { scale: maskScale, shape: [rows, n], constant: mask }], outputs: [{ shape: [batches, rows, n] }] },
      { op: 'Softmax', attrs: { axis: -1 }, inputs: [{ fromPrevious: true, shape: [batches, rows, n] }], outputs: [{ shape: [batches, rows, n] }] },
    ]);
    const scores = binary.Add!.forward(addCtx!)[0]!;
    expect(scores.note).toMatch(/mask/);
    smCtx!.inputs[0] = scores;
    const pred = rules.Softmax!.forward(smCtx!)[0]!;
    expect(pred.mean).toBeCloseTo(1 / n, 12);
    expect(pred.fracZero).toBeCloseTo(s.fracZero, 10);
    expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThanOrEqual(5 * s.seMeanSquare + 0.01 * s.meanSquare);
    expect(pred.note).toMatch(/exact zeros/);
  });

  it('without a stored mask, uses the masked share of the logits’ law', () => {
    const sigma = 1;
    const share = 0.25;
    const x = gaussians(20000 * n, 0, sigma, 4);
    // Every row has exactly n·(1 − share) live logits.
    const p = softmaxRows(x, n, (_r, k) => k >= n * (1 - share));
    const s = stats(p);
    const logits: Scale = {
      mean: 0,
      meanSquare: 1,
      dist: {
        kind: 'mixture',
        parts: [
          { weight: 1 - share, dist: { kind: 'gaussian', mean: 0, std: sigma } },
          { weight: share, dist: { kind: 'discrete', values: [F32_MIN], weights: [1] } },
        ],
      },
      absmax: null,
      confidence: 'high',
    };
    const pred = rules.Softmax!.forward(ruleContext({ op: 'Softmax', inputs: [{ scale: logits, shape: [20000, n] }] }))[0]!;
    expect(pred.fracZero).toBeCloseTo(share, 10);
    expect(Math.abs(pred.meanSquare - s.meanSquare) / s.meanSquare).toBeLessThan(0.03);
  });
});

describe('LogSoftmax', () => {
  it('log p = x − logsumexp(x)', () => {
    const n = 10;
    const x = gaussians(20000 * n, 1, 0.7, 5);
    const p = softmaxRows(x, n);
    const s = stats(p.map(Math.log));
    const pred = rules.LogSoftmax!.forward(ruleContext({ op: 'LogSoftmax', inputs: [{ scale: gaussianScale(1, 0.7), shape: [20000, n] }] }))[0]!;
    expect(Math.abs(pred.mean - s.mean) / Math.abs(s.mean)).toBeLessThan(0.02);
    expect(Math.abs(pred.meanSquare - s.meanSquare) / s.meanSquare).toBeLessThan(0.03);
  });
});

describe('Softmax backward', () => {
  it('∂x = p ⊙ (g − Σ p·g): E[∂x²] = E[g²]·(E[p²](1 + n·E[p²]) − 2E[p³])', () => {
    const n = 16;
    const rows = 20000;
    const sigma = 1.2;
    const x = gaussians(rows * n, 0, sigma, 6);
    const g = gaussians(rows * n, 0, 1, 7);
    const p = softmaxRows(x, n);
    const dx = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++) {
      let pg = 0;
      for (let k = 0; k < n; k++) pg += p[r * n + k]! * g[r * n + k]!;
      for (let k = 0; k < n; k++) dx[r * n + k] = p[r * n + k]! * (g[r * n + k]! - pg);
    }
    const s = stats(dx);
    const spec = { op: 'Softmax', attrs: { axis: -1 }, inputs: [{ scale: gaussianScale(0, sigma), shape: [rows, n] }] };
    const out = rules.Softmax!.forward(ruleContext(spec))[0]!;
    const grads = rules.Softmax!.backward!(backwardContext(spec, [out], [gaussianScale(0, 1)]));
    expect(Math.abs(grads[0]!.meanSquare - s.meanSquare) / s.meanSquare).toBeLessThan(0.06);
  });
});
