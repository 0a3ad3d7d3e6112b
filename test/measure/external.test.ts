import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFormat } from '../../src/formats/index.js';
import { measureModel } from '../../src/measure/measure.js';
import { loadModel } from '../../src/onnx/load.js';
import { decodeModelProto, encodeModelProto } from '../../src/onnx/proto.js';
import { readFileSync } from 'node:fs';

const V = '/work/shared/validation';

describe('measure a model with external data', () => {
  it('gives the same report as the inline model, whatever the working directory', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'unitscale-ext-'));
    const proto = decodeModelProto(readFileSync(`${V}/gpt2_tiny.onnx`));
    let offset = 0;
    const chunks: Uint8Array[] = [];
    const initializer = proto.graph!.initializer!.map((t) => {
      const raw = t.raw_data;
      if (!raw || raw.length < 4096) return t;
      const ext = { ...t, raw_data: undefined, data_location: 1, external_data: [
        { key: 'location', value: 'weights.bin' }, { key: 'offset', value: String(offset) }, { key: 'length', value: String(raw.length) },
      ] };
      chunks.push(raw);
      offset += raw.length;
      return ext;
    });
    expect(chunks.length).toBeGreaterThan(3);
    writeFileSync(path.join(dir, 'weights.bin'), Buffer.concat(chunks));
    writeFileSync(path.join(dir, 'model.onnx'), encodeModelProto({ ...proto, graph: { ...proto.graph!, initializer } }));
    const formats = [parseFormat('e4m3')];
    const inputs = `${V}/gpt2_tiny.inputs`;
    const a = await measureModel(loadModel(path.join(dir, 'model.onnx')), { formats, inputs });
    const b = await measureModel(loadModel(`${V}/gpt2_tiny.onnx`), { formats, inputs });
    expect(process.cwd()).not.toBe(dir);
    expect(a.tensors.map((t) => [t.name, t.rms, t.risk])).toEqual(b.tensors.map((t) => [t.name, t.rms, t.risk]));
  });
});

describe('ONNX Runtime failures', () => {
  const formats = [parseFormat('fp16')];
  async function runtimeError(p: Promise<unknown>): Promise<string> {
    try {
      await p;
    } catch (e) {
      const { ExitCode, UnitscaleError } = await import('../../src/errors.js');
      expect(e).toBeInstanceOf(UnitscaleError);
      expect((e as InstanceType<typeof UnitscaleError>).exitCode).toBe(ExitCode.RUNTIME);
      expect((e as Error).message).not.toMatch(/\n/);
      return (e as Error).message;
    }
    throw new Error('expected a runtime error');
  }

  it('a model ORT cannot load → RUNTIME, one line', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'unitscale-bad-'));
    const proto = decodeModelProto(readFileSync(`${V}/gpt2_tiny.onnx`));
    const node = [...proto.graph!.node!];
    node[5] = { ...node[5]!, op_type: 'NoSuchOp', domain: 'com.example' };
    proto.opset_import = [...proto.opset_import!, { domain: 'com.example', version: 1 }];
    writeFileSync(path.join(dir, 'm.onnx'), encodeModelProto({ ...proto, graph: { ...proto.graph!, node } }));
    expect(await runtimeError(measureModel(loadModel(path.join(dir, 'm.onnx')), { formats }))).toMatch(/ONNX Runtime cannot load the model: .*NoSuchOp/);
  });

  it('a run that fails (ids out of the table) → RUNTIME, one line', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'unitscale-ids-'));
    const { makeTensorProto } = await import('../../src/onnx/tensor.js');
    const { encodeTensorProto } = await import('../../src/onnx/proto.js');
    writeFileSync(path.join(dir, 'input_0.pb'), encodeTensorProto(makeTensorProto('input_ids', 7, [2, 32], new Array(64).fill(100000))));
    expect(await runtimeError(measureModel(loadModel(`${V}/gpt2_tiny.onnx`), { formats, inputs: dir }))).toMatch(/ONNX Runtime failed running the model: /);
  });
});
