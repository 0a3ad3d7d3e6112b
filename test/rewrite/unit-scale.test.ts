/**
 * Unit-scaling rewrite on real models: the rewritten model computes the same function
 * (max relative output error ≤ 1e-5 in ONNX Runtime), decodes back, sorts topologically, and
 * leaves everything it does not touch as it was.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/onnx/load.js';
import type { Model } from '../../src/onnx/model.js';
import { decodeModelProto, decodeTensorProto, encodeModelProto, toPlainObject } from '../../src/onnx/proto.js';
import type { ModelProto, NodeProto } from '../../src/onnx/proto-types.js';
import { saveModel } from '../../src/onnx/save.js';
import { TensorData } from '../../src/onnx/tensor.js';
import { prepareInputs } from '../../src/measure/inputs.js';
import { rewriteModel } from '../../src/rewrite/rewrite.js';
import { constantScales, measuredScales, staticScales, staticScalesAsync } from '../../src/rewrite/scales.js';
import { compareRuns, runModel, verifyRewrite, type OutputValues } from '../../src/rewrite/verify.js';
import { hasShared, SHARED } from '../helpers/corpus.js';

const VALIDATION = path.join(SHARED, 'validation');
const BACKEND = path.join(SHARED, 'onnx-backend-data');
const tmp = mkdtempSync(path.join(tmpdir(), 'unitscale-rewrite-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Recorded inputs for the validation models, test_data_set_0 for backend models, else seeded random. */
function feedsFor(model: Model, file: string) {
  const recorded = file.replace(/\.onnx$/, '.inputs');
  const dataset = path.join(path.dirname(file), 'test_data_set_0');
  if (existsSync(recorded)) return prepareInputs(model, { inputs: recorded }).sets;
  if (existsSync(dataset)) return prepareInputs(model, { inputs: dataset }).sets;
  return prepareInputs(model, { seed: 3 }).sets;
}

/** Save, decode back, index and sort: the rewritten file is a valid model. */
function roundTrip(proto: ModelProto, name: string): Model {
  const file = path.join(tmp, name);
  saveModel(proto, file);
  const back = loadModel(file);
  for (const g of back.graph.allGraphs()) g.topologicalOrder();
  return back;
}

/** Original nodes the rewrite did not touch come out identical; model-level fields too. */
function expectLossless(original: ModelProto, rewritten: ModelProto, touched: Set<string>): void {
  const plain = (n: NodeProto) => toPlainObject('NodeProto', n);
  const after = new Map((rewritten.graph!.node ?? []).filter((n) => n.name).map((n) => [n.name!, n]));
  let compared = 0;
  for (const n of original.graph!.node ?? []) {
    if (!n.name || touched.has(n.name)) continue;
    const m = after.get(n.name);
    expect(m, `node ${n.name} kept`).toBeDefined();
    expect(plain(m!)).toEqual(plain(n));
    compared++;
  }
  expect(compared).toBeGreaterThan(0);
  for (const k of ['metadata_props', 'doc_string', 'producer_name', 'producer_version', 'domain', 'model_version'] as const) {
    expect(toPlainObject('ModelProto', { [k]: rewritten[k] })).toEqual(toPlainObject('ModelProto', { [k]: original[k] }));
  }
  expect(rewritten.graph!.name).toBe(original.graph!.name);
  expect(toPlainObject('GraphProto', { output: rewritten.graph!.output, value_info: rewritten.graph!.value_info })).toEqual(
    toPlainObject('GraphProto', { output: original.graph!.output, value_info: original.graph!.value_info }),
  );
}

function targetNames(proto: ModelProto): Set<string> {
  return new Set((proto.graph!.node ?? []).filter((n) => ['MatMul', 'Gemm', 'Conv'].includes(n.op_type ?? '')).map((n) => n.name ?? ''));
}

const VALIDATION_MODELS = ['gpt2_tiny', 'mobilenet_v3_small'];

