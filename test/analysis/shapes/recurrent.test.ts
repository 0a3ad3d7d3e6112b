import { describe, expect, it } from 'vitest';
import { one, t } from './helpers.js';

describe('recurrent shapes', () => {
  it('LSTM layout 0: Y [seq, dirs, batch, hidden], Y_h/Y_c [dirs, batch, hidden]', () => {
    const out = one('LSTM', [t([5, 2, 10]), t([1, 28, 10]), t([1, 28, 7])], { hidden_size: 7 }, { outputs: 3 });
    expect(out).toEqual([t([5, 1, 2, 7]), t([1, 2, 7]), t([1, 2, 7])]);
  });

  it('GRU bidirectional, hidden size from the weights', () => {
    const out = one('GRU', [t(['s', 'b', 10]), t([2, 15, 10]), t([2, 15, 5])], { direction: 'bidirectional' }, { outputs: 2 });
    expect(out).toEqual([t(['s', 2, 'b', 5]), t([2, 'b', 5])]);
  });

  it('RNN layout 1 puts batch first (opset 14)', () => {
    const out = one('RNN', [t([3, 5, 4]), t([1, 6, 4]), t([1, 6, 6])], { hidden_size: 6, layout: 1 }, { outputs: 2, opset: 14 });
    expect(out).toEqual([t([3, 5, 1, 6]), t([3, 1, 6])]);
  });
});
