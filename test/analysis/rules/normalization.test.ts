import { describe, expect, it } from 'vitest';
import { analyzeModel } from '../../../src/analysis/analyze.js';
import { rules } from '../../../src/analysis/rules/normalization.js';
import { gaussianScale, type Scale } from '../../../src/analysis/scale.js';
import { GraphBuilder } from '../../../src/onnx/builder.js';
import { DataType } from '../../../src/onnx/dtype.js';
import { Model } from '../../../src/onnx/model.js';
import { gaussians, stats } from '../../helpers/mc.js';
import { backwardContext, ruleContext, type NodeSpec } from '../../helpers/rule-context.js';

const fwd = (spec: NodeSpec): Scale => rules[spec.op]!.forward(ruleContext(spec))[0]!;
const f32 = (v: ArrayLike<number>): number[] => Array.from(v, Math.fround);

function scaleOf(v: ArrayLike<number>): Scale {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < v.length; i++) {
    s += v[i]!;
    s2 += v[i]! * v[i]!;
  }
  const mean = s / v.length;
  return { ...gaussianScale(mean, Math.sqrt(Math.max(0, s2 / v.length - mean * mean))), confidence: 'exact', absmax: Math.max(...Array.from(v, Math.abs)) };
}

/** LayerNorm of each row of x [rows, K] over the last axis. */
function layerNorm(x: Float64Array, K: number, g: number[], b: number[], eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / K; r++) {
    let m = 0;
    for (let k = 0; k < K; k++) m += x[r * K + k]! / K;
    let v = 0;
    for (let k = 0; k < K; k++) v += (x[r * K + k]! - m) ** 2 / K;
    for (let k = 0; k < K; k++) y[r * K + k] = ((x[r * K + k]! - m) / Math.sqrt(v + eps)) * g[k]! + b[k]!;
  }
  return y;
}

describe('LayerNormalization (PRIMER §3: E[y²] = mean(γ²)·E[ẑ²] + mean(β²))', () => {
  const K = 16;
  const rows = 20000;
  const g = f32(gaussians(K, 1, 0.5, 1));
  const b = f32(gaussians(K, 0.2, 0.3, 2));

  it('matches a direct LayerNorm with real γ, β', () => {
    const x = gaussians(rows * K, 0.7, 2, 3);
    const y = layerNorm(x, K, g, b, 1e-5);
    const s = stats(y);
    const pred = fwd({
      op: 'LayerNormalization',
      attrs: { axis: -1, epsilon: { float: 1e-5 } },
      inputs: [{ scale: gaussianScale(0.7, 2), shape: [rows, K] }, { scale: scaleOf(g), shape: [K], constant: g }, { scale: scaleOf(b), shape: [K], constant: b }],
    });
    expect(Math.abs(pred.mean - s.mean)).toBeLessThanOrEqual(5 * s.seMean);
    expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThanOrEqual(5 * s.seMeanSquare);
    // A hard bound: |ẑ| ≤ √(K−1).
    expect(s.absmax).toBeLessThanOrEqual(pred.absmax!);
  });

  it('keeps a tiny input tiny when ε dominates (E[ẑ²] = v/(v+ε))', () => {
    const x = gaussians(rows * K, 0, 1e-3, 4);
    const ones = new Array(K).fill(1);
    const zeros = new Array(K).fill(0);
    const y = layerNorm(x, K, ones, zeros, 1e-5);
    const s = stats(y);
    const pred = fwd({
      op: 'LayerNormalization',
      attrs: { epsilon: { float: 1e-5 } },
      inputs: [{ scale: gaussianScale(0, 1e-3), shape: [rows, K] }, { scale: scaleOf(ones), shape: [K], constant: ones }, { scale: scaleOf(zeros), shape: [K], constant: zeros }],
    });
    expect(s.meanSquare).toBeLessThan(0.2);
    expect(Math.abs(pred.meanSquare - s.meanSquare) / s.meanSquare).toBeLessThan(0.03);
  });

  it('backward: E[∂x²] ≈ E[g²]·mean(γ²)/σ_x² (exact LayerNorm gradient by MC)', () => {
    const x = gaussians(rows * K, 0.3, 1.5, 5);
    const gr = gaussians(rows * K, 0, 1, 6);
    const dx = new Float64Array(rows * K);
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let k = 0; k < K; k++) m += x[r * K + k]! / K;
      let v = 0;
      for (let k = 0; k < K; k++) v += (x[r * K + k]! - m) ** 2 / K;
      const sd = Math.sqrt(v + 1e-5);
      // ∂x = (1/σ)(h − mean(h) − ẑ·mean(h·ẑ)), h = γ·g
      let mh = 0;
      let mhz = 0;
      for (let k = 0; k < K; k++) {
        const h = g[k]! * gr[r * K + k]!;
        const z = (x[r * K + k]! - m) / sd;
        mh += h / K;
        mhz += (h * z) / K;
      }
      for (let k = 0; k < K; k++) {
        const z = (x[r * K + k]! - m) / sd;
        dx[r * K + k] = (g[k]! * gr[r * K + k]! - mh - z * mhz) / sd;
      }
    }
    const s = stats(dx);
    const spec: NodeSpec = {
      op: 'LayerNormalization',
      inputs: [{ scale: gaussianScale(0.3, 1.5), shape: [rows, K] }, { scale: scaleOf(g), shape: [K], constant: g }, { scale: scaleOf(b), shape: [K], constant: b }],
    };
    const grads = rules.LayerNormalization!.backward!(backwardContext(spec, [null], [gaussianScale(0, 1)]));
    // The primer's rule leaves out the two projections (a (1 − 2/K)-ish factor): within 15%.
    expect(Math.abs(grads[0]!.meanSquare - s.meanSquare) / s.meanSquare).toBeLessThan(0.15);
    expect(grads[2]!.meanSquare).toBeCloseTo(rows, 6); // ∂β = Σ_rows g
  });
});

