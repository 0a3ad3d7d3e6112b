import { describe, expect, it } from 'vitest';
import { F, I64, one, t } from './helpers.js';

const training = { domain: 'ai.onnx.preview.training' };
const R = t([]);
const T = t([], I64);

describe('training optimizer shapes (ai.onnx.preview.training)', () => {
  it('Adagrad(R, T, X…, G…, H…) → X_new…, H_new…', () => {
    const out = one('Adagrad', [R, T, t([1]), t([2, 3]), t([1]), t([2, 3]), t([1]), t([2, 3], F)], {}, { ...training, outputs: 4 });
    expect(out).toEqual([t([1]), t([2, 3]), t([1]), t([2, 3])]);
  });

  it('Adam(R, T, X…, G…, V…, H…) → X_new…, V_new…, H_new…', () => {
    const out = one('Adam', [R, T, t([1]), t([2]), t([1]), t([2]), t([1]), t([2]), t([1]), t([2])], {}, { ...training, outputs: 6 });
    expect(out).toEqual([t([1]), t([2]), t([1]), t([2]), t([1]), t([2])]);
    expect(one('Adam', [R, T, t([4]), t([4]), t(['v']), t([4])], {}, { ...training, outputs: 3 })).toEqual([t([4]), t(['v']), t([4])]);
  });

  it('Momentum(R, T, X…, G…, V…) → X_new…, V_new…; a ragged input list is an error', () => {
    expect(one('Momentum', [R, T, t([2]), t([2]), t([2])], {}, { ...training, outputs: 2 })).toEqual([t([2]), t([2])]);
    expect(() => one('Momentum', [R, T, t([2]), t([2])], {}, { ...training, outputs: 2 })).toThrow(/3 groups/);
  });
});
