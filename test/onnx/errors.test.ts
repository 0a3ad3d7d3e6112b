/**
 * Hostile and broken model files: every one must end in a ModelError (exit code 3) with a
 * one-line message — never another exception type — whether the trouble shows when loading,
 * when ordering the graph, or when decoding tensor values.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitCode, ModelError, UnitscaleError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/load.js';
import type { Model } from '../../src/onnx/model.js';
import { encodeModelProto } from '../../src/onnx/proto.js';
import type { ModelProto, TensorProto } from '../../src/onnx/proto-types.js';
import { TensorData } from '../../src/onnx/tensor.js';
import { mulberry32 } from '../helpers/random.js';

const { FLOAT } = DataType;
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures');
const root = mkdtempSync(path.join(tmpdir(), 'unitscale-errors-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
function caseDir(): string {
  const d = path.join(root, `case${counter++}`);
  mkdirSync(d, { recursive: true });
  return d;
}

/** Everything the CLI does with a model before analysis: load, order every graph, decode every tensor. */
function exercise(file: string): Model {
  const model = loadModel(file);
  for (const g of model.graph.allGraphs()) {
    g.topologicalOrder();
    for (const t of g.initializers.values()) {
      t.toFloat64();
      for (const _ of t.chunks(64)) {
        /* stream it too */
      }
    }
  }
  return model;
}

/** Run `fn`; it must throw a one-line ModelError (exit code 3). Returns the message. */
function expectModelError(fn: () => unknown, pattern?: RegExp): string {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected an error').toBeDefined();
  if (!(caught instanceof ModelError)) throw new Error(`expected ModelError, got ${String((caught as Error)?.stack ?? caught)}`);
  expect(caught).toBeInstanceOf(UnitscaleError);
  expect(caught.exitCode).toBe(ExitCode.BAD_MODEL);
  expect(caught.message).not.toMatch(/[\r\n]/);
  expect(caught.message.length).toBeLessThan(400);
  if (pattern) expect(caught.message).toMatch(pattern);
  return caught.message;
}

/** Either fine or a clean ModelError: nothing else. */
function okOrModelError(fn: () => unknown): 'ok' | 'error' {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (!(e instanceof ModelError) || e.exitCode !== 3 || /[\r\n]/.test(e.message)) {
      throw new Error(`not a clean ModelError: ${String((e as Error)?.stack ?? e)}`);
    }
    return 'error';
  }
}

function writeModel(dir: string, proto: ModelProto, name = 'model.onnx'): string {
  const file = path.join(dir, name);
  writeFileSync(file, encodeModelProto(proto));
  return file;
}

/** A model whose only initializer is `t`, fed to Identity so the graph is otherwise sound. */
function modelWithTensor(t: TensorProto): ModelProto {
  const b = new GraphBuilder('g');
  b.initializerProto(t);
  b.output(b.node('Identity', [t.name!]), t.data_type ?? FLOAT);
  return b.toModelProto();
}

function externalTensor(name: string, dims: number[], entries: Record<string, string>): TensorProto {
  return {
    name,
    data_type: FLOAT,
    dims,
    data_location: 1,
    external_data: Object.entries(entries).map(([key, value]) => ({ key, value })),
  };
}

