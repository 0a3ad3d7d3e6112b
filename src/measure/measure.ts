/**
 * `unitscale measure`: run the model with ONNX Runtime on real or seeded random inputs and
 * report the measured statistics of every float tensor — inputs, weights (read from the
 * initializers themselves, no run needed), activations and outputs — in the same Report
 * contract as `analyze`, with mode "measured".
 */
import { inferShapes } from '../analysis/shapes/infer.js';
import { type Format } from '../formats/index.js';
import { DataType, isFloatType } from '../onnx/dtype.js';
import type { Graph, Model, Node, TensorType } from '../onnx/model.js';
import type { TensorData } from '../onnx/tensor.js';
import { tallyFormat } from '../report/headroom.js';
import type { FormatSummary, Report, TensorKind, TensorReport } from '../report/types.js';
import { VERSION } from '../version.js';
import { inlineTakenBranches } from './branches.js';
import { captureAll, DEFAULT_MEMORY_BUDGET, FETCHABLE, tensorValues, valueDtypes, type Target, type Unmeasurable } from './capture.js';
import { npName, prepareInputs, type Feed } from './inputs.js';
import { TensorStats, type MeasuredStats } from './stats.js';
import { StatsPool } from './stats-pool.js';
import * as ort from 'onnxruntime-node';

export interface MeasureOptions {
  formats: Format[];
  /** User inputs (folder of input_K.pb / .npy, or an .npz); seeded random inputs when absent. */
  inputs?: string;
  /** Random input sets to run (default 1). */
  runs?: number;
  seed?: number;
  /** Values of symbolic dims (default 1). */
  dims?: Record<string, number>;
  /** Whole input shapes, by input name. */
  shapes?: Record<string, number[]>;
  /**
   * At most this many fetched outputs per session (default: no count limit; the batches are
   * sized by `memoryBudget` instead, usually one session for the whole graph).
   */
  batchOutputs?: number;
  /** Estimated bytes of the outputs fetched together in one run (default 512 MiB). */
  memoryBudget?: number;
  /**
   * Share the statistics of big captures with a worker thread when there is a second core
   * (default false: on a busy 2-core machine it measured slower, and it costs a worker start-up).
   * The results are the same either way.
   */
  statsWorker?: boolean;
}

/** No count limit by default: batches are sized by the memory budget (capture.ts). */
export const DEFAULT_BATCH_OUTPUTS = Infinity;
/** Multi-run quantiles stay exact up to this many elements per tensor (stats.ts). */
const MULTI_RUN_EXACT_LIMIT = 1 << 20;
const WEIGHT_EXACT_LIMIT = 1 << 24;
/** Captures estimated below this many bytes (over all runs) keep their statistics on the main thread. */
const WORKER_MIN_BYTES = 8 * 2 ** 20;

interface Entry {
  name: string;
  kind: TensorKind;
  op: string | null;
  node: string | null;
  dtype: number;
  shape: (number | string | null)[] | null;
  order?: number;
  stats?: MeasuredStats;
  note?: string;
}

