/**
 * Per-format risk of a predicted tensor (PRIMER §2), for every kind of predicted distribution:
 * - basic kinds (gaussian, rectified, uniform, laplace, discrete): src/formats' `predictRiskMany`
 *   (`predictRisk` for all formats in one go), cached by the distribution's parameters;
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
import type { Risk } from '../formats/risk.js';
import { predictRiskMany } from '../formats/predict-risk.js';
import type { Distribution as BasicDistribution } from '../formats/distribution.js';
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
const formatKeys = new WeakMap<Format[], string>();

function formatsKey(formats: Format[]): string {
  let k = formatKeys.get(formats);
  if (k === undefined) {
    k = formats.map((f) => `${f.name}:${f.expBits},${f.manBits},${f.bias},${f.convention}`).join('|');
    formatKeys.set(formats, k);
  }
  return k;
}

/**
 * Risk parts of the basic kinds by their parameters: many tensors carry equal laws in distinct
 * objects (the same Gaussian re-derived per branch, mixture parts repeated across tensors, the
 * moment-matched Gaussian of every stored tensor). Numbers print exactly (shortest round-trip),
 * so equal keys mean equal distributions. Cleared when it grows past PARAM_CACHE_MAX entries.
 */
const paramCache = new Map<string, Record<string, RiskParts>>();
const PARAM_CACHE_MAX = 100_000;

function paramKey(d: D): string | null {
  switch (d.kind) {
    case 'gaussian':
      return `g${d.mean},${d.std}`;
    case 'rectified':
      return `r${d.mean},${d.std}`;
    case 'uniform':
      return `u${d.lo},${d.hi}`;
    case 'laplace':
      return `l${d.mean},${d.scale}`;
    case 'discrete':
      return d.values.length <= 64 ? `d${d.values.join(',')};${d.weights.join(',')}` : null;
    default:
      return null;
  }
}

/** Risk parts per format, cached per distribution object (layout ops share their input's law). */
function distRiskParts(d: D, formats: Format[]): Record<string, RiskParts> {
  const key = formatsKey(formats);
  let byKey = partsCache.get(d);
  if (!byKey) partsCache.set(d, (byKey = new Map()));
  const hit = byKey.get(key);
  if (hit) return hit;
  const pk = paramKey(d);
  let r: Record<string, RiskParts> | undefined;
  if (pk === null) r = computeRiskParts(d, formats);
  else {
    const full = `${key}#${pk}`;
    r = paramCache.get(full);
    if (!r) {
      r = computeRiskParts(d, formats);
      if (paramCache.size >= PARAM_CACHE_MAX) paramCache.clear();
      paramCache.set(full, r);
    }
  }
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
      let rs: Risk[] | null;
      try {
        rs = predictRiskMany(sanitize(d), formats);
      } catch {
        rs = null;
      }
      const signal = m.meanSquare;
      formats.forEach((f, i) => {
        const r = rs?.[i] ?? { overflow: 0, underflow: 0, subnormal: 0, sqnrDb: NaN };
        const noise = r.sqnrDb === Infinity ? 0 : Number.isFinite(r.sqnrDb) ? signal / 10 ** (r.sqnrDb / 10) : signal;
        out[f.name] = { overflow: r.overflow, underflow: r.underflow, subnormal: r.subnormal, signal, noise };
      });
      return out;
    }
  }
}

