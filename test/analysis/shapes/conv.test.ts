import { describe, expect, it } from 'vitest';
import { DataType } from '../../../src/onnx/dtype.js';
import { one, shapes, t } from './helpers.js';

describe('conv shapes', () => {
  it('Conv: floor((in + pads − effective kernel) / stride) + 1', () => {
    // onnx Conv examples: 5x5 input, 3x3 kernel.
    expect(shapes('Conv', [t([1, 1, 5, 5]), t([1, 1, 3, 3])], { pads: [1, 1, 1, 1] })).toEqual([[1, 1, 5, 5]]);
    expect(shapes('Conv', [t([1, 1, 5, 5]), t([1, 1, 3, 3])])).toEqual([[1, 1, 3, 3]]);
    expect(shapes('Conv', [t([1, 1, 7, 5]), t([1, 1, 3, 3])], { pads: [1, 1, 1, 1], strides: [2, 2] })).toEqual([[1, 1, 4, 3]]);
    expect(shapes('Conv', [t([1, 1, 7, 5]), t([1, 1, 3, 3])], { pads: [1, 0, 1, 0], strides: [2, 2] })).toEqual([[1, 1, 4, 2]]);
  });

  it('Conv: dilations, groups, 1-D and 3-D', () => {
    expect(shapes('Conv', [t([1, 4, 10]), t([8, 2, 3])], { group: 2, dilations: [2] })).toEqual([[1, 8, 6]]);
    expect(shapes('Conv', [t([2, 3, 8, 8, 8]), t([4, 3, 3, 3, 3])], { strides: [2, 2, 2] })).toEqual([[2, 4, 3, 3, 3]]);
  });

  it('Conv: auto_pad SAME_UPPER is ceil(in / stride), VALID drops padding', () => {
    expect(shapes('Conv', [t([1, 1, 5, 5]), t([1, 1, 3, 3])], { auto_pad: 'SAME_UPPER', strides: [2, 2] })).toEqual([[1, 1, 3, 3]]);
    expect(shapes('Conv', [t([1, 1, 5, 5]), t([1, 1, 3, 3])], { auto_pad: 'VALID', pads: [1, 1, 1, 1] })).toEqual([[1, 1, 3, 3]]);
  });

  it('Conv: symbolic spatial dims survive only "same" stride-1 windows', () => {
    expect(shapes('Conv', [t(['n', 3, 'h', 'w']), t([16, 3, 3, 3])], { pads: [1, 1, 1, 1] })).toEqual([['n', 16, 'h', 'w']]);
    expect(shapes('Conv', [t(['n', 3, 'h', 'w']), t([16, 3, 3, 3])], { pads: [1, 1, 1, 1], strides: [2, 2] })).toEqual([['n', 16, null, null]]);
  });

  it('Conv: throws on a channel mismatch', () => {
    expect(() => one('Conv', [t([1, 3, 5, 5]), t([1, 4, 3, 3])])).toThrow(/channels/);
  });

  it('ConvTranspose: stride·(in − 1) + output_padding + effective kernel − pads', () => {
    // onnx ConvTranspose examples.
    expect(shapes('ConvTranspose', [t([1, 1, 3, 3]), t([1, 2, 3, 3])])).toEqual([[1, 2, 5, 5]]);
    expect(shapes('ConvTranspose', [t([1, 1, 3, 3]), t([1, 2, 3, 3])], { strides: [3, 2], output_padding: [1, 1] })).toEqual([[1, 2, 10, 8]]);
    expect(shapes('ConvTranspose', [t([1, 1, 3, 3]), t([1, 2, 3, 3])], { strides: [3, 2], pads: [1, 2, 1, 2] })).toEqual([[1, 2, 7, 3]]);
    expect(shapes('ConvTranspose', [t([1, 1, 3, 3]), t([1, 2, 3, 3])], { strides: [3, 2], output_shape: [10, 8] })).toEqual([[1, 2, 10, 8]]);
    expect(shapes('ConvTranspose', [t([1, 1, 3, 3]), t([1, 2, 3, 3])], { strides: [2, 2], auto_pad: 'SAME_UPPER' })).toEqual([[1, 2, 6, 6]]);
    expect(shapes('ConvTranspose', [t([1, 4, 3]), t([4, 3, 3])], { group: 2 })).toEqual([[1, 6, 5]]);
  });

  it('ConvInteger accumulates in int32', () => {
    expect(one('ConvInteger', [t([1, 1, 3, 3], DataType.UINT8), t([1, 1, 2, 2], DataType.UINT8)])).toEqual([t([1, 1, 2, 2], DataType.INT32)]);
  });
});
