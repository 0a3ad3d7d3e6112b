import { describe, expect, it } from 'vitest';
import { analyzeModel } from '../../../src/analysis/analyze.js';
import { distRisk } from '../../../src/analysis/risk.js';
import { rules } from '../../../src/analysis/rules/binary.js';
import { gaussianScale, type PredictedDistribution, type Scale } from '../../../src/analysis/scale.js';
import { parseFormat } from '../../../src/formats/index.js';
import { RiskAccumulator } from '../../../src/formats/risk.js';
import { GraphBuilder } from '../../../src/onnx/builder.js';
import { DataType } from '../../../src/onnx/dtype.js';
import { Model } from '../../../src/onnx/model.js';
import { draw, gaussians, stats } from '../../helpers/mc.js';
import { backwardContext, chainContexts, ruleContext, type NodeSpec } from '../../helpers/rule-context.js';

const fwd = (spec: NodeSpec): Scale => rules[spec.op]!.forward(ruleContext(spec))[0]!;
const F32_MIN = -3.4028234663852886e38;

function scaleOfDist(dist: PredictedDistribution, xs: Float64Array): Scale {
  const s = stats(xs);
  return { mean: s.mean, meanSquare: s.meanSquare, dist, absmax: null, confidence: 'high' };
}

function expectMoments(pred: Scale, ys: ArrayLike<number>): void {
  const s = stats(ys);
  expect(Math.abs(pred.mean - s.mean)).toBeLessThanOrEqual(5 * s.seMean + 1e-12);
  expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThanOrEqual(5 * s.seMeanSquare + 1e-12);
}

const N = 200_000;
const a = gaussians(N, 0.4, 1.3, 1);
const b = gaussians(N, -0.7, 0.6, 2);
const A = gaussianScale(0.4, 1.3);
const B = gaussianScale(-0.7, 0.6);

describe('Add / Sub / Mul of independent operands (PRIMER §3)', () => {
  it('Add: means add, variances add', () => {
    expectMoments(fwd({ op: 'Add', inputs: [{ scale: A, shape: [N] }, { scale: B, shape: [N] }] }), a.map((x, i) => x + b[i]!));
  });
  it('Sub', () => {
    expectMoments(fwd({ op: 'Sub', inputs: [{ scale: A, shape: [N] }, { scale: B, shape: [N] }] }), a.map((x, i) => x - b[i]!));
  });
  it('Mul: E[(ab)²] = E[a²]E[b²], and the law of ab gives the right FP8 underflow', () => {
    const ab = a.map((x, i) => x * b[i]!);
    const pred = fwd({ op: 'Mul', inputs: [{ scale: A, shape: [N] }, { scale: B, shape: [N] }] });
    expectMoments(pred, ab);
    const f = parseFormat('e4m3');
    const acc = new RiskAccumulator([f]);
    acc.add(ab);
    const measured = acc.result().formats.e4m3!;
    const predicted = distRisk(pred.dist, [f]).e4m3!;
    expect(Math.abs(predicted.underflow - measured.underflow)).toBeLessThan(0.2 * measured.underflow + 1e-3);
  });
  it('by a constant: scaled exactly, shape kept', () => {
    const pred = fwd({ op: 'Mul', inputs: [{ scale: { ...A, dist: { kind: 'rectified', mean: 0.4, std: 1.3 } }, shape: [N] }, { scale: gaussianScale(-2, 0), shape: [], constant: [-2] }] });
    expect(pred.mean).toBeCloseTo(-0.8, 12);
    expect(pred.meanSquare).toBeCloseTo(4 * A.meanSquare, 12);
    const c = fwd({ op: 'Add', inputs: [{ scale: A, shape: [N] }, { scale: gaussianScale(3, 0), shape: [], constant: [3] }] });
    expect(c.mean).toBeCloseTo(3.4, 12);
    expect(c.dist).toEqual({ kind: 'gaussian', mean: 3.4, std: 1.3 });
  });
});

