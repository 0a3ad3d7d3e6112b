import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURE_FILES, makeFixtures } from '../scripts/make-fixtures.js';
import { loadModel } from '../src/onnx/load.js';
import { mulberry32 } from './helpers/random.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const tmp = mkdtempSync(path.join(tmpdir(), 'unitscale-fixtures-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function listFiles(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name), base) : [path.relative(base, path.join(dir, e.name))]))
    .sort();
}

function randomInput(shape: number[], seed: number): Float32Array {
  const rng = mulberry32(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng() * 2 - 1);
}

const MODELS: { file: string; input: number[]; output: number[]; ops: string[] }[] = [
  { file: 'mlp.onnx', input: [3, 64], output: [3, 10], ops: ['MatMul', 'Add', 'Relu'] },
  {
    file: 'cnn-block.onnx',
    input: [2, 3, 32, 32],
    output: [2, 10],
    ops: ['Conv', 'BatchNormalization', 'Relu', 'MaxPool', 'GlobalAveragePool', 'Flatten', 'Gemm'],
  },
  {
    file: 'transformer-block.onnx',
    input: [2, 16, 64],
    output: [2, 16, 64],
    ops: ['LayerNormalization', 'MatMul', 'Reshape', 'Transpose', 'Mul', 'Shape', 'Concat', 'Slice', 'Add', 'Softmax', 'Pow', 'Tanh'],
  },
  { file: 'external/model.onnx', input: [4, 32], output: [4, 16], ops: ['MatMul', 'Add', 'Relu'] },
];

async function run(file: string, x: Float32Array, shape: number[]): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(path.join(FIXTURES, file));
  try {
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x, shape) });
    return out[session.outputNames[0]!]!;
  } finally {
    await session.release();
  }
}

describe('fixtures', () => {
  it('are exactly what scripts/make-fixtures.ts writes (deterministic, committed up to date)', () => {
    makeFixtures(tmp);
    // fixtures/ is shared with other generators (e.g. fixtures/planted/); these files are this script's
    expect(listFiles(tmp)).toEqual([...FIXTURE_FILES].sort());
    expect(listFiles(path.join(FIXTURES, 'external'))).toEqual(listFiles(path.join(tmp, 'external')));
    for (const f of FIXTURE_FILES) {
      const committed = readFileSync(path.join(FIXTURES, f));
      const fresh = readFileSync(path.join(tmp, f));
      expect(fresh.equals(committed), `${f} differs from a fresh run of npm run fixtures`).toBe(true);
      expect(statSync(path.join(FIXTURES, f)).size).toBeLessThan(2 * 1024 * 1024);
    }
  });

  for (const m of MODELS) {
    it(`${m.file} loads with the expected structure and runs in onnxruntime with finite outputs`, async () => {
      const model = loadModel(path.join(FIXTURES, m.file));
      const ops = new Set(model.graph.topologicalOrder().map((n) => n.opType));
      for (const op of m.ops) expect(ops, op).toContain(op);
      for (const t of model.graph.initializers.values()) {
        for (const v of t.toFloat64()) expect(Number.isFinite(v) || v === -3.4028234663852886e38).toBe(true);
      }
      const y = await run(m.file, randomInput(m.input, 7), m.input);
      expect(y.dims).toEqual(m.output);
      const data = y.data as Float32Array;
      expect(data.every((v) => Number.isFinite(v))).toBe(true);
      // not degenerate: outputs vary
      expect(Math.max(...data) - Math.min(...data)).toBeGreaterThan(1e-3);
    });
  }

  it('external/ keeps its weights in weights.bin and its biases inline', () => {
    const g = loadModel(path.join(FIXTURES, 'external/model.onnx')).graph;
    expect(g.initializers.get('fc1.weight')!.external?.location).toBe('weights.bin');
    expect(g.initializers.get('fc2.weight')!.external?.location).toBe('weights.bin');
    expect(g.initializers.get('fc1.bias')!.external).toBeNull();
  });

  it('transformer-block is causal: later tokens do not change earlier outputs', async () => {
    const shape = [1, 12, 64];
    const x = randomInput(shape, 11);
    const x2 = x.slice();
    // perturb the last token only (not by a constant: LayerNorm would cancel a uniform shift)
    for (let i = 11 * 64; i < 12 * 64; i++) x2[i] = x2[i]! + (i % 3) - 1;
    const a = (await run('transformer-block.onnx', x, shape)).data as Float32Array;
    const b = (await run('transformer-block.onnx', x2, shape)).data as Float32Array;
    for (let i = 0; i < 11 * 64; i++) expect(b[i]).toBeCloseTo(a[i]!, 5);
    let changed = 0;
    for (let i = 11 * 64; i < 12 * 64; i++) if (Math.abs(b[i]! - a[i]!) > 1e-4) changed++;
    expect(changed).toBeGreaterThan(32);
    // and mixing happens: the second token depends on the first
    const x3 = x.slice();
    for (let i = 0; i < 64; i++) x3[i] = x3[i]! + (i % 3) - 1;
    const c = (await run('transformer-block.onnx', x3, shape)).data as Float32Array;
    let moved = 0;
    for (let i = 64; i < 128; i++) if (Math.abs(c[i]! - a[i]!) > 1e-5) moved++;
    expect(moved).toBeGreaterThan(32);
  });
});
