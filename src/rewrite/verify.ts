/**
 * Checking a rewrite with ONNX Runtime: run the original and the rewritten model on the same
 * feeds and compare every graph output — max error relative to the output's largest
 * magnitude, SQNR, and non-finite counts.
 */
import * as ort from 'onnxruntime-node';
import { ExitCode, UnitscaleError } from '../errors.js';
import { toOrtFeeds, tensorValues, oneLine } from '../measure/capture.js';
import type { Feed, FeedSet } from '../measure/inputs.js';
import { encode, parseFormat } from '../formats/index.js';
import { DataType } from '../onnx/dtype.js';
import { decodeModelProto, encodeModelProto } from '../onnx/proto.js';
import type { ModelProto } from '../onnx/proto-types.js';

export interface OutputComparison {
  name: string;
  /** max |a − b| / max |a| over the finite elements of the reference a. */
  maxRelError: number;
  /** 10·log10(Σa² / Σ(a − b)²); null when identical. */
  sqnrDb: number | null;
  /** Non-finite elements in the candidate where the reference is finite. */
  newNonFinite: number;
  count: number;
}

export interface Comparison {
  outputs: OutputComparison[];
  /** Worst over outputs. */
  maxRelError: number;
  minSqnrDb: number | null;
  /** Signal and noise summed over every output and run: 10·log10(Σa² / Σ(a − b)²); null when identical. */
  pooledSqnrDb: number | null;
  newNonFinite: number;
}

export type OutputValues = Map<string, Float32Array | Float64Array>;

const SESSION: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 };

/** Run a model (proto or encoded bytes) on each feed set; returns the outputs of every run. */
export async function runModel(model: ModelProto | Uint8Array, sets: FeedSet[], opts: { optimize?: boolean } = {}): Promise<OutputValues[]> {
  const bytes = model instanceof Uint8Array ? model : encodeModelProto(model);
  const proto = model instanceof Uint8Array ? decodeModelProto(model) : model;
  const inputTypes = new Map<string, number>();
  for (const vi of proto.graph?.input ?? []) if (vi.name && vi.type?.tensor_type?.elem_type) inputTypes.set(vi.name, vi.type.tensor_type.elem_type);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, opts.optimize ? { logSeverityLevel: 3 } : SESSION);
  } catch (e) {
    throw new UnitscaleError(`ONNX Runtime cannot load the model: ${oneLine(e)}`, ExitCode.RUNTIME);
  }
  try {
    const results: OutputValues[] = [];
    for (const set of sets) {
      let out: ort.InferenceSession.OnnxValueMapType;
      try {
        out = await session.run(toOrtFeeds(set.map((feed) => adaptFeed(feed, inputTypes.get(feed.name)))));
      } catch (e) {
        throw new UnitscaleError(`ONNX Runtime failed running the model: ${oneLine(e)}`, ExitCode.RUNTIME);
      }
      const m: OutputValues = new Map();
      for (const name of session.outputNames) {
        const t = out[name] as ort.Tensor | undefined;
        if (!t) continue;
        if (t.type === 'float32' || t.type === 'float64' || t.type === 'float16') m.set(name, Float64Array.from(tensorValues(t)));
        else if (t.type === 'int64' || t.type === 'int32' || t.type === 'bool' || t.type === 'uint8' || t.type === 'int8') {
          m.set(name, Float64Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v)));
        }
      }
      results.push(m);
    }
    return results;
  } finally {
    await session.release();
  }
}

/** A float32 feed given to a model whose input became fp16 (a cast graph without --keep-io-types). */
export function adaptFeed(feed: Feed, want: number | undefined): Feed {
  if (want === undefined || want === feed.dtype) return feed;
  if (feed.dtype === DataType.FLOAT && want === DataType.FLOAT16) {
    const f = parseFormat('fp16');
    const src = feed.data as Float32Array;
    return { ...feed, dtype: want, data: Uint16Array.from(src, (x) => encode(x, f)) };
  }
  return feed;
}

export function compareValues(name: string, a: ArrayLike<number>, b: ArrayLike<number>): OutputComparison {
  const n = Math.min(a.length, b.length);
  let amax = 0;
  let sig = 0;
  let noise = 0;
  let maxErr = 0;
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (!Number.isFinite(x)) continue;
    if (!Number.isFinite(y)) {
      bad++;
      continue;
    }
    amax = Math.max(amax, Math.abs(x));
    sig += x * x;
    const d = x - y;
    noise += d * d;
    maxErr = Math.max(maxErr, Math.abs(d));
  }
  return {
    name,
    maxRelError: a.length !== b.length ? Infinity : amax > 0 ? maxErr / amax : maxErr,
    sqnrDb: noise === 0 ? null : sig === 0 ? -Infinity : 10 * Math.log10(sig / noise),
    newNonFinite: bad,
    count: n,
  };
}

/** Compare runs output by output (outputs matched by name). */
export function compareRuns(reference: OutputValues[], candidate: OutputValues[]): Comparison {
  const outputs: OutputComparison[] = [];
  let sig = 0;
  let noise = 0;
  for (let r = 0; r < reference.length; r++) {
    for (const [name, a] of reference[r]!) {
      const b = candidate[r]?.get(name);
      if (!b) {
        outputs.push({ name, maxRelError: Infinity, sqnrDb: -Infinity, newNonFinite: a.length, count: a.length });
        noise = Infinity;
        continue;
      }
      outputs.push(compareValues(name, a, b));
      for (let i = 0; i < Math.min(a.length, b.length); i++) {
        const x = a[i]!;
        const y = b[i]!;
        if (!Number.isFinite(x)) continue;
        sig += x * x;
        noise += Number.isFinite(y) ? (x - y) * (x - y) : Infinity;
      }
    }
  }
  // Pool the signal and noise of one output over runs for its SQNR: per-run entries suffice here.
  let maxRel = 0;
  let minSqnr: number | null = null;
  let bad = 0;
  for (const o of outputs) {
    maxRel = Math.max(maxRel, o.maxRelError);
    if (o.sqnrDb !== null) minSqnr = minSqnr === null ? o.sqnrDb : Math.min(minSqnr, o.sqnrDb);
    bad += o.newNonFinite;
  }
  const pooled = noise === 0 ? null : noise === Infinity ? -Infinity : 10 * Math.log10(sig / noise);
  return { outputs, maxRelError: maxRel, minSqnrDb: minSqnr, pooledSqnrDb: pooled, newNonFinite: bad };
}

/** Run both models on the same feeds and compare their outputs. */
export async function verifyRewrite(original: ModelProto | Uint8Array, rewritten: ModelProto | Uint8Array, sets: FeedSet[]): Promise<Comparison> {
  const ref = await runModel(original, sets);
  const got = await runModel(rewritten, sets);
  return compareRuns(ref, got);
}
