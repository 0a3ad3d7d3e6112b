import { afterAll, describe, expect, it } from 'vitest';
import {
  footroomBits,
  headroomBits,
  makeFormat,
  parseFormat,
  predictRisk,
  RiskAccumulator,
  type Distribution,
  type Risk,
} from '../../src/formats/index.js';
import { gaussian, laplace, mulberry32, uniform53 } from '../helpers/random.js';

const fp16 = parseFormat('fp16');
const e4m3 = parseFormat('e4m3');
const e2m1 = parseFormat('e2m1');

describe('RiskAccumulator on handmade arrays', () => {
  it('counts and SQNR match a hand computation (e4m3: max 448, min normal 2^-6, min subnormal 2^-9)', () => {
    const acc = new RiskAccumulator([e4m3]);
    acc.add([0, 1, -1, 500, -1000, 0.0009, 0.01, NaN, Infinity, 0.3]);
    const r = acc.result();
    expect(r.count).toBe(8);
    expect(r.nonFinite).toBe(2);
    expect(r.nan).toBe(1);
    expect(r.zeros).toBe(1);
    const risk = r.formats.e4m3!;
    expect(risk.overflow).toBe(2 / 8); // 500 and -1000
    expect(risk.underflow).toBe(1 / 8); // 0.0009 < 2^-10 → 0 (0 itself is not counted)
    expect(risk.subnormal).toBe(1 / 8); // 0.01 → 5·2^-9 = 0.009765625
    // q: 0, 1, -1, 448, -448, 0, 0.009765625, 0.3125
    const signal = 1 + 1 + 500 ** 2 + 1000 ** 2 + 0.0009 ** 2 + 0.01 ** 2 + 0.3 ** 2;
    const noise = 52 ** 2 + 552 ** 2 + 0.0009 ** 2 + (0.01 - 0.009765625) ** 2 + 0.0125 ** 2;
    expect(risk.sqnrDb).toBeCloseTo(10 * Math.log10(signal / noise), 12);
  });

  it('fp16: everything below half the min subnormal underflows, SQNR exactly 0 dB', () => {
    const acc = new RiskAccumulator([fp16]);
    acc.add(new Float32Array([1e-8, -2e-8, 2 ** -25]));
    const risk = acc.result().formats.fp16!;
    expect(risk).toEqual({ overflow: 0, underflow: 1, subnormal: 0, sqnrDb: 0 });
  });

  it('exact values give +Infinity; zeros, empty input and non-finite-only input are harmless', () => {
    const acc = new RiskAccumulator([fp16, e2m1]);
    acc.add([0, -0, 1.5, -6, 0.5]);
    const r = acc.result();
    expect(r.formats.fp16!.sqnrDb).toBe(Infinity);
    expect(r.formats.e2m1!).toEqual({ overflow: 0, underflow: 0, subnormal: 1 / 5, sqnrDb: Infinity });
    expect(r.zeros).toBe(2);

    const empty = new RiskAccumulator([fp16]);
    empty.add([NaN, -Infinity]);
    expect(empty.result()).toEqual({
      count: 0, nonFinite: 2, nan: 1, zeros: 0,
      formats: { fp16: { overflow: 0, underflow: 0, subnormal: 0, sqnrDb: Infinity } },
    });
  });

  it('subnormal boundary: min normal − s/2 ties up to min normal', () => {
    const s = e4m3.minSubnormal;
    const acc = new RiskAccumulator([e4m3]);
    acc.add([e4m3.minNormal - s / 2, e4m3.minNormal - s / 2 - 1e-9, s / 2, s / 2 + 1e-9]);
    const risk = acc.result().formats.e4m3!;
    expect(risk.subnormal).toBe(2 / 4);
    expect(risk.underflow).toBe(1 / 4);
  });

  it('chunking does not change the result', () => {
    const rng = mulberry32(3);
    const xs = Float64Array.from({ length: 10_000 }, () => gaussian(rng) * 100);
    const whole = new RiskAccumulator([e4m3, fp16]);
    whole.add(xs);
    const parts = new RiskAccumulator([e4m3, fp16]);
    for (let i = 0; i < xs.length; i += 777) parts.add(xs.subarray(i, i + 777));
    const a = whole.result();
    const b = parts.result();
    expect(b.count).toBe(a.count);
    for (const name of ['e4m3', 'fp16']) {
      const ra = a.formats[name]!;
      const rb = b.formats[name]!;
      expect([rb.overflow, rb.underflow, rb.subnormal]).toEqual([ra.overflow, ra.underflow, ra.subnormal]);
      expect(rb.sqnrDb).toBeCloseTo(ra.sqnrDb, 10);
    }
  });
});

