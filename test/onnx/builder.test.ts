import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { attr, float32ToBfloat16Bits, float32ToFloat16Bits, GraphBuilder, lazyFloat32, makeAttribute } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/dtype.js';
import { parseExternalEntries } from '../../src/onnx/external.js';
import { loadModel, modelFromBytes } from '../../src/onnx/load.js';
import { decodeModelProto, encodeModelProto, toBigInt } from '../../src/onnx/proto.js';
import { AttributeType } from '../../src/onnx/proto-types.js';
import { buildLlama, LLAMA_PRESETS, llamaParams, writeLlama } from '../../scripts/make-llama.js';
import { mulberry32 } from '../helpers/random.js';

const { FLOAT, INT64 } = DataType;
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'unitscale-builder-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function randomValues(n: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  return Float32Array.from({ length: n }, () => rng() * 2 - 1);
}

/** x[batch,8] · w1[8,16] + b1 → Relu → · w2[16,4] + b2 */
function buildMlp(): { b: GraphBuilder; w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array } {
  const b = new GraphBuilder('mlp', { opset: 18 });
  const w1 = randomValues(8 * 16, 1);
  const b1 = randomValues(16, 2);
  const w2 = randomValues(16 * 4, 3);
  const b2 = randomValues(4, 4);
  const x = b.input('x', FLOAT, ['batch', 8]);
  const W1 = b.initializer('fc1.weight', [8, 16], w1);
  const B1 = b.initializer('fc1.bias', [16], b1);
  const W2 = b.initializer('fc2.weight', [16, 4], w2);
  const B2 = b.initializer('fc2.bias', [4], b2);
  const h = b.node('Relu', [b.node('Add', [b.node('MatMul', [x, W1]), B1])]);
  const y = b.node('Add', [b.node('MatMul', [h, W2]), B2]);
  b.output(y, FLOAT, ['batch', 4]);
  return { b, w1, b1, w2, b2 };
}

function mlpReference(x: Float32Array, batch: number, m: ReturnType<typeof buildMlp>): Float64Array {
  const out = new Float64Array(batch * 4);
  for (let r = 0; r < batch; r++) {
    const h = new Float64Array(16);
    for (let j = 0; j < 16; j++) {
      let s = m.b1[j]!;
      for (let i = 0; i < 8; i++) s += x[r * 8 + i]! * m.w1[i * 16 + j]!;
      h[j] = Math.max(0, s);
    }
    for (let k = 0; k < 4; k++) {
      let s = m.b2[k]!;
      for (let j = 0; j < 16; j++) s += h[j]! * m.w2[j * 4 + k]!;
      out[r * 4 + k] = s;
    }
  }
  return out;
}

