/**
 * Shape and type inference over a whole model: walks each graph in topological order, applies
 * the op's rule (index.ts) to what is known of its inputs, folds small constant tensors (shape
 * subgraphs) and propagates symbolic dims through shape tensors, then merges each result with
 * the type the model declares (value_info):
 *  - a known (numeric) inferred dim wins; a declared number fills an unknown or symbolic one;
 *  - two different numbers (or ranks, or dtypes) are a mismatch, recorded and not fatal;
 *  - no rule, or a rule that cannot tell: the declared type stands in.
 * Subgraphs (If/Loop/Scan) are inferred with outer values visible, and model-local functions
 * are inferred by inlining their body. Unknown ops are counted, never thrown; only impossible
 * shapes throw (ModelError from the rules).
 */
import { UnitscaleError } from '../../errors.js';
import { DataType, isFloatType } from '../../onnx/dtype.js';
import { type Dim, Graph, type Model, type Node, type TensorType } from '../../onnx/model.js';
import { toNumber } from '../../onnx/proto.js';
import type { TensorData } from '../../onnx/tensor.js';
import type { AttributeProto, FunctionProto, GraphProto, NodeProto } from '../../onnx/proto-types.js';
import { readDeclared, readSequenceType } from './declared.js';
import { lookupRule } from './index.js';
import { type ConstValue, foldLimit, type SequenceType, type ShapeContext } from './types.js';

export interface InferOptions {
  /** Values for symbolic dims (`--dim batch=1`), applied to inputs and declared types alike. */
  dims?: Record<string, number>;
  /** Whole shapes for graph inputs, by input name. */
  inputShapes?: Record<string, number[]>;
  /**
   * Use the model's declared value_info as fallback and merge partner (default true). Off, only
   * the graph inputs' declarations are read: pure inference, to test the rules themselves.
   */
  useDeclared?: boolean;
}

export interface Mismatch {
  value: string;
  declared: TensorType;
  inferred: TensorType;
}

export interface ShapeResult {
  /** Every tensor value's type (graph inputs, initializers, node outputs, subgraph values). */
  types: Map<string, TensorType>;
  /** Values known at analysis time: folded shape arithmetic and the small constants it read. */
  values: Map<string, ConstValue>;
  /** Types of sequence values. */
  sequences: Map<string, SequenceType>;
  /** Op type ("Domain:Op" outside the default domain) → nodes with no shape rule. */
  unsupported: Map<string, number>;
  /** Values whose declared type contradicts the inferred one (concrete dims, rank or dtype). */
  mismatches: Mismatch[];
}

export function inferShapes(model: Model, opts: InferOptions = {}): ShapeResult {
  const w = new Walker(model, opts);
  w.inferGraph(model.graph, null, true);
  return w.result();
}

const isIntLike = (dtype: number) => !isFloatType(dtype) && dtype !== DataType.STRING && dtype !== DataType.UNDEFINED;

class Walker {
  readonly types = new Map<string, TensorType>();
  readonly values = new Map<string, ConstValue>();
  readonly dimValues = new Map<string, Dim[]>();
  readonly sequences = new Map<string, SequenceType>();
  readonly mismatches = new Map<string, Mismatch>();
  private readonly declaredCache = new Map<Graph, Map<string, TensorType>>();
  private readonly useDeclared: boolean;

  constructor(
    readonly model: Model,
    readonly opts: InferOptions,
    readonly unsupported = new Map<string, number>(),
    /** Opsets of a function body, when this walker infers one. */
    readonly opsets: Map<string, number> = model.opsets,
  ) {
    this.useDeclared = opts.useDeclared ?? true;
  }

  result(): ShapeResult {
    return {
      types: this.types,
      values: this.values,
      sequences: this.sequences,
      unsupported: this.unsupported,
      mismatches: [...this.mismatches.values()],
    };
  }

  private declared(graph: Graph): Map<string, TensorType> {
    let d = this.declaredCache.get(graph);
    if (!d) this.declaredCache.set(graph, (d = readDeclared(graph, this.opts.dims)));
    return d;
  }