describe('predictRisk against closed forms', () => {
  // Reference values from Python's math.erf / math.erfc.
  it('N(0,1) in e2m1 and e4m3: shares', () => {
    const g: Distribution = { kind: 'gaussian', mean: 0, std: 1 };
    const r = predictRisk(g, e2m1);
    expect(r.overflow / 1.9731752900754024e-9).toBeCloseTo(1, 10);
    expect(r.underflow / 0.19741265136584743).toBeCloseTo(1, 12);
    expect(r.subnormal / 0.3493326438804162).toBeCloseTo(1, 12);
    const q = predictRisk(g, e4m3);
    expect(q.overflow).toBe(0);
    expect(q.underflow / 0.000779184017561082).toBeCloseTo(1, 10);
    expect(q.subnormal / 0.010908160130082166).toBeCloseTo(1, 10);
    expect(predictRisk({ kind: 'gaussian', mean: 0, std: 1e4 }, fp16).overflow / 5.7383171736774814e-11).toBeCloseTo(1, 8);
  });

  it('Laplace overflow is e^{-max/b}', () => {
    expect(predictRisk({ kind: 'laplace', mean: 0, scale: 1 }, e2m1).overflow / Math.exp(-6)).toBeCloseTo(1, 12);
    expect(predictRisk({ kind: 'laplace', mean: 0, scale: 1 }, e4m3).overflow / Math.exp(-448)).toBeCloseTo(1, 10);
  });

  it('U(0,1) in fp16: noise is exactly Σ δ²/12 per binade (cells are whole)', () => {
    let noise = (2 ** -24) ** 2 / 12 * 2 ** -14; // subnormal range [0, 2^-14], step 2^-24
    for (let E = -14; E <= -1; E++) noise += ((2 ** (E - 10)) ** 2 / 12) * 2 ** E;
    const r = predictRisk({ kind: 'uniform', lo: 0, hi: 1 }, fp16);
    expect(r.sqnrDb).toBeCloseTo(10 * Math.log10(1 / 3 / noise), 9);
    expect(r.underflow).toBe(2 ** -25);
    expect(r.subnormal).toBe(2 ** -14 - 2 ** -24);
    expect(r.overflow).toBe(0);
  });

  it('uniform entirely below half the min subnormal: SQNR 0 dB, all underflow', () => {
    const r = predictRisk({ kind: 'uniform', lo: 2e-8, hi: 2e-7 }, e2m1);
    expect(r.underflow).toBe(1);
    expect(r.sqnrDb).toBeCloseTo(0, 9);
  });

  it('discrete and constant distributions are exact', () => {
    expect(predictRisk({ kind: 'discrete', values: [3], weights: [1] }, e2m1).sqnrDb).toBe(Infinity);
    expect(predictRisk({ kind: 'discrete', values: [2.5], weights: [7] }, e2m1).sqnrDb).toBeCloseTo(10 * Math.log10(25), 12);
    const r = predictRisk({ kind: 'discrete', values: [0, 10, 0.1, 1], weights: [4, 2, 1, 1] }, e2m1);
    expect(r).toEqual({
      overflow: 2 / 8,
      underflow: 1 / 8,
      subnormal: 0,
      sqnrDb: 10 * Math.log10((2 * 100 + 0.01 + 1) / (2 * 16 + 0.01)),
    });
    // Degenerate continuous laws are constants.
    expect(predictRisk({ kind: 'gaussian', mean: 2.5, std: 0 }, e2m1)).toEqual(
      predictRisk({ kind: 'discrete', values: [2.5], weights: [1] }, e2m1),
    );
    expect(predictRisk({ kind: 'rectified', mean: -1, std: 0 }, e2m1).sqnrDb).toBe(Infinity); // all zeros
  });

  it('rectified: the dead half is exact zeros, not underflow', () => {
    const r = predictRisk({ kind: 'rectified', mean: 0, std: 1 }, e4m3);
    expect(r.underflow / (0.000779184017561082 / 2)).toBeCloseTo(1, 10);
    const g = predictRisk({ kind: 'gaussian', mean: 0, std: 1 }, e4m3);
    expect(r.sqnrDb).toBeCloseTo(g.sqnrDb, 9); // same |x| law on the live half
  });

  it('rejects invalid parameters', () => {
    expect(() => predictRisk({ kind: 'gaussian', mean: 0, std: -1 }, fp16)).toThrow(RangeError);
    expect(() => predictRisk({ kind: 'uniform', lo: 1, hi: 0 }, fp16)).toThrow(RangeError);
    expect(() => predictRisk({ kind: 'discrete', values: [1, 2], weights: [1] }, fp16)).toThrow(RangeError);
    expect(() => predictRisk({ kind: 'laplace', mean: NaN, scale: 1 }, fp16)).toThrow(RangeError);
  });
});