describe('GraphBuilder', () => {
  it('builds a model that encodes, loads back, and keeps its structure', () => {
    const m = buildMlp();
    const file = path.join(tempDir(), 'mlp.onnx');
    m.b.save(file);
    const model = loadModel(file);
    expect(model.opset).toBe(18);
    expect(model.irVersion).toBe(8);
    expect(model.proto.producer_name).toBe('unitscale-builder');
    const g = model.graph;
    expect(g.name).toBe('mlp');
    expect(g.inputs.map((v) => v.name)).toEqual(['x']);
    expect(g.declaredTypes.get('x')).toEqual({ dtype: FLOAT, shape: ['batch', 8] });
    expect([...g.initializers.keys()]).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
    expect(g.initializers.get('fc1.weight')!.dims).toEqual([8, 16]);
    expect(Array.from(g.initializers.get('fc1.weight')!.toFloat64())).toEqual(Array.from(m.w1));
    expect(g.topologicalOrder().map((n) => n.opType)).toEqual(['MatMul', 'Add', 'Relu', 'MatMul', 'Add']);
    const names = g.nodes.map((n) => n.name);
    expect(new Set(names).size).toBe(names.length);
    const outs = g.nodes.flatMap((n) => n.outputs);
    expect(new Set(outs).size).toBe(outs.length);
    expect(g.outputs[0]!.name).toBe(g.nodes[4]!.outputs[0]);
    // the first Add consumes the first MatMul's output
    expect(g.consumers.get(g.nodes[0]!.outputs[0]!)!.map((n) => n.opType)).toEqual(['Add']);
  });

  it('is deterministic: the same calls give the same bytes', () => {
    const a = encodeModelProto(buildMlp().b.toModelProto());
    const b = encodeModelProto(buildMlp().b.toModelProto());
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it('keeps names unique and refuses clashes and undefined inputs', () => {
    const b = new GraphBuilder('names');
    const x = b.input('x', FLOAT, [2]);
    const r1 = b.node('Relu', [x]);
    const r2 = b.node('Relu', [x]);
    expect(r1).not.toBe(r2);
    const c1 = b.scalar(1);
    const c2 = b.scalar(2);
    expect(c1).not.toBe(c2);
    expect(() => b.input('x', FLOAT, [2])).toThrow(/already used/);
    expect(() => b.initializer(r1, [1], [0])).toThrow(/already used/);
    expect(() => b.node('Relu', ['nope'])).toThrow(/not defined/);
    expect(() => b.output('nope', FLOAT)).toThrow(/no value/);
    const named = b.node('Relu', [x], { name: 'Relu_1' });
    expect(named).toBeTruthy();
    const scoped = b.scope('layer0', () => b.node('Neg', [x]));
    expect(scoped.startsWith('layer0/')).toBe(true);
    const proto = b.toGraphProto();
    const nodeNames = proto.node!.map((n) => n.name);
    expect(new Set(nodeNames).size).toBe(nodeNames.length);
    // optional inputs may be omitted with ''
    const [y, mask] = b.nodeMulti('Dropout', [x, '', ''], { outputs: 2 });
    expect(y).not.toBe(mask);
  });

  it('writes attributes of every kind, inferring untyped ones', () => {
    expect(makeAttribute('a', 3).type).toBe(AttributeType.INT);
    expect(makeAttribute('a', 0.5).type).toBe(AttributeType.FLOAT);
    expect(makeAttribute('a', attr.float(1)).f).toBe(1);
    expect(makeAttribute('a', [1, 2]).type).toBe(AttributeType.INTS);
    expect(makeAttribute('a', [1, 2.5]).type).toBe(AttributeType.FLOATS);
    expect(makeAttribute('a', 'NOTSET').type).toBe(AttributeType.STRING);
    expect(makeAttribute('a', ['x', 'y']).type).toBe(AttributeType.STRINGS);
    expect(() => makeAttribute('a', [] as number[])).toThrow(/empty list/);

    const b = new GraphBuilder('attrs', { opset: 18, domains: { 'com.example': 1 } });
    const x = b.input('x', FLOAT, [2]);
    const sub = b.subgraph('then');
    sub.output(sub.node('Identity', [x]), FLOAT, [2]);
    const t = { name: 't', data_type: FLOAT, dims: [2], float_data: [1, 2] };
    b.node(
      'Custom',
      [x],
      {
        domain: 'com.example',
        attrs: {
          i: 7,
          big: attr.int(9223372036854775807n),
          f: attr.float(2),
          s: 'hello',
          t,
          g: sub,
          fs: attr.floats([1, 2]),
          is: [3, 4],
          ss: ['a', 'b'],
          ts: attr.tensors([t, t]),
          gs: attr.graphs([sub, sub]),
          tp: attr.typeProto({ tensor_type: { elem_type: FLOAT } }),
          tps: attr.typeProtos([{ tensor_type: { elem_type: INT64 } }]),
          skipped: undefined,
        },
      },
    );
    const bytes = encodeModelProto(b.toModelProto());
    const model = modelFromBytes(bytes, null);
    const node = model.graph.nodes[0]!;
    const a = node.attrs;
    expect(a.names().sort()).toEqual(['big', 'f', 'fs', 'g', 'gs', 'i', 'is', 's', 'ss', 't', 'tp', 'tps', 'ts'].sort());
    expect(a.int('i')).toBe(7);
    expect(toBigInt(a.raw('big')!.i)).toBe(9223372036854775807n);
    expect(a.raw('f')!.type).toBe(AttributeType.FLOAT);
    expect(a.float('f')).toBe(2);
    expect(a.string('s')).toBe('hello');
    expect(a.tensor('t')!.float_data).toEqual([1, 2]);
    expect(a.floats('fs')).toEqual([1, 2]);
    expect(a.ints('is')).toEqual([3, 4]);
    expect(a.strings('ss')).toEqual(['a', 'b']);
    expect(a.raw('ts')!.tensors).toHaveLength(2);
    expect(a.raw('tp')!.tp!.tensor_type!.elem_type).toBe(FLOAT);
    expect(a.raw('tps')!.type_protos).toHaveLength(1);
    // subgraphs: one GRAPH and two GRAPHS entries, each reading 'x' from the outer scope
    expect(node.subgraphs).toHaveLength(3);
    expect(node.implicitInputs()).toEqual(['x']);
    expect(model.opsets.get('com.example')).toBe(1);
  });

  it('writes big tensors to an external-data file and loads them back', () => {
    const dir = tempDir();
    const b = new GraphBuilder('ext', { opset: 18 });
    const big = randomValues(1000, 5);
    const small = randomValues(10, 6);
    const x = b.input('x', FLOAT, [1, 1000]);
    const w = b.initializer('big', [1000, 1], big);
    const s = b.initializer('small', [10], small);
    const lazy = b.lazyInitializer(
      'lazy',
      FLOAT,
      [300, 7],
      lazyFloat32(2100, (out, start) => out.forEach((_, i) => (out[i] = start + i)), 256),
    );
    const y = b.node('MatMul', [x, w]);
    b.output(y, FLOAT, [1, 1]);
    b.output(s, FLOAT, [10]);
    b.output(lazy, FLOAT, [300, 7]);
    const res = b.save(path.join(dir, 'model.onnx'), { externalDataFile: 'data/weights.bin', sizeThreshold: 100, align: 64 });
    expect(res.externalTensors).toBe(2);
    expect(statSync(path.join(dir, 'data/weights.bin')).size).toBe(res.externalBytes);

    const model = loadModel(path.join(dir, 'model.onnx'));
    const g = model.graph;
    const tBig = g.initializers.get('big')!;
    const tSmall = g.initializers.get('small')!;
    const tLazy = g.initializers.get('lazy')!;
    expect(tSmall.external).toBeNull();
    expect(tBig.external).not.toBeNull();
    const kv = parseExternalEntries(tLazy.proto.external_data!);
    expect(kv.location).toBe('data/weights.bin');
    expect(Number(kv.offset) % 64).toBe(0);
    expect(Number(kv.length)).toBe(2100 * 4);
    expect(Array.from(tBig.toFloat64())).toEqual(Array.from(big));
    expect(Array.from(tSmall.toFloat64())).toEqual(Array.from(small));
    const lazyValues = tLazy.toFloat64();
    expect(lazyValues[0]).toBe(0);
    expect(lazyValues[2099]).toBe(2099);
    // streamed in small chunks, the values are the same
    let n = 0;
    let sum = 0;
    for (const c of tLazy.chunks(1000)) {
      n += c.length;
      for (const v of c) sum += v;
    }
    expect(n).toBe(2100);
    expect(sum).toBe((2099 * 2100) / 2);
    // in memory, lazy initializers are materialised inline
    const inline = decodeModelProto(b.toBytes());
    expect(inline.graph!.initializer!.every((t) => t.raw_data && t.raw_data.length > 0)).toBe(true);
  });

  it('encodes float16 and bfloat16 bits with round-to-nearest-even', () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(float32ToFloat16Bits(2 ** -26)).toBe(0);
    expect(float32ToFloat16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float32ToBfloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBfloat16Bits(-0.5)).toBe(0xbf00);
    const b = new GraphBuilder('h');
    b.initializer('h', [3], [1, 0.5, -65504], DataType.FLOAT16);
    const t = modelFromBytes(b.toBytes(), null).graph.initializers.get('h')!;
    expect(Array.from(t.toFloat64())).toEqual([1, 0.5, -65504]);
  });

  it('produces valid ONNX: onnxruntime runs a built model, inline and with external data', async () => {
    const m = buildMlp();
    const batch = 3;
    const x = randomValues(batch * 8, 9);
    const want = mlpReference(x, batch, m);
    const dir = tempDir();
    const inlineFile = path.join(dir, 'inline.onnx');
    m.b.save(inlineFile);
    const extDir = path.join(dir, 'ext');
    m.b.save(path.join(extDir, 'model.onnx'), { externalDataFile: 'weights.bin', sizeThreshold: 64 });
    expect(loadModel(path.join(extDir, 'model.onnx')).graph.initializers.get('fc1.weight')!.external).not.toBeNull();
    for (const session of [
      await ort.InferenceSession.create(readFileSync(inlineFile)),
      await ort.InferenceSession.create(path.join(extDir, 'model.onnx')),
    ]) {
      const out = await session.run({ x: new ort.Tensor('float32', x, [batch, 8]) });
      const y = out[session.outputNames[0]!]!;
      expect(y.dims).toEqual([batch, 4]);
      const got = y.data as Float32Array;
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 4);
      await session.release();
    }
  });

  it('runs an If with subgraphs and int64 constants in onnxruntime', async () => {
    const b = new GraphBuilder('branchy', { opset: 18 });
    const x = b.input('x', FLOAT, [2, 3]);
    const cond = b.input('cond', DataType.BOOL, []);
    const thenB = b.subgraph('then');
    thenB.output(thenB.node('Neg', [x]), FLOAT, [2, 3]);
    const elseB = b.subgraph('else');
    elseB.output(elseB.node('Reshape', [x, elseB.ints([3, 2])]), FLOAT, [3, 2]);
    const y = b.node('If', [cond], { attrs: { then_branch: thenB, else_branch: elseB } });
    const z = b.node('Flatten', [y], { attrs: { axis: 0 } });
    b.output(z, FLOAT, [1, 6]);
    const model = modelFromBytes(b.toBytes(), null);
    expect(model.graph.topologicalOrder().map((n) => n.opType)).toEqual(['If', 'Flatten']);
    const session = await ort.InferenceSession.create(b.toBytes());
    const xs = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const t = await session.run({ x: new ort.Tensor('float32', xs, [2, 3]), cond: new ort.Tensor('bool', [true], []) });
    expect(Array.from(t[session.outputNames[0]!]!.data as Float32Array)).toEqual([-1, -2, -3, -4, -5, -6]);
    const f = await session.run({ x: new ort.Tensor('float32', xs, [2, 3]), cond: new ort.Tensor('bool', [false], []) });
    expect(Array.from(f[session.outputNames[0]!]!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    await session.release();
  });

  it('streams a Llama-shaped model (scripts/make-llama.ts) that onnxruntime runs, causally', async () => {
    const dir = tempDir();
    const r = writeLlama('tiny', dir, 3);
    const model = loadModel(path.join(dir, 'model.onnx'));
    const g = model.graph;
    let params = 0;
    for (const [name, t] of g.initializers) if (name.endsWith('.weight')) params += t.count;
    expect(params).toBe(llamaParams(LLAMA_PRESETS.tiny!));
    expect(r.externalBytes).toBeGreaterThanOrEqual((params - 5 * 64) * 4); // norm weights (256 B) stay inline
    const ops = new Set(g.topologicalOrder().map((n) => n.opType));
    for (const op of ['Gather', 'Pow', 'ReduceMean', 'Sqrt', 'Div', 'Sigmoid', 'Expand', 'Trilu', 'Softmax']) expect(ops).toContain(op);
    // same seed → same bytes, without materialising anything
    const again = encodeModelProto(buildLlama(LLAMA_PRESETS.tiny!, 3).toModelProto());
    const once = encodeModelProto(buildLlama(LLAMA_PRESETS.tiny!, 3).toModelProto());
    expect(Buffer.from(again).equals(Buffer.from(once))).toBe(true);

    const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'));
    const run = async (ids: number[]) => {
      const out = await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]) });
      return out.logits!;
    };
    const a = await run([1, 5, 7, 200, 3]);
    const b = await run([1, 5, 7, 9, 250]);
    expect(a.dims).toEqual([1, 5, 256]);
    const da = a.data as Float32Array;
    const db = b.data as Float32Array;
    expect(da.every((v) => Number.isFinite(v))).toBe(true);
    for (let i = 0; i < 3 * 256; i++) expect(db[i]).toBeCloseTo(da[i]!, 5); // positions 0-2 see the same prefix
    expect(Math.abs(db[4 * 256]! - da[4 * 256]!)).toBeGreaterThan(1e-6);
    await session.release();
  });
});
