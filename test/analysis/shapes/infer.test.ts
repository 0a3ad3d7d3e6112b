import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inferShapes } from '../../../src/analysis/shapes/infer.js';
import { Model } from '../../../src/onnx/model.js';
import { decodeModelProto, encodeModelProto } from '../../../src/onnx/proto.js';
import type { ModelProto } from '../../../src/onnx/proto-types.js';
import { F, floatTensor, I64, int64s, model, node, t, vi } from './helpers.js';

describe('inferShapes: merging with declared types', () => {
  it('a declared number fills an unknown dim; an inferred number wins over a symbol', () => {
    const m = model({
      inputs: [vi('x', F, ['n', 4])],
      nodes: [node('Relu', ['x'], ['y']), node('NotAnOp', ['y'], ['z'])],
      valueInfo: [vi('y', F, [8, 'c']), vi('z', F, [8, 4])],
      outputs: [vi('z', F, null)],
    });
    const r = inferShapes(m);
    expect(r.types.get('y')).toEqual(t([8, 4]));
    // No rule: the declaration stands in, and the op is counted.
    expect(r.types.get('z')).toEqual(t([8, 4]));
    expect(r.unsupported).toEqual(new Map([['NotAnOp', 1]]));
    expect(r.mismatches).toEqual([]);
  });

  it('records concrete contradictions without throwing', () => {
    const m = model({ inputs: [vi('x', F, [2, 4])], nodes: [node('Relu', ['x'], ['y'])], valueInfo: [vi('y', F, [2, 5])] });
    const r = inferShapes(m);
    expect(r.mismatches).toEqual([{ value: 'y', declared: t([2, 5]), inferred: t([2, 4]) }]);
    expect(r.types.get('y')).toEqual(t([2, 4]));
  });

  it('throws a one-line ModelError for impossible shapes', () => {
    const m = model({ inputs: [vi('a', F, [2, 3]), vi('b', F, [4, 5])], nodes: [node('MatMul', ['a', 'b'], ['y'])] });
    expect(() => inferShapes(m)).toThrow(/^node 'MatMul_y' \(MatMul\): inner dimensions 3 and 4 differ$/);
  });

  it('reads dim_param dims of decoded models as symbols (not the proto2 default 0)', () => {
    const m = model({ inputs: [vi('x', F, ['batch', null, 3])], nodes: [node('Relu', ['x'], ['y'])] });
    const decoded = new Model(decodeModelProto(encodeModelProto(m.proto)), null, null);
    expect(inferShapes(decoded).types.get('y')).toEqual(t(['batch', null, 3]));
  });
});

