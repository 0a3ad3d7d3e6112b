/**
 * `measure --compare`: the static prediction beside the measurement. The measured report is
 * the ground truth; each of its tensors gains `predicted` = the prediction's mean, rms and
 * absmax, and log2Error = log2(predicted rms / measured rms) — how many bits (binades) the
 * prediction is off. |log2Error| > 1 (a factor of 2) is flagged in the tensor's note.
 *
 * Tensors are matched by name. A predicted value inside a subgraph carries its `scope`
 * ("If_3/then_branch"); measure inlines the If branch every run takes, keeping the branch's
 * value names and saying where they came from in the note ("… the then_branch of If 'If_3' …").
 * When several predicted tensors share a name (sibling branches, or a branch and the main graph),
 * the one whose scope ends with that branch is taken; a measured value not from a branch takes
 * the main graph's.
 */
import type { Report, TensorReport } from '../report/types.js';

/** A prediction further off than this many bits is flagged. */
export const FLAG_BITS = 1;

export interface CompareSummary {
  /** Tensors present in both reports with a finite positive rms in each. */
  matched: number;
  /** Of those, how many are off by more than FLAG_BITS. */
  flagged: number;
  medianAbsLog2Error: number | null;
  maxAbsLog2Error: number | null;
  /** The worst few, most wrong first. */
  worst: { name: string; log2Error: number }[];
  /** Measured tensors the prediction does not list. */
  missingFromPrediction: number;
  /** Of `matched`, how many are values inside If branches / Loop/Scan bodies (predicted with a scope). */
  matchedInSubgraphs?: number;
}

/** Where a measured value came from: its scope, or the inlined branch measure names in its note. */
function measuredScope(m: TensorReport): string | null {
  if (m.scope) return m.scope;
  const hit = /\b(then_branch|else_branch) of If '([^']*)'/.exec(m.note ?? '');
  return hit ? `${hit[2]}/${hit[1]}` : null;
}

/** The predicted tensor for a measured one (see the header); undefined when none has its name. */
function matchPredicted(byName: Map<string, TensorReport[]>, m: TensorReport): TensorReport | undefined {
  const list = byName.get(m.name);
  if (!list || list.length <= 1) return list?.[0];
  const where = measuredScope(m);
  if (where === null) return list.find((p) => !p.scope) ?? list[0];
  return list.find((p) => p.scope === where) ?? list.find((p) => p.scope?.endsWith(`/${where}`)) ?? list.find((p) => !p.scope) ?? list[0];
}

export function log2Error(predictedRms: number | null, measuredRms: number | null): number | null {
  if (predictedRms === null || measuredRms === null) return null;
  if (!(predictedRms > 0) || !(measuredRms > 0) || !Number.isFinite(predictedRms) || !Number.isFinite(measuredRms)) {
    // Both exactly zero is a perfect prediction; one zero is unbounded error.
    if (predictedRms === 0 && measuredRms === 0) return 0;
    return null;
  }
  return Math.log2(predictedRms / measuredRms);
}

export function compareReports(predicted: Report, measured: Report): Report {
  const pred = new Map<string, TensorReport[]>();
  for (const t of predicted.tensors) {
    if (t.kind === 'gradient') continue; // measure has forward values only
    const list = pred.get(t.name);
    if (list) list.push(t);
    else pred.set(t.name, [t]);
  }
  const errors: { name: string; log2Error: number }[] = [];
  let missing = 0;
  let inSubgraphs = 0;
  const tensors: TensorReport[] = measured.tensors.map((m) => {
    const p = matchPredicted(pred, m);
    if (!p) {
      missing++;
      return m;
    }
    const err = log2Error(p.rms, m.rms);
    const out: TensorReport = { ...m, predicted: { mean: p.mean, rms: p.rms, absmax: p.absmax, log2Error: err } };
    if (p.scope && !out.scope) out.scope = p.scope;
    if (p.distribution && !out.distribution) out.distribution = p.distribution;
    if (err !== null) {
      errors.push({ name: m.name, log2Error: err });
      if (p.scope) inSubgraphs++;
      if (Math.abs(err) > FLAG_BITS) {
        const flag = `prediction off by ${err > 0 ? '+' : ''}${err.toFixed(2)} bits (predicted rms ${fmt(p.rms)}, measured ${fmt(m.rms)})`;
        out.note = out.note ? `${out.note}; ${flag}` : flag;
      }
    }
    return out;
  });
  const abs = errors.map((e) => Math.abs(e.log2Error)).sort((a, b) => a - b);
  const median = abs.length === 0 ? null : abs.length % 2 ? abs[abs.length >> 1]! : (abs[(abs.length >> 1) - 1]! + abs[abs.length >> 1]!) / 2;
  const compare: CompareSummary = {
    matched: errors.length,
    flagged: errors.filter((e) => Math.abs(e.log2Error) > FLAG_BITS).length,
    medianAbsLog2Error: median,
    maxAbsLog2Error: abs.length ? abs[abs.length - 1]! : null,
    worst: [...errors].sort((a, b) => Math.abs(b.log2Error) - Math.abs(a.log2Error)).slice(0, 10),
    missingFromPrediction: missing,
    matchedInSubgraphs: inSubgraphs,
  };
  return {
    ...measured,
    mode: 'compare',
    tensors,
    summary: {
      ...measured.summary,
      ...(predicted.summary.unsupportedOps ? { unsupportedOps: predicted.summary.unsupportedOps } : {}),
      predictedFormats: predicted.summary.formats,
      compare,
    },
  };
}

function fmt(x: number | null): string {
  return x === null ? '?' : x.toPrecision(3);
}
