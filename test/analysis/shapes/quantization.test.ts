import { describe, expect, it } from 'vitest';
import { DataType } from '../../../src/onnx/dtype.js';
import { F, one, t } from './helpers.js';

const U8 = DataType.UINT8;
const I8 = DataType.INT8;

describe('quantization shapes', () => {
  it('QuantizeLinear: zero point dtype, else output_dtype, else uint8', () => {
    expect(one('QuantizeLinear', [t([2, 3]), t([]), t([], I8)])).toEqual([t([2, 3], I8)]);
    expect(one('QuantizeLinear', [t([2, 3]), t([])])).toEqual([t([2, 3], U8)]);
    expect(one('QuantizeLinear', [t([2, 3]), t([])], { output_dtype: DataType.FLOAT8E4M3FN }, { opset: 21 })).toEqual([t([2, 3], DataType.FLOAT8E4M3FN)]);
  });

  it('DequantizeLinear: float before 19, the scale dtype after', () => {
    expect(one('DequantizeLinear', [t([4], I8), t([], DataType.FLOAT16)], {}, { opset: 13 })).toEqual([t([4], F)]);
    expect(one('DequantizeLinear', [t([4], I8), t([], DataType.FLOAT16)], {}, { opset: 19 })).toEqual([t([4], DataType.FLOAT16)]);
  });

  it('DynamicQuantizeLinear: y, scale, zero point', () => {
    expect(one('DynamicQuantizeLinear', [t([3, 4])], {}, { outputs: 3 })).toEqual([t([3, 4], U8), t([], F), t([], U8)]);
  });

  it('QLinearConv and QLinearMatMul take the output zero point dtype', () => {
    const s = t([]);
    expect(one('QLinearConv', [t([1, 1, 5, 5], U8), s, t([], U8), t([2, 1, 3, 3], U8), s, t([], U8), s, t([], I8)])).toEqual([t([1, 2, 3, 3], I8)]);
    expect(one('QLinearMatMul', [t([2, 4], U8), s, t([], U8), t([4, 3], U8), s, t([], U8), s, t([], U8)])).toEqual([t([2, 3], U8)]);
  });
});
