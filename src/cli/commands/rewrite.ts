/**
 * `unitscale rewrite <model> -o <out>`: unit-scaling multipliers around MatMul/Gemm/Conv,
 * optionally FP8 QuantizeLinear/DequantizeLinear (`--format e4m3|e5m2|e4m3fnuz|e5m2fnuz`) or
 * an fp16/bf16 cast (`--format fp16|bf16`), with a report of every change.
 * Flags → RewriteOptions → rewriteModel → save → render.
 */
import path from 'node:path';
import type { Command } from 'commander';
import chalk from 'chalk';
import { ExitCode, UnitscaleError, UsageError } from '../../errors.js';
import { loadModel } from '../../onnx/load.js';
import type { Model } from '../../onnx/model.js';
import { encodeModelProto } from '../../onnx/proto.js';
import { saveModel } from '../../onnx/save.js';
import { prepareInputs } from '../../measure/inputs.js';
import { rewriteModel, resolveFormat, resolveOps, type Change, type RewriteOptions } from '../../rewrite/rewrite.js';
import { constantScales, measuredScales, staticScalesAsync, type ScaleSource } from '../../rewrite/scales.js';
import { verifyRewrite, type Comparison } from '../../rewrite/verify.js';
import { makeTable } from '../table.js';
import { formatBytes } from '../format-numbers.js';