describe('RMSNormalization', () => {
  it('y = x/√(mean(x²)+ε)·γ', () => {
    const K = 32;
    const rows = 10000;
    const g = f32(gaussians(K, 0.8, 0.4, 7));
    const x = gaussians(rows * K, 0.5, 1, 8);
    const y = new Float64Array(x.length);
    for (let r = 0; r < rows; r++) {
      let ms = 0;
      for (let k = 0; k < K; k++) ms += x[r * K + k]! ** 2 / K;
      for (let k = 0; k < K; k++) y[r * K + k] = (x[r * K + k]! / Math.sqrt(ms + 1e-6)) * g[k]!;
    }
    const s = stats(y);
    const pred = fwd({ op: 'RMSNormalization', attrs: { epsilon: { float: 1e-6 } }, inputs: [{ scale: gaussianScale(0.5, 1), shape: [rows, K] }, { scale: scaleOf(g), shape: [K], constant: g }], opset: 23 });
    expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThanOrEqual(5 * s.seMeanSquare);
    expect(Math.abs(pred.mean - s.mean) / Math.abs(s.mean)).toBeLessThan(0.05);
  });
});

describe('BatchNormalization (inference): per-channel affine, mixture over channels', () => {
  it('matches a direct per-channel affine map', () => {
    const C = 5;
    const HW = 16;
    const n = 4000;
    const gamma = f32([1, 0.5, 2, -1, 0.1]);
    const beta = f32([0, 1, -0.5, 0.2, 3]);
    const mu = f32([0.1, -0.2, 0.3, 0, 1]);
    const va = f32([1, 4, 0.25, 2, 0.5]);
    const x = gaussians(n * C * HW, 0.4, 1.1, 9);
    const y = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const c = Math.floor(i / HW) % C;
      y[i] = (gamma[c]! * (x[i]! - mu[c]!)) / Math.sqrt(va[c]! + 1e-5) + beta[c]!;
    }
    const s = stats(y);
    const pred = fwd({
      op: 'BatchNormalization',
      inputs: [
        { scale: gaussianScale(0.4, 1.1), shape: [n, C, 4, 4] },
        { scale: scaleOf(gamma), shape: [C], constant: gamma },
        { scale: scaleOf(beta), shape: [C], constant: beta },
        { scale: scaleOf(mu), shape: [C], constant: mu },
        { scale: scaleOf(va), shape: [C], constant: va },
      ],
    });
    expect(Math.abs(pred.mean - s.mean)).toBeLessThanOrEqual(5 * s.seMean);
    expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThanOrEqual(5 * s.seMeanSquare);
    expect(pred.dist.kind).toBe('mixture');
  });
});