  /**
   * Infers one graph. `formal` types its inputs (subgraph bodies: from the op's rule); the main
   * graph's inputs take their declarations with the user's overrides. Returns the outputs' types.
   */
  inferGraph(graph: Graph, formal: (TensorType | null)[] | null, main = false): (TensorType | null)[] {
    const declared = this.declared(graph);
    (graph.proto.input ?? []).forEach((vi, i) => {
      const name = vi.name ?? '';
      if (!name) return;
      let t = declared.get(name) ?? null;
      const given = main ? this.opts.inputShapes?.[name] : undefined;
      if (given) t = { dtype: t?.dtype ?? DataType.UNDEFINED, shape: [...given] };
      const init = graph.initializers.get(name);
      if (init && !given) t = { dtype: init.dtype, shape: [...init.dims] };
      const f = formal?.[i] ?? null;
      const merged = f ? this.merge(name, f, t, false) : t;
      if (merged) this.types.set(name, merged);
      // A sequence input (main graph, or a body formal given no tensor type) takes its declaration.
      const seq = !merged ? readSequenceType(vi.type) : null;
      if (seq) this.sequences.set(name, seq);
    });
    const inputNames = new Set((graph.proto.input ?? []).map((vi) => vi.name));
    for (const [name, td] of graph.initializers) {
      if (!inputNames.has(name)) this.types.set(name, { dtype: td.dtype, shape: [...td.dims] });
    }
    for (const node of graph.topologicalOrder()) this.inferNode(node, declared);
    return graph.outputs.map((o) => this.types.get(o.name ?? '') ?? null);
  }

  /** A value known at analysis time: folded, or a small constant (initializer, Constant) read now. */
  private valueOf(name: string, graph: Graph): ConstValue | null {
    if (!name) return null;
    const v = this.values.get(name);
    if (v) return v;
    const t = graph.constant(name) ?? this.legacyInitializer(name, graph);
    if (!t || t.dtype === DataType.STRING || t.count > foldLimit(t.dtype)) return null;
    const c: ConstValue = { dtype: t.dtype, dims: [...t.dims], data: t.toNumbers() };
    this.values.set(name, c);
    return c;
  }

  /**
   * Before IR 4 every initializer had to be listed among the graph inputs, and runtimes treat
   * such initializers as constants (overridable defaults only exist from IR 4 on).
   */
  private legacyInitializer(name: string, graph: Graph): TensorData | null {
    if (this.model.irVersion >= 4) return null;
    for (let g: Graph | null = graph; g; g = g.parent) {
      const t = g.initializers.get(name);
      if (t) return t;
      if (g.defines(name)) return null;
    }
    return null;
  }

  /** A shape-like value (int, rank ≤ 1) known element by element, possibly symbolically. */
  private dimsOf(name: string, graph: Graph): Dim[] | null {
    const d = this.dimValues.get(name);
    if (d) return d;
    const v = this.valueOf(name, graph);
    return v && v.dims.length <= 1 && isIntLike(v.dtype) ? [...v.data] : null;
  }

  private context(node: Node): ShapeContext {
    const graph = node.graph;
    const names = node.inputs;
    // Values and dims are read lazily: decoding a constant costs, and most rules never ask.
    const inputValues = lazyList(names, (n) => this.valueOf(n, graph));
    const inputDims = lazyList(names, (n) => this.dimsOf(n, graph));
    return {
      node,
      opset: this.opsets.get(node.domain) ?? (node.domain === '' ? this.model.opset : 1),
      inputTypes: names.map((n) => (n ? this.types.get(n) ?? null : null)),
      inputValues,
      inputDims,
      inputSequences: names.map((n) => (n ? this.sequences.get(n) ?? null : null)),
      attrs: node.attrs,
      inferSubgraph: (attribute, inputs) => {
        const sub = node.subgraphs.find((s) => s.attribute === attribute)?.graph;
        return sub ? this.inferGraph(sub, inputs) : [];
      },
    };
  }

  private inferNode(node: Node, declared: Map<string, TensorType>): void {
    const ctx = this.context(node);
    let outs: (TensorType | null)[] = [];
    let seqs: (SequenceType | null)[] = [];
    let folded: (ConstValue | null)[] | null = null;
    let dims: (Dim[] | null)[] | null = null;
    const rule = lookupRule(node.domain, node.opType);
    const fn = rule ? undefined : this.model.findFunction(node.proto.domain ?? '', node.opType);
    try {
      if (rule) {
        outs = rule.shape(ctx);
        if (rule.sequences) seqs = rule.sequences(ctx);
        if (rule.fold) folded = rule.fold(ctx);
        if (rule.dims) dims = rule.dims(ctx);
      } else if (fn) {
        outs = this.inferFunction(node, fn, ctx);
      } else {
        this.count(node, '');
      }
    } catch (e) {
      if (e instanceof UnitscaleError) throw e;
      // A bug in a rule must not sink the analysis; it shows up as an unsupported op.
      this.count(node, ` (rule error: ${e instanceof Error ? e.message : String(e)})`);
      outs = [];
    }
    node.outputs.forEach((name, i) => {
      if (!name) return;
      // A Loop body is inferred more than once: forget what an earlier pass knew.
      this.values.delete(name);
      this.dimValues.delete(name);
      this.sequences.delete(name);
      this.types.delete(name);
      const seq = seqs[i];
      if (seq) {
        this.sequences.set(name, seq);
        return;
      }
      let inferred = outs[i] ?? null;
      const value = folded?.[i] ?? null;
      if (value) {
        this.values.set(name, value);
        // A folded value knows its exact shape.
        inferred = { dtype: inferred?.dtype || value.dtype, shape: [...value.dims] };
      }
      const d = dims?.[i];
      if (d && !value) {
        this.dimValues.set(name, d);
        const shape = inferred?.shape;
        if (d.every((x) => typeof x === 'number') && shape && shape.length <= 1 && isIntLike(inferred!.dtype)) {
          this.values.set(name, { dtype: inferred!.dtype, dims: shape.length === 0 ? [] : [d.length], data: d as number[] });
        }
      }
      const decl = this.useDeclared ? declared.get(name) ?? null : null;
      const t = inferred ? this.merge(name, inferred, decl, true) : decl;
      if (t) this.types.set(name, t);
    });
  }