describe('inferShapes: overrides', () => {
  const spec = {
    inputs: [vi('x', F, ['batch', 3, 8, 8])],
    initializers: [floatTensor('w', new Array<number>(16 * 3 * 9).fill(0), [16, 3, 3, 3]), int64s('zero', [0]), int64s('minus1', [-1])],
    nodes: [
      node('Conv', ['x', 'w'], ['c'], { pads: [1, 1, 1, 1] }),
      node('Shape', ['c'], ['s']),
      node('Gather', ['s', 'zero'], ['b']),
      node('Concat', ['b', 'minus1'], ['target'], { axis: 0 }),
      node('Reshape', ['c', 'target'], ['flat']),
      node('ReduceMean', ['flat'], ['m'], { axes: [1] }),
    ],
    valueInfo: [vi('flat', F, ['batch', 'features'])],
    outputs: [vi('m', F, ['batch', 1])],
    opset: 13,
  };

  it('symbolic batch stays symbolic; --dim batch=1 makes every shape concrete', () => {
    const sym = inferShapes(model(spec), { useDeclared: false });
    expect(sym.types.get('flat')).toEqual(t(['batch', 1024]));
    const r = inferShapes(model(spec), { dims: { batch: 1 } });
    for (const name of ['c', 's', 'b', 'target', 'flat', 'm']) {
      const shape = r.types.get(name)?.shape;
      expect(shape, name).not.toBeNull();
      expect(shape!.every((d) => typeof d === 'number'), `${name}: ${JSON.stringify(shape)}`).toBe(true);
    }
    expect(r.types.get('flat')).toEqual(t([1, 1024]));
    expect(r.values.get('target')?.data).toEqual([1, -1]);
  });

  it('inputShapes replaces an input shape', () => {
    const r = inferShapes(model(spec), { inputShapes: { x: [4, 3, 8, 8] } });
    expect(r.types.get('m')).toEqual(t([4, 1]));
  });

  const mobilenet = path.resolve(process.cwd(), '../shared/validation/mobilenet_v3_small.onnx');
  it.skipIf(!existsSync(mobilenet))('a real model with a symbolic batch becomes concrete everywhere with dims', () => {
    const proto = decodeModelProto(readFileSync(mobilenet)) as ModelProto;
    const x = proto.graph!.input!.find((v) => v.name === 'x')!;
    x.type!.tensor_type!.shape!.dim![0] = { dim_param: 'batch' };
    const m = new Model(proto, mobilenet, path.dirname(mobilenet));
    const pure = inferShapes(m, { useDeclared: false, dims: { batch: 2 } });
    for (const n of m.graph.nodes) {
      for (const o of n.outputs) expect(pure.types.get(o)?.shape?.every((d) => typeof d === 'number'), o).toBe(true);
    }
    expect(pure.types.get('output')).toEqual(t([2, 100]));
    const symbolic = inferShapes(m, { useDeclared: false });
    expect(symbolic.types.get('output')?.shape?.[1]).toBe(100);
  });
});

describe('inferShapes: scopes and functions', () => {
  it('IR < 4 initializers listed as inputs are constants for folding', () => {
    const m = model({
      inputs: [vi('x', F, [2, 3, 4]), vi('shape', I64, [2])],
      initializers: [int64s('shape', [6, 4])],
      nodes: [node('Reshape', ['x', 'shape'], ['y'])],
      ir: 3,
    });
    expect(inferShapes(m, { useDeclared: false }).types.get('y')).toEqual(t([6, 4]));
  });

  it('infers a model-local function by inlining its body', () => {
    const m = new Model(
      {
        ir_version: 8,
        opset_import: [
          { domain: '', version: 17 },
          { domain: 'local', version: 1 },
        ],
        functions: [
          {
            name: 'LinearRelu',
            domain: 'local',
            input: ['a', 'w'],
            output: ['r'],
            attribute: ['alpha'],
            node: [node('MatMul', ['a', 'w'], ['mm']), { ...node('LeakyRelu', ['mm'], ['r']), attribute: [{ name: 'alpha', ref_attr_name: 'alpha', type: 1 }] }],
            opset_import: [{ domain: '', version: 17 }],
          },
        ],
        graph: {
          name: 'g',
          input: [vi('x', F, ['b', 8]), vi('w', F, [8, 3])],
          output: [],
          node: [node('LinearRelu', ['x', 'w'], ['y'], {}, 'local')],
        },
      },
      null,
      null,
    );
    const r = inferShapes(m, { useDeclared: false });
    expect(r.types.get('y')).toEqual(t(['b', 3]));
    expect(r.unsupported.size).toBe(0);
  });

  it('knows a few com.microsoft ops', () => {
    const m = model({
      inputs: [vi('a', F, [2, 5, 4]), vi('b', F, [3, 4])],
      nodes: [node('FusedMatMul', ['a', 'b'], ['y'], { transB: 1 }, 'com.microsoft'), node('FastGelu', ['y'], ['z'], {}, 'com.microsoft')],
      extraOpsets: { 'com.microsoft': 1 },
    });
    const r = inferShapes(m, { useDeclared: false });
    expect(r.types.get('z')).toEqual(t([2, 5, 3]));
  });
});
