/**
 * Algebra on predicted distributions (scale.ts's PredictedDistribution): moments, shifts and
 * affine maps, elementwise functions (every continuous kind is a pushforward of a Gaussian through
 * its quantile function, so f(x) stays exact), products as mixtures over quadrature nodes, and
 * mixture bookkeeping (flatten, normalise, compress). Pure numerics; no graph, no printing.
 */
import { erfc, normalPdf } from '../formats/special.js';
import type { PredictedDistribution as D } from './scale.js';

export interface Moments {
  mean: number;
  meanSquare: number;
}

/** Half-width (in σ of the parent) of the integration window: P(|z| > 9) ≈ 2e-19. */
export const U_MAX = 9;
/** Simpson intervals over [-U_MAX, U_MAX]. */
const GRID = 900;
/** Largest number of parts a mixture keeps before it is compressed. */
export const MAX_PARTS = 32;

/** Φ(z), accurate in both tails. */
export function normalCdf(z: number): number {
  return z < 0 ? 0.5 * erfc(-z * Math.SQRT1_2) : 1 - 0.5 * erfc(z * Math.SQRT1_2);
}

/** ∫ g(u) φ(u) du over [-U_MAX, U_MAX] by composite Simpson (g may have kinks: O(h²) there). */
export function gaussIntegral(g: (u: number) => number, n = GRID): number {
  const h = (2 * U_MAX) / n;
  let s = 0;
  for (let i = 0; i <= n; i++) {
    const u = -U_MAX + i * h;
    const w = i === 0 || i === n ? 1 : i % 2 === 1 ? 4 : 2;
    const v = g(u);
    if (Number.isFinite(v)) s += w * v * normalPdf(u);
  }
  return (s * h) / 3;
}

const pushMomentCache = new WeakMap<object, Moments>();
/** Pushforwards built as a·parent + b: their moments follow from the parent's without integrating. */
const affineOf = new WeakMap<object, { parent: D; a: number; b: number }>();

/** φ at the points of `gaussIntegral`'s default grid (computed once). */
let gridPdf: Float64Array | null = null;

/**
 * E[f(z)], E[f(z)²] for z ~ N(mean, std²). Non-finite values (NaN of pow of negatives) are left out.
 * Both by `gaussIntegral`'s rule in one sweep: f is evaluated once per point, φ read from a table.
 */
export function pushforwardMoments(mean: number, std: number, fn: (z: number) => number): Moments {
  const n = GRID;
  const h = (2 * U_MAX) / n;
  const pdf = (gridPdf ??= Float64Array.from({ length: n + 1 }, (_, i) => normalPdf(-U_MAX + i * h)));
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i <= n; i++) {
    const u = -U_MAX + i * h;
    const w = i === 0 || i === n ? 1 : i % 2 === 1 ? 4 : 2;
    const x = fn(mean + std * u);
    const p = pdf[i]!;
    if (Number.isFinite(x)) s1 += w * x * p;
    const x2 = x * x;
    if (Number.isFinite(x2)) s2 += w * x2 * p;
  }
  return { mean: (s1 * h) / 3, meanSquare: (s2 * h) / 3 };
}

