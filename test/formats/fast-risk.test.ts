/**
 * The fast RiskAccumulator kernels (Float32Array / Float64Array, src/formats/fast-risk.ts) must
 * give bit-for-bit what the definitions give through the generic `quantise`:
 * q(x) = cast(clip(x, −max, max)), shares over the finite elements, Neumaier sums in element order.
 * Data: every grid point, every tie (midpoint) and their float32 neighbours, the subnormal and
 * overflow boundaries, float32 subnormals, ±0, ±Inf, NaN and random bit patterns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode, parseFormat, quantise, RiskAccumulator, type Format } from '../../src/formats/index.js';
import { roundingTable } from '../../src/formats/fast-risk.js';
import { kernel, useKernel } from '../../src/formats/fast-wasm.js';
import { mulberry32 } from '../helpers/random.js';

const NAMES = ['fp16', 'bf16', 'e4m3', 'e5m2', 'e4m3fnuz', 'e5m2fnuz', 'e2m1', 'e3m4'];
const FORMATS = NAMES.map((n) => parseFormat(n));

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsOf = (x: number): number => ((f32[0] = x), u32[0]!);
const fromBits = (b: number): number => ((u32[0] = b >>> 0), f32[0]!);
/** Float32 neighbours of a float32 value (non-negative, finite). */
const below = (x: number): number => (x === 0 ? 0 : fromBits(bitsOf(x) - 1));
const above = (x: number): number => fromBits(bitsOf(x) + 1);

/** Non-negative finite grid points of f, ascending (all codes of formats up to 16 bits). */
function grid(f: Format): number[] {
  const out = new Set<number>();
  const codes = 2 ** (f.bits - 1); // positive half
  for (let c = 0; c < codes; c++) {
    const v = decode(c, f);
    if (Number.isFinite(v)) out.add(v);
  }
  return [...out].sort((a, b) => a - b);
}

/** Adversarial float32 magnitudes for f (with both signs, specials and random patterns). */
function adversarial(f: Format, seed: number): Float32Array {
  const g = grid(f);
  const step = g.length > 1 ? g[g.length - 1]! - g[g.length - 2]! : f.max;
  const mags: number[] = [];
  const push = (x: number): void => {
    const y = Math.fround(x);
    if (y === x && Number.isFinite(y)) mags.push(y, below(y), above(y));
  };
  for (let i = 0; i < g.length; i++) {
    push(g[i]!);
    if (i + 1 < g.length) push((g[i]! + g[i + 1]!) / 2); // every tie point
  }
  // Overflow boundary: the virtual next point past max and the midpoint to it.
  push(f.max + step / 2);
  push(f.max + step);
  push(f.max * 2);
  // Underflow and subnormal boundaries.
  push(f.minSubnormal / 2);
  push(f.minSubnormal / 4);
  push(f.minNormal - f.minSubnormal / 2);
  push(f.minNormal);
  // Float32 extremes: subnormals, min normal, max.
  mags.push(2 ** -149, 3 * 2 ** -149, 2 ** -140, 2 ** -126 - 2 ** -149, 2 ** -126, 3.4028234663852886e38, 2 ** 127);
  const rng = mulberry32(seed);
  for (let i = 0; i < 4000; i++) {
    const b = Math.floor(rng() * 0x7f800000); // any finite non-negative pattern
    mags.push(fromBits(b));
  }
  const out: number[] = [0, -0, Infinity, -Infinity, NaN, fromBits(0x7fc00001), fromBits(0xffc00000)];
  mags.forEach((m, i) => out.push(i % 3 === 1 ? -m : m, -m));
  return Float32Array.from(out);
}

/** The definitions, through `quantise`, Neumaier sums in element order. */
function reference(values: ArrayLike<number>, formats: Format[]) {
  let count = 0;
  let nonFinite = 0;
  let nan = 0;
  let zeros = 0;
  let sig = 0;
  let sigC = 0;
  const t = formats.map(() => ({ overflow: 0, underflow: 0, subnormal: 0, noise: 0, comp: 0 }));
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (!Number.isFinite(x)) {
      nonFinite++;
      if (x !== x) nan++;
      continue;
    }
    count++;
    if (x === 0) zeros++;
    const x2 = x * x;
    const s = sig + x2;
    sigC += Math.abs(sig) >= x2 ? sig - s + x2 : x2 - s + sig;
    sig = s;
    formats.forEach((f, k) => {
      const r = t[k]!;
      const a = Math.abs(x);
      const q = Math.abs(quantise(Math.max(-f.max, Math.min(f.max, x)), f));
      if (a > f.max) r.overflow++;
      if (x !== 0 && q === 0) r.underflow++;
      if (x !== 0 && q > 0 && q < f.minNormal) r.subnormal++;
      const e = a - q;
      const e2 = e * e;
      const u = r.noise + e2;
      r.comp += Math.abs(r.noise) >= e2 ? r.noise - u + e2 : e2 - u + r.noise;
      r.noise = u;
    });
  }
  const share = (k: number): number => (count === 0 ? 0 : k / count);
  const db = (s: number, n: number): number => (n === 0 ? Infinity : s === 0 ? -Infinity : 10 * Math.log10(s / n));
  return {
    count, nonFinite, nan, zeros,
    formats: Object.fromEntries(formats.map((f, k) => {
      const r = t[k]!;
      return [f.name, { overflow: share(r.overflow), underflow: share(r.underflow), subnormal: share(r.subnormal), sqnrDb: db(sig + sigC, r.noise + r.comp) }];
    })),
  };
}