describe('Add with a stored mask keeps the mask fill as a part of the law', () => {
  it('scores + causal mask → mixture with the float32-min part, overflowing every format', () => {
    const mask = [0, F32_MIN, F32_MIN, 0, 0, F32_MIN, 0, 0, 0].map(Math.fround);
    const maskScale: Scale = { mean: 0, meanSquare: 0, dist: { kind: 'discrete', values: [0, Math.fround(F32_MIN)], weights: [6 / 9, 3 / 9] }, absmax: 3.4e38, confidence: 'exact' };
    const pred = fwd({ op: 'Add', inputs: [{ scale: gaussianScale(0, 0.05), shape: [4, 3, 3] }, { scale: maskScale, shape: [3, 3], constant: mask }] });
    expect(pred.note).toMatch(/33\.3% of elements at the mask fill/);
    const risk = distRisk(pred.dist, ['fp16', 'bf16', 'e4m3', 'e5m2'].map(parseFormat));
    for (const f of ['fp16', 'bf16', 'e4m3', 'e5m2']) expect(risk[f]!.overflow).toBeCloseTo(1 / 3, 10);
  });
});

describe('Div', () => {
  it('by an activation with a narrow positive law: E[1/b] and E[1/b²] by integration', () => {
    const d = gaussians(N, 2, 0.2, 3);
    const pred = fwd({ op: 'Div', inputs: [{ scale: A, shape: [N] }, { scale: gaussianScale(2, 0.2), shape: [N] }] });
    expectMoments(pred, a.map((x, i) => x / d[i]!));
  });
  it('by a constant', () => {
    const pred = fwd({ op: 'Div', inputs: [{ scale: A, shape: [N] }, { scale: gaussianScale(4, 0), shape: [], constant: [4] }] });
    expect(pred.meanSquare).toBeCloseTo(A.meanSquare / 16, 12);
  });
});

describe('Pow with a constant exponent: pushforward of the Gaussian', () => {
  it('x³: moments, and the exact underflow shape in fp16 and e4m3', () => {
    const x = gaussians(N, 0.01, 0.22, 4);
    const y = x.map((v) => v ** 3);
    const pred = fwd({ op: 'Pow', inputs: [{ scale: gaussianScale(0.01, 0.22), shape: [N] }, { scale: gaussianScale(3, 0), shape: [], constant: [3] }] });
    expectMoments(pred, y);
    expect(pred.dist.kind).toBe('pushforward');
    const fs = ['fp16', 'e4m3', 'e5m2'].map(parseFormat);
    const acc = new RiskAccumulator(fs);
    acc.add(y);
    const m = acc.result().formats;
    const p = distRisk(pred.dist, fs);
    for (const f of fs) {
      expect(Math.abs(p[f.name]!.underflow - m[f.name]!.underflow)).toBeLessThan(0.003 + 0.05 * m[f.name]!.underflow);
      expect(Math.abs(p[f.name]!.sqnrDb - m[f.name]!.sqnrDb)).toBeLessThan(0.5);
    }
  });
  it('x² and √x', () => {
    const x = gaussians(N, 1, 0.3, 5);
    expectMoments(fwd({ op: 'Pow', inputs: [{ scale: gaussianScale(1, 0.3), shape: [N] }, { scale: gaussianScale(2, 0), shape: [], constant: [2] }] }), x.map((v) => v * v));
    const r = draw({ kind: 'rectified', mean: 0.5, std: 1 }, N, 6);
    const rs = scaleOfDist({ kind: 'rectified', mean: 0.5, std: 1 }, r);
    expectMoments(fwd({ op: 'Pow', inputs: [{ scale: rs, shape: [N] }, { scale: gaussianScale(0.5, 0), shape: [], constant: [0.5] }] }), r.map(Math.sqrt));
  });
});

