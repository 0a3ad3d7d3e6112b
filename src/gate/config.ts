/**
 * The config file: `unitscale.config.json`, or the `unitscale` key of a package.json, found from
 * the model's folder upwards, then from the working directory upwards (each walk stops after a
 * folder holding `.git`), or named with `--config path`.
 *
 * Every mistake in it is a UsageError (exit code 2) with a one-line message naming the file and
 * the key. Precedence when merging: CLI flag > config file > defaults (thresholds.ts).
 *
 * {
 *   "formats": ["e4m3", "fp16"],
 *   "failOn": ["overflow", "regression"],
 *   "maxOverflow": 1e-6, "maxUnderflow": 1e-3, "minSqnr": 20,     // every format
 *   "thresholds": { "e5m2": { "maxUnderflow": 0.01 } },            // per format, over the above
 *   "ignore": ["*mask*", { "op": "Softmax" }, { "tensor": "logits", "formats": ["e4m3"] }],
 *   "inputs": { "pixel_values": { "distribution": "uniform", "min": 0, "max": 1 }, "noise": "normal:0,0.1" },
 *   "dims": { "batch": 1, "sequence": 128 },
 *   "baseline": "unitscale-baseline.json",                         // relative to the config file
 *   "regression": { "headroomBits": 1, "sqnrDb": 3, "marginBits": 8 },
 *   "includeUnknown": false,
 *   "checkMasks": false
 * }
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { parseInputSpec } from '../analysis/inputs.js';
import { FormatError, parseFormat } from '../formats/format.js';
import type { TensorKind } from '../report/types.js';
import {
  DEFAULT_REGRESSION,
  defaultGateConfig,
  parseDb,
  parseFailOn,
  parseFraction,
  type Category,
  type FormatThresholds,
  type GateConfig,
  type IgnoreRule,
  type RegressionTolerance,
} from './thresholds.js';
import type { Report } from '../report/types.js';

export const CONFIG_FILE = 'unitscale.config.json';

/**
 * How an input's values are distributed, for the prediction (analyze `--input`): a spec string
 * (`normal:MEAN,STD`, `uniform:LO,HI`, `ids`, `ones`, `const:V`) or the same as an object.
 */
export type InputSpec = string | InputSpecObject;
export interface InputSpecObject {
  distribution?: string;
  mean?: number;
  std?: number;
  rms?: number;
  min?: number;
  max?: number;
  values?: number[];
}

/** A validated config file. Paths are absolute (resolved against the file's folder). */
export interface UnitscaleConfig {
  formats?: string[];
  failOn?: Category[];
  maxOverflow?: number;
  maxUnderflow?: number;
  minSqnr?: number | null;
  thresholds?: Record<string, FormatThresholds>;
  ignore?: IgnoreRule[];
  inputs?: Record<string, InputSpec>;
  dims?: Record<string, number>;
  shapes?: Record<string, number[]>;
  baseline?: string;
  regression?: Partial<RegressionTolerance>;
  includeUnknown?: boolean;
  checkMasks?: boolean;
}

export interface LoadedConfig {
  /** The file read (for package.json, the package.json), or null when none was found. */
  path: string | null;
  config: UnitscaleConfig;
}

const TOP_KEYS = [
  'formats', 'failOn', 'maxOverflow', 'maxUnderflow', 'minSqnr', 'thresholds', 'ignore', 'inputs', 'dims', 'shapes',
  'baseline', 'regression', 'includeUnknown', 'checkMasks', '$schema', 'comment',
] as const;
const THRESHOLD_KEYS = ['maxOverflow', 'maxUnderflow', 'minSqnr'] as const;
const IGNORE_KEYS = ['tensor', 'node', 'op', 'kind', 'formats', 'categories', 'reason'] as const;
const INPUT_KEYS = ['distribution', 'mean', 'std', 'rms', 'min', 'max', 'values'] as const;
const DISTRIBUTIONS = ['normal', 'gaussian', 'uniform', 'ids', 'ones', 'const', 'constant'] as const;
const REGRESSION_KEYS = ['headroomBits', 'sqnrDb', 'marginBits'] as const;
const KINDS: readonly TensorKind[] = ['input', 'weight', 'activation', 'output', 'gradient'];

