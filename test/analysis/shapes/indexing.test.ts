import { describe, expect, it } from 'vitest';
import { BOOL, c, F, I64, infer, int64s, node, one, shapes, t, vi } from './helpers.js';

describe('indexing shapes', () => {
  it('Gather: data[:axis] + indices + data[axis+1:]', () => {
    expect(shapes('Gather', [t([5, 4, 3, 2]), t([3], I64)], { axis: 0 })).toEqual([[3, 4, 3, 2]]);
    expect(shapes('Gather', [t([5, 4, 3, 2]), t([3, 2], I64)], { axis: 1 })).toEqual([[5, 3, 2, 3, 2]]);
    expect(shapes('Gather', [t([5, 4]), c([1], [])], { axis: -1 })).toEqual([[5]]);
    expect(shapes('Gather', [t([512, 128]), t(['b', 's'], I64)])).toEqual([['b', 's', 128]]);
  });

  it('Gather folds and picks symbolic dims from shapes', () => {
    const r = infer({
      inputs: [vi('x', F, ['batch', 16, 'seq'])],
      initializers: [int64s('last', [-1], []), int64s('mid', [1], []), int64s('ax0', [0]), int64s('rest', [-1])],
      nodes: [
        node('Shape', ['x'], ['s']),
        node('Gather', ['s', 'last'], ['n']),
        node('Gather', ['s', 'mid'], ['h']),
        node('Unsqueeze', ['n', 'ax0'], ['n1']),
        node('Concat', ['n1', 'rest'], ['target'], { axis: 0 }),
        node('Reshape', ['x', 'target'], ['y']),
      ],
    });
    expect(r.types.get('n')).toEqual(t([], I64));
    expect(r.values.get('h')).toEqual({ dtype: I64, dims: [], data: [16] });
    expect(r.types.get('y')?.shape).toEqual(['seq', '16*batch']);
    expect(() => one('Gather', [c([1, 2, 3]), c([3], [])])).toThrow(/out of range/);
  });

  it('GatherElements has the indices shape; GatherND drops indexed dims', () => {
    expect(shapes('GatherElements', [t([3, 3]), t([2, 3], I64)], { axis: 1 })).toEqual([[2, 3]]);
    expect(shapes('GatherND', [t([2, 2]), t([2, 2], I64)])).toEqual([[2]]);
    expect(shapes('GatherND', [t([2, 2, 2]), t([2, 1], I64)])).toEqual([[2, 2, 2]]);
    expect(shapes('GatherND', [t([2, 2, 2]), t([2, 1], I64)], { batch_dims: 1 })).toEqual([[2, 2]]);
  });

  it('Scatter ops keep the data shape', () => {
    expect(shapes('ScatterND', [t([4, 4, 4]), t([2, 1], I64), t([2, 4, 4])])).toEqual([[4, 4, 4]]);
    expect(shapes('ScatterElements', [t([3, 3]), t([2, 3], I64), t([2, 3])])).toEqual([[3, 3]]);
  });

  it('TopK: K input from opset 10, attribute before', () => {
    expect(one('TopK', [t([3, 4]), c([3])], { axis: 1 }, { outputs: 2 })).toEqual([t([3, 3]), t([3, 3], I64)]);
    expect(shapes('TopK', [t([3, 4])], { k: 2, axis: 0 }, { opset: 9, outputs: 2 })).toEqual([[2, 4], [2, 4]]);
  });

  it('OneHot inserts depth at axis with the values dtype', () => {
    expect(one('OneHot', [t([2, 3], I64), c([10], []), c([0, 1])])).toEqual([t([2, 3, 10], I64)]);
    expect(shapes('OneHot', [t([2, 3], I64), c([5], []), c([0, 1])], { axis: 0 })).toEqual([[5, 2, 3]]);
  });

  it('NonZero: [rank, unknown count]', () => {
    expect(one('NonZero', [t([2, 3], BOOL)])).toEqual([t([2, null], I64)]);
  });
});
