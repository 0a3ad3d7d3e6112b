/**
 * Quality of `unitscale rewrite` in simulated low precision: output SQNR of the rewritten
 * model against the float32 original, in ONNX Runtime, on seeded random inputs.
 *
 * FP8 (E4M3, QuantizeLinear/DequantizeLinear on every MatMul/Gemm/Conv operand):
 *   (a) naive:   QDQ with scale 1 on the operands as they are;
 *   (b) static:  unitscale — operands brought to RMS ≈ 1 by multipliers from the static analysis;
 *   (b') measured: the same multipliers from a measured run (calibration inputs);
 *   (c) amax:    the usual calibrated recipe, per-tensor scale = max |x| / 448 measured on
 *                calibration inputs (a different seed from the evaluation inputs).
 * Targets: (b) within 1 dB of (c); (b) ≥ 10 dB above (a) wherever (a) loses range.
 *
 * FP16 (whole graph cast): naive cast vs unitscale (static / measured scales).
 *
 * Run: npx tsx bench/rewrite-quality.ts [--quick] [--only NAME] [--json out.json]
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadModel } from '../src/onnx/load.js';
import type { Model } from '../src/onnx/model.js';
import { prepareInputs, type FeedSet } from '../src/measure/inputs.js';
import { rewriteModel, type RewriteOptions } from '../src/rewrite/rewrite.js';
import { measuredScales, staticScales, type ScaleSource } from '../src/rewrite/scales.js';
import { compareRuns, runModel, type OutputValues } from '../src/rewrite/verify.js';
import { parseFormat, quantise } from '../src/formats/index.js';
import * as ort from 'onnxruntime-node';
import { modelWithOutputs, tensorValues, toOrtFeeds } from '../src/measure/capture.js';
import type { Report } from '../src/report/types.js';

const REPO = path.resolve(new URL('..', import.meta.url).pathname);
const SHARED = path.resolve(REPO, '..', 'shared');
const OCR = path.join(REPO, 'node_modules', '@gutenye', 'ocr-models', 'assets');

interface Case {
  name: string;
  file: string;
  shapes?: Record<string, number[]>;
  /** Skip in --quick mode. */
  slow?: boolean;
}

