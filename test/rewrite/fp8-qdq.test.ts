/**
 * FP8 QuantizeLinear/DequantizeLinear rewrite: opset 19 with FLOAT8 zero points around every
 * unit-scaled MatMul/Gemm/Conv operand; runs in ONNX Runtime; weights optionally stored in FP8
 * (bytes from the project's own quantiser).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataType } from '../../src/onnx/dtype.js';
import { encode, parseFormat, quantise } from '../../src/formats/index.js';
import { loadModel, modelFromBytes } from '../../src/onnx/load.js';
import { encodeModelProto, toNumber } from '../../src/onnx/proto.js';
import { makeTensor } from '../../src/rewrite/edit.js';
import { saveModel } from '../../src/onnx/save.js';
import { TensorData } from '../../src/onnx/tensor.js';
import { prepareInputs } from '../../src/measure/inputs.js';
import { rewriteModel } from '../../src/rewrite/rewrite.js';
import { staticScales } from '../../src/rewrite/scales.js';
import { verifyRewrite } from '../../src/rewrite/verify.js';
import { hasShared, REPO, SHARED } from '../helpers/corpus.js';

const VALIDATION = path.join(SHARED, 'validation');
const BACKEND = path.join(SHARED, 'onnx-backend-data');
const tmp = mkdtempSync(path.join(tmpdir(), 'unitscale-fp8-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ZP_TYPE: Record<string, number> = { e4m3: DataType.FLOAT8E4M3FN, e5m2: DataType.FLOAT8E5M2, e4m3fnuz: DataType.FLOAT8E4M3FNUZ, e5m2fnuz: DataType.FLOAT8E5M2FNUZ };

describe.skipIf(!hasShared)('FP8 QDQ rewrite', () => {
  it.each(['gpt2_tiny', 'mobilenet_v3_small'])('%s: e4m3 QDQ on every operand, opset 19, runs in ONNX Runtime', async (name) => {
    const file = path.join(VALIDATION, `${name}.onnx`);
    const model = loadModel(file);
    const r = rewriteModel(model, { format: 'e4m3', scales: staticScales(model).source });
    const out = path.join(tmp, `${name}.e4m3.onnx`);
    saveModel(r.proto, out);
    const back = loadModel(out);
    back.graph.topologicalOrder();
    expect(back.opset).toBe(19);
    expect(back.irVersion).toBeGreaterThanOrEqual(9);
    // Every MatMul/Gemm/Conv reads its two operands through DequantizeLinear.
    let wrapped = 0;
    for (const n of back.graph.nodes) {
      if (!['MatMul', 'Gemm', 'Conv'].includes(n.opType)) continue;
      for (const v of n.inputs.slice(0, 2)) {
        const dq = back.graph.producer.get(v);
        expect(dq?.opType, `${n.name} ← ${v}`).toBe('DequantizeLinear');
        const q = back.graph.producer.get(dq!.inputs[0]!);
        expect(q?.opType).toBe('QuantizeLinear');
        expect(back.graph.constant(q!.inputs[2]!)!.dtype).toBe(DataType.FLOAT8E4M3FN);
        wrapped++;
      }
    }
    expect(wrapped).toBeGreaterThan(20);
    const cmp = await verifyRewrite(model.proto, r.proto, prepareInputs(model, { inputs: file.replace(/\.onnx$/, '.inputs') }).sets);
    expect(cmp.newNonFinite).toBe(0);
    // FP8 noise compounds over the layers, but the outputs stay well above noise level.
    expect(cmp.pooledSqnrDb!).toBeGreaterThan(15);
  });

  it.each(['e4m3', 'e5m2', 'e4m3fnuz', 'e5m2fnuz'])('%s: test_Conv2d and test_Linear_no_bias run in ORT with %s zero points', async (fmt) => {
    for (const rel of ['pytorch-converted/test_Conv2d/model.onnx', 'pytorch-converted/test_Linear_no_bias/model.onnx']) {
      const model = loadModel(path.join(BACKEND, rel));
      const r = rewriteModel(model, { format: fmt, scales: staticScales(model).source, weightsFp8: true });
      const zps = (r.proto.graph!.initializer ?? []).filter((t) => t.data_type === ZP_TYPE[fmt]);
      expect(zps.length).toBeGreaterThan(0);
      const cmp = await verifyRewrite(model.proto, r.proto, prepareInputs(model, { inputs: path.join(path.dirname(path.join(BACKEND, rel)), 'test_data_set_0') }).sets);
      expect(cmp.newNonFinite).toBe(0);
      expect(cmp.pooledSqnrDb!).toBeGreaterThan(fmt.startsWith('e5m2') ? 15 : 20);
    }
  });

  it('--weights-fp8: weights stored as FP8 initializers from encode(), file about 4x smaller', async () => {
    const file = path.join(VALIDATION, 'mobilenet_v3_small.onnx');
    const model = loadModel(file);
    const r = rewriteModel(model, { format: 'e4m3', weightsFp8: true, scales: staticScales(model).source });
    const out = path.join(tmp, 'mobilenet.e4m3w.onnx');
    saveModel(r.proto, out);
    const ratio = statSync(out).size / statSync(file).size;
    expect(ratio).toBeLessThan(0.3);
    expect(ratio).toBeGreaterThan(0.2);
    const back = loadModel(out);
    back.graph.topologicalOrder();
    // The FP8 bytes are exactly the project's quantiser applied to the unit-scaled weight.
    const f = parseFormat('e4m3');
    const change = r.changes.find((c) => c.action === 'scale-weight')!;
    const w = change.value!;
    const scaled = model.graph.initializers.get(w)!.toFloat64().map((x) => x * change.constant!);
    const dq = back.graph.producer.get(w)!;
    expect(dq.opType).toBe('DequantizeLinear');
    const w8 = back.graph.initializers.get(dq.inputs[0]!)!;
    expect(w8.dtype).toBe(DataType.FLOAT8E4M3FN);
    const bytes = w8.rawBytes();
    for (let i = 0; i < scaled.length; i++) expect(bytes[i]).toBe(encode(scaled[i]!, f));
    const decoded = new TensorData(w8.proto, null).toFloat64();
    for (let i = 0; i < Math.min(64, scaled.length); i++) expect(decoded[i]).toBe(quantise(scaled[i]!, f));
    const cmp = await verifyRewrite(model.proto, r.proto, prepareInputs(model, { inputs: file.replace(/\.onnx$/, '.inputs') }).sets);
    expect(cmp.pooledSqnrDb!).toBeGreaterThan(15);
  });

  it('--weights-only quantises weights and leaves activations in float32', async () => {
    const file = path.join(VALIDATION, 'gpt2_tiny.onnx');
    const model = loadModel(file);
    const r = rewriteModel(model, { format: 'e4m3', weightsOnly: true, weightsFp8: true, scales: staticScales(model).source });
    expect(r.changes.some((c) => c.action === 'quantize')).toBe(false);
    expect(r.changes.filter((c) => c.action === 'fp8-weight').length).toBe(8);
    const cmp = await verifyRewrite(model.proto, r.proto, prepareInputs(model, { inputs: file.replace(/\.onnx$/, '.inputs') }).sets);
    expect(cmp.pooledSqnrDb!).toBeGreaterThan(25);
  });

  it('unit scaling beats scale-1 QDQ where scale 1 loses the range (mobilenet: activations ~1e-10)', async () => {
    const file = path.join(VALIDATION, 'mobilenet_v3_small.onnx');
    const model = loadModel(file);
    const sets = prepareInputs(model, { inputs: file.replace(/\.onnx$/, '.inputs') }).sets;
    const naive = await verifyRewrite(model.proto, rewriteModel(model, { format: 'e4m3', noUnitScale: true }).proto, sets);
    const unit = await verifyRewrite(model.proto, rewriteModel(model, { format: 'e4m3', scales: staticScales(model).source }).proto, sets);
    expect(unit.pooledSqnrDb! - (naive.pooledSqnrDb ?? 0)).toBeGreaterThan(10);
  });

  it('a weight with an outlier (max |w| ≫ 448·RMS) gets a lower multiplier instead of saturating', async () => {
    // One outlier among 2^19 small values: RMS ≈ 50/724, so at RMS 1 the outlier would sit at ~800 > 448.
    const K = 1024;
    const N = 512;
    const w = Array.from({ length: K * N }, (_, i) => Math.sin(i * 1.7) * 1e-4);
    w[5] = 50;
    const vi = (name: string, dims: number[] | null) => ({ name, type: { tensor_type: { elem_type: DataType.FLOAT, ...(dims ? { shape: { dim: dims.map((d) => ({ dim_value: d })) } } : {}) } } });
    const proto = {
      ir_version: 9,
      opset_import: [{ domain: '', version: 19 }],
      graph: { name: 'g', node: [{ op_type: 'MatMul', input: ['x', 'w'], output: ['y'], name: 'mm' }], initializer: [makeTensor('w', DataType.FLOAT, [K, N], w)], input: [vi('x', [2, K])], output: [vi('y', null)] },
    };
    const model = modelFromBytes(encodeModelProto(proto), null);
    const r = rewriteModel(model, { format: 'e4m3', scales: staticScales(model).source });
    const change = r.changes.find((c) => c.action === 'scale-weight')!;
    expect(change.reason).toMatch(/lowered/);
    expect(50 * change.constant!).toBeLessThanOrEqual(448);
    const cmp = await verifyRewrite(proto, r.proto, prepareInputs(model, { seed: 1 }).sets);
    expect(cmp.pooledSqnrDb!).toBeGreaterThan(20);
  });

  it('opset 9/11 models (trained PP-OCR, light zoo) are raised to 19 and run quantised', async () => {
    const files: [string, Record<string, number[]>][] = [
      [path.join(REPO, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx'), { x: [1, 3, 48, 192] }],
      [path.join(BACKEND, 'light', 'light_inception_v2.onnx'), {}],
    ];
    for (const [file, shapes] of files) {
      const model = loadModel(file);
      const r = rewriteModel(model, { format: 'e4m3', scales: staticScales(model, [parseFormat('e4m3')]).source });
      const opset = r.changes.find((c) => c.action === 'upgrade-opset')!;
      expect(toNumber(opset.constant)).toBe(19);
      const cmp = await verifyRewrite(model.proto, r.proto, prepareInputs(model, { seed: 2, shapes }).sets);
      expect(cmp.newNonFinite).toBe(0);
      expect(cmp.pooledSqnrDb ?? Infinity).toBeGreaterThan(10);
    }
  });
});