describe.skipIf(!hasShared)('unit scaling keeps the function (validation models, recorded inputs)', () => {
  it.each(VALIDATION_MODELS)('%s: static scales, max relative error ≤ 1e-5, lossless elsewhere', async (name) => {
    const file = path.join(VALIDATION, `${name}.onnx`);
    const model = loadModel(file);
    const scales = staticScales(model);
    expect(scales.note).toBeNull();
    const r = rewriteModel(model, { scales: scales.source, scaleLabel: 'static analysis' });
    const actions = new Set(r.changes.map((c) => c.action));
    expect(actions.has('scale-weight')).toBe(true);
    expect(actions.has('scale-input')).toBe(true);
    expect(actions.has('restore-output')).toBe(true);
    // Every multiplier is a power of two (exact in binary floating point).
    for (const c of r.changes) if (c.constant !== null) expect(Number.isInteger(Math.log2(Math.abs(c.constant)))).toBe(true);
    const back = roundTrip(r.proto, `${name}.us.onnx`);
    const cmp = await verifyRewrite(model.proto, encodeModelProto(back.proto), feedsFor(model, file));
    expect(cmp.newNonFinite).toBe(0);
    expect(cmp.maxRelError).toBeLessThanOrEqual(1e-5);
    expectLossless(decodeModelProto(readFileSync(file)), back.proto, targetNames(model.proto));
    // The input model object is not mutated.
    expect(toPlainObject('ModelProto', model.proto)).toEqual(toPlainObject('ModelProto', decodeModelProto(readFileSync(file))));
  });

  it('gpt2_tiny: the CLI’s staticScalesAsync (weight pass) gives the scales of staticScales', async () => {
    const file = path.join(VALIDATION, 'gpt2_tiny.onnx');
    const a = staticScales(loadModel(file));
    const model = loadModel(file);
    const b = await staticScalesAsync(model);
    expect(b.note).toBeNull();
    let n = 0;
    for (const node of model.graph.nodes)
      for (const v of [...node.inputs, ...node.outputs]) {
        const x = a.source(v);
        const y = b.source(v);
        expect(y === null).toBe(x === null);
        if (x && y) {
          expect(y.rms).toBeCloseTo(x.rms, 9);
          n++;
        }
      }
    expect(n).toBeGreaterThan(100);
  });

  it('gpt2_tiny: every MatMul/Gemm operand enters at RMS ≈ 1 (measured in the rewritten model)', async () => {
    const file = path.join(VALIDATION, 'gpt2_tiny.onnx');
    const model = loadModel(file);
    const r = rewriteModel(model, { scales: staticScales(model).source });
    const rewritten = roundTrip(r.proto, 'gpt2-rms.onnx');
    const measured = await measuredScales(rewritten, { inputs: file.replace(/\.onnx$/, '.inputs') });
    let checked = 0;
    for (const n of rewritten.graph.nodes) {
      if (!['MatMul', 'Gemm'].includes(n.opType)) continue;
      for (const v of n.inputs.slice(0, 2)) {
        const s = measured.source(v);
        expect(s, v).not.toBeNull();
        // Within a factor 2 of 1: power-of-two rounding (√2) times the prediction's error.
        expect(Math.abs(Math.log2(s!.rms)), `${n.name} input ${v} RMS ${s!.rms}`).toBeLessThan(1);
        checked++;
      }
    }
    expect(checked).toBe(26);
  });

  it('mobilenet_v3_small: measured scales and unrounded multipliers (1/σ) also keep the function', async () => {
    const file = path.join(VALIDATION, 'mobilenet_v3_small.onnx');
    const model = loadModel(file);
    const feeds = feedsFor(model, file);
    const { source } = await measuredScales(model, { inputs: file.replace(/\.onnx$/, '.inputs') });
    const r = rewriteModel(model, { scales: source, rounding: 'none' });
    expect(r.changes.some((c) => c.constant !== null && !Number.isInteger(Math.log2(Math.abs(c.constant))))).toBe(true);
    const cmp = await verifyRewrite(model.proto, r.proto, feeds);
    expect(cmp.maxRelError).toBeLessThanOrEqual(1e-5);
  });
});

