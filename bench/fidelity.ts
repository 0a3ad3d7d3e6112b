/**
 * Fidelity bench: how well the static prediction (analyzeModel) matches measured statistics.
 *
 * For every model with a `NAME.truth.json` in /work/shared/validation (or the folder given as the
 * first argument): median and p90 of |log2(predicted RMS / measured RMS)| over float activations
 * (node outputs), and per format the recall of the tensors measured to overflow / underflow
 * (measured share > 1e-6) and the precision of the predicted flags. Prints a markdown table and
 * writes it to bench/out/fidelity.md. `--verbose` lists the worst tensors of each model.
 *
 * The truth files are read here only, for scoring: nothing in src/ sees them.
 *
 *   npx tsx bench/fidelity.ts [folder] [--verbose]
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeModel } from '../src/analysis/analyze.js';
import { parseFormat } from '../src/formats/index.js';
import { loadModel } from '../src/onnx/load.js';
import type { TensorReport } from '../src/report/types.js';

interface TruthFormat {
  frac_overflow: number;
  frac_underflow: number;
  frac_subnormal: number;
  sqnr_db: number | string;
}
interface TruthTensor {
  src: string;
  rms?: number;
  mean?: number;
  formats?: Record<string, TruthFormat>;
}
interface Truth {
  tensors: Record<string, TruthTensor>;
  param_grad_rms?: Record<string, { onnx_name: string | null; onnx_match: string | null; grad_rms: number }>;
}

/** Our format name → the truth file's. */
const FORMATS: [string, string][] = [
  ['fp16', 'fp16'],
  ['bf16', 'bf16'],
  ['e4m3', 'e4m3fn'],
  ['e5m2', 'e5m2'],
];
const FLAG = 1e-6;
/**
 * A prediction is a flag when the measured batch is likely to show the event: with n elements and
 * predicted share p, the measured share exceeds 1e-6 when more than k0 = floor(n·1e-6) elements
 * land there; the flag is P(count > k0) ≥ 10% (count ~ Poisson(n·p)). Without n: p > 1e-6.
 * A property of the prediction and the tensor's size only.
 */
function predictedFlag(p: number, n: number | null): boolean {
  if (n === null) return p > FLAG;
  const lambda = n * p;
  const k0 = Math.floor(n * FLAG);
  let term = Math.exp(-lambda);
  let cdf = term;
  for (let k = 1; k <= k0; k++) {
    term *= lambda / k;
    cdf += term;
  }
  return 1 - cdf >= 0.1;
}

const args = process.argv.slice(2);
const verbose = args.includes('--verbose');
const folder = args.find((a) => !a.startsWith('--')) ?? '/work/shared/validation';