describe('Where', () => {
  it('with a stored condition: the mixture of both branches with the real share', () => {
    const cond = [1, 0, 0, 0, 1, 0, 0, 0];
    const pred = fwd({ op: 'Where', inputs: [{ scale: null, dtype: DataType.BOOL, shape: [8], constant: cond }, { scale: A, shape: [8] }, { scale: B, shape: [8] }] });
    expect(pred.mean).toBeCloseTo(0.25 * A.mean + 0.75 * B.mean, 12);
    expect(pred.meanSquare).toBeCloseTo(0.25 * A.meanSquare + 0.75 * B.meanSquare, 12);
  });
  it('guarding NaN (Where(IsNaN(p), 0, p)) passes p through', () => {
    const [isnan, wh] = chainContexts([
      { op: 'IsNaN', inputs: [{ scale: A, shape: [8] }], outputs: [{ shape: [8], dtype: DataType.BOOL }] },
      { op: 'Where', inputs: [{ fromPrevious: true, dtype: DataType.BOOL, shape: [8] }, { scale: gaussianScale(0, 0), shape: [], constant: [0] }, { scale: A, shape: [8] }] },
    ]);
    void isnan;
    const out = rules.Where!.forward(wh!)[0]!;
    expect(out.mean).toBe(A.mean);
    expect(out.note ?? '').not.toMatch(/unknown/);
  });
  it('an unknown condition is half-half with low confidence', () => {
    const pred = fwd({ op: 'Where', inputs: [{ scale: null, dtype: DataType.BOOL, shape: [8] }, { scale: A, shape: [8] }, { scale: B, shape: [8] }] });
    expect(pred.confidence).toBe('low');
  });
});

describe('Min / Max / Sum / Mean', () => {
  it('Max with a constant: clip of the law', () => {
    expectMoments(fwd({ op: 'Max', inputs: [{ scale: A, shape: [N] }, { scale: gaussianScale(0.5, 0), shape: [], constant: [0.5] }] }), a.map((v) => Math.max(v, 0.5)));
  });
  it('Min of two activations', () => {
    expectMoments(fwd({ op: 'Min', inputs: [{ scale: A, shape: [N] }, { scale: B, shape: [N] }] }), a.map((v, i) => Math.min(v, b[i]!)));
  });
  it('Sum and Mean of three', () => {
    const c = gaussians(N, 1, 0.1, 7);
    const C = gaussianScale(1, 0.1);
    const inputs = [{ scale: A, shape: [N] }, { scale: B, shape: [N] }, { scale: C, shape: [N] }];
    expectMoments(fwd({ op: 'Sum', inputs }), a.map((v, i) => v + b[i]! + c[i]!));
    expectMoments(fwd({ op: 'Mean', inputs }), a.map((v, i) => (v + b[i]! + c[i]!) / 3));
  });
});

