/**
 * The fused statistics of measure (stats.ts, fused-risk.ts, `runLanesStats` in fast-wasm.ts)
 * against straightforward reference implementations, on random data with the edge cases that
 * break bit tricks: NaN, ±Inf, ±0, float32 subnormals (below and above 2^-134), ties (repeated
 * values), mask fills, values straddling powers of two, and chunk sizes around the kernel's
 * thresholds.
 */
import { describe, expect, it } from 'vitest';
import { parseFormat, RiskAccumulator } from '../../src/formats/index.js';
import { kernel, runLanes, runLanesStats, SIGNAL_TABLE, type Lane } from '../../src/formats/fast-wasm.js';
import { roundingTable } from '../../src/formats/fast-risk.js';
import { FusedRisk } from '../../src/measure/fused-risk.js';
import { exactQuantiles, linearQuantile, TensorStats } from '../../src/measure/stats.js';
import { gaussian, mulberry32 } from '../helpers/random.js';

const formats = ['e4m3', 'e5m2', 'fp16', 'bf16', 'e2m1', 'e3m2', 'e4m3fnuz', 'e5m2fnuz', 'fp32', 'tf32'].map((f) => parseFormat(f));

/** Random float32 data mixing scales and every edge case. */
function nasty(n: number, seed: number, opts: { nonFinite?: boolean } = {}): Float32Array {
  const rng = mulberry32(seed);
  const pool = [0, -0, 1, -1, 0.5, 2, 448, -448, 464, 57344, 65504, 2 ** -9, 2 ** -10, 3 * 2 ** -11, 2 ** -24, 2 ** -25, 1e-45, -1e-45, 2 ** -140, 2 ** -130, 2 ** -126, -1e4, -3.4028234663852886e38, 3.4e38];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng();
    if (u < 0.15) out[i] = pool[Math.floor(rng() * pool.length)]!;
    else if (u < 0.2) out[i] = Math.max(0, gaussian(rng));
    else if (u < 0.25) out[i] = Math.floor(gaussian(rng) * 4) / 4; // ties
    else if (opts.nonFinite && u < 0.27) out[i] = [NaN, Infinity, -Infinity][Math.floor(rng() * 3)]!;
    else out[i] = gaussian(rng) * 2 ** Math.floor(rng() * 60 - 40);
  }
  return out;
}

/** The statistics the slow obvious way. */
function reference(chunks: Float32Array[]) {
  const fin: number[] = [];
  let nonFinite = 0;
  for (const c of chunks) for (const x of c) (Number.isFinite(x) ? fin.push(x) : nonFinite++);
  const n = fin.length;
  const mean = fin.reduce((a, b) => a + b, 0) / n;
  const variance = fin.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  const abs = fin.map(Math.abs).sort((a, b) => a - b);
  const log2 = new Map<number, number>();
  for (const a of abs) if (a !== 0) log2.set(Math.floor(Math.log2(a)), (log2.get(Math.floor(Math.log2(a))) ?? 0) + 1);
  const keys = [...log2.keys()].sort((a, b) => a - b);
  const counts = keys.length ? Array.from({ length: keys.at(-1)! - keys[0]! + 1 }, (_, i) => log2.get(keys[0]! + i) ?? 0) : [];
  return {
    count: n,
    nonFinite,
    mean,
    std: Math.sqrt(variance),
    min: Math.min(...fin),
    max: Math.max(...fin),
    fracZero: fin.filter((x) => x === 0).length / n,
    fracMasked: fin.filter((x) => x <= -1e4).length / n,
    q: [0.5, 0.99, 0.999].map((q) => linearQuantile(abs, q)),
    log2Hist: { log2Min: keys.length ? keys[0]! : 0, counts },
  };
}

function riskOf(chunks: Float32Array[]) {
  const acc = new RiskAccumulator(formats);
  for (const c of chunks) acc.add(c);
  return acc.result().formats;
}

