/**
 * The typed view of a decoded model, mirroring what users see (as Netron does): Model →
 * Graph → Node and Value. The protobuf objects stay the source of truth (so saving is
 * lossless); these classes only index them: producers, consumers, initializers, constants,
 * topological order and subgraphs.
 */
import { ModelError } from '../errors.js';
import { clean, q } from './quote.js';
import { Attributes } from './attributes.js';
import { DataType } from './dtype.js';
import { toNumber } from './proto.js';
import type { FunctionProto, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, ValueInfoProto } from './proto-types.js';
import { TensorData } from './tensor.js';

/** A dimension: a fixed size, a named symbol ("batch"), or unknown (null). */
export type Dim = number | string | null;

export interface TensorType {
  dtype: number;
  /** null when even the rank is unknown. */
  shape: Dim[] | null;
}

export function typeFromProto(t: TypeProto | undefined): TensorType | null {
  const tt = t?.tensor_type ?? t?.sparse_tensor_type;
  if (!tt) return null;
  const shape = tt.shape
    ? (tt.shape.dim ?? []).map((d): Dim => {
        // Decoded messages carry unset fields' defaults on their prototype (dim_value reads 0
        // when the dim is symbolic or unknown): only an own, non-null field is really set.
        if (Object.hasOwn(d, 'dim_value') && d.dim_value !== undefined && d.dim_value !== null) return toNumber(d.dim_value);
        if (d.dim_param) return d.dim_param;
        return null;
      })
    : null;
  return { dtype: tt.elem_type ?? DataType.UNDEFINED, shape };
}

export class Node {
  readonly attrs: Attributes;
  /** Subgraphs of If/Loop/Scan, indexed lazily with this graph as their outer scope. */
  readonly subgraphs: { attribute: string; graph: Graph }[];

  constructor(
    readonly proto: NodeProto,
    readonly index: number,
    readonly graph: Graph,
  ) {
    this.attrs = new Attributes(proto.attribute);
    this.subgraphs = this.attrs.graphs().map(({ name, graph }) => ({ attribute: name, graph: new Graph(graph, this.graph.model, this.graph, this) }));
  }

  get name(): string {
    return this.proto.name || `${this.opType}_${this.index}`;
  }
  get opType(): string {
    return this.proto.op_type ?? '';
  }
  get domain(): string {
    const d = this.proto.domain ?? '';
    return d === 'ai.onnx' ? '' : d;
  }
  /** Input names; '' marks an omitted optional input. */
  get inputs(): string[] {
    return this.proto.input ?? [];
  }
  get outputs(): string[] {
    return this.proto.output ?? [];
  }

  /** Names this node reads from enclosing scopes through its subgraphs. */
  implicitInputs(): string[] {
    const out = new Set<string>();
    for (const { graph } of this.subgraphs) for (const n of graph.outerReferences()) out.add(n);
    return [...out];
  }
}

export class Graph {
  readonly nodes: Node[];
  readonly initializers = new Map<string, TensorData>();
  /** value name → producing node (in this graph only). */
  readonly producer = new Map<string, Node>();
  /** value name → consuming nodes (in this graph, including via subgraph captures). */
  readonly consumers = new Map<string, Node[]>();
  readonly declaredTypes = new Map<string, TensorType>();
  private readonly graphInputNames: string[];
  private topo: Node[] | null = null;
  private constantCache = new Map<string, TensorData | null>();

