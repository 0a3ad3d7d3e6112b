/**
 * A small graph editor over a decoded ModelProto: the rewrite passes change the protobuf
 * directly (it stays the source of truth for saving), through the few verbs they need —
 * fresh unique names, constants, node insertion before/after an anchor, input replacement.
 *
 * The editor works on its own copy of the model (an encode/decode round trip), so the
 * caller's Model is never mutated and every node the passes do not touch comes out
 * byte-for-byte as it went in.
 */
import { DataType, dtypeName } from '../onnx/dtype.js';
import { encode, formatForOnnxType } from '../formats/index.js';
import { decodeModelProto, encodeModelProto, toNumber } from '../onnx/proto.js';
import { AttributeType, type AttributeProto, type GraphProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from '../onnx/proto-types.js';

export type AttrValue = number | string | number[] | TensorProto | { float: number } | { floats: number[] };

/** An attribute from a JS value: integers → INT, `{float}` → FLOAT, strings → STRING, arrays → INTS. */
export function makeAttribute(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'number') {
    return Number.isInteger(v) ? { name, type: AttributeType.INT, i: v } : { name, type: AttributeType.FLOAT, f: v };
  }
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: AttributeType.INTS, ints: v };
  if ('float' in v && typeof v.float === 'number') return { name, type: AttributeType.FLOAT, f: v.float };
  if ('floats' in v && Array.isArray(v.floats)) return { name, type: AttributeType.FLOATS, floats: v.floats };
  return { name, type: AttributeType.TENSOR, t: v as TensorProto };
}

/** Set (replace or add) an attribute on a node. */
export function setAttribute(node: NodeProto, attr: AttributeProto): void {
  const list = (node.attribute ??= []);
  const i = list.findIndex((a) => a.name === attr.name);
  if (i >= 0) list[i] = attr;
  else list.push(attr);
}

export function removeAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  const list = node.attribute ?? [];
  const i = list.findIndex((a) => a.name === name);
  if (i < 0) return undefined;
  return list.splice(i, 1)[0];
}

export function getAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  return (node.attribute ?? []).find((a) => a.name === name);
}

/** Little-endian bytes of `values` in a float or integer ONNX type (float types via the exact quantiser). */
export function encodeValues(dtype: number, values: ArrayLike<number>): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case DataType.FLOAT:
      return new Uint8Array(Float32Array.from(values).buffer);
    case DataType.DOUBLE:
      return new Uint8Array(Float64Array.from(values).buffer);
    case DataType.INT64:
      return new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v)))).buffer);
    case DataType.INT32:
      return new Uint8Array(Int32Array.from(values).buffer);
    case DataType.INT8:
      return new Uint8Array(Int8Array.from(values).buffer);
    case DataType.UINT8:
    case DataType.BOOL:
      return Uint8Array.from(values);
    case DataType.FLOAT16:
    case DataType.BFLOAT16: {
      const f = formatForOnnxType(dtype)!;
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = encode(values[i]!, f, false);
      return new Uint8Array(out.buffer);
    }
    case DataType.FLOAT8E4M3FN:
    case DataType.FLOAT8E4M3FNUZ:
    case DataType.FLOAT8E5M2:
    case DataType.FLOAT8E5M2FNUZ: {
      // Saturating, as QuantizeLinear and Cast (saturate=1) do.
      const f = formatForOnnxType(dtype)!;
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = encode(values[i]!, f, true);
      return out;
    }
    default:
      throw new Error(`cannot encode constants of type ${dtypeName(dtype)}`);
  }
}

export function makeTensor(name: string, dtype: number, dims: number[], values: ArrayLike<number>): TensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (values.length !== count) throw new Error(`makeTensor(${name}): ${values.length} values for shape [${dims}]`);
  return { name, data_type: dtype, dims, raw_data: encodeValues(dtype, values) };
}

/** Every name used anywhere in a graph (values, nodes, initializers), subgraphs included. */
function collectNames(g: GraphProto, into: Set<string>): void {
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.value_info ?? [])]) if (v.name) into.add(v.name);
  for (const t of g.initializer ?? []) if (t.name) into.add(t.name);
  for (const n of g.node ?? []) {
    if (n.name) into.add(n.name);
    for (const s of [...(n.input ?? []), ...(n.output ?? [])]) if (s) into.add(s);
    for (const a of n.attribute ?? []) {
      if (a.g) collectNames(a.g, into);
      for (const sg of a.graphs ?? []) collectNames(sg, into);
    }
  }
}

