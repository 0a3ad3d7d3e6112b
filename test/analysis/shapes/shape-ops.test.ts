import { describe, expect, it } from 'vitest';
import { DataType } from '../../../src/onnx/dtype.js';
import { BOOL, c, cf, F, I64, infer, int64s, node, one, shapes, t, vi } from './helpers.js';

describe('Reshape / Flatten / Squeeze / Unsqueeze / Transpose', () => {
  it('Reshape: 0 copies, -1 is inferred (onnx reshape examples)', () => {
    const x = t([2, 3, 4]);
    expect(shapes('Reshape', [x, c([4, 2, 3])])).toEqual([[4, 2, 3]]);
    expect(shapes('Reshape', [x, c([2, 0, 4, 1])])).toEqual([[2, 3, 4, 1]]);
    expect(shapes('Reshape', [x, c([2, -1, 2])])).toEqual([[2, 6, 2]]);
    expect(shapes('Reshape', [x, c([-1, 2, 3, 4])])).toEqual([[1, 2, 3, 4]]);
    expect(shapes('Reshape', [x, c([0, 4, -1])])).toEqual([[2, 4, 3]]);
  });

  it('Reshape: allowzero=1 keeps 0 as a size (opset 14)', () => {
    expect(shapes('Reshape', [t([0, 3, 4]), c([3, 4, 0])], { allowzero: 1 }, { opset: 14 })).toEqual([[3, 4, 0]]);
  });

  it('Reshape: shape attribute before opset 5', () => {
    expect(shapes('Reshape', [t([2, 3, 4])], { shape: [6, -1] }, { opset: 4 })).toEqual([[6, 4]]);
  });

  it('Reshape: symbolic dims divide back', () => {
    expect(shapes('Reshape', [t(['b', 's', 64]), c([-1, 64])])).toEqual([['b*s', 64]]);
    expect(shapes('Reshape', [t(['b', 's', 64]), c([0, 0, 4, 16])])).toEqual([['b', 's', 4, 16]]);
    expect(shapes('Reshape', [t(['b', 's', 4, 16]), c([0, -1, 64])])).toEqual([['b', 's', 64]]);
  });

  it('Reshape: unknown shape value gives the rank only', () => {
    expect(shapes('Reshape', [t([2, 3]), t([3], I64)])).toEqual([[null, null, null]]);
  });

  it('Reshape: throws on a wrong element count', () => {
    expect(() => one('Reshape', [t([2, 3]), c([4, 2])])).toThrow(/cannot reshape/);
  });

  it('Flatten', () => {
    expect(shapes('Flatten', [t([2, 3, 4, 5])], { axis: 0 })).toEqual([[1, 120]]);
    expect(shapes('Flatten', [t([2, 3, 4, 5])])).toEqual([[2, 60]]);
    expect(shapes('Flatten', [t([2, 3, 4, 5])], { axis: -1 })).toEqual([[24, 5]]);
    expect(shapes('Flatten', [t(['n', 3, 4])])).toEqual([['n', 12]]);
  });

  it('Squeeze: attribute before 13, input from 13, all 1s without axes', () => {
    expect(shapes('Squeeze', [t([1, 3, 1, 5])], { axes: [0] }, { opset: 11 })).toEqual([[3, 1, 5]]);
    expect(shapes('Squeeze', [t([1, 3, 1, 5]), c([0, -2])], {}, { opset: 13 })).toEqual([[3, 5]]);
    expect(shapes('Squeeze', [t([1, 3, 1, 5])], {}, { opset: 13 })).toEqual([[3, 5]]);
    expect(shapes('Squeeze', [t([1, 'n'])], {}, { opset: 13 })).toEqual([null]);
    expect(() => one('Squeeze', [t([2, 3]), c([0])])).toThrow(/squeeze/);
  });

  it('Unsqueeze: axes against the output rank', () => {
    expect(shapes('Unsqueeze', [t([3, 4, 5])], { axes: [0, 4] }, { opset: 11 })).toEqual([[1, 3, 4, 5, 1]]);
    expect(shapes('Unsqueeze', [t([3, 4, 5]), c([2, -1])], {}, { opset: 13 })).toEqual([[3, 4, 1, 5, 1]]);
    expect(shapes('Unsqueeze', [t([]), c([0])])).toEqual([[1]]);
  });

  it('Transpose: perm, default reversed', () => {
    expect(shapes('Transpose', [t([2, 3, 4])])).toEqual([[4, 3, 2]]);
    expect(shapes('Transpose', [t([2, 3, 4])], { perm: [0, 2, 1] })).toEqual([[2, 4, 3]]);
  });
});

