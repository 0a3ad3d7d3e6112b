import { describe, expect, it } from 'vitest';
import { distMoments } from '../../../src/analysis/quadrature.js';
import { interpolationFactors, rules, scaleOfValues } from '../../../src/analysis/rules/shape-ops.js';
import { gaussianScale, type Scale } from '../../../src/analysis/scale.js';
import { DataType } from '../../../src/onnx/dtype.js';
import { makeTensorProto } from '../../../src/onnx/tensor.js';
import { draw, gaussians, stats } from '../../helpers/mc.js';
import { backwardContext, ruleContext, type NodeSpec } from '../../helpers/rule-context.js';

function fwd(spec: NodeSpec, out = 0): Scale | null {
  return rules[spec.op]!.forward(ruleContext(spec))[out]!;
}

function expectMoments(pred: Scale, xs: ArrayLike<number>, k = 5): void {
  const s = stats(xs);
  expect(Math.abs(pred.mean - s.mean)).toBeLessThanOrEqual(k * s.seMean + 1e-12);
  expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThanOrEqual(k * s.seMeanSquare + 1e-12);
}

describe('pass-through', () => {
  it.each(['Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity', 'Expand', 'Tile', 'DepthToSpace', 'SpaceToDepth'])('%s keeps the Scale', (op) => {
    const x = gaussianScale(0.3, 2);
    expect(fwd({ op, inputs: [{ scale: x }, { constant: [1], dtype: DataType.INT64, shape: [1] }] })).toEqual(x);
  });

  it('Slice and Split keep the moments', () => {
    const x = gaussianScale(0.3, 2);
    expect(fwd({ op: 'Slice', inputs: [{ scale: x }] })!.meanSquare).toBe(x.meanSquare);
    const outs = rules.Split!.forward(ruleContext({ op: 'Split', inputs: [{ scale: x }], outputs: [{}, {}, {}] }));
    expect(outs).toHaveLength(3);
    for (const o of outs) expect(o!.meanSquare).toBe(x.meanSquare);
  });

  it('Shape, Size, NonZero and int outputs carry no scale', () => {
    for (const op of ['Shape', 'Size', 'NonZero']) expect(fwd({ op, inputs: [{ scale: gaussianScale(0, 1) }], outputs: [{ dtype: DataType.INT64 }] })).toBeNull();
    expect(fwd({ op: 'Reshape', inputs: [{ scale: null, dtype: DataType.INT64 }], outputs: [{ dtype: DataType.INT64 }] })).toBeNull();
  });

  it('Dropout at inference is the identity, its mask has no scale', () => {
    const x = gaussianScale(0, 1);
    const outs = rules.Dropout!.forward(ruleContext({ op: 'Dropout', inputs: [{ scale: x }], outputs: [{}, { dtype: DataType.BOOL }] }));
    expect(outs[0]!.meanSquare).toBe(1);
    expect(outs[1]).toBeNull();
  });
});

describe('Concat and Pad', () => {
  it('Concat is a size-weighted mixture (sizes along the axis)', () => {
    const a = gaussianScale(0, 1);
    const b = gaussianScale(2, 0.5);
    const y = fwd({ op: 'Concat', attrs: { axis: 1 }, inputs: [{ scale: a, shape: [2, 3] }, { scale: b, shape: [2, 5] }] })!;
    const xs = [...gaussians(30000, 0, 1, 1), ...gaussians(50000, 2, 0.5, 2)];
    expectMoments(y, xs);
    expect(y.confidence).toBe('high');
    expect(distMoments(y.dist).meanSquare).toBeCloseTo(y.meanSquare, 10);
  });

  it('Concat with unknown sizes weights equally, medium confidence', () => {
    const y = fwd({ op: 'Concat', attrs: { axis: 1 }, inputs: [{ scale: gaussianScale(0, 1), shape: [2, 'a'] }, { scale: gaussianScale(0, 3), shape: [2, 5] }] })!;
    expect(y.meanSquare).toBeCloseTo(5, 12);
    expect(y.confidence).toBe('medium');
  });

  it('Pad (constant): zeros dilute by the padded share', () => {
    const x = gaussianScale(1, 1);
    const y = fwd({
      op: 'Pad',
      inputs: [{ scale: x, shape: [1, 1, 4, 4] }, { constant: [0, 0, 1, 1, 0, 0, 1, 1], dtype: DataType.INT64, shape: [8] }],
      opset: 13,
    })!;
    const share = 1 - 16 / 36;
    expect(y.meanSquare).toBeCloseTo(2 * (1 - share), 12);
    expect(y.mean).toBeCloseTo(1 - share, 12);
    expect(y.fracZero).toBeCloseTo(share, 12);
    // reflect: same scale
    const r = fwd({ op: 'Pad', attrs: { mode: 'reflect' }, inputs: [{ scale: x, shape: [1, 1, 4, 4] }, { constant: [0, 0, 1, 1, 0, 0, 1, 1], dtype: DataType.INT64, shape: [8] }], opset: 13 })!;
    expect(r.meanSquare).toBe(2);
    // pad value 2 from the attribute (opset 2)
    const v = fwd({ op: 'Pad', attrs: { pads: [0, 1, 0, 1], value: { float: 2 } }, inputs: [{ scale: x, shape: [2, 2] }], opset: 2 })!;
    expect(v.mean).toBeCloseTo(0.5 * 1 + 0.5 * 2, 12);
  });
});

