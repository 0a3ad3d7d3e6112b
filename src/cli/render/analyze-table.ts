/**
 * Text rendering of a predicted Report (`unitscale analyze`): the riskiest tensors, a summary per
 * format and the mixed-precision plan. Colour follows chalk's own detection (TTY, NO_COLOR,
 * FORCE_COLOR). Nothing here computes statistics: it only reads the Report.
 */
import chalk from 'chalk';
import type { FormatRisk, Report, TensorReport } from '../../report/types.js';
import { formatBytes, formatShape } from '../format-numbers.js';
import { makeTable } from '../table.js';

/** Share above which a tensor counts as overflowing / underflowing (as in the summary). */
const FLAG = 1e-6;

export const ANALYZE_COLUMNS_HELP = `
Columns of the tensor table (the riskiest tensors first: overflow, then underflow, then low SQNR):
  tensor      ONNX value name (weights, inputs, activations, outputs; ∂ marks a gradient with --grad);
              a value inside an If branch or Loop/Scan body is prefixed with where it lives,
              "If_3/then_branch › name" (node/attribute, nested with '/')
  op          producer op type ("initializer", "input" for those)
  shape       inferred shape
  rms         predicted root-mean-square √E[x²] (exact for weights)
  absmax      max |x|: exact for weights; otherwise the smaller of a bound a rule proves
              (softmax ≤ 1, LayerNorm ≤ √(K−1)·|γ|+|β|, …) and the 1−1e-6 quantile of the
              predicted distribution
  conf        how far to trust the row: exact (read from the weights), high, medium, low, unknown
  <format>    per format: OVF p = share of elements above the format's max, UNF p = share of
              non-zero elements flushed to zero, then the SQNR in dB (∞ = exact)
  note        why a tensor is special (mask fill, masked softmax, …) or why it is unknown
Summary per format: tensors overflowing / underflowing (share > 1e-6), the worst headroom
log2(max/absmax) in bits (negative = overflow) and where, and the median SQNR over tensors.
Plan: per tensor the listed format with the fewest bits whose overflow ≤ 1e-6, underflow ≤ 1e-3
and SQNR ≥ the threshold, and the bytes this saves against fp32.`;

function pct(x: number): string {
  if (x >= 0.1) return `${(100 * x).toFixed(0)}%`;
  if (x >= 0.001) return `${(100 * x).toFixed(1)}%`;
  return x.toExponential(0);
}

function num(x: number | null): string {
  if (x === null) return '?';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e4 || a < 1e-3 ? x.toExponential(2) : x.toPrecision(3);
}

function riskCell(r: FormatRisk | undefined): string {
  if (!r) return chalk.dim('—');
  const parts: string[] = [];
  if (r.overflow > FLAG) parts.push(chalk.red(`OVF ${pct(r.overflow)}`));
  if (r.underflow > FLAG) parts.push(chalk.yellow(`UNF ${pct(r.underflow)}`));
  const s = r.sqnrDb;
  const sq = s === null ? '∞' : `${s.toFixed(1)}dB`;
  parts.push(s !== null && s < 20 ? chalk.yellow(sq) : sq);
  return parts.join(' ');
}

/**
 * Riskiest first: any overflow, overflow share, underflow share, lowest SQNR. Overflow of an
 * attention-mask fill is by design (src/analysis/mask.ts), so only overflow beyond it ranks.
 */
function riskKey(t: TensorReport): number[] {
  const rs = Object.values(t.risk);
  const over = Math.max(0, ...rs.map((r) => r.overflow - (t.maskFill ?? 0)));
  const under = Math.max(0, ...rs.map((r) => r.underflow));
  const sqnr = Math.min(1e9, ...rs.map((r) => r.sqnrDb ?? 1e9));
  return [over > FLAG ? 1 : 0, over, under > FLAG ? 1 : 0, under, -sqnr];
}

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return b[i]! - a[i]!;
  return 0;
}

