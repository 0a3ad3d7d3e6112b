import { describe, expect, it } from 'vitest';
import { F, one, shapes, t } from './helpers.js';

describe('normalization and softmax shapes', () => {
  it('keep the input shape', () => {
    for (const op of ['InstanceNormalization', 'LRN', 'LpNormalization', 'MeanVarianceNormalization']) {
      expect(shapes(op, [t([2, 3, 4, 5]), t([3]), t([3])], op === 'LRN' ? { size: 3 } : {})[0]).toEqual([2, 3, 4, 5]);
    }
    for (const op of ['Softmax', 'LogSoftmax', 'Hardmax']) expect(shapes(op, [t(['b', 10])])).toEqual([['b', 10]]);
  });

  it('BatchNormalization training outputs are per channel', () => {
    const out = one('BatchNormalization', [t([2, 3, 4, 5]), t([3]), t([3]), t([3]), t([3])], { training_mode: 1 }, { outputs: 3, opset: 15 });
    expect(out).toEqual([t([2, 3, 4, 5]), t([3]), t([3])]);
  });

  it('LayerNormalization Mean/InvStdDev keep the dims before axis', () => {
    const out = one('LayerNormalization', [t([2, 3, 4]), t([4]), t([4])], { axis: -1 }, { outputs: 3 });
    expect(out).toEqual([t([2, 3, 4]), t([2, 3, 1], F), t([2, 3, 1], F)]);
    expect(one('LayerNormalization', [t([2, 3, 4]), t([3, 4])], { axis: 1 }, { outputs: 2 })[1]).toEqual(t([2, 1, 1]));
  });
});
