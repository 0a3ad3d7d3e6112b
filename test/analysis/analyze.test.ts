import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeModel } from '../../src/analysis/analyze.js';
import { UsageError } from '../../src/errors.js';
import { parseFormat } from '../../src/formats/index.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType, isFloatType } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/load.js';
import { Model } from '../../src/onnx/model.js';
import type { Report } from '../../src/report/types.js';
import { hasShared, rel, SHARED, sharedModels } from '../helpers/corpus.js';
import { gaussians, stats } from '../helpers/mc.js';

const VALIDATION = path.join(SHARED, 'validation');
const formats = ['fp16', 'bf16', 'e4m3', 'e5m2'].map(parseFormat);

describe.runIf(hasShared)('the report of gpt2_tiny', () => {
  const model = loadModel(path.join(VALIDATION, 'gpt2_tiny.onnx'));
  const report: Report = analyzeModel(model, { formats, grad: true });
  const fwd = report.tensors.filter((t) => t.kind !== 'gradient');

  it('lists every float tensor of the main graph once, in the contract’s shape', () => {
    const g = model.graph;
    const expected = new Set<string>();
    for (const [n, t] of g.initializers) if (t.isFloat) expected.add(n);
    // Node outputs, except the bool of IsNaN and `view` (the int64 ids reshaped).
    for (const node of g.nodes) for (const o of node.outputs) if (o && node.opType !== 'IsNaN' && o !== 'view') expected.add(o);
    expect(new Set(fwd.map((t) => t.name))).toEqual(expected);
    expect(fwd.length).toBe(expected.size);
    expect(report.mode).toBe('predicted');
    expect(report.formats).toEqual(['fp16', 'bf16', 'e4m3', 'e5m2']);
    for (const t of fwd) {
      expect(Object.keys(t.risk).sort()).toEqual(['bf16', 'e4m3', 'e5m2', 'fp16']);
      expect(t.rms).not.toBeNull();
      expect(typeof t.order).toBe('number');
      expect(t.confidence).not.toBe('unknown');
    }
    expect(fwd.find((t) => t.name === 'logits')!.kind).toBe('output');
    expect(fwd.find((t) => t.name === 'm.lm_head.weight')!.kind).toBe('weight');
    expect(report.summary.unsupportedOps).toEqual([]);
    JSON.parse(JSON.stringify(report));
  });

  it('says what the mask tensors are, and that they overflow every format (bf16 included)', () => {
    const mask = fwd.find((t) => t.name === 'val_138')!;
    expect(mask.note).toMatch(/float32 min/);
    const scores = fwd.find((t) => t.name === 'val_140')!;
    expect(scores.note).toMatch(/mask fill/);
    for (const f of ['fp16', 'bf16', 'e4m3', 'e5m2']) {
      expect(mask.risk[f]!.overflow).toBeCloseTo(496 / 1024, 6);
      expect(scores.risk[f]!.overflow).toBeCloseTo(496 / 1024, 3);
    }
    const probs = fwd.find((t) => t.name === 'val_141')!;
    expect(probs.note).toMatch(/exact zeros/);
    expect(probs.absmax).toBe(1);
    expect(report.summary.formats.bf16!.tensorsOverflowing).toBeGreaterThanOrEqual(4);
    expect(report.summary.formats.bf16!.worstHeadroomBits).toBeLessThan(0);
  });

  it('has a summary per format and a mixed-precision plan', () => {
    for (const f of ['fp16', 'bf16', 'e4m3', 'e5m2']) {
      const s = report.summary.formats[f]!;
      expect(s.format).toBe(f);
      expect(s.medianSqnrDb).toBeGreaterThan(f === 'fp16' ? 60 : 20);
    }
    const plan = report.summary.plan as { tensors: { name: string; format: string | null }[]; bytesSaved: number; bytesFp32: number };
    expect(plan.bytesSaved).toBeGreaterThan(0.5 * plan.bytesFp32);
    // The mask overflows everything: it stays fp32 (format null).
    expect(plan.tensors.find((t) => t.name === 'val_138')!.format).toBeNull();
    expect(plan.tensors.find((t) => t.name === 'layer_norm')!.format).toMatch(/e4m3|e5m2|fp16|bf16/);
  });

  it('with --grad, reports gradients of weights and activations', () => {
    const grads = report.tensors.filter((t) => t.kind === 'gradient');
    const w = grads.find((t) => t.name === 'm.transformer.h.0.mlp.c_fc.weight')!;
    expect(w.gradientOf).toBe('weight');
    expect(w.rms).toBeGreaterThan(0);
    expect(grads.find((t) => t.name === 'logits')!.rms).toBeCloseTo(1, 6);
    expect(grads.some((t) => t.gradientOf === 'activation')).toBe(true);
    expect((report.summary.gradients as { tensors: number }).tensors).toBe(grads.length);
  });
});