function quantile(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

interface Counts {
  measured: number;
  predicted: number;
  both: number;
  missed: string[];
  extra: string[];
}
const newCounts = (): Counts => ({ measured: 0, predicted: 0, both: 0, missed: [], extra: [] });
const pct = (a: number, b: number): string => (b === 0 ? '—' : `${((100 * a) / b).toFixed(0)}% (${a}/${b})`);

const rows: string[] = [];
const gradRows: string[] = ['| model | parameters | median \\|log2 err\\| | p90 | max |', '| --- | --- | --- | --- | --- |'];
const details: string[] = [];
const models = readdirSync(folder)
  .filter((f) => f.endsWith('.truth.json'))
  .map((f) => f.replace(/\.truth\.json$/, ''))
  .sort();

rows.push('| model | activations | median \\|log2 err\\| | p90 | max | ' + FORMATS.map(([f]) => `${f} overflow recall / precision | ${f} underflow recall / precision`).join(' | ') + ' |');
rows.push('|' + ' --- |'.repeat(5 + 2 * FORMATS.length));

for (const name of models) {
  const truth = JSON.parse(readFileSync(path.join(folder, `${name}.truth.json`), 'utf8')) as Truth;
  const model = loadModel(path.join(folder, `${name}.onnx`));
  const t0 = Date.now();
  const report = analyzeModel(model, { formats: FORMATS.map(([f]) => parseFormat(f)), grad: true });
  const ms = Date.now() - t0;
  const byName = new Map<string, TensorReport>();
  for (const t of report.tensors) if (t.kind !== 'gradient') byName.set(t.name, t);

  const errs: { name: string; err: number; pred: number; meas: number; op: string }[] = [];
  const over = new Map<string, Counts>(FORMATS.map(([f]) => [f, newCounts()]));
  const under = new Map<string, Counts>(FORMATS.map(([f]) => [f, newCounts()]));
  for (const [tname, tt] of Object.entries(truth.tensors)) {
    if (tt.rms === undefined || !tt.formats) continue;
    const p = byName.get(tname);
    const count = p?.shape && p.shape.every((d) => typeof d === 'number') ? (p.shape as number[]).reduce((a, b) => a * b, 1) : null;
    if (tt.src !== 'initializer' && tt.src !== 'input') {
      if (p && p.rms !== null) {
        const err = tt.rms === 0 && p.rms === 0 ? 0 : Math.abs(Math.log2(Math.max(p.rms, 1e-300) / Math.max(tt.rms, 1e-300)));
        errs.push({ name: tname, err, pred: p.rms, meas: tt.rms, op: tt.src });
      } else errs.push({ name: tname, err: Infinity, pred: NaN, meas: tt.rms, op: tt.src });
    }
    for (const [ours, theirs] of FORMATS) {
      const m = tt.formats[theirs];
      const r = p?.risk[ours];
      for (const [counts, mv, pv] of [
        [over.get(ours)!, m?.frac_overflow ?? 0, r?.overflow ?? 0],
        [under.get(ours)!, m?.frac_underflow ?? 0, r?.underflow ?? 0],
      ] as [Counts, number, number][]) {
        const mf = mv > FLAG;
        const pf = predictedFlag(pv, count);
        if (mf) counts.measured++;
        if (pf) counts.predicted++;
        if (mf && pf) counts.both++;
        if (mf && !pf) counts.missed.push(`${tname} (measured ${mv.toPrecision(3)}, predicted ${pv.toPrecision(3)})`);
        if (!mf && pf) counts.extra.push(`${tname} (predicted ${pv.toPrecision(3)})`);
      }
    }
  }
  // Gradients of the stored parameters (d/dW of sum(output·g), g ~ N(0, 1)) against PyTorch's.
  const gradErrs: { name: string; err: number; pred: number; meas: number }[] = [];
  for (const p of Object.values(truth.param_grad_rms ?? {})) {
    if (!p.onnx_name || !p.onnx_match?.startsWith('name') || !(p.grad_rms > 0)) continue;
    const g = report.tensors.find((t) => t.kind === 'gradient' && t.name === p.onnx_name);
    if (!g || g.rms === null) continue;
    gradErrs.push({ name: p.onnx_name, err: Math.abs(Math.log2(g.rms / p.grad_rms)), pred: g.rms, meas: p.grad_rms });
  }
  gradRows.push(`| ${name} | ${gradErrs.length} | ${quantile(gradErrs.map((x) => x.err), 0.5).toFixed(3)} | ${quantile(gradErrs.map((x) => x.err), 0.9).toFixed(3)} | ${Math.max(...gradErrs.map((x) => x.err)).toFixed(2)} |`);
  const e = errs.map((x) => x.err);
  const cells = [
    name,
    String(errs.length),
    quantile(e, 0.5).toFixed(3),
    quantile(e, 0.9).toFixed(3),
    Math.max(...e).toFixed(2),
    ...FORMATS.flatMap(([f]) => {
      const o = over.get(f)!;
      const u = under.get(f)!;
      return [`${pct(o.both, o.measured)} / ${pct(o.both, o.predicted)}`, `${pct(u.both, u.measured)} / ${pct(u.both, u.predicted)}`];
    }),
  ];
  rows.push(`| ${cells.join(' | ')} |`);
  details.push(`\n### ${name} (${report.tensors.length} tensors, analysed in ${ms} ms)\n`);
  const worst = [...errs].sort((a, b) => b.err - a.err).slice(0, verbose ? 25 : 8);
  details.push('| tensor | op | predicted RMS | measured RMS | \\|log2 err\\| |', '| --- | --- | --- | --- | --- |');
  for (const w of worst) details.push(`| ${w.name} | ${w.op} | ${w.pred.toPrecision(4)} | ${w.meas.toPrecision(4)} | ${w.err.toFixed(3)} |`);
  for (const [f] of FORMATS) {
    const o = over.get(f)!;
    const u = under.get(f)!;
    if (o.missed.length) details.push(`\n- ${f} overflow missed: ${o.missed.slice(0, verbose ? 50 : 5).join('; ')}`);
    if (u.missed.length) details.push(`- ${f} underflow missed: ${u.missed.slice(0, verbose ? 50 : 5).join('; ')}`);
    if (verbose && o.extra.length) details.push(`- ${f} overflow false flags: ${o.extra.slice(0, 20).join('; ')}`);
    if (verbose && u.extra.length) details.push(`- ${f} underflow false flags: ${u.extra.slice(0, 20).join('; ')}`);
  }
}

const text = [
  '# Prediction fidelity',
  '',
  'Static prediction (no data) vs measured statistics. RMS error over float node outputs (|log2(predicted RMS / measured RMS)|).',
  'Measured flag: measured share > 1e-6. Predicted flag: P(more than n·1e-6 of the n elements) ≥ 10% under the predicted share (Poisson).',
  '',
  ...rows,
  '',
  'Weight gradients (--grad, unit-scale output gradient) against PyTorch’s measured gradient RMS (informative):',
  '',
  ...gradRows,
  ...details,
  '',
].join('\n');
process.stdout.write(text);
const outDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'out');
mkdirSync(outDir, { recursive: true });
writeFileSync(path.join(outDir, 'fidelity.md'), text);
