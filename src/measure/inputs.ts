/**
 * Input feeds for a measurement: either the user's tensors (a folder of ONNX test-data
 * `input_K.pb` files, `.npy` files named after the inputs, or one `.npz`), or seeded random
 * tensors shaped from the model's declared input shapes.
 *
 * Random inputs follow what real inputs usually are:
 * - float inputs: N(0, 1);
 * - integer inputs that index an embedding (reach a Gather's indices, possibly through
 *   Cast/Reshape/Unsqueeze…): uniform over the table's first dimension (its `axis`);
 * - integer inputs compared by Equal with a constant (a sample rate, a mode flag): that constant;
 * - names containing "mask", and booleans: ones;
 * - other integers: uniform in [0, 4).
 * Symbolic dims come from `--dim name=value`, else 1 (with a note); `--shape name=d0,d1,…`
 * replaces an input's whole shape.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { InputError, UnitscaleError } from '../errors.js';
import { encode, parseFormat } from '../formats/index.js';
import { DataType, dtypeName, isFloatType } from '../onnx/dtype.js';
import type { Graph, Model, TensorType } from '../onnx/model.js';
import { typeFromProto } from '../onnx/model.js';
import { decodeTensorProto } from '../onnx/proto.js';
import { TensorData } from '../onnx/tensor.js';
import { NpyError, parseNpy, parseNpz, type NpyArray } from './npy.js';
import { fillGaussian, mixSeed, mulberry32, uniformInt } from './random.js';

export type FeedData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

export interface Feed {
  name: string;
  /** ONNX TensorProto.DataType. */
  dtype: number;
  dims: number[];
  /** Element values; float16 as raw bits (Uint16Array), bool as 0/1 bytes. */
  data: FeedData;
}

export type FeedSet = Feed[];

export interface InputOptions {
  /** Path of user inputs; random inputs when absent. */
  inputs?: string;
  /** Number of random input sets (ignored with user inputs: one run per set given). */
  runs?: number;
  seed?: number;
  dims?: Record<string, number>;
  shapes?: Record<string, number[]>;
}

export interface InputPlan {
  sets: FeedSet[];
  /** Human notes (defaulted dims, how ints were drawn, …). */
  notes: string[];
  /** "random (seed 0)" or the input path. */
  source: string;
}

/** The graph inputs a user must feed, with their declared types. */
export function graphInputs(model: Model): { name: string; type: TensorType | null }[] {
  return model.graph.inputs.map((vi) => ({ name: vi.name ?? '', type: typeFromProto(vi.type) }));
}

export function prepareInputs(model: Model, opts: InputOptions): InputPlan {
  if (opts.inputs) return readUserInputs(model, opts.inputs);
  return randomInputs(model, opts);
}

// ---------------------------------------------------------------------------------------------
// Random inputs

const PASS_THROUGH = new Set(['Cast', 'Reshape', 'Unsqueeze', 'Squeeze', 'Flatten', 'Identity', 'Expand', 'Slice', 'Transpose']);

type IntRule = { kind: 'range'; lo: number; hi: number; why: string } | { kind: 'const'; value: number; why: string };

/** How to draw an integer input, from how the graph uses it. */
function intRule(graph: Graph, name: string): IntRule {
  if (/mask/i.test(name)) return { kind: 'const', value: 1, why: 'a mask: ones' };
  const seen = new Set<string>();
  const queue = [name];
  while (queue.length > 0) {
    const v = queue.shift()!;
    if (seen.has(v)) continue;
    seen.add(v);
    for (const c of graph.consumers.get(v) ?? []) {
      if (c.domain !== '') continue;
      if (c.opType === 'Gather' && c.inputs[1] === v && c.inputs[0] !== v) {
        const size = tableSize(graph, c.inputs[0]!, c.attrs.int('axis') ?? 0);
        if (size !== null && size > 0) return { kind: 'range', lo: 0, hi: size, why: `ids into '${c.inputs[0]}': uniform in [0, ${size})` };
      }
      if (c.opType === 'Equal' && v === name) {
        const other = c.inputs[0] === v ? c.inputs[1] : c.inputs[0];
        const k = other ? graph.constant(other) : null;
        if (k && k.count >= 1) return { kind: 'const', value: k.toFloat64()[0]!, why: `compared with the constant ${k.toFloat64()[0]}: that value` };
      }
      if (PASS_THROUGH.has(c.opType) && c.inputs[0] === v) for (const o of c.outputs) if (o) queue.push(o);
    }
  }
  return { kind: 'range', lo: 0, hi: 4, why: 'uniform in [0, 4)' };
}