describe.runIf(hasShared)('mobilenet_v3_small at random initialisation', () => {
  it('predicts the late activations to underflow fp16', () => {
    const r = analyzeModel(loadModel(path.join(VALIDATION, 'mobilenet_v3_small.onnx')), { formats });
    const out = r.tensors.find((t) => t.kind === 'output')!;
    expect(out.rms!).toBeLessThan(1e-8);
    expect(out.risk.fp16!.underflow).toBeGreaterThan(0.5);
    expect(r.summary.formats.fp16!.tensorsUnderflowing).toBeGreaterThan(30);
  });
});

describe('engine behaviour', () => {
  it('an op without a rule gives unknown outputs, propagation continues, and it is listed', () => {
    const gb = new GraphBuilder('m', { opset: 18, domains: { 'my.domain': 1 } });
    const x = gb.input('x', DataType.FLOAT, [4, 8]);
    const y = gb.node('Frobnicate', [x], { domain: 'my.domain' });
    const w = gb.initializer('w', [8, 3], gaussians(24, 0, 0.3, 1));
    gb.output(gb.node('MatMul', [y, w]), DataType.FLOAT, [4, 3]);
    const r = analyzeModel(new Model(gb.toModelProto(), null, null), { formats });
    const u = r.tensors.find((t) => t.op === 'Frobnicate')!;
    expect(u.confidence).toBe('unknown');
    expect(u.note).toMatch(/no rule for my\.domain:Frobnicate/);
    expect(u.risk).toEqual({});
    expect(r.summary.unsupportedOps).toEqual(['my.domain:Frobnicate']);
    expect(r.tensors.find((t) => t.kind === 'output')!.confidence).toBe('unknown');
  });

  it('integer tensors carry no scale and are not reported', () => {
    const gb = new GraphBuilder('m', { opset: 18 });
    const ids = gb.input('ids', DataType.INT64, [2, 5]);
    const table = gb.initializer('table', [10, 4], gaussians(40, 0, 0.02, 2));
    gb.output(gb.node('Gather', [table, ids]), DataType.FLOAT, [2, 5, 4]);
    const r = analyzeModel(new Model(gb.toModelProto(), null, null), { formats });
    expect(r.tensors.map((t) => t.name).sort()).toEqual(['Gather_1_output_0', 'table'].sort());
    expect((r.summary.inputs as { name: string; assumed: string }[])[0]).toMatchObject({ name: 'ids', assumed: 'ids' });
    const out = r.tensors.find((t) => t.kind === 'output')!;
    const tab = r.tensors.find((t) => t.name === 'table')!;
    expect(out.rms).toBeCloseTo(tab.rms!, 6);
  });

  it('--input overrides the default N(0, 1) and rejects bad specs', () => {
    const gb = new GraphBuilder('m', { opset: 18 });
    const x = gb.input('x', DataType.FLOAT, [16]);
    gb.output(gb.node('Relu', [x]), DataType.FLOAT, [16]);
    const m = new Model(gb.toModelProto(), null, null);
    const def = analyzeModel(m).tensors.find((t) => t.kind === 'input')!;
    expect(def.rms).toBeCloseTo(1, 12);
    const u = analyzeModel(m, { inputs: { x: 'uniform:0,3' } }).tensors.find((t) => t.kind === 'input')!;
    expect(u.rms).toBeCloseTo(Math.sqrt(3), 5); // reports keep 6 significant digits
    expect(u.absmax).toBe(3);
    expect(() => analyzeModel(m, { inputs: { y: 'normal:0,1' } })).toThrow(UsageError);
    expect(() => analyzeModel(m, { inputs: { x: 'normal:0' } })).toThrow(UsageError);
    expect(() => analyzeModel(m, { inputs: { x: 'ids' } })).toThrow(UsageError);
    expect(() => analyzeModel(m, { inputs: { x: 'cauchy:0,1' } })).toThrow(/unknown distribution/);
  });

  it('backward through MatMul–Relu–MatMul matches a Monte-Carlo of the gradient', () => {
    const B = 256;
    const K = 32;
    const H = 64;
    const O = 16;
    const w1 = Float32Array.from(gaussians(K * H, 0, 1 / Math.sqrt(K), 3));
    const w2 = Float32Array.from(gaussians(H * O, 0, 1 / Math.sqrt(H), 4));
    const gb = new GraphBuilder('mlp', { opset: 18 });
    const x = gb.input('x', DataType.FLOAT, [B, K]);
    const h = gb.node('Relu', [gb.node('MatMul', [x, gb.initializer('w1', [K, H], w1)])]);
    gb.output(gb.node('MatMul', [h, gb.initializer('w2', [H, O], w2)]), DataType.FLOAT, [B, O]);
    const r = analyzeModel(new Model(gb.toModelProto(), null, null), { formats, grad: true });
    const gw1 = r.tensors.find((t) => t.kind === 'gradient' && t.name === 'w1')!;
    const gx = r.tensors.find((t) => t.kind === 'gradient' && t.name === 'x')!;
    // MC: ∂h = g·W2ᵀ, ∂pre = ∂h ⊙ [pre > 0], ∂W1 = xᵀ·∂pre, ∂x = ∂pre·W1ᵀ.
    const reps = 20;
    const gw1sq: number[] = [];
    const gxsq: number[] = [];
    for (let rep = 0; rep < reps; rep++) {
      const xv = gaussians(B * K, 0, 1, 100 + rep);
      const gv = gaussians(B * O, 0, 1, 200 + rep);
      const dpre = new Float64Array(B * H);
      for (let b = 0; b < B; b++)
        for (let j = 0; j < H; j++) {
          let pre = 0;
          for (let k = 0; k < K; k++) pre += xv[b * K + k]! * w1[k * H + j]!;
          if (pre <= 0) continue;
          let d = 0;
          for (let o = 0; o < O; o++) d += gv[b * O + o]! * w2[j * O + o]!;
          dpre[b * H + j] = d;
        }
      let s1 = 0;
      for (let k = 0; k < K; k++)
        for (let j = 0; j < H; j++) {
          let v = 0;
          for (let b = 0; b < B; b++) v += xv[b * K + k]! * dpre[b * H + j]!;
          s1 += (v * v) / (K * H);
        }
      gw1sq.push(s1);
      let s2 = 0;
      for (let b = 0; b < B; b++)
        for (let k = 0; k < K; k++) {
          let v = 0;
          for (let j = 0; j < H; j++) v += dpre[b * H + j]! * w1[k * H + j]!;
          s2 += (v * v) / (B * K);
        }
      gxsq.push(s2);
    }
    const a = stats(gw1sq);
    const b = stats(gxsq);
    expect(Math.abs(gw1.rms! ** 2 - a.mean) / a.mean).toBeLessThan(0.1);
    expect(Math.abs(gx.rms! ** 2 - b.mean) / b.mean).toBeLessThan(0.1);
  });
});

describe.runIf(hasShared)('runs on every shared model without throwing', () => {
  for (const file of sharedModels()) {
    it(rel(file), { timeout: 300_000 }, () => {
      const m = loadModel(file);
      const r = analyzeModel(m, { formats });
      expect(r.mode).toBe('predicted');
      const names = r.tensors.map((t) => t.name);
      expect(new Set(names).size).toBe(names.length);
      for (const t of r.tensors) {
        expect(t.dtype === 'float' || isFloatType(m.graph.declaredTypes.get(t.name)?.dtype ?? DataType.FLOAT) || t.kind !== 'input').toBe(true);
        if (t.rms !== null) expect(Number.isFinite(t.rms)).toBe(true);
      }
      JSON.stringify(r);
    });
  }
});
