/**
 * What got worse since a previous report (`--baseline previous.json`).
 *
 * Tensors are matched by name (gradients apart from forward values; a subgraph value by its scope
 * and name). Three kinds of regression:
 * - `new-risk`: a tensor now exceeds an overflow / underflow / SQNR threshold of a format that it
 *   did not exceed before (or that did not exist before);
 * - `headroom-loss`: headroom = log2(format max / bound) shrank by more than the tolerance and
 *   is now below the margin, where bound = absmax when both reports know it, else 6·RMS
 *   (RMS_TAIL_FACTOR) — the same basis on both sides, so the difference is meaningful;
 * - `sqnr-loss`: the SQNR dropped by more than the tolerance in dB.
 */
import { parseFormat, type Format } from '../formats/format.js';
import type { Report, TensorKind, TensorReport } from '../report/types.js';
import {
  DEFAULT_REGRESSION,
  isIgnored,
  thresholdsFor,
  type Category,
  type GateConfig,
  type IgnoreRule,
} from './thresholds.js';

/** bound ≈ RMS_TAIL_FACTOR · RMS when no absmax is known (≈ the largest of 10^8 Gaussian draws is 6σ). */
export const RMS_TAIL_FACTOR = 6;

export type RegressionType = 'new-risk' | 'headroom-loss' | 'sqnr-loss';

export interface Regression {
  type: RegressionType;
  /** For new-risk: which threshold is newly exceeded; else the risk the loss leads to. */
  category: Exclude<Category, 'regression'>;
  format: string;
  tensor: string;
  /** A subgraph value's scope (TensorReport.scope). */
  scope?: string;
  kind: TensorKind;
  node: string | null;
  op: string | null;
  /** Previous and current value of the compared quantity (fraction, bits or dB); before null = new tensor. */
  before: number | null;
  after: number | null;
  /** after − before, in the unit of the quantity (bits for headroom, dB for SQNR). */
  delta: number | null;
  /** Headroom in bits before/after (every type carries it when computable). */
  headroomBefore: number | null;
  headroomAfter: number | null;
  message: string;
}

export interface BaselineOptions {
  thresholds?: GateConfig['thresholds'];
  ignore?: IgnoreRule[];
  regression?: Partial<GateConfig['regression']>;
  includeUnknown?: boolean;
}

export function tensorKey(t: Pick<TensorReport, 'name' | 'kind' | 'scope'>): string {
  const key = `${t.kind === 'gradient' ? 'grad' : 'fwd'}\u0000${t.name}`;
  return t.scope ? `${key}\u0000${t.scope}` : key;
}

function formatOf(name: string): Format | null {
  try {
    return parseFormat(name);
  } catch {
    return null;
  }
}

const log2 = (x: number) => Math.log2(x);
const positive = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x) && x > 0;

/** Headroom in bits of a tensor under a format: log2(max / bound); bound = absmax, else 6·RMS. */
export function headroomBits(t: Pick<TensorReport, 'absmax' | 'rms'>, format: Format | string, basis: 'absmax' | 'rms' | 'auto' = 'auto'): number | null {
  const f = typeof format === 'string' ? formatOf(format) : format;
  if (!f) return null;
  const useAbsmax = basis === 'absmax' || (basis === 'auto' && positive(t.absmax));
  if (useAbsmax) return positive(t.absmax) ? log2(f.max / t.absmax) : null;
  return positive(t.rms) ? log2(f.max / (RMS_TAIL_FACTOR * t.rms)) : null;
}

/** Which thresholds a risk exceeds, by category (same rules as the gate). */
export function exceeded(t: TensorReport, format: string, thresholds: GateConfig['thresholds']): Exclude<Category, 'regression'>[] {
  const r = t.risk[format];
  if (!r) return [];
  const th = thresholdsFor({ thresholds }, format);
  const out: Exclude<Category, 'regression'>[] = [];
  if (r.overflow > th.maxOverflow) out.push('overflow');
  if (r.underflow > th.maxUnderflow) out.push('underflow');
  if (th.minSqnr !== null && r.sqnrDb !== null && r.sqnrDb < th.minSqnr) out.push('sqnr');
  return out;
}

function riskValue(t: TensorReport | undefined, format: string, c: Exclude<Category, 'regression'>): number | null {
  const r = t?.risk[format];
  if (!r) return null;
  return c === 'overflow' ? r.overflow : c === 'underflow' ? r.underflow : r.sqnrDb;
}

function fmtNum(x: number | null, unit: string): string {
  if (x === null) return '—';
  if (unit === '') return x === 0 ? '0' : x >= 0.01 ? `${(x * 100).toFixed(x >= 0.1 ? 0 : 1)}%` : x.toExponential(1);
  return `${x.toFixed(1)} ${unit}`;
}

