import { describe, expect, it } from 'vitest';
import { rules } from '../../../src/analysis/rules/quantization.js';
import { gaussianScale } from '../../../src/analysis/scale.js';
import { DataType } from '../../../src/onnx/dtype.js';
import { makeTensorProto } from '../../../src/onnx/tensor.js';
import { gaussians, stats } from '../../helpers/mc.js';
import { chainContexts, ruleContext } from '../../helpers/rule-context.js';

const rhe = (x: number): number => (Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : Math.round(x));

describe('QuantizeLinear → DequantizeLinear', () => {
  for (const [name, s, zp, dtype, lo, hi] of [
    ['int8, s = 1/32 (fine grid)', 1 / 32, 0, DataType.INT8, -128, 127],
    ['int8, s = 0.5 (coarse grid, rounding matters)', 0.5, 0, DataType.INT8, -128, 127],
    ['uint8, zp 128, s = 0.02 (saturates at ±2.56)', 0.02, 128, DataType.UINT8, 0, 255],
  ] as const) {
    it(`${name}: the fake-quantised moments match a direct simulation`, () => {
      const zpConst = makeTensorProto('zp', dtype, [], [zp]);
      const x = gaussianScale(0.2, 1.3);
      const [q, dq] = chainContexts([
        { op: 'QuantizeLinear', inputs: [{ scale: x }, { constant: [s], shape: [] }, { constant: zpConst, dtype }], outputs: [{ dtype }] },
        { op: 'DequantizeLinear', inputs: [{ fromPrevious: true, scale: null, dtype }, { constant: [s], shape: [] }, { constant: zpConst, dtype }], outputs: [{ dtype: DataType.FLOAT }] },
      ]);
      expect(rules.QuantizeLinear!.forward(q!)).toEqual([null]);
      const y = rules.DequantizeLinear!.forward(dq!)[0]!;
      const xs = gaussians(200000, 0.2, 1.3, 3).map((v) => s * (Math.min(hi, Math.max(lo, rhe(v / s) + zp)) - zp));
      const st = stats(xs);
      expect(Math.abs(y.mean - st.mean)).toBeLessThanOrEqual(5 * st.seMean);
      expect(Math.abs(y.meanSquare - st.meanSquare)).toBeLessThanOrEqual(5 * st.seMeanSquare);
      expect(y.confidence).toBe('high');
    });
  }

  it('QuantizeLinear to FP8 is a float tensor x/s', () => {
    const ctx = ruleContext({
      op: 'QuantizeLinear',
      inputs: [{ scale: gaussianScale(0, 2) }, { constant: [0.5], shape: [] }, { constant: makeTensorProto('zp', DataType.UINT8, [], [0]), dtype: DataType.FLOAT8E4M3FN }],
      outputs: [{ dtype: DataType.FLOAT8E4M3FN }],
      opset: 19,
    });
    expect(rules.QuantizeLinear!.forward(ctx)[0]!.meanSquare).toBeCloseTo(16, 12);
  });
});

describe('DequantizeLinear on constants and unknowns', () => {
  it('constant int8 weights, per-axis scales: exact', () => {
    const q = [1, -2, 3, 4, -5, 6]; // shape [2, 3], axis 0 → channel = row
    const y = rules.DequantizeLinear!.forward(
      ruleContext({
        op: 'DequantizeLinear',
        attrs: { axis: 0 },
        inputs: [{ constant: makeTensorProto('q', DataType.INT8, [2, 3], q), dtype: DataType.INT8, shape: [2, 3] }, { constant: [0.5, 2], shape: [2] }],
      }),
    )[0]!;
    const vals = [0.5, -1, 1.5, 8, -10, 12];
    expect(y.mean).toBeCloseTo(vals.reduce((a, b) => a + b) / 6, 14);
    expect(y.meanSquare).toBeCloseTo(vals.reduce((a, b) => a + b * b, 0) / 6, 14);
    expect(y.confidence).toBe('exact');
  });

  it('blocked scales (opset 21): exact', () => {
    const q = [1, 2, 3, 4, 5, 6, 7, 8]; // shape [1, 8], axis 1, block 4 → scales shape [1, 2]
    const y = rules.DequantizeLinear!.forward(
      ruleContext({
        op: 'DequantizeLinear',
        attrs: { axis: 1, block_size: 4 },
        inputs: [{ constant: makeTensorProto('q', DataType.INT8, [1, 8], q), dtype: DataType.INT8, shape: [1, 8] }, { constant: [1, 10], shape: [1, 2] }],
        opset: 21,
      }),
    )[0]!;
    expect(y.mean).toBeCloseTo((1 + 2 + 3 + 4 + 50 + 60 + 70 + 80) / 8, 12);
  });

  it('unknown integer input: uniform over the representable range, low confidence', () => {
    const y = rules.DequantizeLinear!.forward(ruleContext({ op: 'DequantizeLinear', inputs: [{ scale: null, dtype: DataType.INT8 }, { constant: [0.1], shape: [] }] }))[0]!;
    expect(y.confidence).toBe('low');
    expect(y.mean).toBeCloseTo(-0.05, 7); // s is a float32 0.1
    expect(y.absmax).toBeCloseTo(12.8, 5);
  });

  it('a float8 input is scaled by s', () => {
    const y = rules.DequantizeLinear!.forward(
      ruleContext({ op: 'DequantizeLinear', inputs: [{ scale: gaussianScale(0, 4), dtype: DataType.FLOAT8E4M3FN }, { constant: [0.25], shape: [] }] }),
    )[0]!;
    expect(y.meanSquare).toBeCloseTo(1, 12);
  });
});

describe('DynamicQuantizeLinear', () => {
  it('y_scale from the expected extremes; integer outputs have no scale', () => {
    const outs = rules.DynamicQuantizeLinear!.forward(
      ruleContext({ op: 'DynamicQuantizeLinear', inputs: [{ scale: gaussianScale(0, 1), shape: [1000] }], outputs: [{ dtype: DataType.UINT8 }, {}, { dtype: DataType.UINT8 }] }),
    );
    expect(outs[0]).toBeNull();
    expect(outs[2]).toBeNull();
    // Monte Carlo of (max(0, max x) − min(0, min x)) / 255 over 1000 N(0,1)
    let acc = 0;
    const reps = 400;
    for (let r = 0; r < reps; r++) {
      const xs = gaussians(1000, 0, 1, 100 + r);
      acc += (Math.max(0, ...xs) - Math.min(0, ...xs)) / 255;
    }
    expect(Math.abs(outs[1]!.mean - acc / reps) / (acc / reps)).toBeLessThan(0.02);
  });
});
