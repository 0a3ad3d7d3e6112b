/**
 * Coherent gradients (src/analysis/coherence.ts): every backward rule that creates, carries or
 * consumes a coherent gradient, checked against a direct Monte-Carlo of the gradient (plain TS
 * forward + hand-derived backward, test/helpers/nn-ref.ts) on small random tensors with fixed
 * stored weights: E over x ~ N(0,1) and g ~ N(0,1) of the gradients' mean squares.
 */
import { describe, expect, it } from 'vitest';
import { analyzeModel } from '../../src/analysis/analyze.js';
import { mergeCoherence, summedPower } from '../../src/analysis/coherence.js';
import { gradScale } from '../../src/analysis/helpers.js';
import { withCoherence } from '../../src/analysis/coherence.js';
import { parseFormat } from '../../src/formats/index.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/dtype.js';
import { Model } from '../../src/onnx/model.js';
import { gaussians } from '../helpers/mc.js';
import {
  addBias,
  biasBackward,
  conv2d,
  conv2dBackward,
  gap,
  gapBackward,
  map,
  mapBackward,
  matmul,
  matmulBackward,
  meanSquare,
  mulChannel,
  mulChannelBackward,
  pool,
  relu,
  reluD,
  sigmoid,
  sigmoidD,
  type T,
} from '../helpers/nn-ref.js';

const formats = [parseFormat('fp16')];
const F = DataType.FLOAT;

/** Stored weights: float32 N(0, 2/fanIn) (as the model stores them), as float64 for the reference. */
function weights(shape: number[], fanIn: number, seed: number): T {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float64Array.from(Float32Array.from(gaussians(n, 0, Math.sqrt(2 / fanIn), seed))) };
}

function input(shape: number[], seed: number): T {
  return { shape, data: gaussians(shape.reduce((a, b) => a * b, 1), 0, 1, seed) };
}

/** Predicted gradient mean squares by tensor name. */
function predicted(gb: GraphBuilder): Map<string, number> {
  const r = analyzeModel(new Model(gb.toModelProto(), null, null), { formats, grad: true });
  const out = new Map<string, number>();
  for (const t of r.tensors) if (t.kind === 'gradient' && t.rms !== null) out.set(t.name, t.rms * t.rms);
  return out;
}

/** Average over repetitions of the mean squares a repetition returns. */
function monteCarlo(reps: number, rep: (seed: number) => Record<string, number>): Record<string, number> {
  const acc: Record<string, number> = {};
  for (let k = 0; k < reps; k++) for (const [n, v] of Object.entries(rep(1000 + 7 * k))) acc[n] = (acc[n] ?? 0) + v / reps;
  return acc;
}

/** |log2(predicted RMS / Monte-Carlo RMS)| of tensor `name`'s gradient within `tol` bits. */
function check(name: string, pred: Map<string, number>, meas: number, tol: number): void {
  const err = 0.5 * Math.log2((pred.get(name) ?? NaN) / meas);
  if (process.env.COH_DEBUG) console.log(`${name}: predicted ${pred.get(name)?.toPrecision(4)} MC ${meas.toPrecision(4)} (${err.toFixed(3)} bits)`);
  expect.soft(Math.abs(err), `${name}: ${err.toFixed(3)} bits`).toBeLessThan(tol);
}

const conv = (gb: GraphBuilder, x: string, w: T, name: string, k: number, stride = 1, pad = 0, group = 1): string =>
  gb.node('Conv', [x, gb.initializer(name, w.shape, w.data)], { attrs: { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad], group } });

