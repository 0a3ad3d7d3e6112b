import { describe, expect, it } from 'vitest';
import { distMoments } from '../../../src/analysis/quadrature.js';
import { rules, UNARY } from '../../../src/analysis/rules/unary.js';
import { gaussianScale, type PredictedDistribution, type Scale } from '../../../src/analysis/scale.js';
import { DataType } from '../../../src/onnx/dtype.js';
import { draw, stats } from '../../helpers/mc.js';
import { backwardContext, ruleContext, type AttrValue, type InputSpec } from '../../helpers/rule-context.js';

const N = 120_000;

// Independent reference implementations (from the ONNX operator definitions).
const sig = (x: number): number => 1 / (1 + Math.exp(-x));
const erfRef = (x: number): number => {
  // Abramowitz–Stegun 7.1.26 is too coarse; use a Taylor/asymptotic split with plenty of terms.
  const t = Math.abs(x);
  let v: number;
  if (t < 4) {
    let term = t;
    let sum = t;
    for (let k = 1; k < 120; k++) {
      term *= (-t * t) / k;
      sum += term / (2 * k + 1);
    }
    v = (2 / Math.sqrt(Math.PI)) * sum;
  } else v = 1;
  return x < 0 ? -v : v;
};
const REF: Record<string, { f: (x: number) => number; attrs?: Record<string, AttrValue> }> = {
  Relu: { f: (x) => Math.max(0, x) },
  LeakyRelu: { f: (x) => (x >= 0 ? x : 0.1 * x), attrs: { alpha: 0.1 } },
  Elu: { f: (x) => (x >= 0 ? x : 0.5 * (Math.exp(x) - 1)), attrs: { alpha: 0.5 } },
  Selu: { f: (x) => 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * (Math.exp(x) - 1)) },
  Celu: { f: (x) => Math.max(0, x) + Math.min(0, 2 * (Math.exp(x / 2) - 1)), attrs: { alpha: { float: 2 } } },
  Gelu: { f: (x) => 0.5 * x * (1 + erfRef(x / Math.SQRT2)) },
  Swish: { f: (x) => x * sig(x) },
  Sigmoid: { f: sig },
  HardSigmoid: { f: (x) => Math.max(0, Math.min(1, 0.3 * x + 0.4)), attrs: { alpha: 0.3, beta: 0.4 } },
  HardSwish: { f: (x) => (x * Math.max(0, Math.min(1, x / 6 + 0.5))) },
  Tanh: { f: Math.tanh },
  Erf: { f: erfRef },
  Exp: { f: Math.exp },
  Abs: { f: Math.abs },
  Neg: { f: (x) => -x },
  Softplus: { f: (x) => Math.log(1 + Math.exp(x)) },
  Softsign: { f: (x) => x / (1 + Math.abs(x)) },
  Mish: { f: (x) => x * Math.tanh(Math.log(1 + Math.exp(x))) },
  Sin: { f: Math.sin },
  Cos: { f: Math.cos },
  Atan: { f: Math.atan },
  Sinh: { f: Math.sinh },
  Cosh: { f: Math.cosh },
  Asinh: { f: Math.asinh },
  Floor: { f: Math.floor },
  Ceil: { f: Math.ceil },
  Round: { f: (x) => { const r = Math.round(x); return Math.abs(x - Math.trunc(x)) === 0.5 ? (r % 2 === 0 ? r : r - 1) : r; } },
  Sign: { f: Math.sign },
  ThresholdedRelu: { f: (x) => (x > 0.7 ? x : 0), attrs: { alpha: 0.7 } },
  Shrink: { f: (x) => (x < -0.5 ? x + 0.2 : x > 0.5 ? x - 0.2 : 0), attrs: { lambd: 0.5, bias: 0.2 } },
};

function forward(op: string, input: InputSpec, attrs?: Record<string, AttrValue>, extra: InputSpec[] = [], opset = 18): Scale {
  const ctx = ruleContext({ op, attrs, inputs: [input, ...extra], opset });
  return rules[op]!.forward(ctx)[0]!;
}

function expectMatches(pred: Scale, xs: Float64Array, k = 5): void {
  const s = stats(xs);
  expect(Math.abs(pred.mean - s.mean)).toBeLessThanOrEqual(k * s.seMean + 1e-12);
  expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThanOrEqual(k * s.seMeanSquare + 1e-12);
}

const inputs: { name: string; dist: PredictedDistribution }[] = [
  { name: 'N(0,1)', dist: { kind: 'gaussian', mean: 0, std: 1 } },
  { name: 'N(0.7,2.5²)', dist: { kind: 'gaussian', mean: 0.7, std: 2.5 } },
  { name: 'rectified N(-0.3,1)', dist: { kind: 'rectified', mean: -0.3, std: 1 } },
  { name: 'U(-2,3)', dist: { kind: 'uniform', lo: -2, hi: 3 } },
  { name: 'tanh-pushforward', dist: { kind: 'pushforward', mean: 0.2, std: 2, fn: (z) => 3 * Math.tanh(z), label: '3tanh' } },
];

