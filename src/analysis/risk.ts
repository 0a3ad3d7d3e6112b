/**
 * Per-format risk of a predicted tensor (PRIMER §2), for every kind of predicted distribution:
 * - basic kinds (gaussian, rectified, uniform, laplace, discrete): src/formats' `predictRisk`;
 * - 'pushforward' f(z), z ~ N(μ, σ²): shares are probabilities of the sets of z where f(z) lands
 *   in each class (overflow, underflow, subnormal, zero, normal), found on a fine grid of z with
 *   extra points at f's zeros and at z = 0, and their edges located by bisection on z, then
 *   measured with the exact normal CDF; the noise E[(f − q(f))²] is integrated on the same grid
 *   with the δ²/12 rule where f moves across many grid cells and the exact error where f is flat
 *   (plateaus such as hardsigmoid's 0 and 1 are exact, error 0);
 * - 'mixture': shares are weight-averaged; the SQNR combines signal and noise powers,
 *   10·log10(Σ w_i S_i / Σ w_i N_i);
 * - 'empirical' (stored tensors): the exact risk computed from the values.
 */
import type { Format } from '../formats/format.js';
import { predictRisk, type Risk } from '../formats/risk.js';
import { roundMagnitude } from '../formats/quantise.js';
import { exponentOf, pow2 } from '../formats/binary.js';
import { normalMass, normalPdf } from '../formats/special.js';
import { gaussianOf, momentsOf, U_MAX } from './dist.js';
import type { PredictedDistribution as D, Scale } from './scale.js';

/** Shares plus the signal and noise powers behind the SQNR (so parts can be combined). */
export interface RiskParts {
  overflow: number;
  underflow: number;
  subnormal: number;
  signal: number;
  noise: number;
}

function toRisk(p: RiskParts): Risk {
  const sqnrDb = p.noise === 0 ? Infinity : p.signal === 0 ? -Infinity : 10 * Math.log10(p.signal / p.noise);
  return { overflow: clamp(p.overflow), underflow: clamp(p.underflow), subnormal: clamp(p.subnormal), sqnrDb };
}

const clamp = (x: number): number => Math.min(1, Math.max(0, x));

/** Risk of a Scale under each format: exact when known, else integrated over its distribution. */
export function scaleRisk(s: Scale, formats: Format[]): Record<string, Risk> {
  const out: Record<string, Risk> = {};
  const missing: Format[] = [];
  for (const f of formats) {
    const r = s.exactRisk?.[f.name];
    if (r) out[f.name] = r;
    else missing.push(f);
  }
  if (missing.length) {
    const d = s.dist.kind === 'empirical' ? gaussianOf(s.mean, s.meanSquare) : s.dist;
    const parts = distRiskParts(d, missing);
    for (const f of missing) out[f.name] = toRisk(parts[f.name]!);
  }
  return out;
}

export function distRisk(d: D, formats: Format[]): Record<string, Risk> {
  const parts = distRiskParts(d, formats);
  const out: Record<string, Risk> = {};
  for (const f of formats) out[f.name] = toRisk(parts[f.name]!);
  return out;
}

const zeroParts = (): RiskParts => ({ overflow: 0, underflow: 0, subnormal: 0, signal: 0, noise: 0 });

const partsCache = new WeakMap<object, Map<string, Record<string, RiskParts>>>();

/** Risk parts per format, cached per distribution object (layout ops share their input's law). */
function distRiskParts(d: D, formats: Format[]): Record<string, RiskParts> {
  const key = formats.map((f) => `${f.name}:${f.expBits},${f.manBits},${f.bias},${f.convention}`).join('|');
  let byKey = partsCache.get(d);
  if (!byKey) partsCache.set(d, (byKey = new Map()));
  const hit = byKey.get(key);
  if (hit) return hit;
  const r = computeRiskParts(d, formats);
  byKey.set(key, r);
  return r;
}

