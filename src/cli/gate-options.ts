/**
 * The gate flags shared by `analyze` and `measure`, and what to do with them once a Report exists:
 * evaluate thresholds (config file + flags), write the SARIF / HTML files atomically, print
 * GitHub annotations and a short verdict, and return the exit code (0 ok, 1 risk; mistakes throw
 * a UsageError → 2).
 *
 *   addGateOptions(program.command('analyze')…).action(async (model, opts) => {
 *     const settings = resolveGateSettings(opts, model);          // early: usage errors before work
 *     const formats = resolveFormats(opts.formats, settings.config.config, DEFAULT_FORMATS);
 *     const report = analyzeModel(loadModel(model), { formats, dims: { ...settings.dims, ...cliDims } });
 *     …print the report…
 *     process.exitCode = await applyGateOptions(report, opts, model, { settings });
 *   });
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { evaluateGate, type GateResult, type Violation } from '../gate/evaluate.js';
import { loadConfig, mergeGateConfig, type InputSpec, type LoadedConfig } from '../gate/config.js';
import { annotationLines, isGithubActions } from '../gate/annotations.js';
import { renderSarif } from '../gate/sarif.js';
import { DEFAULT_MAX_OVERFLOW, DEFAULT_MAX_UNDERFLOW, FAIL_ON, type GateConfig } from '../gate/thresholds.js';
import { writeFileAtomic } from '../onnx/save.js';
import { renderHtmlReport } from '../report/html.js';
import type { Report } from '../report/types.js';

/** What commander hands over for the gate flags (camelCase of the flag names). */
export interface GateCliOptions {
  failOn?: string;
  maxOverflow?: string;
  maxUnderflow?: string;
  minSqnr?: string;
  /** --check-masks: gate the overflow of attention-mask fills too. */
  checkMasks?: boolean;
  /** A path, or false for --no-config. */
  config?: string | false;
  baseline?: string;
  sarif?: string;
  report?: string;
  /** The command's own --json: stdout carries the JSON report, so annotations go to stderr. */
  json?: boolean;
}

export function addGateOptions(cmd: Command): Command {
  return cmd
    .option('--fail-on <kinds>', `exit 1 when a finding of these kinds exceeds its threshold: ${FAIL_ON.join(', ')} (comma-separated)`)
    .option('--max-overflow <fraction>', `largest tolerated share of a tensor's elements above the format max (default ${DEFAULT_MAX_OVERFLOW})`)
    .option('--max-underflow <fraction>', `largest tolerated share of a tensor's non-zero elements flushed to zero (default ${DEFAULT_MAX_UNDERFLOW})`)
    .option('--min-sqnr <dB>', 'smallest tolerated SQNR of a tensor in dB (default per format: 6.02·mantissa bits + 1.76)')
    .option('--check-masks', 'also fail on attention-mask fills (e.g. float32 min), which overflow every low-precision format by design')
    .option('--config <path>', 'config file (default: unitscale.config.json or package.json "unitscale", searched upwards from the model, then from the working directory)')
    .option('--no-config', 'do not read any config file')
    .option('--baseline <report.json>', 'a previous JSON report: list what got worse (with --fail-on regression, fail on it)')
    .option('--sarif <file>', 'write the findings as SARIF 2.1.0 for code scanning')
    .option('--report <file.html>', 'write a self-contained HTML report (scale plot, risk heatmap, tensor table)');
}

export interface GateSettings {
  gate: GateConfig;
  config: LoadedConfig;
  baselinePath: string | null;
  /** From the config, for the analysis/measurement (CLI flags of the command win over these). */
  formats?: string[];
  dims?: Record<string, number>;
  shapes?: Record<string, number[]>;
  inputs?: Record<string, InputSpec>;
  /** Whether any gate setting was asked for (flags or config): then a verdict is printed. */
  active: boolean;
}

