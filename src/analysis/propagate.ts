/**
 * The propagation engine: walks the main graph in topological order applying each op's forward
 * rule (registry.ts), so every float value gets a Scale; then, on request, walks it backwards
 * from unit-scale output gradients (PRIMER §4) applying the backward rules.
 *
 * Never throws for a model it can walk: an op without a rule, or whose rule fails, gives its
 * float outputs an 'unknown' Scale with a note and propagation continues. Integer, boolean and
 * shape tensors carry no Scale (null). Elementwise branches of one tensor that meet again are
 * composed exactly (lineage.ts).
 */
import { isFloatType } from '../onnx/dtype.js';
import { constantNodeTensor, type Graph, type Model, type Node, type TensorType } from '../onnx/model.js';
import type { TensorData } from '../onnx/tensor.js';
import type { Format } from '../formats/format.js';
import { RiskAccumulator } from '../formats/risk.js';
import { mergeCoherence, withCoherence } from './coherence.js';
import { channelForward, scaleFromChannels, unaryLawFromChannels, type ChannelStats } from './channels.js';
import { applyFn, momentsOf } from './dist.js';
import { derivedConfidence, distFor, gradScale, joinNotes, makeScale } from './helpers.js';
import { composeLineage, IDENT, scalarFunction, type Lineage } from './lineage.js';
import type { BackwardContext, OpRule, RuleContext } from './rules/types.js';
import { unknownScale, type Scale } from './scale.js';
import type { ConstValue } from './shapes/types.js';
import { weightScale } from './weights.js';

export interface PropagateInput {
  model: Model;
  formats: Format[];
  registry: Map<string, OpRule>;
  types: Map<string, TensorType>;
  values: Map<string, ConstValue>;
  /** Scales of the graph inputs (null: not a float input / no scale). */
  inputScales: Map<string, Scale | null>;
}

export interface ForwardResult {
  scales: Map<string, Scale | null>;
  /** Topological position of each node. */
  order: Map<Node, number>;
  /** Op types with no forward rule → number of nodes. */
  unsupported: Map<string, number>;
  lineage: Map<string, Lineage>;
  /** Channel-resolved statistics where known (channels.ts). */
  channels: Map<string, ChannelStats>;
  /**
   * Scales of values inside subgraphs (If branches, Loop/Scan bodies) that control-flow rules
   * analysed through RuleContext.subgraph, by name (a Loop body: its one analysed iteration).
   */
  subgraphScales: Map<string, Scale | null>;
  /**
   * The same values per subgraph (its own values only: initializers and node outputs), so that
   * equal names in sibling branches stay apart; the last analysis of a subgraph wins.
   */
  subgraphValues: Map<Graph, Map<string, Scale | null>>;
}

function opKey(node: Node): string {
  return node.domain ? `${node.domain}:${node.opType}` : node.opType;
}

export function lookup(registry: Map<string, OpRule>, node: Node): OpRule | undefined {
  return registry.get(opKey(node)) ?? registry.get(node.opType);
}

function typeOf(input: PropagateInput, graph: Graph, name: string): TensorType | null {
  return input.types.get(name) ?? graph.declaredTypes.get(name) ?? null;
}

/** The RuleContext of a node given the current scales (and, in the forward pass, the subgraph hook). */
export function makeContext(
  input: PropagateInput,
  node: Node,
  scales: Map<string, Scale | null>,
  subgraph?: (attribute: string, inputScales: (Scale | null)[]) => (Scale | null)[],
): RuleContext {
  const g = node.graph;
  const model = input.model;
  return {
    ...(subgraph ? { subgraph } : {}),
    node,
    attrs: node.attrs,
    opset: model.opsets.get(node.domain) ?? (node.domain === '' ? model.opset : 1),
    inputs: node.inputs.map((n) => (n ? (scales.get(n) ?? null) : null)),
    inputTypes: node.inputs.map((n) => (n ? typeOf(input, g, n) : null)),
    outputTypes: node.outputs.map((n) => (n ? typeOf(input, g, n) : null)),
    constant: (i) => {
      const n = node.inputs[i];
      return n ? g.constant(n) : null;
    },
    constValue: (i) => {
      const n = node.inputs[i];
      return n ? (input.values.get(n) ?? null) : null;
    },
  };
}