describe('hostile model files', () => {
  it('empty file', () => {
    const f = path.join(caseDir(), 'empty.onnx');
    writeFileSync(f, '');
    expectModelError(() => exercise(f), /empty/);
  });

  it('missing file and a folder instead of a file', () => {
    expectModelError(() => exercise(path.join(root, 'nope.onnx')), /cannot read/);
    expectModelError(() => exercise(caseDir()), /not a regular file/);
  });

  it('random bytes', () => {
    const rng = mulberry32(42);
    const dir = caseDir();
    for (let k = 0; k < 40; k++) {
      const bytes = Uint8Array.from({ length: 1 + Math.floor(rng() * 4000) }, () => Math.floor(rng() * 256));
      const f = path.join(dir, `r${k}.onnx`);
      writeFileSync(f, bytes);
      expectModelError(() => exercise(f));
    }
  });

  it('truncated files: every cut is a clean error or a (shorter) valid model', () => {
    const full = readFileSync(path.join(FIXTURES, 'transformer-block.onnx'));
    const dir = caseDir();
    const f = path.join(dir, 'cut.onnx');
    let errors = 0;
    const cuts = [1, 2, 5, 10, 100, full.length >> 1, full.length - 1];
    for (let c = 3; c < full.length; c += 997) cuts.push(c);
    for (const c of cuts) {
      writeFileSync(f, full.subarray(0, c));
      if (okOrModelError(() => exercise(f)) === 'error') errors++;
    }
    expect(errors).toBeGreaterThan(cuts.length / 2);
    writeFileSync(f, full.subarray(0, full.length >> 1));
    expectModelError(() => exercise(f), /not a valid ONNX protobuf|malformed/);
  });

  it('missing external-data file', () => {
    const dir = caseDir();
    copyFileSync(path.join(FIXTURES, 'external/model.onnx'), path.join(dir, 'model.onnx'));
    expectModelError(() => exercise(path.join(dir, 'model.onnx')), /not found/);
  });

  it("external data whose location escapes with '..'", () => {
    const dir = caseDir();
    const inner = path.join(dir, 'model');
    mkdirSync(inner);
    writeFileSync(path.join(dir, 'secret.bin'), new Uint8Array(64));
    for (const loc of ['../secret.bin', 'sub/../../secret.bin', '..\\secret.bin', './../secret.bin']) {
      const f = writeModel(inner, modelWithTensor(externalTensor('w', [4], { location: loc, offset: '0', length: '16' })));
      expectModelError(() => exercise(f), /refused|not found/);
    }
  });

  it('external data at an absolute path', () => {
    const dir = caseDir();
    const target = path.join(dir, 'weights.bin');
    writeFileSync(target, new Uint8Array(64));
    for (const loc of [target, '/etc/passwd', 'C:\\weights.bin', '\\\\server\\share\\w.bin']) {
      const f = writeModel(dir, modelWithTensor(externalTensor('w', [4], { location: loc, length: '16' })));
      expectModelError(() => exercise(f), /absolute path|refused/);
    }
  });

  it('external data through a symlink that leaves the folder (file or folder link)', () => {
    const dir = caseDir();
    const outside = caseDir();
    writeFileSync(path.join(outside, 'weights.bin'), new Uint8Array(64));
    symlinkSync(path.join(outside, 'weights.bin'), path.join(dir, 'weights.bin'));
    symlinkSync(outside, path.join(dir, 'sub'));
    for (const loc of ['weights.bin', 'sub/weights.bin']) {
      const f = writeModel(dir, modelWithTensor(externalTensor('w', [4], { location: loc, length: '16' })));
      expectModelError(() => exercise(f), /links outside/);
    }
    // a link that stays inside the folder is fine
    const ok = caseDir();
    writeFileSync(path.join(ok, 'real.bin'), new Uint8Array(16));
    symlinkSync('real.bin', path.join(ok, 'weights.bin'));
    const f = writeModel(ok, modelWithTensor(externalTensor('w', [4], { location: 'weights.bin' })));
    expect(Array.from(exercise(f).graph.initializers.get('w')!.toFloat64())).toEqual([0, 0, 0, 0]);
  });

  it('external data that is not a regular file, or has no location', () => {
    const dir = caseDir();
    mkdirSync(path.join(dir, 'folder'));
    let f = writeModel(dir, modelWithTensor(externalTensor('w', [4], { location: 'folder' })));
    expectModelError(() => exercise(f), /not a regular file/);
    f = writeModel(dir, modelWithTensor(externalTensor('w', [4], { location: '.' })));
    expectModelError(() => exercise(f), /not a regular file/);
    f = writeModel(dir, modelWithTensor(externalTensor('w', [4], { offset: '0' })));
    expectModelError(() => exercise(f), /no location/);
  });

  it('external offset/length overrunning the file, or malformed', () => {
    const dir = caseDir();
    writeFileSync(path.join(dir, 'weights.bin'), new Uint8Array(64));
    const bad: [Record<string, string>, RegExp][] = [
      [{ location: 'weights.bin', offset: '60', length: '16' }, /overruns/],
      [{ location: 'weights.bin', offset: '100' }, /overruns/],
      [{ location: 'weights.bin', offset: '0', length: '1000000' }, /overruns/],
      [{ location: 'weights.bin', offset: '-4', length: '16' }, /not a non-negative integer/],
      [{ location: 'weights.bin', offset: '0x10', length: '16' }, /not a non-negative integer/],
      [{ location: 'weights.bin', offset: '99999999999999999999', length: '16' }, /too large/],
      [{ location: 'weights.bin', length: '12' }, /does not match its shape/],
    ];
    for (const [entries, re] of bad) {
      const f = writeModel(dir, modelWithTensor(externalTensor('w', [4], entries)));
      expectModelError(() => exercise(f), re);
    }
    // declared data far larger than the file (absurd size, data absent)
    const f = writeModel(dir, modelWithTensor(externalTensor('w', [1 << 20, 1 << 20], { location: 'weights.bin' })));
    expectModelError(() => exercise(f), /overruns/);
  });

  it('external data that vanishes or shrinks after loading', () => {
    const dir = caseDir();
    writeFileSync(path.join(dir, 'weights.bin'), new Uint8Array(64));
    const f = writeModel(dir, modelWithTensor(externalTensor('w', [16], { location: 'weights.bin' })));
    const t = loadModel(f).graph.initializers.get('w')!;
    truncateSync(path.join(dir, 'weights.bin'), 10);
    expectModelError(() => t.toFloat64(), /ended early|shorter/);
    expectModelError(() => [...t.chunks(16)], /ended early|shorter/);
    unlinkSync(path.join(dir, 'weights.bin'));
    expectModelError(() => t.toFloat64(), /cannot read/);
    expectModelError(() => [...t.chunks(16)], /cannot read/);
  });

  it('negative and huge dims', () => {
    const dir = caseDir();
    const cases: [TensorProto, RegExp][] = [
      [{ name: 'w', data_type: FLOAT, dims: [-1, 4], raw_data: new Uint8Array(16) }, /invalid dimension -1/],
      [{ name: 'w', data_type: FLOAT, dims: [2 ** 40, 2 ** 40], raw_data: new Uint8Array(16) }, /absurd element count/],
      [{ name: 'w', data_type: FLOAT, dims: [2 ** 31, 2 ** 20], float_data: [1] }, /holds 1 values/],
      [{ name: 'w', data_type: FLOAT, dims: [2 ** 30, 2 ** 10] }, /holds 0 values/],
      [{ name: 'w', data_type: FLOAT, dims: ['9223372036854775807' as unknown as number], raw_data: new Uint8Array(4) }, /invalid dimension|absurd/],
      [{ name: 'w', data_type: FLOAT, dims: ['-9223372036854775808' as unknown as number], raw_data: new Uint8Array(4) }, /invalid dimension/],
    ];
    for (const [t, re] of cases) expectModelError(() => exercise(writeModel(dir, modelWithTensor(t))), re);
    // a huge declared input shape is only a declaration: the model still loads
    const b = new GraphBuilder('g');
    const x = b.input('x', FLOAT, [2 ** 50, -7]);
    b.output(b.node('Relu', [x]), FLOAT, [2 ** 50, -7]);
    expect(okOrModelError(() => exercise(writeModel(dir, b.toModelProto())))).toBe('ok');
  });

  it('raw_data or typed-field size mismatch, and undecodable types', () => {
    const dir = caseDir();
    const cases: [TensorProto, RegExp][] = [
      [{ name: 'w', data_type: FLOAT, dims: [4], raw_data: new Uint8Array(15) }, /raw_data has 15 bytes, its shape needs 16/],
      [{ name: 'w', data_type: FLOAT, dims: [4], raw_data: new Uint8Array(17) }, /raw_data has 17 bytes/],
      [{ name: 'w', data_type: DataType.INT64, dims: [2], int64_data: [1, 2, 3] }, /holds 3 values/],
      [{ name: 'w', data_type: 99, dims: [2], raw_data: new Uint8Array(8) }, /unsupported data type/],
    ];
    for (const [t, re] of cases) expectModelError(() => exercise(writeModel(dir, modelWithTensor(t))), re);
    // well-formed but not numbers, or no decoder: an error when values are asked for
    const undecodable: TensorProto[] = [
      { name: 's', data_type: DataType.STRING, dims: [1], string_data: [new Uint8Array([65])] },
      { name: 'c', data_type: DataType.COMPLEX64, dims: [1], raw_data: new Uint8Array(8) },
      { name: 'u', data_type: DataType.UNDEFINED, dims: [1], raw_data: new Uint8Array(4) },
    ];
    for (const t of undecodable) {
      const td = new TensorData(t, null);
      expectModelError(() => td.toFloat64());
    }
  });

  it('a cyclic graph (and a self-loop, and a cycle inside a subgraph)', () => {
    const dir = caseDir();
    const b = new GraphBuilder('cyclic');
    const x = b.input('x', FLOAT, [2]);
    b.rawNode({ name: 'A', op_type: 'Add', input: [x, 'b_out'], output: ['a_out'] });
    b.rawNode({ name: 'B', op_type: 'Relu', input: ['a_out'], output: ['b_out'] });
    b.output('b_out', FLOAT, [2]);
    const model = loadModel(writeModel(dir, b.toModelProto(), 'cycle.onnx'));
    expectModelError(() => model.graph.topologicalOrder(), /cycle/);

    const s = new GraphBuilder('self');
    const y = s.input('y', FLOAT, [2]);
    s.rawNode({ name: 'S', op_type: 'Add', input: [y, 's'], output: ['s'] });
    s.output('s', FLOAT, [2]);
    expectModelError(() => exercise(writeModel(dir, s.toModelProto(), 'self.onnx')), /cycle/);

    const o = new GraphBuilder('outer');
    const c = o.input('c', DataType.BOOL, []);
    const z = o.input('z', FLOAT, [2]);
    const body = o.subgraph('then');
    body.rawNode({ name: 'P', op_type: 'Neg', input: ['q'], output: ['p'] });
    body.rawNode({ name: 'Q', op_type: 'Neg', input: ['p'], output: ['q'] });
    body.output('q', FLOAT, [2]);
    const other = o.subgraph('else');
    other.output(other.node('Identity', [z]), FLOAT, [2]);
    o.output(o.node('If', [c], { attrs: { then_branch: body, else_branch: other } }), FLOAT, [2]);
    expectModelError(() => exercise(writeModel(dir, o.toModelProto(), 'sub.onnx')), /cycle/);
  });

  it('a dangling input (a value nothing produces)', () => {
    const dir = caseDir();
    const b = new GraphBuilder('dangling');
    const x = b.input('x', FLOAT, [2]);
    b.rawNode({ name: 'A', op_type: 'Add', input: [x, 'ghost'], output: ['a'] });
    b.output('a', FLOAT, [2]);
    const model = loadModel(writeModel(dir, b.toModelProto()));
    expectModelError(() => model.graph.topologicalOrder(), /ghost.*nothing produces/);
  });

  it('names with newlines or huge lengths still give one-line, bounded messages', () => {
    const dir = caseDir();
    const b = new GraphBuilder('g');
    const x = b.input('x', FLOAT, [2]);
    b.rawNode({ name: 'evil\nnode', op_type: 'Add\r\n', input: [x, `ghost\n${'z'.repeat(100000)}`], output: ['a'] });
    b.output('a', FLOAT, [2]);
    const model = loadModel(writeModel(dir, b.toModelProto()));
    const msg = expectModelError(() => model.graph.topologicalOrder(), /evil\\u000anode/);
    expect(msg.length).toBeLessThan(400);
    const t: TensorProto = { name: 'bad\nname', data_type: FLOAT, dims: [-3], raw_data: new Uint8Array(4) };
    expectModelError(() => exercise(writeModel(dir, modelWithTensor(t))), /bad\\u000aname/);
    const e = externalTensor('w', [4], { location: 'nope\n.bin' });
    expectModelError(() => exercise(writeModel(dir, modelWithTensor(e))), /nope\\u000a\.bin/);
  });

  it('a value produced twice, and a file with no graph', () => {
    const dir = caseDir();
    const b = new GraphBuilder('twice');
    const x = b.input('x', FLOAT, [2]);
    b.rawNode({ name: 'A', op_type: 'Relu', input: [x], output: ['v'] });
    b.rawNode({ name: 'B', op_type: 'Neg', input: [x], output: ['w'] });
    const proto = b.toModelProto();
    proto.graph!.node![1]!.output = ['v'];
    expectModelError(() => exercise(writeModel(dir, proto)), /produced twice/);
    expectModelError(() => exercise(writeModel(dir, { ir_version: 8 })), /no graph/);
  });
});