describe('Gather', () => {
  const table = [0, 0, 1, 1, 2, 2, 3, 3, 10, 10]; // 5 rows of 2
  const tableInput = { constant: makeTensorProto('t', DataType.FLOAT, [5, 2], table), shape: [5, 2] };

  it('constant table, constant ids: the moments of the looked-up rows', () => {
    const y = fwd({ op: 'Gather', inputs: [{ ...tableInput, scale: scaleOfValues(table) }, { constant: [1, 1, 4], dtype: DataType.INT64, shape: [3] }] })!;
    expect(y.mean).toBeCloseTo((1 + 1 + 10) / 3, 14);
    expect(y.meanSquare).toBeCloseTo((1 + 1 + 100) / 3, 14);
    expect(y.confidence).toBe('exact');
  });

  it('constant table, unknown ids: the whole table', () => {
    const y = fwd({ op: 'Gather', inputs: [{ ...tableInput, scale: scaleOfValues(table) }, { dtype: DataType.INT64, shape: [7] }] })!;
    expect(y.meanSquare).toBeCloseTo((2 * (0 + 1 + 4 + 9 + 100)) / 10, 14);
    expect(y.confidence).toBe('high');
  });

  it('axis 1 on a constant table', () => {
    const y = fwd({ op: 'Gather', attrs: { axis: 1 }, inputs: [{ ...tableInput, scale: scaleOfValues(table) }, { constant: [0], dtype: DataType.INT64, shape: [1] }] })!;
    expect(y.mean).toBeCloseTo(16 / 5, 14);
  });

  it('activations: same scale', () => {
    const x = gaussianScale(0.2, 1.5);
    expect(fwd({ op: 'Gather', inputs: [{ scale: x, shape: [4, 8] }, { constant: [0], dtype: DataType.INT64, shape: [] }] })!.meanSquare).toBe(x.meanSquare);
  });

  it('table gradient: each row gets the sum of its look-ups’ gradients', () => {
    const g = gaussianScale(0, 1);
    const ctx = backwardContext({ op: 'Gather', inputs: [{ ...tableInput, scale: scaleOfValues(table) }, { constant: [1, 1, 4], dtype: DataType.INT64, shape: [3] }] }, [null], [g]);
    const gt = rules.Gather!.backward!(ctx)[0]!;
    // row 1: 2 look-ups (E = 2), row 4: 1 look-up (E = 1), 3 rows untouched: mean over 5 rows = 3/5
    expect(gt.meanSquare).toBeCloseTo(3 / 5, 12);
    expect(gt.fracZero).toBeCloseTo(3 / 5, 12);
    // unknown ids: N/D
    const ctx2 = backwardContext({ op: 'Gather', inputs: [{ ...tableInput, scale: scaleOfValues(table) }, { dtype: DataType.INT64, shape: [20] }] }, [null], [g]);
    expect(rules.Gather!.backward!(ctx2)[0]!.meanSquare).toBeCloseTo(20 / 5, 12);
  });
});