  constructor(
    readonly proto: GraphProto,
    readonly model: Model,
    readonly parent: Graph | null = null,
    readonly owner: Node | null = null,
  ) {
    for (const t of proto.initializer ?? []) {
      const name = t.name ?? '';
      this.initializers.set(name, new TensorData(t, model.dir));
    }
    for (const vi of [...(proto.input ?? []), ...(proto.output ?? []), ...(proto.value_info ?? [])]) {
      const t = typeFromProto(vi.type);
      if (vi.name && t) this.declaredTypes.set(vi.name, t);
    }
    for (const [name, t] of this.initializers) {
      if (!this.declaredTypes.has(name)) this.declaredTypes.set(name, { dtype: t.dtype, shape: t.dims });
    }
    this.graphInputNames = (proto.input ?? []).map((v) => v.name ?? '');
    this.nodes = (proto.node ?? []).map((n, i) => new Node(n, i, this));
    for (const node of this.nodes) {
      for (const o of node.outputs) {
        if (!o) continue;
        if (this.producer.has(o)) throw new ModelError(`value ${q(o)} is produced twice (by ${q(this.producer.get(o)!.name)} and ${q(node.name)})`);
        this.producer.set(o, node);
      }
    }
    for (const node of this.nodes) {
      for (const i of [...node.inputs, ...node.implicitInputs()]) {
        if (!i) continue;
        let list = this.consumers.get(i);
        if (!list) this.consumers.set(i, (list = []));
        if (!list.includes(node)) list.push(node);
      }
    }
  }

  get name(): string {
    return this.proto.name ?? '';
  }

  /** Graph inputs that are real inputs (IR < 4 lists initializers among inputs too). */
  get inputs(): ValueInfoProto[] {
    return (this.proto.input ?? []).filter((v) => !this.initializers.has(v.name ?? ''));
  }
  get outputs(): ValueInfoProto[] {
    return this.proto.output ?? [];
  }
  isGraphInput(name: string): boolean {
    return this.graphInputNames.includes(name) && !this.initializers.has(name);
  }
  isGraphOutput(name: string): boolean {
    return (this.proto.output ?? []).some((o) => o.name === name);
  }

  /** Is `name` defined in this graph (input, initializer, or node output)? */
  defines(name: string): boolean {
    return this.graphInputNames.includes(name) || this.initializers.has(name) || this.producer.has(name);
  }

  /** Names used in this graph (or nested subgraphs) but defined in an enclosing scope. */
  outerReferences(): string[] {
    const out = new Set<string>();
    for (const node of this.nodes) {
      for (const i of [...node.inputs, ...node.implicitInputs()]) if (i && !this.defines(i)) out.add(i);
    }
    for (const o of this.outputs) if (o.name && !this.defines(o.name)) out.add(o.name);
    return [...out];
  }

  /** Nodes in an order where every input is produced before use; throws on a cycle. */
  topologicalOrder(): Node[] {
    if (this.topo) return this.topo;
    const pending = new Map<Node, number>();
    const ready: Node[] = [];
    for (const node of this.nodes) {
      let deps = 0;
      const seen = new Set<string>();
      for (const i of [...node.inputs, ...node.implicitInputs()]) {
        if (!i || seen.has(i)) continue;
        seen.add(i);
        if (this.producer.has(i)) deps++;
        else if (!this.defines(i) && !this.resolvableOutside(i)) {
          throw new ModelError(`node ${q(node.name)} (${clean(node.opType)}) uses ${q(i)}, which nothing produces`);
        }
      }
      pending.set(node, deps);
      if (deps === 0) ready.push(node);
    }
    const order: Node[] = [];
    // Keep file order among ready nodes: reports then read like the model.
    ready.sort((a, b) => a.index - b.index);
    while (ready.length > 0) {
      const node = ready.shift()!;
      order.push(node);
      const released: Node[] = [];
      for (const o of new Set(node.outputs)) {
        if (!o) continue;
        for (const c of this.consumers.get(o) ?? []) {
          const left = pending.get(c)! - 1;
          pending.set(c, left);
          if (left === 0) released.push(c);
        }
      }
      for (const r of released) insertByIndex(ready, r);
    }
    if (order.length !== this.nodes.length) {
      const stuck = this.nodes.find((n) => !order.includes(n))!;
      throw new ModelError(`graph ${q(this.name || 'main')} has a cycle through node ${q(stuck.name)} (${clean(stuck.opType)})`);
    }
    this.topo = order;
    return order;
  }