describe('coherence helpers', () => {
  it('summedPower: P_R·(F·X + P_{R∩A}·C·D), and the independent rule without coherence', () => {
    const g = withCoherence(gradScale(2), { axes: [2, 3], share: 0.25 });
    // R = {0, 2, 3} over [4, 8, 5, 5]: P_R = 100, P_{R∩A} = 25; C = 0.5, F = 1.5; x ≡ 1.
    const s = summedPower(g, [0, 2, 3], [4, 8, 5, 5], null)!;
    expect(s.power).toBeCloseTo(100 * (1.5 + 25 * 0.5), 9);
    const plain = summedPower(gradScale(2), [0, 2, 3], [4, 8, 5, 5], { X: 3, dc: () => 1 })!;
    expect(plain.power).toBeCloseTo(100 * 2 * 3, 9);
    // A sum over the batch only keeps the part constant along H, W: share 0.5/(1.5+0.5)... per sample.
    const s2 = summedPower(g, [0], [4, 8, 5, 5], null)!;
    expect(s2.power).toBeCloseTo(4 * 2, 9);
    expect(s2.coherent).toEqual({ axes: [2, 3], share: 0.25 });
  });

  it('mergeCoherence: coherent powers add along the common axes', () => {
    const a = withCoherence(gradScale(1), { axes: [2, 3], share: 1 });
    const b = withCoherence(gradScale(3), { axes: [3], share: 0.5 });
    expect(mergeCoherence(a, b)).toEqual({ axes: [3], share: (1 + 1.5) / 4 });
    expect(mergeCoherence(a, gradScale(1))).toEqual({ axes: [2, 3], share: 0.5 });
    expect(mergeCoherence(gradScale(1), gradScale(1))).toBeNull();
  });
});

