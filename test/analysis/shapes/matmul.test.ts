import { describe, expect, it } from 'vitest';
import { DataType } from '../../../src/onnx/dtype.js';
import { I64, one, shapes, t } from './helpers.js';

describe('matmul shapes', () => {
  it('MatMul follows numpy.matmul', () => {
    expect(shapes('MatMul', [t([3, 4]), t([4, 5])])).toEqual([[3, 5]]);
    expect(shapes('MatMul', [t([2, 1, 3, 4]), t([7, 4, 5])])).toEqual([[2, 7, 3, 5]]);
    expect(shapes('MatMul', [t([4]), t([4, 5])])).toEqual([[5]]);
    expect(shapes('MatMul', [t([3, 4]), t([4])])).toEqual([[3]]);
    expect(shapes('MatMul', [t([4]), t([4])])).toEqual([[]]);
    expect(shapes('MatMul', [t(['b', 's', 64]), t([64, 128])])).toEqual([['b', 's', 128]]);
  });

  it('throws when concrete inner dims differ', () => {
    expect(() => one('MatMul', [t([2, 3]), t([4, 5])])).toThrow(/inner dimensions 3 and 4/);
  });

  it('unknown inner dims are fine', () => {
    expect(shapes('MatMul', [t([2, 'k']), t([4, 5])])).toEqual([[2, 5]]);
  });

  it('Gemm with transposes', () => {
    expect(shapes('Gemm', [t([3, 4]), t([4, 5]), t([5])])).toEqual([[3, 5]]);
    expect(shapes('Gemm', [t([4, 3]), t([5, 4])], { transA: 1, transB: 1 })).toEqual([[3, 5]]);
    expect(() => one('Gemm', [t([3, 4]), t([5, 4])])).toThrow(/inner/);
  });

  it('MatMulInteger accumulates in int32', () => {
    expect(one('MatMulInteger', [t([2, 3], DataType.UINT8), t([3, 4], DataType.INT8)])).toEqual([t([2, 4], DataType.INT32)]);
    expect(one('MatMul', [t([2, 3], I64), t([3], I64)])).toEqual([t([2], I64)]);
  });
});