function trim(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** Separates a subgraph value's scope from its name in the tensor column. */
const SCOPE_SEP = ' › ';

/**
 * The tensor column: the name, a subgraph value's prefixed with its scope; within `width`, the
 * scope gives way (trimmed from the left, where the outer levels are) before the name does.
 */
export function tensorLabel(t: Pick<TensorReport, 'name' | 'kind' | 'scope'>, width = 40): string {
  const name = `${t.kind === 'gradient' ? '∂' : ''}${t.name}`;
  if (!t.scope) return trim(name, width);
  const full = `${t.scope}${SCOPE_SEP}${name}`;
  if (full.length <= width) return full;
  const room = width - name.length - SCOPE_SEP.length;
  if (room >= 6) return `…${t.scope.slice(t.scope.length - room + 1)}${SCOPE_SEP}${name}`;
  return trim(`…${SCOPE_SEP}${name}`, width);
}

export function renderAnalyzeReport(report: Report, top = 20): string {
  const out: string[] = [];
  const s = report.summary;
  out.push(chalk.bold(`${report.model.path || '<memory>'}: predicted scales (no data, no runtime)`));
  const inputs = (s.inputs as { name: string; assumed: string; source: string }[] | undefined) ?? [];
  if (inputs.length) out.push(`inputs: ${inputs.map((i) => `${i.name} ~ ${i.assumed}${i.source === 'user' ? '' : ' (default)'}`).join(', ')}`);
  const dims = s.assumedDims as Record<string, number> | undefined;
  if (dims) out.push(chalk.yellow(`assumed dims: ${Object.entries(dims).map(([k, v]) => `${k}=${v}`).join(', ')} (set with --dim)`));
  if (s.unsupportedOps?.length) out.push(chalk.yellow(`no rule for: ${s.unsupportedOps.join(', ')} (their outputs are unknown)`));

  const tensors = report.tensors.filter((t) => Object.keys(t.risk).length > 0 || t.confidence === 'unknown');
  const ranked = [...tensors].sort((a, b) => compareKeys(riskKey(a), riskKey(b)));
  const shown = top > 0 ? ranked.slice(0, top) : ranked;
  const table = makeTable(['tensor', 'op', 'shape', 'rms', 'absmax', 'conf', ...report.formats, 'note']);
  for (const t of shown) {
    table.push([
      tensorLabel(t),
      t.op ?? '',
      trim(formatShape(t.shape), 20),
      num(t.rms),
      num(t.absmax),
      t.confidence === 'unknown' ? chalk.yellow('unknown') : (t.confidence ?? ''),
      ...report.formats.map((f) => riskCell(t.risk[f])),
      trim(t.note ?? '', 48),
    ]);
  }
  const scoped = tensors.filter((t) => t.scope).length;
  out.push(`${shown.length} of ${tensors.length} tensors${scoped ? ` (${scoped} inside If/Loop/Scan subgraphs)` : ''}, riskiest first:`);
  out.push(table.toString());
  const masks = tensors.filter((t) => (t.maskFill ?? 0) > 0);
  if (masks.length > 0) {
    const names = masks.slice(0, 4).map((t) => (t.scope ? `${t.scope}${SCOPE_SEP}${t.name}` : t.name)).join(', ') + (masks.length > 4 ? ', …' : '');
    out.push(`${masks.length} tensors hold attention-mask fills (${names}): they overflow every low-precision format by design and rank after real risks (the gate skips them unless --check-masks).`);
  }

  const sum = makeTable(['format', 'overflowing', 'underflowing', 'worst headroom', 'worst tensor', 'median SQNR'], { colAligns: ['left', 'right', 'right', 'right', 'left', 'right'] });
  for (const f of report.formats) {
    const r = s.formats[f];
    if (!r) continue;
    const head = r.worstHeadroomBits;
    sum.push([
      f,
      r.tensorsOverflowing ? chalk.red(String(r.tensorsOverflowing)) : '0',
      r.tensorsUnderflowing ? chalk.yellow(String(r.tensorsUnderflowing)) : '0',
      head === null ? '?' : head < 0 ? chalk.red(`${head.toFixed(Math.abs(head) < 0.1 ? 3 : 1)} bits`) : `${head.toFixed(1)} bits`,
      trim(r.worstTensor ?? '', 36),
      r.medianSqnrDb === null ? '∞' : `${r.medianSqnrDb.toFixed(1)} dB`,
    ]);
  }
  out.push(sum.toString());

  const plan = s.plan as { limits: { minSqnrDb: number }; counts: Record<string, number>; bytesFp32: number; bytesPlanned: number; bytesSaved: number } | undefined;
  if (plan) {
    const counts = Object.entries(plan.counts)
      .sort((a, b) => b[1] - a[1])
      .map(([f, n]) => `${f}×${n}`)
      .join(', ');
    const share = plan.bytesFp32 > 0 ? ` (${((100 * plan.bytesSaved) / plan.bytesFp32).toFixed(0)}%)` : '';
    out.push(`plan (overflow ≤ 1e-6, underflow ≤ 1e-3, SQNR ≥ ${plan.limits.minSqnrDb} dB): ${counts || 'nothing to plan'}; ${formatBytes(plan.bytesPlanned)} instead of ${formatBytes(plan.bytesFp32)} in fp32, saves ${formatBytes(plan.bytesSaved)}${share}`);
  }
  return `${out.join('\n')}\n`;
}
