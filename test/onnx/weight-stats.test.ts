import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/load.js';
import { simdKernel, tensorStats, weightStats } from '../../src/onnx/weight-stats.js';
import { mulberry32 } from '../helpers/random.js';

const dir = mkdtempSync(path.join(tmpdir(), 'unitscale-wstats-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function reference(values: ArrayLike<number>) {
  let s = 0;
  let q = 0;
  let m = 0;
  let nf = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) {
      nf++;
      continue;
    }
    s += v;
    q += v * v;
    m = Math.max(m, Math.abs(v));
  }
  const n = values.length - nf;
  return { mean: s / n, rms: Math.sqrt(q / n), absmax: m, nonFinite: nf };
}

describe('weightStats', () => {
  const rng = mulberry32(3);
  const big = Float32Array.from({ length: 300_000 }, () => (rng() - 0.3) * 4);
  big[17] = NaN;
  big[99_999] = Infinity;
  const half = Float32Array.from({ length: 50_001 }, () => rng() * 2 - 1);
  const b = new GraphBuilder('w');
  b.initializer('big', [300, 1000], big);
  b.initializer('half', [50_001], half, DataType.FLOAT16);
  b.initializer('bf', [4096], half.subarray(0, 4096), DataType.BFLOAT16);
  b.initializer('small', [3], [1, -2, 3]);
  b.initializer('ints', [4], [1, 2, 3, -10], DataType.INT64);
  b.initializer('odd', [7, 143], big.subarray(200, 200 + 1001)); // tails of 9 values past the kernel's 16-value steps
  b.output(b.node('Identity', ['small']), DataType.FLOAT);
  const file = path.join(dir, 'model.onnx');
  b.save(file, { externalDataFile: 'w.bin', sizeThreshold: 64 });
  const model = loadModel(file);

  it('matches a direct computation for float32, float16, bfloat16, inline and integer tensors', async () => {
    const stats = await weightStats(model, { threads: 2, rangeBytes: 1 << 16, chunkBytes: 1 << 12 });
    expect(stats.map((s) => s.name)).toEqual(['big', 'half', 'bf', 'small', 'ints', 'odd']);
    for (const s of stats) {
      const t = model.graph.initializers.get(s.name)!;
      const want = reference(t.toFloat64());
      expect(s.count).toBe(t.count);
      expect(s.nonFinite).toBe(want.nonFinite);
      expect(s.mean).toBeCloseTo(want.mean, 10);
      expect(s.rms).toBeCloseTo(want.rms, 10);
      expect(s.absmax).toBe(want.absmax);
    }
    expect(stats[0]!.nonFinite).toBe(2);
    expect(stats[4]!.absmax).toBe(10);
  });

  it('the WebAssembly SIMD kernel agrees with the plain JavaScript loop', async () => {
    expect(simdKernel()).not.toBeNull(); // Node 20 has WebAssembly SIMD
    // odd chunk sizes leave tails that the kernel does not cover (multiples of 16 values only)
    for (const chunkBytes of [4096, 4160, 1 << 20]) {
      const simd = await weightStats(model, { threads: 2, rangeBytes: 1 << 16, chunkBytes, simd: true });
      const plain = await weightStats(model, { threads: 2, rangeBytes: 1 << 16, chunkBytes, simd: false });
      for (let i = 0; i < simd.length; i++) {
        expect(simd[i]!.count).toBe(plain[i]!.count);
        expect(simd[i]!.nonFinite).toBe(plain[i]!.nonFinite);
        expect(simd[i]!.mean).toBeCloseTo(plain[i]!.mean, 12);
        expect(simd[i]!.rms).toBeCloseTo(plain[i]!.rms, 12);
        expect(simd[i]!.absmax).toBe(plain[i]!.absmax);
      }
    }
  });

  it('does not depend on the number of threads; 0 threads uses TensorData.chunks()', async () => {
    const one = await weightStats(model, { threads: 1, rangeBytes: 1 << 16 });
    const three = await weightStats(model, { threads: 3, rangeBytes: 1 << 16 });
    expect(three).toEqual(one);
    const none = await weightStats(model, { threads: 0 });
    for (let i = 0; i < one.length; i++) {
      expect(none[i]!.mean).toBeCloseTo(one[i]!.mean, 12);
      expect(none[i]!.absmax).toBe(one[i]!.absmax);
    }
    expect(tensorStats(model.graph.initializers.get('small')!)).toMatchObject({ mean: 2 / 3, absmax: 3, count: 3 });
  });

  it('turns a vanished external file into a ModelError', async () => {
    const other = path.join(dir, 'gone');
    const g = new GraphBuilder('g');
    g.initializer('w', [1000], new Float32Array(1000));
    g.output(g.node('Identity', ['w']), DataType.FLOAT);
    g.save(path.join(other, 'model.onnx'), { externalDataFile: 'w.bin' });
    const m = loadModel(path.join(other, 'model.onnx'));
    unlinkSync(path.join(other, 'w.bin'));
    await expect(weightStats(m, { threads: 2 })).rejects.toBeInstanceOf(ModelError);
  });
});