  private resolvableOutside(name: string): boolean {
    for (let g = this.parent; g; g = g.parent) if (g.defines(name)) return true;
    return false;
  }

  /** The node producing `name` in this graph or an enclosing one. */
  producerOf(name: string): Node | undefined {
    for (let g: Graph | null = this; g; g = g.parent) {
      const p = g.producer.get(name);
      if (p) return p;
      if (g.defines(name)) return undefined;
    }
    return undefined;
  }

  /**
   * The tensor behind `name` when it is a compile-time constant: an initializer or the output
   * of a Constant node, here or in an enclosing scope.
   */
  constant(name: string): TensorData | null {
    if (this.constantCache.has(name)) return this.constantCache.get(name)!;
    let found: TensorData | null = null;
    for (let g: Graph | null = this; g; g = g.parent) {
      const init = g.initializers.get(name);
      if (init) {
        // An initializer also listed as a graph input (required before IR 4, optional after)
        // is a default a caller may override; runtimes and exporters treat it as the weight,
        // and so does unitscale.
        found = init;
        break;
      }
      const p = g.producer.get(name);
      if (p) {
        found = p.opType === 'Constant' && p.domain === '' ? constantNodeTensor(p, g.model.dir) : null;
        break;
      }
      if (g.defines(name)) break;
    }
    this.constantCache.set(name, found);
    return found;
  }

  /** This graph and all nested subgraphs, depth first. */
  *allGraphs(): Generator<Graph> {
    yield this;
    for (const n of this.nodes) for (const s of n.subgraphs) yield* s.graph.allGraphs();
  }
}

function insertByIndex(list: Node[], node: Node): void {
  let i = list.length;
  while (i > 0 && list[i - 1]!.index > node.index) i--;
  list.splice(i, 0, node);
}

/** The value of a Constant node, whichever of its attribute forms it uses. */
export function constantNodeTensor(node: Node, modelDir: string | null): TensorData | null {
  const a = node.attrs;
  const out = node.outputs[0] ?? '';
  let proto: TensorProto | undefined = a.tensor('value');
  if (proto) return new TensorData({ ...proto, name: proto.name || out }, modelDir);
  const f = a.float('value_float');
  if (f !== undefined) proto = { name: out, data_type: DataType.FLOAT, dims: [], float_data: [f] };
  const fs = a.floats('value_floats');
  if (!proto && fs) proto = { name: out, data_type: DataType.FLOAT, dims: [fs.length], float_data: fs };
  const i = a.int('value_int');
  if (!proto && i !== undefined) proto = { name: out, data_type: DataType.INT64, dims: [], int64_data: [i] };
  const is = a.ints('value_ints');
  if (!proto && is) proto = { name: out, data_type: DataType.INT64, dims: [is.length], int64_data: is };
  return proto ? new TensorData(proto, modelDir) : null;
}

export class Model {
  readonly graph: Graph;
  readonly opsets = new Map<string, number>();
  readonly functions: FunctionProto[];

  constructor(
    readonly proto: ModelProto,
    /** Path the model was read from (null when built in memory). */
    readonly path: string | null,
    /** Folder external data is resolved against. */
    readonly dir: string | null,
  ) {
    if (!proto.graph) throw new ModelError('the file holds no graph (is it an ONNX model?)');
    for (const o of proto.opset_import ?? []) {
      const d = o.domain ?? '';
      this.opsets.set(d === 'ai.onnx' ? '' : d, toNumber(o.version));
    }
    if (!this.opsets.has('') && (proto.opset_import ?? []).length === 0) this.opsets.set('', 1);
    this.functions = proto.functions ?? [];
    this.graph = new Graph(proto.graph, this);
  }

  get irVersion(): number {
    return toNumber(this.proto.ir_version);
  }

  /** Opset of the default ONNX domain. */
  get opset(): number {
    return this.opsets.get('') ?? 0;
  }

  findFunction(domain: string, name: string): FunctionProto | undefined {
    return this.functions.find((f) => (f.domain ?? '') === domain && f.name === name);
  }
}
