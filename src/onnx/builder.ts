/**
 * GraphBuilder: a small, deterministic way to write ONNX graphs as plain proto objects, for
 * fixtures, tests, benchmarks and rewrites.
 *
 *   const b = new GraphBuilder('mlp', { opset: 18 });
 *   const x = b.input('x', DataType.FLOAT, ['batch', 64]);
 *   const w = b.initializer('w', [64, 10], values);
 *   const y = b.node('MatMul', [x, w]);
 *   b.output(y, DataType.FLOAT, ['batch', 10]);
 *   const model = b.toModelProto();            // everything inline, in memory
 *   b.save('out/model.onnx', { externalDataFile: 'weights.bin' }); // big tensors to a side file
 *
 * Same calls → same bytes: names come from counters, never from clocks or randomness, and
 * initializers keep their insertion order. Initializers may be lazy (`lazyInitializer`): their
 * bytes are produced chunk by chunk only while `save` streams them into the external-data file,
 * so a multi-gigabyte model is written without ever being held in memory.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { byteLength, DataType, dtypeBits, dtypeName } from './dtype.js';
import { writeFileAtomic } from './save.js';
import { encodeModelProto, Long } from './proto.js';
import {
  AttributeType,
  type AttributeProto,
  type GraphProto,
  type I64,
  type ModelProto,
  type NodeProto,
  type OperatorSetIdProto,
  type SparseTensorProto,
  type TensorProto,
  type TensorShapeDimension,
  type TypeProto,
  type ValueInfoProto,
} from './proto-types.js';
import { makeTensorProto } from './tensor.js';

/** A dimension of a declared shape: a size, a symbol ('batch'), or unknown (null). */
export type BuilderDim = number | string | null;

/** An attribute with its type stated (for values whose JS type is ambiguous, e.g. 1 vs 1.0). */
export class Attr {
  constructor(
    readonly type: number,
    readonly value: unknown,
  ) {}
}

/** Explicitly typed attribute values. */
export const attr = {
  float: (v: number) => new Attr(AttributeType.FLOAT, v),
  floats: (v: ArrayLike<number>) => new Attr(AttributeType.FLOATS, Array.from(v)),
  int: (v: number | bigint) => new Attr(AttributeType.INT, v),
  ints: (v: ArrayLike<number>) => new Attr(AttributeType.INTS, Array.from(v)),
  string: (v: string | Uint8Array) => new Attr(AttributeType.STRING, v),
  strings: (v: (string | Uint8Array)[]) => new Attr(AttributeType.STRINGS, v),
  tensor: (v: TensorProto) => new Attr(AttributeType.TENSOR, v),
  tensors: (v: TensorProto[]) => new Attr(AttributeType.TENSORS, v),
  graph: (v: GraphProto | GraphBuilder) => new Attr(AttributeType.GRAPH, v),
  graphs: (v: (GraphProto | GraphBuilder)[]) => new Attr(AttributeType.GRAPHS, v),
  sparseTensor: (v: SparseTensorProto) => new Attr(AttributeType.SPARSE_TENSOR, v),
  sparseTensors: (v: SparseTensorProto[]) => new Attr(AttributeType.SPARSE_TENSORS, v),
  typeProto: (v: TypeProto) => new Attr(AttributeType.TYPE_PROTO, v),
  typeProtos: (v: TypeProto[]) => new Attr(AttributeType.TYPE_PROTOS, v),
};

/**
 * What an attribute may be given as. Untyped values are inferred: an integer number or bigint
 * is INT, another number FLOAT, a string STRING, a number array INTS when all are integers
 * (else FLOATS), a string array STRINGS, an object with `data_type` TENSOR, with `node` GRAPH.
 * Use `attr.float(1)` / `attr.floats([1, 2])` where an integral value must be a float.
 */
export type AttrValue =
  | Attr
  | number
  | bigint
  | string
  | Uint8Array
  | readonly number[]
  | readonly string[]
  | TensorProto
  | GraphProto
  | GraphBuilder;

export interface NodeOptions {
  attrs?: Record<string, AttrValue | undefined>;
  /** Node name (made unique if taken); default `<OpType>_<k>`. */
  name?: string;
  /** Output names, or how many outputs to create (default 1). */
  outputs?: number | string[];
  domain?: string;
  docString?: string;
}

