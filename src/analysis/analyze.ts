/**
 * `analyzeModel`: the static prediction, from a Model to a Report (src/report/types.ts, mode
 * "predicted"). Shapes → input assumptions → forward propagation (→ backward with `grad`) →
 * per-format risk of every float tensor → summary and a mixed-precision plan.
 *
 * absmax: a hard bound when a rule can prove one (constants, softmax ≤ 1, LayerNorm ≤ √(K−1)·|γ|+|β|,
 * matmul/conv ≤ max column Σ|w| · max|x|); otherwise the 1 − 1e-6 quantile of the predicted
 * distribution (summary.absmaxMeaning says so); null when even that is unknown.
 * Tensors with confidence 'unknown' get an empty `risk` and are left out of the summary.
 *
 * Values inside control-flow subgraphs that the propagation analysed (the taken If branch, both
 * branches when the condition is not known, Loop/Scan bodies: one iteration) are listed after
 * their If/Loop/Scan node with `scope` ("If_3/then_branch", nested with '/'); they count in the
 * summary, the plan and the gate like any other activation. Each (scope, name) pair is listed once.
 */
import { maskShare } from './mask.js';
import { DataType, dtypeName, isFloatType } from '../onnx/dtype.js';
import type { Graph, Model, Node, TensorType } from '../onnx/model.js';
import { parseFormat, type Format } from '../formats/index.js';
import type { Risk } from '../formats/risk.js';
import { tallyFormat } from '../report/headroom.js';
import type { FormatRisk, FormatSummary, Report, TensorKind, TensorReport } from '../report/types.js';
import { VERSION } from '../version.js';
import { describe, quantileAbs } from './dist.js';
import { inputScales, type InputAssumption } from './inputs.js';
import { propagateBackward, propagateForward, type PropagateInput } from './propagate.js';
import { WeightPass } from './weight-pass.js';
import { setWeightSource } from './weights.js';
import { registry } from './registry.js';
import { scaleRisk } from './risk.js';
import { rmsOf, type Scale } from './scale.js';
import { inferShapes } from './shapes/infer.js';

export const DEFAULT_FORMATS = ['e4m3', 'e5m2', 'fp16', 'bf16'];
/** A tensor counts as overflowing / underflowing in the summary above this share. */
export const FLAG_FRACTION = 1e-6;
/** Plan limits: overflow share, underflow share, minimum SQNR (dB). */
export const PLAN_MAX_OVERFLOW = 1e-6;
export const PLAN_MAX_UNDERFLOW = 1e-3;
export const PLAN_MIN_SQNR_DB = 20;
/** Quantile used as absmax when no hard bound is known. */
export const ABSMAX_QUANTILE = 1e-6;

/** Input distributions in config form (gate config "inputs"). */
export interface InputSpecObject {
  distribution?: string;
  mean?: number;
  std?: number;
  rms?: number;
  min?: number;
  max?: number;
  values?: number[];
}

export interface AnalyzeOptions {
  formats?: Format[];
  grad?: boolean;
  dims?: Record<string, number>;
  shapes?: Record<string, number[]>;
  /** Per input: `normal:MEAN,STD | uniform:LO,HI | ids | ones | const:V`, or a config object. */
  inputs?: Record<string, string | InputSpecObject>;
  /** Minimum SQNR (dB) a plan format must reach (default 20). */
  planMinSqnrDb?: number;
}

function specString(s: string | InputSpecObject): string {
  if (typeof s === 'string') return s;
  const d = (s.distribution ?? 'normal').toLowerCase();
  if (d === 'normal' || d === 'gaussian') return `normal:${s.mean ?? 0},${s.std ?? s.rms ?? 1}`;
  if (d === 'uniform') return `uniform:${s.min ?? 0},${s.max ?? 1}`;
  if (d === 'const' || d === 'constant') return `const:${s.values?.[0] ?? s.mean ?? 0}`;
  return d;
}