/** The basic kinds as src/formats accepts them (discrete without non-finite values). */
function sanitize(d: D): BasicDistribution {
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
  return d as BasicDistribution;
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

interface Grid {
  n: number;
  u: Float64Array;
  x: Float64Array;
  /** φ(u) at every grid point. */
  pdf: Float64Array;
}

/** The regular part of every grid (−U_MAX … U_MAX in GRID_N steps) and φ there, computed once. */
const BASE_U = Float64Array.from({ length: GRID_N + 1 }, (_, i) => -U_MAX + (2 * U_MAX * i) / GRID_N);
const BASE_PDF = Float64Array.from(BASE_U, normalPdf);

/**
 * Scratch arrays reused by every pushforward (a grid lives only while its risk is computed; fresh
 * arrays per grid were ~70 kB each, thousands per model, all garbage).
 */
class Scratch {
  private bufs = new Map<string, Float64Array>();
  get(name: string, n: number): Float64Array {
    let b = this.bufs.get(name);
    if (!b || b.length < n) this.bufs.set(name, (b = new Float64Array(Math.max(n, 2 * GRID_N + 64))));
    return b;
  }
}
const scratch = new Scratch();
let clsScratch = new Uint8Array(0);
let expoScratch = new Int32Array(0);
let fieldScratch = new Int32Array(0);
/** The bisection stack of `pushforwardRisk` (depth ≤ 61, two entries per level). */
const STACK = 160;
const stackLo = new Float64Array(STACK);
const stackHi = new Float64Array(STACK);
const stackCl = new Uint8Array(STACK);
const stackCh = new Uint8Array(STACK);
const stackDepth = new Int32Array(STACK);

/**
 * Grid over the parent's standard coordinate u, with f's zeros and u(z = 0) inserted: u0 goes
 * into the sorted regular grid, roots are merged in (repeated values dropped), f is evaluated once
 * per point and φ of the regular points comes from a table. The same points, values and order as
 * sorting everything (the grid is not cached: no two pushforwards share one). The arrays are the
 * scratch buffers, valid until the next call.
 */
function buildGrid(mean: number, std: number, fn: (z: number) => number): Grid {
  const u0 = -mean / std;
  const withU0 = u0 > -U_MAX && u0 < U_MAX;
  const n0 = GRID_N + 1 + (withU0 ? 1 : 0);
  let us = scratch.get('u', n0);
  let pdfs = scratch.get('pdf', n0);
  if (withU0) {
    // After the last regular point not above u0 (where a stable sort puts a pushed u0).
    let lo = 0;
    let hi = GRID_N + 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (BASE_U[mid]! <= u0) lo = mid + 1;
      else hi = mid;
    }
    us.set(BASE_U.subarray(0, lo), 0);
    pdfs.set(BASE_PDF.subarray(0, lo), 0);
    us[lo] = u0;
    pdfs[lo] = normalPdf(u0);
    us.set(BASE_U.subarray(lo), lo + 1);
    pdfs.set(BASE_PDF.subarray(lo), lo + 1);
  } else {
    us.set(BASE_U);
    pdfs.set(BASE_PDF);
  }
  let xs = scratch.get('x', n0);
  for (let i = 0; i < n0; i++) xs[i] = fn(mean + std * us[i]!);
  // Zeros of f between grid points (sign changes): add the root.
  const extra: number[] = [];
  for (let i = 0; i + 1 < n0; i++) {
    const a = xs[i]!;
    const b = xs[i + 1]!;
    if (a !== 0 && b !== 0 && Math.sign(a) !== Math.sign(b) && Number.isFinite(a) && Number.isFinite(b)) {
      let lo = us[i]!;
      let hi = us[i + 1]!;
      const sa = Math.sign(a);
      for (let it = 0; it < 200; it++) {
        const mid = (lo + hi) / 2;
        if (mid === lo || mid === hi) break;
        const v = fn(mean + std * mid);
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
  let n = n0;
  if (extra.length) {
    // Merge the (sorted) roots into the grid, dropping repeated values.
    const mu = scratch.get('mu', n0 + extra.length);
    const mx = scratch.get('mx', n0 + extra.length);
    const mp = scratch.get('mp', n0 + extra.length);
    let k = 0;
    let i = 0;
    let j = 0;
    while (i < n0 || j < extra.length) {
      if (j >= extra.length || (i < n0 && us[i]! <= extra[j]!)) {
        const v = us[i]!;
        if (!(k > 0 && mu[k - 1] === v)) {
          mu[k] = v;
          mx[k] = xs[i]!;
          mp[k] = pdfs[i]!;
          k++;
        }
        i++;
      } else {
        const v = extra[j]!;
        if (!(k > 0 && mu[k - 1] === v)) {
          mu[k] = v;
          mx[k] = fn(mean + std * v);
          mp[k] = normalPdf(v);
          k++;
        }
        j++;
      }
    }
    us = mu;
    xs = mx;
    pdfs = mp;
    n = k;
  }
  return { n, u: us, x: xs, pdf: pdfs };
}

/**
 * Rounding to a format's grid by a magic constant, per float64 exponent field (as fast-risk.ts
 * does for measured tensors): with δ = 2^k the format's step at |x| = a and C = 1.5·2^(k+52),
 * (a + C) − C rounds a to a multiple of δ with ties to even — exactly `roundMagnitude` — while
 * a < 2^(k+51), i.e. for mantissas up to 49 bits (wider formats keep `roundMagnitude`). The step δ
 * itself is tabulated alongside. Field 0 (subnormal doubles) lies below every format's min normal.
 */
interface RoundTable {
  magic: Float64Array;
  step: Float64Array;
}
const roundTables = new WeakMap<Format, RoundTable | null>();

function roundTable(f: Format): RoundTable | null {
  let t = roundTables.get(f);
  if (t !== undefined) return t;
  t = null;
  if (f.manBits <= 49) {
    const magic = new Float64Array(2048);
    const step = new Float64Array(2048);
    const kSub = exponentOf(f.minSubnormal);
    const eMinNormal = exponentOf(f.minNormal);
    let ok = true;
    for (let field = 0; field < 2047; field++) {
      const E = field === 0 ? -1023 : field - 1023;
      const k = E < eMinNormal ? kSub : E - f.manBits;
      step[field] = pow2(k);
      magic[field] = 1.5 * pow2(k + 52);
      if (!Number.isFinite(magic[field]!) && pow2(E) <= f.max) ok = false;
    }
    if (ok) t = { magic, step };
  }
  roundTables.set(f, t);
  return t;
}

/** Per-point quantities of a grid that do not depend on the format (shared by all formats). */
interface GridPoints {
  /** |f(u_i)| (NaN / Infinity kept). */
  abs: Float64Array;
  /** The float64 exponent field of |f| (0 for zero and subnormal doubles). */
  field: Int32Array;
  /** floor(log2 |f|) where |f| is a positive normal double. */
  expo: Int32Array;
  /** min(|f_i − f_{i−1}|, |f_{i+1} − f_i|): how far f moves next to the point. */
  move: Float64Array;
}

function gridPoints(g: Grid): GridPoints {
  const n = g.n;
  const abs = scratch.get('abs', n);
  if (expoScratch.length < n) {
    expoScratch = new Int32Array(Math.max(n, 2 * GRID_N + 64));
    fieldScratch = new Int32Array(expoScratch.length);
  }
  const expo = expoScratch;
  const field = fieldScratch;
  const move = scratch.get('move', n);
  for (let i = 0; i < n; i++) {
    const x = g.x[i]!;
    const a = Math.abs(x);
    abs[i] = a;
    const e = a >= 2.2250738585072014e-308 && a < Infinity ? exponentOf(a) : 0;
    expo[i] = e;
    field[i] = a >= 2.2250738585072014e-308 && a < Infinity ? e + 1023 : 0;
    const dl = i > 0 ? Math.abs(x - g.x[i - 1]!) : Infinity;
    const dr = i + 1 < n ? Math.abs(g.x[i + 1]! - x) : Infinity;
    move[i] = Math.min(dl, dr);
  }
  return { abs, field, expo, move };
}

/**
 * One pass over a grid for format f: each point's class (as `classify`, into cls) and the noise
 * trapezoid of err²φ, with the exact error where f is flat relative to the format's step (the
 * old quantErr2: |f| past max → (|f| − max)², tiny → |f|², else exact rounding error or δ²/12).
 * A function of its own so that V8 optimises this hot loop by itself.
 */
function formatPass(f: Format, g: Grid, pts: GridPoints, du: Float64Array, cls: Uint8Array): number {
  const n = g.n;
  const { manBits, minNormal, minSubnormal, max } = f;
  const halfSub = minSubnormal / 2;
  const subTop = minNormal - halfSub;
  const rt = roundTable(f);
  let noise = 0;
  let prevE = 0;
  if (rt) {
    const { magic, step } = rt;
    for (let i = 0; i < n; i++) {
      const a = pts.abs[i]!;
      let e2: number;
      let c: Cls;
      if (!(a < Infinity)) {
        e2 = 0;
        c = a !== a ? 0 : 5;
      } else if (a > max) {
        e2 = (a - max) ** 2;
        c = 5;
      } else if (a === 0) {
        e2 = 0;
        c = 1;
      } else if (a <= halfSub) {
        e2 = a * a;
        c = 2;
      } else {
        c = a < subTop ? 3 : 4;
        const fi = pts.field[i]!;
        const st = step[fi]!;
        if (pts.move[i]! < st) {
          const C = magic[fi]!;
          const q = a + C - C; // = roundMagnitude(a, manBits, minNormal, minSubnormal)
          const d = a - (q < max ? q : max);
          e2 = d * d; // x ** 2 is x·x (fdlibm's pow returns x*x for y = 2)
        } else e2 = (st * st) / 12;
      }
      cls[i] = c;
      const e = e2 * g.pdf[i]!;
      if (i > 0) noise += (du[i]! * (e + prevE)) / 2;
      prevE = e;
    }
  } else for (let i = 0; i < n; i++) {
    const a = pts.abs[i]!;
    let e2: number;
    let c: Cls;
    if (!(a < Infinity)) {
      e2 = 0;
      c = a !== a ? 0 : 5;
    } else if (a > max) {
      e2 = (a - max) ** 2;
      c = 5;
    } else if (a === 0) {
      e2 = 0;
      c = 1;
    } else if (a <= halfSub) {
      e2 = a * a;
      c = 2;
    } else {
      c = a < subTop ? 3 : 4;
      const st = a < minNormal ? minSubnormal : pow2(pts.expo[i]! - manBits);
      if (pts.move[i]! < st) {
        const q = roundMagnitude(a, manBits, minNormal, minSubnormal);
        e2 = (a - Math.min(q, max)) ** 2;
      } else e2 = (st * st) / 12;
    }
    cls[i] = c;
    const e = e2 * g.pdf[i]!;
    if (i > 0) noise += (du[i]! * (e + prevE)) / 2;
    prevE = e;
  }
  return noise;
}

function pushforwardRisk(mean: number, std: number, fn: (z: number) => number, formats: Format[]): Record<string, RiskParts> {
  const g = buildGrid(mean, std, fn);
  const F = (u: number): number => fn(mean + std * u);
  const out: Record<string, RiskParts> = {};
  const n = g.n;
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
  const pts = gridPoints(g);
  if (clsScratch.length < n) clsScratch = new Uint8Array(Math.max(n, 2 * GRID_N + 64));
  const cls = clsScratch;
  const du = scratch.get('du', n);
  for (let i = 1; i < n; i++) du[i] = g.u[i]! - g.u[i - 1]!;
  for (const f of formats) {
    const noise = formatPass(f, g, pts, du, cls);
    const mass = [0, 0, 0, 0, 0, 0];
    // Runs of one class between boundaries located by bisection; each run's mass from Φ. The
    // bisection is the recursion "split(lo, mid) then split(mid, hi)" run on an explicit stack
    // (typed arrays: no boxed numbers per call), visiting and closing runs in the same order.
    let runStart = -Infinity;
    let runCls = cls[0]! as Cls;
    let prev = runCls;
    for (let i = 0; i + 1 < n; i++) {
      const next = cls[i + 1]! as Cls;
      if (next !== prev) {
        let sp = 0;
        stackLo[0] = g.u[i]!;
        stackHi[0] = g.u[i + 1]!;
        stackCl[0] = prev;
        stackCh[0] = next;
        stackDepth[0] = 0;
        sp = 1;
        while (sp > 0) {
          sp--;
          const lo = stackLo[sp]!;
          const hi = stackHi[sp]!;
          const cl = stackCl[sp]!;
          const ch = stackCh[sp]! as Cls;
          const depth = stackDepth[sp]!;
          if (cl === ch) continue;
          if (depth > 60 || hi - lo <= 1e-13 * Math.max(1, Math.abs(lo))) {
            mass[runCls]! += normalMass(runStart, (lo + hi) / 2);
            runStart = (lo + hi) / 2;
            runCls = ch;
            continue;
          }
          const mid = (lo + hi) / 2;
          const cm = classify(F(mid), f);
          // Right half below the left one on the stack: the left is done first.
          stackLo[sp] = mid;
          stackHi[sp] = hi;
          stackCl[sp] = cm;
          stackCh[sp] = ch;
          stackDepth[sp] = depth + 1;
          sp++;
          stackLo[sp] = lo;
          stackHi[sp] = mid;
          stackCl[sp] = cl;
          stackCh[sp] = cm;
          stackDepth[sp] = depth + 1;
          sp++;
        }
      }
      prev = next;
    }
    mass[runCls]! += normalMass(runStart, Infinity);
    const finiteMass = 1 - mass[0]!;
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