export class ModelEditor {
  readonly proto: ModelProto;
  readonly graph: GraphProto;
  private readonly names = new Set<string>();
  private readonly scalarCache = new Map<string, string>();
  private consumerIndex: Map<string, NodeProto[]> | null = null;
  /** Values created as exact multiples of existing ones (for their scales): name → (base, factor). */
  readonly derived = new Map<string, { from: string; factor: number }>();
  private producerIndex: Map<string, NodeProto> | null = null;

  constructor(source: ModelProto) {
    // A private deep copy: the caller's model stays as loaded.
    this.proto = decodeModelProto(encodeModelProto(source));
    if (!this.proto.graph) throw new Error('model has no graph');
    this.graph = this.proto.graph;
    this.graph.node ??= [];
    this.graph.initializer ??= [];
    collectNames(this.graph, this.names);
  }

  get irVersion(): number {
    return toNumber(this.proto.ir_version);
  }

  /** Opset of the default domain. */
  get opset(): number {
    const o = (this.proto.opset_import ?? []).find((e) => (e.domain ?? '') === '' || e.domain === 'ai.onnx');
    return o ? toNumber(o.version) : 1;
  }

  setOpset(version: number): void {
    const list = (this.proto.opset_import ??= []);
    const o = list.find((e) => (e.domain ?? '') === '' || e.domain === 'ai.onnx');
    if (o) o.version = version;
    else list.push({ domain: '', version });
  }

  /** A name used nowhere in the model, derived from `base`. */
  fresh(base: string): string {
    const clean = base || 'v';
    let name = clean;
    for (let k = 1; this.names.has(name); k++) name = `${clean}_${k}`;
    this.names.add(name);
    return name;
  }

  /** Mark an existing name as taken (when a pass creates names another way). */
  reserve(name: string): void {
    this.names.add(name);
  }

  initializer(name: string): TensorProto | undefined {
    return this.graph.initializer!.find((t) => t.name === name);
  }

  /**
   * The tensor behind a weight-like value: an initializer, or the `value` of a default-domain
   * Constant node (exporters such as Paddle2ONNX store every weight that way).
   */
  weightTensor(name: string): { tensor: TensorProto; node: NodeProto | null } | null {
    const init = this.initializer(name);
    if (init) {
      if (this.irVersion >= 4 && (this.graph.input ?? []).some((v) => v.name === name)) return null; // overridable input
      return { tensor: init, node: null };
    }
    const p = this.producer(name);
    if (p && (p.domain ?? '') === '' && p.op_type === 'Constant') {
      const a = (p.attribute ?? []).find((x) => x.name === 'value');
      if (a?.t) return { tensor: a.t, node: p };
    }
    return null;
  }

  /** Add an initializer under a fresh name derived from t.name; IR < 4 lists it among the graph inputs too. */
  addInitializer(t: TensorProto): string {
    const name = this.fresh(t.name ?? 'const');
    const tensor = { ...t, name };
    this.graph.initializer!.push(tensor);
    if (this.irVersion < 4) {
      const vi: ValueInfoProto = {
        name,
        type: { tensor_type: { elem_type: t.data_type ?? DataType.FLOAT, shape: { dim: (t.dims ?? []).map((d) => ({ dim_value: toNumber(d) })) } } },
      };
      (this.graph.input ??= []).push(vi);
    }
    return name;
  }

  removeInitializer(name: string): void {
    const list = this.graph.initializer!;
    const i = list.findIndex((t) => t.name === name);
    if (i >= 0) list.splice(i, 1);
    const inputs = this.graph.input ?? [];
    const j = inputs.findIndex((v) => v.name === name);
    if (j >= 0) inputs.splice(j, 1);
  }

  /** A shared scalar constant of the given type (one initializer per distinct value and type). */
  scalar(value: number, dtype: number, base = 'us_const'): string {
    const key = `${dtype}:${Object.is(value, -0) ? '-0' : value}`;
    const hit = this.scalarCache.get(key);
    if (hit) return hit;
    const name = this.addInitializer(makeTensor(base, dtype, [], [value]));
    this.scalarCache.set(key, name);
    return name;
  }