/** Unresolved symbolic dims of the graph inputs: batch-like → 1, others → 128 (reported). */
function defaultDims(model: Model, given: Record<string, number>, shapes: Record<string, number[]>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of model.graph.inputs) {
    if (shapes[v.name ?? '']) continue;
    const t = model.graph.declaredTypes.get(v.name ?? '');
    for (const d of t?.shape ?? []) {
      if (typeof d !== 'string' || d in given || d in out) continue;
      out[d] = /batch|^n$|^b$|^bs$/i.test(d) ? 1 : 128;
    }
  }
  return out;
}

function toFormatRisk(r: Risk): FormatRisk {
  const s = r.sqnrDb;
  return {
    overflow: r.overflow,
    underflow: r.underflow,
    subnormal: r.subnormal,
    sqnrDb: s === Infinity || Number.isNaN(s) ? null : s === -Infinity ? -300 : round(s, 3),
  };
}

function round(x: number, d: number): number {
  const p = 10 ** d;
  return Math.round(x * p) / p;
}

function sig(x: number | null): number | null {
  if (x === null || !Number.isFinite(x)) return x === null ? null : null;
  return Number(x.toPrecision(6));
}

interface Entry {
  name: string;
  kind: TensorKind;
  node: Node | null;
  type: TensorType | null;
  scale: Scale;
  order: number;
  /** Where a subgraph value lives ("If_3/then_branch"); undefined in the main graph. */
  scope?: string;
}

/** A subgraph's place: "<node name>/<attribute>", nested with '/' (outermost first). */
export function scopeOf(graph: Graph): string | undefined {
  const parts: string[] = [];
  for (let g: Graph | null = graph; g && g.owner; g = g.parent) {
    const owner: Node = g.owner;
    const attr = owner.subgraphs.find((s) => s.graph === g)?.attribute ?? '?';
    parts.unshift(`${owner.name}/${attr}`);
  }
  return parts.length ? parts.join('/') : undefined;
}

const LOOP_NOTE = 'body: one iteration analysed, loop-carried values at their initial scales';
const CONFIDENCE_RANK = { exact: 4, high: 3, medium: 2, low: 1, unknown: 0 } as const;

/**
 * What a subgraph value's row should say about where it lives: inside a Loop/Scan body (the body
 * is analysed once, as the rule's outputs say), or in one of two If branches both analysed
 * because the condition is not known without data. Empty for a taken branch.
 */
function subgraphCaveats(graph: Graph, analysed: Map<Graph, unknown>): { note: string[]; loop: boolean } {
  const note: string[] = [];
  let loop = false;
  for (let g: Graph | null = graph; g && g.owner; g = g.parent) {
    const owner = g.owner;
    if (owner.opType === 'Loop' || owner.opType === 'Scan') {
      loop = true;
      if (!note.some((n) => n.includes(LOOP_NOTE))) note.push(`${owner.opType} ${LOOP_NOTE}`);
    } else if (owner.opType === 'If' && owner.subgraphs.length > 1 && owner.subgraphs.every((s) => analysed.has(s.graph))) {
      if (g === graph) note.push('If condition not known without data: this branch analysed as if taken');
    }
  }
  return { note, loop };
}

export interface WeightReadOptions {
  /** Worker threads for the weight pass (default: the machine's cores, at most 8; 0: none). */
  threads?: number;
  /** Progress of the weight pass in bytes: (done, total). */
  onWeightProgress?: (done: number, total: number) => void;
  /** Weight-pass tuning (tests): see WeightPassOptions. */
  rangeBytes?: number;
  parallelBytes?: number;
}

/**
 * `analyzeModel` with the parallel weight pass (weight-pass.ts): every weight is read once, on
 * all cores, while the propagation runs. Same report; what the CLI runs.
 */
export async function analyzeModelAsync(model: Model, opts: AnalyzeOptions & WeightReadOptions = {}): Promise<Report> {
  const formats = opts.formats && opts.formats.length ? opts.formats : DEFAULT_FORMATS.map((n) => parseFormat(n));
  const pass = await WeightPass.start(model, formats, { threads: opts.threads, onProgress: opts.onWeightProgress, rangeBytes: opts.rangeBytes, parallelBytes: opts.parallelBytes });
  if (!pass) return analyzeModel(model, { ...opts, formats });
  // Propagation runs while the workers read; it waits only for weights not read yet.
  setWeightSource((t) => pass.waitFor(t));
  try {
    const report = analyzeModel(model, { ...opts, formats });
    // A weight that could not be read fails the analysis (a broken file is exit code 3), even
    // though propagation went on with that weight's scale unknown.
    pass.finish();
    return report;
  } finally {
    setWeightSource(null);
    await pass.close();
  }
}

