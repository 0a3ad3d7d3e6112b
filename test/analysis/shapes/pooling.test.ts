import { describe, expect, it } from 'vitest';
import { I64, one, shapes, t } from './helpers.js';

describe('pooling shapes', () => {
  it('MaxPool/AveragePool windows (onnx pooling examples)', () => {
    expect(shapes('AveragePool', [t([1, 3, 32])], { kernel_shape: [2] })).toEqual([[1, 3, 31]]);
    expect(shapes('MaxPool', [t([1, 3, 32, 32])], { kernel_shape: [5, 5], strides: [3, 3] })).toEqual([[1, 3, 10, 10]]);
    expect(shapes('MaxPool', [t([1, 3, 28, 28])], { kernel_shape: [3, 3], pads: [2, 2, 2, 2] })).toEqual([[1, 3, 30, 30]]);
    expect(shapes('AveragePool', [t([1, 3, 32, 32])], { kernel_shape: [2, 2], auto_pad: 'SAME_UPPER' })).toEqual([[1, 3, 32, 32]]);
    expect(shapes('MaxPool', [t([1, 1, 4, 4])], { kernel_shape: [2, 2], dilations: [2, 2] })).toEqual([[1, 1, 2, 2]]);
  });

  it('ceil_mode rounds up, but never starts a window in the end padding', () => {
    // maxpool_2d_ceil: 4x4, kernel 3, stride 2 → 2x2.
    expect(shapes('MaxPool', [t([1, 1, 4, 4])], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 })).toEqual([[1, 1, 2, 2]]);
    // 5 wide, kernel 2, stride 2, pad 1 each side: ceil((5+2-2)/2)+1 = 4, but the 4th window would start at 6 ≥ 5+1.
    expect(shapes('MaxPool', [t([1, 1, 5])], { kernel_shape: [2], strides: [2], pads: [1, 1], ceil_mode: 1 })).toEqual([[1, 1, 3]]);
  });

  it('MaxPool Indices are int64 of the same shape', () => {
    expect(one('MaxPool', [t([1, 1, 4, 4])], { kernel_shape: [2, 2], strides: [2, 2] }, { outputs: 2 })[1]).toEqual(t([1, 1, 2, 2], I64));
  });

  it('global pooling keeps N, C and sets spatial dims to 1', () => {
    expect(shapes('GlobalAveragePool', [t(['n', 64, 7, 7])])).toEqual([['n', 64, 1, 1]]);
    expect(shapes('GlobalMaxPool', [t([1, 3, 5])])).toEqual([[1, 3, 1]]);
  });

  it('throws when the window exceeds the input', () => {
    expect(() => one('MaxPool', [t([1, 1, 2, 2])], { kernel_shape: [3, 3] })).toThrow(/exceeds/);
  });

  it('MaxUnpool inverts the window arithmetic', () => {
    expect(shapes('MaxUnpool', [t([1, 1, 2, 2]), t([1, 1, 2, 2], I64)], { kernel_shape: [2, 2], strides: [2, 2] })).toEqual([[1, 1, 4, 4]]);
  });
});
