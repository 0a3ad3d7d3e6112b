/**
 * `unitscale measure <model>`: run the model with ONNX Runtime and report the measured scale
 * and per-format risk of every float tensor. Flags → MeasureOptions → measureModel → render.
 */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { resolveFormats } from '../../gate/config.js';
import { compareReports } from '../../measure/compare.js';
import { measureModel, type MeasureOptions } from '../../measure/measure.js';
import { loadModel } from '../../onnx/load.js';
import type { Model } from '../../onnx/model.js';
import type { Report, TensorReport } from '../../report/types.js';
import { parseDimFlags, parseFormatNames, parseShapeFlags } from '../model-options.js';
import { addGateOptions, applyGateOptions, resolveGateSettings, type GateCliOptions, type GateSettings } from '../gate-options.js';
import { makeTable } from '../table.js';

export const DEFAULT_FORMATS = 'e4m3,e5m2,fp16,bf16';

export interface MeasureCliOptions extends GateCliOptions {
  formats?: string;
  inputs?: string;
  runs?: string;
  seed?: string;
  dim?: string[];
  shape?: string[];
  json?: boolean;
  top?: string;
  batchOutputs?: string;
  compare?: boolean;
}

export function registerMeasure(program: Command): Command {
  const cmd = program
    .command('measure')
    .description('run the model with ONNX Runtime and measure the scale and format risk of every float tensor')
    .argument('<model>', 'ONNX model file')
    .option('--formats <list>', `comma-separated formats to assess (default ${DEFAULT_FORMATS}, or the config's)`)
    .option('--inputs <path>', 'input tensors: a folder of input_K.pb (ONNX test data) or NAME.npy files, or an .npz')
    .option('--runs <n>', 'number of random input sets (default 1)')
    .option('--seed <n>', 'seed of the random inputs (default 0)')
    .option('--dim <name=value>', 'value of a symbolic dimension (repeatable)', collect, [])
    .option('--shape <name=d0,d1,...>', 'shape of one input (repeatable)', collect, [])
    .option('--json', 'print the JSON report')
    .option('--top <n>', 'rows of the riskiest tensors in the table (default 20; 0 = all)')
    .option('--batch-outputs <n>', 'at most this many intermediate outputs fetched per session (default: as many as fit a 512 MiB estimate of their size)')
    .option('--compare', 'also run the static analysis and show prediction vs measurement');
  addGateOptions(cmd).action(async (modelPath: string, o: MeasureCliOptions) => {
    // Usage errors (flags, config, baseline) come before the long work.
    const settings = resolveGateSettings(o, modelPath);
    const { report, text } = await measureFromCli(modelPath, o, settings);
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    process.exitCode = await applyGateOptions(report, o, modelPath, { settings });
  });
  return cmd;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Everything the command does except printing and gating: the report and the text to print. */
export async function measureFromCli(modelPath: string, o: MeasureCliOptions, settings?: GateSettings): Promise<{ report: Report; text: string }> {
  const opts = parseOptions(o, settings);
  const top = o.top === undefined ? 20 : positiveInt('--top', o.top, true);
  const model = loadModel(modelPath);
  let report = await measureModel(model, opts);
  if (o.compare) report = compareReports(await predict(model, opts), report);
  return { report, text: o.json ? JSON.stringify(report, null, 2) : renderMeasureReport(report, top) };
}

/** The text `unitscale measure` prints (no gate). */
export async function runMeasureCommand(modelPath: string, o: MeasureCliOptions): Promise<string> {
  return (await measureFromCli(modelPath, o)).text;
}

/** Flags (and the config's formats/dims/shapes, which flags override) → MeasureOptions. */
export function parseOptions(o: MeasureCliOptions, settings?: GateSettings): MeasureOptions {
  const names = settings
    ? resolveFormats(o.formats, settings.config.config, DEFAULT_FORMATS.split(','))
    : (o.formats ?? DEFAULT_FORMATS).split(',');
  const formats = parseFormatNames(names);
  const dims = parseDimFlags(o.dim, settings?.dims);
  const shapes = parseShapeFlags(o.shape, settings?.shapes);
  const out: MeasureOptions = { formats, dims, shapes };
  if (o.inputs !== undefined) out.inputs = o.inputs;
  if (o.runs !== undefined) out.runs = positiveInt('--runs', o.runs);
  if (o.seed !== undefined) {
    if (!/^\d+$/.test(o.seed)) throw new UsageError(`--seed ${o.seed}: expected a whole number`);
    out.seed = Number(o.seed);
  }
  if (o.batchOutputs !== undefined) out.batchOutputs = positiveInt('--batch-outputs', o.batchOutputs);
  if (o.inputs !== undefined && o.runs !== undefined && out.runs! > 1) {
    throw new UsageError('--runs applies to random inputs; with --inputs there is one run per input set');
  }
  return out;
}

function positiveInt(flag: string, v: string, allowZero = false): number {
  if (!/^\d+$/.test(v.trim()) || (!allowZero && Number(v) === 0)) throw new UsageError(`${flag} ${v}: expected a ${allowZero ? 'non-negative' : 'positive'} whole number`);
  return Number(v);
}

/**
 * Hook for --compare: the static analyser (src/analysis/analyze.ts, `analyzeModel(model, opts)`),
 * loaded only when asked for, so measure works in builds without it.
 */
async function predict(model: Model, opts: MeasureOptions): Promise<Report> {
  const modPath = '../../analysis/analyze.js';
  type AnalyzeModule = { analyzeModel?: (m: Model, o: unknown) => Report | Promise<Report>; analyzeModelAsync?: (m: Model, o: unknown) => Promise<Report> };
  let mod: AnalyzeModule;
  try {
    mod = (await import(modPath)) as AnalyzeModule;
  } catch {
    throw new UsageError('--compare needs the static analyser, which this build does not include');
  }
  if (typeof mod.analyzeModel !== 'function') throw new UsageError('--compare: the static analyser has no analyzeModel()');
  const analyze = mod.analyzeModelAsync ?? mod.analyzeModel;
  return await analyze(model, { formats: opts.formats, dims: opts.dims, shapes: opts.shapes, inputShapes: opts.shapes });
}

// ---------------------------------------------------------------------------------------------
// Table rendering

/** How bad a tensor looks across formats: overflow first, then underflow, then low SQNR. */
function riskScore(t: TensorReport): number[] {
  const rs = Object.values(t.risk);
  const over = Math.max(0, ...rs.map((r) => r.overflow));
  const under = Math.max(0, ...rs.map((r) => r.underflow));
  const sqnr = Math.min(Infinity, ...rs.map((r) => r.sqnrDb ?? Infinity));
  const err = Math.abs(t.predicted?.log2Error ?? 0);
  return [over > 0 ? 1 : 0, over, under, -sqnr, err];
}

function byRisk(a: TensorReport, b: TensorReport): number {
  const x = riskScore(a);
  const y = riskScore(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return y[i]! - x[i]!;
  return (a.order ?? -1) - (b.order ?? -1);
}

export function num(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '-';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e4 || a < 1e-3 ? x.toExponential(digits - 1) : x.toPrecision(digits);
}

function pct(x: number): string {
  if (x === 0) return '0';
  const p = x * 100;
  return p >= 0.1 ? `${p.toPrecision(2)}%` : `${p.toExponential(0)}%`;
}

export function renderMeasureReport(report: Report, top: number): string {
  const lines: string[] = [];
  const s = report.summary as Report['summary'] & { runs?: number; inputs?: string; notes?: string[]; measured?: number; notMeasurable?: number };
  lines.push(`${report.model.path}: ${s.measured ?? report.tensors.length} float tensors measured over ${s.runs ?? 1} run(s), inputs: ${s.inputs ?? '?'}`);
  for (const n of s.notes ?? []) lines.push(`  note: ${n}`);

  const sum = makeTable(['format', 'overflowing', 'underflowing', 'worst headroom (bits)', 'worst tensor', 'median SQNR dB']);
  for (const f of report.formats) {
    const r = report.summary.formats[f];
    if (!r) continue;
    sum.push([f, String(r.tensorsOverflowing), String(r.tensorsUnderflowing), num(r.worstHeadroomBits), r.worstTensor ?? '-', num(r.medianSqnrDb)]);
  }
  lines.push(sum.toString());

  const measured = report.tensors.filter((t) => t.measured);
  const rows = [...measured].sort(byRisk).slice(0, top > 0 ? top : undefined);
  const compare = report.mode === 'compare';
  const head = ['tensor', 'kind', 'op', 'shape', 'rms', 'absmax', ...report.formats.map((f) => `${f} ovf/unf/SQNR`)];
  if (compare) head.push('pred rms', 'err bits');
  const t = makeTable(head);
  for (const x of rows) {
    const row = [
      x.name.length > 40 ? `…${x.name.slice(-39)}` : x.name,
      x.kind,
      x.op ?? '-',
      x.shape ? `[${x.shape.map((d) => d ?? '?').join(',')}]` : '-',
      num(x.rms),
      num(x.absmax),
      ...report.formats.map((f) => {
        const r = x.risk[f];
        return r ? `${pct(r.overflow)}/${pct(r.underflow)}/${r.sqnrDb === null ? 'inf' : r.sqnrDb.toFixed(1)}` : '-';
      }),
    ];
    const err = x.predicted?.log2Error;
    if (compare) row.push(num(x.predicted?.rms), err === null || err === undefined ? '-' : (Math.abs(err) < 0.005 ? 0 : err).toFixed(2));
    t.push(row);
  }
  lines.push(`${rows.length === measured.length ? 'All' : `Riskiest ${rows.length} of ${measured.length}`} tensors:`);
  lines.push(t.toString());
  const notMeasured = report.tensors.filter((x) => !x.measured);
  if (notMeasured.length > 0) {
    lines.push(`${notMeasured.length} float tensors not measurable, e.g. ${notMeasured[0]!.name}: ${notMeasured[0]!.note ?? ''}`);
  }
  const notes = measured.filter((x) => x.note && rows.includes(x));
  for (const x of notes) lines.push(`  ${x.name}: ${x.note}`);
  return lines.join('\n');
}