/** A tensor whose bytes are produced on demand, chunk by chunk (little-endian raw data). */
export interface LazyTensorSource {
  byteLength: number;
  chunks(): Iterable<Uint8Array>;
}

export interface BuilderOptions {
  /** Opset of the default domain (default 18). */
  opset?: number;
  /** Opsets of other domains, e.g. { 'com.microsoft': 1 }. */
  domains?: Record<string, number>;
  /** IR version (default: the lowest one that carries `opset`). */
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
}

export interface SaveOptions {
  /** Put tensors of at least `sizeThreshold` bytes in this file (relative to the model's folder). */
  externalDataFile?: string;
  /** Smallest tensor (bytes) that goes to external data; default 1024. */
  sizeThreshold?: number;
  /** Offsets in the external-data file are multiples of this (default 64). */
  align?: number;
}

export interface SaveResult {
  model: ModelProto;
  modelBytes: number;
  externalBytes: number;
  externalTensors: number;
}

interface InitializerEntry {
  proto: TensorProto;
  /** Set for lazy initializers: proto then has no data yet. */
  lazy?: LazyTensorSource;
}

/** Lowest IR version that a given default-domain opset needs (as onnx.helper maps them). */
export function irVersionForOpset(opset: number): number {
  if (opset <= 8) return 4;
  if (opset <= 10) return 5;
  if (opset <= 11) return 6;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}

export function makeTypeProto(dtype: number, shape?: readonly BuilderDim[] | null): TypeProto {
  const tensor_type: NonNullable<TypeProto['tensor_type']> = { elem_type: dtype };
  if (shape) {
    tensor_type.shape = {
      dim: shape.map((d): TensorShapeDimension => {
        if (typeof d === 'number') return { dim_value: d };
        if (typeof d === 'string') return { dim_param: d };
        return {};
      }),
    };
  }
  return { tensor_type };
}

export function makeValueInfo(name: string, dtype: number, shape?: readonly BuilderDim[] | null): ValueInfoProto {
  return { name, type: makeTypeProto(dtype, shape) };
}

const utf8 = new TextEncoder();
const bytesOf = (s: string | Uint8Array): Uint8Array => (typeof s === 'string' ? utf8.encode(s) : s);

function isGraphLike(v: object): v is GraphProto | GraphBuilder {
  return v instanceof GraphBuilder || 'node' in v;
}

function graphProtoOf(v: GraphProto | GraphBuilder): GraphProto {
  return v instanceof GraphBuilder ? v.toGraphProto() : v;
}

/** One AttributeProto from a name and a (possibly untyped) value. */
export function makeAttribute(name: string, value: AttrValue): AttributeProto {
  const a: AttributeProto = { name };
  let type: number;
  let v: unknown;
  if (value instanceof Attr) {
    type = value.type;
    v = value.value;
  } else if (typeof value === 'number') {
    type = Number.isInteger(value) ? AttributeType.INT : AttributeType.FLOAT;
    v = value;
  } else if (typeof value === 'bigint') {
    type = AttributeType.INT;
    v = value;
  } else if (typeof value === 'string' || value instanceof Uint8Array) {
    type = AttributeType.STRING;
    v = value;
  } else if (Array.isArray(value)) {
    if (value.length === 0) throw new Error(`attribute '${name}': an empty list needs attr.ints/floats/strings`);
    if (value.every((x) => typeof x === 'string')) type = AttributeType.STRINGS;
    else if (value.every((x) => typeof x === 'number' && Number.isInteger(x))) type = AttributeType.INTS;
    else if (value.every((x) => typeof x === 'number')) type = AttributeType.FLOATS;
    else throw new Error(`attribute '${name}': mixed list`);
    v = value;
  } else if (typeof value === 'object' && value !== null && isGraphLike(value)) {
    type = AttributeType.GRAPH;
    v = value;
  } else if (typeof value === 'object' && value !== null && 'data_type' in value) {
    type = AttributeType.TENSOR;
    v = value;
  } else {
    throw new Error(`attribute '${name}': cannot infer the type of ${String(value)}`);
  }
  a.type = type;
  switch (type) {
    case AttributeType.FLOAT:
      a.f = v as number;
      break;
    case AttributeType.INT:
      a.i = intValue(name, v as number | bigint);
      break;
    case AttributeType.STRING:
      a.s = bytesOf(v as string | Uint8Array);
      break;
    case AttributeType.TENSOR:
      a.t = v as TensorProto;
      break;
    case AttributeType.GRAPH:
      a.g = graphProtoOf(v as GraphProto | GraphBuilder);
      break;
    case AttributeType.FLOATS:
      a.floats = [...(v as number[])];
      break;
    case AttributeType.INTS:
      a.ints = (v as (number | bigint)[]).map((x) => intValue(name, x));
      break;
    case AttributeType.STRINGS:
      a.strings = (v as (string | Uint8Array)[]).map(bytesOf);
      break;
    case AttributeType.TENSORS:
      a.tensors = v as TensorProto[];
      break;
    case AttributeType.GRAPHS:
      a.graphs = (v as (GraphProto | GraphBuilder)[]).map(graphProtoOf);
      break;
    case AttributeType.SPARSE_TENSOR:
      a.sparse_tensor = v as SparseTensorProto;
      break;
    case AttributeType.SPARSE_TENSORS:
      a.sparse_tensors = v as SparseTensorProto[];
      break;
    case AttributeType.TYPE_PROTO:
      a.tp = v as TypeProto;
      break;
    case AttributeType.TYPE_PROTOS:
      a.type_protos = v as TypeProto[];
      break;
    default:
      throw new Error(`attribute '${name}': unknown attribute type ${type}`);
  }
  return a;
}

