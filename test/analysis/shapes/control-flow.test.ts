import { describe, expect, it } from 'vitest';
import { BOOL, F, graph, I64, infer, int64s, node, t, vi } from './helpers.js';

const out = (name: string) => ({ name });

describe('control-flow shapes', () => {
  it('If with a folded condition infers only the taken branch', () => {
    // The else branch squeezes a dim of size 4: impossible, and never taken.
    const thenB = graph({ inputs: [], nodes: [node('Identity', ['x'], ['a'])], outputs: [out('a')] });
    const elseB = graph({ inputs: [], nodes: [node('Squeeze', ['x', 'ax'], ['b'])], outputs: [out('b')] });
    const r = infer({
      inputs: [vi('x', F, [2, 4])],
      initializers: [int64s('ax', [1]), int64s('one', [1], []), int64s('four', [4], [])],
      nodes: [
        node('Shape', ['x'], ['s']),
        node('Gather', ['s', 'one'], ['d']),
        node('Equal', ['d', 'four'], ['cond']),
        node('If', ['cond'], ['y'], { then_branch: thenB, else_branch: elseB }),
      ],
    });
    expect(r.values.get('cond')?.data).toEqual([1]);
    expect(r.types.get('y')).toEqual(t([2, 4]));
  });

  it('If with an unknown condition keeps what both branches agree on', () => {
    const thenB = graph({ inputs: [], nodes: [node('Identity', ['x'], ['a'])], outputs: [out('a')] });
    const elseB = graph({ inputs: [], nodes: [node('Concat', ['x', 'x'], ['b'], { axis: 1 })], outputs: [out('b')] });
    const r = infer({ inputs: [vi('x', F, [2, 4]), vi('cond', BOOL, [])], nodes: [node('If', ['cond'], ['y'], { then_branch: thenB, else_branch: elseB })] });
    expect(r.types.get('y')).toEqual(t([2, null]));
    // Subgraph values are typed too.
    expect(r.types.get('b')).toEqual(t([2, 8]));
  });

  it('Loop: final carried values and scan outputs stacked by the trip count', () => {
    const body = graph({
      inputs: [vi('i', I64, []), vi('cin', BOOL, []), vi('acc', F, null)],
      nodes: [node('Identity', ['cin'], ['cout']), node('Add', ['acc', 'x'], ['acc2']), node('Mul', ['x', 'x'], ['sq'])],
      outputs: [out('cout'), out('acc2'), out('sq')],
    });
    const r = infer({
      inputs: [vi('x', F, [3, 4]), vi('init', F, [3, 4])],
      initializers: [int64s('M', [5], [])],
      nodes: [node('Loop', ['M', '', 'init'], ['final', 'stacked'], { body })],
    });
    expect(r.types.get('final')).toEqual(t([3, 4]));
    expect(r.types.get('stacked')).toEqual(t([5, 3, 4]));
    expect(r.types.get('i')).toEqual(t([], I64));
  });

  it('Loop: a carried value that grows loses the growing dim', () => {
    const body = graph({
      inputs: [vi('i', I64, []), vi('cin', BOOL, []), vi('seq', F, null)],
      nodes: [node('Identity', ['cin'], ['cout']), node('Concat', ['seq', 'seq'], ['seq2'], { axis: 0 }), node('Shape', ['seq'], ['s'])],
      outputs: [out('cout'), out('seq2')],
    });
    const r = infer({
      inputs: [vi('x', F, [1, 4]), vi('cond', BOOL, [])],
      initializers: [int64s('M', [3], [])],
      nodes: [node('Loop', ['M', 'cond', 'x'], ['final'], { body })],
    });
    expect(r.types.get('final')).toEqual(t([null, 4]));
    // The first pass saw seq as [1, 4]; that folded Shape must not survive the second pass.
    expect(r.values.has('s')).toBe(false);
  });

  it('Scan: body sees slices, scan outputs stack along scan_output_axes', () => {
    const body = graph({
      inputs: [vi('s_in', F, null), vi('x_t', F, null)],
      nodes: [node('Add', ['s_in', 'x_t'], ['s_out']), node('Identity', ['s_out'], ['y_t'])],
      outputs: [out('s_out'), out('y_t')],
    });
    const r = infer({
      inputs: [vi('init', F, [2]), vi('xs', F, [2, 7])],
      nodes: [node('Scan', ['init', 'xs'], ['final', 'ys'], { body, num_scan_inputs: 1, scan_input_axes: [1], scan_output_axes: [1] })],
      opset: 11,
    });
    expect(r.types.get('x_t')).toEqual(t([2]));
    expect(r.types.get('final')).toEqual(t([2]));
    expect(r.types.get('ys')).toEqual(t([2, 7]));
  });
});