describe('TensorStats (fused passes) vs the obvious computation', () => {
  for (const [label, sizes, nonFinite] of [
    ['one big chunk', [50_000], false],
    ['one big chunk with NaN/Inf', [40_001], true],
    ['tiny chunks (JavaScript path)', [1, 7, 63, 64, 65], true],
    ['mixed chunk sizes', [3, 70_000, 100, 12_345], true],
  ] as const) {
    it(`${label}: moments, quantiles, log2 bins and risk`, () => {
      const chunks = sizes.map((n, i) => nasty(n, 100 + i + n, { nonFinite }));
      for (const borrow of [false, true]) {
        const st = new TensorStats(formats, { exactLimit: Infinity, borrow });
        for (const c of chunks) st.add(c);
        const r = st.result();
        const ref = reference(chunks);
        expect(r.count).toBe(ref.count);
        expect(r.nonFinite).toBe(ref.nonFinite);
        expect([r.min, r.max, r.fracZero, r.fracMasked]).toEqual([ref.min, ref.max, ref.fracZero, ref.fracMasked]);
        expect(Math.abs(r.mean - ref.mean)).toBeLessThanOrEqual(1e-12 * Math.max(Math.abs(ref.min), Math.abs(ref.max)));
        expect(Math.abs(r.std / ref.std - 1)).toBeLessThan(1e-12);
        expect([r.absP50, r.absP99, r.absP999]).toEqual(ref.q);
        expect(r.quantilesExact).toBe(true);
        expect(r.log2Hist).toEqual(ref.log2Hist);
        // Risk: bit-for-bit RiskAccumulator's.
        const want = riskOf(chunks);
        for (const f of formats) {
          const w = want[f.name]!;
          expect(r.risk[f.name]).toEqual({ overflow: w.overflow, underflow: w.underflow, subnormal: w.subnormal, sqnrDb: Number.isFinite(w.sqnrDb) ? w.sqnrDb : null });
        }
        // result() is repeatable.
        expect(st.result()).toEqual(r);
      }
    });
  }

  it('float64 chunks give the same as their float32 twins (moments, quantiles, log2, risk)', () => {
    const chunks = [nasty(5000, 7, { nonFinite: true }), nasty(300, 8)];
    const a = new TensorStats(formats);
    const b = new TensorStats(formats);
    for (const c of chunks) (a.add(c), b.add(Float64Array.from(c)));
    const ra = a.result();
    const rb = b.result();
    expect([rb.absP50, rb.absP99, rb.absP999, rb.min, rb.max, rb.count, rb.nonFinite]).toEqual([ra.absP50, ra.absP99, ra.absP999, ra.min, ra.max, ra.count, ra.nonFinite]);
    expect(rb.log2Hist).toEqual(ra.log2Hist);
    expect(rb.risk).toEqual(ra.risk);
    expect(rb.mean).toBe(ra.mean);
  });

  it('a tensor crossing the exact limit falls back to histogram quantiles and keeps exact moments', () => {
    const chunks = [nasty(30_000, 21), nasty(30_000, 22)];
    const st = new TensorStats(formats, { exactLimit: 40_000 });
    for (const c of chunks) st.add(c);
    const r = st.result();
    const ref = reference(chunks);
    expect(r.quantilesExact).toBe(false);
    expect(Math.abs(r.std / ref.std - 1)).toBeLessThan(1e-12);
    for (const [i, k] of (['absP50', 'absP99', 'absP999'] as const).entries()) expect(Math.abs(r[k] - ref.q[i]!)).toBeLessThanOrEqual(0.004 * ref.q[i]!);
  });

  it('all-equal, all-zero, all-NaN and single-element tensors', () => {
    const cases = [new Float32Array(100_000).fill(0.1), new Float32Array(1000), new Float32Array(500).fill(NaN), new Float32Array([-3])];
    for (const c of cases) {
      const st = new TensorStats(formats, { exactLimit: Infinity });
      st.add(c);
      const r = st.result();
      const ref = reference([c]);
      if (ref.count === 0) {
        expect(r.count).toBe(0);
        expect(r.nonFinite).toBe(c.length);
        continue;
      }
      expect([r.absP50, r.absP99, r.absP999]).toEqual(ref.q);
      expect(r.std).toBe(0);
      expect(r.log2Hist).toEqual(ref.log2Hist);
    }
  });
});

