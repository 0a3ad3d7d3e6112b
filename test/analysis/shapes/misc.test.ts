import { describe, expect, it } from 'vitest';
import { BOOL, c, cf, F, I64, infer, node, one, shapes, t, vi } from './helpers.js';

describe('misc shapes', () => {
  it('Dropout: mask is bool from opset 10', () => {
    expect(one('Dropout', [t([2, 3])], {}, { outputs: 2, opset: 12 })).toEqual([t([2, 3]), t([2, 3], BOOL)]);
    expect(one('Dropout', [t([2, 3])], {}, { outputs: 2, opset: 7 })).toEqual([t([2, 3]), t([2, 3])]);
  });

  it('Einsum: explicit, implicit and ellipsis', () => {
    expect(shapes('Einsum', [t([2, 3]), t([3, 4])], { equation: 'ij,jk->ik' })).toEqual([[2, 4]]);
    expect(shapes('Einsum', [t([2, 3]), t([3, 4])], { equation: 'ij,jk' })).toEqual([[2, 4]]);
    expect(shapes('Einsum', [t([5, 2, 3]), t([5, 3, 4])], { equation: 'bij, bjk -> bik' })).toEqual([[5, 2, 4]]);
    expect(shapes('Einsum', [t([7, 5, 2, 3]), t([1, 5, 3, 4])], { equation: '...ij,...jk->...ik' })).toEqual([[7, 5, 2, 4]]);
    expect(shapes('Einsum', [t([7, 5, 2, 3]), t([1, 5, 3, 4])], { equation: '...ij,...jk' })).toEqual([[7, 5, 2, 4]]);
    expect(shapes('Einsum', [t([2, 7, 3]), t([7, 3, 4])], { equation: 'i...j,...jk->k...i' })).toEqual([[4, 7, 2]]);
    expect(shapes('Einsum', [t([7, 5, 2, 3]), t([7, 5, 3, 4])], { equation: '...ij,...jk->ik' })).toEqual([[2, 4]]);
    expect(shapes('Einsum', [t([2, 3]), t([6, 3, 4])], { equation: '...ij,...jk' })).toEqual([[6, 2, 4]]); // "..." of no dims
    // Every "..." stands for the same number of dims (ONNX spec): no numpy-style rank broadcasting.
    expect(() => one('Einsum', [t([7, 5, 2, 3]), t([5, 3, 4])], { equation: '...ij,...jk->...ik' })).toThrow(/ellipsis/);
    expect(() => one('Einsum', [t([7, 5, 2, 3]), t([6, 5, 3, 4])], { equation: '...ij,...jk->...ik' })).toThrow(/broadcast/);
    expect(shapes('Einsum', [t([7, 5, 2, 3]), t(null)], { equation: '...ij,...jk->...ik' })).toEqual([null]);
    expect(shapes('Einsum', [t([3, 3])], { equation: 'ii->i' })).toEqual([[3]]);
    expect(shapes('Einsum', [t([3, 4])], { equation: 'ij->' })).toEqual([[]]);
    expect(() => one('Einsum', [t([2, 3]), t([4, 5])], { equation: 'ij,jk->ik' })).toThrow(/letter 'j'/);
  });

  it('StringNormalizer: stopwords make the length data-dependent', () => {
    expect(shapes('StringNormalizer', [t([4], 8)], { stopwords: ['monday'] })).toEqual([[null]]);
    expect(shapes('StringNormalizer', [t([1, 4], 8)], { case_change_action: 'LOWER' })).toEqual([[1, 4]]);
  });

  it('Gradient (ai.onnx.preview.training) shapes follow xs', () => {
    const r = infer({
      inputs: [vi('a', F, [3]), vi('b', F, [])],
      nodes: [node('Mul', ['a', 'b'], ['y']), node('Gradient', ['a', 'b'], ['da', 'db'], { xs: ['a', 'b'], y: 'y' }, 'ai.onnx.preview.training')],
    });
    expect(r.types.get('da')).toEqual(t([3]));
    expect(r.types.get('db')).toEqual(t([]));
  });

  it('random generators and EyeLike', () => {
    expect(one('RandomNormal', [], { shape: [2, 3] })).toEqual([t([2, 3])]);
    expect(one('EyeLike', [t([3, 3], 7)], { dtype: 1 })).toEqual([t([3, 3])]);
  });

  it('TfIdfVectorizer: [C] → [max(ngram_indexes)+1], [N, C] → [N, max+1], float', () => {
    const attrs = { max_gram_length: 2, min_gram_length: 2, max_skip_count: 0, mode: 'TF', ngram_counts: [0, 4], ngram_indexes: [0, 1, 2, 3, 4, 5, 6], pool_int64s: [2, 3, 5, 4, 5, 6, 7, 8, 6, 7, 9, 9, 9, 9] };
    expect(one('TfIdfVectorizer', [t([2, 6], I64)], attrs)).toEqual([t([2, 7])]);
    expect(one('TfIdfVectorizer', [t([12], 6)], { ...attrs, ngram_indexes: [2, 0, 1] })).toEqual([t([3])]);
    expect(() => one('TfIdfVectorizer', [t([1, 2, 3], I64)], attrs)).toThrow(/rank 3/);
  });

  it('NonMaxSuppression: [num_selected, 3] int64, the count unknown', () => {
    expect(one('NonMaxSuppression', [t([2, 6, 4]), t([2, 1, 6]), c([2]), cf([0.5]), cf([0])])).toEqual([t([null, 3], I64)]);
  });
});