function isFloatValue(t: TensorType | null, fallback: boolean): boolean {
  if (!t || t.dtype === 0) return fallback;
  return isFloatType(t.dtype);
}

/** Scale of a stored tensor (initializer or Constant value): exact statistics; null if not float. */
export function storedScale(t: TensorData, formats: Format[]): Scale | null {
  if (!t.isFloat) return null;
  try {
    return weightScale(t, formats);
  } catch (e) {
    return unknownScale(`cannot read values: ${(e as Error).message}`);
  }
}

/**
 * A scope of the forward pass: the main graph's maps, or a subgraph's, which see the enclosing
 * scope's values (ONNX subgraphs read outer values by name) and keep their own.
 */
class ScopedMap<K, V> extends Map<K, V> {
  constructor(private readonly parent: Map<K, V> | null = null) {
    super();
  }
  override get(key: K): V | undefined {
    return super.has(key) ? super.get(key) : this.parent?.get(key);
  }
  override has(key: K): boolean {
    return super.has(key) || (this.parent?.has(key) ?? false);
  }
}

/**
 * The main graph's scales, with the weights' filled in at first use: reading a weight may block
 * on the weight pass (weights.ts `setWeightSource`), so asking for them in the order the graph
 * uses them lets the propagation run while later weights are still being read.
 */
class LazyWeightScales extends Map<string, Scale | null> {
  constructor(
    private readonly pending: Map<string, TensorData>,
    private readonly formats: Format[],
  ) {
    super();
  }
  private fill(key: string): void {
    const t = this.pending.get(key);
    if (!t) return;
    this.pending.delete(key);
    super.set(key, storedScale(t, this.formats));
  }
  override get(key: string): Scale | null | undefined {
    if (!super.has(key)) this.fill(key);
    return super.get(key);
  }
  override has(key: string): boolean {
    return super.has(key) || this.pending.has(key);
  }
  override set(key: string, value: Scale | null): this {
    this.pending.delete(key);
    return super.set(key, value);
  }
  /** Fill every weight not used yet (unused initializers are reported too). */
  fillAll(): void {
    for (const key of [...this.pending.keys()]) this.fill(key);
  }
}

interface Scope {
  scales: Map<string, Scale | null>;
  lineage: Map<string, Lineage>;
  channels: Map<string, ChannelStats>;
}

interface WalkState {
  unsupported: Map<string, number>;
  /** Scales of values inside subgraphs (If branches, Loop/Scan bodies), by name. */
  subgraphScales: Map<string, Scale | null>;
  /** The same per subgraph (ForwardResult.subgraphValues). */
  subgraphValues: Map<Graph, Map<string, Scale | null>>;
  /** Subgraph nodes walked so far (a budget against nested branches multiplying). */
  subgraphNodes: number;
}

/** Subgraph nodes walked at most per model (nested If branches are walked both ways). */
const SUBGRAPH_NODE_BUDGET = 200_000;

/** Forward pass over the main graph. */
export function propagateForward(input: PropagateInput): ForwardResult {
  const { model, formats } = input;
  const graph = model.graph;
  const weights = new Map<string, TensorData>();
  for (const [name, t] of graph.initializers) if (!graph.isGraphInput(name)) weights.set(name, t);
  const scales = new LazyWeightScales(weights, formats);
  const scope: Scope = { scales, lineage: new Map(), channels: new Map() };
  const state: WalkState = { unsupported: new Map(), subgraphScales: new Map(), subgraphValues: new Map(), subgraphNodes: 0 };
  const order = new Map<Node, number>();

  for (const [name, s] of input.inputScales) scope.scales.set(name, s);
  const nodes = graph.topologicalOrder();
  nodes.forEach((node, i) => order.set(node, i));
  walkGraph(input, nodes, scope, state);
  scales.fillAll();
  return { scales: scope.scales, order, unsupported: state.unsupported, lineage: scope.lineage, channels: scope.channels, subgraphScales: state.subgraphScales, subgraphValues: state.subgraphValues };
}