describe('Cast, ConstantOfShape, Range', () => {
  it('Cast float→float keeps moments; to int has no scale; bool→float is {0,1} with low confidence', () => {
    const x = gaussianScale(0, 1);
    expect(fwd({ op: 'Cast', attrs: { to: DataType.FLOAT16 }, inputs: [{ scale: x }], outputs: [{ dtype: DataType.FLOAT16 }] })!.meanSquare).toBe(1);
    expect(fwd({ op: 'Cast', attrs: { to: DataType.INT32 }, inputs: [{ scale: x }], outputs: [{ dtype: DataType.INT32 }] })).toBeNull();
    const b = fwd({ op: 'Cast', attrs: { to: DataType.FLOAT }, inputs: [{ scale: null, dtype: DataType.BOOL }], outputs: [{ dtype: DataType.FLOAT }] })!;
    expect(b.dist.kind).toBe('discrete');
    expect(b.confidence).toBe('low');
    const c = fwd({ op: 'Cast', attrs: { to: DataType.FLOAT }, inputs: [{ scale: null, dtype: DataType.INT64, constant: [1, 2, 3], shape: [3] }], outputs: [{ dtype: DataType.FLOAT }] })!;
    expect(c.mean).toBe(2);
    expect(c.confidence).toBe('exact');
  });

  it('ConstantOfShape: one value; Range: arithmetic progression', () => {
    const k = fwd({ op: 'ConstantOfShape', attrs: { value: makeTensorProto('v', DataType.FLOAT, [1], [0.5]) }, inputs: [{ constant: [2, 3], dtype: DataType.INT64, shape: [2] }] })!;
    expect(k.meanSquare).toBe(0.25);
    expect(fwd({ op: 'ConstantOfShape', inputs: [{ constant: [2], dtype: DataType.INT64, shape: [1] }] })!.fracZero).toBe(1);
    const r = fwd({ op: 'Range', inputs: [{ constant: [0], shape: [] }, { constant: [10], shape: [] }, { constant: [0.5], shape: [] }], outputs: [{ dtype: DataType.FLOAT }] })!;
    const vals = Array.from({ length: 20 }, (_, i) => i * 0.5);
    expect(r.mean).toBeCloseTo(vals.reduce((a, b) => a + b) / 20, 12);
    expect(r.meanSquare).toBeCloseTo(vals.reduce((a, b) => a + b * b, 0) / 20, 10);
    const big = fwd({ op: 'Range', inputs: [{ constant: [1], shape: [] }, { constant: [20001], shape: [] }, { constant: [2], shape: [] }], outputs: [{ dtype: DataType.FLOAT }] })!;
    let s2 = 0;
    for (let i = 0; i < 10000; i++) s2 += (1 + 2 * i) ** 2;
    expect(big.meanSquare / (s2 / 10000)).toBeCloseTo(1, 12);
  });
});

describe('Resize', () => {
  /** 1-D linear resize of a row, ONNX half_pixel / align_corners / asymmetric, clamped. */
  function resize1d(row: Float64Array, out: number, mode: string): number[] {
    const n = row.length;
    const s = out / n;
    const res: number[] = [];
    for (let o = 0; o < out; o++) {
      let x = mode === 'align_corners' ? (o * (n - 1)) / (out - 1) : mode === 'asymmetric' ? o / s : (o + 0.5) / s - 0.5;
      x = Math.min(n - 1, Math.max(0, x));
      const i0 = Math.floor(x);
      const i1 = Math.min(n - 1, i0 + 1);
      const f = x - i0;
      res.push((1 - f) * row[i0]! + f * row[i1]!);
    }
    return res;
  }

  it('2× bilinear half_pixel: the interior factor is (0.75² + 0.25²)² = 0.390625', () => {
    // Large input: borders negligible.
    const f = interpolationFactors('linear', (o, _i, _n, s) => (o + 0.5) / s - 0.5, 10000, 20000, 2);
    expect(f.sumSq).toBeCloseTo(0.625, 3);
  });

  for (const mode of ['half_pixel', 'align_corners', 'asymmetric']) {
    it(`linear ${mode} 5×6 → 10×12 against a direct simulation`, () => {
      const x = gaussianScale(0.5, 1);
      const y = fwd({
        op: 'Resize',
        attrs: { mode: 'linear', coordinate_transformation_mode: mode },
        inputs: [{ scale: x, shape: [1, 1, 5, 6] }, { omitted: true }, { constant: [1, 1, 2, 2], shape: [4] }],
        outputs: [{ shape: [1, 1, 10, 12] }],
        opset: 13,
      })!;
      const images = 3000;
      const xs = gaussians(30 * images, 0.5, 1, 4);
      const all: number[] = [];
      for (let n = 0; n < images; n++) {
        const img = xs.subarray(n * 30, (n + 1) * 30);
        const rows: number[][] = [];
        for (let r = 0; r < 5; r++) rows.push(resize1d(img.subarray(r * 6, r * 6 + 6), 12, mode));
        for (let c = 0; c < 12; c++) all.push(...resize1d(Float64Array.from(rows.map((r) => r[c]!)), 10, mode));
      }
      expectMoments(y, all);
    });
  }

  it('nearest keeps the scale; Upsample too', () => {
    const x = gaussianScale(0, 1);
    expect(fwd({ op: 'Resize', inputs: [{ scale: x, shape: [1, 1, 4, 4] }, { omitted: true }, { constant: [1, 1, 2, 2], shape: [4] }], opset: 13 })!.meanSquare).toBe(1);
    expect(fwd({ op: 'Upsample', attrs: { mode: 'nearest' }, inputs: [{ scale: x, shape: [1, 1, 4, 4] }, { constant: [1, 1, 2, 2], shape: [4] }], opset: 9 })!.meanSquare).toBe(1);
  });
});