function tableSize(graph: Graph, table: string, axis: number): number | null {
  const k = graph.constant(table);
  let dims: (number | string | null)[] | null = k ? k.dims : (graph.declaredTypes.get(table)?.shape ?? null);
  if (!dims) return null;
  const a = axis < 0 ? axis + dims.length : axis;
  const d = dims[a];
  return typeof d === 'number' ? d : null;
}

function resolveShape(
  name: string,
  type: TensorType | null,
  opts: InputOptions,
  notes: Set<string>,
): number[] {
  const override = opts.shapes?.[name];
  const declared = type?.shape ?? null;
  if (override) {
    if (declared && declared.length !== override.length) {
      throw new InputError(`--shape ${name}=${override.join(',')}: the model declares rank ${declared.length} (${fmtShape(declared)})`);
    }
    declared?.forEach((d, i) => {
      if (typeof d === 'number' && d !== override[i]) {
        throw new InputError(`--shape ${name}=${override.join(',')}: dim ${i} is fixed at ${d} in the model (${fmtShape(declared)})`);
      }
    });
    return override;
  }
  if (!declared) {
    notes.add(`input '${name}' has no declared shape: using a scalar; give --shape ${name}=d0,d1,…`);
    return [];
  }
  return declared.map((d, i) => {
    if (typeof d === 'number') return d;
    if (typeof d === 'string') {
      const v = opts.dims?.[d];
      if (v !== undefined) return v;
      notes.add(`dim '${d}' defaulted to 1 (set --dim ${d}=N)`);
      return 1;
    }
    notes.add(`input '${name}' dim ${i} is unknown: defaulted to 1 (set --shape ${name}=…)`);
    return 1;
  });
}

export function fmtShape(s: readonly (number | string | null)[]): string {
  return `[${s.map((d) => (d === null ? '?' : String(d))).join(',')}]`;
}

function randomInputs(model: Model, opts: InputOptions): InputPlan {
  const seed = opts.seed ?? 0;
  const runs = Math.max(1, opts.runs ?? 1);
  const notes = new Set<string>();
  const specs = graphInputs(model);
  const known = new Set(specs.map((s) => s.name));
  for (const k of Object.keys(opts.shapes ?? {})) if (!known.has(k)) throw new InputError(`--shape ${k}: the model has no input '${k}' (inputs: ${[...known].join(', ')})`);
  const shapes = specs.map((s) => resolveShape(s.name, s.type, opts, notes));
  const rules = specs.map((s) => {
    const dt = s.type?.dtype ?? DataType.FLOAT;
    if (isFloatType(dt) || dt === DataType.UNDEFINED) return null;
    const r = dt === DataType.BOOL ? ({ kind: 'const', value: 1, why: 'a boolean: ones' } as IntRule) : intRule(model.graph, s.name);
    notes.add(`integer input '${s.name}': ${r.why}`);
    return r;
  });
  const sets: FeedSet[] = [];
  for (let run = 0; run < runs; run++) {
    sets.push(
      specs.map((s, k) => {
        const dims = shapes[k]!;
        const dtype = s.type?.dtype || DataType.FLOAT;
        const count = dims.reduce((a, b) => a * b, 1);
        const rng = mulberry32(mixSeed(seed, run, k));
        const rule = rules[k];
        let values: Float64Array;
        if (!rule) {
          values = new Float64Array(count);
          fillGaussian(values, rng);
        } else if (rule.kind === 'const') values = new Float64Array(count).fill(rule.value);
        else {
          values = new Float64Array(count);
          for (let i = 0; i < count; i++) values[i] = uniformInt(rng, rule.lo, rule.hi);
        }
        return { name: s.name, dtype, dims, data: typedFromNumbers(dtype, values, s.name) };
      }),
    );
  }
  return { sets, notes: [...notes], source: `random (seed ${seed}${runs > 1 ? `, ${runs} runs` : ''})` };
}

/** Element values → the typed array ONNX Runtime expects for `dtype`. */
export function typedFromNumbers(dtype: number, v: Float64Array, name: string): FeedData {
  switch (dtype) {
    case DataType.FLOAT:
      return Float32Array.from(v);
    case DataType.DOUBLE:
      return v;
    case DataType.FLOAT16: {
      const f = parseFormat('fp16');
      return Uint16Array.from(v, (x) => encode(x, f));
    }
    case DataType.INT64:
      return BigInt64Array.from(v, (x) => BigInt(Math.trunc(x)));
    case DataType.UINT64:
      return BigUint64Array.from(v, (x) => BigInt(Math.trunc(x)));
    case DataType.INT32:
      return Int32Array.from(v);
    case DataType.UINT32:
      return Uint32Array.from(v);
    case DataType.INT16:
      return Int16Array.from(v);
    case DataType.UINT16:
      return Uint16Array.from(v);
    case DataType.INT8:
      return Int8Array.from(v);
    case DataType.UINT8:
    case DataType.BOOL:
      return Uint8Array.from(v, (x) => (dtype === DataType.BOOL ? (x ? 1 : 0) : x));
    default:
      throw new InputError(`input '${name}' has type ${dtypeName(dtype)}, which unitscale cannot generate; give --inputs`);
  }
}

