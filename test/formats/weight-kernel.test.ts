/**
 * WeightKernel (src/formats/weight-kernel.ts) against the definitions: counts exactly those of
 * RiskAccumulator / addToTally, Σx, Σx² and noise within 1e-9 relative of float64 loops, min / max /
 * absmax exact. Data: random values over 18 decades, Gaussians, every tie of each format's grid
 * and its float32 neighbours, the overflow / subnormal / underflow boundaries, float32 subnormals
 * and FLT_MAX, ±0, ±Inf, NaN; lengths around multiples of 4 and of the kernel's capacity.
 */
import { describe, expect, it } from 'vitest';
import { listFormats, parseFormat, type Format } from '../../src/formats/format.js';
import { decode, roundMagnitude } from '../../src/formats/quantise.js';
import { RiskAccumulator } from '../../src/formats/risk.js';
import { mergeSummaries, summaryRisk, WeightKernel, type Float32Summary } from '../../src/formats/weight-kernel.js';
import { gaussian, mulberry32 } from '../helpers/random.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsOf = (x: number): number => ((f32[0] = x), u32[0]!);
const fromBits = (b: number): number => ((u32[0] = b >>> 0), f32[0]!);
const below = (x: number): number => (x === 0 ? 0 : fromBits(bitsOf(x) - 1));
const above = (x: number): number => fromBits(bitsOf(x) + 1);
const FLT_MAX = 3.4028234663852886e38;

const MAIN = ['e4m3', 'e5m2', 'fp16', 'bf16'].map((n) => parseFormat(n));

/** The definitions, element by element in float64 (addToTally of risk.ts, plus the moments). */
function reference(x: Float32Array, formats: Format[]): Float32Summary {
  const s: Float32Summary = {
    count: x.length, nonFinite: 0, nan: 0, zeros: 0, sum: 0, sumSq: 0, absmax: 0, min: Infinity, max: -Infinity,
    formats: formats.map(() => ({ overflow: 0, underflow: 0, subnormal: 0, noise: 0 })),
  };
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (!Number.isFinite(v)) {
      s.nonFinite++;
      if (v !== v) s.nan++;
      continue;
    }
    if (v === 0) s.zeros++;
    s.sum += v;
    s.sumSq += v * v;
    s.min = Math.min(s.min, v);
    s.max = Math.max(s.max, v);
    const a = Math.abs(v);
    s.absmax = Math.max(s.absmax, a);
    formats.forEach((f, k) => {
      const t = s.formats[k]!;
      let q: number;
      if (a > f.max) {
        t.overflow++;
        q = f.max;
      } else q = roundMagnitude(a, f.manBits, f.minNormal, f.minSubnormal);
      if (q === 0) {
        if (a !== 0) t.underflow++;
      } else if (q < f.minNormal) t.subnormal++;
      t.noise += (a - q) * (a - q);
    });
  }
  return s;
}

function close(actual: number, expected: number, rel = 1e-9, abs = 0): void {
  if (expected === actual) return;
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.abs(expected) + abs);
}

/** Σx can cancel: compare it relative to Σ|x| (what a float64 loop is accurate to). */
function sumAbs(x: Float32Array): number {
  let s = 0;
  for (const v of x) if (Number.isFinite(v)) s += Math.abs(v);
  return s;
}

function expectSummary(got: Float32Summary, want: Float32Summary, x: Float32Array | null): void {
  expect(got.count).toBe(want.count);
  expect(got.nonFinite).toBe(want.nonFinite);
  expect(got.nan).toBe(want.nan);
  expect(got.zeros).toBe(want.zeros);
  expect(got.min).toBe(want.min);
  expect(got.max).toBe(want.max);
  expect(got.absmax).toBe(want.absmax);
  close(got.sum, want.sum, 0, 1e-9 * (x ? sumAbs(x) : Math.abs(want.sum)));
  close(got.sumSq, want.sumSq);
  expect(got.formats.length).toBe(want.formats.length);
  got.formats.forEach((t, k) => {
    const w = want.formats[k]!;
    expect({ k, overflow: t.overflow, underflow: t.underflow, subnormal: t.subnormal }).toEqual({
      k, overflow: w.overflow, underflow: w.underflow, subnormal: w.subnormal,
    });
    close(t.noise, w.noise);
  });
}