/** Exact first two moments of a distribution; null for 'empirical' (its moments live on the Scale). */
export function momentsOf(d: D): Moments | null {
  switch (d.kind) {
    case 'gaussian':
      return { mean: d.mean, meanSquare: d.mean * d.mean + d.std * d.std };
    case 'rectified': {
      if (d.std === 0) {
        const v = Math.max(0, d.mean);
        return { mean: v, meanSquare: v * v };
      }
      const a = d.mean / d.std;
      const P = normalCdf(a);
      const p = normalPdf(a);
      return { mean: d.mean * P + d.std * p, meanSquare: (d.mean * d.mean + d.std * d.std) * P + d.mean * d.std * p };
    }
    case 'uniform':
      return { mean: (d.lo + d.hi) / 2, meanSquare: (d.lo * d.lo + d.lo * d.hi + d.hi * d.hi) / 3 };
    case 'laplace':
      return { mean: d.mean, meanSquare: d.mean * d.mean + 2 * d.scale * d.scale };
    case 'discrete': {
      const W = d.weights.reduce((a, b) => a + b, 0) || 1;
      let m1 = 0;
      let m2 = 0;
      d.values.forEach((v, i) => {
        const w = d.weights[i]! / W;
        if (w === 0) return;
        m1 += w * v;
        m2 += w * v * v;
      });
      return { mean: m1, meanSquare: m2 };
    }
    case 'pushforward': {
      const hit = pushMomentCache.get(d);
      if (hit) return hit;
      const af = affineOf.get(d);
      if (af) {
        const pm = momentsOf(af.parent);
        if (pm) {
          const r = { mean: af.a * pm.mean + af.b, meanSquare: af.a * af.a * pm.meanSquare + 2 * af.a * af.b * pm.mean + af.b * af.b };
          pushMomentCache.set(d, r);
          return r;
        }
      }
      const m = d.std === 0 ? constMoments(d.fn(d.mean)) : pushforwardMoments(d.mean, d.std, d.fn);
      pushMomentCache.set(d, m);
      return m;
    }
    case 'mixture': {
      let m1 = 0;
      let m2 = 0;
      for (const p of d.parts) {
        const m = momentsOf(p.dist);
        if (!m) return null;
        m1 += p.weight * m.mean;
        m2 += p.weight * m.meanSquare;
      }
      return { mean: m1, meanSquare: m2 };
    }
    case 'empirical':
      return null;
  }
}

function constMoments(v: number): Moments {
  return { mean: v, meanSquare: v * v };
}

/** The Gaussian with given moments. */
export function gaussianOf(mean: number, meanSquare: number): D {
  return { kind: 'gaussian', mean, std: Math.sqrt(Math.max(0, meanSquare - mean * mean)) };
}

/** A single point. */
export function pointDist(v: number): D {
  return { kind: 'discrete', values: [v], weights: [1] };
}

/**
 * Every continuous kind as f(z), z ~ N(mean, std²): Gaussian (identity), rectified (relu),
 * uniform and Laplace (their quantile function of Φ). null for discrete, mixtures and empirical.
 */
export function asPushforward(d: D): { mean: number; std: number; fn: (z: number) => number; label: string } | null {
  switch (d.kind) {
    case 'gaussian':
      return { mean: d.mean, std: d.std, fn: (z) => z, label: 'x' };
    case 'rectified':
      return { mean: d.mean, std: d.std, fn: (z) => (z > 0 ? z : 0), label: 'relu' };
    case 'uniform': {
      const { lo, hi } = d;
      return { mean: 0, std: 1, fn: (z) => lo + (hi - lo) * normalCdf(z), label: 'uniform' };
    }
    case 'laplace': {
      const { mean, scale } = d;
      // Quantile of Laplace at Φ(z): mean ∓ b·ln(2·Φ(-|z|)), the tail probability computed directly.
      return {
        mean: 0,
        std: 1,
        fn: (z) => mean + Math.sign(z) * -scale * Math.log(2 * normalCdf(-Math.abs(z))),
        label: 'laplace',
      };
    }
    case 'pushforward':
      return { mean: d.mean, std: d.std, fn: d.fn, label: d.label };
    default:
      return null;
  }
}

/** Build a mixture: flatten nested ones, drop empty parts, normalise weights, merge points, compress. */
export function mixtureOf(parts: { weight: number; dist: D }[], maxParts = MAX_PARTS): D {
  const flat: { weight: number; dist: D }[] = [];
  const push = (w: number, d: D): void => {
    if (!(w > 0)) return;
    if (d.kind === 'mixture') for (const p of d.parts) push(w * p.weight, p.dist);
    else flat.push({ weight: w, dist: d });
  };
  for (const p of parts) push(p.weight, p.dist);
  if (flat.length === 0) return pointDist(0);
  // Merge all single-point / discrete parts into one discrete part.
  const pts = new Map<number, number>();
  const cont: { weight: number; dist: D }[] = [];
  for (const p of flat) {
    if (p.dist.kind === 'discrete') {
      const dd = p.dist;
      const W = dd.weights.reduce((a, b) => a + b, 0) || 1;
      dd.values.forEach((v, i) => pts.set(v, (pts.get(v) ?? 0) + (p.weight * dd.weights[i]!) / W));
    } else if (p.dist.kind === 'gaussian' && p.dist.std === 0) {
      pts.set(p.dist.mean, (pts.get(p.dist.mean) ?? 0) + p.weight);
    } else cont.push(p);
  }
  const total = flat.reduce((a, p) => a + p.weight, 0);
  let out: { weight: number; dist: D }[] = cont.map((p) => ({ weight: p.weight / total, dist: p.dist }));
  if (pts.size > 0) {
    const values = [...pts.keys()];
    const weights = values.map((v) => pts.get(v)!);
    const pw = weights.reduce((a, b) => a + b, 0);
    out.push({ weight: pw / total, dist: { kind: 'discrete', values, weights: weights.map((w) => w / pw) } });
  }
  if (out.length > maxParts) out = compress(out, maxParts);
  if (out.length === 1) return out[0]!.dist;
  return { kind: 'mixture', parts: out };
}