  /** A node proto; its name is made unique. */
  node(opType: string, inputs: string[], outputs: string[], nameBase: string, attrs: AttributeProto[] = [], domain = ''): NodeProto {
    const n: NodeProto = { op_type: opType, input: inputs, output: outputs, name: this.fresh(nameBase) };
    if (attrs.length > 0) n.attribute = attrs;
    if (domain) n.domain = domain;
    return n;
  }

  indexOf(node: NodeProto): number {
    const i = this.graph.node!.indexOf(node);
    if (i < 0) throw new Error(`node '${node.name}' is not in the graph`);
    return i;
  }

  insertBefore(anchor: NodeProto, ...nodes: NodeProto[]): void {
    this.graph.node!.splice(this.indexOf(anchor), 0, ...nodes);
    this.invalidate();
  }

  insertAfter(anchor: NodeProto, ...nodes: NodeProto[]): void {
    this.graph.node!.splice(this.indexOf(anchor) + 1, 0, ...nodes);
    this.invalidate();
  }

  /** Insert at the start of the graph (for values that are graph inputs or initializers). */
  insertAtStart(...nodes: NodeProto[]): void {
    this.graph.node!.unshift(...nodes);
    this.invalidate();
  }

  removeNode(node: NodeProto): void {
    this.graph.node!.splice(this.indexOf(node), 1);
    this.invalidate();
  }

  replaceInput(node: NodeProto, index: number, value: string): void {
    node.input![index] = value;
    this.invalidate();
  }

  /**
   * Give a node's output a new internal name and return it; the original name is then free
   * to be produced by a node inserted after (so consumers, value_info and graph outputs that
   * refer to it stay untouched).
   */
  renameOutput(node: NodeProto, index: number, base: string): string {
    const name = this.fresh(base);
    node.output![index] = name;
    this.invalidate();
    return name;
  }

  /** Nodes of the main graph reading `value` (direct inputs only). */
  consumers(value: string): NodeProto[] {
    if (!this.consumerIndex) {
      this.consumerIndex = new Map();
      for (const n of this.graph.node!) {
        for (const i of new Set(n.input ?? [])) {
          if (!i) continue;
          let l = this.consumerIndex.get(i);
          if (!l) this.consumerIndex.set(i, (l = []));
          l.push(n);
        }
        for (const i of subgraphReferences(n)) {
          let l = this.consumerIndex.get(i);
          if (!l) this.consumerIndex.set(i, (l = []));
          if (!l.includes(n)) l.push(n);
        }
      }
    }
    return this.consumerIndex.get(value) ?? [];
  }

  producer(value: string): NodeProto | undefined {
    if (!this.producerIndex) {
      this.producerIndex = new Map();
      for (const n of this.graph.node!) for (const o of n.output ?? []) if (o) this.producerIndex.set(o, n);
    }
    return this.producerIndex.get(value);
  }

  isGraphOutput(value: string): boolean {
    return (this.graph.output ?? []).some((o) => o.name === value);
  }

  isGraphInput(value: string): boolean {
    return (this.graph.input ?? []).some((v) => v.name === value) && !this.initializer(value);
  }

  invalidate(): void {
    this.consumerIndex = null;
    this.producerIndex = null;
  }
}

/** Names a node's subgraphs read from outside (every name they use but do not define). */
export function subgraphReferences(node: NodeProto): string[] {
  const out = new Set<string>();
  for (const a of node.attribute ?? []) {
    for (const g of [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]) for (const n of outerNames(g)) out.add(n);
  }
  return [...out];
}

function outerNames(g: GraphProto): Set<string> {
  const defined = new Set<string>();
  for (const v of g.input ?? []) if (v.name) defined.add(v.name);
  for (const t of g.initializer ?? []) if (t.name) defined.add(t.name);
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o) defined.add(o);
  const used = new Set<string>();
  for (const n of g.node ?? []) {
    for (const i of n.input ?? []) if (i && !defined.has(i)) used.add(i);
    for (const i of subgraphReferences(n)) if (!defined.has(i)) used.add(i);
  }
  for (const o of g.output ?? []) if (o.name && !defined.has(o.name)) used.add(o.name);
  return used;
}