function scaleFor(dist: PredictedDistribution): Scale {
  const m = distMoments(dist);
  return { mean: m.mean, meanSquare: m.meanSquare, dist, absmax: null, confidence: 'high' };
}

describe('generic elementwise rule: forward against Monte Carlo (5 standard errors, 1.2e5 samples)', () => {
  for (const [op, ref] of Object.entries(REF)) {
    it.each(inputs)(`${op} of $name`, ({ dist }) => {
      if (op === 'Sinh' || op === 'Cosh' || op === 'Exp') {
        if (dist.kind === 'gaussian' && dist.std > 2) return; // heavy tails: MC itself is unreliable
      }
      const pred = forward(op, { scale: scaleFor(dist) }, ref.attrs);
      const xs = draw(dist, N, 11).map(ref.f);
      expectMatches(pred, xs);
      expect(Number.isFinite(pred.mean) && Number.isFinite(pred.meanSquare)).toBe(true);
      // The predicted distribution reproduces the predicted moments (risk stays consistent).
      const dm = distMoments(pred.dist, pred);
      expect(Math.abs(dm.meanSquare - pred.meanSquare)).toBeLessThan(1e-9 * Math.max(1, pred.meanSquare));
    });
  }
});

describe('closed forms and special cases', () => {
  it('ReLU of N(0,σ²): E[y²] = σ²/2, E[y] = σ/√(2π), rectified output, half zeros', () => {
    const s = 1.7;
    const y = forward('Relu', { scale: gaussianScale(0, s) });
    expect(y.meanSquare).toBeCloseTo((s * s) / 2, 13);
    expect(y.mean).toBeCloseTo(s / Math.sqrt(2 * Math.PI), 13);
    expect(y.dist).toEqual({ kind: 'rectified', mean: 0, std: s });
    expect(y.fracZero).toBeCloseTo(0.5, 12);
  });

  it('bounded functions report a bound', () => {
    expect(forward('Sigmoid', { scale: gaussianScale(0, 3) }).absmax).toBe(1);
    expect(forward('Tanh', { scale: gaussianScale(0, 3) }).absmax).toBe(1);
    expect(forward('HardSigmoid', { scale: gaussianScale(0, 3) }).absmax).toBe(1);
    expect(forward('Softsign', { scale: gaussianScale(0, 3) }).absmax).toBe(1);
    expect(forward('Relu', { scale: gaussianScale(0, 3) }).absmax).toBeNull();
  });

  it('Gelu tanh approximation', () => {
    const f = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    const pred = forward('Gelu', { scale: gaussianScale(0.2, 1.5) }, { approximate: 'tanh' }, [], 20);
    expectMatches(pred, draw({ kind: 'gaussian', mean: 0.2, std: 1.5 }, N, 3).map(f));
  });

  it('PRelu with a per-channel constant slope is a mixture of leaky ReLUs', () => {
    const slopes = [0.1, 0.2, 0.3, 0.5];
    const pred = forward('PRelu', { scale: gaussianScale(0, 1) }, undefined, [{ constant: slopes, shape: [4, 1, 1] }]);
    const xs = draw({ kind: 'gaussian', mean: 0, std: 1 }, N, 5).map((x, i) => (x >= 0 ? x : slopes[i % 4]! * x));
    expectMatches(pred, xs);
    expect(pred.dist.kind).toBe('mixture');
  });

  it('Clip from constant inputs (opset 11+) and from attributes (opset 6)', () => {
    const f = (x: number): number => Math.min(2, Math.max(-0.5, x));
    const xs = draw({ kind: 'gaussian', mean: 0.3, std: 1.5 }, N, 9).map(f);
    const a = forward('Clip', { scale: gaussianScale(0.3, 1.5) }, undefined, [{ constant: [-0.5], shape: [] }, { constant: [2], shape: [] }], 13);
    expectMatches(a, xs);
    expect(a.absmax).toBe(2);
    const b = forward('Clip', { scale: gaussianScale(0.3, 1.5) }, { min: -0.5, max: { float: 2 } }, [], 6);
    expectMatches(b, xs);
    // A missing max input: clip only from below
    const c = forward('Clip', { scale: gaussianScale(0.3, 1.5) }, undefined, [{ constant: [-0.5], shape: [] }, { omitted: true }], 13);
    expectMatches(c, draw({ kind: 'gaussian', mean: 0.3, std: 1.5 }, N, 9).map((x) => Math.max(-0.5, x)));
  });

  it('Log, Sqrt, Reciprocal away from 0 are confident and accurate', () => {
    const d: PredictedDistribution = { kind: 'gaussian', mean: 5, std: 0.5 };
    for (const [op, f] of [
      ['Log', Math.log],
      ['Sqrt', Math.sqrt],
      ['Reciprocal', (x: number) => 1 / x],
    ] as const) {
      const pred = forward(op, { scale: scaleFor(d) });
      expectMatches(pred, draw(d, N, 13).map(f));
      expect(pred.confidence).toBe('high');
    }
  });

  it('Log, Sqrt, Reciprocal of values near 0: low confidence, a note, never NaN', () => {
    for (const op of ['Log', 'Sqrt', 'Reciprocal']) {
      const pred = forward(op, { scale: gaussianScale(0, 1) });
      expect(pred.confidence).toBe('low');
      expect(pred.note).toMatch(/domain|pole/);
      expect(Number.isFinite(pred.mean) && Number.isFinite(pred.meanSquare)).toBe(true);
      expect(Number.isFinite(distMoments(pred.dist, pred).meanSquare)).toBe(true);
    }
    // Sqrt of a rectified input is fine (sqrt(0) = 0), Log of it is not.
    expect(forward('Sqrt', { scale: scaleFor({ kind: 'rectified', mean: 0, std: 1 }) }).confidence).toBe('high');
    expect(forward('Log', { scale: scaleFor({ kind: 'rectified', mean: 0, std: 1 }) }).confidence).toBe('low');
  });

  it('a constant input is computed exactly from its values', () => {
    const vals = [-2, -1, 0, 0.5, 3];
    const pred = forward('Relu', { constant: vals, shape: [5], scale: null });
    expect(pred.confidence).toBe('exact');
    expect(pred.mean).toBeCloseTo(3.5 / 5, 14);
    expect(pred.meanSquare).toBeCloseTo(9.25 / 5, 14);
  });

  it('a discrete input maps value by value', () => {
    const x: Scale = { mean: 0.5, meanSquare: 0.5, dist: { kind: 'discrete', values: [0, 1], weights: [0.5, 0.5] }, absmax: 1, confidence: 'exact' };
    const y = forward('Exp', { scale: x });
    expect(y.mean).toBeCloseTo((1 + Math.E) / 2, 14);
    expect(y.dist).toEqual({ kind: 'discrete', values: [1, Math.E], weights: [0.5, 0.5] });
  });

  it('int outputs carry no scale', () => {
    const ctx = ruleContext({ op: 'Abs', inputs: [{ scale: null, dtype: DataType.INT64 }], outputs: [{ dtype: DataType.INT64 }] });
    expect(rules.Abs!.forward(ctx)).toEqual([null]);
  });

  it('every table entry yields finite moments on N(0,1) input', () => {
    for (const op of Object.keys(UNARY)) {
      const extra: InputSpec[] = op === 'PRelu' ? [{ constant: [0.25], shape: [1] }] : [];
      const y = forward(op, { scale: gaussianScale(0, 1) }, undefined, extra);
      expect(Number.isFinite(y.mean), op).toBe(true);
      expect(Number.isFinite(y.meanSquare), op).toBe(true);
    }
  });
});