/**
 * Reduce a mixture to at most n parts: the heaviest discrete part kept as is, the continuous parts
 * sorted by RMS and merged in groups of equal weight into moment-matched Gaussians (what matters
 * for the risk is where the mass sits on the log scale, which sorting by RMS keeps).
 */
function compress(parts: { weight: number; dist: D }[], n: number): { weight: number; dist: D }[] {
  // (Index arrays instead of copied part objects; the same stable order and the same sums.)
  const keep: { weight: number; dist: D }[] = [];
  const rest: { weight: number; dist: D }[] = [];
  for (const p of parts) (p.dist.kind === 'discrete' ? keep : rest).push(p);
  const R = rest.length;
  const m1s = new Float64Array(R);
  const m2s = new Float64Array(R);
  const order: number[] = new Array<number>(R);
  for (let i = 0; i < R; i++) {
    const m = momentsOf(rest[i]!.dist);
    m1s[i] = m ? m.mean : 0;
    m2s[i] = m ? m.meanSquare : 0;
    order[i] = i;
  }
  order.sort((a, b) => m2s[a]! - m2s[b]!);
  const groups = Math.max(1, n - keep.length);
  let W = 0;
  for (let k = 0; k < R; k++) W += rest[order[k]!]!.weight;
  const out = keep.slice();
  let start = 0;
  let accW = 0;
  const flush = (end: number): void => {
    if (end === start) return;
    if (end - start === 1) {
      const p = rest[order[start]!]!;
      out.push({ weight: p.weight, dist: p.dist });
    } else {
      let m1 = 0;
      let m2 = 0;
      for (let k = start; k < end; k++) {
        const i = order[k]!;
        const w = rest[i]!.weight;
        m1 += w * m1s[i]!;
        m2 += w * m2s[i]!;
      }
      out.push({ weight: accW, dist: gaussianOf(m1 / accW, m2 / accW) });
    }
    start = end;
    accW = 0;
  };
  for (let k = 0; k < R; k++) {
    accW += rest[order[k]!]!.weight;
    if (accW >= W / groups) flush(k + 1);
  }
  flush(R);
  return out;
}

/** x + c for a constant c (exact in fp32 terms: a shift that swamps the spread becomes a point). */
export function shiftDist(d: D, c: number): D {
  if (c === 0) return d;
  switch (d.kind) {
    case 'gaussian':
      if (d.std !== 0 && Math.abs(c) > d.std * 2 ** 30 && Math.abs(c) > Math.abs(d.mean) * 2 ** 30) return pointDist(c);
      return { kind: 'gaussian', mean: d.mean + c, std: d.std };
    case 'uniform':
      return { kind: 'uniform', lo: d.lo + c, hi: d.hi + c };
    case 'laplace':
      return { kind: 'laplace', mean: d.mean + c, scale: d.scale };
    case 'discrete':
      return { kind: 'discrete', values: d.values.map((v) => v + c), weights: d.weights };
    case 'mixture':
      return mixtureOf(d.parts.map((p) => ({ weight: p.weight, dist: shiftDist(p.dist, c) })));
    case 'empirical':
      return d;
    default: {
      const m = momentsOf(d);
      const spread = m ? Math.sqrt(m.meanSquare) : 0;
      if (spread > 0 && Math.abs(c) > spread * 2 ** 30) return pointDist(c);
      const out = applyFn(d, (x) => x + c, `${fmt(c)}+`);
      affineOf.set(out, { parent: d, a: 1, b: c });
      return out;
    }
  }
}

/** a·x + b. */
export function affineDist(d: D, a: number, b: number): D {
  return shiftDist(scaleDist(d, a), b);
}

