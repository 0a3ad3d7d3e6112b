import { describe, expect, it } from 'vitest';
import { c, I64, infer, node, shapes, t, vi } from './helpers.js';

describe('reduce shapes', () => {
  it('axes as attribute (before opset 18 / 13 for ReduceSum), keepdims default 1', () => {
    expect(shapes('ReduceMean', [t([3, 2, 2])], { axes: [1] }, { opset: 13 })).toEqual([[3, 1, 2]]);
    expect(shapes('ReduceMean', [t([3, 2, 2])], { axes: [1], keepdims: 0 }, { opset: 13 })).toEqual([[3, 2]]);
    expect(shapes('ReduceMax', [t([3, 2, 2])], {}, { opset: 13 })).toEqual([[1, 1, 1]]);
    expect(shapes('ReduceSum', [t([3, 2, 2])], { axes: [-1], keepdims: 0 }, { opset: 11 })).toEqual([[3, 2]]);
  });

  it('axes as input (opset 13 for ReduceSum, 18 for the rest)', () => {
    expect(shapes('ReduceSum', [t([3, 2, 2]), c([0, 2])], { keepdims: 0 }, { opset: 13 })).toEqual([[2]]);
    expect(shapes('ReduceL2', [t([3, 2, 2]), c([-2])], {}, { opset: 18 })).toEqual([[3, 1, 2]]);
    expect(shapes('ReduceSum', [t([3, 2, 2])], { keepdims: 0 }, { opset: 13 })).toEqual([[]]);
    expect(shapes('ReduceSum', [t([3, 2, 2])], { noop_with_empty_axes: 1 }, { opset: 13 })).toEqual([[3, 2, 2]]);
  });

  it('unknown axes keep the rank with keepdims', () => {
    expect(shapes('ReduceSum', [t([3, 1, 2]), t([1], I64)], {}, { opset: 13 })).toEqual([[null, 1, null]]);
    expect(shapes('ReduceSum', [t([3, 1, 2]), t([1], I64)], { keepdims: 0 }, { opset: 13 })).toEqual([null]);
  });

  it('ArgMax gives int64', () => {
    expect(shapes('ArgMax', [t([2, 3, 4])], { axis: 1 })).toEqual([[2, 1, 4]]);
    expect(shapes('ArgMin', [t([2, 3, 4])], { axis: -1, keepdims: 0 })).toEqual([[2, 3]]);
  });

  it('ReduceProd folds (element counts of shape tensors)', () => {
    const r = infer({ inputs: [vi('x', 1, [2, 3, 4])], nodes: [node('Shape', ['x'], ['s']), node('ReduceProd', ['s'], ['n'], { keepdims: 0 })], opset: 13 });
    expect(r.values.get('n')).toEqual({ dtype: I64, dims: [], data: [24] });
  });
});
