/**
 * Where the rewrite gets the scale of each tensor it touches: a ScaleSource maps a value name
 * to its RMS (and max |x| when known), or null when nothing is known.
 *
 * - Weights and other compile-time constants are read exactly from the model (initializers,
 *   Constant nodes, ConstantOfShape fills), whatever the source.
 * - `staticScales`: activations from the analysis (`analyzeModel`, no data needed).
 * - `measuredScales`: activations measured by running the model (`measureModel`) on the
 *   user's inputs (or seeded random ones).
 * - `reportScales`: any Report (analyze or measure JSON) the caller already holds.
 */
import { DataType, isFloatType } from '../onnx/dtype.js';
import type { Graph, Model } from '../onnx/model.js';
import { TensorData } from '../onnx/tensor.js';
import type { Report } from '../report/types.js';
import { measureModel, type MeasureOptions } from '../measure/measure.js';
import { parseFormat, type Format } from '../formats/index.js';
import { analyzeModel, analyzeModelAsync } from '../analysis/analyze.js';

export interface TensorScale {
  /** √E[x²] */
  rms: number;
  /** max |x| (exact for constants, predicted bound or measured maximum otherwise); null when unknown. */
  absmax: number | null;
  /** Where the numbers come from (for the change report). */
  origin?: 'exact' | 'predicted' | 'measured';
  /** Per-format shares of elements past the max / flushed to zero, when the source computed them (by format name). */
  risk?: Record<string, { overflow: number; underflow: number }>;
}

export type ScaleSource = (valueName: string) => TensorScale | null;

/** Exact statistics of a float tensor. */
export function tensorScale(t: TensorData): TensorScale | null {
  if (!t.isFloat || t.count === 0) return null;
  let sum2 = 0;
  let amax = 0;
  let n = 0;
  for (const chunk of t.chunks()) {
    for (let i = 0; i < chunk.length; i++) {
      const v = chunk[i]!;
      if (!Number.isFinite(v)) continue;
      sum2 += v * v;
      const a = Math.abs(v);
      if (a > amax) amax = a;
      n++;
    }
  }
  if (n === 0) return null;
  return { rms: Math.sqrt(sum2 / n), absmax: amax, origin: 'exact' };
}

/** Exact scales of a graph's constants: initializers, Constant nodes, ConstantOfShape fills. */
export function constantScales(graph: Graph): ScaleSource {
  const cache = new Map<string, TensorScale | null>();
  return (name) => {
    if (cache.has(name)) return cache.get(name)!;
    let s: TensorScale | null = null;
    // IR < 4 lists every initializer among the inputs too: still the weight's value.
    const k = graph.constant(name) ?? graph.initializers.get(name) ?? null;
    if (k) s = tensorScale(k);
    else {
      const p = graph.producer.get(name);
      if (p && p.opType === 'ConstantOfShape' && p.domain === '') {
        const v = p.attrs.tensor('value');
        // Default fill is float 0; a float fill c gives every element c.
        const dtype = v?.data_type ?? DataType.FLOAT;
        if (isFloatType(dtype)) {
          const c = v ? (new TensorData(v, graph.model.dir).toFloat64()[0] ?? 0) : 0;
          s = { rms: Math.abs(c), absmax: Math.abs(c), origin: 'exact' };
        }
      }
    }
    cache.set(name, s);
    return s;
  };
}

/** Scales from a Report (predicted or measured), with exact constants taking precedence. */
export function reportScales(model: Model, report: Report): ScaleSource {
  const exact = constantScales(model.graph);
  const origin: TensorScale['origin'] = report.mode === 'predicted' ? 'predicted' : 'measured';
  const byName = new Map<string, TensorScale>();
  for (const t of report.tensors) {
    if (t.kind === 'gradient' || t.confidence === 'unknown') continue;
    // Values inside If/Loop/Scan bodies (`scope`): the rewrite works on the main graph only, and
    // a branch value may share a main-graph name.
    if (t.scope) continue;
    if (t.rms === null || !Number.isFinite(t.rms)) continue;
    const risk: Record<string, { overflow: number; underflow: number }> = {};
    for (const [f, r] of Object.entries(t.risk ?? {})) risk[f] = { overflow: r.overflow, underflow: r.underflow };
    byName.set(t.name, { rms: t.rms, absmax: t.absmax, origin, risk });
  }
  return (name) => exact(name) ?? byName.get(name) ?? null;
}

/** Combine sources: the first that knows a value wins. */
export function firstOf(...sources: ScaleSource[]): ScaleSource {
  return (name) => {
    for (const s of sources) {
      const v = s(name);
      if (v) return v;
    }
    return null;
  };
}

/**
 * Static scales: exact constants plus the analysis' predictions for activations (no data).
 * Should the analysis fail on a model, only constants are known (said in `note`), and the
 * rewrite leaves activations unscaled, saying why for each.
 */
export function staticScales(model: Model, formats: Format[] = DEFAULT_SCALE_FORMATS): StaticScales {
  try {
    return fromReport(model, analyzeModel(model, { formats }));
  } catch (e) {
    return analysisFailed(model, e);
  }
}

/** The same with the parallel weight pass (what the CLI runs: big models read once, on all cores). */
export async function staticScalesAsync(model: Model, formats: Format[] = DEFAULT_SCALE_FORMATS): Promise<StaticScales> {
  try {
    return fromReport(model, await analyzeModelAsync(model, { formats }));
  } catch (e) {
    return analysisFailed(model, e);
  }
}

const DEFAULT_SCALE_FORMATS = [parseFormat('e4m3'), parseFormat('fp16')];

export interface StaticScales {
  source: ScaleSource;
  report: Report | null;
  note: string | null;
}

function fromReport(model: Model, report: Report): StaticScales {
  return { source: reportScales(model, report), report, note: null };
}

function analysisFailed(model: Model, e: unknown): StaticScales {
  const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
  return { source: constantScales(model.graph), report: null, note: `the static analysis failed (${why}): only weights were scaled, from their exact values` };
}

/** Measured scales: run the model with ONNX Runtime on `inputs` (or seeded random inputs). */
export async function measuredScales(
  model: Model,
  opts: Omit<MeasureOptions, 'formats'> & { formats?: MeasureOptions['formats'] } = {},
): Promise<{ source: ScaleSource; report: Report }> {
  const report = await measureModel(model, { formats: opts.formats ?? [parseFormat('e4m3')], ...opts });
  return { source: reportScales(model, report), report };
}

/**
 * Scales of the values a rewrite pass created as exact multiples of existing ones (x·f for a
 * unit-scaled operand, y/g for an op's raw output): the base value's scale times |f|.
 */
export function withDerived(base: ScaleSource, derived: Map<string, { from: string; factor: number }>): ScaleSource {
  const out: ScaleSource = (name) => {
    const d = derived.get(name);
    if (!d) return base(name);
    const s = out(d.from);
    if (!s) return null;
    const c = Math.abs(d.factor);
    return { rms: s.rms * c, absmax: s.absmax === null ? null : s.absmax * c, origin: s.origin };
  };
  return out;
}