// ---------------------------------------------------------------------------------------------
// Finding and reading

/** The config that applies to `dir`: the nearest unitscale.config.json or package.json#unitscale upwards. */
export function findConfigFrom(dir: string): string | null {
  let cur = path.resolve(dir);
  for (;;) {
    const own = path.join(cur, CONFIG_FILE);
    if (isFile(own)) return own;
    const pkg = path.join(cur, 'package.json');
    if (isFile(pkg) && packageHasKey(pkg)) return pkg;
    if (existsSync(path.join(cur, '.git'))) return null; // the project's root: go no further
    const up = path.dirname(cur);
    if (up === cur) return null;
    cur = up;
  }
}

/** Search order: the model's folder upwards, then the working directory upwards. */
export function findConfig(modelPath: string | null, cwd: string = process.cwd()): string | null {
  if (modelPath) {
    const found = findConfigFrom(path.dirname(path.resolve(cwd, modelPath)));
    if (found) return found;
  }
  return findConfigFrom(cwd);
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function packageHasKey(pkg: string): boolean {
  try {
    const parsed = JSON.parse(readFileSync(pkg, 'utf8')) as unknown;
    return isObject(parsed) && 'unitscale' in parsed;
  } catch {
    return false; // someone else's broken package.json is not our config
  }
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read config ${file}: ${oneLine(e)}`);
  }
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (e) {
    throw new UsageError(`config ${file} is not valid JSON: ${oneLine(e)}`);
  }
}

/** Read and validate a config file (unitscale.config.json, any other JSON file, or a package.json's `unitscale` key). */
export function loadConfigFile(file: string): UnitscaleConfig {
  const raw = readJson(file);
  if (path.basename(file) === 'package.json') {
    if (!isObject(raw) || !('unitscale' in raw)) throw new UsageError(`config ${file} has no "unitscale" key`);
    return validateConfig(raw.unitscale, `${file}#unitscale`, path.dirname(path.resolve(file)));
  }
  return validateConfig(raw, file, path.dirname(path.resolve(file)));
}

/**
 * The config for a run: `--config path` (must exist), none with `--no-config` (explicit false),
 * else the one found by `findConfig`.
 */
export function loadConfig(explicit: string | false | undefined, modelPath: string | null, cwd: string = process.cwd()): LoadedConfig {
  if (explicit === false) return { path: null, config: {} };
  if (explicit !== undefined) {
    const file = path.resolve(cwd, explicit);
    if (!isFile(file)) throw new UsageError(`--config ${explicit}: no such file`);
    return { path: file, config: loadConfigFile(file) };
  }
  const found = findConfig(modelPath, cwd);
  return found ? { path: found, config: loadConfigFile(found) } : { path: null, config: {} };
}

// ---------------------------------------------------------------------------------------------
// Validation

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (allowed.includes(k)) continue;
    const best = allowed.map((a) => [a, editDistance(k, a)] as const).sort((x, y) => x[1] - y[1])[0];
    const hint = best && best[1] <= Math.max(2, Math.floor(k.length / 3)) ? ` (did you mean "${best[0]}"?)` : '';
    throw new UsageError(`${where}: unknown key "${k}"${hint}; allowed: ${allowed.filter((a) => !a.startsWith('$') && a !== 'comment').join(', ')}`);
  }
}

function stringList(v: unknown, where: string): string[] {
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw new UsageError(`${where}: expected a list of strings`);
  return v as string[];
}

function formatName(name: string, where: string): string {
  try {
    return parseFormat(name).name;
  } catch (e) {
    if (e instanceof FormatError) throw new UsageError(`${where}: ${e.message}`);
    throw e;
  }
}

function numberIn(v: unknown, where: string, check: (n: number) => boolean, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new UsageError(`${where}: expected ${what}, got ${JSON.stringify(v)}`);
  return v;
}

