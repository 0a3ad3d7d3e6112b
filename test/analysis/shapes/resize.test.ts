import { describe, expect, it } from 'vitest';
import { c, cf, floats, shapes, t } from './helpers.js';

describe('Resize / Upsample shapes', () => {
  it('Resize with scales: floor(in · scale)', () => {
    expect(shapes('Resize', [t([1, 1, 4, 4]), null, cf([1, 1, 0.6, 0.6])], {}, { opset: 13 })).toEqual([[1, 1, 2, 2]]);
    expect(shapes('Resize', [t([1, 1, 2, 2]), cf([]), cf([1, 1, 2, 3])], {}, { opset: 11 })).toEqual([[1, 1, 4, 6]]);
    expect(shapes('Resize', [t(['n', 3, 'h', 'w']), null, cf([1, 1, 2, 2])], {}, { opset: 13 })).toEqual([['n', 3, '2*h', '2*w']]);
  });

  it('Resize with sizes, axes (18) and keep_aspect_ratio_policy', () => {
    expect(shapes('Resize', [t([1, 1, 4, 4]), null, null, c([1, 1, 3, 2])], {}, { opset: 13 })).toEqual([[1, 1, 3, 2]]);
    expect(shapes('Resize', [t([1, 1, 4, 4]), null, null, c([7, 8])], { axes: [2, 3] }, { opset: 18 })).toEqual([[1, 1, 7, 8]]);
    // not_larger: scale = min(7/4, 8/4) = 1.75 → 7 x 7.
    expect(shapes('Resize', [t([1, 1, 4, 4]), null, null, c([7, 8])], { axes: [2, 3], keep_aspect_ratio_policy: 'not_larger' }, { opset: 18 })).toEqual([[1, 1, 7, 7]]);
  });

  it('Resize opset 10: scales is input 1', () => {
    expect(shapes('Resize', [t([1, 1, 2, 2]), cf([1, 1, 2, 2])], {}, { opset: 10 })).toEqual([[1, 1, 4, 4]]);
  });

  it('Upsample: scales attribute before 9, input from 9', () => {
    expect(shapes('Upsample', [t([1, 1, 2, 2])], { scales: floats([1, 1, 2, 3]) }, { opset: 7 })).toEqual([[1, 1, 4, 6]]);
    expect(shapes('Upsample', [t([1, 1, 2, 2]), cf([1, 1, 2, 3])], {}, { opset: 9 })).toEqual([[1, 1, 4, 6]]);
  });
});