export async function measureModel(model: Model, opts: MeasureOptions): Promise<Report> {
  const formats = opts.formats;
  const plan = prepareInputs(model, opts);
  const sets = plan.sets;
  // With concrete inputs an If's branch is known: inline it so its values become measurable.
  const inlined = await inlineTakenBranches(model, sets);
  const run = inlined.model;
  const graph = run.graph;
  const inferredTypes = inferTypes(run, opts, sets[0] ?? []);
  const inferred = inferredTypes && dtypeMap(inferredTypes);
  const dtypes = valueDtypes(graph, inferred);
  const origDtypes = run === model ? dtypes : valueDtypes(model.graph, null);
  const entries: Entry[] = [];
  const byName = new Map<string, Entry>();
  const add = (e: Entry): void => {
    if (byName.has(e.name)) return;
    const from = inlined.origin.get(e.name);
    if (from) e.note = e.note ? `${e.note}; from the ${from}` : `measured inside the ${from} (taken on every run)`;
    byName.set(e.name, e);
    entries.push(e);
  };
  const outputs = new Set(graph.outputs.map((o) => o.name ?? ''));

  // Inputs: statistics of the feeds themselves.
  for (const [k, vi] of graph.inputs.entries()) {
    const name = vi.name ?? '';
    const feeds = sets.map((s) => s[k]!).filter((f) => f && isFloatType(f.dtype));
    if (feeds.length === 0) continue;
    const st = new TensorStats(formats, { exactLimit: Infinity, borrow: true });
    for (const f of feeds) st.add(feedValues(f));
    add({ name, kind: 'input', op: 'input', node: null, dtype: feeds[0]!.dtype, shape: feeds[0]!.dims, stats: st.result() });
  }

  // Weights: statistics of the stored values, streamed chunk by chunk (computed below, once the
  // statistics worker is starting up, so that it boots meanwhile).
  const deferred: (() => void)[] = [];
  for (const [name, td] of graph.initializers) {
    if (!td.isFloat) continue;
    const e: Entry = { name, kind: 'weight', op: 'initializer', node: null, dtype: td.dtype, shape: td.dims };
    deferred.push(() => {
      try {
        e.stats = weightStats(formats, td);
      } catch (err) {
        // As add() composes it: the reason, then where the value comes from.
        const from = inlined.origin.get(name);
        e.note = `not measurable: ${(err as Error).message}${from ? `; from the ${from}` : ''}`;
      }
    });
    add(e);
  }

  // Node outputs, in topological order; what ORT can fetch becomes a capture target.
  const targets: Target[] = [];
  const topo = graph.topologicalOrder();
  let untyped = 0;
  topo.forEach((node, order) => {
    for (const o of node.outputs) {
      if (!o || byName.has(o)) continue;
      const dt = dtypes.get(o);
      if (dt === undefined) {
        untyped++;
        continue;
      }
      if (!isFloatType(dt)) continue;
      const e: Entry = {
        name: o,
        kind: outputs.has(o) ? 'output' : 'activation',
        op: node.opType,
        node: node.name,
        dtype: dt,
        shape: graph.declaredTypes.get(o)?.shape ?? null,
        order,
      };
      const k = node.opType === 'Constant' && node.domain === '' ? graph.constant(o) : null;
      if (k) {
        e.kind = outputs.has(o) ? 'output' : 'weight';
        e.stats = weightStats(formats, k);
        e.shape = k.dims;
      } else if (FETCHABLE.has(dt)) targets.push({ name: o, dtype: dt });
      else e.note = `not measurable: ONNX Runtime cannot return ${npName(dt)} tensors`;
      add(e);
    }
  });

  // Values inside If/Loop/Scan bodies are not graph values: listed, not measured.
  let inSubgraphs = 0;
  for (const node of model.graph.topologicalOrder()) {
    for (const s of node.subgraphs) {
      for (const g of s.graph.allGraphs()) {
        const owner = g.owner ?? node;
        const attr = ownerAttr(owner, g);
        const skipped = run !== model && owner.opType === 'If' && !run.graph.nodes.some((x) => x.name === owner.name);
        const where = `inside the '${attr}' body of ${owner.opType} '${owner.name}'${skipped ? ' (the branch not taken on these inputs)' : ''}`;
        for (const n of g.topologicalOrder()) {
          for (const o of n.outputs) {
            const dt = origDtypes.get(o);
            if (!o || byName.has(o) || dt === undefined || !isFloatType(dt)) continue;
            inSubgraphs++;
            add({
              name: o, kind: 'activation', op: n.opType, node: n.name, dtype: dt,
              shape: g.declaredTypes.get(o)?.shape ?? null, note: `not measurable: ${where}`,
            });
          }
        }
      }
    }
  }

  // Run: one accumulator per target, finished as soon as its last run is in. The statistics of
  // big captures are shared with a worker thread (stats-pool.ts); results do not depend on it.
  const shapes = new Map<string, (number | null)[]>();
  const runs = sets.length;
  const sizeOf = sizeEstimator(graph, inferredTypes);
  const captureBytes = targets.reduce((acc, t) => acc + (sizeOf(t) ?? WORKER_MIN_BYTES), 0) * runs;
  const pool = new StatsPool(
    formats,
    (name, stats) => {
      const e = byName.get(name)!;
      e.stats = stats;
      e.shape = shapes.get(name) ?? e.shape;
    },
    opts.statsWorker === true && targets.length > 0 && runs > 0 && captureBytes >= WORKER_MIN_BYTES,
  );
  let failed: Unmeasurable[] = [];
  try {
    for (const job of deferred) job();
    if (targets.length > 0 && runs > 0) {
      const exactLimit = runs === 1 ? Infinity : MULTI_RUN_EXACT_LIMIT;
      failed = await captureAll(
        run,
        targets,
        sets,
        {
          batchOutputs: opts.batchOutputs ?? DEFAULT_BATCH_OUTPUTS,
          memoryBudget: opts.memoryBudget ?? DEFAULT_MEMORY_BUDGET,
          sizeOf,
        },
        (name, run, data, dims) => {
          const prev = shapes.get(name);
          if (!prev) shapes.set(name, dims);
          else if (prev.length !== dims.length) shapes.set(name, dims.map(() => null));
          else shapes.set(name, prev.map((d, i) => (d === dims[i] ? d : null)));
          pool.add(name, data, exactLimit);
          if (run === runs - 1) pool.finish(name);
        },
        (names) => names.forEach((n) => pool.finish(n)),
      );
      await pool.drain();
    }
  } finally {
    await pool.close();
  }
  for (const f of failed) {
    const e = byName.get(f.name);
    if (e) e.note = `not measurable: ${f.reason}`;
  }

  const tensors = entries.map(toReport);
  const measured = tensors.filter((t) => t.measured).length;
  return {
    tool: { name: 'unitscale', version: VERSION },
    model: { path: model.path ?? '<memory>', irVersion: model.irVersion, opsets: opsetRecord(model) },
    mode: 'measured',
    formats: formats.map((f) => f.name),
    tensors,
    summary: {
      tensors: tensors.length,
      formats: Object.fromEntries(formats.map((f) => [f.name, summarise(f, tensors)])),
      measured,
      notMeasurable: tensors.length - measured,
      notMeasurableInSubgraphs: inSubgraphs,
      untypedValues: untyped,
      runs,
      inputs: plan.source,
      notes: [...plan.notes, ...inlined.notes],
      quantiles:
        runs === 1
          ? 'exact (numpy linear interpolation)'
          : `exact up to ${MULTI_RUN_EXACT_LIMIT} elements per tensor over all runs, else from a 256-bins-per-octave histogram (≤0.4% relative)`,
    },
  };
}