function intValue(name: string, v: number | bigint): I64 {
  // protobufjs takes int64 as number (exact up to 2^53) or Long; keep to safe integers here.
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (!Number.isSafeInteger(n)) {
    if (typeof v === 'bigint' && (v === 9223372036854775807n || v === -9223372036854775808n)) {
      // INT64_MAX / INT64_MIN appear in Slice ends: exact as a Long.
      return Long.fromString(v.toString());
    }
    throw new Error(`attribute '${name}': ${String(v)} is not a safe integer`);
  }
  return n;
}

/** Raw little-endian bytes for values of a numeric type. */
function rawBytesFor(name: string, dtype: number, count: number, values: ArrayLike<number>): Uint8Array {
  if (values.length !== count) throw new Error(`initializer '${name}': ${values.length} values for ${count} elements`);
  switch (dtype) {
    case DataType.FLOAT:
      return new Uint8Array(Float32Array.from(values).buffer);
    case DataType.DOUBLE:
      return new Uint8Array(Float64Array.from(values).buffer);
    case DataType.FLOAT16:
      return new Uint8Array(Uint16Array.from(values, float32ToFloat16Bits).buffer);
    case DataType.BFLOAT16:
      return new Uint8Array(Uint16Array.from(values, float32ToBfloat16Bits).buffer);
    case DataType.INT8:
      return new Uint8Array(Int8Array.from(values).buffer);
    case DataType.UINT8:
    case DataType.BOOL:
      return Uint8Array.from(values);
    case DataType.INT16:
      return new Uint8Array(Int16Array.from(values).buffer);
    case DataType.UINT16:
      return new Uint8Array(Uint16Array.from(values).buffer);
    case DataType.INT32:
      return new Uint8Array(Int32Array.from(values).buffer);
    case DataType.UINT32:
      return new Uint8Array(Uint32Array.from(values).buffer);
    case DataType.INT64:
      return new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v)))).buffer);
    case DataType.UINT64:
      return new Uint8Array(BigUint64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v)))).buffer);
    default:
      throw new Error(`initializer '${name}': give ${dtypeName(dtype)} values as raw bytes (initializerBytes)`);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of a number, rounded to nearest even (overflow → ±inf). */
export function float32ToFloat16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    man |= 0x800000;
    const shift = 14 - e;
    let h = man >>> shift;
    const rem = man & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (man >>> 13);
  const rem = man & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** bfloat16 bits of a number, rounded to nearest even. */
export function float32ToBfloat16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) & 0xffff) | 0x40;
  const r = b + 0x7fff + ((b >>> 16) & 1);
  return (r >>> 16) & 0xffff;
}

/**
 * A lazy float32 source: `fill(out, start)` writes elements [start, start + out.length) into
 * `out`; it is called chunk by chunk, in order, when the tensor is written.
 */
export function lazyFloat32(
  count: number,
  fill: (out: Float32Array, start: number) => void,
  chunkElements = 1 << 20,
): LazyTensorSource {
  return {
    byteLength: count * 4,
    *chunks() {
      const buf = new Float32Array(Math.max(1, Math.min(chunkElements, count)));
      for (let start = 0; start < count; start += buf.length) {
        const n = Math.min(buf.length, count - start);
        const view = n === buf.length ? buf : buf.subarray(0, n);
        fill(view, start);
        yield new Uint8Array(view.buffer, view.byteOffset, n * 4);
      }
    },
  };
}

