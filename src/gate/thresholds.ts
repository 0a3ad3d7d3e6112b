/**
 * The gate's vocabulary: what can fail (`--fail-on`), the thresholds per format, the allow-list,
 * and their defaults. Pure data and parsing; evaluation lives in evaluate.ts, files in config.ts.
 *
 * Precedence (docs/exit-codes.md): a CLI flag beats the config file, which beats these defaults.
 */
import { parseFormat } from '../formats/format.js';
import { UsageError } from '../errors.js';
import type { Report, TensorKind } from '../report/types.js';

/** What `--fail-on` accepts. `any` = every category below. */
export const FAIL_ON = ['overflow', 'underflow', 'sqnr', 'regression', 'any'] as const;
export type FailOn = (typeof FAIL_ON)[number];
/** The concrete categories a finding belongs to (`any` expands to all of them). */
export type Category = Exclude<FailOn, 'any'>;
export const CATEGORIES: readonly Category[] = ['overflow', 'underflow', 'sqnr', 'regression'];

export interface FormatThresholds {
  /** Largest tolerated share of elements with |x| > format max. */
  maxOverflow?: number;
  /** Largest tolerated share of non-zero elements flushed to zero. */
  maxUnderflow?: number;
  /** Smallest tolerated SQNR in dB (null: no SQNR check for this format). */
  minSqnr?: number | null;
}

/** Fully resolved thresholds of one format. */
export interface ResolvedThresholds {
  maxOverflow: number;
  maxUnderflow: number;
  minSqnr: number | null;
}

/**
 * One allow-list entry. A string is a glob on the tensor name (`*` any run of characters,
 * including `/`; `?` one character). An object matches when every field it sets matches;
 * string fields are globs too.
 */
export type IgnoreRule =
  | string
  | {
      tensor?: string;
      node?: string;
      op?: string;
      kind?: TensorKind;
      /** Only these formats (default: all). */
      formats?: string[];
      /** Only these categories (default: all). */
      categories?: Category[];
      /** Why it is allowed (shown nowhere but kept for the reader of the config). */
      reason?: string;
    };

export interface RegressionTolerance {
  /** Headroom may shrink by this many bits before it counts as a regression. */
  headroomBits: number;
  /** SQNR may drop by this many dB before it counts as a regression. */
  sqnrDb: number;
  /** A headroom loss counts only when the headroom left is below this many bits. */
  marginBits: number;
}

export interface GateConfig {
  /** Categories whose findings make the exit code 1; the others are reported as warnings. */
  failOn: Category[];
  /** Thresholds for every format, then per format (canonical format names) on top. */
  thresholds: { all: FormatThresholds; perFormat: Record<string, FormatThresholds> };
  ignore: IgnoreRule[];
  /** The previous report for `regression` (see baseline.ts). */
  baseline?: Report | null;
  regression: RegressionTolerance;
  /** Also gate tensors whose prediction has confidence "unknown" (default false: their risk is a guess). */
  includeUnknown: boolean;
  /** Also gate the overflow of attention-mask fills (default false: they overflow by design). */
  checkMasks: boolean;
}

export const DEFAULT_MAX_OVERFLOW = 1e-6;
export const DEFAULT_MAX_UNDERFLOW = 1e-2;
export const DEFAULT_REGRESSION: RegressionTolerance = { headroomBits: 1, sqnrDb: 3, marginBits: 8 };

/**
 * Default SQNR floor of a format: 6.02·m + 1.76 dB, the SQNR of a uniform quantiser with m + 1
 * bits. A well-scaled Gaussian in a float format with m mantissa bits gets ≈ 11 dB more
 * (E4M3: 19.8 dB floor vs ≈ 31 dB), so the floor trips only when about two bits are lost.
 */
export function defaultMinSqnr(format: string): number | null {
  try {
    const f = parseFormat(format);
    return Math.round((6.02 * f.manBits + 1.76) * 10) / 10;
  } catch {
    return null;
  }
}

export function defaultGateConfig(): GateConfig {
  return {
    failOn: [],
    thresholds: { all: {}, perFormat: {} },
    ignore: [],
    baseline: null,
    regression: { ...DEFAULT_REGRESSION },
    includeUnknown: false,
    checkMasks: false,
  };
}

