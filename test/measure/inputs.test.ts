import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode, InputError } from '../../src/errors.js';
import { parseFormat } from '../../src/formats/index.js';
import { prepareInputs } from '../../src/measure/inputs.js';
import { measureModel } from '../../src/measure/measure.js';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/load.js';
import { encodeTensorProto } from '../../src/onnx/proto.js';
import { makeTensorProto } from '../../src/onnx/tensor.js';

const V = '/work/shared/validation';
const GPT2 = `${V}/gpt2_tiny.onnx`;
const MOBILENET = `${V}/mobilenet_v3_small.onnx`;
const VAD = 'node_modules/@ricky0123/vad-web/dist/silero_vad_legacy.onnx';
const formats = [parseFormat('fp16')];

function npy(descr: string, shape: number[], data: Uint8Array): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  header = header.padEnd(Math.ceil((11 + header.length) / 64) * 64 - 11, ' ') + '\n';
  const out = new Uint8Array(10 + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(data, 10 + header.length);
  return out;
}

const tmp = (): string => mkdtempSync(path.join(tmpdir(), 'unitscale-measure-'));

/** The InputError `fn` throws (asserting it is one, with one line and the BAD_INPUT code). */
async function inputError(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).exitCode).toBe(ExitCode.BAD_INPUT);
    const msg = (e as Error).message;
    expect(msg).not.toMatch(/\n/);
    return msg;
  }
  throw new Error('expected an InputError');
}

describe('random inputs', () => {
  it('draws embedding ids over the table, reproducibly per seed', () => {
    const m = loadModel(GPT2);
    const a = prepareInputs(m, { seed: 5, runs: 3 });
    expect(a.sets).toHaveLength(3);
    const ids = a.sets[0]![0]!;
    expect(ids.dtype).toBe(DataType.INT64);
    expect(ids.dims).toEqual([2, 32]);
    const v = Array.from(ids.data as BigInt64Array, Number);
    expect(Math.min(...v)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...v)).toBeLessThan(512);
    expect(new Set(v).size).toBeGreaterThan(40);
    expect(a.notes.join(' ')).toMatch(/uniform in \[0, 512\)/);
    const b = prepareInputs(m, { seed: 5, runs: 3 });
    expect(Array.from(b.sets[2]![0]!.data as BigInt64Array)).toEqual(Array.from(a.sets[2]![0]!.data as BigInt64Array));
    expect(Array.from(a.sets[1]![0]!.data as BigInt64Array)).not.toEqual(v.map(BigInt));
  });

  it('float inputs are N(0,1)', () => {
    const x = prepareInputs(loadModel(MOBILENET), { seed: 1 }).sets[0]![0]!;
    expect(x.dims).toEqual([2, 3, 224, 224]);
    const d = x.data as Float32Array;
    let s = 0;
    let s2 = 0;
    for (const v of d) (s += v), (s2 += v * v);
    expect(Math.abs(s / d.length)).toBeLessThan(0.01);
    expect(Math.abs(s2 / d.length - 1)).toBeLessThan(0.01);
  });

  it('resolves symbolic dims from --dim (default 1, with a note) and --shape; uses the Equal constant for sr', () => {
    const m = loadModel(VAD);
    const def = prepareInputs(m, {});
    expect(def.sets[0]!.map((f) => f.dims)).toEqual([[1, 1], [], [2, 1, 64], [2, 1, 64]]);
    expect(def.notes.join('\n')).toMatch(/dim 'batch' defaulted to 1/);
    const sr = def.sets[0]![1]!;
    expect(Number((sr.data as BigInt64Array)[0])).toBe(16000);
    const p = prepareInputs(m, { dims: { batch: 2, sequence: 512 }, shapes: { h: [2, 2, 64] } });
    expect(p.sets[0]!.map((f) => f.dims)).toEqual([[2, 512], [], [2, 2, 64], [2, 2, 64]]);
  });

  it('rejects a --shape that contradicts a fixed dim or the rank', async () => {
    const m = loadModel(MOBILENET);
    expect(await inputError(() => prepareInputs(m, { shapes: { x: [1, 3, 224, 224] } }))).toMatch(/dim 0 is fixed at 2/);
    expect(await inputError(() => prepareInputs(m, { shapes: { x: [2, 3, 224] } }))).toMatch(/rank 4/);
    expect(await inputError(() => prepareInputs(m, { shapes: { y: [1] } }))).toMatch(/no input 'y'/);
  });
});