export class GraphBuilder {
  readonly name: string;
  readonly opset: number;
  private readonly options: BuilderOptions;
  private readonly nodes: NodeProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly valueInfos: ValueInfoProto[] = [];
  private readonly inits: InitializerEntry[] = [];
  /** Every value name in use (inputs, initializers, node outputs). */
  private readonly values = new Set<string>();
  private readonly nodeNames = new Set<string>();
  private readonly opCounters = new Map<string, number>();
  private prefixes: string[] = [];
  private readonly parent: GraphBuilder | null;

  constructor(name: string, options: BuilderOptions = {}, parent: GraphBuilder | null = null) {
    this.name = name;
    this.options = options;
    this.opset = options.opset ?? 18;
    this.parent = parent;
  }

  /** A builder for a subgraph (If branch, Loop body) that can see this graph's values. */
  subgraph(name: string): GraphBuilder {
    return new GraphBuilder(name, this.options, this);
  }

  /** Run `fn` with names prefixed by `prefix/` (like exporters' module scopes). */
  scope<T>(prefix: string, fn: () => T): T {
    this.prefixes.push(prefix);
    try {
      return fn();
    } finally {
      this.prefixes.pop();
    }
  }

  private scoped(base: string): string {
    return this.prefixes.length ? `${this.prefixes.join('/')}/${base}` : base;
  }

  private taken(name: string): boolean {
    for (let g: GraphBuilder | null = this; g; g = g.parent) if (g.values.has(name)) return true;
    return false;
  }

  /** A value name not used yet, `base` itself when free. */
  fresh(base: string): string {
    if (!this.taken(base)) return base;
    for (let k = 1; ; k++) {
      const candidate = `${base}_${k}`;
      if (!this.taken(candidate)) return candidate;
    }
  }

  private claim(name: string, what: string): string {
    if (!name) throw new Error(`${what}: empty name`);
    if (this.taken(name)) throw new Error(`${what}: name '${name}' is already used`);
    this.values.add(name);
    return name;
  }

  input(name: string, dtype: number, shape?: readonly BuilderDim[] | null): string {
    this.claim(name, 'input');
    this.inputs.push(makeValueInfo(name, dtype, shape));
    return name;
  }

  /** Declare `name` a graph output (it must be a value of this graph or its scopes). */
  output(name: string, dtype: number, shape?: readonly BuilderDim[] | null): string {
    if (!this.taken(name)) throw new Error(`output: no value named '${name}'`);
    this.outputs.push(makeValueInfo(name, dtype, shape));
    return name;
  }

  /** Record the type of an intermediate value (graph.value_info). */
  valueInfo(name: string, dtype: number, shape?: readonly BuilderDim[] | null): void {
    this.valueInfos.push(makeValueInfo(name, dtype, shape));
  }

  /** A numeric initializer from values (float32 unless `dtype` says otherwise). */
  initializer(name: string, dims: readonly number[], values: ArrayLike<number>, dtype: number = DataType.FLOAT): string {
    const count = dims.reduce((a, b) => a * b, 1);
    const raw = rawBytesFor(name, dtype, count, values);
    return this.addInit({ proto: { name: this.claim(name, 'initializer'), data_type: dtype, dims: [...dims], raw_data: raw } });
  }

  /** An initializer from its raw little-endian bytes (any fixed-width type, packed sub-byte ones too). */
  initializerBytes(name: string, dtype: number, dims: readonly number[], raw: Uint8Array): string {
    const count = dims.reduce((a, b) => a * b, 1);
    const want = byteLength(dtype, count);
    if (dtypeBits(dtype) === 0 || raw.length !== want) {
      throw new Error(`initializer '${name}': ${raw.length} bytes, ${dtypeName(dtype)}${JSON.stringify(dims)} needs ${want}`);
    }
    return this.addInit({ proto: { name: this.claim(name, 'initializer'), data_type: dtype, dims: [...dims], raw_data: raw } });
  }

  /** An initializer given as a ready TensorProto (its name is claimed as is). */
  initializerProto(proto: TensorProto): string {
    this.claim(proto.name ?? '', 'initializer');
    return this.addInit({ proto });
  }

