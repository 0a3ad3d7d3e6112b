/**
 * measure against the validation truth (/work/shared/validation): every float tensor the truth
 * lists (inputs, initializers and node outputs) must agree with what unitscale measures on the
 * recorded inputs — from the .pb folder and from the .npz.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFormat } from '../../src/formats/index.js';
import { measureModel } from '../../src/measure/measure.js';
import { loadModel } from '../../src/onnx/load.js';
import type { Report } from '../../src/report/types.js';

const DIR = '/work/shared/validation';
const FORMATS = ['e4m3', 'e5m2', 'fp16', 'bf16'];
const TRUTH_NAME: Record<string, string> = { e4m3: 'e4m3fn', e5m2: 'e5m2', fp16: 'fp16', bf16: 'bf16' };

interface TruthTensor {
  src: string;
  dtype: string;
  shape: number[];
  count: number;
  mean?: number;
  std?: number;
  rms?: number;
  absmax?: number;
  abs_p50?: number;
  abs_p99?: number;
  abs_p999?: number;
  frac_zero?: number;
  formats?: Record<string, { frac_overflow: number; frac_underflow: number; frac_subnormal: number; sqnr_db: number | 'inf' }>;
}

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
const fracOk = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-6 || rel(a, b) <= 0.01;

/** Compare a report with a truth file; returns the worst disagreements and the list of failures. */
export function scoreAgainstTruth(report: Report, truth: Record<string, TruthTensor>) {
  const byName = new Map(report.tensors.map((t) => [t.name, t]));
  const failures: string[] = [];
  const worst = { rms: 0, absmax: 0, frac: 0, sqnrDb: 0, quantile: 0, compared: 0 };
  for (const [name, t] of Object.entries(truth)) {
    if (!t.formats) continue; // non-float
    const m = byName.get(name);
    if (!m) {
      failures.push(`${name}: missing from the report`);
      continue;
    }
    worst.compared++;
    const r = rel(m.rms!, t.rms!);
    const a = rel(m.absmax!, t.absmax!);
    worst.rms = Math.max(worst.rms, r);
    worst.absmax = Math.max(worst.absmax, a);
    if (!(r <= 0.01)) failures.push(`${name}: rms ${m.rms} vs ${t.rms}`);
    if (!(a <= 0.01)) failures.push(`${name}: absmax ${m.absmax} vs ${t.absmax}`);
    for (const [q, tq] of [['absP50', t.abs_p50], ['absP99', t.abs_p99], ['absP999', t.abs_p999]] as const) {
      const mq = m.measured![q];
      const e = Math.abs(mq - tq!) / Math.max(Math.abs(tq!), 1e-30);
      if (tq! > 1e-30) worst.quantile = Math.max(worst.quantile, e);
      if (!(Math.abs(mq - tq!) <= 1e-6 * Math.abs(tq!) + 1e-40 || e <= 1e-4)) failures.push(`${name}: ${q} ${mq} vs ${tq}`);
    }
    for (const f of FORMATS) {
      const tf = t.formats[TRUTH_NAME[f]!]!;
      const mf = m.risk[f]!;
      for (const [k, tk] of [['overflow', tf.frac_overflow], ['underflow', tf.frac_underflow], ['subnormal', tf.frac_subnormal]] as const) {
        worst.frac = Math.max(worst.frac, Math.abs(mf[k] - tk));
        if (!fracOk(mf[k], tk)) failures.push(`${name}: ${f} ${k} ${mf[k]} vs ${tk}`);
      }
      if (tf.sqnr_db === 'inf') {
        if (mf.sqnrDb !== null) failures.push(`${name}: ${f} sqnr ${mf.sqnrDb} vs inf`);
      } else {
        const d = mf.sqnrDb === null ? Infinity : Math.abs(mf.sqnrDb - tf.sqnr_db);
        worst.sqnrDb = Math.max(worst.sqnrDb, d);
        if (!(d <= 0.1)) failures.push(`${name}: ${f} sqnr ${mf.sqnrDb} vs ${tf.sqnr_db}`);
      }
    }
  }
  return { failures, worst };
}

const formats = FORMATS.map((f) => parseFormat(f));

for (const name of ['gpt2_tiny', 'mobilenet_v3_small']) {
  const onnx = `${DIR}/${name}.onnx`;
  describe.skipIf(!existsSync(onnx))(`measure ${name} vs truth`, () => {
    const truth = JSON.parse(readFileSync(`${DIR}/${name}.truth.json`, 'utf8')) as { tensors: Record<string, TruthTensor> };

    for (const inputs of [`${DIR}/${name}.inputs`, `${DIR}/${name}.inputs.npz`]) {
      it(`agrees with truth on every float tensor (inputs from ${inputs.split('/').pop()})`, async () => {
        const report = await measureModel(loadModel(onnx), { formats, inputs });
        expect(report.mode).toBe('measured');
        const { failures, worst } = scoreAgainstTruth(report, truth.tensors);
        if (process.env.SHOW_AGREEMENT) console.log(name, JSON.stringify(worst));
        expect(failures).toEqual([]);
        // Every float node output of the truth is a measured activation/output, listed once.
        const names = report.tensors.map((t) => t.name);
        expect(new Set(names).size).toBe(names.length);
        const nodeOutputs = Object.entries(truth.tensors).filter(([, t]) => t.formats && t.src !== 'input' && t.src !== 'initializer');
        expect(nodeOutputs.length).toBeGreaterThan(50);
        for (const [n] of nodeOutputs) expect(report.tensors.find((t) => t.name === n)?.kind).toMatch(/activation|output/);
      });
    }

    it('gives the same statistics with a tiny output batch (batching is invisible)', async () => {
      const a = await measureModel(loadModel(onnx), { formats, inputs: `${DIR}/${name}.inputs`, batchOutputs: 16 });
      const b = await measureModel(loadModel(onnx), { formats, inputs: `${DIR}/${name}.inputs.npz`, batchOutputs: 1000 });
      expect(a.tensors.map((t) => [t.name, t.rms, t.absmax, t.risk])).toEqual(b.tensors.map((t) => [t.name, t.rms, t.absmax, t.risk]));
    });
  });
}