describe('user inputs', () => {
  it('reads a folder of .npy files named after the inputs', async () => {
    const dir = tmp();
    const ids = new BigInt64Array(64).map((_, i) => BigInt(i % 512));
    writeFileSync(path.join(dir, 'input_ids.npy'), npy('<i8', [2, 32], new Uint8Array(ids.buffer)));
    const plan = prepareInputs(loadModel(GPT2), { inputs: dir });
    expect(Array.from(plan.sets[0]![0]!.data as BigInt64Array)).toEqual(Array.from(ids));
    const r = await measureModel(loadModel(GPT2), { formats, inputs: dir });
    expect(r.summary.inputs).toBe(dir);
    expect(r.tensors.find((t) => t.name === 'logits')?.measured?.count).toBe(2 * 32 * 512);
  });

  it('reads ONNX test-data folders with several test_data_set_N (one run each)', async () => {
    const dir = tmp();
    for (const k of [0, 1]) {
      mkdirSync(path.join(dir, `test_data_set_${k}`));
      const ids = Array.from({ length: 64 }, (_, i) => (i * (k + 3)) % 512);
      writeFileSync(path.join(dir, `test_data_set_${k}`, 'input_0.pb'), encodeTensorProto(makeTensorProto('input_ids', DataType.INT64, [2, 32], ids)));
    }
    const r = await measureModel(loadModel(GPT2), { formats, inputs: dir });
    expect(r.summary.runs).toBe(2);
    expect(r.tensors.find((t) => t.name === 'logits')?.measured?.count).toBe(2 * 2 * 32 * 512);
  });

  it('wrong dtype → InputError naming both types', async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'x.npy'), npy('<f8', [2, 3, 224, 224], new Uint8Array(8 * 2 * 3 * 224 * 224)));
    expect(await inputError(() => measureModel(loadModel(MOBILENET), { formats, inputs: dir }))).toMatch(/input 'x' is float64, the model wants float32/);
  });

  it('wrong shape → InputError naming both shapes', async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'input_0.pb'), encodeTensorProto(makeTensorProto('x', DataType.FLOAT, [1, 3, 224, 224], new Float32Array(3 * 224 * 224))));
    expect(await inputError(() => measureModel(loadModel(MOBILENET), { formats, inputs: dir }))).toMatch(/shape \[1,3,224,224\], the model wants \[2,3,224,224\]/);
  });

  it('missing input → InputError', async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'input.npy'), npy('<f4', [1, 512], new Uint8Array(4 * 512)));
    const m = loadModel(VAD);
    expect(await inputError(() => prepareInputs(m, { inputs: dir }))).toMatch(/no value for input 'sr'/);
    const empty = tmp();
    expect(await inputError(() => prepareInputs(m, { inputs: empty }))).toMatch(/no input_K.pb, .npy or single .npz/);
  });

  it('bad files → InputError', async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'input_0.pb'), new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12]));
    const m = loadModel(MOBILENET);
    expect(await inputError(() => prepareInputs(m, { inputs: dir }))).toMatch(/not a valid ONNX TensorProto/);
    const npz = path.join(tmp(), 'in.npz');
    writeFileSync(npz, 'not a zip at all, not at all');
    expect(await inputError(() => prepareInputs(m, { inputs: npz }))).toMatch(/not a zip archive/);
    const bad = path.join(tmp(), 'x.npy');
    writeFileSync(bad, 'garbage');
    expect(await inputError(() => prepareInputs(m, { inputs: bad }))).toMatch(/bad magic/);
    expect(await inputError(() => prepareInputs(m, { inputs: '/nonexistent/in.npz' }))).toMatch(/no such file/);
    const txt = path.join(tmp(), 'x.txt');
    writeFileSync(txt, '1 2 3');
    expect(await inputError(() => prepareInputs(m, { inputs: txt }))).toMatch(/unknown input file type/);
  });
});