const BACKEND_MODELS = [
  'light/light_squeezenet.onnx',
  'light/light_resnet50.onnx',
  'light/light_inception_v1.onnx',
  'light/light_shufflenet.onnx',
  'pytorch-converted/test_Conv2d/model.onnx',
  'pytorch-converted/test_Conv2d_groups/model.onnx',
  'pytorch-converted/test_Conv2d_depthwise_strided/model.onnx',
  'pytorch-converted/test_Conv1d_dilated/model.onnx',
  'pytorch-converted/test_Conv3d_stride_padding/model.onnx',
  'pytorch-converted/test_Linear_no_bias/model.onnx',
  'pytorch-operator/test_operator_conv/model.onnx',
];

describe.skipIf(!hasShared)('unit scaling keeps the function (ONNX backend models)', () => {
  it.each(BACKEND_MODELS)('%s', async (rel) => {
    const file = path.join(BACKEND, rel);
    const model = loadModel(file);
    const r = rewriteModel(model, { scales: staticScales(model).source });
    expect(r.changes.filter((c) => c.action === 'restore-output').length).toBeGreaterThan(0);
    const back = roundTrip(r.proto, rel.replace(/[/]/g, '_'));
    const cmp = await verifyRewrite(model.proto, encodeModelProto(back.proto), feedsFor(model, file));
    expect(cmp.newNonFinite).toBe(0);
    expect(cmp.maxRelError).toBeLessThanOrEqual(1e-5);
  });

  it('test_Linear (Gemm-6, which ONNX Runtime cannot run): raised to opset 7 and matches the recorded output', async () => {
    const dir = path.join(BACKEND, 'pytorch-converted', 'test_Linear');
    const model = loadModel(path.join(dir, 'model.onnx'));
    const r = rewriteModel(model, { scales: constantScales(model.graph) });
    expect(r.changes.some((c) => c.action === 'upgrade-opset' && c.constant === 7)).toBe(true);
    expect(r.changes.some((c) => c.action === 'scale-weight')).toBe(true);
    expect(r.changes.some((c) => c.op === 'Gemm' && c.action === 'scale-bias')).toBe(true); // beta
    roundTrip(r.proto, 'test_Linear.us.onnx');
    const expected: OutputValues = new Map([[model.graph.outputs[0]!.name!, new TensorData(decodeTensorProto(readFileSync(path.join(dir, 'test_data_set_0', 'output_0.pb'))), null).toFloat64()]]);
    const got = await runModel(r.proto, prepareInputs(model, { inputs: path.join(dir, 'test_data_set_0') }).sets);
    expect(compareRuns([expected], got).maxRelError).toBeLessThanOrEqual(1e-5);
  });

  it('a weight shared with another op (tied embedding) is copied, not scaled in place', () => {
    const model = loadModel(path.join(VALIDATION, 'gpt2_tiny.onnx'));
    const r = rewriteModel(model, { scales: staticScales(model).source, ops: ['MatMul', 'Gemm', 'Conv'] });
    const before = model.graph.initializers.get('m.lm_head.weight')!.toFloat64();
    const after = new TensorData(r.proto.graph!.initializer!.find((t) => t.name === 'm.lm_head.weight')!, null).toFloat64();
    expect(Array.from(after)).toEqual(Array.from(before)); // read by Gather (embedding) too: untouched
  });

  it('--ops and --weights-only narrow what is rewritten', () => {
    const model = loadModel(path.join(VALIDATION, 'gpt2_tiny.onnx'));
    const scales = staticScales(model).source;
    const onlyGemm = rewriteModel(model, { scales, ops: ['Gemm'] });
    const nodesOf = (changes: typeof onlyGemm.changes) => new Set(changes.filter((c) => c.action === 'restore-output').map((c) => c.node));
    expect(nodesOf(onlyGemm.changes).size).toBe(8);
    const weightsOnly = rewriteModel(model, { scales, weightsOnly: true });
    expect(weightsOnly.changes.some((c) => c.action === 'scale-input')).toBe(false);
    expect(weightsOnly.changes.filter((c) => c.action === 'scale-weight').length).toBe(8);
  });
});