/**
 * Statistics of a stored tensor, streamed chunk by chunk. Float32 values arrive as float64
 * chunks; they go back to float32 (exact) so that the float32 kernels run — same results.
 */
function weightStats(formats: Format[], td: TensorData): MeasuredStats {
  const st = new TensorStats(formats, { exactLimit: WEIGHT_EXACT_LIMIT, borrow: true });
  for (const chunk of td.chunks()) st.add(td.dtype === DataType.FLOAT ? new Float32Array(chunk) : chunk);
  return st.result();
}

function ownerAttr(owner: Node, g: Graph): string {
  return owner.subgraphs.find((s) => s.graph === g)?.attribute ?? 'body';
}

function feedValues(f: Feed): Float32Array | Float64Array {
  if (f.data instanceof Float32Array || f.data instanceof Float64Array) return f.data;
  if (f.dtype === DataType.FLOAT16) return tensorValues(new ort.Tensor('float16', f.data as Uint16Array, f.dims));
  return Float64Array.from(f.data as ArrayLike<number>);
}

const fin = (x: number): number | null => (Number.isFinite(x) ? x : null);

function toReport(e: Entry): TensorReport {
  const s = e.stats;
  const r: TensorReport = {
    name: e.name,
    kind: e.kind,
    op: e.op,
    node: e.node,
    dtype: npName(e.dtype),
    shape: e.shape,
    mean: s && s.count > 0 ? fin(s.mean) : null,
    rms: s && s.count > 0 ? fin(s.rms) : null,
    absmax: s && s.count > 0 ? fin(s.absmax) : null,
    risk: s ? s.risk : {},
  };
  if (e.order !== undefined) r.order = e.order;
  const notes: string[] = [];
  if (e.note) notes.push(e.note);
  if (s) {
    r.confidence = 'exact';
    r.measured = {
      std: fin(s.std) ?? 0,
      min: fin(s.min) ?? 0,
      max: fin(s.max) ?? 0,
      absP50: fin(s.absP50) ?? 0,
      absP99: fin(s.absP99) ?? 0,
      absP999: fin(s.absP999) ?? 0,
      fracZero: fin(s.fracZero) ?? 0,
      count: s.count,
      nonFinite: s.nonFinite,
      log2Hist: s.log2Hist,
    };
    // Elements at a mask fill overflow by design; below -1e9 nothing else is a plausible
    // activation, so only then is the share reported as a mask (the gate then skips it).
    if (s.fracMasked > 0 && s.min <= -1e9) r.maskFill = s.fracMasked;
    if (s.nonFinite > 0) notes.push(`${s.nonFinite} non-finite values (statistics cover the finite ones)`);
    const note = specialNote(s);
    if (note) notes.push(note);
  } else r.confidence = 'unknown';
  if (notes.length > 0) r.note = notes.join('; ');
  return r;
}

