/**
 * `rewriteModel`: the entry of the rewrite stage. Passes, in order:
 *   1. unit scaling (always): weights stored as W/σW, Mul multipliers around each
 *      MatMul/Gemm/Conv so that its operands have RMS ≈ 1, output restored after;
 *   2. `format` FP8: opset raised to 19 if needed, QuantizeLinear/DequantizeLinear pairs
 *      with FLOAT8 zero points on the unit-scaled operands, weights optionally stored in FP8;
 *   3. `format` fp16/bf16: the whole graph cast, with the ops the analysis predicts out of
 *      range kept in float32 and constants saturated.
 * The input Model is never mutated; the result is a new ModelProto plus a report of every change.
 */
import { UsageError } from '../errors.js';
import { parseFormat, type Format } from '../formats/index.js';
import type { Model } from '../onnx/model.js';
import type { ModelProto } from '../onnx/proto-types.js';
import { ModelEditor } from './edit.js';
import { constantScales, withDerived, type ScaleSource } from './scales.js';
import type { Change } from './types.js';
import { DEFAULT_OPS, SCALABLE_OPS, unitScale, type ScaleRounding } from './unit-scale.js';
import { quantizeOperands } from './fp8-qdq.js';
import { upgradeOpset } from './opset.js';
import { castGraph } from './fp16.js';

export type { Change } from './types.js';

export const FP8_FORMATS = ['e4m3', 'e5m2', 'e4m3fnuz', 'e5m2fnuz'] as const;
export const HALF_FORMATS = ['fp16', 'bf16'] as const;

export interface RewriteOptions {
  /** Target low-precision format: FP8 (QDQ) or fp16/bf16 (graph cast). None: unit scaling only. */
  format?: string | null;
  /** Op types to unit-scale (default MatMul, Gemm, Conv). */
  ops?: string[];
  /** Scale (and quantise) weights only. */
  weightsOnly?: boolean;
  /** FP8: store weights as FP8 initializers + DequantizeLinear. */
  weightsFp8?: boolean;
  /** fp16/bf16: keep float32 graph inputs and outputs (Casts at the boundary). */
  keepIoTypes?: boolean;
  /** Scale of each value (default: exact constants only). */
  scales?: ScaleSource;
  /** For the report: where activation scales come from. */
  scaleLabel?: string;
  /** Round multipliers to powers of two (exact; default) or use 1/σ as is. */
  rounding?: ScaleRounding;
  /** Skip the unit-scaling multipliers (cast or quantise the model as it is: for comparisons). */
  noUnitScale?: boolean;
  /** FP8: the QDQ scale of each operand (default 1). For calibrated baselines: leave unset for unit scaling. */
  qdqScale?: (value: string) => number;
  /** fp16/bf16: plain conversion — nothing kept in float32, nothing saturated (for comparisons). */
  naiveCast?: boolean;
}

export interface RewriteResult {
  proto: ModelProto;
  changes: Change[];
  format: Format | null;
}

export function resolveFormat(name: string | null | undefined): Format | null {
  if (!name) return null;
  let f: Format;
  try {
    f = parseFormat(name);
  } catch (e) {
    throw new UsageError(`--format ${name}: ${(e as Error).message}`);
  }
  if (![...FP8_FORMATS, ...HALF_FORMATS].includes(f.name as (typeof FP8_FORMATS)[number])) {
    throw new UsageError(`--format ${name}: rewrite supports ${[...FP8_FORMATS, ...HALF_FORMATS].join(', ')}`);
  }
  return f;
}

export function resolveOps(ops: string[] | undefined): string[] {
  if (!ops || ops.length === 0) return [...DEFAULT_OPS];
  for (const o of ops) {
    if (!(SCALABLE_OPS as readonly string[]).includes(o)) throw new UsageError(`--ops ${o}: rewrite handles ${SCALABLE_OPS.join(', ')}`);
  }
  return ops;
}

export function rewriteModel(model: Model, opts: RewriteOptions = {}): RewriteResult {
  const format = resolveFormat(opts.format);
  const ops = resolveOps(opts.ops);
  if (opts.weightsFp8 && (!format || !(FP8_FORMATS as readonly string[]).includes(format.name))) {
    throw new UsageError('--weights-fp8 needs --format e4m3, e5m2, e4m3fnuz or e5m2fnuz');
  }
  if (opts.keepIoTypes && (!format || !(HALF_FORMATS as readonly string[]).includes(format.name))) {
    throw new UsageError('--keep-io-types needs --format fp16 or bf16');
  }
  const editor = new ModelEditor(model.proto);
  const changes: Change[] = [];
  const scales = opts.scales ?? constantScales(model.graph);
  // Mul and Gemm before opset 7 used legacy broadcasting (and ONNX Runtime runs neither):
  // the multipliers need numpy broadcasting, so such models move to opset 7 first.
  const hasTargets = (editor.graph.node ?? []).some((n) => (n.domain ?? '') === '' && ops.includes(n.op_type ?? ''));
  const fp8 = format !== null && (FP8_FORMATS as readonly string[]).includes(format.name);
  if (fp8) upgradeOpset(editor, 19, changes);
  else if (editor.opset < 7 && hasTargets && !opts.noUnitScale) upgradeOpset(editor, 7, changes);
  const scaled = unitScale(
    editor,
    model,
    {
      ops,
      weightsOnly: opts.weightsOnly ?? false,
      rounding: opts.rounding ?? 'pow2',
      scales: opts.noUnitScale ? () => null : scales,
      scaleLabel: opts.scaleLabel ?? 'exact constants only',
      maxAfterScaling: format ? format.max : null,
    },
    opts.noUnitScale ? [] : changes,
  );
  if (format && fp8) {
    quantizeOperands(editor, model, scaled, { format, weightsOnly: opts.weightsOnly ?? false, weightsFp8: opts.weightsFp8 ?? false, ...(opts.qdqScale ? { scaleOf: opts.qdqScale } : {}) }, changes);
  } else if (format) {
    castGraph(editor, model, { format, keepIoTypes: opts.keepIoTypes ?? false, scales: withDerived(scales, editor.derived), naive: opts.naiveCast ?? false }, changes);
  }
  return { proto: editor.proto, changes, format };
}
