import { describe, expect, it } from 'vitest';
import { rules } from '../../../src/analysis/rules/conv.js';
import { gaussianScale, type Scale } from '../../../src/analysis/scale.js';
import { gaussians, stats } from '../../helpers/mc.js';
import { backwardContext, ruleContext, type AttrValue, type NodeSpec } from '../../helpers/rule-context.js';

function scaleOf(v: ArrayLike<number>): Scale {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < v.length; i++) {
    s += v[i]!;
    s2 += v[i]! * v[i]!;
  }
  const mean = s / v.length;
  return { ...gaussianScale(mean, Math.sqrt(Math.max(0, s2 / v.length - mean * mean))), confidence: 'exact' };
}

interface Geo {
  C: number;
  H: number;
  W: number;
  M: number;
  k: [number, number];
  stride: [number, number];
  dil: [number, number];
  pads: [number, number, number, number];
  group: number;
}

/** Direct 2-D convolution of one image x [C, H, W] with w [M, C/g, kh, kw] (ONNX semantics). */
function conv2d(x: Float64Array, w: ArrayLike<number>, b: ArrayLike<number> | null, g: Geo): { y: Float64Array; OH: number; OW: number } {
  const [kh, kw] = g.k;
  const OH = Math.floor((g.H + g.pads[0] + g.pads[2] - g.dil[0] * (kh - 1) - 1) / g.stride[0]) + 1;
  const OW = Math.floor((g.W + g.pads[1] + g.pads[3] - g.dil[1] * (kw - 1) - 1) / g.stride[1]) + 1;
  const Cg = g.C / g.group;
  const Mg = g.M / g.group;
  const y = new Float64Array(g.M * OH * OW);
  for (let m = 0; m < g.M; m++) {
    const grp = Math.floor(m / Mg);
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        let s = b ? b[m]! : 0;
        for (let ci = 0; ci < Cg; ci++)
          for (let i = 0; i < kh; i++)
            for (let j = 0; j < kw; j++) {
              const ih = oh * g.stride[0] - g.pads[0] + i * g.dil[0];
              const iw = ow * g.stride[1] - g.pads[1] + j * g.dil[1];
              if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
              s += x[((grp * Cg + ci) * g.H + ih) * g.W + iw]! * w[((m * Cg + ci) * kh + i) * kw + j]!;
            }
        y[(m * OH + oh) * OW + ow] = s;
      }
  }
  return { y, OH, OW };
}

function spec(g: Geo, w: ArrayLike<number>, b: number[] | null, xMean: number, xStd: number, OH: number, OW: number, extra: Record<string, AttrValue> = {}): NodeSpec {
  return {
    op: 'Conv',
    attrs: { group: g.group, strides: g.stride, dilations: g.dil, pads: g.pads, kernel_shape: g.k, ...extra },
    inputs: [
      { scale: gaussianScale(xMean, xStd), shape: [1, g.C, g.H, g.W] },
      { scale: scaleOf(w), shape: [g.M, g.C / g.group, ...g.k], constant: Array.from(w) },
      ...(b ? [{ scale: scaleOf(b), shape: [g.M], constant: b }] : []),
    ],
    outputs: [{ shape: [1, g.M, OH, OW] }],
  };
}

/** MC over `samples` images: per-image mean and mean square (images are independent). */
function mc(g: Geo, w: ArrayLike<number>, b: number[] | null, xMean: number, xStd: number, samples: number) {
  const m1 = new Float64Array(samples);
  const m2 = new Float64Array(samples);
  let OH = 0;
  let OW = 0;
  for (let s = 0; s < samples; s++) {
    const x = gaussians(g.C * g.H * g.W, xMean, xStd, 100 + s);
    const r = conv2d(x, w, b, g);
    OH = r.OH;
    OW = r.OW;
    for (const v of r.y) {
      m1[s]! += v / r.y.length;
      m2[s]! += (v * v) / r.y.length;
    }
  }
  return { m1: stats(m1), m2: stats(m2), OH, OW };
}

const f32 = (v: Float64Array): Float64Array => Float64Array.from(Float32Array.from(v));