function thresholdsOf(v: unknown, where: string): FormatThresholds {
  if (!isObject(v)) throw new UsageError(`${where}: expected an object with ${THRESHOLD_KEYS.join(', ')}`);
  checkKeys(v, THRESHOLD_KEYS, where);
  const out: FormatThresholds = {};
  if (v.maxOverflow !== undefined) out.maxOverflow = fractionValue(v.maxOverflow, `${where}.maxOverflow`);
  if (v.maxUnderflow !== undefined) out.maxUnderflow = fractionValue(v.maxUnderflow, `${where}.maxUnderflow`);
  if (v.minSqnr !== undefined) out.minSqnr = v.minSqnr === null ? null : dbValue(v.minSqnr, `${where}.minSqnr`);
  return out;
}

function fractionValue(v: unknown, where: string): number {
  if (typeof v !== 'number') throw new UsageError(`${where}: expected a fraction between 0 and 1 (e.g. 1e-6), got ${JSON.stringify(v)}`);
  return parseFraction(v, where);
}

function dbValue(v: unknown, where: string): number {
  if (typeof v !== 'number') throw new UsageError(`${where}: expected a number of dB, got ${JSON.stringify(v)}`);
  return parseDb(v, where);
}

function globString(v: unknown, where: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new UsageError(`${where}: expected a non-empty glob string`);
  return v;
}

function ignoreRule(v: unknown, where: string): IgnoreRule {
  if (typeof v === 'string') return globString(v, where);
  if (!isObject(v)) throw new UsageError(`${where}: expected a glob string or an object like {"op": "Softmax"}`);
  checkKeys(v, IGNORE_KEYS, where);
  const rule: Exclude<IgnoreRule, string> = {};
  if (v.tensor !== undefined) rule.tensor = globString(v.tensor, `${where}.tensor`);
  if (v.node !== undefined) rule.node = globString(v.node, `${where}.node`);
  if (v.op !== undefined) rule.op = globString(v.op, `${where}.op`);
  if (v.kind !== undefined) {
    if (typeof v.kind !== 'string' || !(KINDS as readonly string[]).includes(v.kind)) {
      throw new UsageError(`${where}.kind: expected one of ${KINDS.join(', ')}, got ${JSON.stringify(v.kind)}`);
    }
    rule.kind = v.kind as TensorKind;
  }
  if (v.formats !== undefined) rule.formats = stringList(v.formats, `${where}.formats`).map((f) => formatName(f, `${where}.formats`));
  if (v.categories !== undefined) {
    rule.categories = parseFailOn(stringList(v.categories, `${where}.categories`), `${where}.categories`);
  }
  if (v.reason !== undefined) {
    if (typeof v.reason !== 'string') throw new UsageError(`${where}.reason: expected a string`);
    rule.reason = v.reason;
  }
  if (Object.keys(rule).filter((k) => k !== 'reason').length === 0) {
    throw new UsageError(`${where}: an ignore entry must name at least one of tensor, node, op, kind, formats, categories`);
  }
  return rule;
}

function inputSpec(v: unknown, where: string): InputSpec {
  if (typeof v === 'string') {
    try {
      parseInputSpec(v);
    } catch (e) {
      throw new UsageError(`${where}: ${oneLine(e).replace(/^--input: /, '')}`);
    }
    return v;
  }
  if (!isObject(v)) throw new UsageError(`${where}: expected a spec like "normal:0,1" or an object like {"distribution": "normal", "mean": 0, "std": 1}`);
  checkKeys(v, INPUT_KEYS, where);
  const out: InputSpecObject = {};
  if (v.distribution !== undefined) {
    if (typeof v.distribution !== 'string' || !(DISTRIBUTIONS as readonly string[]).includes(v.distribution.toLowerCase())) {
      throw new UsageError(`${where}.distribution: expected one of ${DISTRIBUTIONS.join(', ')}, got ${JSON.stringify(v.distribution)}`);
    }
    out.distribution = v.distribution;
  }
  for (const k of ['mean', 'std', 'rms', 'min', 'max'] as const) {
    if (v[k] === undefined) continue;
    out[k] = numberIn(v[k], `${where}.${k}`, (n) => (k === 'std' || k === 'rms' ? n >= 0 : true), k === 'std' || k === 'rms' ? 'a number ≥ 0' : 'a number');
  }
  if (out.min !== undefined && out.max !== undefined && out.min > out.max) throw new UsageError(`${where}: min ${out.min} is above max ${out.max}`);
  if (v.values !== undefined) {
    const arr = v.values;
    if (!Array.isArray(arr) || arr.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      throw new UsageError(`${where}.values: expected a list of numbers`);
    }
    out.values = arr as number[];
  }
  return out;
}