/** Thresholds of one format: per-format setting, else the all-formats setting, else the default. */
export function thresholdsFor(cfg: Pick<GateConfig, 'thresholds'>, format: string): ResolvedThresholds {
  const key = canonicalFormat(format);
  const own = cfg.thresholds.perFormat[key] ?? cfg.thresholds.perFormat[format] ?? {};
  const all = cfg.thresholds.all;
  const pick = <K extends keyof FormatThresholds>(k: K): FormatThresholds[K] => (own[k] !== undefined ? own[k] : all[k]);
  const minSqnr = pick('minSqnr');
  return {
    maxOverflow: pick('maxOverflow') ?? DEFAULT_MAX_OVERFLOW,
    maxUnderflow: pick('maxUnderflow') ?? DEFAULT_MAX_UNDERFLOW,
    minSqnr: minSqnr === undefined ? defaultMinSqnr(key) : minSqnr,
  };
}

/** The name reports use for a format (`fp8` → `e4m3`); unknown names are kept as written. */
export function canonicalFormat(name: string): string {
  try {
    return parseFormat(name).name;
  } catch {
    return name;
  }
}

/** Parse a `--fail-on` list ("overflow,regression"); `any` expands to every category. */
export function parseFailOn(value: string | string[], where = '--fail-on'): Category[] {
  const items = (Array.isArray(value) ? value : value.split(','))
    .map((s) => String(s).trim().toLowerCase())
    .filter((s) => s.length > 0);
  if (items.length === 0) throw new UsageError(`${where}: empty list; use one or more of ${FAIL_ON.join(', ')}`);
  const out = new Set<Category>();
  for (const item of items) {
    if (item === 'none') continue;
    if (!(FAIL_ON as readonly string[]).includes(item)) {
      throw new UsageError(`${where}: unknown value '${item}'; use one or more of ${FAIL_ON.join(', ')} (comma-separated)`);
    }
    if (item === 'any') CATEGORIES.forEach((c) => out.add(c));
    else out.add(item as Category);
  }
  return CATEGORIES.filter((c) => out.has(c));
}

/** A fraction in [0, 1] from a flag or config value ("1e-6", 0.001). */
export function parseFraction(value: unknown, where: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > 1) {
    throw new UsageError(`${where}: expected a fraction between 0 and 1 (e.g. 1e-6), got '${String(value)}'`);
  }
  return n;
}

/** A finite number of dB from a flag or config value. */
export function parseDb(value: unknown, where: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n)) throw new UsageError(`${where}: expected a number of dB (e.g. 20), got '${String(value)}'`);
  return n;
}

/** Glob → RegExp: `*` any run (including `/`), `?` one character, everything else literal. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re.replace(/(\.\*)+/g, '.*')}$`, 's');
}

const globCache = new Map<string, RegExp>();
export function globMatch(glob: string, text: string | null | undefined): boolean {
  if (text === null || text === undefined) return false;
  let re = globCache.get(glob);
  if (!re) {
    re = globToRegExp(glob);
    globCache.set(glob, re);
  }
  return re.test(text);
}

export interface IgnoreSubject {
  tensor: string;
  /** A subgraph value's scope: tensor and node globs also match "<scope>/<name>". */
  scope?: string;
  node: string | null;
  op: string | null;
  kind: TensorKind;
  format: string;
  category: Category;
}

/** Whether an allow-list entry covers this finding. */
export function ignoreMatches(rule: IgnoreRule, s: IgnoreSubject): boolean {
  const scoped = (glob: string, name: string | null): boolean => globMatch(glob, name) || (!!s.scope && name !== null && globMatch(glob, `${s.scope}/${name}`));
  if (typeof rule === 'string') return scoped(rule, s.tensor);
  if (rule.tensor !== undefined && !scoped(rule.tensor, s.tensor)) return false;
  if (rule.node !== undefined && !scoped(rule.node, s.node)) return false;
  if (rule.op !== undefined && !globMatch(rule.op, s.op)) return false;
  if (rule.kind !== undefined && rule.kind !== s.kind) return false;
  if (rule.formats !== undefined && !rule.formats.map(canonicalFormat).includes(canonicalFormat(s.format))) return false;
  if (rule.categories !== undefined && !rule.categories.includes(s.category)) return false;
  return true;
}

export function isIgnored(rules: readonly IgnoreRule[], s: IgnoreSubject): boolean {
  return rules.some((r) => ignoreMatches(r, s));
}