/** c·x (same as scale.ts's scaleDistribution, but keeps mixtures normalised and points merged). */
export function scaleDist(d: D, c: number): D {
  switch (d.kind) {
    case 'gaussian':
      return { kind: 'gaussian', mean: d.mean * c, std: d.std * Math.abs(c) };
    case 'rectified':
      if (c >= 0) return { kind: 'rectified', mean: d.mean * c, std: d.std * c };
      return { kind: 'pushforward', mean: d.mean, std: d.std, fn: (z) => c * (z > 0 ? z : 0), label: `${fmt(c)}·relu` };
    case 'uniform':
      return c >= 0 ? { kind: 'uniform', lo: d.lo * c, hi: d.hi * c } : { kind: 'uniform', lo: d.hi * c, hi: d.lo * c };
    case 'laplace':
      return { kind: 'laplace', mean: d.mean * c, scale: d.scale * Math.abs(c) };
    case 'discrete':
      return { kind: 'discrete', values: d.values.map((v) => v * c), weights: d.weights };
    case 'pushforward': {
      const fn = d.fn;
      const out: D = { kind: 'pushforward', mean: d.mean, std: d.std, fn: (z) => c * fn(z), label: `${fmt(c)}·${d.label}` };
      affineOf.set(out, { parent: d, a: c, b: 0 });
      return out;
    }
    case 'mixture':
      return mixtureOf(d.parts.map((p) => ({ weight: p.weight, dist: scaleDist(p.dist, c) })));
    case 'empirical':
      return d;
  }
}

/**
 * f(x) elementwise, exact: continuous kinds become pushforwards of their parent Gaussian,
 * discrete values are mapped, mixtures part by part. 'empirical' falls back to `fallback`
 * (a Gaussian with the tensor's moments) when given.
 */
