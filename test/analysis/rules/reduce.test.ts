import { describe, expect, it } from 'vitest';
import { distMoments } from '../../../src/analysis/quadrature.js';
import { reduceExtent, rules } from '../../../src/analysis/rules/reduce.js';
import { gaussianScale, type PredictedDistribution, type Scale } from '../../../src/analysis/scale.js';
import { DataType } from '../../../src/onnx/dtype.js';
import { draw, stats } from '../../helpers/mc.js';
import { backwardContext, ruleContext, type NodeSpec } from '../../helpers/rule-context.js';

function scaleFor(dist: PredictedDistribution): Scale {
  const m = distMoments(dist);
  return { mean: m.mean, meanSquare: m.meanSquare, dist, absmax: null, confidence: 'high' };
}

/** Reduce `groups` groups of n draws with `f` and compare the predicted moments (5 SE). */
function check(pred: Scale, dist: PredictedDistribution, n: number, f: (xs: Float64Array) => number, groups = 40_000, k = 5): void {
  const xs = draw(dist, n * groups, 17);
  const ys = new Float64Array(groups);
  for (let g = 0; g < groups; g++) ys[g] = f(xs.subarray(g * n, (g + 1) * n));
  const s = stats(ys);
  // (floor 1e-6: events rarer than the sample can show, e.g. min of 16 rectified ≠ 0)
  expect(Math.abs(pred.mean - s.mean)).toBeLessThanOrEqual(k * s.seMean + 1e-6);
  expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThanOrEqual(k * s.seMeanSquare + 1e-6);
}

const sum = (xs: Float64Array): number => xs.reduce((a, b) => a + b, 0);

function fwd(spec: NodeSpec): Scale {
  return rules[spec.op]!.forward(ruleContext(spec))[0]!;
}

const gauss: PredictedDistribution = { kind: 'gaussian', mean: 0.3, std: 1.2 };
const rect: PredictedDistribution = { kind: 'rectified', mean: -0.2, std: 1 };

describe('axes and n', () => {
  it('reads axes from the attribute before opset 18 and from the input after', () => {
    const shape = [2, 3, 4, 5];
    expect(reduceExtent(ruleContext({ op: 'ReduceMean', attrs: { axes: [2, 3] }, inputs: [{ scale: gaussianScale(0, 1), shape }], opset: 13 })).n).toBe(20);
    expect(reduceExtent(ruleContext({ op: 'ReduceMean', inputs: [{ scale: gaussianScale(0, 1), shape }, { constant: [-1], dtype: DataType.INT64, shape: [1] }], opset: 18 })).n).toBe(5);
    expect(reduceExtent(ruleContext({ op: 'ReduceSum', inputs: [{ scale: gaussianScale(0, 1), shape }, { constant: [1], dtype: DataType.INT64, shape: [1] }], opset: 13 })).n).toBe(3);
    expect(reduceExtent(ruleContext({ op: 'ReduceSum', attrs: { axes: [0, 1] }, inputs: [{ scale: gaussianScale(0, 1), shape }], opset: 11 })).n).toBe(6);
    // no axes: all, unless noop_with_empty_axes
    expect(reduceExtent(ruleContext({ op: 'ReduceMax', inputs: [{ scale: gaussianScale(0, 1), shape }], opset: 18 })).n).toBe(120);
    expect(reduceExtent(ruleContext({ op: 'ReduceMax', attrs: { noop_with_empty_axes: 1 }, inputs: [{ scale: gaussianScale(0, 1), shape }], opset: 18 })).identity).toBe(true);
    expect(reduceExtent(ruleContext({ op: 'GlobalAveragePool', inputs: [{ scale: gaussianScale(0, 1), shape }] })).n).toBe(20);
    // symbolic reduced dim: unknown
    expect(reduceExtent(ruleContext({ op: 'ReduceMean', attrs: { axes: [1] }, inputs: [{ scale: gaussianScale(0, 1), shape: [2, 'seq', 4] }], opset: 13 })).n).toBeNull();
  });
});

