import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sliceSums, tensorStats, valueBuckets, weightScale } from '../../src/analysis/weights.js';
import { parseFormat } from '../../src/formats/index.js';
import { RiskAccumulator } from '../../src/formats/risk.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/load.js';
import { makeTensorProto, TensorData } from '../../src/onnx/tensor.js';
import { gaussians } from '../helpers/mc.js';

const formats = ['fp16', 'bf16', 'e4m3', 'e5m2'].map(parseFormat);
const F32_MIN = -3.4028234663852886e38;

function direct(v: ArrayLike<number>) {
  let s = 0;
  let s2 = 0;
  let mx = 0;
  let z = 0;
  for (let i = 0; i < v.length; i++) {
    s += v[i]!;
    s2 += v[i]! * v[i]!;
    mx = Math.max(mx, Math.abs(v[i]!));
    if (v[i] === 0) z++;
  }
  return { mean: s / v.length, meanSquare: s2 / v.length, absmax: mx, fracZero: z / v.length };
}

describe('tensorStats: exact statistics of stored tensors', () => {
  it('mean, mean square, absmax, zeros and the exact per-format risk', () => {
    const v = Float32Array.from(gaussians(5000, 0.01, 0.02, 1));
    v[3] = 0;
    v[7] = 1e-9; // underflows in every 8-bit format and fp16
    const t = new TensorData(makeTensorProto('w', DataType.FLOAT, [50, 100], v), null);
    const s = tensorStats(t, formats);
    const d = direct(v);
    expect(s.mean).toBeCloseTo(d.mean, 15);
    expect(s.meanSquare).toBeCloseTo(d.meanSquare, 15);
    expect(s.absmax).toBe(d.absmax);
    expect(s.fracZero).toBe(1 / 5000);
    const acc = new RiskAccumulator(formats);
    acc.add(v);
    expect(s.risk).toEqual(acc.result().formats);
    expect(s.risk.fp16!.underflow).toBeGreaterThanOrEqual(1 / 5000);
    expect(s.distinct).toBeNull();
  });

  it('few distinct values give a discrete law; a float32-min fill is called a mask', () => {
    const mask = new Float32Array(64).map((_, i) => (i % 8 > Math.floor(i / 8) ? F32_MIN : 0));
    const t = new TensorData(makeTensorProto('mask', DataType.FLOAT, [8, 8], mask), null);
    const s = weightScale(t, formats);
    expect(s.dist.kind).toBe('discrete');
    expect(s.note).toMatch(/mask: 43\.8% filled with float32 min/);
    for (const f of formats) expect(s.exactRisk![f.name]!.overflow).toBeCloseTo(28 / 64, 12);
    expect(s.confidence).toBe('exact');
  });

  it('integer tensors are read as numbers (for masks/ids), bool 0/1', () => {
    const t = new TensorData(makeTensorProto('b', DataType.BOOL, [4], [1, 0, 1, 1]), null);
    const s = tensorStats(t, formats);
    expect(s.mean).toBe(0.75);
    expect(s.distinct!.get(1)).toBe(0.75);
  });
});

describe('streaming external data', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'unitscale-weights-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a tensor larger than one chunk gives the same statistics as decoding it whole', () => {
    const n = 1_300_000; // 5.2 MB of float32: more than one 4 MiB chunk
    const v = Float32Array.from(gaussians(n, -0.001, 0.05, 2));
    const gb = new GraphBuilder('big', { opset: 18 });
    const x = gb.input('x', DataType.FLOAT, [1, 1300]);
    const w = gb.initializer('w', [1300, 1000], v);
    gb.output(gb.node('MatMul', [x, w]), DataType.FLOAT, [1, 1000]);
    const file = path.join(dir, 'big.onnx');
    gb.save(file, { externalDataFile: 'big.bin' });
    const t = loadModel(file).graph.initializers.get('w')!;
    expect(t.external).not.toBeNull();
    expect([...t.chunks()].length).toBeGreaterThan(1);
    const s = tensorStats(t, formats);
    const d = direct(v);
    expect(s.mean).toBeCloseTo(d.mean, 12);
    expect(s.meanSquare).toBeCloseTo(d.meanSquare, 12);
    expect(s.absmax).toBe(d.absmax);
    const acc = new RiskAccumulator(formats);
    acc.add(v);
    const r = acc.result().formats;
    for (const f of formats) {
      expect(s.risk[f.name]!.underflow).toBe(r[f.name]!.underflow);
      expect(s.risk[f.name]!.sqnrDb).toBeCloseTo(r[f.name]!.sqnrDb, 9);
    }
    // Column sums of a [K, N] matrix stream as well.
    const ss = sliceSums(t, 0, 1);
    expect(ss.slices).toBe(1000);
    let col0 = 0;
    for (let k = 0; k < 1300; k++) col0 += v[k * 1000]!;
    expect(ss.sums[0]).toBeCloseTo(col0, 9);
  });
});

describe('sliceSums and valueBuckets', () => {
  it('fan-in sums per output unit: columns of [K, N], output channels of a conv kernel', () => {
    const w = { dims: [2, 3], data: [1, 2, 3, 4, 5, 6] };
    const cols = sliceSums(w, 0, 1); // sums over K for each of the 3 columns: 5, 7, 9
    expect(Array.from(cols.sums)).toEqual([5, 7, 9]);
    expect(cols.meanSum).toBe(7);
    expect(cols.meanSumSq).toBeCloseTo((25 + 49 + 81) / 3, 12);
    const k = { dims: [2, 1, 2, 2], data: [1, -1, 2, 0, 3, 3, -1, 1] };
    const ch = sliceSums(k, 1, 4);
    expect(Array.from(ch.sums)).toEqual([2, 6]);
    expect(ch.maxAbsSum).toBe(8);
  });

  it('quantile buckets keep the mean and the mean square', () => {
    const v = gaussians(10000, 0.3, 2, 3);
    const d = valueBuckets({ dims: [10000], data: v });
    expect(d.kind).toBe('discrete');
    if (d.kind !== 'discrete') return;
    let m1 = 0;
    let m2 = 0;
    d.values.forEach((x, i) => {
      m1 += d.weights[i]! * x;
      m2 += d.weights[i]! * x * x;
    });
    const s = direct(v);
    expect(m1).toBeCloseTo(s.mean, 10);
    expect(m2).toBeCloseTo(s.meanSquare, 10);
  });
});