describe('Concat / Split / Slice', () => {
  it('Concat sums the axis and unifies the rest', () => {
    expect(shapes('Concat', [t([2, 3]), t([2, 5])], { axis: 1 })).toEqual([[2, 8]]);
    expect(shapes('Concat', [t(['b', 3]), t([2, 3])], { axis: -2 })).toEqual([[null, 3]]);
    expect(shapes('Concat', [t(['b', 3]), t([null, 5])], { axis: 1 })).toEqual([['b', 8]]);
    expect(() => one('Concat', [t([2, 3]), t([4, 5])], { axis: 1 })).toThrow(/differ/);
  });

  it('Split: given sizes (attribute < 13, input ≥ 13), equal parts, num_outputs (18)', () => {
    expect(shapes('Split', [t([6, 2])], { axis: 0, split: [2, 4] }, { opset: 11, outputs: 2 })).toEqual([[2, 2], [4, 2]]);
    expect(shapes('Split', [t([6, 2]), c([1, 5])], { axis: 0 }, { opset: 13, outputs: 2 })).toEqual([[1, 2], [5, 2]]);
    expect(shapes('Split', [t([2, 6])], { axis: 1 }, { outputs: 3 })).toEqual([[2, 2], [2, 2], [2, 2]]);
    expect(shapes('Split', [t([7])], { num_outputs: 3 }, { opset: 18, outputs: 3 })).toEqual([[3], [3], [1]]);
    expect(shapes('Split', [t(['n', 4])], { axis: 1 }, { outputs: 2 })).toEqual([['n', 2], ['n', 2]]);
  });

  it('Slice: inputs from opset 10 (onnx slice examples)', () => {
    const x = t([20, 10, 5]);
    expect(shapes('Slice', [x, c([0, 0]), c([3, 10]), c([0, 1]), c([1, 1])])).toEqual([[3, 10, 5]]);
    expect(shapes('Slice', [x, c([0]), c([-1]), c([1]), c([1])])).toEqual([[20, 9, 5]]);
    expect(shapes('Slice', [x, c([20, 10, 4]), c([0, 0, 1]), c([0, 1, 2]), c([-1, -3, -2])])).toEqual([[19, 3, 2]]);
    expect(shapes('Slice', [x, c([1000]), c([1000]), c([1]), c([1])])).toEqual([[20, 0, 5]]);
    expect(shapes('Slice', [x, c([0]), c([2 ** 62]), c([1]), c([1])])).toEqual([[20, 10, 5]]);
    expect(shapes('Slice', [x, c([-1]), c([-(2 ** 62)]), c([1]), c([-1])])).toEqual([[20, 10, 5]]);
    expect(shapes('Slice', [t(['b', 'n']), c([0]), c([2 ** 62]), c([1])])).toEqual([['b', 'n']]);
    expect(shapes('Slice', [t(['b', 'n']), c([1]), c([2 ** 62]), c([1])])).toEqual([['b', null]]);
  });

  it('Slice: attributes before opset 10', () => {
    expect(shapes('Slice', [t([20, 10, 5])], { starts: [0, 0], ends: [3, 10], axes: [0, 1] }, { opset: 9 })).toEqual([[3, 10, 5]]);
  });

  it('folds Slice, Concat, Squeeze on shape tensors', () => {
    const r = infer({
      inputs: [vi('x', F, [2, 3, 4, 5])],
      initializers: [int64s('s', [1]), int64s('e', [3]), int64s('ax0', [0])],
      nodes: [
        node('Shape', ['x'], ['shape']),
        node('Slice', ['shape', 's', 'e'], ['mid']),
        node('Concat', ['mid', 's'], ['cat'], { axis: 0 }),
        node('Slice', ['shape', 's', 's'], ['empty']),
      ],
    });
    expect(r.values.get('mid')?.data).toEqual([3, 4]);
    expect(r.values.get('cat')?.data).toEqual([3, 4, 1]);
    expect(r.values.get('empty')?.dims).toEqual([0]);
  });
});

