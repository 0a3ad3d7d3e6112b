import { describe, expect, it } from 'vitest';
import { I64, one, shapes, t } from './helpers.js';

describe('loss shapes', () => {
  it('SoftmaxCrossEntropyLoss: scalar unless reduction=none; log_prob like the scores', () => {
    expect(shapes('SoftmaxCrossEntropyLoss', [t([3, 5]), t([3], I64)], {}, { outputs: 2 })).toEqual([[], [3, 5]]);
    expect(shapes('SoftmaxCrossEntropyLoss', [t([3, 5, 2]), t([3, 2], I64), t([5])], { reduction: 'sum' }, { outputs: 2 })).toEqual([[], [3, 5, 2]]);
    expect(shapes('SoftmaxCrossEntropyLoss', [t([3, 5, 6, 6, 5]), t([3, 6, 6, 5], I64)], { reduction: 'none' })).toEqual([[3, 6, 6, 5]]);
  });

  it('SoftmaxCrossEntropyLoss: the unreduced loss is [N, D1…Dk], completed from the scores', () => {
    expect(shapes('SoftmaxCrossEntropyLoss', [t([3, 5, 2]), t(['n', null], I64)], { reduction: 'none' })).toEqual([[3, 2]]);
    expect(shapes('SoftmaxCrossEntropyLoss', [t([3, 5, 2]), t(null, I64)], { reduction: 'none' })).toEqual([[3, 2]]);
    expect(() => one('SoftmaxCrossEntropyLoss', [t([3, 5, 2]), t([3], I64)], { reduction: 'none' })).toThrow(/labels of rank 1/);
    expect(() => one('SoftmaxCrossEntropyLoss', [t([3, 5]), t([4], I64)], { reduction: 'none' })).toThrow(/labels dim 0 is 4/);
  });

  it('NegativeLogLikelihoodLoss follows the same reduction', () => {
    expect(shapes('NegativeLogLikelihoodLoss', [t([3, 5, 2]), t([3, 2], I64)])).toEqual([[]]);
    expect(shapes('NegativeLogLikelihoodLoss', [t([3, 5, 2]), t([3, 2], I64)], { reduction: 'none' })).toEqual([[3, 2]]);
  });
});
