import { describe, expect, it } from 'vitest';
import { rules as controlFlow } from '../../../src/analysis/rules/control-flow.js';
import { rules, triluKeptShare } from '../../../src/analysis/rules/misc.js';
import { gaussianScale, type Scale } from '../../../src/analysis/scale.js';
import { DataType } from '../../../src/onnx/dtype.js';
import { makeTensorProto } from '../../../src/onnx/tensor.js';
import { gaussians, stats } from '../../helpers/mc.js';
import { ruleContext, type NodeSpec } from '../../helpers/rule-context.js';

function fwd(spec: NodeSpec, out = 0): Scale | null {
  return rules[spec.op]!.forward(ruleContext(spec))[out]!;
}

function expectMoments(pred: Scale, xs: ArrayLike<number>, k = 5): void {
  const s = stats(xs);
  expect(Math.abs(pred.mean - s.mean)).toBeLessThanOrEqual(k * s.seMean + 1e-12);
  expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThanOrEqual(k * s.seMeanSquare + 1e-12);
}

describe('CumSum', () => {
  for (const exclusive of [0, 1]) {
    it(`exclusive=${exclusive} against a direct simulation`, () => {
      const L = 10;
      const y = fwd({ op: 'CumSum', attrs: { exclusive }, inputs: [{ scale: gaussianScale(0.3, 1), shape: [4, L] }, { constant: [1], dtype: DataType.INT64, shape: [] }] })!;
      const rows = 20000;
      const xs = gaussians(rows * L, 0.3, 1, 5);
      const out: number[] = [];
      for (let r = 0; r < rows; r++) {
        let acc = 0;
        for (let j = 0; j < L; j++) {
          const v = xs[r * L + j]!;
          if (exclusive) out.push(acc);
          acc += v;
          if (!exclusive) out.push(acc);
        }
      }
      expectMoments(y, out);
    });
  }
});

describe('LRN', () => {
  it('divides by (bias + α·E[x²])^β (size-5 window of 16 channels, α = 0.1)', () => {
    const C = 16;
    const size = 5;
    const alpha = 0.1;
    const y = fwd({ op: 'LRN', attrs: { size, alpha, beta: 0.75, bias: { float: 1 } }, inputs: [{ scale: gaussianScale(0, 2), shape: [1, C, 1, 1] }] })!;
    const reps = 20000;
    const xs = gaussians(reps * C, 0, 2, 9);
    const out: number[] = [];
    for (let r = 0; r < reps; r++) {
      for (let c = 0; c < C; c++) {
        let sq = 0;
        for (let k = c - 2; k <= c + 2; k++) if (k >= 0 && k < C) sq += xs[r * C + k]! ** 2;
        out.push(xs[r * C + c]! / Math.pow(1 + (alpha / size) * sq, 0.75));
      }
    }
    const s = stats(out);
    // A mean-field approximation: within 5%.
    expect(Math.abs(y.meanSquare - s.meanSquare) / s.meanSquare).toBeLessThan(0.05);
    expect(y.confidence).toBe('medium');
  });
});

describe('Trilu, OneHot, EyeLike, Hardmax', () => {
  it('Trilu keeps the triangle, zeros elsewhere', () => {
    expect(triluKeptShare(4, 4, 0, true)).toBeCloseTo(10 / 16, 14);
    expect(triluKeptShare(4, 4, 1, true)).toBeCloseTo(6 / 16, 14);
    expect(triluKeptShare(3, 5, 0, false)).toBeCloseTo(6 / 15, 14);
    expect(triluKeptShare(3, 5, -1, false)).toBeCloseTo(3 / 15, 14);
    const y = fwd({ op: 'Trilu', inputs: [{ scale: gaussianScale(0, 1), shape: [2, 4, 4] }] })!;
    expect(y.meanSquare).toBeCloseTo(10 / 16, 14);
    expect(y.fracZero).toBeCloseTo(6 / 16, 14);
  });

  it('OneHot with constant depth and values', () => {
    const y = fwd({
      op: 'OneHot',
      inputs: [{ scale: null, dtype: DataType.INT64, shape: [8] }, { constant: [10], dtype: DataType.INT64, shape: [] }, { constant: [-1, 3], shape: [2] }],
      outputs: [{ dtype: DataType.FLOAT }],
    })!;
    expect(y.mean).toBeCloseTo(-0.9 + 0.3, 14);
    expect(y.meanSquare).toBeCloseTo(0.9 + 0.9, 14);
  });

  it('EyeLike and Hardmax', () => {
    expect(fwd({ op: 'EyeLike', inputs: [{ scale: gaussianScale(0, 1), shape: [3, 5] }] })!.mean).toBeCloseTo(3 / 15, 14);
    expect(fwd({ op: 'Hardmax', inputs: [{ scale: gaussianScale(0, 1), shape: [2, 8] }] })!.meanSquare).toBeCloseTo(1 / 8, 14);
  });
});