describe('exactQuantiles', () => {
  it('equals sorting on several arrays with ties, zeros, subnormals and big bins', () => {
    const rng = mulberry32(5);
    const arrays = [
      Float32Array.from(nasty(20_000, 3).filter((x) => Number.isFinite(x)), Math.abs),
      new Float32Array(5000).fill(1.5), // one bin past the sort threshold: counted by low bits
      Float32Array.from({ length: 3000 }, () => 1 + Math.floor(rng() * 7) * 2 ** -23), // ties inside one bin
      new Float32Array(10),
    ];
    const all = arrays.flatMap((a) => Array.from(a)).sort((a, b) => a - b);
    const qs = [0, 0.1, 0.5, 0.77, 0.99, 0.999, 1];
    expect(exactQuantiles(arrays, all.length, qs)).toEqual(qs.map((q) => linearQuantile(all, q)));
    expect(exactQuantiles([], 0, [0.5])).toEqual([NaN]);
  });
});

describe('runLanesStats', () => {
  it.skipIf(!kernel())('gives runLanes results plus the JavaScript first-pass statistics', () => {
    const k = kernel()!;
    const fs = formats.filter((f) => roundingTable(f, 'f32'));
    const lanes = (): Lane[] => [
      { table: SIGNAL_TABLE, max: Infinity, minNormal: 0, noise: 0, noiseComp: 0, over: 0, zero: 0, low: 0 },
      ...fs.map((f) => ({ table: roundingTable(f, 'f32')!, max: f.max, minNormal: f.minNormal, noise: 0, noiseComp: 0, over: 0, zero: 0, low: 0 })),
    ];
    for (const n of [1, 100, 65_536, 150_001]) {
      const x = nasty(n, n, { nonFinite: true });
      const a = lanes();
      const b = lanes();
      const ra = runLanes(k, x, a);
      const rb = runLanesStats(k, x, b);
      expect(b).toEqual(a);
      expect([rb.finite, rb.zeros]).toEqual([ra.finite, ra.zeros]);
      let sum = 0;
      let min = Infinity;
      let max = -Infinity;
      let masked = 0;
      let lo = 0x7f800000;
      const hist = new Map<number, number>();
      const bits = new Uint32Array(x.buffer);
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        if (!Number.isFinite(v)) continue;
        sum += v;
        if (v < min) min = v;
        if (v > max) max = v;
        if (v <= -1e4) masked++;
        const ab = bits[i]! & 0x7fffffff;
        if (ab !== 0 && ab < lo) lo = ab;
        hist.set(ab >>> 15, (hist.get(ab >>> 15) ?? 0) + 1);
      }
      expect({ sum: rb.sum, min: rb.min, max: rb.max, masked: rb.masked, lo: rb.lo }).toEqual({ sum, min, max, masked, lo });
      const got = new Map<number, number>();
      for (let i = 0; i < k.hist.length; i++) if (k.hist[i]) (got.set(i, k.hist[i]!), (k.hist[i] = 0));
      expect(got).toEqual(hist);
    }
  });
});

describe('FusedRisk', () => {
  it('is RiskAccumulator bit for bit, float32 and float64 chunks, kernel on every size', () => {
    const chunks = [nasty(10, 1, { nonFinite: true }), nasty(64, 2), nasty(100_000, 3, { nonFinite: true })];
    const fused = new FusedRisk(formats);
    const acc = new RiskAccumulator(formats);
    for (const c of chunks) {
      const r = fused.addF32(c);
      if (r) for (let i = 0; i < r.kernel.hist.length; i++) r.kernel.hist[i] = 0;
      acc.add(c);
      const d = Float64Array.from(c);
      fused.addF64(d);
      acc.add(d);
    }
    const want = acc.result().formats;
    const got = fused.result();
    for (const f of formats) {
      const w = want[f.name]!;
      expect(got[f.name]).toEqual({ overflow: w.overflow, underflow: w.underflow, subnormal: w.subnormal, sqnrDb: Number.isFinite(w.sqnrDb) ? w.sqnrDb : null });
    }
  });
});
