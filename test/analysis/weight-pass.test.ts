/**
 * The parallel weight pass (src/analysis/weight-pass.ts) against the lazy single-threaded path
 * of weights.ts on the same files: same statistics, same fan-in sums, whatever the thread count
 * and range size; and the report of analyzeModelAsync equals analyzeModel's.
 */
import { copyFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel, analyzeModelAsync } from '../../src/analysis/analyze.js';
import { readWeights } from '../../src/analysis/weight-pass.js';
import { sliceSums, tensorStats, type TensorStats } from '../../src/analysis/weights.js';
import { ModelError } from '../../src/errors.js';
import { parseFormat } from '../../src/formats/index.js';
import { WeightKernel } from '../../src/formats/weight-kernel.js';
import { attr, GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/load.js';
import type { Model } from '../../src/onnx/model.js';
import { writeLlama } from '../../scripts/make-llama.js';
import { mulberry32 } from '../helpers/random.js';

const FORMATS = ['e4m3', 'e5m2', 'fp16', 'bf16'].map((n) => parseFormat(n));
const haveKernel = WeightKernel.create(FORMATS) !== null;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'unitscale-wpass-'));
  writeLlama('tiny', path.join(dir, 'llama'), 7);
  writeLlama('tiny', path.join(dir, 'llama16'), 7, 'float16');
  // A model with inline weights of awkward sizes, a 0/1 mask, NaN/Inf and huge/tiny values.
  const rnd = mulberry32(3);
  const g = new GraphBuilder('odd');
  g.input('x', DataType.FLOAT, [3, 37]);
  const w = new Float32Array(37 * 129).map(() => (rnd() - 0.5) * 2 ** Math.floor(rnd() * 60 - 40));
  w[5] = NaN;
  w[77] = Infinity;
  w[100] = -0;
  g.initializer('w', [37, 129], w);
  const mask = new Float32Array(3 * 129).map(() => (rnd() < 0.3 ? -1e4 : 0));
  g.initializer('mask', [3, 129], mask);
  const y = g.node('MatMul', ['x', 'w']);
  const z = g.node('Add', [y, 'mask']);
  const u = g.node('Gemm', [z, 'w'], { attrs: { transB: attr.int(1) }, outputs: ['u'] });
  g.output(u, DataType.FLOAT, [3, 37]);
  writeFileSync(path.join(dir, 'odd.onnx'), g.toBytes());

  // float16 and bfloat16 weights (every bit pattern class: subnormal, huge, NaN/Inf), inline and
  // external, each read as a MatMul B so the fan-in sums are declared too.
  for (const external of [false, true]) {
    const h = new GraphBuilder('half');
    h.input('x', DataType.FLOAT16, [2, 64]);
    h.input('xb', DataType.BFLOAT16, [2, 64]);
    const half = new Uint16Array(64 * 300).map(() => Math.floor(rnd() * 65536));
    const bf = new Uint16Array(64 * 300).map(() => Math.floor(rnd() * 65536));
    h.initializerBytes('wh', DataType.FLOAT16, [64, 300], new Uint8Array(half.buffer));
    h.initializerBytes('wb', DataType.BFLOAT16, [64, 300], new Uint8Array(bf.buffer));
    h.output(h.node('MatMul', ['x', 'wh']), DataType.FLOAT16, [2, 300]);
    h.output(h.node('MatMul', ['xb', 'wb']), DataType.BFLOAT16, [2, 300]);
    const file = path.join(dir, external ? 'half-ext.onnx' : 'half.onnx');
    if (external) h.save(file, { externalDataFile: 'half-ext.data', sizeThreshold: 16 });
    else writeFileSync(file, h.toBytes());
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function expectSameStats(a: TensorStats, b: TensorStats): void {
  expect(a.count).toBe(b.count);
  expect(a.finite).toBe(b.finite);
  expect(a.nonFinite).toBe(b.nonFinite);
  expect(a.absmax).toBe(b.absmax);
  expect(a.min).toBe(b.min);
  expect(a.max).toBe(b.max);
  expect(a.fracZero).toBe(b.fracZero);
  expect(Math.abs(a.mean - b.mean)).toBeLessThanOrEqual(1e-12 * Math.sqrt(b.meanSquare));
  expect(Math.abs(a.meanSquare - b.meanSquare)).toBeLessThanOrEqual(1e-12 * b.meanSquare);
  expect(a.distinct === null).toBe(b.distinct === null);
  if (a.distinct && b.distinct) expect([...a.distinct]).toEqual([...b.distinct]);
  for (const f of FORMATS) {
    const x = a.risk[f.name]!;
    const y = b.risk[f.name]!;
    expect(x.overflow).toBe(y.overflow);
    expect(x.underflow).toBe(y.underflow);
    expect(x.subnormal).toBe(y.subnormal);
    if (Number.isFinite(y.sqnrDb)) expect(x.sqnrDb).toBeCloseTo(y.sqnrDb, 6);
    else expect(x.sqnrDb).toBe(y.sqnrDb);
  }
}

/** Every float initializer of `seeded` (after the pass) against a fresh load (lazy path). */
function compareWithLazy(file: string, seeded: Model): number {
  const fresh = loadModel(file);
  let n = 0;
  for (const [name, t] of seeded.graph.initializers) {
    if (t.dtype !== DataType.FLOAT && t.dtype !== DataType.FLOAT16 && t.dtype !== DataType.BFLOAT16) continue;
    const u = fresh.graph.initializers.get(name)!;
    expectSameStats(tensorStats(t, FORMATS), tensorStats(u, FORMATS));
    n++;
  }
  return n;
}

describe.runIf(haveKernel)('weight pass', () => {
  it('gives the lazy path’s statistics on a model with external data, with and without workers', async () => {
    const file = path.join(dir, 'llama', 'model.onnx');
    const results: TensorStats[][] = [];
    for (const threads of [0, 2]) {
      const m = loadModel(file);
      // Small ranges: many per tensor, starting mid-row, so merging and windows are exercised.
      const r = await readWeights(m, FORMATS, { threads, rangeBytes: 4100, parallelBytes: 0 });
      expect(r.threads).toBe(threads);
      expect(r.tensors).toBeGreaterThan(5);
      expect(compareWithLazy(file, m)).toBe(r.tensors);
      results.push([...m.graph.initializers.values()].filter((t) => t.dtype === DataType.FLOAT).map((t) => tensorStats(t, FORMATS)));
    }
    // Bit-identical whatever the thread count.
    expect(results[1]).toEqual(results[0]);
  });

  it('computes the fan-in sums the rules declare (MatMul B, Gemm transB, Gather table)', async () => {
    const file = path.join(dir, 'llama', 'model.onnx');
    const m = loadModel(file);
    await readWeights(m, FORMATS, { threads: 0, rangeBytes: 4100 });
    const fresh = loadModel(file);
    let checked = 0;
    for (const node of m.graph.nodes) {
      if (node.opType !== 'MatMul' && node.opType !== 'Gather') continue;
      const idx = node.opType === 'MatMul' ? 1 : 0;
      const t = m.graph.constant(node.inputs[idx]!);
      if (!t || t.dims.length !== 2) continue;
      const from = node.opType === 'MatMul' ? 0 : 0;
      const a = sliceSums(t, from, from + 1);
      const b = sliceSums(fresh.graph.constant(node.inputs[idx]!)!, from, from + 1);
      expect(a.slices).toBe(b.slices);
      for (let s = 0; s < a.slices; s++) {
        expect(a.sums[s]).toBeCloseTo(b.sums[s]!, 9);
        expect(a.sumSqs[s]).toBeCloseTo(b.sumSqs[s]!, 9);
      }
      expect(a.maxAbsSum).toBeCloseTo(b.maxAbsSum, 9);
      checked++;
    }
    expect(checked).toBeGreaterThan(4);
  });

  it('handles inline weights with NaN, ±Inf, −0, discrete masks and every format’s range', async () => {
    const file = path.join(dir, 'odd.onnx');
    const m = loadModel(file);
    const r = await readWeights(m, FORMATS, { threads: 0, rangeBytes: 4100 });
    expect(r.tensors).toBe(2);
    expect(compareWithLazy(file, m)).toBe(2);
    const mask = tensorStats(m.graph.initializers.get('mask')!, FORMATS);
    expect(mask.distinct?.size).toBe(2);
    const w = m.graph.initializers.get('w')!;
    for (const [from, to] of [
      [0, 1],
      [1, 2],
    ] as const) {
      const a = sliceSums(w, from, to);
      const b = sliceSums(loadModel(file).graph.initializers.get('w')!, from, to);
      for (let s = 0; s < a.slices; s++) expect(a.sums[s]).toBeCloseTo(b.sums[s]!, 6);
    }
  });

  it('widens float16 and bfloat16 weights exactly, inline and external', async () => {
    for (const name of ['half.onnx', 'half-ext.onnx']) {
      const file = path.join(dir, name);
      const m = loadModel(file);
      expect(m.graph.initializers.get('wh')!.external !== null).toBe(name === 'half-ext.onnx');
      for (const threads of [0, 2]) {
        const mm = loadModel(file);
        const r = await readWeights(mm, FORMATS, { threads, rangeBytes: 4100, parallelBytes: 0 });
        expect(r.tensors).toBe(2);
        expect(compareWithLazy(file, mm)).toBe(2);
        for (const w of ['wh', 'wb']) {
          const t = mm.graph.initializers.get(w)!;
          const a = sliceSums(t, 0, 1);
          const b = sliceSums(loadModel(file).graph.initializers.get(w)!, 0, 1);
          for (let s = 0; s < a.slices; s++) expect(a.sums[s]).toBeCloseTo(b.sums[s]!, 6 - Math.log10(Math.max(1, Math.abs(b.sums[s]!))));
        }
      }
    }
  });

  it('analyzeModelAsync (propagation overlapping the workers’ reads) reports what analyzeModel does (fp32 and fp16 models)', async () => {
    for (const sub of ['llama', 'llama16']) {
      const file = path.join(dir, sub, 'model.onnx');
      const a = await analyzeModelAsync(loadModel(file), { threads: 2, parallelBytes: 0, rangeBytes: 4100 });
      const b = analyzeModel(loadModel(file));
      expect(a.tensors.length).toBe(b.tensors.length);
      expect(a.tensors.length).toBeGreaterThan(50);
      for (let i = 0; i < a.tensors.length; i++) {
        const x = a.tensors[i]!;
        const y = b.tensors[i]!;
        expect(x.name).toBe(y.name);
        if (y.rms === null) expect(x.rms).toBeNull();
        else expect(x.rms).toBeCloseTo(y.rms, 6);
        for (const f of Object.keys(y.risk)) {
          expect(x.risk[f]!.overflow).toBeCloseTo(y.risk[f]!.overflow, 9);
          expect(x.risk[f]!.underflow).toBeCloseTo(y.risk[f]!.underflow, 9);
        }
      }
    }
  });

  it('a truncated external file is a one-line ModelError', async () => {
    const src = path.join(dir, 'llama');
    const bad = path.join(dir, 'bad');
    rmSync(bad, { recursive: true, force: true });
    (await import('node:fs')).mkdirSync(bad);
    copyFileSync(path.join(src, 'model.onnx'), path.join(bad, 'model.onnx'));
    copyFileSync(path.join(src, 'model.onnx.data'), path.join(bad, 'model.onnx.data'));
    // Loaded while whole (a truncated file is refused at load already), then cut short.
    const loaded = [0, 1, 2, 3].map(() => loadModel(path.join(bad, 'model.onnx')));
    truncateSync(path.join(bad, 'model.onnx.data'), 1000);
    for (const threads of [0, 2]) {
      const err = await readWeights(loaded[threads]!, FORMATS, { threads, parallelBytes: 0 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ModelError);
      expect(String((err as Error).message)).not.toContain('\n');
      const err2 = await analyzeModelAsync(loaded[threads + 1]!, { threads, parallelBytes: 0 }).catch((e: unknown) => e);
      expect(err2).toBeInstanceOf(ModelError);
    }
  });
});
