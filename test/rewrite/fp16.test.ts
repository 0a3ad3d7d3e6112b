/**
 * fp16/bf16 rewrite: the graph cast with initializers converted, masks saturated instead of
 * becoming -Inf, out-of-range ops kept in float32 (with the reason), and float32 I/O kept on
 * request.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel, modelFromBytes } from '../../src/onnx/load.js';
import { encodeModelProto } from '../../src/onnx/proto.js';
import { prepareInputs } from '../../src/measure/inputs.js';
import { rewriteModel } from '../../src/rewrite/rewrite.js';
import { staticScales } from '../../src/rewrite/scales.js';
import { runModel, verifyRewrite } from '../../src/rewrite/verify.js';
import { makeTensor } from '../../src/rewrite/edit.js';
import { hasShared, SHARED } from '../helpers/corpus.js';

const VALIDATION = path.join(SHARED, 'validation');
const inputsOf = (name: string) => path.join(VALIDATION, `${name}.inputs`);

describe.skipIf(!hasShared)('fp16 rewrite', () => {
  it('gpt2_tiny: runs in ONNX Runtime, no NaN, masks saturated to -65504', async () => {
    const model = loadModel(path.join(VALIDATION, 'gpt2_tiny.onnx'));
    const r = rewriteModel(model, { format: 'fp16', scales: staticScales(model).source });
    const back = modelFromBytes(encodeModelProto(r.proto), null);
    back.graph.topologicalOrder();
    const sat = r.changes.filter((c) => c.action === 'saturate');
    expect(sat.map((c) => c.value).sort()).toEqual(['val_138', 'val_230']);
    expect(sat.every((c) => c.constant === -65504)).toBe(true);
    const mask = back.graph.initializers.get('val_138')!;
    expect(mask.dtype).toBe(DataType.FLOAT16);
    expect(new Set(mask.toFloat64())).toEqual(new Set([0, -65504]));
    // Every float initializer is fp16 now, and the output is fp16 (no --keep-io-types).
    for (const [, t] of back.graph.initializers) expect(t.dtype === DataType.FLOAT).toBe(false);
    expect(back.graph.outputs[0]!.type!.tensor_type!.elem_type).toBe(DataType.FLOAT16);
    const sets = prepareInputs(model, { inputs: inputsOf('gpt2_tiny') }).sets;
    const [out] = await runModel(r.proto, sets);
    for (const [, v] of out!) for (const x of v) expect(Number.isFinite(x)).toBe(true);
    const cmp = await verifyRewrite(model.proto, r.proto, sets);
    expect(cmp.newNonFinite).toBe(0);
    expect(cmp.pooledSqnrDb!).toBeGreaterThan(50);
  });

  it('gpt2_tiny --keep-io-types: float32 logits through a boundary Cast', async () => {
    const model = loadModel(path.join(VALIDATION, 'gpt2_tiny.onnx'));
    const r = rewriteModel(model, { format: 'fp16', keepIoTypes: true, scales: staticScales(model).source });
    const back = modelFromBytes(encodeModelProto(r.proto), null);
    expect(back.graph.outputs[0]!.type!.tensor_type!.elem_type).toBe(DataType.FLOAT);
    expect(back.graph.producer.get('logits')!.opType).toBe('Cast');
    const cmp = await verifyRewrite(model.proto, r.proto, prepareInputs(model, { inputs: inputsOf('gpt2_tiny') }).sets);
    expect(cmp.pooledSqnrDb!).toBeGreaterThan(50);
  });

  it('mobilenet_v3_small: keeps the underflowing tail in float32 (naive fp16 flushes the output to 0)', async () => {
    const model = loadModel(path.join(VALIDATION, 'mobilenet_v3_small.onnx'));
    const sets = prepareInputs(model, { inputs: inputsOf('mobilenet_v3_small') }).sets;
    const naive = await verifyRewrite(model.proto, rewriteModel(model, { format: 'fp16', noUnitScale: true, naiveCast: true }).proto, sets);
    expect(naive.pooledSqnrDb!).toBeLessThan(3);
    const r = rewriteModel(model, { format: 'fp16', keepIoTypes: true, scales: staticScales(model).source });
    const kept = r.changes.filter((c) => c.action === 'keep-fp32');
    expect(kept.length).toBeGreaterThan(10);
    expect(kept.every((c) => /underflow|overflow/.test(c.reason))).toBe(true);
    const back = modelFromBytes(encodeModelProto(r.proto), null);
    back.graph.topologicalOrder();
    expect(back.graph.inputs[0]!.type!.tensor_type!.elem_type).toBe(DataType.FLOAT);
    // The convolutions themselves run in fp16 between their unit-scaling multipliers.
    const halfConvs = back.graph.nodes.filter((n) => n.opType === 'Conv' && back.graph.initializers.get(n.inputs[1]!)?.dtype === DataType.FLOAT16);
    expect(halfConvs.length).toBeGreaterThan(40);
    const cmp = await verifyRewrite(model.proto, r.proto, sets);
    expect(cmp.newNonFinite).toBe(0);
    expect(cmp.pooledSqnrDb!).toBeGreaterThan(40);
  });

  it('a decomposed LayerNorm of large activations: x² past 65504 keeps Pow/ReduceMean/Sqrt in float32', async () => {
    // y = (h − mean h) / sqrt(mean (h − mean h)² + eps), h = 1000·x: the variance is ~1e6.
    const vi = (name: string, dims: number[] | null) => ({ name, type: { tensor_type: { elem_type: DataType.FLOAT, ...(dims ? { shape: { dim: dims.map((d) => ({ dim_value: d })) } } : {}) } } });
    const proto = {
      ir_version: 8,
      opset_import: [{ domain: '', version: 18 }],
      graph: {
        name: 'layernorm',
        node: [
          { op_type: 'Mul', input: ['x', 'k'], output: ['h'], name: 'scale_up' },
          { op_type: 'ReduceMean', input: ['h', 'axes'], output: ['mu'], name: 'mean' },
          { op_type: 'Sub', input: ['h', 'mu'], output: ['d'], name: 'center' },
          { op_type: 'Pow', input: ['d', 'two'], output: ['p'], name: 'square' },
          { op_type: 'ReduceMean', input: ['p', 'axes'], output: ['var'], name: 'variance' },
          { op_type: 'Add', input: ['var', 'eps'], output: ['ve'], name: 'add_eps' },
          { op_type: 'Sqrt', input: ['ve'], output: ['s'], name: 'std' },
          { op_type: 'Div', input: ['d', 's'], output: ['y'], name: 'normalise' },
        ],
        initializer: [
          makeTensor('k', DataType.FLOAT, [], [1000]),
          makeTensor('axes', DataType.INT64, [1], [-1]),
          makeTensor('two', DataType.FLOAT, [], [2]),
          makeTensor('eps', DataType.FLOAT, [], [1e-5]),
        ],
        input: [vi('x', [4, 64])],
        output: [vi('y', null)],
      },
    };
    const model = modelFromBytes(encodeModelProto(proto), null);
    const sets = prepareInputs(model, { seed: 4 }).sets;
    // (No naive baseline here: ONNX Runtime's CPU provider runs a chain around an op without an
    // fp16 kernel — ReduceMean — in float32 itself, which hides this overflow in a naive cast.)
    const r = rewriteModel(model, { format: 'fp16', scales: staticScales(model).source });
    const kept = new Map(r.changes.filter((c) => c.action === 'keep-fp32').map((c) => [c.node, c.reason]));
    for (const n of ['square', 'variance', 'add_eps']) {
      expect(kept.has(n), n).toBe(true);
      expect(kept.get(n)).toMatch(/overflow/);
    }
    expect(kept.has('normalise')).toBe(false); // y is ~N(0,1): fp16
    const cmp = await verifyRewrite(proto, r.proto, sets);
    expect(cmp.newNonFinite).toBe(0);
    expect(cmp.pooledSqnrDb!).toBeGreaterThan(50);
  });

  it('bf16: every float initializer converted, Casts retargeted, decodes and sorts', () => {
    const model = loadModel(path.join(VALIDATION, 'gpt2_tiny.onnx'));
    const r = rewriteModel(model, { format: 'bf16', scales: staticScales(model).source });
    const back = modelFromBytes(encodeModelProto(r.proto), null);
    back.graph.topologicalOrder();
    const types = new Set([...back.graph.initializers.values()].filter((t) => t.isFloat).map((t) => t.dtype));
    expect(types).toEqual(new Set([DataType.BFLOAT16]));
    // float32's lowest is past bf16's max (3.3895e38): the masks are saturated too.
    expect(r.changes.filter((c) => c.action === 'saturate').length).toBe(2);
  });
});