describe('backward rules with coherent gradients match a Monte-Carlo of the gradient', () => {
  it('GlobalAveragePool → Relu → Conv 3×3: the weight gradient sums a coherent g against channel means', () => {
    const [B, C, M, H, O] = [4, 24, 24, 8, 48];
    const w1 = weights([M, C, 3, 3], C * 9, 11);
    const w2 = weights([M, O], M, 12);
    const gb = new GraphBuilder('gap', { opset: 18 });
    const x = gb.input('x', F, [B, C, H, H]);
    const r0 = gb.node('Relu', [x], { outputs: ['r0'] });
    const c1 = conv(gb, r0, w1, 'w1', 3, 1, 1);
    const r1 = gb.node('Relu', [c1], { outputs: ['r1'] });
    const p = gb.node('GlobalAveragePool', [r1], { outputs: ['p'] });
    const f = gb.node('Flatten', [p]);
    gb.output(gb.node('MatMul', [f, gb.initializer('w2', w2.shape, w2.data)], { outputs: ['y'] }), F, [B, O]);
    const pred = predicted(gb);
    let indep = 0;
    const reps = 60;
    const mc = monteCarlo(reps, (seed) => {
      const xv = input([B, C, H, H], seed);
      const a0 = map(xv, relu);
      const z1 = conv2d(a0, w1, { pad: 1 });
      const a1 = map(z1, relu);
      const pv = gap(a1);
      const gy = input([B, O], seed + 1);
      const dp = matmulBackward({ shape: [B, M], data: pv.data }, w2, gy).dx;
      const da1 = gapBackward(a1.shape, { shape: [B, M, 1, 1], data: dp.data });
      const dz1 = mapBackward(z1, da1, reluD);
      const { dx, dw } = conv2dBackward(a0, w1, dz1, { pad: 1 });
      indep += (B * H * H * meanSquare(dz1) * meanSquare(a0)) / reps;
      return { w1: meanSquare(dw), r0: meanSquare(dx), r1: meanSquare(da1), c1: meanSquare(dz1) };
    });
    // The effect is large: the independent rule (B·H·W·E[g²]E[x²]) is far below.
    expect(mc.w1! / indep).toBeGreaterThan(4);
    check('r1', pred, mc.r1!, 0.05);
    check(c1, pred, mc.c1!, 0.1);
    check('w1', pred, mc.w1!, 0.1);
    check('r0', pred, mc.r0!, 0.1);
  });

  it('a 1×1 conv then a strided depthwise 5×5 (input-gradient coherence through Conv) before the pool', () => {
    const [B, C, H, O] = [3, 32, 12, 64];
    const wa = weights([C, C, 1, 1], C, 21);
    const wd = weights([C, 1, 5, 5], 25, 22);
    const w2 = weights([C, O], C, 23);
    const gb = new GraphBuilder('dw', { opset: 18 });
    const x = gb.input('x', F, [B, C, H, H]);
    const r0 = gb.node('Relu', [x], { outputs: ['r0'] });
    const ca = conv(gb, r0, wa, 'wa', 1);
    const cd = conv(gb, ca, wd, 'wd', 5, 2, 2, C);
    const p = gb.node('GlobalAveragePool', [cd]);
    gb.output(gb.node('MatMul', [gb.node('Flatten', [p]), gb.initializer('w2', w2.shape, w2.data)]), F, [B, O]);
    const pred = predicted(gb);
    const mc = monteCarlo(80, (seed) => {
      const a0 = map(input([B, C, H, H], seed), relu);
      const za = conv2d(a0, wa);
      const zd = conv2d(za, wd, { stride: 2, pad: 2, group: C });
      const pv = gap(zd);
      const gy = input([B, O], seed + 1);
      const dp = matmulBackward({ shape: [B, C], data: pv.data }, w2, gy).dx;
      const dzd = gapBackward(zd.shape, { shape: [B, C, 1, 1], data: dp.data });
      const bd = conv2dBackward(za, wd, dzd, { stride: 2, pad: 2, group: C });
      const ba = conv2dBackward(a0, wa, bd.dx, {});
      return { wd: meanSquare(bd.dw), ca: meanSquare(bd.dx), wa: meanSquare(ba.dw), r0: meanSquare(ba.dx) };
    });
    check('wd', pred, mc.wd!, 0.1);
    check(ca, pred, mc.ca!, 0.1);
    check('wa', pred, mc.wa!, 0.1);
    check('r0', pred, mc.r0!, 0.1);
  });

  it('squeeze-excite: Mul by a broadcast [B,C,1,1] scale sums a coherent g over H×W', () => {
    const [B, C, H, O] = [4, 32, 7, 64];
    const w1 = weights([C, C, 1, 1], C, 31);
    const ws = weights([C, C, 1, 1], C, 32);
    const w2 = weights([C, O], C, 33);
    const gb = new GraphBuilder('se', { opset: 18 });
    const x = gb.input('x', F, [B, C, H, H]);
    const r0 = gb.node('Relu', [x], { outputs: ['r0'] });
    const h = gb.node('Relu', [conv(gb, r0, w1, 'w1', 1)], { outputs: ['h'] });
    const sq = gb.node('GlobalAveragePool', [h]);
    const s = gb.node('Sigmoid', [conv(gb, sq, ws, 'ws', 1)], { outputs: ['s'] });
    const m = gb.node('Mul', [h, s], { outputs: ['m'] });
    const p = gb.node('GlobalAveragePool', [m]);
    gb.output(gb.node('MatMul', [gb.node('Flatten', [p]), gb.initializer('w2', w2.shape, w2.data)]), F, [B, O]);
    const pred = predicted(gb);
    const mc = monteCarlo(80, (seed) => {
      const a0 = map(input([B, C, H, H], seed), relu);
      const z1 = conv2d(a0, w1);
      const hv = map(z1, relu);
      const sqv = gap(hv);
      const zs = conv2d(sqv, ws);
      const sv = map(zs, sigmoid);
      const mv = mulChannel(hv, sv);
      const pv = gap(mv);
      const gy = input([B, O], seed + 1);
      const dp = matmulBackward({ shape: [B, C], data: pv.data }, w2, gy).dx;
      const dm = gapBackward(mv.shape, { shape: [B, C, 1, 1], data: dp.data });
      const { da, ds } = mulChannelBackward(hv, sv, dm);
      const dzs = mapBackward(zs, ds, sigmoidD);
      const bs = conv2dBackward(sqv, ws, dzs);
      const dh = da.data.slice();
      const dh2 = gapBackward(hv.shape, bs.dx);
      for (let i = 0; i < dh.length; i++) dh[i]! += dh2.data[i]!;
      const dz1 = mapBackward(z1, { shape: hv.shape, data: dh }, reluD);
      const b1 = conv2dBackward(a0, w1, dz1);
      return { s: meanSquare(ds), ws: meanSquare(bs.dw), h: meanSquare(dh), w1: meanSquare(b1.dw) };
    });
    check('s', pred, mc.s!, 0.1);
    check('ws', pred, mc.ws!, 0.1);
    check('h', pred, mc.h!, 0.1);
    check('w1', pred, mc.w1!, 0.1);
  });

  it('Add of a broadcast [C,1,1] bias, then Div by a broadcast [C,1,1] constant: ∂b is the coherent sum over B×H×W', () => {
    const [B, C, H, O] = [4, 24, 6, 48];
    const w1 = weights([C, C, 3, 3], C * 9, 41);
    const w2 = weights([C, O], C, 42);
    const bias = Float64Array.from(Float32Array.from(gaussians(C, 0.2, 0.3, 43)));
    const div = Float64Array.from(Float32Array.from(gaussians(C, 0, 1, 44)), (v) => Math.fround(1.5 + 0.5 * Math.tanh(v)));
    const gb = new GraphBuilder('bias', { opset: 18 });
    const x = gb.input('x', F, [B, C, H, H]);
    const c1 = conv(gb, gb.node('Relu', [x]), w1, 'w1', 3, 1, 1);
    const a = gb.node('Add', [c1, gb.initializer('b', [C, 1, 1], bias)], { outputs: ['a'] });
    const q = gb.node('Div', [a, gb.initializer('d', [C, 1, 1], div)], { outputs: ['q'] });
    const p = gb.node('GlobalAveragePool', [gb.node('Relu', [q])]);
    gb.output(gb.node('MatMul', [gb.node('Flatten', [p]), gb.initializer('w2', w2.shape, w2.data)]), F, [B, O]);
    const pred = predicted(gb);
    let indep = 0;
    const reps = 80;
    const mc = monteCarlo(reps, (seed) => {
      const a0 = map(input([B, C, H, H], seed), relu);
      const av = addBias(conv2d(a0, w1, { pad: 1 }), bias);
      const qv = { shape: av.shape, data: av.data.map((v, i) => v / div[Math.floor(i / (H * H)) % C]!) };
      const rv = map(qv, relu);
      const pv = gap(rv);
      const gy = input([B, O], seed + 1);
      const dp = matmulBackward({ shape: [B, C], data: pv.data }, w2, gy).dx;
      const dq = mapBackward(qv, gapBackward(rv.shape, { shape: [B, C, 1, 1], data: dp.data }), reluD);
      const da = { shape: dq.shape, data: dq.data.map((v, i) => v / div[Math.floor(i / (H * H)) % C]!) };
      const b1 = conv2dBackward(a0, w1, da, { pad: 1 });
      indep += (B * H * H * meanSquare(da)) / reps;
      return { b: meanSquare(biasBackward(da)), a: meanSquare(da), q: meanSquare(dq), w1: meanSquare(b1.dw) };
    });
    expect(mc.b! / indep).toBeGreaterThan(4);
    check('b', pred, mc.b!, 0.1);
    check('q', pred, mc.q!, 0.1);
    check('a', pred, mc.a!, 0.1);
    check('w1', pred, mc.w1!, 0.1);
  });

  it('MatMul before a ReduceMean over tokens: ∂W sums a g constant along the tokens', () => {
    const [B, S, D, Hd, O] = [3, 16, 48, 48, 96];
    const w1 = weights([D, Hd], D, 51);
    const w2 = weights([Hd, O], Hd, 52);
    const gb = new GraphBuilder('tokens', { opset: 18 });
    const x = gb.input('x', F, [B, S, D]);
    const r0 = gb.node('Relu', [x], { outputs: ['r0'] });
    const z = gb.node('MatMul', [r0, gb.initializer('w1', w1.shape, w1.data)], { outputs: ['z'] });
    const m = gb.node('ReduceMean', [gb.node('Relu', [z]), gb.ints([1])], { attrs: { keepdims: 0 } });
    gb.output(gb.node('MatMul', [m, gb.initializer('w2', w2.shape, w2.data)]), F, [B, O]);
    const pred = predicted(gb);
    const mc = monteCarlo(100, (seed) => {
      const a0 = map(input([B, S, D], seed), relu);
      const zv = matmul(a0, w1);
      const hv = map(zv, relu);
      const mv = new Float64Array(B * Hd);
      for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let k = 0; k < Hd; k++) mv[b * Hd + k]! += hv.data[(b * S + s) * Hd + k]! / S;
      const gy = input([B, O], seed + 1);
      const dm = matmulBackward({ shape: [B, Hd], data: mv }, w2, gy).dx;
      const dh = new Float64Array(B * S * Hd);
      for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let k = 0; k < Hd; k++) dh[(b * S + s) * Hd + k] = dm.data[b * Hd + k]! / S;
      const dz = mapBackward(zv, { shape: zv.shape, data: dh }, reluD);
      const b1 = matmulBackward(a0, w1, dz);
      return { w1: meanSquare(b1.dw), r0: meanSquare(b1.dx), z: meanSquare(dz) };
    });
    check('z', pred, mc.z!, 0.1);
    check('w1', pred, mc.w1!, 0.1);
    check('r0', pred, mc.r0!, 0.1);
  });

  for (const kind of ['avg', 'max'] as const) {
    it(`${kind === 'avg' ? 'AveragePool 3×3 stride 1 (overlapping windows add coherently)' : 'MaxPool 2×2 stride 2'} before the global pool`, () => {
      const [B, C, H, O] = [3, 32, 10, 64];
      const w1 = weights([C, C, 1, 1], C, 61);
      const w2 = weights([C, O], C, 62);
      const [k, s, pd] = kind === 'avg' ? [3, 1, 1] : [2, 2, 0];
      const gb = new GraphBuilder('pool', { opset: 18 });
      const x = gb.input('x', F, [B, C, H, H]);
      const c1 = conv(gb, gb.node('Relu', [x]), w1, 'w1', 1);
      const pl = gb.node(kind === 'avg' ? 'AveragePool' : 'MaxPool', [c1], { attrs: { kernel_shape: [k, k], strides: [s, s], pads: [pd, pd, pd, pd] } });
      const p = gb.node('GlobalAveragePool', [pl]);
      gb.output(gb.node('MatMul', [gb.node('Flatten', [p]), gb.initializer('w2', w2.shape, w2.data)]), F, [B, O]);
      const pred = predicted(gb);
      const mc = monteCarlo(80, (seed) => {
        const a0 = map(input([B, C, H, H], seed), relu);
        const z1 = conv2d(a0, w1);
        const pr = pool(z1, kind, k, s, pd);
        const pv = gap(pr.y);
        const gy = input([B, O], seed + 1);
        const dp = matmulBackward({ shape: [B, C], data: pv.data }, w2, gy).dx;
        const dz1 = pr.back(gapBackward(pr.y.shape, { shape: [B, C, 1, 1], data: dp.data }));
        const b1 = conv2dBackward(a0, w1, dz1);
        return { c1: meanSquare(dz1), w1: meanSquare(b1.dw) };
      });
      check(c1, pred, mc.c1!, 0.1);
      check('w1', pred, mc.w1!, 0.1);
    });
  }
});
