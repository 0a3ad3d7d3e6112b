import { describe, expect, it } from 'vitest';
import { AttributeType } from '../../../src/onnx/proto-types.js';
import { BOOL, F, I64, infer, node, optVi, seqVi, t, vi } from './helpers.js';

describe('optional shapes', () => {
  it('an optional tensor input reads as its tensor; GetElement passes it, HasElement is a bool scalar', () => {
    const r = infer({
      inputs: [optVi(vi('o', F, [4]))],
      nodes: [node('OptionalGetElement', ['o'], ['x']), node('OptionalHasElement', ['o'], ['has'])],
    });
    expect(r.types.get('x')).toEqual(t([4]));
    expect(r.types.get('has')).toEqual(t([], BOOL));
    expect(r.values.get('has')).toBeUndefined();
  });

  it('Optional wraps its input, or is empty of the `type` attribute', () => {
    const empty = node('Optional', [], ['e']);
    empty.attribute = [{ name: 'type', type: AttributeType.TYPE_PROTO, tp: vi('', I64, [2]).type }];
    const r = infer({
      inputs: [vi('a', F, [2, 3])],
      nodes: [node('Optional', ['a'], ['o']), node('OptionalGetElement', ['o'], ['x']), empty, node('OptionalHasElement', [], ['none'])],
    });
    expect(r.types.get('x')).toEqual(t([2, 3]));
    expect(r.types.get('e')).toEqual(t([2], I64));
    expect(r.values.get('none')?.data).toEqual([0]);
  });

  it('optional sequences pass through as sequences', () => {
    const r = infer({
      inputs: [optVi(seqVi('s', I64, [4])), vi('i', I64, [])],
      nodes: [node('OptionalGetElement', ['s'], ['seq']), node('SequenceAt', ['seq', 'i'], ['x'])],
    });
    expect(r.sequences.get('seq')?.elem).toEqual(t([4], I64));
    expect(r.types.get('x')).toEqual(t([4], I64));
  });
});