/** Apply the forward rules to `nodes` (in topological order) within `scope`. */
function walkGraph(input: PropagateInput, nodes: Node[], scope: Scope, state: WalkState): void {
  const { model, formats, registry } = input;
  const { scales, lineage, channels } = scope;
  const unsupported = state.unsupported;
  for (const node of nodes) {
    const graph = node.graph;
    const outTypes = node.outputs.map((o) => (o ? typeOf(input, graph, o) : null));
    if (node.opType === 'Constant' && node.domain === '') {
      const t = constantNodeTensor(node, model.dir);
      scales.set(node.outputs[0] ?? '', t ? storedScale(t, formats) : null);
      continue;
    }
    const hook = node.subgraphs.length ? (attribute: string, inputScales: (Scale | null)[]) => runSubgraph(input, node, attribute, inputScales, scope, state) : undefined;
    const ctx = makeContext(input, node, scales, hook);
    const rule = lookup(registry, node);
    let outs: (Scale | null)[] = [];
    let failure: string | null = null;
    if (!rule) {
      unsupported.set(opKey(node), (unsupported.get(opKey(node)) ?? 0) + 1);
      failure = `no rule for ${opKey(node)}`;
    } else {
      try {
        outs = rule.forward(ctx);
      } catch (e) {
        failure = `rule for ${opKey(node)} failed: ${(e as Error).message}`;
      }
    }
    node.outputs.forEach((o, k) => {
      if (!o) return;
      const s = outs[k] ?? null;
      const float = isFloatValue(outTypes[k] ?? null, s !== null || failure !== null);
      if (!float) {
        scales.set(o, null);
        return;
      }
      if (s && Number.isFinite(s.mean) && Number.isFinite(s.meanSquare)) scales.set(o, s);
      else if (s) scales.set(o, { ...unknownScale(joinNotes(s.note, 'moments not finite') ?? ''), confidence: 'low' });
      else scales.set(o, unknownScale(failure ?? `${opKey(node)}: no scale for output ${k}`));
    });
    foldExact(node, ctx, scales, formats);
    const composed = applyLineage(node, ctx, scales, lineage, failure !== null || outs.every((s) => !s || s.confidence === 'unknown'));
    applyChannels(node, ctx, scales, channels, lineage, composed);
  }
}

/**
 * The RuleContext.subgraph hook: forward-propagate the subgraph held by `attribute` of `node`,
 * its formal inputs at `inputScales`, its initializers read exactly, the enclosing scope's
 * values visible; returns the scales of its outputs. Its inner values are kept by name
 * (ForwardResult.subgraphScales).
 */
function runSubgraph(input: PropagateInput, node: Node, attribute: string, inputScales: (Scale | null)[], outer: Scope, state: WalkState): (Scale | null)[] {
  const sub = node.subgraphs.find((s) => s.attribute === attribute)?.graph;
  if (!sub) throw new Error(`${opKey(node)} has no subgraph '${attribute}'`);
  let nodes: Node[];
  try {
    nodes = sub.topologicalOrder();
  } catch (e) {
    throw new Error(`subgraph '${attribute}' cannot be ordered: ${(e as Error).message}`);
  }
  state.subgraphNodes += nodes.length;
  if (state.subgraphNodes > SUBGRAPH_NODE_BUDGET) throw new Error(`subgraph budget of ${SUBGRAPH_NODE_BUDGET} nodes spent (nested branches)`);
  const scope: Scope = { scales: new ScopedMap(outer.scales), lineage: new ScopedMap(outer.lineage), channels: new ScopedMap(outer.channels) };
  const formal = new Set<string>();
  (sub.proto.input ?? []).forEach((vi, i) => {
    const name = vi.name ?? '';
    if (!name) return;
    formal.add(name);
    scope.scales.set(name, inputScales[i] ?? null);
  });
  for (const [name, t] of sub.initializers) if (!formal.has(name)) scope.scales.set(name, storedScale(t, input.formats));
  walkGraph(input, nodes, scope, state);
  // Own values only (Map.prototype.forEach does not see the parent scope).
  const own = new Map<string, Scale | null>();
  Map.prototype.forEach.call(scope.scales, (s: Scale | null, name: string) => {
    state.subgraphScales.set(name, s);
    if (!formal.has(name)) own.set(name, s);
  });
  state.subgraphValues.set(sub, own);
  return sub.outputs.map((o) => (o.name ? (scope.scales.get(o.name) ?? null) : null));
}