export function analyzeModel(model: Model, opts: AnalyzeOptions = {}): Report {
  const formats = opts.formats && opts.formats.length ? opts.formats : DEFAULT_FORMATS.map((n) => parseFormat(n));
  const given = opts.dims ?? {};
  const shapesOpt = opts.shapes ?? {};
  const assumedDims = defaultDims(model, given, shapesOpt);
  const dims = { ...assumedDims, ...given };
  const shapeResult = inferShapes(model, { dims, inputShapes: shapesOpt });
  const types = shapeResult.types;
  const overrides: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.inputs ?? {})) overrides[k] = specString(v);
  const { scales: inScales, assumptions } = inputScales(model, types, overrides);
  const pinput: PropagateInput = { model, formats, registry, types, values: shapeResult.values, inputScales: inScales };
  const fwd = propagateForward(pinput);
  const graph = model.graph;
  const typeOf = (n: string): TensorType | null => types.get(n) ?? graph.declaredTypes.get(n) ?? null;

  // Every float tensor of the main graph once: inputs, weights, then node outputs in order.
  const entries: Entry[] = [];
  const seen = new Set<string>();
  const push = (name: string, kind: TensorKind, node: Node | null, order: number): void => {
    if (!name || seen.has(name)) return;
    const s = fwd.scales.get(name);
    if (!s) return;
    const t = typeOf(name);
    if (t && t.dtype !== DataType.UNDEFINED && !isFloatType(t.dtype)) return;
    seen.add(name);
    entries.push({ name, kind, node, type: t, scale: s, order });
  };
  for (const v of graph.inputs) push(v.name ?? '', 'input', null, -1);
  for (const name of graph.initializers.keys()) if (!graph.isGraphInput(name)) push(name, 'weight', null, -1);
  // Subgraph values (ForwardResult.subgraphValues), each (scope, name) once, after the node
  // that owns the subgraph; `order` is that outermost node's position.
  const seenScoped = new Set<string>();
  const pushSubgraphs = (node: Node, order: number): void => {
    for (const { graph: sub } of node.subgraphs) {
      const own = fwd.subgraphValues.get(sub);
      if (!own) continue; // not analysed (the If branch not taken, or the rule gave up)
      const scope = scopeOf(sub) ?? '';
      const caveats = subgraphCaveats(sub, fwd.subgraphValues);
      const pushSub = (name: string, kind: TensorKind, producer: Node | null): void => {
        const key = `${scope}\u0000${name}`;
        if (!name || seenScoped.has(key)) return;
        let s = own.get(name);
        if (!s) return;
        const t = types.get(name) ?? sub.declaredTypes.get(name) ?? null;
        if (t && t.dtype !== DataType.UNDEFINED && !isFloatType(t.dtype)) return;
        seenScoped.add(key);
        if (caveats.note.length && s.confidence !== 'exact' && s.confidence !== 'unknown') {
          const capped = caveats.loop && CONFIDENCE_RANK[s.confidence] > CONFIDENCE_RANK.low;
          s = { ...s, ...(capped ? { confidence: 'low' as const } : {}), note: [s.note, ...caveats.note].filter(Boolean).join('; ') };
        }
        entries.push({ name, kind, node: producer, type: t, scale: s, order, scope });
      };
      for (const name of sub.initializers.keys()) if (!sub.isGraphInput(name)) pushSub(name, 'weight', null);
      for (const n of sub.topologicalOrder()) {
        for (const o of n.outputs) pushSub(o, n.opType === 'Constant' ? 'weight' : 'activation', n);
        pushSubgraphs(n, order);
      }
    }
  };
  for (const node of graph.topologicalOrder()) {
    const order = fwd.order.get(node) ?? -1;
    for (const o of node.outputs) {
      const kind: TensorKind = graph.isGraphOutput(o) ? 'output' : node.opType === 'Constant' ? 'weight' : 'activation';
      push(o, kind, node, order);
    }
    if (node.subgraphs.length) pushSubgraphs(node, order);
  }

  let quantileUsed = false;
  const report = (e: Entry, gradOf?: TensorKind): TensorReport => {
    const s = e.scale;
    const unknown = s.confidence === 'unknown';
    const risk: Record<string, FormatRisk> = {};
    if (!unknown) {
      const r = scaleRisk(s, formats);
      for (const f of formats) risk[f.name] = toFormatRisk(r[f.name]!);
    }
    // Exact bounds (stored values) stay; otherwise the tighter of a rule's proven bound (often
    // loose after a few layers) and the 1 − 1e-6 quantile of the predicted law.
    let absmax = s.absmax;
    if (s.confidence !== 'exact' && !unknown && s.dist.kind !== 'empirical') {
      const q = quantileAbs(s.dist, ABSMAX_QUANTILE);
      if (q !== null && (absmax === null || q < absmax)) {
        absmax = q;
        quantileUsed = true;
      }
    }
    const t: TensorReport = {
      name: e.name,
      kind: gradOf ? 'gradient' : e.kind,
      op: e.node ? e.node.opType : e.kind === 'input' ? 'input' : 'initializer',
      node: e.node ? e.node.name : null,
      dtype: e.type ? dtypeName(e.type.dtype) : 'float',
      shape: e.type?.shape ?? null,
      mean: unknown ? null : sig(s.mean),
      rms: unknown ? null : sig(rmsOf(s)),
      absmax: sig(absmax),
      risk,
      distribution: s.dist.kind === 'empirical' ? 'empirical' : describe(s.dist),
      confidence: s.confidence,
      order: e.order,
    };
    if (e.scope) t.scope = e.scope;
    if (s.note) t.note = s.note;
    const mask = gradOf ? null : maskShare(s.dist);
    if (mask) t.maskFill = sig(mask.share)!;
    if (gradOf) t.gradientOf = gradOf === 'weight' ? 'weight' : gradOf === 'input' ? 'input' : 'activation';
    return t;
  };

  const tensors = entries.map((e) => report(e));
  let gradients: TensorReport[] = [];
  let missingBackward: string[] = [];
  if (opts.grad) {
    const bwd = propagateBackward(pinput, fwd);
    missingBackward = [...bwd.missing.keys()].sort();
    for (const e of entries) {
      if (e.scope) continue; // the backward pass does not enter subgraphs
      const g = bwd.grads.get(e.name);
      if (!g) continue;
      if (e.kind === 'weight' && e.node) continue; // Constant nodes are not trainable
      gradients.push(report({ ...e, scale: g }, e.kind === 'output' ? 'activation' : e.kind));
    }
  }

  const summary = summarise(tensors, formats);
  const all = [...tensors, ...gradients];
  const plan = makePlan(tensors, formats, opts.planMinSqnrDb ?? PLAN_MIN_SQNR_DB);
  const confidence: Record<string, number> = {};
  for (const t of tensors) confidence[t.confidence ?? 'unknown'] = (confidence[t.confidence ?? 'unknown'] ?? 0) + 1;

  const opsets: Record<string, number> = {};
  for (const [d, v] of model.opsets) opsets[d || 'ai.onnx'] = v;
  return {
    tool: { name: 'unitscale', version: VERSION },
    model: { path: model.path ?? '', irVersion: model.irVersion, opsets },
    mode: 'predicted',
    formats: formats.map((f) => f.name),
    tensors: all,
    summary: {
      tensors: tensors.length,
      formats: summary,
      unsupportedOps: [...fwd.unsupported.keys()].sort(),
      ...(opts.grad ? { gradients: { tensors: gradients.length, formats: summarise(gradients, formats), missingBackwardRules: missingBackward } } : {}),
      confidence,
      inputs: assumptions.map(describeAssumption),
      ...(Object.keys(assumedDims).length ? { assumedDims } : {}),
      absmaxMeaning: quantileUsed
        ? `exact for stored tensors; otherwise the smaller of a proven bound and the ${1 - ABSMAX_QUANTILE} quantile of |x| under the predicted distribution`
        : 'hard bounds',
      plan,
    },
  };
}