describe('Expand / Tile / Pad', () => {
  it('Expand broadcasts both ways', () => {
    expect(shapes('Expand', [t([3, 1]), c([2, 1, 6])])).toEqual([[2, 3, 6]]);
    expect(shapes('Expand', [t([3, 1]), c([3, 4])])).toEqual([[3, 4]]);
    expect(shapes('Expand', [t([3, 1]), t([3], I64)])).toEqual([[null, 3, null]]);
  });

  it('Tile multiplies', () => {
    expect(shapes('Tile', [t([2, 3]), c([2, 2])])).toEqual([[4, 6]]);
    expect(shapes('Tile', [t(['n', 3]), c([2, 1])])).toEqual([['2*n', 3]]);
  });

  it('Pad: pads attribute before 11, input after, axes (18)', () => {
    expect(shapes('Pad', [t([1, 3, 4, 5])], { pads: [0, 0, 1, 3, 0, 0, 2, 4] }, { opset: 2 })).toEqual([[1, 3, 7, 12]]);
    expect(shapes('Pad', [t([3, 2]), c([0, 2, 0, 0])], { mode: 'constant' }, { opset: 11 })).toEqual([[3, 4]]);
    expect(shapes('Pad', [t([3, 2]), c([1, -1]), null, c([1])], {}, { opset: 18 })).toEqual([[3, 2]]);
    expect(shapes('Pad', [t([3, 2]), c([2, 2]), null, c([0])], {}, { opset: 18 })).toEqual([[7, 2]]);
  });
});

describe('Shape / Size / ConstantOfShape / Range / Cast / Where', () => {
  it('Shape with start/end (opset 15), folded when concrete', () => {
    const r = infer({
      inputs: [vi('x', F, [3, 4, 5])],
      nodes: [node('Shape', ['x'], ['all']), node('Shape', ['x'], ['tail'], { start: -2 }), node('Size', ['x'], ['n'])],
      opset: 15,
    });
    expect(r.values.get('all')?.data).toEqual([3, 4, 5]);
    expect(r.values.get('tail')).toEqual({ dtype: I64, dims: [2], data: [4, 5] });
    expect(r.values.get('n')).toEqual({ dtype: I64, dims: [], data: [60] });
  });

  it('ConstantOfShape takes its dtype from value', () => {
    expect(one('ConstantOfShape', [c([2, 3])])).toEqual([t([2, 3], F)]);
    expect(one('ConstantOfShape', [c([4])], { value: int64s('v', [7], [1]) })).toEqual([t([4], I64)]);
    const r = infer({ inputs: [], initializers: [int64s('s', [3])], nodes: [node('ConstantOfShape', ['s'], ['z'], { value: int64s('v', [1], [1]) })] });
    expect(r.values.get('z')?.data).toEqual([1, 1, 1]);
  });

  it('Range: ceil((limit − start) / delta) elements', () => {
    expect(one('Range', [c([3], []), c([9], []), c([3], [])])).toEqual([t([2], I64)]);
    expect(shapes('Range', [cf([10], []), cf([4], []), cf([-3], [])])).toEqual([[2]]);
    expect(shapes('Range', [t([], F), t([], F), t([], F)])).toEqual([[null]]);
  });

  it('Cast / CastLike change the dtype and fold', () => {
    expect(one('Cast', [t([2, 3])], { to: DataType.FLOAT16 })).toEqual([t([2, 3], DataType.FLOAT16)]);
    expect(one('CastLike', [t([2]), t([], I64)])).toEqual([t([2], I64)]);
    const r = infer({ inputs: [], initializers: [{ ...cf([1.7, -1.7, 0]).value, name: 'x' }], nodes: [node('Cast', ['x'], ['i'], { to: I64 }), node('Cast', ['x'], ['b'], { to: BOOL })] });
    expect(r.values.get('i')?.data).toEqual([1, -1, 0]);
    expect(r.values.get('b')?.data).toEqual([1, 1, 0]);
  });

  it('Where broadcasts three inputs and takes X dtype', () => {
    expect(one('Where', [t([2, 1], BOOL), t([3], I64), t([1], I64)])).toEqual([t([2, 3], I64)]);
  });

  it('Identity, Trilu, CumSum keep the input', () => {
    for (const op of ['Identity', 'Trilu', 'CumSum']) expect(shapes(op, [t([2, 'n']), c([0], [])])).toEqual([[2, 'n']]);
  });

  it('DepthToSpace / SpaceToDepth', () => {
    expect(shapes('DepthToSpace', [t([1, 8, 2, 3])], { blocksize: 2 })).toEqual([[1, 2, 4, 6]]);
    expect(shapes('SpaceToDepth', [t([1, 2, 4, 6])], { blocksize: 2 })).toEqual([[1, 8, 2, 3]]);
  });
});