describe('PRIMER §1 claims', () => {
  it('full-range E4M3 on a unit Gaussian gives about 31 dB', () => {
    const db = predictRisk({ kind: 'gaussian', mean: 0, std: 1 }, e4m3).sqnrDb;
    expect(db).toBeGreaterThan(30.5);
    expect(db).toBeLessThan(32);
  });

  it('each mantissa bit adds about 6 dB (well inside the range)', () => {
    const g: Distribution = { kind: 'gaussian', mean: 0, std: 1 };
    for (let m = 2; m <= 10; m++) {
      const gain = predictRisk(g, makeFormat(6, m + 1)).sqnrDb - predictRisk(g, makeFormat(6, m)).sqnrDb;
      expect(Math.abs(gain - 20 * Math.log10(2))).toBeLessThan(0.05);
    }
  });
});

describe('head- and footroom', () => {
  it('are log2 distances to max and min normal', () => {
    expect(headroomBits(1, e4m3)).toBeCloseTo(Math.log2(448), 12);
    expect(headroomBits(-448, e4m3)).toBe(0);
    expect(footroomBits(1, fp16)).toBe(14);
    expect(footroomBits(2 ** -20, fp16)).toBe(-6);
  });
});

// ---------------------------------------------------------------------------------------------
// predictRisk against Monte-Carlo measurement (RiskAccumulator over 1e6 seeded samples).

const N = 1_000_000;
const MC_FORMATS = ['fp32', 'fp16', 'bf16', 'e4m3', 'e5m2', 'e2m1'].map(parseFormat);
const SCALES = [1, 1e-4, 1e3, 1e-8];