/**
 * Outputs computed from stored values only get their exact risk, as initializers do: a Gather of
 * constant rows of a stored table (position embeddings at constant positions).
 */
function foldExact(node: Node, ctx: RuleContext, scales: Map<string, Scale | null>, formats: Format[]): void {
  if (node.opType !== 'Gather' || node.domain !== '') return;
  const out = node.outputs[0];
  const s = out ? scales.get(out) : null;
  const table = ctx.constant(0);
  if (!out || !s || !table || !table.isFloat || table.count > 1 << 24) return;
  const ids = ctx.constant(1)?.toFloat64() ?? (ctx.constValue(1) ? Float64Array.from(ctx.constValue(1)!.data) : null);
  if (!ids || ids.length === 0) return;
  let axis = ctx.attrs.int('axis', 0)!;
  const dims = table.dims;
  if (axis < 0) axis += dims.length;
  const D = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  if (outer * inner * ids.length > 1 << 24) return;
  const v = table.toFloat64();
  const picked = new Float64Array(outer * inner * ids.length);
  let k = 0;
  for (let o = 0; o < outer; o++)
    for (const raw of ids) {
      const id = raw < 0 ? raw + D : raw;
      if (id < 0 || id >= D) return;
      const base = (o * D + id) * inner;
      for (let j = 0; j < inner; j++) picked[k++] = v[base + j]!;
    }
  const acc = new RiskAccumulator(formats);
  acc.add(picked);
  let m1 = 0;
  let m2 = 0;
  let mx = 0;
  for (const x of picked) {
    m1 += x;
    m2 += x * x;
    mx = Math.max(mx, Math.abs(x));
  }
  scales.set(out, { ...s, mean: m1 / picked.length, meanSquare: m2 / picked.length, absmax: mx, confidence: 'exact', exactRisk: acc.result().formats });
}

/**
 * Channel-resolved statistics of the node's outputs; where known they replace the element-i.i.d.
 * moments (channel averages) and the law (a mixture over channel groups).
 */
function applyChannels(
  node: Node,
  ctx: RuleContext,
  scales: Map<string, Scale | null>,
  channels: Map<string, ChannelStats>,
  lineage: Map<string, Lineage>,
  composed: boolean,
): void {
  const ins = node.inputs.map((n) => (n ? channels.get(n) : undefined));
  const out0 = node.outputs[0];
  let lin: { rootStats: ChannelStats; fn: (x: number) => number } | undefined;
  if (composed && out0) {
    const l = lineage.get(out0);
    const rs = l ? channels.get(l.root) : undefined;
    if (l && rs) lin = { rootStats: rs, fn: l.fn };
    else return;
  }
  if (!lin && !ins.some(Boolean) && !['Conv', 'MatMul', 'Gemm', 'Gather', 'BatchNormalization', 'LayerNormalization', 'RMSNormalization'].includes(node.opType)) return;
  const res = channelForward({ node, ctx, ins, ...(lin ? { lineage: lin } : {}) });
  if (!res) return;
  node.outputs.forEach((o, k) => {
    const st = res[k];
    const s = o ? scales.get(o) : null;
    if (!o || !st || !s || s.confidence === 'unknown') return;
    if (!st.mean.every(Number.isFinite) || !st.ms.every(Number.isFinite)) return;
    channels.set(o, st);
    // A rule that read the real values (constant operands) stays: it is exact.
    if (s.confidence === 'exact') return;
    const unaryIn = lin ? lin.rootStats : ins[0];
    const f = lin ? lin.fn : unaryFn(node, ctx);
    if (f && unaryIn && unaryIn.gaussian && node.outputs.length === 1) {
      let m1 = 0;
      let m2 = 0;
      const C = st.mean.length;
      for (let c = 0; c < C; c++) {
        m1 += st.mean[c]! / C;
        m2 += st.ms[c]! / C;
      }
      scales.set(o, { ...s, mean: m1, meanSquare: Math.max(m2, m1 * m1), dist: unaryLawFromChannels(unaryIn, f, node.opType), exactRisk: undefined });
    } else {
      const out = scaleFromChannels(st, s);
      // The rule's independence caveat no longer applies: the channel means are tracked.
      if (out.note && /assumed independent/.test(out.note)) {
        out.note = ['ReduceMean', 'ReduceSum', 'GlobalAveragePool'].includes(node.opType)
          ? 'per-channel means kept (E[mean²] = E_c[μ_c²] + E_c[v_c]/n)'
          : undefined;
        if (out.note === undefined) delete out.note;
      }
      scales.set(o, out);
    }
  });
}