describe('Conv forward: fan-in lowered by padding, exact from the shapes (PRIMER §3)', () => {
  it('3×3, pad 1, stride 1, with a non-zero input mean (border sums matter)', () => {
    const g: Geo = { C: 3, H: 6, W: 7, M: 4, k: [3, 3], stride: [1, 1], dil: [1, 1], pads: [1, 1, 1, 1], group: 1 };
    const w = f32(gaussians(4 * 3 * 9, 0.1, 0.3, 1));
    const r = mc(g, w, null, 0.8, 1, 3000);
    const pred = rules.Conv!.forward(ruleContext(spec(g, w, null, 0.8, 1, r.OH, r.OW)))[0]!;
    expect(Math.abs(pred.mean - r.m1.mean)).toBeLessThanOrEqual(5 * r.m1.seMean);
    expect(Math.abs(pred.meanSquare - r.m2.mean)).toBeLessThanOrEqual(5 * r.m2.seMean);
    // Ignoring the border (full fan-in everywhere) would be clearly off here.
    const K = 3 * 9;
    const naive = K * 1 * scaleOf(w).meanSquare + K * (K - 1) * 0.64 * scaleOf(w).mean ** 2;
    expect(Math.abs(naive - r.m2.mean)).toBeGreaterThan(10 * r.m2.seMean);
  });

  it('grouped (depthwise), strided, dilated, asymmetric pads, with bias', () => {
    const g: Geo = { C: 4, H: 9, W: 8, M: 8, k: [3, 2], stride: [2, 1], dil: [2, 1], pads: [2, 0, 1, 1], group: 4 };
    const w = f32(gaussians(8 * 1 * 6, -0.05, 0.4, 2));
    const b = [0.1, -0.2, 0.3, 0, 0.5, -0.5, 0.05, 0.2];
    const r = mc(g, w, b, -0.4, 0.9, 3000);
    const pred = rules.Conv!.forward(ruleContext(spec(g, w, b, -0.4, 0.9, r.OH, r.OW)))[0]!;
    expect(Math.abs(pred.mean - r.m1.mean)).toBeLessThanOrEqual(5 * r.m1.seMean);
    expect(Math.abs(pred.meanSquare - r.m2.mean)).toBeLessThanOrEqual(5 * r.m2.seMean);
  });

  it('a 1-D kernel wider than 30 taps (an STFT basis: 256 taps, stride 64)', () => {
    // Tap patterns are lists, not bit masks: 256 taps must not wrap to none (RMS 0).
    const [C, M, L, k, s] = [1, 6, 704, 256, 64];
    const w = f32(gaussians(M * C * k, 0, 0.4, 9));
    const OL = Math.floor((L - k) / s) + 1;
    const samples = 400;
    const m2 = new Float64Array(samples);
    for (let t = 0; t < samples; t++) {
      const x = gaussians(L, 0, 1, 700 + t);
      for (let m = 0; m < M; m++)
        for (let o = 0; o < OL; o++) {
          let acc = 0;
          for (let j = 0; j < k; j++) acc += x[o * s + j]! * w[m * k + j]!;
          m2[t]! += (acc * acc) / (M * OL);
        }
    }
    const pred = rules.Conv!.forward(
      ruleContext({
        op: 'Conv',
        attrs: { strides: [s], kernel_shape: [k], pads: [0, 0] },
        inputs: [
          { scale: gaussianScale(0, 1), shape: [1, C, L] },
          { scale: scaleOf(w), shape: [M, C, k], constant: Array.from(w) },
        ],
        outputs: [{ shape: [1, M, OL] }],
      }),
    )[0]!;
    const b = stats(m2);
    expect(Math.abs(pred.meanSquare - b.mean)).toBeLessThanOrEqual(5 * b.seMean);
  });

  it('auto_pad SAME_UPPER pads like the explicit equivalent', () => {
    const g: Geo = { C: 2, H: 5, W: 5, M: 3, k: [3, 3], stride: [2, 2], dil: [1, 1], pads: [1, 1, 1, 1], group: 1 };
    const w = f32(gaussians(3 * 2 * 9, 0.2, 0.2, 3));
    const explicit = rules.Conv!.forward(ruleContext(spec(g, w, null, 1, 1, 3, 3)))[0]!;
    const s = spec(g, w, null, 1, 1, 3, 3, { auto_pad: 'SAME_UPPER' });
    delete (s.attrs as Record<string, unknown>).pads;
    const auto = rules.Conv!.forward(ruleContext(s))[0]!;
    expect(auto.meanSquare).toBeCloseTo(explicit.meanSquare, 10);
  });
});

