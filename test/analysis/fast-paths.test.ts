import { describe, expect, it } from 'vitest';
import { gaussIntegral, mixtureOf, momentsOf, pushforwardMoments, quantileAbs } from '../../src/analysis/dist.js';
import { expectZ, gaussExpectMany, integrateStandardNormal, zFormOf } from '../../src/analysis/quadrature.js';
import { distRisk } from '../../src/analysis/risk.js';
import { tensorStats } from '../../src/analysis/weights.js';
import { parseFormat } from '../../src/formats/index.js';
import type { PredictedDistribution as D } from '../../src/analysis/scale.js';
import type { TensorData } from '../../src/onnx/tensor.js';

// The speed work keeps the propagation bit-for-bit: each fast path against the plain formulation.

const hardswish = (x: number): number => (x * Math.min(Math.max(x + 3, 0), 6)) / 6;
const square = (f: (x: number) => number) => (x: number): number => f(x) ** 2;

describe('gaussExpectMany fast path (one or two functions) equals the generic integrator', () => {
  const cases: [number, number, ((x: number) => number)[], number[]][] = [
    [0.3, 1.7, [hardswish, square(hardswish)], [-3, 3]],
    [-2, 0.01, [Math.tanh], []],
    [0, 5, [Math.exp, (x) => Math.exp(2 * x)], []],
    [1, 2, [Math.log, (x) => Math.log(x) ** 2], [0]],
    [0, 1, [(x) => Math.max(0, x)], [0]],
  ];
  for (const [mean, std, fs, breaks] of cases) {
    it(`${fs.length} function(s), mean ${mean}, std ${std}`, () => {
      const tb = breaks.map((b) => (b - mean) / std);
      const generic = integrateStandardNormal((t) => fs.map((f) => f(mean + std * t)), fs.length, tb);
      const fast = gaussExpectMany(mean, std, fs, breaks);
      expect(fast.values).toEqual(generic.values);
      expect(fast.invalid).toBe(generic.invalid);
      // Memoised: the same numbers again, in a fresh array.
      const again = gaussExpectMany(mean, std, fs, breaks);
      expect(again.values).toEqual(fast.values);
      again.values[0] = NaN;
      expect(gaussExpectMany(mean, std, fs, breaks).values).toEqual(fast.values);
    });
  }

  it('expectZ of a pushforward (x = g(z)) matches the generic integrator', () => {
    const d: D = { kind: 'rectified', mean: 0.2, std: 1.3 };
    const zf = zFormOf(d)!;
    const fs = [hardswish, square(hardswish)];
    const r = expectZ(zf, fs);
    expect(r.values.every(Number.isFinite)).toBe(true);
    const generic = integrateStandardNormal(
      (t) => fs.map((f) => f(zf.g(zf.mean + zf.std * t))),
      2,
      zf.kinks.map((z) => (z - zf.mean) / zf.std),
    );
    expect(r.values).toEqual(generic.values);
  });
});

describe('dist.ts fast paths', () => {
  it('pushforwardMoments is gaussIntegral of f and f², evaluated once per point', () => {
    for (const [m, s, fn] of [
      [0.1, 2, hardswish],
      [-1, 0.5, Math.exp],
      [0, 1, (z: number) => Math.sqrt(z)],
    ] as [number, number, (z: number) => number][]) {
      const r = pushforwardMoments(m, s, fn);
      expect(r.mean).toBe(gaussIntegral((u) => fn(m + s * u)));
      expect(r.meanSquare).toBe(gaussIntegral((u) => fn(m + s * u) ** 2));
    }
  });

  it('mixture compression keeps the RMS order and the moments', () => {
    const parts = Array.from({ length: 80 }, (_, i) => ({ weight: 1 + (i % 7), dist: { kind: 'gaussian', mean: Math.sin(i), std: 1 + ((i * 37) % 11) } as D }));
    const m = mixtureOf(parts, 8);
    expect(m.kind).toBe('mixture');
    if (m.kind !== 'mixture') return;
    expect(m.parts.length).toBeLessThanOrEqual(8);
    const before = momentsOf({ kind: 'mixture', parts: parts.map((p) => ({ weight: p.weight / parts.reduce((a, q) => a + q.weight, 0), dist: p.dist })) })!;
    const after = momentsOf(m)!;
    expect(after.mean).toBeCloseTo(before.mean, 12);
    expect(after.meanSquare).toBeCloseTo(before.meanSquare, 12);
    const rms = m.parts.map((p) => momentsOf(p.dist)!.meanSquare);
    expect([...rms].sort((a, b) => a - b)).toEqual(rms);
  });

  it('quantileAbs of monotone kinds reads the ends of its grid', () => {
    const d: D = { kind: 'gaussian', mean: 0.5, std: 2 };
    const pf: D = { kind: 'pushforward', mean: 0.5, std: 2, fn: (z) => z, label: 'x' };
    expect(quantileAbs(d, 1e-6)).toBe(quantileAbs(pf, 1e-6));
    const r: D = { kind: 'rectified', mean: -0.5, std: 2 };
    const pr: D = { kind: 'pushforward', mean: -0.5, std: 2, fn: (z) => (z > 0 ? z : 0), label: 'relu' };
    expect(quantileAbs(r, 1e-3)).toBe(quantileAbs(pr, 1e-3));
  });
});

describe('risk of pushforwards', () => {
  it('the identity pushforward agrees with the closed-form Gaussian risk within the grid tolerance', () => {
    const fs = ['e4m3', 'e5m2', 'fp16'].map(parseFormat);
    const g = distRisk({ kind: 'gaussian', mean: 0.3, std: 1 }, fs);
    const p = distRisk({ kind: 'pushforward', mean: 0.3, std: 1, fn: (z) => z, label: 'x' }, fs);
    for (const f of fs) {
      expect(Math.abs(p[f.name]!.sqnrDb - g[f.name]!.sqnrDb)).toBeLessThan(0.05);
      expect(p[f.name]!.underflow).toBeCloseTo(g[f.name]!.underflow, 12);
    }
  });
});

describe('tensorStats distinct values', () => {
  const fake = (values: number[]): TensorData => ({ count: values.length, dims: [values.length], chunks: function* () { yield Float64Array.from(values); } }) as unknown as TensorData;

  it('counts −0 as 0 and keeps first-appearance order; more than 16 values → not discrete', () => {
    const s = tensorStats(fake([1, -0, 0, 2, 1, NaN, 0]), [parseFormat('fp16')]);
    expect([...s.distinct!.keys()]).toEqual([1, 0, 2]);
    expect([...s.distinct!.values()]).toEqual([2 / 6, 3 / 6, 1 / 6]);
    expect(Object.is([...s.distinct!.keys()][1], 0)).toBe(true);
    expect(s.nonFinite).toBe(1);
    const many = tensorStats(fake(Array.from({ length: 40 }, (_, i) => i % 17)), [parseFormat('fp16')]);
    expect(many.distinct).toBeNull();
    expect(many.mean).toBeCloseTo(Array.from({ length: 40 }, (_, i) => i % 17).reduce((a, b) => a + b, 0) / 40, 14);
    const sixteen = tensorStats(fake(Array.from({ length: 40 }, (_, i) => i % 16)), [parseFormat('fp16')]);
    expect(sixteen.distinct!.size).toBe(16);
  });
});
