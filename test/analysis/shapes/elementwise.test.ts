import { describe, expect, it } from 'vitest';
import { DataType } from '../../../src/onnx/dtype.js';
import { BOOL, c, F, I64, infer, node, one, shapes, t, vi } from './helpers.js';

describe('elementwise shapes', () => {
  it('unary ops keep shape and dtype', () => {
    expect(one('Relu', [t([2, 'n', 4])])).toEqual([t([2, 'n', 4])]);
    expect(one('Sigmoid', [t(null)])).toEqual([t(null)]);
  });

  it('IsNaN gives bool', () => {
    expect(one('IsNaN', [t([3])])).toEqual([t([3], BOOL)]);
  });

  it('binary ops broadcast numpy-style (Broadcasting.md examples)', () => {
    expect(shapes('Add', [t([2, 3, 4, 5]), t([])])).toEqual([[2, 3, 4, 5]]);
    expect(shapes('Add', [t([2, 3, 4, 5]), t([5])])).toEqual([[2, 3, 4, 5]]);
    expect(shapes('Mul', [t([4, 5]), t([2, 3, 4, 5])])).toEqual([[2, 3, 4, 5]]);
    expect(shapes('Sub', [t([1, 4, 5]), t([2, 3, 1, 1])])).toEqual([[2, 3, 4, 5]]);
    expect(shapes('Div', [t([3, 4, 5]), t([2, 1, 1, 1])])).toEqual([[2, 3, 4, 5]]);
  });

  it('symbolic dims: equal names unify, 1 broadcasts, a number beats a symbol, two names are unknown', () => {
    expect(shapes('Add', [t(['b', 1]), t(['b', 7])])).toEqual([['b', 7]]);
    expect(shapes('Add', [t(['b', 3]), t([4, 3])])).toEqual([[4, 3]]);
    expect(shapes('Add', [t(['a']), t(['b'])])).toEqual([[null]]);
    expect(shapes('Add', [t([null, 3]), t([1, 3])])).toEqual([[null, 3]]);
  });

  it('throws on impossible broadcasting', () => {
    expect(() => one('Add', [t([3]), t([4])])).toThrow(/cannot broadcast/);
  });

  it('opset < 7 broadcast=1 gives the first input shape', () => {
    expect(shapes('Add', [t([2, 3, 4]), t([3])], { broadcast: 1, axis: 1 }, { opset: 6 })).toEqual([[2, 3, 4]]);
  });

  it('comparisons and logic give bool', () => {
    expect(one('Equal', [t([2, 1], I64), t([3], I64)])).toEqual([t([2, 3], BOOL)]);
    expect(one('And', [t([2], BOOL), t([2], BOOL)])).toEqual([t([2], BOOL)]);
  });

  it('variadic ops broadcast all inputs', () => {
    expect(shapes('Sum', [t([3, 1]), t([1, 4]), t([4])])).toEqual([[3, 4]]);
    expect(shapes('Max', [t([5]), t([5])])).toEqual([[5]]);
  });

  it('PRelu keeps X', () => {
    expect(shapes('PRelu', [t([1, 8, 5, 5]), t([8, 1, 1])])).toEqual([[1, 8, 5, 5]]);
  });

  it('folds integer arithmetic, truncating division', () => {
    const r = infer({
      inputs: [],
      initializers: [
        { ...c([7, -7]).value, name: 'a' },
        { ...c([2]).value, name: 'b' },
      ],
      nodes: [node('Div', ['a', 'b'], ['q']), node('Mul', ['a', 'b'], ['p']), node('Equal', ['a', 'q'], ['e']), node('Max', ['a', 'b'], ['m'])],
    });
    expect(r.values.get('q')?.data).toEqual([3, -3]);
    expect(r.values.get('p')?.data).toEqual([14, -14]);
    expect(r.values.get('e')).toEqual({ dtype: DataType.BOOL, dims: [2], data: [0, 0] });
    expect(r.values.get('m')?.data).toEqual([7, 2]);
  });

  it('multiplies symbolic dims of shape tensors (Shape → Gather → Mul → Concat → Reshape)', () => {
    const r = infer({
      inputs: [vi('x', F, ['batch', 'seq', 8])],
      initializers: [
        { ...c([0]).value, name: 'i0' },
        { ...c([1]).value, name: 'i1' },
        { ...c([-1]).value, name: 'minus1' },
      ],
      nodes: [
        node('Shape', ['x'], ['s']),
        node('Gather', ['s', 'i0'], ['b']),
        node('Gather', ['s', 'i1'], ['n']),
        node('Mul', ['b', 'n'], ['bn']),
        node('Concat', ['bn', 'minus1'], ['target'], { axis: 0 }),
        node('Reshape', ['x', 'target'], ['y']),
      ],
    });
    expect(r.types.get('bn')).toEqual(t([1], I64));
    expect(r.types.get('y')?.shape).toEqual(['batch*seq', 8]);
  });
});