  private count(node: Node, suffix: string): void {
    const key = (node.domain ? `${node.domain}:${node.opType}` : node.opType) + suffix;
    this.unsupported.set(key, (this.unsupported.get(key) ?? 0) + 1);
  }

  /**
   * Inferred and declared types of one value, merged (see the file comment). Records or clears
   * the value's mismatch when `record` (node outputs; not subgraph formal inputs).
   */
  private merge(name: string, inferred: TensorType, declared: TensorType | null, record: boolean): TensorType {
    if (!declared) return inferred;
    let conflict = false;
    const dtype = inferred.dtype !== DataType.UNDEFINED ? inferred.dtype : declared.dtype;
    if (inferred.dtype !== DataType.UNDEFINED && declared.dtype !== DataType.UNDEFINED && inferred.dtype !== declared.dtype) conflict = true;
    let shape: Dim[] | null;
    if (!inferred.shape) shape = declared.shape ? [...declared.shape] : null;
    else if (!declared.shape) shape = inferred.shape;
    else if (inferred.shape.length !== declared.shape.length) {
      conflict = true;
      shape = inferred.shape;
    } else {
      shape = inferred.shape.map((d, i) => {
        const e = declared.shape![i]!;
        if (typeof d === 'number') {
          if (typeof e === 'number' && e !== d) conflict = true;
          return d;
        }
        if (typeof e === 'number') return e;
        return d ?? e;
      });
    }
    if (record) {
      if (conflict) this.mismatches.set(name, { value: name, declared, inferred });
      else this.mismatches.delete(name);
    }
    return { dtype, shape };
  }

  /**
   * A call of a model-local function: its body, attribute references resolved against the
   * call's attributes, is inferred as a graph of its own (names are local to the body).
   */
  private inferFunction(node: Node, fn: FunctionProto, ctx: ShapeContext): (TensorType | null)[] {
    const body: GraphProto = {
      name: fn.name ?? '',
      input: (fn.input ?? []).map((name) => ({ name })),
      output: (fn.output ?? []).map((name) => ({ name })),
      node: (fn.node ?? []).map((n) => resolveAttributeRefs(n, node, fn)),
      value_info: fn.value_info ?? [],
    };
    const graph = new Graph(body, this.model);
    const opsets = new Map(this.model.opsets);
    for (const o of fn.opset_import ?? []) opsets.set(o.domain === 'ai.onnx' ? '' : o.domain ?? '', toNumber(o.version));
    const inner = new Walker(this.model, { useDeclared: this.useDeclared }, this.unsupported, opsets);
    // Constant inputs of the call stay known inside the body.
    (fn.input ?? []).forEach((name, i) => {
      const v = ctx.inputValues[i];
      if (v) inner.values.set(name, v);
      const d = ctx.inputDims[i];
      if (d) inner.dimValues.set(name, d);
    });
    return inner.inferGraph(graph, ctx.inputTypes);
  }
}

/** An array whose entries are computed on first read. */
function lazyList<T>(names: string[], get: (name: string) => T): T[] {
  const out: T[] = new Array<T>(names.length);
  names.forEach((name, i) => {
    let done = false;
    let v: T;
    Object.defineProperty(out, i, {
      enumerable: true,
      get: () => {
        if (!done) {
          v = get(name);
          done = true;
        }
        return v;
      },
    });
  });
  return out;
}

/** A function body node with `ref_attr_name` attributes replaced by the caller's (or the defaults). */
function resolveAttributeRefs(n: NodeProto, call: Node, fn: FunctionProto): NodeProto {
  const attrs = n.attribute ?? [];
  if (!attrs.some((a) => a.ref_attr_name)) return n;
  const resolved: AttributeProto[] = [];
  for (const a of attrs) {
    if (!a.ref_attr_name) {
      resolved.push(a);
      continue;
    }
    const given = call.attrs.raw(a.ref_attr_name) ?? (fn.attribute_proto ?? []).find((d) => d.name === a.ref_attr_name);
    if (given) resolved.push({ ...given, name: a.name });
  }
  return { ...n, attribute: resolved };
}