export function applyFn(d: D, f: (x: number) => number, label: string, fallback?: D): D {
  switch (d.kind) {
    case 'discrete': {
      const m = new Map<number, number>();
      d.values.forEach((v, i) => {
        const y = f(v);
        m.set(y, (m.get(y) ?? 0) + d.weights[i]!);
      });
      return { kind: 'discrete', values: [...m.keys()], weights: [...m.values()] };
    }
    case 'mixture':
      return mixtureOf(d.parts.map((p) => ({ weight: p.weight, dist: applyFn(p.dist, f, label, fallback) })));
    case 'empirical':
      return fallback ? applyFn(fallback, f, label) : d;
    default: {
      const p = asPushforward(d)!;
      if (p.std === 0) return pointDist(f(p.fn(p.mean)));
      const g = p.fn;
      return { kind: 'pushforward', mean: p.mean, std: p.std, fn: (z) => f(g(z)), label: p.label === 'x' ? label : `${label}∘${p.label}` };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Quadrature nodes (for products and other two-operand maps)

/** Rules alternate between a few orders (40, 96, 4…20): keep every order computed. */
const ghCache = new Map<number, { x: Float64Array; w: Float64Array }>();

/**
 * Gauss–Hermite nodes for the standard normal weight (probabilists'): Σ w_i g(x_i) ≈ E[g(Z)].
 * Newton on the physicists' Hermite recurrence (Numerical Recipes' gauher), then rescaled.
 */
export function gaussHermite(n: number): { x: Float64Array; w: Float64Array } {
  const hit = ghCache.get(n);
  if (hit) return hit;
  const x = new Float64Array(n);
  const w = new Float64Array(n);
  const PIM4 = 0.7511255444649425;
  let z = 0;
  const m = Math.floor((n + 1) / 2);
  for (let i = 0; i < m; i++) {
    if (i === 0) z = Math.sqrt(2 * n + 1) - 1.85575 * Math.pow(2 * n + 1, -0.16667);
    else if (i === 1) z -= (1.14 * Math.pow(n, 0.426)) / z;
    else if (i === 2) z = 1.86 * z - 0.86 * x[0]!;
    else if (i === 3) z = 1.91 * z - 0.91 * x[1]!;
    else z = 2 * z - x[i - 2]!;
    let pp = 0;
    for (let it = 0; it < 100; it++) {
      let p1 = PIM4;
      let p2 = 0;
      for (let j = 0; j < n; j++) {
        const p3 = p2;
        p2 = p1;
        p1 = z * Math.sqrt(2 / (j + 1)) * p2 - Math.sqrt(j / (j + 1)) * p3;
      }
      pp = Math.sqrt(2 * n) * p2;
      const z1 = z;
      z = z1 - p1 / pp;
      if (Math.abs(z - z1) <= 1e-14) break;
    }
    x[i] = z;
    x[n - 1 - i] = -z;
    w[i] = 2 / (pp * pp);
    w[n - 1 - i] = w[i]!;
  }
  // Physicists' (weight e^{-t²}) → probabilists': x·√2, w/√π.
  for (let i = 0; i < n; i++) {
    x[i] = x[i]! * Math.SQRT2;
    w[i] = w[i]! / Math.sqrt(Math.PI);
  }
  const rule = { x, w };
  ghCache.set(n, rule);
  return rule;
}

/** A discrete approximation {value, weight} of d with about n points per continuous part. */
export function nodesOf(d: D, n = 16): { x: number; w: number }[] {
  switch (d.kind) {
    case 'discrete': {
      const W = d.weights.reduce((a, b) => a + b, 0) || 1;
      return d.values.map((v, i) => ({ x: v, w: d.weights[i]! / W }));
    }
    case 'mixture':
      return d.parts.flatMap((p) => nodesOf(p.dist, n).map((q) => ({ x: q.x, w: q.w * p.weight })));
    case 'empirical':
      return [];
    default: {
      const p = asPushforward(d)!;
      if (p.std === 0) return [{ x: p.fn(p.mean), w: 1 }];
      const gh = gaussHermite(n);
      const out: { x: number; w: number }[] = [];
      for (let i = 0; i < n; i++) {
        const v = p.fn(p.mean + p.std * gh.x[i]!);
        if (Number.isFinite(v)) out.push({ x: v, w: gh.w[i]! });
      }
      return out;
    }
  }
}

/**
 * The law of a·b for independent a ~ da, b ~ db, as a mixture over b's nodes of the scaled a
 * (exact given b; b's law discretised). A b that is a point gives a plain scaling.
 */
export function productDist(da: D, db: D, maxParts = MAX_PARTS): D {
  if (db.kind === 'discrete' && db.values.length === 1) return scaleDist(da, db.values[0]!);
  if (da.kind === 'discrete' && da.values.length === 1) return scaleDist(db, da.values[0]!);
  // Use the operand with fewer parts as the one to discretise.
  const partsA = da.kind === 'mixture' ? da.parts.length : 1;
  const partsB = db.kind === 'mixture' ? db.parts.length : 1;
  if (partsB > partsA) [da, db] = [db, da];
  const budget = Math.max(4, Math.floor(maxParts / Math.min(partsA, partsB)));
  const nodes = nodesOf(db, Math.min(20, Math.max(4, Math.floor(budget / Math.max(partsA, partsB)))));
  if (nodes.length === 0) return da;
  return mixtureOf(
    nodes.map((q) => ({ weight: q.w, dist: scaleDist(da, q.x) })),
    maxParts,
  );
}

/** The sum of independent a and b: exact shapes where one is a point or discrete, else moment-matched. */
export function sumDist(da: D, db: D, ma: Moments, mb: Moments): D {
  if (db.kind === 'discrete' && db.values.length <= 16) {
    return mixtureOf(db.values.map((v, i) => ({ weight: db.weights[i]!, dist: shiftDist(da, v) })));
  }
  if (da.kind === 'discrete' && da.values.length <= 16) {
    return mixtureOf(da.values.map((v, i) => ({ weight: da.weights[i]!, dist: shiftDist(db, v) })));
  }
  const va = Math.max(0, ma.meanSquare - ma.mean * ma.mean);
  const vb = Math.max(0, mb.meanSquare - mb.mean * mb.mean);
  // One side's spread negligible: the other keeps its shape, shifted by the small side's mean.
  if (vb <= va * 1e-3 && da.kind !== 'empirical') return shiftDist(da, mb.mean);
  if (va <= vb * 1e-3 && db.kind !== 'empirical') return shiftDist(db, ma.mean);
  if (da.kind === 'mixture' && db.kind !== 'mixture' && db.kind !== 'empirical') {
    // A mixture (e.g. a masked tensor) plus a continuous part: add part by part.
    return mixtureOf(da.parts.map((p) => ({ weight: p.weight, dist: sumPart(p.dist, db) })));
  }
  if (db.kind === 'mixture' && da.kind !== 'mixture' && da.kind !== 'empirical') {
    return mixtureOf(db.parts.map((p) => ({ weight: p.weight, dist: sumPart(p.dist, da) })));
  }
  return gaussianOf(ma.mean + mb.mean, ma.meanSquare + mb.meanSquare + 2 * ma.mean * mb.mean);
}

function sumPart(a: D, b: D): D {
  const ma = momentsOf(a);
  const mb = momentsOf(b);
  if (!ma || !mb) return a;
  return sumDist(a, b, ma, mb);
}

/**
 * An upper bound of |x| holding with probability 1 − p (for reports when no hard bound is known):
 * the largest 1 − p quantile of |x| found on the part's own scale.
 */
export function quantileAbs(d: D, p = 1e-6): number | null {
  switch (d.kind) {
    case 'discrete': {
      let m = 0;
      d.values.forEach((v, i) => {
        if (d.weights[i]! > 0) m = Math.max(m, Math.abs(v));
      });
      return m;
    }
    case 'mixture': {
      let m = 0;
      for (const part of d.parts) {
        const q = quantileAbs(part.dist, p / Math.max(part.weight, 1e-300));
        if (q === null) return null;
        if (part.weight > p) m = Math.max(m, q);
      }
      return m;
    }
    case 'empirical':
      return null;
    case 'uniform':
      return Math.max(Math.abs(d.lo), Math.abs(d.hi));
    case 'laplace':
      return Math.abs(d.mean) + d.scale * Math.log(1 / Math.min(1, p));
    default: {
      if (p >= 1) return 0;
      const pf = asPushforward(d)!;
      // z quantile for a two-sided tail of p, then the largest |f| over [-zq, zq] on a grid.
      const zq = zQuantile(p / 2);
      let m = 0;
      const N = 400;
      if (d.kind === 'gaussian' || d.kind === 'rectified') {
        // f monotone (identity, relu): the grid's largest |f| sits at one of its two ends.
        for (const i of [0, N]) {
          const v = Math.abs(pf.fn(pf.mean + pf.std * (-zq + (2 * zq * i) / N)));
          if (Number.isFinite(v)) m = Math.max(m, v);
        }
        return m;
      }
      for (let i = 0; i <= N; i++) {
        const v = Math.abs(pf.fn(pf.mean + pf.std * (-zq + (2 * zq * i) / N)));
        if (Number.isFinite(v)) m = Math.max(m, v);
      }
      return m;
    }
  }
}

const zqCache = new Map<number, number>();

/** z with P(Z > z) = q (bisection on the accurate tail; memoised, mixtures ask for the same q often). */
export function zQuantile(q: number): number {
  if (q >= 0.5) return 0;
  let z = zqCache.get(q);
  if (z === undefined) {
    z = zQuantileBisect(q);
    if (zqCache.size >= 10_000) zqCache.clear();
    zqCache.set(q, z);
  }
  return z;
}

function zQuantileBisect(q: number): number {
  let lo = 0;
  let hi = 40;
  for (let i = 0; i < 80; i++) {
    const mid = (lo + hi) / 2;
    if (0.5 * erfc(mid * Math.SQRT1_2) > q) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** A short name for a distribution (report's `distribution` field). */
export function describe(d: D): string {
  switch (d.kind) {
    case 'pushforward':
      return `pushforward(${d.label})`;
    case 'discrete':
      return d.values.length === 1 ? 'constant' : `discrete(${d.values.length})`;
    case 'mixture': {
      const kinds = new Map<string, number>();
      for (const p of d.parts) {
        const k = p.dist.kind === 'discrete' ? (p.dist.values.length === 1 ? `point ${fmt(p.dist.values[0]!)}` : 'discrete') : p.dist.kind;
        kinds.set(k, (kinds.get(k) ?? 0) + p.weight);
      }
      return `mixture(${[...kinds].map(([k, w]) => `${k} ${(w * 100).toPrecision(3)}%`).join(', ')})`;
    }
    default:
      return d.kind;
  }
}

export function fmt(c: number): string {
  return Number.isInteger(c) && Math.abs(c) < 1e6 ? String(c) : c.toPrecision(4);
}