function measured(values: ArrayLike<number>, formats: Format[], chunk = Infinity) {
  const acc = new RiskAccumulator(formats);
  if (chunk === Infinity || !(values instanceof Float32Array || values instanceof Float64Array)) acc.add(values);
  else for (let i = 0; i < values.length; i += chunk) acc.add(values.subarray(i, i + chunk));
  return acc.result();
}

describe.each([
  ['WebAssembly SIMD kernel', true],
  ['JavaScript loops', false],
])('fast RiskAccumulator (%s) equals the quantise-based definitions exactly', (_name, wasm) => {
  beforeAll(() => useKernel(wasm));
  afterAll(() => useKernel(true));

  it('the kernel is there when asked for (Node 20 has WebAssembly SIMD)', () => {
    expect(kernel() !== null).toBe(wasm);
  });

  it('every listed format has a fast table for both sources', () => {
    for (const f of FORMATS) {
      expect(roundingTable(f, 'f32'), f.name).not.toBeNull();
      expect(roundingTable(f, 'f64'), f.name).not.toBeNull();
    }
  });

  for (const [k, f] of FORMATS.entries()) {
    it(`${f.name}: float32 ties, neighbours, boundaries and specials`, () => {
      const x = adversarial(f, 100 + k);
      const want = reference(x, [f]);
      expect(measured(x, [f])).toEqual(want); // toEqual uses Object.is on numbers: bit-exact
      expect(measured(Array.from(x), [f])).toEqual(want); // generic path
    });
  }

  it('all formats at once, float32 and float64 sources, chunked', () => {
    const x = Float32Array.from(FORMATS.flatMap((f, k) => Array.from(adversarial(f, 7 + k))));
    const want = reference(x, FORMATS);
    expect(measured(x, FORMATS)).toEqual(want);
    expect(measured(x, FORMATS, 1000)).toEqual(reference(x, FORMATS)); // same order, same sums
    expect(measured(Float64Array.from(x), FORMATS, 999)).toEqual(want);
  });

  it('float64 data: ties and one-ulp neighbours of ties, below float32 precision', () => {
    const vals: number[] = [0, -0, NaN, Infinity, -Infinity, 2 ** -1074, 2 ** -1022, 1.7976931348623157e308];
    for (const f of FORMATS) {
      const g = grid(f);
      for (let i = 0; i + 1 < g.length; i++) {
        const mid = (g[i]! + g[i + 1]!) / 2;
        vals.push(mid, -mid, mid * (1 + 2 ** -52), mid * (1 - 2 ** -53), g[i]! * (1 + 2 ** -52));
      }
      vals.push(f.max * (1 + 2 ** -52), f.minSubnormal / 2 * (1 + 2 ** -52), f.minSubnormal / 2 * (1 - 2 ** -53));
    }
    const rng = mulberry32(5);
    for (let i = 0; i < 5000; i++) vals.push((rng() - 0.5) * 2 ** Math.floor(rng() * 80 - 40));
    const x = Float64Array.from(vals);
    const want = reference(x, FORMATS);
    expect(measured(x, FORMATS)).toEqual(want);
    expect(measured(vals, FORMATS)).toEqual(want);
  });

  it('formats beyond the kernels fall back to the generic path (and agree)', () => {
    const wide = [parseFormat('fp32'), parseFormat('tf32'), parseFormat('e9m5')];
    expect(roundingTable(wide[2]!, 'f32')).toBeNull(); // its normals reach below float32's
    const x = adversarial(parseFormat('bf16'), 3);
    expect(measured(x, wide)).toEqual(reference(x, wide));
    expect(measured(Float64Array.from(x), wide)).toEqual(reference(x, wide));
  });
});