/** Also the project's accumulator: identical shares, SQNR within rounding. */
function expectMatchesAccumulator(got: Float32Summary, x: Float32Array, formats: Format[]): void {
  const acc = new RiskAccumulator(formats);
  acc.add(x);
  const ref = acc.result();
  expect(got.count - got.nonFinite).toBe(ref.count);
  expect(got.nonFinite).toBe(ref.nonFinite);
  expect(got.nan).toBe(ref.nan);
  expect(got.zeros).toBe(ref.zeros);
  const risk = summaryRisk(got, formats);
  for (const f of formats) {
    const r = risk[f.name]!;
    const w = ref.formats[f.name]!;
    expect({ name: f.name, overflow: r.overflow, underflow: r.underflow, subnormal: r.subnormal }).toEqual({
      name: f.name, overflow: w.overflow, underflow: w.underflow, subnormal: w.subnormal,
    });
    if (Number.isFinite(w.sqnrDb)) expect(Math.abs(r.sqnrDb - w.sqnrDb)).toBeLessThan(1e-7);
    else expect(r.sqnrDb).toBe(w.sqnrDb);
  }
}

function kernelOf(formats: Format[]): WeightKernel {
  const k = WeightKernel.create(formats);
  if (!k) throw new Error(`no kernel for ${formats.map((f) => f.name).join(',')}`);
  return k;
}

function runAll(formats: Format[], x: Float32Array): { k: WeightKernel; s: Float32Summary } {
  const k = kernelOf(formats);
  k.add(x);
  return { k, s: k.summary() };
}

/** Magnitudes that test f's rounding: grid points, ties, neighbours, boundaries (float32 only). */
function hardValues(f: Format): number[] {
  const out: number[] = [];
  const push = (v: number): void => {
    const y = Math.fround(v);
    if (y === v && Number.isFinite(y) && y >= 0) out.push(y, below(y), above(y));
  };
  if (f.bits <= 12) {
    const g: number[] = [];
    for (let c = 0; c < 2 ** (f.bits - 1); c++) {
      const v = decode(c, f);
      if (Number.isFinite(v)) g.push(v);
    }
    g.sort((a, b) => a - b);
    g.forEach((v, i) => {
      push(v);
      if (i + 1 < g.length) push((v + g[i + 1]!) / 2);
    });
  } else {
    // Wide formats: ties in the subnormal range and in a spread of binades, both parities.
    for (let j = 0; j < 8; j++) push((j + 0.5) * f.minSubnormal);
    const emin = 1 - f.bias;
    for (const E of [emin, emin + 1, -20, -7, -1, 0, 1, 5, 14, 60, 126]) {
      if (2 ** E > f.max) continue;
      const step = 2 ** (E - f.manBits);
      for (const j of [0, 1, 2, 3, 2 ** f.manBits - 2, 2 ** f.manBits - 1]) push(2 ** E + (j + 0.5) * step);
    }
  }
  const top = f.max - (f.max - 2 ** Math.floor(Math.log2(f.max))) / Math.max(1, 2 ** f.manBits - 1);
  push(f.max);
  push((f.max + top) / 2);
  push(f.max + (f.max - top) / 2);
  push(f.max + (f.max - top));
  push(2 * f.max);
  push(f.minSubnormal);
  push(f.minSubnormal / 2);
  push(f.minSubnormal / 4);
  push(1.5 * f.minSubnormal);
  push(2.5 * f.minSubnormal);
  push(f.minNormal - f.minSubnormal / 2);
  push(f.minNormal);
  out.push(2 ** -149, 3 * 2 ** -149, 2 ** -140, 2 ** -133, 2 ** -134, 2 ** -126 - 2 ** -149, 2 ** -126, FLT_MAX, 2 ** 127);
  return out;
}