/** Read a previous report for --baseline; a missing or malformed file is a usage error. */
export function readBaseline(file: string, shown: string = file): Report {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    throw new UsageError(`--baseline ${shown}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot read: ${msg}`}`);
  }
  const r = parsed as Partial<Report> | null;
  if (!r || typeof r !== 'object' || !Array.isArray(r.tensors) || r.tensors.some((t) => !t || typeof t.name !== 'string' || typeof t.risk !== 'object' || t.risk === null)) {
    throw new UsageError(`--baseline ${shown}: not a unitscale JSON report (expected "tensors" with "name" and "risk")`);
  }
  return r as Report;
}

/**
 * Config file + flags → everything the gate needs. Call it before the long work so a usage error
 * comes first; pass the result to applyGateOptions as `io.settings`.
 */
export function resolveGateSettings(opts: GateCliOptions, modelPath: string | null, cwd: string = process.cwd()): GateSettings {
  const config = loadConfig(opts.config, modelPath, cwd);
  const c = config.config;
  const baselinePath = opts.baseline ?? c.baseline ?? null;
  const baseline = baselinePath ? readBaseline(path.resolve(cwd, baselinePath), baselinePath) : null;
  const gate = mergeGateConfig(c, { failOn: opts.failOn, maxOverflow: opts.maxOverflow, maxUnderflow: opts.maxUnderflow, minSqnr: opts.minSqnr }, baseline);
  if (opts.checkMasks) gate.checkMasks = true;
  const active =
    gate.failOn.length > 0 ||
    baseline !== null ||
    opts.maxOverflow !== undefined ||
    opts.maxUnderflow !== undefined ||
    opts.minSqnr !== undefined;
  return {
    gate,
    config,
    baselinePath,
    ...(c.formats ? { formats: c.formats } : {}),
    ...(c.dims ? { dims: c.dims } : {}),
    ...(c.shapes ? { shapes: c.shapes } : {}),
    ...(c.inputs ? { inputs: c.inputs } : {}),
    active,
  };
}

export interface GateIO {
  /** Settings from resolveGateSettings (else resolved here). */
  settings?: GateSettings;
  /** Annotations go here (default process.stdout; process.stderr when opts.json). */
  stdout?: { write(s: string): unknown };
  /** The verdict goes here (default process.stderr). */
  stderr?: { write(s: string): unknown };
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Receives the evaluation (for callers that render it themselves). */
  onResult?: (r: GateResult) => void;
}

const SHOWN = 20;

export function formatVerdict(result: GateResult, settings: Pick<GateSettings, 'config' | 'baselinePath'>): string {
  const errors = result.violations.filter((v) => v.level === 'error');
  const warnings = result.violations.filter((v) => v.level === 'warning');
  const lines: string[] = [];
  const extras = [
    result.ignored ? `${result.ignored} allowed by the ignore list` : '',
    settings.baselinePath ? `${result.regressions.length} regression(s) against ${settings.baselinePath}` : '',
    settings.config.path ? `config ${settings.config.path}` : '',
  ].filter(Boolean);
  const tail = extras.length ? `; ${extras.join('; ')}` : '';
  if (errors.length) lines.push(`unitscale gate: FAIL — ${errors.length} error(s), ${warnings.length} warning(s)${tail}`);
  else lines.push(`unitscale gate: ok — ${warnings.length ? `${warnings.length} warning(s), none failing` : 'nothing above the thresholds'} (${result.checked} tensor×format checks${tail})`);
  const show = (v: Violation) => `  ${v.level === 'error' ? 'error  ' : 'warning'} ${v.rule.padEnd(13)} ${v.format.padEnd(8)} ${v.message}`;
  result.violations.slice(0, SHOWN).forEach((v) => lines.push(show(v)));
  if (result.violations.length > SHOWN) lines.push(`  … and ${result.violations.length - SHOWN} more (see --sarif / --report)`);
  return `${lines.join('\n')}\n`;
}

/**
 * Evaluate the gate on a finished report, write --sarif / --report, print annotations (when
 * GITHUB_ACTIONS=true) and the verdict; returns the exit code (0 or 1).
 */
export async function applyGateOptions(report: Report, opts: GateCliOptions, modelPath: string, io: GateIO = {}): Promise<number> {
  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  const settings = io.settings ?? resolveGateSettings(opts, modelPath, cwd);
  const result = evaluateGate(report, settings.gate);
  io.onResult?.(result);
  const protect = [modelPath];
  if (opts.sarif) writeFileAtomic(opts.sarif, renderSarif(report, result, modelPath, { cwd }), { protect });
  if (opts.report) {
    const baseline = settings.gate.baseline;
    const html = baseline
      ? renderHtmlReport([report, baseline], { labels: [report.mode, `baseline (${baseline.mode ?? 'report'})`] })
      : renderHtmlReport(report);
    writeFileAtomic(opts.report, html, { protect });
  }
  if (isGithubActions(env) && result.violations.length > 0) {
    const lines = annotationLines(result.violations, modelPath, { cwd });
    // The runner reads workflow commands from both streams; keep a JSON stdout clean.
    const out = opts.json ? (io.stderr ?? process.stderr) : (io.stdout ?? process.stdout);
    out.write(`${lines.join('\n')}\n`);
  }
  if (settings.active || result.exitCode !== 0) (io.stderr ?? process.stderr).write(formatVerdict(result, settings));
  return result.exitCode;
}
