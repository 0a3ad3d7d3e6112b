/**
 * The analyze report lists the values inside the subgraphs the propagation analysed (If
 * branches, Loop/Scan bodies), each with its `scope`, counted in the summary and the plan like
 * any other tensor; (scope, name) pairs are unique even where names repeat.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeModel } from '../../src/analysis/analyze.js';
import { parseFormat } from '../../src/formats/index.js';
import { compareReports } from '../../src/measure/compare.js';
import { measureModel } from '../../src/measure/measure.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/load.js';
import { Model } from '../../src/onnx/model.js';
import type { Report, TensorReport } from '../../src/report/types.js';
import { REPO } from '../helpers/corpus.js';
import { plantedIfOverflow } from '../helpers/planted-if.js';

const F = DataType.FLOAT;
const formats = ['e4m3', 'fp16'].map((f) => parseFormat(f));
const analyze = (m: Model, opts: Parameters<typeof analyzeModel>[1] = {}): Report => analyzeModel(m, { formats, ...opts });
const find = (r: Report, name: string, scope?: string): TensorReport | undefined => r.tensors.find((t) => t.name === name && t.scope === scope && t.kind !== 'gradient');
const keys = (r: Report) => r.tensors.filter((t) => t.kind !== 'gradient').map((t) => `${t.scope ?? ''}\u0000${t.name}`);

describe('If branches in the analyze report', () => {
  const r = analyze(new Model(plantedIfOverflow('input'), null, null));

  it('lists both branches (condition unknown) with their scope, op and node; names repeat, (scope, name) does not', () => {
    const hots = r.tensors.filter((t) => t.name === 'hot');
    expect(hots.map((t) => t.scope ?? null).sort()).toEqual(['gate_if/else_branch', 'gate_if/then_branch', null].sort());
    expect(new Set(keys(r)).size).toBe(keys(r).length);
    const thenHot = find(r, 'hot', 'gate_if/then_branch')!;
    expect(thenHot).toMatchObject({ kind: 'activation', op: 'MatMul', node: 'matmul_hot', shape: [8, 4], confidence: 'high' });
    // x·w_hot with w_hot ~ N(0, 40²), 16 terms: rms ≈ 160.
    expect(thenHot.rms!).toBeGreaterThan(120);
    expect(thenHot.rms!).toBeLessThan(220);
    expect(thenHot.risk.e4m3!.overflow).toBeGreaterThan(1e-3);
    expect(thenHot.distribution).toBeDefined();
    expect(thenHot.note).toMatch(/condition not known without data: this branch analysed as if taken/);
    expect(find(r, 'hot', 'gate_if/else_branch')!).toMatchObject({ op: 'Mul', node: 'halve', rms: 0.5 });
    expect(find(r, 'hot')!).toMatchObject({ kind: 'output', op: 'Mul' });
    // The branch's own initializer is a (scoped) weight, exact.
    expect(find(r, 'w_hot', 'gate_if/then_branch')).toMatchObject({ kind: 'weight', op: 'initializer', confidence: 'exact' });
    // Listed after the If, at its position.
    const ifOrder = find(r, 'y')!.order!;
    expect(thenHot.order).toBe(ifOrder);
    expect(r.tensors.indexOf(thenHot)).toBeGreaterThan(r.tensors.indexOf(find(r, 'y')!));
  });

  it('counts them in the summary (worst tensor named with its scope) and the plan', () => {
    expect(r.summary.tensors).toBe(r.tensors.length);
    expect(r.summary.formats.e4m3!.tensorsOverflowing).toBe(1);
    expect(r.summary.formats.e4m3!.worstTensor).toBe('gate_if/then_branch/hot');
    expect(r.summary.formats.fp16!.tensorsOverflowing).toBe(0);
    const plan = r.summary.plan as { tensors: { name: string; scope?: string; format: string | null }[] };
    expect(plan.tensors.find((t) => t.name === 'hot' && t.scope === 'gate_if/then_branch')!.format).toBe('fp16');
    expect(plan.tensors.filter((t) => t.name === 'hot')).toHaveLength(3);
  });

  it('a known condition lists the taken branch only (the other never runs)', () => {
    const f = analyze(new Model(plantedIfOverflow('false'), null, null));
    expect(f.tensors.some((t) => t.scope === 'gate_if/then_branch')).toBe(false);
    expect(find(f, 'hot', 'gate_if/else_branch')!.note).toBeUndefined();
    expect(f.summary.formats.e4m3!.tensorsOverflowing).toBe(0);
    const t = analyze(new Model(plantedIfOverflow('true'), null, null));
    expect(t.tensors.some((x) => x.scope === 'gate_if/else_branch')).toBe(false);
    expect(find(t, 'hot', 'gate_if/then_branch')!.risk.e4m3!.overflow).toBeGreaterThan(1e-3);
  });

  it('with --grad: gradients stay main-graph values (the backward pass does not enter subgraphs)', () => {
    const g = analyze(new Model(plantedIfOverflow('input'), null, null), { grad: true });
    expect(g.tensors.filter((t) => t.kind === 'gradient' && t.scope)).toHaveLength(0);
    expect(g.tensors.filter((t) => t.kind !== 'gradient' && t.scope).length).toBe(r.tensors.filter((t) => t.scope).length);
  });

  it('nested branches: the scope is the path of node/attribute pairs', () => {
    const gb = new GraphBuilder('nested', { opset: 18 });
    const x = gb.input('x', F, [4, 8]);
    const c = gb.input('c', DataType.BOOL, []);
    const inner = gb.subgraph('inner_then');
    inner.output(inner.node('Mul', [x, inner.scalar(3)], { outputs: ['deep'] }), F, [4, 8]);
    const innerElse = gb.subgraph('inner_else');
    innerElse.output(innerElse.node('Neg', [x], { outputs: ['deep_else'] }), F, [4, 8]);
    const outerThen = gb.subgraph('outer_then');
    const iy = outerThen.node('If', [c], { name: 'inner_if', attrs: { then_branch: inner, else_branch: innerElse }, outputs: ['iy'] });
    outerThen.output(outerThen.node('Relu', [iy], { outputs: ['t_out'] }), F, [4, 8]);
    const outerElse = gb.subgraph('outer_else');
    outerElse.output(outerElse.node('Tanh', [x], { outputs: ['e_out'] }), F, [4, 8]);
    gb.output(gb.node('If', [gb.constant(DataType.BOOL, [], [1], { name: 'k' })], { name: 'outer_if', attrs: { then_branch: outerThen, else_branch: outerElse }, outputs: ['y'] }), F, [4, 8]);
    const n = analyze(new Model(gb.toModelProto(), null, null));
    expect(find(n, 'iy', 'outer_if/then_branch')!.op).toBe('If');
    expect(find(n, 'deep', 'outer_if/then_branch/inner_if/then_branch')!.rms).toBeCloseTo(3, 6);
    expect(find(n, 'deep_else', 'outer_if/then_branch/inner_if/else_branch')!.rms).toBeCloseTo(1, 6);
    expect(n.tensors.some((t) => t.name === 'e_out')).toBe(false);
  });
});

describe('Loop and Scan bodies: predicted once, said in the note', () => {
  it('Loop body values carry the scope, the one-iteration note and at most low confidence', () => {
    const gb = new GraphBuilder('loop', { opset: 18 });
    const x = gb.input('x', F, [4, 8]);
    const body = gb.subgraph('body');
    body.input('i', DataType.INT64, []);
    const cin = body.input('cond_in', DataType.BOOL, []);
    const v = body.input('v', F, [4, 8]);
    body.output(body.node('Identity', [cin], { outputs: ['cond_out'] }), DataType.BOOL, []);
    const half = body.node('Mul', [v, body.scalar(0.5)], { outputs: ['v_half'] });
    body.output(body.node('Add', [half, x], { outputs: ['v_out'] }), F, [4, 8]);
    const [fin] = gb.nodeMulti('Loop', [gb.constant(DataType.INT64, [], [3], { name: 'M' }), '', x], { name: 'the_loop', attrs: { body }, outputs: ['final'] });
    gb.output(fin!, F, [4, 8]);
    const r = analyze(new Model(gb.toModelProto(), null, null));
    const vh = find(r, 'v_half', 'the_loop/body')!;
    expect(vh.rms).toBeCloseTo(0.5, 6);
    expect(vh.note).toMatch(/Loop body: one iteration analysed, loop-carried values at their initial scales/);
    expect(vh.confidence).toBe('low');
    expect(find(r, 'v_out', 'the_loop/body')!.rms).toBeCloseTo(Math.sqrt(1.25), 4);
    // Formal inputs are the outer values (already listed); the body's Identity of a bool is not float.
    expect(find(r, 'v', 'the_loop/body')).toBeUndefined();
    expect(find(r, 'cond_out', 'the_loop/body')).toBeUndefined();
    // The body's stored scalar is exact and keeps its confidence.
    expect(r.tensors.find((t) => t.scope === 'the_loop/body' && t.kind === 'weight')!.confidence).toBe('exact');
  });
});

const SILERO = path.join(REPO, 'node_modules/@ricky0123/vad-web/dist/silero_vad_legacy.onnx');

describe.runIf(existsSync(SILERO))('Silero VAD (legacy): branch values listed and compared with a measurement', () => {
  it('lists the values of both top-level branches and matches the measured (inlined) ones', { timeout: 120_000 }, async () => {
    const model = loadModel(SILERO);
    const shapes = { input: [1, 512], h: [2, 1, 64], c: [2, 1, 64] };
    const r = analyzeModel(model, { formats: [parseFormat('fp16')], shapes });
    const scoped = r.tensors.filter((t) => t.scope);
    expect(scoped.length).toBeGreaterThan(150);
    expect(new Set(keys(r)).size).toBe(keys(r).length);
    expect(scoped.some((t) => t.scope === 'If_25/then_branch')).toBe(true);
    expect(scoped.some((t) => t.scope === 'If_25/else_branch')).toBe(true);
    expect(scoped.filter((t) => t.confidence === 'unknown').length / scoped.length).toBeLessThan(0.05);

    const measured = await measureModel(model, { formats: [parseFormat('fp16')], shapes, runs: 2, seed: 0 });
    const cmp = compareReports(r, measured);
    const branch = cmp.tensors.filter((t) => t.scope && t.predicted && t.predicted.log2Error !== null);
    expect((cmp.summary.compare as { matchedInSubgraphs: number }).matchedInSubgraphs).toBe(branch.length);
    expect(branch.length).toBeGreaterThan(50);
    // measure takes If_25's then branch (sr = 16000): the matches are from there.
    expect(branch.every((t) => t.scope!.startsWith('If_25/then_branch'))).toBe(true);
    const errs = branch.map((t) => Math.abs(t.predicted!.log2Error!)).sort((a, b) => a - b);
    expect(errs[(errs.length - 1) >> 1]!).toBeLessThan(0.5);
  });
});
