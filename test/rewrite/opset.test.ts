/**
 * Raising the opset to 19 keeps every model's function: the ONNX backend corpus (opsets 6–12)
 * upgraded and run in ONNX Runtime against the original (or against the recorded outputs where
 * ONNX Runtime no longer runs the old ops), plus hand-built cases for the semantic changes.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelError } from '../../src/errors.js';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel, modelFromBytes } from '../../src/onnx/load.js';
import { decodeTensorProto, encodeModelProto } from '../../src/onnx/proto.js';
import type { ModelProto, NodeProto } from '../../src/onnx/proto-types.js';
import { TensorData } from '../../src/onnx/tensor.js';
import { prepareInputs } from '../../src/measure/inputs.js';
import { makeAttribute, makeTensor, ModelEditor } from '../../src/rewrite/edit.js';
import { upgradeOpset } from '../../src/rewrite/opset.js';
import type { Change } from '../../src/rewrite/types.js';
import { compareRuns, runModel, type OutputValues } from '../../src/rewrite/verify.js';
import { hasShared, REPO, SHARED } from '../helpers/corpus.js';

const BACKEND = path.join(SHARED, 'onnx-backend-data');

function corpus(): string[] {
  if (!hasShared) return [];
  const out: string[] = [];
  for (const g of ['pytorch-converted', 'pytorch-operator', 'simple']) {
    for (const d of readdirSync(path.join(BACKEND, g)).sort()) {
      const dir = path.join(BACKEND, g, d);
      if (existsSync(path.join(dir, 'model.onnx')) && existsSync(path.join(dir, 'test_data_set_0'))) out.push(dir);
    }
  }
  return out;
}

function recordedOutputs(dir: string, names: string[]): OutputValues {
  const m: OutputValues = new Map();
  names.forEach((n, k) => {
    const f = path.join(dir, 'test_data_set_0', `output_${k}.pb`);
    if (existsSync(f)) m.set(n, new TensorData(decodeTensorProto(readFileSync(f)), null).toFloat64());
  });
  return m;
}

describe.skipIf(!hasShared)('opset upgrade to 19 on the ONNX backend corpus', () => {
  const dirs = corpus();
  it('has a corpus', () => expect(dirs.length).toBeGreaterThan(100));
  it('every model upgrades and computes the same outputs', async () => {
    const failures: string[] = [];
    let checked = 0;
    for (const dir of dirs) {
      const model = loadModel(path.join(dir, 'model.onnx'));
      if (model.graph.nodes.some((n) => n.domain !== '')) continue; // training-domain test graphs
      let sets;
      try {
        sets = prepareInputs(model, { inputs: path.join(dir, 'test_data_set_0') }).sets;
      } catch {
        continue; // string/sequence inputs
      }
      let ref: OutputValues[];
      try {
        ref = await runModel(model.proto, sets);
      } catch {
        ref = [recordedOutputs(dir, model.graph.outputs.map((o) => o.name ?? ''))]; // ORT dropped these old op versions
      }
      const editor = new ModelEditor(model.proto);
      const changes: Change[] = [];
      try {
        upgradeOpset(editor, 19, changes);
        const back = modelFromBytes(encodeModelProto(editor.proto), null);
        back.graph.topologicalOrder();
        const got = await runModel(editor.proto, sets);
        const cmp = compareRuns(ref, got);
        if (!(cmp.maxRelError <= 1e-5)) failures.push(`${path.basename(dir)}: max rel error ${cmp.maxRelError}`);
        checked++;
      } catch (e) {
        failures.push(`${path.basename(dir)}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThan(100);
  });

  it.each(['light_inception_v1', 'light_resnet50', 'light_densenet121', 'light_shufflenet', 'light_vgg19'])('%s (opset 9) upgrades and matches', async (name) => {
    const model = loadModel(path.join(BACKEND, 'light', `${name}.onnx`));
    const sets = prepareInputs(model, { seed: 5 }).sets;
    const editor = new ModelEditor(model.proto);
    const changes: Change[] = [];
    upgradeOpset(editor, 19, changes);
    expect(changes.at(-1)!.inserted).toContain('opset 9 → 19');
    const cmp = compareRuns(await runModel(model.proto, sets), await runModel(editor.proto, sets));
    expect(cmp.maxRelError).toBeLessThanOrEqual(1e-5);
  });

  it('trained PP-OCR rec (opset 9, Paddle2ONNX) upgrades and matches', async () => {
    const model = loadModel(path.join(REPO, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx'));
    const sets = prepareInputs(model, { seed: 5, shapes: { x: [1, 3, 48, 160] } }).sets;
    const editor = new ModelEditor(model.proto);
    const changes: Change[] = [];
    upgradeOpset(editor, 19, changes);
    expect(changes.filter((c) => c.action === 'convert-node').length).toBeGreaterThan(10);
    const cmp = compareRuns(await runModel(model.proto, sets), await runModel(editor.proto, sets));
    expect(cmp.maxRelError).toBeLessThanOrEqual(1e-5);
  });
});

/** A one-node float model built in memory. */
function oneNode(opset: number, node: NodeProto, inShape: number[], outName = 'y', extra: ModelProto['graph'] = {}): ModelProto {
  const vi = (name: string, dims: number[] | null) => ({ name, type: { tensor_type: { elem_type: DataType.FLOAT, ...(dims ? { shape: { dim: dims.map((d) => ({ dim_value: d })) } } : {}) } } });
  return {
    ir_version: 7,
    opset_import: [{ domain: '', version: opset }],
    graph: { name: 'g', node: [node], input: [vi('x', inShape)], output: [vi(outName, null)], ...extra },
  };
}