function computeRiskParts(d: D, formats: Format[]): Record<string, RiskParts> {
  const out: Record<string, RiskParts> = {};
  switch (d.kind) {
    case 'mixture': {
      for (const f of formats) out[f.name] = zeroParts();
      for (const p of d.parts) {
        if (!(p.weight > 0)) continue;
        const sub = distRiskParts(p.dist, formats);
        for (const f of formats) {
          const o = out[f.name]!;
          const s = sub[f.name]!;
          o.overflow += p.weight * s.overflow;
          o.underflow += p.weight * s.underflow;
          o.subnormal += p.weight * s.subnormal;
          o.signal += p.weight * s.signal;
          o.noise += p.weight * s.noise;
        }
      }
      return out;
    }
    case 'pushforward':
      if (d.std > 0) return pushforwardRisk(d.mean, d.std, d.fn, formats);
      return distRiskParts({ kind: 'discrete', values: [d.fn(d.mean)], weights: [1] }, formats);
    case 'empirical':
      for (const f of formats) out[f.name] = zeroParts();
      return out;
    default: {
      const m = momentsOf(d) ?? { mean: 0, meanSquare: 0 };
      for (const f of formats) {
        let r: Risk;
        try {
          r = predictRisk(sanitize(d), f);
        } catch {
          r = { overflow: 0, underflow: 0, subnormal: 0, sqnrDb: NaN };
        }
        const signal = m.meanSquare;
        const noise = r.sqnrDb === Infinity ? 0 : Number.isFinite(r.sqnrDb) ? signal / 10 ** (r.sqnrDb / 10) : signal;
        out[f.name] = { overflow: r.overflow, underflow: r.underflow, subnormal: r.subnormal, signal, noise };
      }
      return out;
    }
  }
}

/** The basic kinds as src/formats accepts them (discrete without non-finite values). */
function sanitize(d: D): Parameters<typeof predictRisk>[0] {
  if (d.kind === 'discrete') {
    const values: number[] = [];
    const weights: number[] = [];
    d.values.forEach((v, i) => {
      if (Number.isFinite(v) && d.weights[i]! > 0) {
        values.push(v);
        weights.push(d.weights[i]!);
      }
    });
    return values.length ? { kind: 'discrete', values, weights } : { kind: 'discrete', values: [0], weights: [1] };
  }
  return d as Parameters<typeof predictRisk>[0];
}

// ---------------------------------------------------------------------------------------------
// Pushforward of a Gaussian

const GRID_N = 1200;

type Cls = 0 | 1 | 2 | 3 | 4 | 5; // 0 nan, 1 zero, 2 underflow, 3 subnormal, 4 normal, 5 overflow

function classify(x: number, f: Format): Cls {
  if (!Number.isFinite(x)) return x !== x ? 0 : 5;
  const a = Math.abs(x);
  if (a > f.max) return 5;
  if (a === 0) return 1;
  const s = f.minSubnormal;
  if (a <= s / 2) return 2;
  if (a < f.minNormal - s / 2) return 3;
  return 4;
}

/** Grid step of the format at magnitude a (normal binade step, or the subnormal step). */
function stepAt(a: number, f: Format): number {
  if (a < f.minNormal) return f.minSubnormal;
  return pow2(exponentOf(a) - f.manBits);
}

function quantErr2(x: number, f: Format, exact: boolean): number {
  const a = Math.abs(x);
  if (!Number.isFinite(a)) return 0;
  if (a > f.max) return (a - f.max) ** 2;
  if (a === 0) return 0;
  if (a <= f.minSubnormal / 2) return a * a;
  if (exact) {
    const q = roundMagnitude(a, f.manBits, f.minNormal, f.minSubnormal);
    return (a - Math.min(q, f.max)) ** 2;
  }
  const d = stepAt(a, f);
  return (d * d) / 12;
}

interface Grid {
  u: number[];
  x: number[];
  /** φ(u) at every grid point. */
  pdf: Float64Array;
}

const gridCache = new WeakMap<(z: number) => number, Map<string, Grid>>();