/** Signed, shuffled copies of `mags` (with ±0), optionally with the non-finite values. */
function signedMix(mags: number[], seed: number, nonFinite: boolean): Float32Array {
  const rng = mulberry32(seed);
  const out = [0, -0, ...mags.flatMap((m) => [m, -m])];
  if (nonFinite) out.push(NaN, Infinity, -Infinity, fromBits(0x7fc00001), fromBits(0xffc00000), fromBits(0x7f800001));
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return Float32Array.from(out);
}

function manyScales(n: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const mode = i % 4;
    if (mode === 0) x[i] = (rng() < 0.5 ? -1 : 1) * 10 ** (rng() * 18 - 12); // 1e-12 … 1e6
    else if (mode === 1) x[i] = gaussian(rng) * 10 ** Math.floor(rng() * 10 - 6);
    else if (mode === 2) x[i] = gaussian(rng) * 0.02; // weights
    else x[i] = fromBits(Math.floor(rng() * 0x7f800000) | (rng() < 0.5 ? 0x80000000 : 0)); // any finite pattern
  }
  return x;
}

describe('WeightKernel', () => {
  it('is available here (SIMD, little-endian) for the main formats', () => {
    expect(WeightKernel.create(MAIN)).not.toBeNull();
  });

  it('matches the definitions on random data over 18 decades (every format over- and underflows)', () => {
    const x = manyScales(3 * (1 << 18) + 7, 1);
    const { k, s } = runAll(MAIN, x);
    expectSummary(s, reference(x, MAIN), x);
    expectMatchesAccumulator(s, x, MAIN);
    for (const t of s.formats) expect(t.overflow + t.underflow + t.subnormal).toBeGreaterThan(0);
    expect(s.formats[0]!.overflow).toBeGreaterThan(0);
    expect(k.paths.full).toBeGreaterThan(0);
  });

  it('matches the definitions on well-scaled weights (the fast function)', () => {
    const rng = mulberry32(2);
    const x = new Float32Array((1 << 18) + 13);
    for (let i = 0; i < x.length; i++) x[i] = gaussian(rng) * 0.02;
    const { k, s } = runAll(MAIN, x);
    expect(k.paths.fast).toBe(2);
    expect(k.paths.full + k.paths.scalar).toBe(0);
    expectSummary(s, reference(x, MAIN), x);
    expectMatchesAccumulator(s, x, MAIN);
  });

  for (const f of [...listFormats(), parseFormat('e3m4'), parseFormat('e6m1fn'), parseFormat('e7m20')]) {
    it(`${f.name}: ties, boundaries and neighbours exactly, by every path`, () => {
      const k0 = WeightKernel.create([f]);
      expect(k0).not.toBeNull();
      const hard = hardValues(f);
      // In range only (all through the fast function), then everything finite (full function),
      // then with NaN and ±Inf (element by element).
      const cases: [Float32Array, keyof WeightKernel['paths']][] = [
        [signedMix(hard.filter((v) => v <= f.max), 3, false), 'fast'],
        [signedMix(hard, 4, false), 'full'],
        [signedMix(hard, 5, true), 'scalar'],
      ];
      for (const [x, path] of cases) {
        for (const formats of [[f], [...MAIN, f]]) {
          const { k, s } = runAll(formats, x);
          expectSummary(s, reference(x, formats), x);
          expectMatchesAccumulator(s, x, formats);
          const needsFull = path !== 'full' || x.some((v) => Math.abs(v) > f.max && Number.isFinite(v));
          if (formats.length === 1 && needsFull) expect(k.paths[path]).toBeGreaterThan(0);
        }
      }
    });
  }

  it('blocks of different kinds in one call: each takes its own pass, all exact', () => {
    // Segments of assorted lengths (not multiples of the kernel's block), each Gaussian at some
    // scale with one planted value: exactly at or next to a count threshold (q = 0, q < min
    // normal), min normal, max, 2·max, or a zero; so some blocks skip counts or clipping and their
    // neighbours do not.
    const rng = mulberry32(11);
    for (const f of [...MAIN, parseFormat('e3m4'), parseFormat('e2m1'), parseFormat('tf32')]) {
      const z = f.minSubnormal / 2; // ties to 0: q = 0
      const lo = f.minNormal - f.minSubnormal / 2; // ties up to min normal: not subnormal
      const plants = [z, below(z), above(z), lo, below(lo), above(lo), f.minNormal, below(f.minNormal), f.minNormal - (3 * f.minSubnormal) / 8,
        f.max, above(f.max), 2 * f.max, above(2 * f.max), f.max * 2 ** 30, 0]
        .map((v) => Math.fround(v))
        .filter((v) => Number.isFinite(v));
      /** A segment whose smallest nonzero magnitude is the planted value (or that holds a 0). */
      const segment = (plant: number, i: number, spread: number): number[] => {
        const len = [300, 517, 1024, 2000, 64, 129][i % 6]!;
        const scale = plant > 0 ? Math.min(f.max / 8, plant * spread) : 0.02;
        const out: number[] = [];
        for (let j = 0; j < len; j++) {
          let v = gaussian(rng) * scale;
          if (plant > 0 && Math.abs(v) <= plant) v = plant * (1.5 + rng());
          if (plant > 0 && Math.abs(v) > f.max && plant <= f.max) v = Math.sign(v) * f.max * rng();
          out.push(v);
        }
        out[len - 1 - (i % len)] = (i % 2 ? -1 : 1) * plant;
        return out;
      };
      const check = (x: Float32Array): void => {
        for (const formats of [[f], [...MAIN, f]]) {
          const { s } = runAll(formats, x);
          expectSummary(s, reference(x, formats), x);
          expectMatchesAccumulator(s, x, formats);
        }
      };
      // All kinds in one call (neighbouring blocks differ) …
      check(Float32Array.from(plants.flatMap((plant, i) => segment(plant, i, 1e4))));
      // … and each alone, at a scale where the planted value's own noise is not lost in the sum.
      plants.forEach((plant, i) => check(Float32Array.from(segment(plant, i, 4))));
    }
  });

  it('paths: fast when nothing exceeds a max, full when some block clips', () => {
    const rng = mulberry32(12);
    const x = new Float32Array(40000);
    for (let i = 0; i < x.length; i++) x[i] = gaussian(rng) * 0.02;
    const fast = runAll(MAIN, x).k;
    expect(fast.paths).toEqual({ fast: 1, full: 0, scalar: 0 });
    x[33333] = 449; // past e4m3's max in one block only
    const { k, s } = runAll(MAIN, x);
    expect(k.paths).toEqual({ fast: 0, full: 1, scalar: 0 });
    expectSummary(s, reference(x, MAIN), x);
    expect(s.formats[0]!.overflow).toBe(1);
  });

  it('refuses formats it cannot round exactly (callers then use RiskAccumulator)', () => {
    for (const name of ['e8m0', 'e9m3', 'e11m52', 'e5m21', 'e8m24', 'e8m2fnuz']) {
      expect(WeightKernel.create([parseFormat(name)]), name).toBeNull();
      expect(WeightKernel.create([...MAIN, parseFormat(name)]), name).toBeNull();
    }
  });

  it('every parseFormat built-in and alias is covered', () => {
    for (const f of listFormats()) expect(WeightKernel.create([f]), f.name).not.toBeNull();
    for (const name of ['float16', 'half', 'bfloat16', 'fp8', 'float8e4m3fn', 'float8e5m2fnuz', 'fp6', 'fp4', 'float32', 'tf32']) {
      expect(WeightKernel.create([parseFormat(name)]), name).not.toBeNull();
    }
  });

  it('custom formats: covered ones match, the others are refused', () => {
    const x = manyScales(20011, 6);
    for (let e = 1; e <= 9; e++) {
      for (const m of [0, 1, 2, 3, 5, 7, 10, 20, 21, 23]) {
        for (const conv of ['', 'fn', 'fnuz', 'finite']) {
          let f: Format;
          try {
            f = parseFormat(`e${e}m${m}${conv}`);
          } catch {
            continue;
          }
          const k = WeightKernel.create([f]);
          if (!k) continue;
          k.add(x);
          expectSummary(k.summary(), reference(x, [f]), x);
        }
      }
    }
  });

  it('lengths around multiples of 4 and of the capacity; run() straight on inputBytes', () => {
    const k = kernelOf(MAIN);
    const cap = k.capacity;
    expect(k.inputBytes.length).toBe(4 * cap);
    const all = manyScales(2 * cap + 7, 7);
    for (const n of [0, 1, 3, 4, 5, 15, 16, 17, 63, 64, 65, 255, 256, 257, 1001, cap - 1, cap, cap + 1, 2 * cap + 7]) {
      const x = all.subarray(0, n);
      k.reset();
      k.add(x);
      expectSummary(k.summary(), reference(x, MAIN), x);
    }
    // Straight into the input buffer, as a file reader would.
    k.reset();
    const view = new Float32Array(k.inputBytes.buffer, k.inputBytes.byteOffset, cap);
    const x = all.subarray(0, cap - 3);
    view.set(x);
    k.run(x.length);
    expectSummary(k.summary(), reference(x, MAIN), x);
    expect(() => k.run(cap + 1)).toThrow(RangeError);
  });

  it('an empty summary, and reset()', () => {
    const k = kernelOf(MAIN);
    const empty = k.summary();
    expect(empty).toMatchObject({ count: 0, nonFinite: 0, zeros: 0, sum: 0, sumSq: 0, absmax: 0, min: Infinity, max: -Infinity });
    k.add(Float32Array.from([NaN, Infinity]));
    expect(k.summary()).toMatchObject({ count: 2, nonFinite: 2, nan: 1, absmax: 0, min: Infinity, max: -Infinity });
    const risk = summaryRisk(k.summary(), MAIN);
    expect(risk.e4m3).toEqual({ overflow: 0, underflow: 0, subnormal: 0, sqnrDb: Infinity });
    k.reset();
    expect(k.summary()).toEqual(empty);
  });

  it('mergeSummaries(a, b) equals one pass over a‖b', () => {
    const x = manyScales((1 << 18) + 4099, 8);
    x[17] = NaN;
    x[200001] = -Infinity;
    const whole = runAll(MAIN, x).s;
    for (const cut of [0, 1, 4097, 1 << 18, x.length - 3]) {
      const a = runAll(MAIN, x.subarray(0, cut)).s;
      const b = runAll(MAIN, x.subarray(cut)).s;
      const m = mergeSummaries(a, b);
      expectSummary(m, whole, x);
      expectSummary(m, reference(x, MAIN), x);
    }
  });

  it('sqnrDb: +Inf when exact, −Inf when all signal is lost', () => {
    const f = parseFormat('e4m3');
    const exact = runAll([f], Float32Array.from([0, 1, -2, 448, 0.5])).s;
    expect(summaryRisk(exact, [f]).e4m3!.sqnrDb).toBe(Infinity);
    // Σx² = 0 can only come with noise 0 for finite data; a hand-made summary checks the branch.
    const s: Float32Summary = { ...exact, sumSq: 0, formats: [{ overflow: 0, underflow: 1, subnormal: 0, noise: 1e-30 }] };
    expect(summaryRisk(s, [f]).e4m3!.sqnrDb).toBe(-Infinity);
  });
});