  /** An initializer whose bytes are produced only when the model is written (see `lazyFloat32`). */
  lazyInitializer(name: string, dtype: number, dims: readonly number[], source: LazyTensorSource): string {
    const count = dims.reduce((a, b) => a * b, 1);
    const want = byteLength(dtype, count);
    if (source.byteLength !== want) throw new Error(`initializer '${name}': source has ${source.byteLength} bytes, shape needs ${want}`);
    return this.addInit({ proto: { name: this.claim(name, 'initializer'), data_type: dtype, dims: [...dims] }, lazy: source });
  }

  private addInit(e: InitializerEntry): string {
    this.inits.push(e);
    return e.proto.name!;
  }

  /**
   * A constant with a generated name: an initializer (as the dynamo exporter writes them) or,
   * with `asNode`, a Constant node (as the TorchScript exporter does).
   */
  constant(dtype: number, dims: readonly number[], values: ArrayLike<number>, opts: { name?: string; asNode?: boolean } = {}): string {
    const base = this.scoped(opts.name ?? 'const');
    if (!opts.asNode) return this.initializer(this.fresh(base), dims, values, dtype);
    const count = dims.reduce((a, b) => a * b, 1);
    const out = this.fresh(base);
    const t: TensorProto = { name: out, data_type: dtype, dims: [...dims], raw_data: rawBytesFor(out, dtype, count, values) };
    return this.node('Constant', [], { attrs: { value: attr.tensor(t) }, outputs: [out] });
  }

  /** int64 1-D constant (shapes, axes, Slice bounds): the commonest constant in exported graphs. */
  ints(values: readonly number[], name?: string): string {
    return this.constant(DataType.INT64, [values.length], values, { name: name ?? 'ints' });
  }

  /** float32 scalar constant. */
  scalar(value: number, name?: string, dtype: number = DataType.FLOAT): string {
    return this.constant(dtype, [], [value], { name: name ?? 'scalar' });
  }

  /** Add a node; returns its first output's name. */
  node(opType: string, inputs: readonly string[], opts: NodeOptions = {}): string {
    return this.nodeMulti(opType, inputs, opts)[0]!;
  }

  /** Add a node; returns all its output names. */
  nodeMulti(opType: string, inputs: readonly string[], opts: NodeOptions = {}): string[] {
    for (const i of inputs) {
      if (i !== '' && !this.taken(i)) throw new Error(`${opType}: input '${i}' is not defined yet`);
    }
    const k = (this.opCounters.get(opType) ?? 0) + 1;
    this.opCounters.set(opType, k);
    let nodeName = this.scoped(opts.name ?? `${opType}_${k}`);
    if (this.nodeNames.has(nodeName)) {
      let j = 1;
      while (this.nodeNames.has(`${nodeName}_${j}`)) j++;
      nodeName = `${nodeName}_${j}`;
    }
    this.nodeNames.add(nodeName);
    const outSpec = opts.outputs ?? 1;
    const outputs =
      typeof outSpec === 'number'
        ? Array.from({ length: outSpec }, (_, i) => this.claim(this.fresh(`${nodeName}_output_${i}`), opType))
        : outSpec.map((o) => (o === '' ? '' : this.claim(o, opType)));
    const proto: NodeProto = { name: nodeName, op_type: opType, input: [...inputs], output: outputs };
    if (opts.domain) proto.domain = opts.domain;
    if (opts.docString) proto.doc_string = opts.docString;
    const attrs = Object.entries(opts.attrs ?? {}).filter((e): e is [string, AttrValue] => e[1] !== undefined);
    if (attrs.length) proto.attribute = attrs.map(([n, v]) => makeAttribute(n, v));
    this.nodes.push(proto);
    return outputs;
  }

