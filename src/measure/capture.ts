/**
 * Capturing intermediate tensors with ONNX Runtime: a copy of the ModelProto whose graph
 * outputs are the values we want. One run returns all of a session's outputs at once, so the
 * targets are split into batches whose estimated output bytes fit a memory budget (512 MiB by
 * default; optionally also at most N outputs): usually a single batch, hence a single session
 * creation and a single run per input set. Each fetched tensor goes to a callback (a streaming
 * accumulator) and is dropped.
 *
 * What can be fetched: only top-level float32/float64/float16 values. ORT cannot hand back
 * FP8/BF16 outputs (and INT4 crashes it), and values inside If/Loop/Scan bodies are not
 * graph values at all; those are reported as not measurable.
 *
 * A graph output needs a ValueInfoProto with an elem_type (the shape may be omitted). Types
 * come from the model's value_info, else from shape inference (src/analysis/shapes, when
 * present), else from a light dtype propagation here. If a session still refuses a batch
 * (a wrong guess), the batch is split in halves until the offending outputs are isolated,
 * and those are reported as not measurable with ORT's reason.
 */
import * as ort from 'onnxruntime-node';
import { ExitCode, UnitscaleError } from '../errors.js';
import { decode, parseFormat } from '../formats/index.js';
import { DataType } from '../onnx/dtype.js';
import type { Graph, Model } from '../onnx/model.js';
import { encodeModelProto } from '../onnx/proto.js';
import type { ModelProto, ValueInfoProto } from '../onnx/proto-types.js';
import { ortTypeOf, type FeedSet } from './inputs.js';

/** Element types ONNX Runtime can return as outputs and we can read. */
export const FETCHABLE = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16]);

export interface Target {
  name: string;
  dtype: number;
}

export interface Unmeasurable {
  name: string;
  reason: string;
}

// ---------------------------------------------------------------------------------------------
// Element types of every value

/** Ops whose outputs are all int64. */
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'NonMaxSuppression']);
/** Ops whose outputs are bool. */
const BOOL_OPS = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);

/**
 * Element type of each value of `graph` (and its subgraphs), from declared types first, then
 * `inferred`, then op rules. Values whose type cannot be told are absent.
 */