describe('backward (PRIMER §4)', () => {
  it('Add passes g to both; a broadcast bias sums it over the rows', () => {
    const rows = 64;
    const spec: NodeSpec = { op: 'Add', inputs: [{ scale: A, shape: [rows, 8] }, { scale: B, shape: [8] }], outputs: [{ shape: [rows, 8] }] };
    const g = rules.Add!.backward!(backwardContext(spec, [null], [gaussianScale(0, 1)]));
    expect(g[0]!.meanSquare).toBeCloseTo(1, 12);
    // Σ over 64 rows of independent unit gradients.
    const gs = gaussians(rows * 8 * 2000, 0, 1, 8);
    const sums = new Float64Array(8 * 2000);
    for (let s = 0; s < 2000; s++) for (let r = 0; r < rows; r++) for (let k = 0; k < 8; k++) sums[s * 8 + k]! += gs[(s * rows + r) * 8 + k]!;
    const st = stats(sums);
    expect(Math.abs(g[1]!.meanSquare - st.meanSquare)).toBeLessThanOrEqual(5 * st.seMeanSquare);
  });
  it('Mul: ∂a = g·b, ∂b = g·a', () => {
    const g = gaussians(N, 0, 1, 9);
    const spec: NodeSpec = { op: 'Mul', inputs: [{ scale: A, shape: [N] }, { scale: B, shape: [N] }], outputs: [{ shape: [N] }] };
    const gr = rules.Mul!.backward!(backwardContext(spec, [null], [gaussianScale(0, 1)]));
    const da = stats(g.map((v, i) => v * b[i]!));
    const db = stats(g.map((v, i) => v * a[i]!));
    expect(Math.abs(gr[0]!.meanSquare - da.meanSquare)).toBeLessThanOrEqual(5 * da.seMeanSquare);
    expect(Math.abs(gr[1]!.meanSquare - db.meanSquare)).toBeLessThanOrEqual(5 * db.seMeanSquare);
  });
  it('Pow: ∂x = g·c·x^(c−1)', () => {
    const x = gaussians(N, 0.3, 0.8, 10);
    const g = gaussians(N, 0, 1, 11);
    const spec: NodeSpec = { op: 'Pow', inputs: [{ scale: gaussianScale(0.3, 0.8), shape: [N] }, { scale: gaussianScale(3, 0), shape: [], constant: [3] }] };
    const gr = rules.Pow!.backward!(backwardContext(spec, [null], [gaussianScale(0, 1)]));
    const d = stats(g.map((v, i) => v * 3 * x[i]! ** 2));
    expect(Math.abs(gr[0]!.meanSquare - d.meanSquare)).toBeLessThanOrEqual(5 * d.seMeanSquare);
  });
});

describe('operands that are functions of one tensor (engine lineage)', () => {
  function run(build: (g: GraphBuilder, x: string) => string): { rms: number; mean: number } {
    const gb = new GraphBuilder('m', { opset: 18 });
    const x = gb.input('x', DataType.FLOAT, [4096]);
    gb.output(build(gb, x), DataType.FLOAT, [4096]);
    const r = analyzeModel(new Model(gb.toModelProto(), null, null), { inputs: { x: 'normal:0.2,1.5' } });
    const out = r.tensors.find((t) => t.kind === 'output')!;
    return { rms: out.rms!, mean: out.mean! };
  }
  const x = gaussians(N, 0.2, 1.5, 12);

  it('x·sigmoid(x) (SiLU) is exact, not the independent product', () => {
    const pred = run((g, v) => g.node('Mul', [v, g.node('Sigmoid', [v])]));
    const s = stats(x.map((v) => v / (1 + Math.exp(-v))));
    expect(Math.abs(pred.mean - s.mean)).toBeLessThanOrEqual(5 * s.seMean + 1e-5);
    expect(Math.abs(pred.rms ** 2 - s.meanSquare)).toBeLessThanOrEqual(5 * s.seMeanSquare + 1e-5);
  });

  it('GELU-tanh decomposed with Pow(x, 3) matches the function', () => {
    const pred = run((g, v) => {
      const half = g.node('Mul', [v, g.scalar(0.5, 'half')]);
      const cube = g.node('Pow', [v, g.scalar(3, 'three')]);
      const inner = g.node('Add', [v, g.node('Mul', [cube, g.scalar(0.044715, 'c')])]);
      const t = g.node('Tanh', [g.node('Mul', [inner, g.scalar(Math.sqrt(2 / Math.PI), 'k')])]);
      return g.node('Mul', [half, g.node('Add', [t, g.scalar(1, 'one')])]);
    });
    const gelu = (v: number): number => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    const s = stats(x.map(gelu));
    expect(Math.abs(pred.mean - s.mean)).toBeLessThanOrEqual(5 * s.seMean + 1e-5);
    expect(Math.abs(pred.rms ** 2 - s.meanSquare)).toBeLessThanOrEqual(5 * s.seMeanSquare + 1e-5);
  });

  it('x − x is exactly zero', () => {
    const pred = run((g, v) => g.node('Sub', [v, v]));
    expect(pred.rms).toBe(0);
  });
});