/** Little-endian element bytes (any alignment) → a typed array of `dtype` over a copy. */
export function typedFromBytes(dtype: number, bytes: Uint8Array, name: string): FeedData {
  // A fresh, exactly-sized buffer: `bytes` may be an unaligned view (or a pooled Buffer).
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  const b = copy.buffer;
  switch (dtype) {
    case DataType.FLOAT:
      return new Float32Array(b);
    case DataType.DOUBLE:
      return new Float64Array(b);
    case DataType.FLOAT16:
    case DataType.UINT16:
      return new Uint16Array(b);
    case DataType.INT64:
      return new BigInt64Array(b);
    case DataType.UINT64:
      return new BigUint64Array(b);
    case DataType.INT32:
      return new Int32Array(b);
    case DataType.UINT32:
      return new Uint32Array(b);
    case DataType.INT16:
      return new Int16Array(b);
    case DataType.INT8:
      return new Int8Array(b);
    case DataType.UINT8:
    case DataType.BOOL:
      return new Uint8Array(b);
    default:
      throw new InputError(`input '${name}' has type ${dtypeName(dtype)}, which unitscale cannot feed to ONNX Runtime`);
  }
}

/** ONNX Runtime's name for an ONNX element type. */
export function ortTypeOf(dtype: number): string {
  const t: Record<number, string> = {
    [DataType.FLOAT]: 'float32',
    [DataType.DOUBLE]: 'float64',
    [DataType.FLOAT16]: 'float16',
    [DataType.INT64]: 'int64',
    [DataType.UINT64]: 'uint64',
    [DataType.INT32]: 'int32',
    [DataType.UINT32]: 'uint32',
    [DataType.INT16]: 'int16',
    [DataType.UINT16]: 'uint16',
    [DataType.INT8]: 'int8',
    [DataType.UINT8]: 'uint8',
    [DataType.BOOL]: 'bool',
  };
  const s = t[dtype];
  if (!s) throw new InputError(`ONNX Runtime cannot take a ${dtypeName(dtype)} input`);
  return s;
}

/** numpy-style dtype name for messages and reports. */
export function npName(dtype: number): string {
  const t: Record<number, string> = {
    [DataType.FLOAT]: 'float32',
    [DataType.DOUBLE]: 'float64',
    [DataType.FLOAT16]: 'float16',
    [DataType.BFLOAT16]: 'bfloat16',
  };
  return t[dtype] ?? dtypeName(dtype);
}

// ---------------------------------------------------------------------------------------------
// User inputs

interface RawInput {
  /** Name given by the file (npz key, npy file name, TensorProto.name), if any. */
  name: string | null;
  dtype: number;
  dims: number[];
  bytes: Uint8Array;
  /** Where it came from, for messages. */
  origin: string;
}

function readUserInputs(model: Model, p: string): InputPlan {
  let st;
  try {
    st = statSync(p);
  } catch {
    throw new InputError(`${p}: no such file or folder`);
  }
  const specs = graphInputs(model);
  let groups: RawInput[][];
  if (st.isDirectory()) {
    const entries = readdirSync(p).sort(naturalCompare);
    const setDirs = entries.filter((e) => /^test_data_set_\d+$/.test(e) && statSync(path.join(p, e)).isDirectory());
    if (setDirs.length > 0) groups = setDirs.map((d) => readFolder(path.join(p, d)));
    else groups = [readFolder(p)];
  } else {
    groups = [readFile(p)];
  }
  const sets = groups.map((g, i) => matchInputs(specs, g, groups.length > 1 ? `${p} (set ${i})` : p));
  // A symbolic dim must mean one size across inputs of a set.
  return { sets, notes: groups.length > 1 ? [`${groups.length} input sets from ${p}: one run each`] : [], source: p };
}