export function valueDtypes(graph: Graph, inferred: Map<string, number> | null, outer?: Map<string, number>): Map<string, number> {
  const t = new Map<string, number>(outer ?? []);
  for (const [name, ty] of graph.declaredTypes) if (ty.dtype) t.set(name, ty.dtype);
  for (const [name, k] of graph.initializers) t.set(name, k.dtype);
  const put = (name: string | undefined, dt: number | undefined): void => {
    if (!name || !dt || t.has(name)) return;
    const inf = inferred?.get(name);
    t.set(name, inf || dt);
  };
  for (const node of graph.topologicalOrder()) {
    if (inferred) for (const o of node.outputs) if (o && !t.has(o) && inferred.get(o)) t.set(o, inferred.get(o)!);
    const op = node.opType;
    const a = node.attrs;
    const first = node.inputs.find((i) => i && t.has(i));
    const inType = (k: number): number | undefined => (node.inputs[k] ? t.get(node.inputs[k]!) : undefined);
    const outs = node.outputs;
    const sub = new Map<string, number>();
    for (const s of node.subgraphs) {
      for (const [k, v] of valueDtypes(s.graph, inferred, t)) if (!t.has(k)) sub.set(k, v);
    }
    const subOut = (vi: ValueInfoProto): number | undefined => vi.type?.tensor_type?.elem_type || sub.get(vi.name ?? '');
    if (node.domain !== '' && node.domain !== 'ai.onnx') {
      // Contrib ops: only what is declared (or inferred) is trusted.
      for (const [k, v] of sub) if (!t.has(k)) t.set(k, v);
      continue;
    }
    switch (op) {
      case 'Cast':
        put(outs[0], a.int('to'));
        break;
      case 'CastLike':
        put(outs[0], inType(1));
        break;
      case 'Constant': {
        const k = graph.constant(outs[0] ?? '');
        put(outs[0], k?.dtype);
        break;
      }
      case 'ConstantOfShape': {
        const v = a.tensor('value');
        put(outs[0], v?.data_type ?? DataType.FLOAT);
        break;
      }
      case 'EyeLike':
      case 'RandomNormalLike':
      case 'RandomUniformLike':
        put(outs[0], a.int('dtype') ?? inType(0));
        break;
      case 'RandomNormal':
      case 'RandomUniform':
        put(outs[0], a.int('dtype') ?? DataType.FLOAT);
        break;
      case 'QuantizeLinear':
        put(outs[0], inType(2) ?? a.int('output_dtype') ?? DataType.UINT8);
        break;
      case 'DequantizeLinear':
        put(outs[0], inType(1));
        break;
      case 'DynamicQuantizeLinear':
        put(outs[0], DataType.UINT8);
        put(outs[1], DataType.FLOAT);
        put(outs[2], DataType.UINT8);
        break;
      case 'Where':
        put(outs[0], inType(1) ?? inType(2));
        break;
      case 'OneHot':
        put(outs[0], inType(2));
        break;
      case 'TopK':
        put(outs[0], inType(0));
        put(outs[1], DataType.INT64);
        break;
      case 'MaxPool':
        put(outs[0], inType(0));
        put(outs[1], DataType.INT64);
        break;
      case 'Unique':
        put(outs[0], inType(0));
        for (const o of outs.slice(1)) put(o, DataType.INT64);
        break;
      case 'Dropout':
        put(outs[0], inType(0));
        put(outs[1], DataType.BOOL);
        break;
      case 'LayerNormalization':
        put(outs[0], inType(0));
        put(outs[1], a.int('stash_type') ?? DataType.FLOAT);
        put(outs[2], a.int('stash_type') ?? DataType.FLOAT);
        break;
      case 'If': {
        const branch = node.subgraphs[0]?.graph;
        (branch?.outputs ?? []).forEach((vi, i) => put(outs[i], subOut(vi)));
        break;
      }
      case 'Loop': {
        const body = node.subgraphs[0]?.graph;
        // body outputs: cond, carried…, scan…; node outputs: carried…, scan…
        (body?.outputs ?? []).slice(1).forEach((vi, i) => put(outs[i], subOut(vi)));
        break;
      }
      case 'Scan': {
        const body = node.subgraphs[0]?.graph;
        (body?.outputs ?? []).forEach((vi, i) => put(outs[i], subOut(vi)));
        break;
      }
      default:
        if (INT64_OPS.has(op)) for (const o of outs) put(o, DataType.INT64);
        else if (BOOL_OPS.has(op)) for (const o of outs) put(o, DataType.BOOL);
        else if (op === 'Range') put(outs[0], inType(0));
        else if (first) for (const o of outs) put(o, t.get(first));
    }
    for (const [k, v] of sub) if (!t.has(k)) t.set(k, v);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Sessions and runs

export interface CaptureOptions {
  /** At most this many outputs per session (default: no limit but the memory budget). */
  batchOutputs?: number;
  /** Estimated bytes of one run's fetched outputs per session stay within this (default 512 MiB). */
  memoryBudget?: number;
  /** Estimated bytes of a target's value (from shape inference), undefined when unknown. */
  sizeOf?: (t: Target) => number | undefined;
}

export const DEFAULT_MEMORY_BUDGET = 512 * 2 ** 20;
/** Outputs per session when no target's size can be estimated and no count limit was given. */
const BLIND_BATCH = 200;

/**
 * Split `targets` (in order) into batches: at most `batchOutputs` each, and estimated bytes
 * within the budget (a single target larger than the budget gets a batch of its own). Targets
 * of unknown size count as the largest known one; when no size is known at all the batches
 * hold at most 200 outputs (unless a count was given).
 */
export function planBatches(targets: Target[], opts: CaptureOptions): Target[][] {
  const budget = opts.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  const sizes = targets.map((t) => opts.sizeOf?.(t));
  const known = sizes.filter((b): b is number => b !== undefined && Number.isFinite(b) && b >= 0);
  let maxCount = opts.batchOutputs !== undefined && opts.batchOutputs >= 1 ? Math.floor(opts.batchOutputs) : Infinity;
  if (known.length === 0 && maxCount === Infinity) maxCount = BLIND_BATCH;
  const guess = known.length > 0 ? Math.max(...known) : 0;
  const batches: Target[][] = [];
  let cur: Target[] = [];
  let bytes = 0;
  targets.forEach((t, i) => {
    const b = sizes[i] !== undefined && Number.isFinite(sizes[i]!) ? sizes[i]! : guess;
    if (cur.length > 0 && (cur.length >= maxCount || bytes + b > budget)) {
      batches.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(t);
    bytes += b;
  });
  if (cur.length > 0) batches.push(cur);
  return batches;
}

export type OnTensor = (name: string, run: number, data: Float32Array | Float64Array, dims: number[]) => void;

/** A copy of the model whose graph outputs are exactly `targets`. */
export function modelWithOutputs(proto: ModelProto, targets: Target[]): Uint8Array {
  const output: ValueInfoProto[] = targets.map((t) => ({ name: t.name, type: { tensor_type: { elem_type: t.dtype } } }));
  const copy: ModelProto = { ...proto, graph: { ...proto.graph!, output } };
  return encodeModelProto(copy);
}

/**
 * Optimisations off (every value stays a value). No CPU memory arena: a run that returns every
 * intermediate cannot reuse buffers, and growing the arena for them measured 2–3× slower than
 * plain allocations (PP-OCRv4 rec, 50M elements: ≈ 200 → 100 ms per run).
 */
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  graphOptimizationLevel: 'disabled',
  logSeverityLevel: 3,
  enableCpuMemArena: false,
};

function usesExternalData(model: Model): boolean {
  for (const g of model.graph.allGraphs()) for (const t of g.initializers.values()) if (t.external) return true;
  return false;
}

/**
 * A session on (a modified copy of) `model`. ORT resolves the external data of a model given
 * as bytes against the working directory (and refuses absolute or escaping paths), so for such
 * models the working directory is the model's folder while ORT loads it (the load is synchronous
 * inside create; the previous directory is restored right after).
 */
export async function createSession(model: Model, bytes: Uint8Array): Promise<ort.InferenceSession> {
  if (!model.dir || !usesExternalData(model)) return ort.InferenceSession.create(bytes, SESSION_OPTIONS);
  const cwd = process.cwd();
  process.chdir(model.dir);
  try {
    return await ort.InferenceSession.create(bytes, SESSION_OPTIONS);
  } finally {
    process.chdir(cwd);
  }
}

export function oneLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  const line = m.split('\n').map((s) => s.trim()).find((s) => s.length > 0) ?? 'unknown error';
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

export function toOrtFeeds(set: FeedSet): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const f of set) {
    feeds[f.name] = new ort.Tensor(ortTypeOf(f.dtype) as 'float32', f.data as Float32Array, f.dims);
  }
  return feeds;
}

