/**
 * The gate: which tensors exceed which thresholds, with the allow-list applied, and the exit code.
 *
 * Every finding is a Violation. Its level is "error" when its category is in `failOn` (these
 * make the exit code 1) and "warning" otherwise, so a run with `--fail-on overflow` still shows
 * underflow past its threshold without failing on it.
 */
import { parseFormat } from '../formats/format.js';
import type { Report, TensorKind, TensorReport } from '../report/types.js';
import { diffBaseline, headroomBits, tensorKey, type Regression, type RegressionType } from './baseline.js';
import { isIgnored, thresholdsFor, type Category, type GateConfig } from './thresholds.js';

export type RuleId = 'overflow' | 'underflow' | 'low-sqnr' | RegressionType;

export interface Violation {
  rule: RuleId;
  category: Category;
  level: 'error' | 'warning';
  format: string;
  tensor: string;
  /** A subgraph value's scope (TensorReport.scope). */
  scope?: string;
  kind: TensorKind;
  node: string | null;
  op: string | null;
  order: number | null;
  /** The observed value (fraction, dB or bits). */
  value: number | null;
  /** The threshold it was held against (fraction or dB), or the previous value for regressions. */
  threshold: number | null;
  /** Headroom in bits under this format (log2(max / bound)), when computable. */
  headroomBits: number | null;
  /** One line, names included; plain text (escape before putting it in markup). */
  message: string;
  regression?: Regression;
}

export interface GateResult {
  violations: Violation[];
  exitCode: 0 | 1;
  /** Findings left out by the allow-list. */
  ignored: number;
  /** (tensor, format) pairs checked. */
  checked: number;
  /** Regressions against the baseline (also present in `violations`). */
  regressions: Regression[];
}

/** A share as people read it: 12% / 0.5% / 3.2e-7. */
export function formatFraction(x: number): string {
  if (x === 0) return '0';
  if (x >= 0.1) return `${(x * 100).toFixed(0)}%`;
  if (x >= 0.001) return `${(x * 100).toFixed(1)}%`;
  return x.toExponential(1);
}

function formatMax(format: string): string {
  try {
    const max = parseFormat(format).max;
    return max >= 1e6 ? max.toExponential(3) : String(max);
  } catch {
    return 'max';
  }
}

function describe(t: TensorReport): string {
  const who = t.kind === 'gradient' ? `gradient of ${t.name}` : t.name;
  const where = t.op && t.op !== 'initializer' && t.op !== 'input' ? ` (${t.op}${t.node ? ` ${t.node}` : ''})` : ` (${t.kind})`;
  return who + where + (t.scope ? ` in ${t.scope}` : '');
}

const RANK: Record<RuleId, number> = { overflow: 0, underflow: 1, 'low-sqnr': 2, 'new-risk': 3, 'headroom-loss': 4, 'sqnr-loss': 5 };

export function evaluateGate(report: Report, cfg: GateConfig): GateResult {
  const violations: Violation[] = [];
  let ignored = 0;
  let checked = 0;
  const fails = (c: Category) => cfg.failOn.includes(c);

  for (const t of report.tensors) {
    if (!cfg.includeUnknown && t.confidence === 'unknown') continue;
    for (const [format, r] of Object.entries(t.risk)) {
      checked++;
      const th = thresholdsFor(cfg, format);
      const base = { format, tensor: t.name, ...(t.scope ? { scope: t.scope } : {}), kind: t.kind, node: t.node, op: t.op, order: t.order ?? null };
      const push = (rule: RuleId, category: Category, value: number | null, threshold: number | null, message: string) => {
        if (isIgnored(cfg.ignore, { ...base, category })) {
          ignored++;
          return;
        }
        violations.push({
          ...base,
          rule,
          category,
          level: fails(category) ? 'error' : 'warning',
          value,
          threshold,
          headroomBits: headroomBits(t, format),
          message,
        });
      };
      // Mask fills overflow by design (see src/analysis/mask.ts): only overflow beyond them
      // counts, and SQNR (dominated by the fill values) says nothing; `checkMasks` gates all.
      const maskFill = cfg.checkMasks ? 0 : (t.maskFill ?? 0);
      if (maskFill > 0 && (r.overflow > th.maxOverflow || (th.minSqnr !== null && r.sqnrDb !== null && r.sqnrDb < th.minSqnr))) ignored++;
      if (r.overflow - maskFill > th.maxOverflow) {
        push('overflow', 'overflow', r.overflow, th.maxOverflow,
          `${describe(t)}: ${formatFraction(r.overflow)} of the elements overflow ${format} (|x| > ${formatMax(format)}); allowed ${formatFraction(th.maxOverflow)}`);
      }
      if (r.underflow > th.maxUnderflow) {
        push('underflow', 'underflow', r.underflow, th.maxUnderflow,
          `${describe(t)}: ${formatFraction(r.underflow)} of the non-zero elements underflow to 0 in ${format}; allowed ${formatFraction(th.maxUnderflow)}`);
      }
      if (maskFill === 0 && th.minSqnr !== null && r.sqnrDb !== null && r.sqnrDb < th.minSqnr) {
        push('low-sqnr', 'sqnr', r.sqnrDb, th.minSqnr,
          `${describe(t)}: ${format} SQNR ${r.sqnrDb.toFixed(1)} dB is below ${th.minSqnr} dB`);
      }
    }
  }

  let regressions: Regression[] = [];
  if (cfg.baseline) {
    regressions = diffBaseline(report, cfg.baseline, {
      thresholds: cfg.thresholds,
      ignore: cfg.ignore,
      regression: cfg.regression,
      includeUnknown: cfg.includeUnknown,
    });
    const orderOf = new Map(report.tensors.map((t) => [tensorKey(t), t.order ?? null]));
    for (const g of regressions) {
      violations.push({
        rule: g.type,
        category: 'regression',
        level: fails('regression') ? 'error' : 'warning',
        format: g.format,
        tensor: g.tensor,
        ...(g.scope ? { scope: g.scope } : {}),
        kind: g.kind,
        node: g.node,
        op: g.op,
        order: orderOf.get(tensorKey({ name: g.tensor, kind: g.kind, scope: g.scope })) ?? null,
        value: g.after,
        threshold: g.before,
        headroomBits: g.headroomAfter,
        message: g.message,
        regression: g,
      });
    }
  }

  violations.sort((a, b) => (a.level === b.level ? 0 : a.level === 'error' ? -1 : 1) || RANK[a.rule] - RANK[b.rule]);
  return {
    violations,
    exitCode: violations.some((v) => v.level === 'error') ? 1 : 0,
    ignored,
    checked,
    regressions,
  };
}