const CASES: Case[] = [
  { name: 'gpt2_tiny', file: path.join(SHARED, 'validation', 'gpt2_tiny.onnx') },
  { name: 'mobilenet_v3_small', file: path.join(SHARED, 'validation', 'mobilenet_v3_small.onnx') },
  { name: 'PP-OCRv4 det (trained)', file: path.join(OCR, 'ch_PP-OCRv4_det_infer.onnx'), shapes: { x: [1, 3, 96, 96] }, slow: true },
  { name: 'PP-OCRv4 rec (trained)', file: path.join(OCR, 'ch_PP-OCRv4_rec_infer.onnx'), shapes: { x: [1, 3, 48, 160] }, slow: true },
  { name: 'PP-OCR cls (trained)', file: path.join(OCR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'), shapes: { x: [1, 3, 48, 192] }, slow: true },
  { name: 'squeezenet (light)', file: path.join(SHARED, 'onnx-backend-data', 'light', 'light_squeezenet.onnx') },
  { name: 'test_Conv2d', file: path.join(SHARED, 'onnx-backend-data', 'pytorch-converted', 'test_Conv2d', 'model.onnx') },
];

const EVAL_SEED = 7;
const CALIBRATION_SEED = 1;
/** Evaluation input sets per model (SQNR pooled over all of them and every output element). */
const EVAL_RUNS = 4;
const CALIBRATION_RUNS = 2;
const OPS = new Set(['MatMul', 'Gemm', 'Conv']);

interface Outcome {
  db: number | null;
  nonFinite: number;
  keep32: number;
  /** Multiplier applied to each operand by the unit-scale pass (value → factor). */
  factors: Map<string, number>;
}

async function sqnr(model: Model, ref: OutputValues[], sets: FeedSet[], opts: RewriteOptions): Promise<Outcome> {
  const r = rewriteModel(model, opts);
  const got = await runModel(r.proto, sets);
  const c = compareRuns(ref, got);
  const factors = new Map<string, number>();
  for (const ch of r.changes) if ((ch.action === 'scale-input' || ch.action === 'scale-weight') && ch.value && ch.constant !== null) factors.set(ch.value, ch.constant);
  return { db: c.pooledSqnrDb, nonFinite: c.newNonFinite, keep32: r.changes.filter((x) => x.action === 'keep-fp32').length, factors };
}

/** The operands of the quantised ops: weights read from the model, activations fetched from one run. */
async function operandValues(model: Model, set: FeedSet): Promise<Map<string, Float32Array | Float64Array>> {
  const names = new Set<string>();
  for (const n of model.graph.nodes) if (n.domain === '' && OPS.has(n.opType)) for (const v of n.inputs.slice(0, 2)) if (v) names.add(v);
  const out = new Map<string, Float32Array | Float64Array>();
  const fetch: { name: string; dtype: number }[] = [];
  for (const v of names) {
    const k = model.graph.constant(v) ?? model.graph.initializers.get(v);
    if (k) out.set(v, k.toFloat64());
    else fetch.push({ name: v, dtype: 1 });
  }
  const session = await ort.InferenceSession.create(modelWithOutputs(model.proto, fetch), { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  try {
    const res = await session.run(toOrtFeeds(set));
    for (const { name } of fetch) {
      const t = res[name] as ort.Tensor | undefined;
      if (t) out.set(name, tensorValues(t));
    }
  } finally {
    await session.release();
  }
  return out;
}

/** Mean and worst e4m3 SQNR (dB) of the operands, each multiplied by `factor(v)` before rounding. */
function operandSqnr(values: Map<string, Float32Array | Float64Array>, factor: (v: string) => number): { mean: number; worst: number } {
  const f = parseFormat('e4m3');
  const dbs: number[] = [];
  for (const [v, x] of values) {
    const c = factor(v);
    let sig = 0;
    let noise = 0;
    for (let i = 0; i < x.length; i++) {
      const a = x[i]!;
      const q = quantise(a * c, f) / c;
      sig += a * a;
      noise += (a - q) * (a - q);
    }
    if (sig > 0) dbs.push(noise === 0 ? 99 : 10 * Math.log10(sig / noise));
  }
  return { mean: dbs.reduce((a, b) => a + b, 0) / Math.max(1, dbs.length), worst: Math.min(...dbs) };
}

/** Worst shares of e4m3 overflow, underflow (flushed to 0) and subnormals over the operands of the quantised ops, at scale 1. */
function naiveRangeLoss(model: Model, report: Report): { overflow: number; underflow: number; subnormal: number } {
  const byName = new Map(report.tensors.map((t) => [t.name, t]));
  let overflow = 0;
  let underflow = 0;
  let subnormal = 0;
  for (const n of model.graph.nodes) {
    if (n.domain !== '' || !OPS.has(n.opType)) continue;
    for (const v of n.inputs.slice(0, 2)) {
      const r = byName.get(v)?.risk?.e4m3;
      if (!r) continue;
      overflow = Math.max(overflow, r.overflow);
      underflow = Math.max(underflow, r.underflow);
      subnormal = Math.max(subnormal, r.subnormal);
    }
  }
  return { overflow, underflow, subnormal };
}

function fmtDb(x: number | null): string {
  if (x === null) return '∞';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '-∞';
  return x.toFixed(1);
}

function pct(x: number): string {
  return x === 0 ? '0' : `${Number((x * 100).toPrecision(2))}%`;
}

function diff(a: number | null, b: number | null): number | null {
  if (a === null || b === null) return null;
  return a - b;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const jsonAt = process.argv.indexOf('--json');
  const jsonOut = jsonAt > 0 ? process.argv[jsonAt + 1] : null;
  const onlyAt = process.argv.indexOf('--only');
  const only = onlyAt > 0 ? process.argv[onlyAt + 1] : null;
  const fp8Rows: string[] = [];
  const fp16Rows: string[] = [];
  const operandRows: string[] = [];
  const records: unknown[] = [];
  for (const c of CASES) {
    if (!existsSync(c.file) || (quick && c.slow)) continue;
    if (only && !c.name.toLowerCase().includes(only.toLowerCase())) continue;
    const model = loadModel(c.file);
    const evalSets = prepareInputs(model, { seed: EVAL_SEED, runs: EVAL_RUNS, ...(c.shapes ? { shapes: c.shapes } : {}) }).sets;
    const ref = await runModel(model.proto, evalSets);
    const t0 = Date.now();
    const st = staticScales(model, [parseFormat('e4m3'), parseFormat('fp16')]);
    const analysisMs = Date.now() - t0;
    const meas = await measuredScales(model, { seed: CALIBRATION_SEED, runs: CALIBRATION_RUNS, formats: [parseFormat('e4m3'), parseFormat('fp16')], ...(c.shapes ? { shapes: c.shapes } : {}) });
    const amaxScale = (src: ScaleSource) => (v: string): number => {
      const s = src(v);
      const a = s?.absmax ?? null;
      return a !== null && a > 0 && Number.isFinite(a) ? a / 448 : 1;
    };

    const a = await sqnr(model, ref, evalSets, { format: 'e4m3', noUnitScale: true });
    const b = await sqnr(model, ref, evalSets, { format: 'e4m3', scales: st.source });
    const bm = await sqnr(model, ref, evalSets, { format: 'e4m3', scales: meas.source });
    const cc = await sqnr(model, ref, evalSets, { format: 'e4m3', noUnitScale: true, qdqScale: amaxScale(meas.source) });
    const loss = naiveRangeLoss(model, meas.report);
    const operands = await operandValues(model, evalSets[0]!);
    const oa = operandSqnr(operands, () => 1);
    const ob = operandSqnr(operands, (v) => b.factors.get(v) ?? 1);
    const oc = operandSqnr(operands, (v) => 1 / amaxScale(meas.source)(v));
    // Range lost: values saturated or flushed to zero (subnormals only lose precision).
    const losesRange = loss.overflow > 1e-3 || loss.underflow > 0.1;
    const bc = diff(b.db, cc.db);
    const ba = diff(b.db, a.db);
    const ok1 = bc === null ? b.db === null : bc >= -1;
    const ok2 = !losesRange || (ba === null ? b.db === null : ba >= 10);
    fp8Rows.push(
      `| ${c.name} | ${fmtDb(a.db)} | ${fmtDb(b.db)} | ${fmtDb(bm.db)} | ${fmtDb(cc.db)} | ${bc === null ? '—' : bc.toFixed(1)} | ${ba === null ? '—' : ba.toFixed(1)} | ${pct(loss.overflow)} / ${pct(loss.underflow)} / ${pct(loss.subnormal)} | ${ok1 ? 'yes' : 'NO'} / ${losesRange ? (ok2 ? 'yes' : 'NO') : 'n/a'} |`,
    );
    operandRows.push(`| ${c.name} | ${operands.size} | ${oa.mean.toFixed(1)} / ${oa.worst.toFixed(1)} | ${ob.mean.toFixed(1)} / ${ob.worst.toFixed(1)} | ${oc.mean.toFixed(1)} / ${oc.worst.toFixed(1)} |`);

    const h0 = await sqnr(model, ref, evalSets, { format: 'fp16', noUnitScale: true, naiveCast: true });
    const h1 = await sqnr(model, ref, evalSets, { format: 'fp16', scales: st.source });
    const h2 = await sqnr(model, ref, evalSets, { format: 'fp16', scales: meas.source });
    fp16Rows.push(`| ${c.name} | ${fmtDb(h0.db)}${h0.nonFinite ? ` (${h0.nonFinite} non-finite)` : ''} | ${fmtDb(h1.db)}${h1.nonFinite ? ` (${h1.nonFinite} non-finite)` : ''} | ${h1.keep32} | ${fmtDb(h2.db)} | ${h2.keep32} |`);
    records.push({ model: c.name, analysisMs, fp8: { naive: a.db, static: b.db, measured: bm.db, amax: cc.db, naiveRangeLoss: loss, operandSqnr: { naive: oa, static: ob, amax: oc } }, fp16: { naive: h0.db, static: h1.db, measured: h2.db, keptFp32: h1.keep32 } });
    process.stderr.write(`${c.name} done (analysis ${analysisMs} ms)\n`);
  }
  const out: string[] = [];
  out.push('### FP8 E4M3 QDQ on MatMul/Gemm/Conv operands — output SQNR vs float32 (dB)');
  out.push('');
  out.push('| model | (a) naive, scale 1 | (b) unitscale static | (b′) unitscale measured | (c) amax/448 calibrated | (b)−(c) | (b)−(a) | (a) worst operand overflow / flushed / subnormal | (b) within 1 dB of (c) / ≥10 dB over (a) |');
  out.push('|---|---|---|---|---|---|---|---|---|');
  out.push(...fp8Rows);
  out.push('');
  out.push('### FP8 E4M3 per-operand SQNR (dB, mean / worst over the MatMul/Gemm/Conv operands, one evaluation input)');
  out.push('');
  out.push('| model | operands | (a) naive, scale 1 | (b) unitscale static | (c) amax/448 |');
  out.push('|---|---|---|---|---|');
  out.push(...operandRows);
  out.push('');
  out.push('### FP16 cast — output SQNR vs float32 (dB)');
  out.push('');
  out.push('| model | naive cast | unitscale static | ops kept fp32 | unitscale measured | ops kept fp32 |');
  out.push('|---|---|---|---|---|---|');
  out.push(...fp16Rows);
  process.stdout.write(`${out.join('\n')}\n`);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(records, null, 2));
}

await main();
