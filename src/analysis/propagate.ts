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
import { channelForward, scaleFromChannels, unaryLawFromChannels, type ChannelStats } from './channels.js';
import { applyFn, momentsOf } from './dist.js';
import { derivedConfidence, distFor, gradScale, joinNotes, makeScale } from './helpers.js';
import { scalarFunction, type Lineage } from './lineage.js';
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

/** The RuleContext of a node given the current scales. */
export function makeContext(input: PropagateInput, node: Node, scales: Map<string, Scale | null>): RuleContext {
  const g = node.graph;
  const model = input.model;
  return {
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

/** Forward pass over the main graph. */
export function propagateForward(input: PropagateInput): ForwardResult {
  const { model, formats, registry } = input;
  const graph = model.graph;
  const scales = new Map<string, Scale | null>();
  const unsupported = new Map<string, number>();
  const lineage = new Map<string, Lineage>();
  const channels = new Map<string, ChannelStats>();
  const order = new Map<Node, number>();

  for (const [name, t] of graph.initializers) {
    if (graph.isGraphInput(name)) continue;
    scales.set(name, storedScale(t, formats));
  }
  for (const [name, s] of input.inputScales) scales.set(name, s);

  const nodes = graph.topologicalOrder();
  nodes.forEach((node, i) => order.set(node, i));
  for (const node of nodes) {
    const outTypes = node.outputs.map((o) => (o ? typeOf(input, graph, o) : null));
    if (node.opType === 'Constant' && node.domain === '') {
      const t = constantNodeTensor(node, model.dir);
      scales.set(node.outputs[0] ?? '', t ? storedScale(t, formats) : null);
      continue;
    }
    const ctx = makeContext(input, node, scales);
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
  return { scales, order, unsupported, lineage, channels };
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
  return (x) => sf.f([x]);
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
    const l = lineage.get(name) ?? { root: name, fn: (x: number) => x, label: 'x' };
    if (root !== null && l.root !== root) return false;
    root = l.root;
    parts.push({ l });
    live++;
  }
  if (root === null) return false;
  const fns = parts.map((p) => ('c' in p ? () => p.c : p.l.fn));
  const vals = new Array<number>(fns.length);
  const f = sf.f;
  const composed = (x: number): number => {
    for (let k = 0; k < fns.length; k++) vals[k] = fns[k]!(x);
    return f(vals);
  };
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

/** Sum of independent gradient contributions: E[(g1 + g2)²] = E[g1²] + E[g2²]. */
function addGrad(a: Scale | undefined, b: Scale): Scale {
  if (!a) return b;
  const ms = a.meanSquare + b.meanSquare;
  const conf = derivedConfidence(a, b);
  return gradScale(ms, conf === 'high' ? 'medium' : conf);
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
    const ctx: BackwardContext = { ...base, outputs: node.outputs.map((o) => (o ? (fwd.scales.get(o) ?? null) : null)), outputGrads };
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
      grads.set(n, addGrad(grads.get(n), g));
    });
  }
  return { grads, missing };
}