function readFolder(dir: string): RawInput[] {
  const files = readdirSync(dir).sort(naturalCompare);
  const pbs = files.filter((f) => /^input_\d+\.pb$/.test(f));
  if (pbs.length > 0) {
    return pbs
      .sort((a, b) => Number(/\d+/.exec(a)![0]) - Number(/\d+/.exec(b)![0]))
      .map((f, k) => {
        const r = readPb(path.join(dir, f));
        if (Number(/\d+/.exec(f)![0]) !== k) throw new InputError(`${path.join(dir, f)}: input files must be numbered input_0.pb, input_1.pb, … without gaps`);
        return r;
      });
  }
  const npys = files.filter((f) => f.endsWith('.npy'));
  if (npys.length > 0) return npys.map((f) => ({ ...readNpyFile(path.join(dir, f)), name: f.replace(/\.npy$/, '') }));
  const npzs = files.filter((f) => f.endsWith('.npz'));
  if (npzs.length === 1) return readFile(path.join(dir, npzs[0]!));
  throw new InputError(`${dir}: no input_K.pb, .npy or single .npz files in this folder`);
}

function readFile(file: string): RawInput[] {
  if (file.endsWith('.npz')) {
    let arrays: Map<string, NpyArray>;
    try {
      arrays = parseNpz(readBytes(file));
    } catch (e) {
      throw new InputError(`${file}: ${oneLine(e)}`);
    }
    return [...arrays].map(([name, a]) => ({ name, dtype: a.dtype, dims: a.shape, bytes: a.bytes, origin: `${file}:${name}` }));
  }
  if (file.endsWith('.npy')) return [{ ...readNpyFile(file), name: path.basename(file).replace(/\.npy$/, '') }];
  if (file.endsWith('.pb')) return [readPb(file)];
  throw new InputError(`${file}: unknown input file type (use a folder of input_K.pb or .npy files, an .npz, an .npy or a .pb)`);
}

function readBytes(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new InputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function readNpyFile(file: string): RawInput {
  try {
    const a = parseNpy(readBytes(file));
    return { name: null, dtype: a.dtype, dims: a.shape, bytes: a.bytes, origin: file };
  } catch (e) {
    if (e instanceof UnitscaleError) throw e;
    throw new InputError(`${file}: ${oneLine(e)}`);
  }
}

function readPb(file: string): RawInput {
  const buf = readBytes(file);
  try {
    const proto = decodeTensorProto(buf);
    const td = new TensorData(proto, path.dirname(file));
    if (td.dtype === DataType.UNDEFINED || (td.count > 0 && td.byteLength === 0)) throw new Error('no tensor data');
    return { name: td.name || null, dtype: td.dtype, dims: td.dims, bytes: td.rawBytes(), origin: file };
  } catch (e) {
    throw new InputError(`${file}: not a valid ONNX TensorProto (${oneLine(e)})`);
  }
}

function matchInputs(specs: { name: string; type: TensorType | null }[], raws: RawInput[], where: string): FeedSet {
  const byName = new Map(raws.filter((r) => r.name !== null).map((r) => [r.name!, r]));
  const allNamed = raws.every((r) => r.name !== null && specs.some((s) => s.name === r.name));
  const symbols = new Map<string, number>();
  return specs.map((s, k) => {
    // ONNX test data is positional; names are used when every file names a real input.
    const r = allNamed ? byName.get(s.name) : raws[k];
    if (!r) throw new InputError(`${where}: no value for input '${s.name}'`);
    const want = s.type?.dtype ?? DataType.UNDEFINED;
    if (want !== DataType.UNDEFINED && r.dtype !== want) {
      throw new InputError(`${r.origin}: input '${s.name}' is ${npName(r.dtype)}, the model wants ${npName(want)}`);
    }
    const decl = s.type?.shape;
    if (decl) {
      const bad = (): never => {
        throw new InputError(`${r.origin}: input '${s.name}' has shape ${fmtShape(r.dims)}, the model wants ${fmtShape(decl)}`);
      };
      if (decl.length !== r.dims.length) bad();
      decl.forEach((d, i) => {
        const got = r.dims[i]!;
        if (typeof d === 'number' && d !== got) bad();
        if (typeof d === 'string') {
          const prev = symbols.get(d);
          if (prev !== undefined && prev !== got) {
            throw new InputError(`${r.origin}: input '${s.name}' dim '${d}' is ${got}, another input has it as ${prev}`);
          }
          symbols.set(d, got);
        }
      });
    }
    return { name: s.name, dtype: r.dtype, dims: r.dims, data: typedFromBytes(r.dtype, r.bytes, s.name) };
  });
}

function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

function oneLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split('\n')[0]!.slice(0, 200);
}

export { NpyError };