describe('backward: E[∂x²] = E[g²]·E[f′(x)²] against Monte Carlo', () => {
  const derivs: Record<string, (x: number) => number> = {
    Relu: (x) => (x > 0 ? 1 : 0),
    Tanh: (x) => 1 - Math.tanh(x) ** 2,
    Sigmoid: (x) => sig(x) * (1 - sig(x)),
    HardSwish: (x) => (x < -3 ? 0 : x > 3 ? 1 : (2 * x + 3) / 6),
    HardSigmoid: (x) => (x > -2.5 && x < 2.5 ? 0.2 : 0),
    Gelu: (x) => 0.5 * (1 + erfRef(x / Math.SQRT2)) + (x * Math.exp(-x * x / 2)) / Math.sqrt(2 * Math.PI),
    Mish: (x) => {
      const h = 1e-5;
      const m = (v: number): number => v * Math.tanh(Math.log1p(Math.exp(v)));
      return (m(x + h) - m(x - h)) / (2 * h);
    },
    Exp: Math.exp,
  };
  for (const [op, d] of Object.entries(derivs)) {
    it(op, () => {
      const x = gaussianScale(0.3, 1.4);
      const g = gaussianScale(0.1, 0.8);
      const ctx = backwardContext({ op, inputs: [{ scale: x }] }, [null], [g]);
      const gx = rules[op]!.backward!(ctx)[0]!;
      const xs = draw(x.dist, N, 21);
      const gs = draw(g.dist, N, 22);
      const prod = xs.map((v, i) => gs[i]! * d(v));
      expectMatches(gx, prod);
    });
  }

  it('ReLU gradient has exact zeros where x ≤ 0', () => {
    const ctx = backwardContext({ op: 'Relu', inputs: [{ scale: gaussianScale(0, 1) }] }, [null], [gaussianScale(0, 1)]);
    const gx = rules.Relu!.backward!(ctx)[0]!;
    expect(gx.fracZero).toBeCloseTo(0.5, 12);
    expect(gx.meanSquare).toBeCloseTo(0.5, 12);
  });
});