type Case = { label: string; dist: (s: number) => Distribution; sample: (rng: () => number, s: number) => number };
const DISCRETE_VALUES = [0, 1, -1 / 3, 7];
const DISCRETE_WEIGHTS = [5, 3, 1, 1];
const CASES: Case[] = [
  { label: 'gaussian N(0,s²)', dist: (s) => ({ kind: 'gaussian', mean: 0, std: s }), sample: (r, s) => s * gaussian(r) },
  { label: 'gaussian N(1.5s,s²)', dist: (s) => ({ kind: 'gaussian', mean: 1.5 * s, std: s }), sample: (r, s) => s * (1.5 + gaussian(r)) },
  { label: 'rectified relu(N(0,s²))', dist: (s) => ({ kind: 'rectified', mean: 0, std: s }), sample: (r, s) => Math.max(0, s * gaussian(r)) },
  { label: 'rectified relu(N(-s,s²))', dist: (s) => ({ kind: 'rectified', mean: -s, std: s }), sample: (r, s) => Math.max(0, s * (gaussian(r) - 1)) },
  { label: 'uniform U(0,s)', dist: (s) => ({ kind: 'uniform', lo: 0, hi: s }), sample: (r, s) => s * uniform53(r) },
  { label: 'uniform U(-s,2s)', dist: (s) => ({ kind: 'uniform', lo: -s, hi: 2 * s }), sample: (r, s) => s * (3 * uniform53(r) - 1) },
  { label: 'laplace L(0,s/√2)', dist: (s) => ({ kind: 'laplace', mean: 0, scale: s / Math.SQRT2 }), sample: (r, s) => laplace(r, 0, s / Math.SQRT2) },
  { label: 'laplace L(s,s/2)', dist: (s) => ({ kind: 'laplace', mean: s, scale: s / 2 }), sample: (r, s) => laplace(r, s, s / 2) },
  {
    label: 'discrete {0,s,-s/3,7s}',
    dist: (s) => ({ kind: 'discrete', values: DISCRETE_VALUES.map((v) => v * s), weights: DISCRETE_WEIGHTS }),
    sample: (r, s) => {
      const u = r() * 10;
      return s * (u < 5 ? 0 : u < 8 ? 1 : u < 9 ? -1 / 3 : 7);
    },
  },
];

/** Largest deviations seen, printed at the end: |ΔdB| and the worst share error in MC sigmas. */
const worst = { db: 0, dbAt: '', sigmas: 0, sigmasAt: '' };

describe('predictRisk agrees with Monte-Carlo (1e6 seeded samples)', () => {
  afterAll(() => {
    console.log(
      `predictRisk vs MC: max |ΔSQNR| = ${worst.db.toFixed(4)} dB (${worst.dbAt}); ` +
        `max share deviation = ${worst.sigmas.toFixed(2)} MC sigmas (${worst.sigmasAt})`,
    );
  });

  const grid = CASES.flatMap((c, ci) => SCALES.map((s, si) => ({ c, s, seed: 1000 * ci + si + 1 })));
  it.each(grid.map((g) => [g.c.label, g.s, g] as const))('%s at s = %s', (_l, _s, { c, s, seed }) => {
    const rng = mulberry32(seed);
    const xs = new Float64Array(N);
    for (let i = 0; i < N; i++) xs[i] = c.sample(rng, s);
    const acc = new RiskAccumulator(MC_FORMATS);
    acc.add(xs);
    const measured = acc.result();
    expect(measured.count).toBe(N);
    for (const f of MC_FORMATS) {
      const where = `${c.label}, s=${s}, ${f.name}`;
      const p: Risk = predictRisk(c.dist(s), f);
      const m = measured.formats[f.name]!;
      for (const k of ['overflow', 'underflow', 'subnormal'] as const) {
        const sd = Math.sqrt((p[k] * (1 - p[k])) / N);
        const dev = Math.abs(m[k] - p[k]);
        expect(dev, `${k} ${where}: predicted ${p[k]}, measured ${m[k]}`).toBeLessThanOrEqual(5 * sd + 3 / N);
        if (sd > 0 && dev / sd > worst.sigmas) Object.assign(worst, { sigmas: dev / sd, sigmasAt: `${k} ${where}` });
      }
      if (Number.isFinite(p.sqnrDb) || Number.isFinite(m.sqnrDb)) {
        const d = Math.abs(m.sqnrDb - p.sqnrDb);
        expect(d, `SQNR ${where}: predicted ${p.sqnrDb}, measured ${m.sqnrDb}`).toBeLessThanOrEqual(0.2);
        if (d > worst.db) Object.assign(worst, { db: d, dbAt: where });
      } else {
        expect(m.sqnrDb).toBe(p.sqnrDb);
      }
    }
  });
});