describe('opset upgrade: hand-built semantic changes', () => {
  async function same(proto: ModelProto, shape: number[]): Promise<Change[]> {
    const model = modelFromBytes(encodeModelProto(proto), null);
    const sets = prepareInputs(model, { seed: 1, shapes: { x: shape } }).sets;
    const editor = new ModelEditor(proto);
    const changes: Change[] = [];
    upgradeOpset(editor, 19, changes);
    const cmp = compareRuns(await runModel(proto, sets), await runModel(editor.proto, sets));
    expect(cmp.maxRelError).toBeLessThanOrEqual(1e-6);
    return changes;
  }

  it('Softmax-11 over axis 1 of a 3-D tensor keeps its 2-D coercion (Flatten → Softmax → Reshape)', async () => {
    for (const op of ['Softmax', 'LogSoftmax', 'Hardmax']) {
      const changes = await same(oneNode(11, { op_type: op, input: ['x'], output: ['y'], attribute: [makeAttribute('axis', 1)] }, [2, 3, 4]), [2, 3, 4]);
      expect(changes.some((c) => c.action === 'convert-node' && c.inserted!.includes('Flatten'))).toBe(true);
    }
  });

  it('Softmax-11 over the last axis is left as it is', async () => {
    const changes = await same(oneNode(11, { op_type: 'Softmax', input: ['x'], output: ['y'], attribute: [makeAttribute('axis', 2)] }, [2, 3, 4]), [2, 3, 4]);
    expect(changes.find((c) => c.action === 'convert-node')!.inserted).toContain('is the last');
  });

  it('attributes that became inputs: Unsqueeze/Squeeze-11, ReduceMean/ReduceSum-11, Slice-9, Pad-2, Clip-6, TopK-1, Split-11', async () => {
    await same(oneNode(11, { op_type: 'Unsqueeze', input: ['x'], output: ['y'], attribute: [makeAttribute('axes', [0, 3])] }, [2, 3]), [2, 3]);
    await same(oneNode(11, { op_type: 'Squeeze', input: ['x'], output: ['y'], attribute: [makeAttribute('axes', [1])] }, [2, 1, 3]), [2, 1, 3]);
    await same(oneNode(11, { op_type: 'ReduceMean', input: ['x'], output: ['y'], attribute: [makeAttribute('axes', [-1]), makeAttribute('keepdims', 0)] }, [2, 5]), [2, 5]);
    await same(oneNode(11, { op_type: 'ReduceSum', input: ['x'], output: ['y'], attribute: [makeAttribute('axes', [0])] }, [2, 5]), [2, 5]);
    await same(oneNode(9, { op_type: 'Slice', input: ['x'], output: ['y'], attribute: [makeAttribute('starts', [1]), makeAttribute('ends', [3]), makeAttribute('axes', [1])] }, [2, 5]), [2, 5]);
    await same(oneNode(9, { op_type: 'Pad', input: ['x'], output: ['y'], attribute: [makeAttribute('pads', [0, 1, 0, 2]), makeAttribute('value', { float: 1.5 })] }, [2, 3]), [2, 3]);
    await same(oneNode(9, { op_type: 'Clip', input: ['x'], output: ['y'], attribute: [makeAttribute('min', { float: -0.5 }), makeAttribute('max', { float: 0.75 })] }, [2, 8]), [2, 8]);
    await same(oneNode(9, { op_type: 'TopK', input: ['x'], output: ['y', 'i'], attribute: [makeAttribute('k', 2)] }, [3, 6]), [3, 6]);
    await same(oneNode(11, { op_type: 'Split', input: ['x'], output: ['y', 'z'], attribute: [makeAttribute('axis', 1), makeAttribute('split', [2, 4])] }, [3, 6]), [3, 6]);
    await same(oneNode(11, { op_type: 'Split', input: ['x'], output: ['y', 'z'], attribute: [makeAttribute('axis', 1)] }, [3, 6]), [3, 6]);
  });

  it('refuses what it cannot convert, naming the node', () => {
    const proto = oneNode(9, { name: 'up', op_type: 'Upsample', input: ['x', 's'], output: ['y'] }, [1, 1, 2, 2], 'y', { initializer: [makeTensor('s', DataType.FLOAT, [4], [1, 1, 2, 2])] });
    const editor = new ModelEditor(proto);
    expect(() => upgradeOpset(editor, 19, [])).toThrow(ModelError);
    expect(() => upgradeOpset(new ModelEditor(proto), 19, [])).toThrow(/up \(Upsample\)/);
  });

  it('does nothing when the opset is already high enough', () => {
    const proto = oneNode(19, { op_type: 'Relu', input: ['x'], output: ['y'] }, [2]);
    const editor = new ModelEditor(proto);
    const changes: Change[] = [];
    upgradeOpset(editor, 19, changes);
    expect(changes).toEqual([]);
  });
});