/**
 * The regressions of `current` against `previous`, worst first. Only formats of the current report
 * are compared; tensors only in the previous report are not regressions (they may be renamed).
 */
export function diffBaseline(current: Report, previous: Report, opts: BaselineOptions = {}): Regression[] {
  const thresholds = opts.thresholds ?? { all: {}, perFormat: {} };
  const tolBits = opts.regression?.headroomBits ?? DEFAULT_REGRESSION.headroomBits;
  const tolDb = opts.regression?.sqnrDb ?? DEFAULT_REGRESSION.sqnrDb;
  const margin = opts.regression?.marginBits ?? DEFAULT_REGRESSION.marginBits;
  const ignore = opts.ignore ?? [];
  const prevByKey = new Map<string, TensorReport>();
  for (const t of previous.tensors ?? []) prevByKey.set(tensorKey(t), t);

  const out: Regression[] = [];
  for (const t of current.tensors) {
    if (!opts.includeUnknown && t.confidence === 'unknown') continue;
    const prev = prevByKey.get(tensorKey(t));
    for (const format of Object.keys(t.risk)) {
      const f = formatOf(format);
      const base = {
        format,
        tensor: t.name,
        ...(t.scope ? { scope: t.scope } : {}),
        kind: t.kind,
        node: t.node,
        op: t.op,
      };
      const skip = (category: Category) => isIgnored(ignore, { ...base, category });
      if (skip('regression')) continue;
      // Headroom on a common basis.
      let hBefore: number | null = null;
      let hAfter: number | null = null;
      if (f && prev) {
        const basis = positive(t.absmax) && positive(prev.absmax) ? 'absmax' : 'rms';
        hBefore = headroomBits(prev, f, basis);
        hAfter = headroomBits(t, f, basis);
      } else if (f) {
        hAfter = headroomBits(t, f);
      }
      const who = `${t.kind === 'gradient' ? 'gradient of ' : ''}${t.name}${t.scope ? ` (in ${t.scope})` : ''}`;

      // New threshold crossings.
      const now = exceeded(t, format, thresholds);
      const before = prev && prev.risk[format] ? exceeded(prev, format, thresholds) : [];
      for (const c of now) {
        if (before.includes(c) || skip(c)) continue;
        const a = riskValue(t, format, c);
        const b = riskValue(prev, format, c);
        const what = c === 'sqnr' ? `SQNR ${fmtNum(a, 'dB')}` : `${fmtNum(a, '')} ${c}`;
        const was = !prev ? 'a new tensor' : prev.risk[format] ? `was ${c === 'sqnr' ? fmtNum(b, 'dB') : fmtNum(b, '')}` : 'not checked before';
        out.push({
          ...base,
          type: 'new-risk',
          category: c,
          before: b,
          after: a,
          delta: a !== null && b !== null ? a - b : null,
          headroomBefore: hBefore,
          headroomAfter: hAfter,
          message: `${who}: new ${c} risk in ${format}: ${what} (${was})`,
        });
      }

      // Lost headroom.
      if (prev && hBefore !== null && hAfter !== null) {
        const loss = hBefore - hAfter;
        if (loss > tolBits && hAfter < margin && !now.includes('overflow') && !skip('overflow')) {
          out.push({
            ...base,
            type: 'headroom-loss',
            category: 'overflow',
            before: hBefore,
            after: hAfter,
            delta: hAfter - hBefore,
            headroomBefore: hBefore,
            headroomAfter: hAfter,
            message: `${who}: lost ${loss.toFixed(1)} bits of ${format} headroom (${hBefore.toFixed(1)} → ${hAfter.toFixed(1)} bits)`,
          });
        }
      }

      // Lost SQNR.
      const sb = prev?.risk[format]?.sqnrDb;
      const sa = t.risk[format]?.sqnrDb;
      if (typeof sb === 'number' && typeof sa === 'number' && sb - sa > tolDb && !now.includes('sqnr') && !skip('sqnr')) {
        out.push({
          ...base,
          type: 'sqnr-loss',
          category: 'sqnr',
          before: sb,
          after: sa,
          delta: sa - sb,
          headroomBefore: hBefore,
          headroomAfter: hAfter,
          message: `${who}: ${format} SQNR dropped by ${(sb - sa).toFixed(1)} dB (${sb.toFixed(1)} → ${sa.toFixed(1)} dB)`,
        });
      }
    }
  }
  const rank: Record<RegressionType, number> = { 'new-risk': 0, 'headroom-loss': 1, 'sqnr-loss': 2 };
  return out.sort((a, b) => rank[a.type] - rank[b.type]); // stable: report order within a type
}