/** The scalar function of a unary elementwise node (for channel-group laws), else null. */
function unaryFn(node: Node, ctx: RuleContext): ((x: number) => number) | null {
  const sf = scalarFunction(node, ctx);
  if (!sf || sf.unaryInputs !== 1 || ['Identity', 'Cast', 'CastLike'].includes(node.opType)) return null;
  // The op's own scalar function: the same values as sf.f([x]).
  return sf.unary ?? ((x) => sf.f([x]));
}

/**
 * Record lineage through elementwise nodes with scalar constant operands; where two operands share
 * a root, replace the rule's independent estimate by the exact law of F(root).
 */
function applyLineage(node: Node, ctx: RuleContext, scales: Map<string, Scale | null>, lineage: Map<string, Lineage>, ruleFailed: boolean): boolean {
  const out = node.outputs[0];
  if (!out || node.outputs.length !== 1 || !scales.get(out)) return false;
  const sf = scalarFunction(node, ctx);
  if (!sf) return false;
  const used = sf.unaryInputs === 1 ? [0] : node.inputs.map((_, i) => i).filter((i) => node.inputs[i]);
  const parts: ({ c: number } | { l: Lineage })[] = [];
  let root: string | null = null;
  let live = 0;
  for (const i of used) {
    const name = node.inputs[i]!;
    const s = scales.get(name);
    if (!s) return false; // non-float operand
    const t = node.graph.constant(name);
    if (t) {
      if (t.count !== 1) return false;
      parts.push({ c: t.toFloat64()[0]! });
      continue;
    }
    const l = lineage.get(name) ?? { root: name, fn: IDENT, label: 'x' };
    if (root !== null && l.root !== root) return false;
    root = l.root;
    parts.push({ l });
    live++;
  }
  if (root === null) return false;
  const composed = composeLineage(sf, parts.map((p) => ('c' in p ? p : { fn: p.l.fn })), node.opType);
  const label = `${node.opType}(${parts.map((p) => ('c' in p ? String(p.c) : p.l.label)).join(',')})`;
  lineage.set(out, { root, fn: composed, label: label.length > 60 ? `${node.opType}(…)` : label });
  if (live < 2 && !ruleFailed) return false;
  // Correlated operands (or a missing rule): the exact law of F(root).
  const rs = scales.get(root);
  if (!rs) return false;
  const src = node.graph.constant(root);
  const dist = applyFn(distFor(rs, src), composed, node.opType);
  const m = momentsOf(dist);
  if (!m || !Number.isFinite(m.meanSquare)) return false;
  const prev = scales.get(out)!;
  scales.set(
    out,
    makeScale(m.mean, m.meanSquare, dist, derivedConfidence(rs), {
      note: joinNotes(live >= 2 ? undefined : prev.note && !/no rule/.test(prev.note) ? prev.note : undefined),
      absmax: prev.confidence === 'unknown' ? null : prev.absmax,
    }),
  );
  return true;
}

// ---------------------------------------------------------------------------------------------
// Backward