describe('forward against Monte Carlo', () => {
  const shape = [4, 16];
  const axes = { axes: [1] };
  const cases: [string, (xs: Float64Array) => number][] = [
    ['ReduceMean', (xs) => sum(xs) / xs.length],
    ['ReduceSum', sum],
    ['ReduceSumSquare', (xs) => xs.reduce((a, b) => a + b * b, 0)],
    ['ReduceL1', (xs) => xs.reduce((a, b) => a + Math.abs(b), 0)],
    ['ReduceL2', (xs) => Math.sqrt(xs.reduce((a, b) => a + b * b, 0))],
    ['ReduceMax', (xs) => Math.max(...xs)],
    ['ReduceMin', (xs) => Math.min(...xs)],
  ];
  for (const [op, f] of cases) {
    for (const [name, dist] of [
      ['gaussian', gauss],
      ['rectified', rect],
    ] as const) {
      it(`${op} of 16 ${name}`, () => {
        const pred = fwd({ op, attrs: axes, inputs: [{ scale: scaleFor(dist), shape }], opset: 12 });
        check(pred, dist, 16, f);
      });
    }
  }

  it('ReduceLogSumExp of 64 N(0,1) (law of large numbers regime, 3% relative)', () => {
    const dist: PredictedDistribution = { kind: 'gaussian', mean: 0, std: 1 };
    const pred = fwd({ op: 'ReduceLogSumExp', attrs: { axes: [1] }, inputs: [{ scale: scaleFor(dist), shape: [4, 64] }], opset: 13 });
    const xs = draw(dist, 64 * 20000, 3);
    const ys = new Float64Array(20000);
    for (let g = 0; g < ys.length; g++) ys[g] = Math.log(xs.subarray(g * 64, (g + 1) * 64).reduce((a, b) => a + Math.exp(b), 0));
    const s = stats(ys);
    expect(Math.abs(pred.mean - s.mean) / s.mean).toBeLessThan(0.03);
    expect(Math.abs(pred.meanSquare - s.meanSquare) / s.meanSquare).toBeLessThan(0.06);
  });

  it('ReduceLogSum of positive values', () => {
    const dist: PredictedDistribution = { kind: 'gaussian', mean: 2, std: 0.5 };
    const pred = fwd({ op: 'ReduceLogSum', attrs: { axes: [1] }, inputs: [{ scale: scaleFor(dist), shape: [4, 16] }], opset: 13 });
    check(pred, dist, 16, (xs) => Math.log(sum(xs)));
  });

  it('ReduceProd of 3: E[Π] = μⁿ, E[Π²] = (E x²)ⁿ, low confidence', () => {
    const dist: PredictedDistribution = { kind: 'gaussian', mean: 1, std: 0.3 };
    const pred = fwd({ op: 'ReduceProd', attrs: { axes: [1] }, inputs: [{ scale: scaleFor(dist), shape: [4, 3] }], opset: 13 });
    expect(pred.confidence).toBe('low');
    check(pred, dist, 3, (xs) => xs.reduce((a, b) => a * b, 1));
  });

  it('ReduceMax over a large n uses the exact order statistic (n = 4096)', () => {
    const dist: PredictedDistribution = { kind: 'gaussian', mean: 0, std: 1 };
    const pred = fwd({ op: 'ReduceMax', inputs: [{ scale: scaleFor(dist), shape: [4096] }], opset: 18 });
    check(pred, dist, 4096, (xs) => Math.max(...xs), 600);
  });

  it('GlobalAveragePool and GlobalMaxPool over H×W', () => {
    const shape = [1, 8, 3, 3];
    const avg = fwd({ op: 'GlobalAveragePool', inputs: [{ scale: scaleFor(rect), shape }] });
    check(avg, rect, 9, (xs) => sum(xs) / 9);
    expect(avg.note).toMatch(/independent/);
    const mx = fwd({ op: 'GlobalMaxPool', inputs: [{ scale: scaleFor(rect), shape }] });
    check(mx, rect, 9, (xs) => Math.max(...xs));
  });

  it('closed forms: mean μ, variance σ²/n; sum nμ, nσ²', () => {
    const x = gaussianScale(0.5, 2);
    const m = fwd({ op: 'ReduceMean', attrs: { axes: [1] }, inputs: [{ scale: x, shape: [3, 100] }], opset: 13 });
    expect(m.mean).toBeCloseTo(0.5, 14);
    expect(m.meanSquare).toBeCloseTo(0.25 + 4 / 100, 14);
    const s = fwd({ op: 'ReduceSum', attrs: { axes: [1] }, inputs: [{ scale: x, shape: [3, 100] }], opset: 11 });
    expect(s.mean).toBeCloseTo(50, 12);
    expect(s.meanSquare).toBeCloseTo(2500 + 400, 10);
  });

  it('unknown n: mean keeps μ with low confidence, sum is unknown', () => {
    const x = gaussianScale(0.5, 2);
    const m = fwd({ op: 'ReduceMean', attrs: { axes: [1] }, inputs: [{ scale: x, shape: [3, 'n'] }], opset: 13 });
    expect(m.confidence).toBe('low');
    expect(m.mean).toBe(0.5);
    const s = fwd({ op: 'ReduceSum', inputs: [{ scale: x, shape: [3, 'n'] }, { constant: [1], dtype: DataType.INT64, shape: [1] }], opset: 13 });
    expect(s.confidence).toBe('unknown');
  });

  it('ArgMax gives no scale; TopK values are the tail', () => {
    expect(fwd({ op: 'ArgMax', inputs: [{ scale: gaussianScale(0, 1), shape: [4, 16] }], outputs: [{ dtype: DataType.INT64 }] })).toBeNull();
    const dist: PredictedDistribution = { kind: 'gaussian', mean: 0, std: 1 };
    const ctx = ruleContext({ op: 'TopK', inputs: [{ scale: scaleFor(dist), shape: [4, 32] }, { constant: [4], dtype: DataType.INT64, shape: [1] }], outputs: [{}, { dtype: DataType.INT64 }], opset: 11 });
    const [vals, idx] = rules.TopK!.forward(ctx);
    expect(idx).toBeNull();
    const xs = draw(dist, 32 * 20000, 5);
    const tops: number[] = [];
    for (let g = 0; g < 20000; g++) tops.push(...Array.from(xs.subarray(g * 32, (g + 1) * 32)).sort((a, b) => b - a).slice(0, 4));
    const s = stats(tops);
    expect(Math.abs(vals!.mean - s.mean)).toBeLessThan(0.01 * s.mean);
    expect(Math.abs(vals!.meanSquare - s.meanSquare)).toBeLessThan(0.02 * s.meanSquare);
  });
});