describe('InstanceNormalization and GroupNormalization', () => {
  it('normalise per (sample, channel) / per group, then γ, β per channel', () => {
    const C = 4;
    const S = 9;
    const n = 6000;
    const g = f32([1, 2, 0.5, 1.5]);
    const b = f32([0, 0.5, -0.5, 1]);
    const x = gaussians(n * C * S, -0.3, 0.8, 10);
    const inst = new Float64Array(x.length);
    for (let s = 0; s < n * C; s++) {
      const c = s % C;
      let m = 0;
      for (let i = 0; i < S; i++) m += x[s * S + i]! / S;
      let v = 0;
      for (let i = 0; i < S; i++) v += (x[s * S + i]! - m) ** 2 / S;
      for (let i = 0; i < S; i++) inst[s * S + i] = ((x[s * S + i]! - m) / Math.sqrt(v + 1e-5)) * g[c]! + b[c]!;
    }
    const si = stats(inst);
    const inputs = [
      { scale: gaussianScale(-0.3, 0.8), shape: [n, C, 3, 3] },
      { scale: scaleOf(g), shape: [C], constant: g },
      { scale: scaleOf(b), shape: [C], constant: b },
    ];
    const pi = fwd({ op: 'InstanceNormalization', inputs });
    expect(Math.abs(pi.meanSquare - si.meanSquare)).toBeLessThanOrEqual(5 * si.seMeanSquare);
    expect(Math.abs(pi.mean - si.mean)).toBeLessThanOrEqual(5 * si.seMean);
    const pg = fwd({ op: 'GroupNormalization', attrs: { num_groups: 2 }, inputs, opset: 21 });
    // Groups of 2 channels × 9: E[ẑ²] = (K−1)/K·σ²/((K−1)/K·σ² + ε) with K = 18 — still ≈ the same.
    expect(Math.abs(pg.meanSquare - si.meanSquare) / si.meanSquare).toBeLessThan(0.02);
  });
});

describe('fused and decomposed LayerNorm agree (needs the reduce and unary families)', () => {
  it('ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add gives the fused output scale', () => {
    const K = 64;
    const g = f32(gaussians(K, 1, 0.3, 11));
    const bt = f32(gaussians(K, 0, 0.2, 12));
    const build = (fused: boolean): Model => {
      const gb = new GraphBuilder('ln', { opset: 18 });
      const x = gb.input('x', DataType.FLOAT, [8, 16, K]);
      const gamma = gb.initializer('gamma', [K], g);
      const beta = gb.initializer('beta', [K], bt);
      let y: string;
      if (fused) y = gb.node('LayerNormalization', [x, gamma, beta], { attrs: { axis: -1, epsilon: 1e-5 } });
      else {
        const axes = gb.ints([-1], 'axes');
        const mean = gb.node('ReduceMean', [x, axes], { attrs: { keepdims: 1 } });
        const d = gb.node('Sub', [x, mean]);
        const sq = gb.node('Pow', [d, gb.scalar(2, 'two')]);
        const v = gb.node('ReduceMean', [sq, axes], { attrs: { keepdims: 1 } });
        const ve = gb.node('Add', [v, gb.scalar(1e-5, 'eps')]);
        const sd = gb.node('Sqrt', [ve]);
        const z = gb.node('Div', [d, sd]);
        const zg = gb.node('Mul', [z, gamma]);
        y = gb.node('Add', [zg, beta]);
      }
      gb.output(y, DataType.FLOAT, [8, 16, K]);
      return new Model(gb.toModelProto(), null, null);
    };
    for (const input of ['normal:0,1', 'normal:0.5,3', 'normal:0,0.01']) {
      const a = analyzeModel(build(true), { inputs: { x: input } });
      const b = analyzeModel(build(false), { inputs: { x: input } });
      const out = (r: typeof a) => r.tensors.find((t) => t.kind === 'output')!;
      expect(out(b).confidence).not.toBe('unknown');
      expect(Math.abs(Math.log2(out(b).rms! / out(a).rms!))).toBeLessThan(0.05);
    }
  });
});
