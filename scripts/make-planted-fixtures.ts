/**
 * Small ONNX models with a planted numerics problem, for the gate's end-to-end tests
 * (test/gate/e2e.test.ts): `npx tsx scripts/make-planted-fixtures.ts` writes
 *
 * - fixtures/planted/overflow-e4m3.onnx: x[1,64] ~ N(0,1) → MatMul(W) → `hot` → Mul(2^-8) → y.
 *   W[64,64] ~ N(0, 40²) (seeded), so RMS(hot) = √64·40 = 320 and P(|hot| > 448) ≈ 16%: `hot`
 *   overflows E4M3 while W itself (absmax ≈ 170), x and y (RMS 1.25) stay inside it.
 * - fixtures/planted/underflow-fp16.onnx: x[1,64] → ·2^-13 → `a` → ·2^-13 → `tiny` → ·2^13 → `b`
 *   → ·2^13 → y. RMS(tiny) = 2^-26, below FP16's smallest subnormal 2^-24: ≈ 95% of it flushes
 *   to zero, while every constant (2^±13) is exact in FP16 and the other tensors are in range.
 *
 * The builders are exported so tests can make variants (e.g. a clean baseline) in memory.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DataType } from '../src/onnx/dtype.js';
import { encodeModelProto } from '../src/onnx/proto.js';
import type { ModelProto, NodeProto, ValueInfoProto } from '../src/onnx/proto-types.js';
import { writeFileAtomic } from '../src/onnx/save.js';
import { makeTensorProto } from '../src/onnx/tensor.js';

const OPSET = 17;
const IR_VERSION = 8;

/** Seeded N(0,1) draws: a 32-bit linear-congruential-free generator (xorshift32) + Box–Muller. */
function normals(seed: number, n: number): Float64Array {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296; // in (0, 1)
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const th = 2 * Math.PI * next();
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

function floatInput(name: string, dims: number[]): ValueInfoProto {
  return {
    name,
    type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } },
  };
}

function model(name: string, nodes: NodeProto[], initializers: ReturnType<typeof makeTensorProto>[], inputs: ValueInfoProto[], outputs: ValueInfoProto[]): ModelProto {
  return {
    ir_version: IR_VERSION,
    opset_import: [{ domain: '', version: OPSET }],
    producer_name: 'unitscale-planted-fixtures',
    producer_version: '1',
    graph: { name, node: nodes, initializer: initializers, input: inputs, output: outputs },
  };
}

/** x[1,K] → MatMul(W ~ N(0, weightStd²)) → hot → Mul(2^-8) → y. */
export function plantedOverflowModel(weightStd = 40, k = 64, seed = 20240601): ModelProto {
  const w = normals(seed, k * k).map((v) => v * weightStd);
  return model(
    'planted_overflow_e4m3',
    [
      { op_type: 'MatMul', name: 'matmul_hot', input: ['x', 'w'], output: ['hot'] },
      { op_type: 'Mul', name: 'rescale', input: ['hot', 'rescale_by'], output: ['y'] },
    ],
    [makeTensorProto('w', DataType.FLOAT, [k, k], w), makeTensorProto('rescale_by', DataType.FLOAT, [], [2 ** -8])],
    [floatInput('x', [1, k])],
    [floatInput('y', [1, k])],
  );
}

/** x[1,64] → ·2^-shift → a → ·2^-shift → tiny → ·2^shift → b → ·2^shift → y. */
export function plantedUnderflowModel(shift = 13, n = 64): ModelProto {
  return model(
    'planted_underflow_fp16',
    [
      { op_type: 'Mul', name: 'down_1', input: ['x', 'down'], output: ['a'] },
      { op_type: 'Mul', name: 'down_2', input: ['a', 'down'], output: ['tiny'] },
      { op_type: 'Mul', name: 'up_1', input: ['tiny', 'up'], output: ['b'] },
      { op_type: 'Mul', name: 'up_2', input: ['b', 'up'], output: ['y'] },
    ],
    [makeTensorProto('down', DataType.FLOAT, [], [2 ** -shift]), makeTensorProto('up', DataType.FLOAT, [], [2 ** shift])],
    [floatInput('x', [1, n])],
    [floatInput('y', [1, n])],
  );
}

export const PLANTED_DIR = fileURLToPath(new URL('../fixtures/planted/', import.meta.url));

export function writePlantedFixtures(dir: string = PLANTED_DIR): string[] {
  mkdirSync(dir, { recursive: true });
  const files: [string, ModelProto][] = [
    ['overflow-e4m3.onnx', plantedOverflowModel()],
    ['underflow-fp16.onnx', plantedUnderflowModel()],
  ];
  return files.map(([name, proto]) => {
    const file = path.join(dir, name);
    writeFileAtomic(file, encodeModelProto(proto));
    return file;
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  for (const f of writePlantedFixtures()) process.stdout.write(`wrote ${path.relative(process.cwd(), f)}\n`);
}
