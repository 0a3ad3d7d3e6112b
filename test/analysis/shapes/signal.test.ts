import { describe, expect, it } from 'vitest';
import { DataType } from '../../../src/onnx/dtype.js';
import { c, cf, F, I64, infer, int64s, node, one, shapes, t, vi } from './helpers.js';

const scalar = (v: number) => c([v], []);

describe('signal shapes (DFT, STFT, windows, MelWeightMatrix)', () => {
  it('DFT (opset 17): axis attribute, default 1; complex output', () => {
    expect(shapes('DFT', [t([1, 10, 10, 1])], { axis: 2 })).toEqual([[1, 10, 10, 2]]);
    expect(shapes('DFT', [t([3, 8, 1])])).toEqual([[3, 8, 2]]);
    expect(shapes('DFT', [t([3, 8, 2])], { inverse: 1 })).toEqual([[3, 8, 2]]);
  });

  it('DFT: onesided keeps floor(n/2)+1 bins; dft_length sets n', () => {
    expect(shapes('DFT', [t([2, 10, 1])], { onesided: 1 })).toEqual([[2, 6, 2]]);
    expect(shapes('DFT', [t([2, 9, 1])], { onesided: 1 })).toEqual([[2, 5, 2]]);
    expect(shapes('DFT', [t([2, 10, 1]), scalar(16)])).toEqual([[2, 16, 2]]);
    expect(shapes('DFT', [t([2, 10, 1]), scalar(16)], { onesided: 1 })).toEqual([[2, 9, 2]]);
    // A dft_length only known at run time: unknown, never the input's length.
    expect(shapes('DFT', [t([2, 10, 1]), t([], I64)])).toEqual([[2, null, 2]]);
    expect(shapes('DFT', [t([2, 'n', 1])], { onesided: 1 })).toEqual([[2, null, 2]]);
  });

  it('DFT (opset 20): axis is an input, default -2', () => {
    expect(shapes('DFT', [t([4, 6, 10, 1])], { onesided: 1 }, { opset: 20 })).toEqual([[4, 6, 6, 2]]);
    expect(shapes('DFT', [t([4, 6, 10, 1]), null, scalar(1)], { onesided: 1 }, { opset: 20 })).toEqual([[4, 4, 10, 2]]);
    expect(shapes('DFT', [t([4, 6, 10, 1]), null, t([], I64)], {}, { opset: 20 })).toEqual([[null, null, null, 2]]);
  });

  it('DFT rejects impossible inputs', () => {
    expect(() => one('DFT', [t([2, 10, 3])])).toThrow(/last dim is 3/);
    expect(() => one('DFT', [t([2, 10, 1])], { axis: 2 })).toThrow(/axis 2 is out of range/);
  });

  it('STFT: frames and bins from frame_length or the window', () => {
    // 128 samples, frames of 16 every 8: (128 - 16) / 8 + 1 = 15 frames of 16/2 + 1 = 9 bins.
    expect(shapes('STFT', [t([1, 128, 1]), scalar(8), null, scalar(16)])).toEqual([[1, 15, 9, 2]]);
    expect(shapes('STFT', [t([1, 128, 1]), scalar(8), t([16])])).toEqual([[1, 15, 9, 2]]);
    expect(shapes('STFT', [t([2, 100, 2]), scalar(10), t([16])], { onesided: 0 })).toEqual([[2, 9, 16, 2]]);
    // frame_step known only at run time: the frame count is unknown.
    expect(shapes('STFT', [t([1, 128, 1]), t([], I64), t([16])])).toEqual([[1, null, 9, 2]]);
    expect(() => one('STFT', [t([1, 8, 1]), scalar(1), t([16])])).toThrow(/exceeds the signal length/);
  });

  it('windows: [size] of output_datatype', () => {
    expect(one('HannWindow', [scalar(10)])).toEqual([t([10])]);
    expect(one('HammingWindow', [scalar(7)], { output_datatype: DataType.DOUBLE })).toEqual([t([7], DataType.DOUBLE)]);
    expect(one('BlackmanWindow', [t([], I64)], { periodic: 0 })).toEqual([t([null])]);
    // A size read off a shape stays symbolic.
    const r = infer({
      inputs: [vi('x', F, ['n', 4])],
      initializers: [int64s('zero', [0], [])],
      nodes: [node('Shape', ['x'], ['s']), node('Gather', ['s', 'zero'], ['n']), node('HannWindow', ['n'], ['w'])],
    });
    expect(r.types.get('w')).toEqual(t(['n']));
  });

  it('MelWeightMatrix: [floor(dft_length/2)+1, num_mel_bins]', () => {
    expect(one('MelWeightMatrix', [scalar(8), scalar(16), scalar(8192), cf([0], []), cf([4096], [])])).toEqual([t([9, 8])]);
    expect(shapes('MelWeightMatrix', [t([], I64), scalar(15), t([], I64), t([]), t([])])).toEqual([[8, null]]);
  });
});
