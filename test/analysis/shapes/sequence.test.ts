import { describe, expect, it } from 'vitest';
import { F, graph, I64, infer, int64s, node, seqVi, t, vi } from './helpers.js';

describe('sequence shapes', () => {
  const inputs = [vi('X', F, [2, 3, 4]), vi('Y', F, [1, 3, 4]), vi('Z', F, [3, 3, 4])];

  it('SequenceConstruct / Insert / Erase / At with known positions', () => {
    const r = infer({
      inputs,
      initializers: [int64s('p0', [0], []), int64s('p1', [-1], [])],
      nodes: [
        node('SequenceEmpty', [], ['e']),
        node('SequenceInsert', ['e', 'X'], ['s1']),
        node('SequenceInsert', ['s1', 'Y', 'p0'], ['s2']),
        node('SequenceAt', ['s2', 'p0'], ['first']),
        node('SequenceConstruct', ['X', 'Y', 'Z'], ['s3']),
        node('SequenceErase', ['s3', 'p1'], ['s4']),
        node('SequenceAt', ['s4', 'p1'], ['last']),
        node('SequenceLength', ['s4'], ['n']),
      ],
    });
    expect(r.types.get('first')).toEqual(t([1, 3, 4]));
    expect(r.types.get('last')).toEqual(t([1, 3, 4]));
    expect(r.values.get('n')?.data).toEqual([2]);
    expect(r.sequences.get('s3')?.elem).toEqual(t([null, 3, 4]));
  });

  it('SequenceAt at an unknown position gives the shared element type', () => {
    const r = infer({ inputs: [...inputs, vi('pos', I64, [])], nodes: [node('SequenceConstruct', ['X', 'Y', 'Z'], ['s']), node('SequenceAt', ['s', 'pos'], ['o'])] });
    expect(r.types.get('o')).toEqual(t([null, 3, 4]));
  });

  it('ConcatFromSequence concatenates or stacks', () => {
    const same = [vi('A', F, [2, 3, 4]), vi('B', F, [2, 3, 4])];
    const r = infer({
      inputs: same,
      nodes: [node('SequenceConstruct', ['A', 'B'], ['s']), node('ConcatFromSequence', ['s'], ['cat'], { axis: 1 }), node('ConcatFromSequence', ['s'], ['stack'], { axis: -1, new_axis: 1 })],
    });
    expect(r.types.get('cat')).toEqual(t([2, 6, 4]));
    expect(r.types.get('stack')).toEqual(t([2, 3, 4, 2]));
  });

  it('SplitToSequence: unit pieces, scalar chunks, given sizes', () => {
    const r = infer({
      inputs: [vi('X', F, [5, 3])],
      initializers: [int64s('two', [2], []), int64s('sizes', [1, 4])],
      nodes: [
        node('SplitToSequence', ['X'], ['a'], { keepdims: 0 }),
        node('SequenceLength', ['a'], ['na']),
        node('SplitToSequence', ['X', 'two'], ['b']),
        node('SplitToSequence', ['X', 'sizes'], ['c']),
      ],
    });
    expect(r.values.get('na')?.data).toEqual([5]);
    expect(r.sequences.get('a')?.elem).toEqual(t([3]));
    expect(r.sequences.get('b')?.items).toEqual([t([2, 3]), t([2, 3]), t([1, 3])]);
    expect(r.sequences.get('c')?.items).toEqual([t([1, 3]), t([4, 3])]);
  });

  it('a sequence graph input takes its declared element type', () => {
    const r = infer({ inputs: [seqVi('s', F, ['n', 3]), vi('i', I64, [])], nodes: [node('SequenceAt', ['s', 'i'], ['x']), node('SequenceLength', ['s'], ['len'])] });
    expect(r.types.get('x')).toEqual(t(['n', 3]));
    expect(r.values.get('len')).toBeUndefined();
  });

  it('SequenceMap: the body per element of known sequences, tensors passed whole', () => {
    const body = graph({
      inputs: [vi('a', F, null), vi('b', F, null)],
      nodes: [node('Concat', ['a', 'b'], ['c'], { axis: 0 }), node('Shape', ['a'], ['sh'])],
      outputs: [vi('c', F, null), vi('sh', I64, null)],
    });
    const r = infer({
      inputs: [vi('X', F, [2, 3]), vi('Y', F, [4, 3]), vi('T', F, [1, 3])],
      nodes: [node('SequenceConstruct', ['X', 'Y'], ['s']), node('SequenceMap', ['s', 'T'], ['cat', 'shapes'], { body })],
    });
    expect(r.sequences.get('cat')?.items).toEqual([t([3, 3]), t([5, 3])]);
    expect(r.sequences.get('cat')?.elem).toEqual(t([null, 3]));
    expect(r.sequences.get('shapes')?.elem).toEqual(t([2], I64));
  });

  it('SequenceMap over sequences of unknown length: once, on the shared element types', () => {
    const body = graph({ inputs: [vi('a', F, null), vi('b', F, null)], nodes: [node('Add', ['a', 'b'], ['c'])], outputs: [vi('c', F, null)] });
    const r = infer({ inputs: [seqVi('s', F, ['n']), seqVi('u', F, [1])], nodes: [node('SequenceMap', ['s', 'u'], ['sum'], { body })] });
    expect(r.sequences.get('sum')).toEqual({ sequence: true, items: null, elem: t(['n']) });
  });
});