/** A hint for tensors whose numbers would otherwise puzzle a reader. */
function specialNote(s: MeasuredStats): string | null {
  const F32_MIN = -3.4028234663852886e38;
  if (s.count > 0 && s.min <= F32_MIN * 0.999) return 'holds float32 min (-3.4e38): a mask fill value, beyond every low-precision format';
  if (s.count > 0 && s.absmax === 0) return 'all zeros';
  return null;
}

function summarise(f: Format, tensors: TensorReport[]): FormatSummary {
  const { over, under, worst, worstTensor } = tallyFormat(f, tensors, 0);
  const sqnrs: number[] = [];
  for (const t of tensors) {
    const r = t.risk[f.name];
    if (r) sqnrs.push(r.sqnrDb ?? Infinity);
  }
  sqnrs.sort((a, b) => a - b);
  let median: number | null = null;
  if (sqnrs.length > 0) {
    const m = sqnrs.length >> 1;
    const v = sqnrs.length % 2 ? sqnrs[m]! : (sqnrs[m - 1]! + sqnrs[m]!) / 2;
    median = Number.isFinite(v) ? v : null;
  }
  return { format: f.name, tensorsOverflowing: over, tensorsUnderflowing: under, worstHeadroomBits: worst, worstTensor, medianSqnrDb: median };
}

function opsetRecord(model: Model): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [d, v] of model.opsets) out[d === '' ? 'ai.onnx' : d] = v;
  return out;
}

/**
 * Types from shape inference (it knows more than the declared value_info, and reads the actual
 * input shapes); null when it fails on this model (the light propagation in capture.ts then
 * fills in the element types).
 */
function inferTypes(model: Model, opts: MeasureOptions, feeds: Feed[]): Map<string, TensorType> | null {
  try {
    const inputShapes: Record<string, number[]> = {};
    for (const f of feeds) inputShapes[f.name] = f.dims;
    return inferShapes(model, { dims: opts.dims ?? {}, inputShapes }).types;
  } catch {
    return null;
  }
}

function dtypeMap(types: Map<string, TensorType>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, t] of types) if (t.dtype > 0) out.set(name, t.dtype);
  return out;
}

/** Bytes ORT hands back for a target, from an inferred or declared concrete shape; else undefined. */
function sizeEstimator(graph: Graph, types: Map<string, TensorType> | null): (t: Target) => number | undefined {
  return (t) => {
    const shape = types?.get(t.name)?.shape ?? graph.declaredTypes.get(t.name)?.shape ?? null;
    if (!shape) return undefined;
    let n = 1;
    for (const d of shape) {
      if (typeof d !== 'number' || !(d >= 0)) return undefined;
      n *= d;
    }
    return n * (t.dtype === DataType.DOUBLE ? 8 : t.dtype === DataType.FLOAT16 ? 2 : 4);
  };
}