describe('backward routing', () => {
  const g = gaussianScale(0.1, 1);
  it('Reshape/Transpose pass the gradient; Expand sums copies; Slice scatters', () => {
    expect(rules.Reshape!.backward!(backwardContext({ op: 'Reshape', inputs: [{ scale: gaussianScale(0, 1) }, { constant: [4], dtype: DataType.INT64, shape: [1] }] }, [null], [g]))[0]!.meanSquare).toBe(g.meanSquare);
    const e = rules.Expand!.backward!(backwardContext({ op: 'Expand', inputs: [{ scale: gaussianScale(0, 1), shape: [1, 4] }, { constant: [3, 4], dtype: DataType.INT64, shape: [2] }], outputs: [{ shape: [3, 4] }] }, [null], [g]))[0]!;
    expect(e.meanSquare).toBeCloseTo(3 * 1 + 9 * 0.01, 12);
    const s = rules.Slice!.backward!(backwardContext({ op: 'Slice', inputs: [{ scale: gaussianScale(0, 1), shape: [8] }], outputs: [{ shape: [2] }] }, [null], [g]))[0]!;
    expect(s.meanSquare).toBeCloseTo(g.meanSquare / 4, 12);
    expect(s.fracZero).toBeCloseTo(0.75, 12);
  });

  it('Concat routes g to every input; Split concatenates its outputs’ gradients', () => {
    const c = rules.Concat!.backward!(backwardContext({ op: 'Concat', attrs: { axis: 0 }, inputs: [{ scale: gaussianScale(0, 1) }, { scale: gaussianScale(0, 1) }] }, [null], [g]));
    expect(c.map((s) => s!.meanSquare)).toEqual([g.meanSquare, g.meanSquare]);
    const sp = rules.Split!.backward!(backwardContext({ op: 'Split', inputs: [{ scale: gaussianScale(0, 1) }], outputs: [{ shape: [1] }, { shape: [3] }] }, [null, null], [gaussianScale(0, 2), gaussianScale(0, 1)]))[0]!;
    expect(sp.meanSquare).toBeCloseTo(0.25 * 4 + 0.75 * 1, 12);
  });
});

describe('scaleOfValues', () => {
  it('exact moments; discrete shape for few values, quantile atoms for many', () => {
    const few = scaleOfValues([0, 0, 1, 2]);
    expect(few.dist).toEqual({ kind: 'discrete', values: [0, 1, 2], weights: [0.5, 0.25, 0.25] });
    expect(few.fracZero).toBe(0.5);
    const many = draw({ kind: 'gaussian', mean: 0, std: 1 }, 100000, 3);
    const s = scaleOfValues(many);
    const d = distMoments(s.dist);
    expect(Math.abs(d.meanSquare - s.meanSquare)).toBeLessThan(0.01);
  });
});