function describeAssumption(a: InputAssumption): { name: string; assumed: string; source: string } {
  const s = a.spec;
  const txt = !s ? 'no scale (integer/bool)' : s.kind === 'normal' ? `normal:${s.mean},${s.std}` : s.kind === 'uniform' ? `uniform:${s.lo},${s.hi}` : s.kind === 'const' ? `const:${s.value}` : s.kind;
  return { name: a.name, assumed: txt, source: a.source };
}

function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Per-format summary over the known tensors (PRIMER §2 risks). */
export function summarise(tensors: TensorReport[], formats: Format[]): Record<string, FormatSummary> {
  const out: Record<string, FormatSummary> = {};
  // A subgraph value is named with its scope ("If_3/then_branch/t_out"): its name alone may be
  // another tensor's too.
  const qualified = tensors.some((t) => t.scope) ? tensors.map((t) => (t.scope ? { ...t, name: `${t.scope}/${t.name}` } : t)) : tensors;
  for (const f of formats) {
    const { over, under, worst, worstTensor } = tallyFormat(f, qualified, FLAG_FRACTION);
    const sqnrs: number[] = [];
    for (const t of tensors) {
      const r = t.risk[f.name];
      if (r && r.sqnrDb !== null) sqnrs.push(r.sqnrDb);
    }
    const med = median(sqnrs);
    out[f.name] = {
      format: f.name,
      tensorsOverflowing: over,
      tensorsUnderflowing: under,
      worstHeadroomBits: worst === null ? null : round(worst, 3),
      worstTensor,
      medianSqnrDb: med === null ? null : round(med, 3),
    };
  }
  return out;
}

