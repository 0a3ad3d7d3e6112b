/**
 * `unitscale analyze <model>`: the static prediction — scale and per-format risk of every float
 * tensor, with no data and no runtime. Flags → AnalyzeOptions → analyzeModel → render (or JSON),
 * then the shared gate flags decide the exit code.
 */
import type { Command } from 'commander';
import { analyzeModelAsync, DEFAULT_FORMATS, type AnalyzeOptions } from '../../analysis/analyze.js';
import { weightProgress } from '../progress.js';
import { parseInputFlags } from '../../analysis/inputs.js';
import { UsageError } from '../../errors.js';
import { resolveFormats } from '../../gate/config.js';
import { loadModel } from '../../onnx/load.js';
import type { Report } from '../../report/types.js';
import { parseDimFlags, parseFormatNames, parseShapeFlags } from '../model-options.js';
import { addGateOptions, applyGateOptions, resolveGateSettings, type GateCliOptions, type GateSettings } from '../gate-options.js';
import { ANALYZE_COLUMNS_HELP, renderAnalyzeReport } from '../render/analyze-table.js';

export interface AnalyzeCliOptions extends GateCliOptions {
  formats?: string;
  top?: string;
  grad?: boolean;
  input?: string[];
  dim?: string[];
  shape?: string[];
  json?: boolean;
  minPlanSqnr?: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerAnalyze(program: Command): Command {
  const cmd = program
    .command('analyze')
    .description('predict the scale of every tensor and where each format would overflow, underflow or lose precision (no data, no runtime)')
    .argument('<model>', 'ONNX model file')
    .option('--formats <list>', `comma-separated formats to assess (default ${DEFAULT_FORMATS.join(',')}; any eXmY too)`)
    .option('--top <n>', 'rows of the riskiest tensors in the table (default 20; 0 = all)')
    .option('--grad', 'also predict gradients (unit-scale output gradients, PRIMER §4)')
    .option('--input <name=spec>', 'distribution of an input: normal:MEAN,STD | uniform:LO,HI | ids | ones | const:V (repeatable)', collect, [])
    .option('--dim <name=value>', 'value of a symbolic dimension (repeatable)', collect, [])
    .option('--shape <name=d0,d1,...>', 'shape of one input (repeatable)', collect, [])
    .option('--min-plan-sqnr <dB>', 'smallest SQNR a format must reach in the mixed-precision plan (default 20)')
    .option('--json', 'print the JSON report (mode "predicted")')
    .addHelpText('after', ANALYZE_COLUMNS_HELP);
  addGateOptions(cmd).action(async (modelPath: string, o: AnalyzeCliOptions) => {
    // Usage errors (flags, config, baseline) come before the work.
    const settings = resolveGateSettings(o, modelPath);
    const { report, text } = await analyzeFromCli(modelPath, o, settings);
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    process.exitCode = await applyGateOptions(report, o, modelPath, { settings });
  });
  return cmd;
}

/** Everything the command does except printing and gating. */
export async function analyzeFromCli(modelPath: string, o: AnalyzeCliOptions, settings?: GateSettings): Promise<{ report: Report; text: string }> {
  const opts = parseAnalyzeOptions(o, settings);
  const top = o.top === undefined ? 20 : wholeNumber('--top', o.top);
  const model = loadModel(modelPath);
  const bar = weightProgress();
  let report: Report;
  try {
    report = await analyzeModelAsync(model, { ...opts, onWeightProgress: bar.update });
  } finally {
    bar.done();
  }
  return { report, text: o.json ? JSON.stringify(report, null, 2) : renderAnalyzeReport(report, top) };
}

function wholeNumber(flag: string, v: string): number {
  if (!/^\d+$/.test(v.trim())) throw new UsageError(`${flag} ${v}: expected a whole number`);
  return Number(v);
}

/** Flags (over the config's formats/dims/shapes/inputs) → AnalyzeOptions; bad flags are UsageErrors. */
export function parseAnalyzeOptions(o: AnalyzeCliOptions, settings?: GateSettings): AnalyzeOptions {
  const names = settings ? resolveFormats(o.formats, settings.config.config, DEFAULT_FORMATS) : o.formats ? o.formats.split(',') : DEFAULT_FORMATS;
  const formats = parseFormatNames(names);
  const dims = parseDimFlags(o.dim, settings?.dims);
  const shapes = parseShapeFlags(o.shape, settings?.shapes);
  const inputs: NonNullable<AnalyzeOptions['inputs']> = { ...(settings?.inputs ?? {}) };
  Object.assign(inputs, parseInputFlags(o.input ?? []));
  const out: AnalyzeOptions = { formats, dims, shapes, inputs, grad: !!o.grad };
  if (o.minPlanSqnr !== undefined) {
    const v = Number(o.minPlanSqnr);
    if (!Number.isFinite(v)) throw new UsageError(`--min-plan-sqnr ${o.minPlanSqnr}: expected a number of dB`);
    out.planMinSqnrDb = v;
  }
  return out;
}