describe('Scatter and Mod', () => {
  it('ScatterND: mixture by the share of written positions', () => {
    const y = fwd({
      op: 'ScatterND',
      inputs: [{ scale: gaussianScale(0, 1), shape: [10, 4] }, { scale: null, dtype: DataType.INT64, shape: [2, 1] }, { scale: gaussianScale(0, 3), shape: [2, 4] }],
    })!;
    expect(y.meanSquare).toBeCloseTo(0.8 * 1 + 0.2 * 9, 12);
  });

  it('Mod by a constant (fmod=1 and Python-style) against Monte Carlo', () => {
    for (const fmod of [0, 1]) {
      const y = fwd({ op: 'Mod', attrs: { fmod }, inputs: [{ scale: gaussianScale(0.5, 3) }, { constant: [2], shape: [] }], outputs: [{ dtype: DataType.FLOAT }] })!;
      const xs = gaussians(200000, 0.5, 3, 4).map((v) => (fmod ? v % 2 : v - 2 * Math.floor(v / 2)));
      expectMoments(y, xs);
    }
  });
});

describe('random generators', () => {
  it('RandomNormal / RandomUniform are exact', () => {
    const n = fwd({ op: 'RandomNormal', attrs: { mean: { float: 1 }, scale: { float: 2 }, shape: [3] }, inputs: [] })!;
    expect(n.meanSquare).toBe(5);
    const u = fwd({ op: 'RandomUniform', attrs: { low: { float: -1 }, high: { float: 3 }, shape: [3] }, inputs: [] })!;
    expect(u.mean).toBe(1);
    expect(u.meanSquare).toBeCloseTo((1 - 3 + 9) / 3, 14);
  });
});

describe('recurrent cells against a direct simulation (fixed random weights, 15%)', () => {
  /** Simulate a cell over T steps for B sequences; returns all hidden states of the last half. */
  function simulate(kind: 'RNN' | 'GRU' | 'LSTM', I: number, H: number, T: number, B: number, W: Float64Array, R: Float64Array, bias: Float64Array, xs: Float64Array): { Y: number[]; last: number[] } {
    const G = kind === 'LSTM' ? 4 : kind === 'GRU' ? 3 : 1;
    const sig = (v: number): number => 1 / (1 + Math.exp(-v));
    const Y: number[] = [];
    const last: number[] = [];
    for (let b = 0; b < B; b++) {
      let h = new Float64Array(H);
      let c = new Float64Array(H);
      for (let t = 0; t < T; t++) {
        const x = xs.subarray((b * T + t) * I, (b * T + t + 1) * I);
        const pre = (g: number, u: number, hh: Float64Array): number => {
          let s = bias[g * H + u]! + bias[G * H + g * H + u]!;
          for (let i = 0; i < I; i++) s += W[(g * H + u) * I + i]! * x[i]!;
          for (let j = 0; j < H; j++) s += R[(g * H + u) * H + j]! * hh[j]!;
          return s;
        };
        const nh = new Float64Array(H);
        const nc = new Float64Array(H);
        for (let u = 0; u < H; u++) {
          if (kind === 'RNN') nh[u] = Math.tanh(pre(0, u, h));
          else if (kind === 'LSTM') {
            const ig = sig(pre(0, u, h));
            const og = sig(pre(1, u, h));
            const fg = sig(pre(2, u, h));
            const gg = Math.tanh(pre(3, u, h));
            nc[u] = fg * c[u]! + ig * gg;
            nh[u] = og * Math.tanh(nc[u]!);
          }
        }
        if (kind === 'GRU') {
          const z = new Float64Array(H);
          const r = new Float64Array(H);
          for (let u = 0; u < H; u++) {
            z[u] = sig(pre(0, u, h));
            r[u] = sig(pre(1, u, h));
          }
          const rh = h.map((v, j) => v * r[j]!);
          for (let u = 0; u < H; u++) nh[u] = (1 - z[u]!) * Math.tanh(pre(2, u, rh)) + z[u]! * h[u]!;
        }
        h = nh;
        c = nc;
        Y.push(...h);
        if (t === T - 1) last.push(...h);
      }
    }
    return { Y, last };
  }

  for (const kind of ['RNN', 'GRU', 'LSTM'] as const) {
    it(kind, () => {
      const I = 16;
      const H = 32;
      const T = 12;
      const B = 300;
      const G = kind === 'LSTM' ? 4 : kind === 'GRU' ? 3 : 1;
      const W = gaussians(G * H * I, 0, 1 / Math.sqrt(I), 1);
      const R = gaussians(G * H * H, 0, 1 / Math.sqrt(H), 2);
      const bias = gaussians(2 * G * H, 0, 0.1, 3);
      const xs = gaussians(B * T * I, 0, 1, 4);
      const sim = simulate(kind, I, H, T, B, W, R, bias, xs);
      const ctx = ruleContext({
        op: kind,
        attrs: { hidden_size: H },
        inputs: [
          { scale: gaussianScale(0, 1), shape: [T, B, I] },
          { constant: makeTensorProto('W', DataType.FLOAT, [1, G * H, I], W), shape: [1, G * H, I] },
          { constant: makeTensorProto('R', DataType.FLOAT, [1, G * H, H], R), shape: [1, G * H, H] },
          { constant: makeTensorProto('B', DataType.FLOAT, [1, 2 * G * H], bias), shape: [1, 2 * G * H] },
        ],
        outputs: [{}, {}, ...(kind === 'LSTM' ? [{}] : [])],
      });
      const outs = rules[kind]!.forward(ctx);
      const y = outs[0]!;
      const yh = outs[1]!;
      expect(y.absmax).toBe(1);
      expect(y.confidence).toBe('low');
      const sy = stats(sim.Y);
      const sh = stats(sim.last);
      expect(Math.abs(y.meanSquare - sy.meanSquare) / sy.meanSquare).toBeLessThan(0.15);
      expect(Math.abs(yh.meanSquare - sh.meanSquare) / sh.meanSquare).toBeLessThan(0.15);
    });
  }
});