export interface PlanEntry {
  name: string;
  kind: TensorKind;
  /** A subgraph value's scope (TensorReport.scope). */
  scope?: string;
  /** The cheapest listed format meeting the limits; null: none does (keep fp32). */
  format: string | null;
  elements: number | null;
}

export interface Plan {
  limits: { maxOverflow: number; maxUnderflow: number; minSqnrDb: number };
  tensors: PlanEntry[];
  /** Tensors per chosen format ("fp32": none fits). */
  counts: Record<string, number>;
  /** Bytes of activations + weights (known shapes only) in fp32 and under the plan. */
  bytesFp32: number;
  bytesPlanned: number;
  bytesSaved: number;
}

/**
 * Mixed-precision plan: per tensor the listed format with the fewest bits whose predicted risk
 * stays within the limits (overflow ≤ 1e-6, underflow ≤ 1e-3, SQNR ≥ threshold; exact = ∞).
 */
export function makePlan(tensors: TensorReport[], formats: Format[], minSqnrDb: number): Plan {
  const byBits = [...formats].sort((a, b) => a.bits - b.bits);
  const entries: PlanEntry[] = [];
  const counts: Record<string, number> = {};
  let fp32 = 0;
  let planned = 0;
  for (const t of tensors) {
    if (t.kind === 'gradient' || t.confidence === 'unknown') continue;
    let choice: Format | null = null;
    for (const f of byBits) {
      const r = t.risk[f.name];
      if (!r) continue;
      if (r.overflow <= PLAN_MAX_OVERFLOW && r.underflow <= PLAN_MAX_UNDERFLOW && (r.sqnrDb === null || r.sqnrDb >= minSqnrDb)) {
        choice = f;
        break;
      }
    }
    const n = t.shape && t.shape.every((d): d is number => typeof d === 'number') ? (t.shape as number[]).reduce((a, b) => a * b, 1) : null;
    entries.push({ name: t.name, kind: t.kind, ...(t.scope ? { scope: t.scope } : {}), format: choice ? choice.name : null, elements: n });
    const key = choice ? choice.name : 'fp32';
    counts[key] = (counts[key] ?? 0) + 1;
    if (n !== null) {
      fp32 += n * 4;
      planned += (n * Math.min(32, choice ? choice.bits : 32)) / 8;
    }
  }
  return {
    limits: { maxOverflow: PLAN_MAX_OVERFLOW, maxUnderflow: PLAN_MAX_UNDERFLOW, minSqnrDb },
    tensors: entries,
    counts,
    bytesFp32: fp32,
    bytesPlanned: planned,
    bytesSaved: fp32 - planned,
  };
}