describe('backward', () => {
  it('ReduceMean: ∂x = g/n; ReduceSum: ∂x = g; ReduceMax: g at 1 of n', () => {
    const g = gaussianScale(0, 1);
    const spec = (op: string): NodeSpec => ({ op, attrs: { axes: [1] }, inputs: [{ scale: gaussianScale(0, 1), shape: [4, 8] }], opset: 13 });
    expect(rules.ReduceMean!.backward!(backwardContext(spec('ReduceMean'), [null], [g]))[0]!.meanSquare).toBeCloseTo(1 / 64, 14);
    expect(rules.ReduceSum!.backward!(backwardContext(spec('ReduceSum'), [null], [g]))[0]!.meanSquare).toBeCloseTo(1, 14);
    const mx = rules.ReduceMax!.backward!(backwardContext(spec('ReduceMax'), [null], [g]))[0]!;
    expect(mx.meanSquare).toBeCloseTo(1 / 8, 14);
    expect(mx.fracZero).toBeCloseTo(7 / 8, 14);
    const ss = rules.ReduceSumSquare!.backward!(backwardContext({ ...spec('ReduceSumSquare'), inputs: [{ scale: gaussianScale(0, 2), shape: [4, 8] }] }, [null], [g]))[0]!;
    expect(ss.meanSquare).toBeCloseTo(16, 12);
  });
});