describe('ConvTranspose forward', () => {
  it('stride 2: each output position gets the taps that reach it', () => {
    const C = 2;
    const M = 3;
    const H = 5;
    const k = 3;
    const s = 2;
    const w = f32(gaussians(C * M * k * k, 0.05, 0.3, 4)); // [C, M, k, k]
    const OH = s * (H - 1) + k;
    const samples = 2000;
    const m1 = new Float64Array(samples);
    const m2 = new Float64Array(samples);
    for (let t = 0; t < samples; t++) {
      const x = gaussians(C * H * H, 0.5, 1, 500 + t);
      const y = new Float64Array(M * OH * OH);
      for (let c = 0; c < C; c++)
        for (let ih = 0; ih < H; ih++)
          for (let iw = 0; iw < H; iw++)
            for (let m = 0; m < M; m++)
              for (let i = 0; i < k; i++)
                for (let j = 0; j < k; j++) y[(m * OH + ih * s + i) * OH + iw * s + j]! += x[(c * H + ih) * H + iw]! * w[((c * M + m) * k + i) * k + j]!;
      for (const v of y) {
        m1[t]! += v / y.length;
        m2[t]! += (v * v) / y.length;
      }
    }
    const pred = rules.ConvTranspose!.forward(
      ruleContext({
        op: 'ConvTranspose',
        attrs: { strides: [s, s], kernel_shape: [k, k] },
        inputs: [
          { scale: gaussianScale(0.5, 1), shape: [1, C, H, H] },
          { scale: scaleOf(w), shape: [C, M, k, k], constant: Array.from(w) },
        ],
        outputs: [{ shape: [1, M, OH, OH] }],
      }),
    )[0]!;
    const a = stats(m1);
    const b = stats(m2);
    expect(Math.abs(pred.mean - a.mean)).toBeLessThanOrEqual(5 * a.seMean);
    expect(Math.abs(pred.meanSquare - b.mean)).toBeLessThanOrEqual(5 * b.seMean);
  });
});

describe('Conv backward (PRIMER §4)', () => {
  it('∂x and ∂W from the products each element takes part in', () => {
    const g: Geo = { C: 3, H: 6, W: 6, M: 4, k: [3, 3], stride: [1, 1], dil: [1, 1], pads: [1, 1, 1, 1], group: 1 };
    const w = f32(gaussians(4 * 3 * 9, 0, 0.3, 5));
    const samples = 1500;
    const dx2 = new Float64Array(samples);
    const dwAcc = new Float64Array(w.length);
    const dwSq: number[] = [];
    const x2 = new Float64Array(samples);
    const OH = 6;
    for (let t = 0; t < samples; t++) {
      const x = gaussians(3 * 36, 0.2, 1, 900 + t);
      const gr = gaussians(4 * 36, 0, 1, 5000 + t);
      const dx = new Float64Array(3 * 36);
      dwAcc.fill(0);
      for (let m = 0; m < 4; m++)
        for (let oh = 0; oh < OH; oh++)
          for (let ow = 0; ow < OH; ow++)
            for (let c = 0; c < 3; c++)
              for (let i = 0; i < 3; i++)
                for (let j = 0; j < 3; j++) {
                  const ih = oh - 1 + i;
                  const iw = ow - 1 + j;
                  if (ih < 0 || ih >= 6 || iw < 0 || iw >= 6) continue;
                  const gv = gr[(m * OH + oh) * OH + ow]!;
                  dx[(c * 6 + ih) * 6 + iw]! += gv * w[((m * 3 + c) * 3 + i) * 3 + j]!;
                  dwAcc[((m * 3 + c) * 3 + i) * 3 + j]! += gv * x[(c * 6 + ih) * 6 + iw]!;
                }
      for (const v of dx) dx2[t]! += (v * v) / dx.length;
      let s = 0;
      for (const v of dwAcc) s += (v * v) / dwAcc.length;
      dwSq.push(s);
      for (const v of x) x2[t]! += (v * v) / x.length;
    }
    const sp = spec(g, w, null, 0.2, 1, OH, OH);
    const grads = rules.Conv!.backward!(backwardContext(sp, [null], [gaussianScale(0, 1)]));
    const a = stats(dx2);
    const b = stats(dwSq);
    expect(Math.abs(grads[0]!.meanSquare - a.mean)).toBeLessThanOrEqual(5 * a.seMean);
    expect(Math.abs(grads[1]!.meanSquare - b.mean)).toBeLessThanOrEqual(5 * b.seMean);
  });
});