export interface RewriteCliOptions {
  output?: string;
  format?: string;
  weightsFp8?: boolean;
  keepIoTypes?: boolean;
  ops?: string;
  weightsOnly?: boolean;
  scales?: string;
  inputs?: string;
  seed?: string;
  dim?: string[];
  shape?: string[];
  scaleRounding?: string;
  dryRun?: boolean;
  json?: boolean;
  force?: boolean;
  verify?: boolean;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerRewrite(program: Command): Command {
  return program
    .command('rewrite')
    .description('rewrite a model with unit-scaling multipliers, optionally quantised to FP8 (QDQ) or cast to fp16/bf16')
    .argument('<model>', 'ONNX model file')
    .option('-o, --output <file>', 'where to write the rewritten model (default: <model>.us[.<format>].onnx next to it)')
    .option('--format <format>', 'e4m3, e5m2, e4m3fnuz, e5m2fnuz (QuantizeLinear/DequantizeLinear) or fp16, bf16 (cast the graph)')
    .option('--weights-fp8', 'FP8 formats: store weights as FP8 initializers + DequantizeLinear (about 4x smaller)')
    .option('--keep-io-types', 'fp16/bf16: keep float32 graph inputs and outputs (Casts at the boundary)')
    .option('--ops <list>', 'op types to unit-scale: MatMul, Gemm, Conv, ConvTranspose', 'MatMul,Gemm,Conv')
    .option('--weights-only', 'scale (and quantise) weights only, leave activations as they are')
    .option('--scales <mode>', 'where activation scales come from: static (the analysis) or measured (ONNX Runtime run)', 'static')
    .option('--inputs <path>', 'with --scales measured: input tensors (folder of input_K.pb or NAME.npy, or an .npz)')
    .option('--seed <n>', 'seed of the random inputs (measured scales without --inputs, --verify)')
    .option('--dim <name=value>', 'value of a symbolic dimension (repeatable)', collect, [])
    .option('--shape <name=d0,d1,...>', 'shape of one input (repeatable)', collect, [])
    .option('--scale-rounding <mode>', 'pow2 (exact multipliers, default) or none (1/RMS as is)', 'pow2')
    .option('--dry-run', 'report the changes without writing a file')
    .option('--json', 'print the report as JSON')
    .option('--force', 'allow overwriting the input model')
    .option('--verify', 'run the original and the rewritten model in ONNX Runtime and compare their outputs')
    .action(async (modelPath: string, o: RewriteCliOptions) => {
      const text = await runRewriteCommand(modelPath, o);
      process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    });
}

export interface RewriteReport {
  input: string;
  output: string | null;
  format: string | null;
  scales: string;
  notes: string[];
  opset: { before: number; after: number };
  bytes: { before: number; after: number };
  summary: Record<string, number>;
  changes: Change[];
  verify?: { inputs: string; maxRelError: number; minSqnrDb: number | null; newNonFinite: number; outputs: Comparison['outputs'] };
}

function parseDims(o: RewriteCliOptions): { dims: Record<string, number>; shapes: Record<string, number[]> } {
  const dims: Record<string, number> = {};
  for (const d of o.dim ?? []) {
    const m = /^([^=]+)=(\d+)$/.exec(d.trim());
    if (!m) throw new UsageError(`--dim ${d}: expected name=value with a whole number`);
    dims[m[1]!.trim()] = Number(m[2]);
  }
  const shapes: Record<string, number[]> = {};
  for (const s of o.shape ?? []) {
    const m = /^([^=]+)=([\d,\s]*)$/.exec(s.trim());
    if (!m) throw new UsageError(`--shape ${s}: expected name=d0,d1,... with whole numbers`);
    const ds = m[2]!.trim() === '' ? [] : m[2]!.split(',').map((x) => x.trim());
    if (ds.some((x) => !/^\d+$/.test(x))) throw new UsageError(`--shape ${s}: dims must be whole numbers`);
    shapes[m[1]!.trim()] = ds.map(Number);
  }
  return { dims, shapes };
}

export function defaultOutput(input: string, format: string | null): string {
  const dir = path.dirname(input);
  const base = path.basename(input).replace(/\.onnx$/i, '');
  return path.join(dir, `${base}.us${format ? `.${format}` : ''}.onnx`);
}

/** Everything the command does except printing: returns the text to print. */
export async function runRewriteCommand(modelPath: string, o: RewriteCliOptions): Promise<string> {
  const format = resolveFormat(o.format);
  const ops = resolveOps(
    (o.ops ?? 'MatMul,Gemm,Conv')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s),
  );
  if (o.scales !== 'static' && o.scales !== 'measured' && o.scales !== undefined) throw new UsageError(`--scales ${o.scales}: expected static or measured`);
  const mode = o.scales ?? 'static';
  if (o.inputs && mode !== 'measured') throw new UsageError('--inputs needs --scales measured (static scales use no data)');
  if (o.scaleRounding !== undefined && o.scaleRounding !== 'pow2' && o.scaleRounding !== 'none') throw new UsageError(`--scale-rounding ${o.scaleRounding}: expected pow2 or none`);
  let seed: number | undefined;
  if (o.seed !== undefined) {
    if (!/^\d+$/.test(o.seed)) throw new UsageError(`--seed ${o.seed}: expected a whole number`);
    seed = Number(o.seed);
  }
  const { dims, shapes } = parseDims(o);
  const output = o.dryRun ? null : (o.output ?? defaultOutput(modelPath, format?.name ?? null));

  const model = loadModel(modelPath);
  const notes: string[] = [];
  let scales: ScaleSource;
  let label: string;
  if (o.weightsOnly) {
    scales = constantScales(model.graph);
    label = 'exact weights';
  } else if (mode === 'measured') {
    const m = await measuredScales(model, { ...(o.inputs ? { inputs: o.inputs } : {}), ...(seed !== undefined ? { seed } : {}), dims, shapes });
    scales = m.source;
    label = o.inputs ? `measured on ${o.inputs}` : `measured on random inputs (seed ${seed ?? 0})`;
  } else {
    const s = await staticScalesAsync(model, format ? [format] : undefined);
    scales = s.source;
    label = 'static analysis';
    if (s.note) notes.push(s.note);
  }
  const opts: RewriteOptions = {
    format: format?.name ?? null,
    ops,
    weightsOnly: o.weightsOnly ?? false,
    weightsFp8: o.weightsFp8 ?? false,
    keepIoTypes: o.keepIoTypes ?? false,
    scales,
    scaleLabel: label,
    rounding: (o.scaleRounding as 'pow2' | 'none' | undefined) ?? 'pow2',
  };
  const result = rewriteModel(model, opts);
  const bytes = encodeModelProto(result.proto);

