import { describe, expect, it } from 'vitest';
import { parseFormat, quantise } from '../../src/formats/index.js';
import { exactQuantiles, linearQuantile, TensorStats } from '../../src/measure/stats.js';
import { gaussian, mulberry32 } from '../helpers/random.js';

const formats = ['e4m3', 'fp16'].map((f) => parseFormat(f));

/** numpy.quantile(|x|, q) (linear), computed the slow obvious way. */
function npQuantile(xs: number[], q: number): number {
  const s = xs.map(Math.abs).sort((a, b) => a - b);
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

function sample(n: number, seed: number, scale = 1): Float32Array {
  const rng = mulberry32(seed);
  return Float32Array.from({ length: n }, () => gaussian(rng) * scale);
}

describe('TensorStats', () => {
  it('matches direct formulas on a small tensor', () => {
    const x = new Float32Array([0, 1, -2, 3, 0, 0.5, -0.25, 4]);
    const st = new TensorStats(formats);
    st.add(x);
    const r = st.result();
    const xs = Array.from(x);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const ms = xs.reduce((a, b) => a + b * b, 0) / xs.length;
    expect(r.count).toBe(8);
    expect(r.mean).toBeCloseTo(mean, 14);
    expect(r.rms).toBeCloseTo(Math.sqrt(ms), 14);
    expect(r.std).toBeCloseTo(Math.sqrt(ms - mean * mean), 14);
    expect([r.min, r.max, r.absmax, r.fracZero]).toEqual([-2, 4, 4, 0.25]);
    for (const [q, v] of [[0.5, r.absP50], [0.99, r.absP99], [0.999, r.absP999]] as const) expect(v).toBeCloseTo(npQuantile(xs, q), 12);
    // log2 bins: 0.25→-2, 0.5→-1, 1→0, 2→1, 3→1, 4→2
    expect(r.log2Hist).toEqual({ log2Min: -2, counts: [1, 1, 1, 2, 1] });
    expect(r.quantilesExact).toBe(true);
  });

  it('numpy linear quantile of a sorted array', () => {
    expect(linearQuantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(linearQuantile([1, 2, 3, 4], 0.99)).toBeCloseTo(3.97, 12);
    expect(linearQuantile([7], 0.999)).toBe(7);
  });

  it('radix-select quantiles equal sort-based numpy quantiles (ties, zeros, several arrays)', () => {
    const rng = mulberry32(11);
    const arrays = [
      Float32Array.from({ length: 50_000 }, () => Math.abs(gaussian(rng))),
      Float32Array.from({ length: 777 }, (_, i) => (i % 3 === 0 ? 0 : 0.5)),
      new Float32Array(1).fill(1e-30),
      Float32Array.from({ length: 100 }, () => Math.abs(gaussian(rng)) * 1e30),
    ];
    const all = arrays.flatMap((a) => Array.from(a)).sort((a, b) => a - b);
    const qs = [0, 0.25, 0.5, 0.99, 0.999, 1];
    const got = exactQuantiles(arrays, all.length, qs);
    qs.forEach((q, i) => expect(got[i]).toBe(linearQuantile(all, q)));
    expect(exactQuantiles([new Float32Array([3, 3, 3])], 3, [0.5])).toEqual([3]);
  });

  it('risk follows the definitions (clip then cast; shares of finite values)', () => {
    const x = new Float32Array([500, -1000, 1e-4, 0, 0.0039, 1, NaN, Infinity]);
    const st = new TensorStats(formats);
    st.add(x);
    const r = st.result();
    expect(r.count).toBe(6);
    expect(r.nonFinite).toBe(2);
    const e4 = r.risk.e4m3!;
    expect(e4.overflow).toBeCloseTo(2 / 6, 15);
    expect(e4.underflow).toBeCloseTo(1 / 6, 15); // 1e-4 < 2^-10
    expect(e4.subnormal).toBeCloseTo(1 / 6, 15); // 0.0039 ≈ 2·2^-9
    const f = parseFormat('e4m3');
    const fin = [500, -1000, 1e-4, 0, 0.0039, 1].map((v) => Math.fround(v));
    const sig = fin.reduce((a, v) => a + v * v, 0);
    const noise = fin.reduce((a, v) => a + (v - quantise(Math.max(-f.max, Math.min(f.max, v)), f)) ** 2, 0);
    expect(e4.sqnrDb!).toBeCloseTo(10 * Math.log10(sig / noise), 9);
    expect(r.risk.fp16!.sqnrDb).not.toBeNull();
  });

  it('an exactly representable tensor has infinite SQNR (null) and zero std', () => {
    const st = new TensorStats(formats);
    st.add(new Float32Array(1000).fill(1));
    const r = st.result();
    expect(r.std).toBe(0);
    expect(r.risk.e4m3!.sqnrDb).toBeNull();
  });

  it('is invariant to chunking while quantiles stay exact', () => {
    const x = sample(10_000, 1, 3);
    const whole = new TensorStats(formats);
    whole.add(x);
    const parts = new TensorStats(formats);
    for (let i = 0; i < x.length; i += 999) parts.add(x.subarray(i, i + 999));
    const a = whole.result();
    const b = parts.result();
    expect(b.mean).toBeCloseTo(a.mean, 12);
    expect(b.rms).toBeCloseTo(a.rms, 12);
    expect(b.std).toBeCloseTo(a.std, 12);
    expect([b.absP50, b.absP99, b.absP999, b.absmax]).toEqual([a.absP50, a.absP99, a.absP999, a.absmax]);
    expect(b.log2Hist).toEqual(a.log2Hist);
    expect(b.risk.e4m3!.underflow).toBe(a.risk.e4m3!.underflow);
  });

  it('past the exact limit, histogram quantiles are within 0.4%', () => {
    const x = sample(50_000, 2, 0.01);
    const exact = new TensorStats(formats);
    exact.add(x);
    const hist = new TensorStats(formats, { exactLimit: 20_000 });
    for (let i = 0; i < x.length; i += 10_000) hist.add(x.subarray(i, i + 10_000));
    const a = exact.result();
    const b = hist.result();
    expect(b.quantilesExact).toBe(false);
    for (const k of ['absP50', 'absP99', 'absP999'] as const) expect(Math.abs(b[k] / a[k] - 1)).toBeLessThan(0.004);
    expect(b.rms).toBeCloseTo(a.rms, 12);
  });

  it('float64 input (Float64Array) gives the same as its float32 twin', () => {
    const x = sample(4096, 3);
    const a = new TensorStats(formats);
    a.add(x);
    const b = new TensorStats(formats);
    b.add(Float64Array.from(x));
    const ra = a.result();
    const rb = b.result();
    expect(rb.log2Hist).toEqual(ra.log2Hist);
    expect([rb.absP50, rb.absP99, rb.rms]).toEqual([ra.absP50, ra.absP99, ra.rms]);
  });
});