describe('control flow', () => {
  it('If/Loop/Scan outputs are unknown with a note', () => {
    const ctx = ruleContext({ op: 'If', inputs: [{ constant: [1], dtype: DataType.BOOL, shape: [] }], outputs: [{ dtype: DataType.FLOAT }, { dtype: DataType.INT64 }] });
    const outs = controlFlow.If!.forward(ctx);
    expect(outs[0]!.confidence).toBe('unknown');
    expect(outs[0]!.note).toMatch(/then branch/);
    expect(outs[1]).toBeNull();
  });
});

describe('robustness sweep over every rule of these families', () => {
  it('never throws and never returns non-finite moments, with known or unknown inputs', async () => {
    const families = await Promise.all([
      import('../../../src/analysis/rules/unary.js'),
      import('../../../src/analysis/rules/reduce.js'),
      import('../../../src/analysis/rules/pooling.js'),
      import('../../../src/analysis/rules/shape-ops.js'),
      import('../../../src/analysis/rules/quantization.js'),
      import('../../../src/analysis/rules/misc.js'),
      import('../../../src/analysis/rules/control-flow.js'),
    ]);
    const empirical: Scale = { mean: 0.1, meanSquare: 2, dist: { kind: 'empirical' }, absmax: 5, confidence: 'exact' };
    const mixture: Scale = {
      mean: 0.5,
      meanSquare: 1.5,
      dist: { kind: 'mixture', parts: [{ weight: 0.5, dist: { kind: 'gaussian', mean: 1, std: 1 } }, { weight: 0.5, dist: { kind: 'discrete', values: [0], weights: [1] } }] },
      absmax: null,
      confidence: 'medium',
    };
    const variants: { name: string; inputs: NodeSpec['inputs'] }[] = [
      { name: 'gaussian, known shape', inputs: [{ scale: gaussianScale(0.2, 1.3), shape: [2, 3, 8, 8] }, { scale: gaussianScale(0.5, 0.1), shape: [3] }, { scale: gaussianScale(0, 1), shape: [3] }] },
      { name: 'unknown shapes', inputs: [{ scale: gaussianScale(0.2, 1.3) }, { scale: gaussianScale(0.5, 0.1) }] },
      { name: 'empirical', inputs: [{ scale: empirical, shape: [4, 4] }] },
      { name: 'mixture', inputs: [{ scale: mixture, shape: [4, 4] }] },
      { name: 'no scales', inputs: [{ scale: null }, { scale: null }] },
    ];
    for (const fam of families) {
      for (const [op, rule] of Object.entries(fam.rules)) {
        for (const v of variants) {
          const attrs: Record<string, number[] | number> = op.endsWith('Pool') && !op.startsWith('Global') ? { kernel_shape: [2, 2] } : op === 'LRN' ? { size: 3 } : {};
          const ctx = ruleContext({ op, attrs, inputs: v.inputs, outputs: [{}, {}, {}] });
          let outs: (Scale | null)[] = [];
          expect(() => (outs = rule.forward(ctx)), `${op} / ${v.name}`).not.toThrow();
          for (const s of outs) {
            if (!s) continue;
            expect(Number.isFinite(s.mean) && Number.isFinite(s.meanSquare), `${op} / ${v.name}`).toBe(true);
          }
          if (rule.backward) {
            const bctx = { ...ctx, outputs: outs, outputGrads: outs.map(() => gaussianScale(0, 1)) };
            let grads: (Scale | null)[] = [];
            expect(() => (grads = rule.backward!(bctx)), `${op} backward / ${v.name}`).not.toThrow();
            for (const s of grads) if (s) expect(Number.isFinite(s.meanSquare), `${op} backward / ${v.name}`).toBe(true);
          }
        }
      }
    }
  });
});