  if (output) {
    const external = (result.proto.graph?.initializer ?? []).some((t) => t.data_location === 1);
    if (external && path.resolve(path.dirname(output)) !== path.resolve(path.dirname(modelPath))) {
      throw new UnitscaleError(`${modelPath} keeps weights in external data: write the output into the same folder (${path.dirname(modelPath)})`, ExitCode.WRITE);
    }
    saveModel(result.proto, output, { protect: [modelPath], force: o.force ?? false });
  }

  const summary: Record<string, number> = {};
  for (const c of result.changes) summary[c.action] = (summary[c.action] ?? 0) + 1;
  const opsetOf = (m: Model['proto']): number => {
    const e = (m.opset_import ?? []).find((x) => (x.domain ?? '') === '' || x.domain === 'ai.onnx');
    return e ? Number(e.version) : 1;
  };
  const report: RewriteReport = {
    input: modelPath,
    output,
    format: format?.name ?? null,
    scales: label,
    notes,
    opset: { before: model.opset, after: opsetOf(result.proto) },
    bytes: { before: encodeModelProto(model.proto).length, after: bytes.length },
    summary,
    changes: result.changes,
  };
  if (o.verify) {
    const plan = prepareInputs(model, { ...(mode === 'measured' && o.inputs ? { inputs: o.inputs } : {}), ...(seed !== undefined ? { seed } : {}), dims, shapes });
    const cmp = await verifyRewrite(model.proto, bytes, plan.sets);
    report.verify = { inputs: plan.source, maxRelError: cmp.maxRelError, minSqnrDb: cmp.minSqnrDb, newNonFinite: cmp.newNonFinite, outputs: cmp.outputs };
  }
  return o.json ? JSON.stringify(report, null, 2) : renderRewriteReport(report);
}

function fmtConst(c: number | null): string {
  if (c === null) return '';
  if (c === 1) return '1';
  if (c !== 0 && Number.isInteger(Math.log2(Math.abs(c)))) return `${c < 0 ? '-' : ''}2^${Math.log2(Math.abs(c))}`;
  return Math.abs(c) >= 1e4 || (Math.abs(c) < 1e-3 && c !== 0) ? c.toExponential(3) : String(Number(c.toPrecision(4)));
}

export function renderRewriteReport(r: RewriteReport): string {
  const lines: string[] = [];
  lines.push(chalk.bold(`${r.input} → ${r.output ?? '(dry run: nothing written)'}`));
  lines.push(`format: ${r.format ?? 'none (unit scaling only)'}; activation scales: ${r.scales}; opset ${r.opset.before}${r.opset.after !== r.opset.before ? ` → ${r.opset.after}` : ''}; ${formatBytes(r.bytes.before)} → ${formatBytes(r.bytes.after)}`);
  for (const n of r.notes) lines.push(chalk.yellow(`note: ${n}`));
  const t = makeTable(['node', 'op', 'action', 'value', 'inserted / changed', 'constant', 'reason']);
  for (const c of r.changes) t.push([c.node, c.op, c.action, c.value ?? '', c.inserted ?? '', fmtConst(c.constant), c.reason]);
  if (r.changes.length > 0) lines.push(t.toString());
  lines.push(`${r.changes.length} changes: ${Object.entries(r.summary).map(([k, v]) => `${k} ×${v}`).join(', ') || 'none'}`);
  if (r.verify) {
    const v = r.verify;
    lines.push(
      `verify (${v.inputs}): max relative error ${v.maxRelError.toExponential(2)}, min SQNR ${v.minSqnrDb === null ? '∞ (identical)' : `${v.minSqnrDb.toFixed(1)} dB`}${v.newNonFinite ? chalk.red(`, ${v.newNonFinite} new non-finite values`) : ''}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