  /** Escape hatch: append a hand-made node (its outputs are claimed). */
  rawNode(proto: NodeProto): void {
    for (const o of proto.output ?? []) if (o) this.claim(o, proto.op_type ?? 'node');
    this.nodes.push(proto);
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  private graphProto(initializer: TensorProto[]): GraphProto {
    const g: GraphProto = { name: this.name, node: [...this.nodes], input: [...this.inputs], output: [...this.outputs] };
    if (initializer.length) g.initializer = initializer;
    if (this.valueInfos.length) g.value_info = [...this.valueInfos];
    return g;
  }

  /** The graph with every initializer inline (lazy ones are materialised). */
  toGraphProto(): GraphProto {
    return this.graphProto(this.inits.map(materialise));
  }

  private modelProto(graph: GraphProto): ModelProto {
    const opset_import: OperatorSetIdProto[] = [{ domain: '', version: this.opset }];
    for (const [domain, version] of Object.entries(this.options.domains ?? {})) opset_import.push({ domain, version });
    const m: ModelProto = {
      ir_version: this.options.irVersion ?? irVersionForOpset(this.opset),
      opset_import,
      producer_name: this.options.producerName ?? 'unitscale-builder',
      producer_version: this.options.producerVersion ?? '1',
      graph,
    };
    if (this.options.docString) m.doc_string = this.options.docString;
    return m;
  }

  /** The whole model in memory, every tensor inline. */
  toModelProto(): ModelProto {
    return this.modelProto(this.toGraphProto());
  }

  toBytes(): Uint8Array {
    return encodeModelProto(this.toModelProto());
  }

  /**
   * Write the model to `file` (atomically). With `externalDataFile`, each initializer of at
   * least `sizeThreshold` bytes is streamed into that file (next to the model, written through
   * a temporary name and renamed when complete) and referenced by location/offset/length.
   */
  save(file: string, opts: SaveOptions = {}): SaveResult {
    const dir = path.dirname(path.resolve(file));
    mkdirSync(dir, { recursive: true });
    if (!opts.externalDataFile) {
      const model = this.toModelProto();
      const bytes = encodeModelProto(model);
      writeFileAtomic(file, bytes);
      return { model, modelBytes: bytes.length, externalBytes: 0, externalTensors: 0 };
    }
    const location = opts.externalDataFile;
    if (path.isAbsolute(location) || location.split(/[\\/]+/).includes('..')) {
      throw new Error(`externalDataFile '${location}' must be a relative path inside the model's folder`);
    }
    const threshold = opts.sizeThreshold ?? 1024;
    const align = Math.max(1, opts.align ?? 64);
    const dataPath = path.join(dir, location);
    mkdirSync(path.dirname(dataPath), { recursive: true });
    const tmp = `${dataPath}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w');
    let offset = 0;
    let externalTensors = 0;
    const initializer: TensorProto[] = [];
    const pad = new Uint8Array(align);
    try {
      const writeAll = (buf: Uint8Array) => {
        let done = 0;
        while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
        offset += buf.length;
      };
      for (const e of this.inits) {
        const size = e.lazy ? e.lazy.byteLength : (e.proto.raw_data?.length ?? 0);
        const movable = e.lazy !== undefined || (e.proto.raw_data !== undefined && e.proto.data_location !== 1);
        if (!movable || size < threshold) {
          initializer.push(materialise(e));
          continue;
        }
        if (offset % align) writeAll(pad.subarray(0, align - (offset % align)));
        const start = offset;
        if (e.lazy) for (const c of e.lazy.chunks()) writeAll(c);
        else writeAll(e.proto.raw_data!);
        if (offset - start !== size) throw new Error(`initializer '${e.proto.name}': wrote ${offset - start} bytes, expected ${size}`);
        const { raw_data: _dropped, ...rest } = e.proto;
        initializer.push({
          ...rest,
          data_location: 1,
          external_data: [
            { key: 'location', value: location.split(path.sep).join('/') },
            { key: 'offset', value: String(start) },
            { key: 'length', value: String(size) },
          ],
        });
        externalTensors++;
      }
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, dataPath);
    } catch (err) {
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
      try {
        unlinkSync(tmp);
      } catch {
        /* gone */
      }
      throw err;
    }
    const model = this.modelProto(this.graphProto(initializer));
    const bytes = encodeModelProto(model);
    writeFileAtomic(file, bytes);
    return { model, modelBytes: bytes.length, externalBytes: offset, externalTensors };
  }
}

function materialise(e: InitializerEntry): TensorProto {
  if (!e.lazy) return e.proto;
  const raw = new Uint8Array(e.lazy.byteLength);
  let off = 0;
  for (const c of e.lazy.chunks()) {
    raw.set(c, off);
    off += c.length;
  }
  if (off !== raw.length) throw new Error(`initializer '${e.proto.name}': source gave ${off} bytes, expected ${raw.length}`);
  return { ...e.proto, raw_data: raw };
}

export { makeTensorProto };