/** Grid over the parent's standard coordinate u, with f's zeros and u(z = 0) inserted. */
function buildGrid(mean: number, std: number, fn: (z: number) => number): Grid {
  const key = `${mean},${std}`;
  let byKey = gridCache.get(fn);
  if (!byKey) gridCache.set(fn, (byKey = new Map()));
  const hit = byKey.get(key);
  if (hit) return hit;
  const F = (u: number): number => fn(mean + std * u);
  let us: number[] = [];
  for (let i = 0; i <= GRID_N; i++) us.push(-U_MAX + (2 * U_MAX * i) / GRID_N);
  const u0 = -mean / std;
  if (u0 > -U_MAX && u0 < U_MAX) us.push(u0);
  us.sort((a, b) => a - b);
  let xs = us.map(F);
  // Zeros of f between grid points (sign changes): add the root.
  const extra: number[] = [];
  for (let i = 0; i + 1 < us.length; i++) {
    const a = xs[i]!;
    const b = xs[i + 1]!;
    if (a !== 0 && b !== 0 && Math.sign(a) !== Math.sign(b) && Number.isFinite(a) && Number.isFinite(b)) {
      let lo = us[i]!;
      let hi = us[i + 1]!;
      const sa = Math.sign(a);
      for (let it = 0; it < 200; it++) {
        const mid = (lo + hi) / 2;
        if (mid === lo || mid === hi) break;
        const v = F(mid);
        if (v === 0) {
          lo = hi = mid;
          break;
        }
        if (Math.sign(v) === sa) lo = mid;
        else hi = mid;
      }
      extra.push(lo, hi);
    }
  }
  if (extra.length) {
    const all = [...us, ...extra].sort((a, b) => a - b);
    us = all.filter((v, i) => i === 0 || v !== all[i - 1]);
    xs = us.map(F);
  }
  const pdf = Float64Array.from(us, normalPdf);
  const g = { u: us, x: xs, pdf };
  byKey.set(key, g);
  return g;
}

function pushforwardRisk(mean: number, std: number, fn: (z: number) => number, formats: Format[]): Record<string, RiskParts> {
  const g = buildGrid(mean, std, fn);
  const F = (u: number): number => fn(mean + std * u);
  const out: Record<string, RiskParts> = {};
  const n = g.u.length;
  // Signal: trapezoid of f²φ (the grid is fine; kinks only cost O(h²)).
  let signal = 0;
  for (let i = 0; i + 1 < n; i++) {
    const h = g.u[i + 1]! - g.u[i]!;
    const a = g.x[i]!;
    const b = g.x[i + 1]!;
    const fa = Number.isFinite(a) ? a * a * g.pdf[i]! : 0;
    const fb = Number.isFinite(b) ? b * b * g.pdf[i + 1]! : 0;
    signal += (h * (fa + fb)) / 2;
  }
  for (const f of formats) {
    const mass = [0, 0, 0, 0, 0, 0];
    // Runs of one class between boundaries located by bisection; each run's mass from Φ.
    let runStart = -Infinity;
    let runCls = classify(g.x[0]!, f);
    const close = (end: number, next: Cls): void => {
      mass[runCls]! += normalMass(runStart, end);
      runStart = end;
      runCls = next;
    };
    const split = (lo: number, hi: number, cl: Cls, ch: Cls, depth: number): void => {
      if (cl === ch) return;
      if (depth > 60 || hi - lo <= 1e-13 * Math.max(1, Math.abs(lo))) {
        close((lo + hi) / 2, ch);
        return;
      }
      const mid = (lo + hi) / 2;
      const cm = classify(F(mid), f);
      split(lo, mid, cl, cm, depth + 1);
      split(mid, hi, cm, ch, depth + 1);
    };
    let prev = runCls;
    for (let i = 0; i + 1 < n; i++) {
      const next = classify(g.x[i + 1]!, f);
      if (next !== prev) split(g.u[i]!, g.u[i + 1]!, prev, next, 0);
      prev = next;
    }
    close(Infinity, runCls);
    const finiteMass = 1 - mass[0]!;
    // Noise: trapezoid of err²φ; exact error where f is flat relative to the format's step.
    let noise = 0;
    let prevE = 0;
    for (let i = 0; i < n; i++) {
      const x = g.x[i]!;
      const a = Math.abs(x);
      const st = Number.isFinite(a) ? stepAt(Math.max(a, f.minSubnormal), f) : 0;
      const dl = i > 0 ? Math.abs(x - g.x[i - 1]!) : Infinity;
      const dr = i + 1 < n ? Math.abs(g.x[i + 1]! - x) : Infinity;
      const e = quantErr2(x, f, Math.min(dl, dr) < st) * g.pdf[i]!;
      if (i > 0) noise += ((g.u[i]! - g.u[i - 1]!) * (e + prevE)) / 2;
      prevE = e;
    }
    const norm = finiteMass > 0 ? 1 / finiteMass : 0;
    out[f.name] = {
      overflow: mass[5]! * norm,
      underflow: mass[2]! * norm,
      subnormal: mass[3]! * norm,
      signal,
      noise,
    };
  }
  return out;
}

/** Bits of headroom log2(max/absmax) (negative: overflow). */
export function headroom(absmax: number | null, f: Format): number | null {
  if (absmax === null || !(absmax > 0)) return null;
  return Math.log2(f.max / absmax);
}