export interface BackwardResult {
  grads: Map<string, Scale>;
  /** Op types with no backward rule → count (their inputs got a pass-through estimate). */
  missing: Map<string, number>;
}

/** Sum of independent gradient contributions: E[(g1 + g2)²] = E[g1²] + E[g2²]; coherent parts add (coherence.ts). */
function addGrad(a: Scale | undefined, b: Scale): Scale {
  if (!a) return b;
  const ms = a.meanSquare + b.meanSquare;
  const conf = derivedConfidence(a, b);
  return withCoherence(gradScale(ms, conf === 'high' ? 'medium' : conf), mergeCoherence(a, b));
}

/** Ops that, when their input and output shapes are equal, leave every element where it was. */
const IN_PLACE = new Set(['Identity', 'Cast', 'CastLike', 'Dropout', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Expand', 'Tile', 'Pad', 'Slice', 'Resize', 'Upsample']);

/**
 * The coherence of a rule's gradient for input i survives only where it is meaningful: a rule
 * that computed it (a new Coherence object), or one that passed the output's through an op that
 * keeps every element in place (IN_PLACE, same shape). Axes must lie within the input.
 */
function checkedCoherence(node: Node, ctx: BackwardContext, i: number, g: Scale): Scale {
  const c = g.coherent;
  if (!c) return g;
  const rank = ctx.inputTypes[i]?.shape?.length ?? null;
  const passed = ctx.outputGrads.some((o) => o?.coherent === c);
  let keep = rank !== null && c.axes.every((a) => a >= 0 && a < rank);
  if (keep && passed) {
    const a = ctx.inputTypes[i]?.shape;
    const b = ctx.outputTypes[0]?.shape;
    keep = IN_PLACE.has(node.opType) && !!a && !!b && a.length === b.length && a.every((d, k) => typeof d === 'number' && d === b[k]);
  }
  return keep ? g : withCoherence(g, null);
}

/**
 * Reverse pass with E[g²] = 1 at every element of every float graph output (PRIMER §4), summing
 * the gradients of values used more than once.
 */
export function propagateBackward(input: PropagateInput, fwd: ForwardResult): BackwardResult {
  const graph = input.model.graph;
  const grads = new Map<string, Scale>();
  const missing = new Map<string, number>();
  for (const o of graph.outputs) {
    const n = o.name ?? '';
    if (fwd.scales.get(n)) grads.set(n, gradScale(1, 'high'));
  }
  const nodes = [...graph.topologicalOrder()].reverse();
  for (const node of nodes) {
    const outputGrads = node.outputs.map((o) => (o ? (grads.get(o) ?? null) : null));
    if (outputGrads.every((g) => !g)) continue;
    if (node.opType === 'Constant') continue;
    const base = makeContext(input, node, fwd.scales);
    const ctx: BackwardContext = {
      ...base,
      outputs: node.outputs.map((o) => (o ? (fwd.scales.get(o) ?? null) : null)),
      outputGrads,
      channels: (i) => {
        const n = node.inputs[i];
        return n ? (fwd.channels.get(n) ?? null) : null;
      },
    };
    const rule = lookup(input.registry, node);
    let res: (Scale | null)[] | null = null;
    if (rule?.backward) {
      try {
        res = rule.backward(ctx);
      } catch {
        res = null;
      }
    }
    if (!res) {
      missing.set(opKey(node), (missing.get(opKey(node)) ?? 0) + 1);
      // Pass-through estimate: each float input gets the mean output gradient power.
      const present = outputGrads.filter((g): g is Scale => !!g);
      const ms = present.reduce((a, g) => a + g.meanSquare, 0) / present.length;
      res = node.inputs.map((n) => (n && fwd.scales.get(n) ? gradScale(ms, 'low') : null));
    }
    node.inputs.forEach((n, i) => {
      const g = res![i];
      if (!n || !g || !fwd.scales.get(n)) return;
      if (!Number.isFinite(g.meanSquare)) return;
      grads.set(n, addGrad(grads.get(n), checkedCoherence(node, ctx, i, g)));
    });
  }
  return { grads, missing };
}