/** Validate a parsed config object; `where` names it in messages, `baseDir` resolves its paths. */
export function validateConfig(raw: unknown, where: string, baseDir: string): UnitscaleConfig {
  if (!isObject(raw)) throw new UsageError(`config ${where}: expected a JSON object`);
  checkKeys(raw, TOP_KEYS, `config ${where}`);
  const at = (k: string) => `config ${where}: ${k}`;
  const cfg: UnitscaleConfig = {};
  if (raw.formats !== undefined) {
    const list = stringList(raw.formats, at('formats'));
    if (list.length === 0) throw new UsageError(`${at('formats')}: empty list`);
    cfg.formats = list.map((f) => formatName(f, at('formats')));
  }
  if (raw.failOn !== undefined) {
    cfg.failOn = parseFailOn(typeof raw.failOn === 'string' ? raw.failOn : stringList(raw.failOn, at('failOn')), at('failOn'));
  }
  if (raw.maxOverflow !== undefined) cfg.maxOverflow = fractionValue(raw.maxOverflow, at('maxOverflow'));
  if (raw.maxUnderflow !== undefined) cfg.maxUnderflow = fractionValue(raw.maxUnderflow, at('maxUnderflow'));
  if (raw.minSqnr !== undefined) cfg.minSqnr = raw.minSqnr === null ? null : dbValue(raw.minSqnr, at('minSqnr'));
  if (raw.thresholds !== undefined) {
    if (!isObject(raw.thresholds)) throw new UsageError(`${at('thresholds')}: expected an object keyed by format name`);
    cfg.thresholds = {};
    for (const [name, v] of Object.entries(raw.thresholds)) {
      const key = name === '*' || name === 'default' ? '*' : formatName(name, at(`thresholds.${name}`));
      cfg.thresholds[key] = { ...cfg.thresholds[key], ...thresholdsOf(v, at(`thresholds.${name}`)) };
    }
  }
  if (raw.ignore !== undefined) {
    if (!Array.isArray(raw.ignore)) throw new UsageError(`${at('ignore')}: expected a list of globs or objects`);
    cfg.ignore = raw.ignore.map((r, i) => ignoreRule(r, at(`ignore[${i}]`)));
  }
  if (raw.inputs !== undefined) {
    if (!isObject(raw.inputs)) throw new UsageError(`${at('inputs')}: expected an object keyed by input name`);
    cfg.inputs = Object.fromEntries(Object.entries(raw.inputs).map(([k, v]) => [k, inputSpec(v, at(`inputs.${k}`))]));
  }
  if (raw.dims !== undefined) {
    if (!isObject(raw.dims)) throw new UsageError(`${at('dims')}: expected an object like {"batch": 1}`);
    cfg.dims = Object.fromEntries(
      Object.entries(raw.dims).map(([k, v]) => [k, numberIn(v, at(`dims.${k}`), (n) => Number.isInteger(n) && n > 0, 'a positive integer')]),
    );
  }
  if (raw.shapes !== undefined) {
    if (!isObject(raw.shapes)) throw new UsageError(`${at('shapes')}: expected an object keyed by input name`);
    cfg.shapes = {};
    for (const [k, v] of Object.entries(raw.shapes)) {
      if (!Array.isArray(v) || v.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 0)) {
        throw new UsageError(`${at(`shapes.${k}`)}: expected a list of non-negative integers`);
      }
      cfg.shapes[k] = v as number[];
    }
  }
  if (raw.baseline !== undefined) {
    if (typeof raw.baseline !== 'string' || raw.baseline === '') throw new UsageError(`${at('baseline')}: expected a file path`);
    cfg.baseline = path.resolve(baseDir, raw.baseline);
  }
  if (raw.regression !== undefined) {
    if (!isObject(raw.regression)) throw new UsageError(`${at('regression')}: expected an object with ${REGRESSION_KEYS.join(', ')}`);
    checkKeys(raw.regression, REGRESSION_KEYS, at('regression'));
    cfg.regression = {};
    for (const k of REGRESSION_KEYS) {
      if (raw.regression[k] !== undefined) cfg.regression[k] = numberIn(raw.regression[k], at(`regression.${k}`), (n) => n >= 0 || k === 'marginBits', 'a number ≥ 0');
    }
  }
  if (raw.checkMasks !== undefined) {
    if (typeof raw.checkMasks !== 'boolean') throw new UsageError(`${at('checkMasks')}: expected true or false`);
    cfg.checkMasks = raw.checkMasks;
  }
  if (raw.includeUnknown !== undefined) {
    if (typeof raw.includeUnknown !== 'boolean') throw new UsageError(`${at('includeUnknown')}: expected true or false`);
    cfg.includeUnknown = raw.includeUnknown;
  }
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// Merging