let halfTable: Float32Array | null = null;
function halfToFloat(bits: Uint16Array): Float32Array {
  if (!halfTable) {
    const f = parseFormat('fp16');
    halfTable = new Float32Array(65536);
    for (let c = 0; c < 65536; c++) halfTable[c] = decode(c, f);
  }
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfTable[bits[i]!]!;
  return out;
}

/** A fetched tensor's values as float32/float64. */
export function tensorValues(t: ort.Tensor): Float32Array | Float64Array {
  const d = t.data as unknown;
  if (d instanceof Float32Array || d instanceof Float64Array) return d;
  if (d instanceof Uint16Array) return halfToFloat(d);
  // Float16Array (where the runtime has it) or anything array-like of numbers.
  return Float32Array.from(d as ArrayLike<number>);
}

/**
 * Run the model over every feed set, fetching `targets` in batches (`planBatches`): one session
 * per batch, created once and run once per feed set. `onTensor` sees each (value, run) once, in
 * target order within a run, and `onBatchDone` is told when a batch's values have all their runs.
 * Returns the targets ORT refused to fetch, with its reason.
 */
export async function captureAll(
  model: Model,
  targets: Target[],
  sets: FeedSet[],
  opts: CaptureOptions,
  onTensor: OnTensor,
  onBatchDone: (names: string[]) => void,
): Promise<Unmeasurable[]> {
  const failed: Unmeasurable[] = [];
  const feeds = sets.map(toOrtFeeds);
  let baseChecked = false;

  const checkBase = async (): Promise<void> => {
    if (baseChecked) return;
    baseChecked = true;
    try {
      const s = await createSession(model, encodeModelProto(model.proto));
      await s.release();
    } catch (e) {
      throw new UnitscaleError(`ONNX Runtime cannot load the model: ${oneLine(e)}`, ExitCode.RUNTIME);
    }
  };

  /** Sessions for `batch`, splitting it where ORT refuses some outputs. */
  const sessionsFor = async (batch: Target[]): Promise<{ session: ort.InferenceSession; targets: Target[] }[]> => {
    try {
      return [{ session: await createSession(model, modelWithOutputs(model.proto, batch)), targets: batch }];
    } catch (e) {
      await checkBase();
      if (batch.length === 1) {
        failed.push({ name: batch[0]!.name, reason: `ONNX Runtime cannot output it: ${oneLine(e)}` });
        return [];
      }
      const mid = Math.ceil(batch.length / 2);
      return [...(await sessionsFor(batch.slice(0, mid))), ...(await sessionsFor(batch.slice(mid)))];
    }
  };

  for (const batch of planBatches(targets, opts)) {
    for (const { session, targets: got } of await sessionsFor(batch)) {
      try {
        for (let run = 0; run < feeds.length; run++) {
          let out: ort.InferenceSession.OnnxValueMapType;
          try {
            out = await session.run(feeds[run]!);
          } catch (e) {
            throw new UnitscaleError(`ONNX Runtime failed running the model${feeds.length > 1 ? ` (run ${run})` : ''}: ${oneLine(e)}`, ExitCode.RUNTIME);
          }
          for (const t of got) {
            const v = out[t.name] as ort.Tensor | undefined;
            if (!v) continue;
            onTensor(t.name, run, tensorValues(v), v.dims.map(Number));
            v.dispose();
          }
        }
      } finally {
        await session.release();
      }
    }
    onBatchDone(batch.map((t) => t.name));
  }
  return failed;
}

/** One plain run of the unmodified model (for benchmarks and checks). */
export async function plainRun(model: Model, set: FeedSet): Promise<Record<string, ort.Tensor>> {
  const s = await createSession(model, encodeModelProto(model.proto));
  try {
    return (await s.run(toOrtFeeds(set))) as Record<string, ort.Tensor>;
  } finally {
    await s.release();
  }
}