/** The gate flags as commander hands them over (strings, or numbers when set programmatically). */
export interface GateFlags {
  failOn?: string | string[];
  maxOverflow?: string | number;
  maxUnderflow?: string | number;
  minSqnr?: string | number;
}

/**
 * The gate config of a run: defaults, then the config file, then CLI flags. A CLI threshold
 * replaces that threshold for every format, per-format config values included.
 */
export function mergeGateConfig(file: UnitscaleConfig, flags: GateFlags, baseline: Report | null = null): GateConfig {
  const cfg = defaultGateConfig();
  // config file
  if (file.failOn) cfg.failOn = [...file.failOn];
  const all: FormatThresholds = { ...(file.thresholds?.['*'] ?? {}) };
  if (file.maxOverflow !== undefined) all.maxOverflow = file.maxOverflow;
  if (file.maxUnderflow !== undefined) all.maxUnderflow = file.maxUnderflow;
  if (file.minSqnr !== undefined) all.minSqnr = file.minSqnr;
  cfg.thresholds.all = all;
  for (const [k, v] of Object.entries(file.thresholds ?? {})) if (k !== '*') cfg.thresholds.perFormat[k] = { ...v };
  if (file.ignore) cfg.ignore = [...file.ignore];
  cfg.regression = { ...DEFAULT_REGRESSION, ...file.regression };
  if (file.includeUnknown !== undefined) cfg.includeUnknown = file.includeUnknown;
  if (file.checkMasks !== undefined) cfg.checkMasks = file.checkMasks;

  // CLI flags
  if (flags.failOn !== undefined) cfg.failOn = parseFailOn(flags.failOn);
  const override = (key: keyof FormatThresholds, value: number) => {
    cfg.thresholds.all[key] = value;
    for (const t of Object.values(cfg.thresholds.perFormat)) delete t[key];
  };
  if (flags.maxOverflow !== undefined) override('maxOverflow', parseFraction(flags.maxOverflow, '--max-overflow'));
  if (flags.maxUnderflow !== undefined) override('maxUnderflow', parseFraction(flags.maxUnderflow, '--max-underflow'));
  if (flags.minSqnr !== undefined) override('minSqnr', parseDb(flags.minSqnr, '--min-sqnr'));

  cfg.baseline = baseline;
  if (cfg.failOn.includes('regression') && !baseline) {
    throw new UsageError('--fail-on regression needs a baseline: pass --baseline previous.json (or "baseline" in the config)');
  }
  return cfg;
}

/** Formats for the run: the CLI's list when given, else the config's, else `fallback`. */
export function resolveFormats(cli: string[] | string | undefined, file: UnitscaleConfig, fallback: string[]): string[] {
  if (cli !== undefined && cli.length > 0) {
    const list = typeof cli === 'string' ? cli.split(',').map((s) => s.trim()).filter(Boolean) : cli;
    return list.map((f) => formatName(f, '--formats'));
  }
  return file.formats ?? fallback;
}
