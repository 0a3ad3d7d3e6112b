/**
 * Numerical integration against the distributions a Scale can describe (PRIMER §2–3).
 *
 * Two rules, chosen by the integrand:
 *
 * - `gaussExpect`: n-point Gauss–Hermite (probabilists' weight e^{-t²/2}), nodes and weights
 *   computed here — eigenvalues of the Jacobi matrix (Golub–Welsch) found by Sturm-sequence
 *   bisection, polished by Newton on the orthonormal Hermite recurrence, weights from the
 *   Christoffel sum 1/Σ_k q_k(t_i)². Exact for polynomials of degree ≤ 2n−1 and excellent for
 *   smooth f (tanh, erf, exp, sigmoid: ~1e-14 at n = 64), but only algebraically convergent when
 *   f has a kink or a step.
 *
 * - `gaussExpectPiecewise` (the workhorse of every rule): E[f(z)], z ~ N(μ, σ²), written in the
 *   standard variable t = (z − μ)/σ as ∫ f(μ + σt) φ(t) dt and cut into panels of width 1/2
 *   covering [−8, 8] and split exactly at the given breakpoints (kinks and jumps of f: ReLU at
 *   0, HardSwish at ±3, Clip at its bounds, Floor at every integer). Each panel gets 12-point
 *   Gauss–Legendre; on a panel where the integrand is analytic this is accurate to rounding.
 *   Beyond ±8 panels keep being added while they still contribute (f growing like e^{ct} moves
 *   the mass outwards), up to |t| = 38.5 where φ underflows. Measured against closed forms in
 *   test/analysis/quadrature.test.ts: ReLU, Abs, exp, Clip and sign moments to ≤ 1e-12 relative.
 *
 * On top of that, the distributions of scale.ts: every continuous kind is a function g of a
 * Gaussian (a 'pushforward': identity for 'gaussian', max(0,·) for 'rectified', the quantile
 * function composed with Φ for 'uniform' and 'laplace'), so one integrator serves them all;
 * breakpoints of f in x-space are turned into t-space by root finding on g. Kinks a composed
 * pushforward carries are remembered in a side table keyed by its function (the distribution
 * type has no field for them) so that chains such as Clip∘Relu stay exact.
 */
import type { PredictedDistribution, Scale } from './scale.js';

// ---------------------------------------------------------------------------------------------
// Special functions

const SQRT2 = Math.SQRT2;
const SQRT_PI = Math.sqrt(Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * erfc for x ≥ 0. Below 3: the everywhere-positive series
 * erf(x) = (2/√π) e^{-x²} Σ 2^k x^{2k+1} / (1·3·…·(2k+1)) (no cancellation), then 1 − erf.
 * From 3 on: the continued fraction erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))),
 * evaluated backwards with enough terms for double precision.
 */
function erfcPositive(x: number): number {
  if (x < 3) return 1 - erfSeries(x);
  if (x > 27.3) return 0;
  const terms = Math.ceil(20 + 400 / (x * x));
  let t = x;
  for (let k = terms; k >= 1; k--) t = x + k / 2 / t;
  return Math.exp(-x * x) / (SQRT_PI * t);
}

function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let k = 1; k < 200; k++) {
    term *= (2 * x2) / (2 * k + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return (2 / SQRT_PI) * Math.exp(-x2) * sum;
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  const v = a < 3 ? erfSeries(a) : 1 - erfcPositive(a);
  return x < 0 ? -v : v;
}

export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  return x >= 0 ? erfcPositive(x) : 2 - erfcPositive(-x);
}

export function normalPdf(t: number): number {
  return INV_SQRT_2PI * Math.exp(-0.5 * t * t);
}

/** Φ(t), accurate in relative terms in the lower tail (down to t ≈ −38). */
export function normalCdf(t: number): number {
  return 0.5 * erfc(-t / SQRT2);
}

/** log Φ(t) without cancellation on either side. */
export function logNormalCdf(t: number): number {
  if (t > 0) return Math.log1p(-0.5 * erfc(t / SQRT2));
  if (t > -37) return Math.log(0.5 * erfc(-t / SQRT2));
  // Asymptotic: Φ(t) ≈ φ(t)/|t| Σ_k (−1)^k (2k−1)!!/t^{2k}; at |t| ≥ 37 seven terms reach 1e-16.
  const t2 = t * t;
  let term = 1;
  let sum = 1;
  for (let k = 1; k <= 7; k++) {
    term *= -(2 * k - 1) / t2;
    sum += term;
  }
  return -0.5 * t2 - Math.log(-t) - 0.5 * Math.log(2 * Math.PI) + Math.log(sum);
}

/**
 * Φ⁻¹ from log p (so that p = Φ(t)^{1/k} near 1 or p ≈ 1e-300 keep full precision). Newton on
 * h(t) = log Φ(t) − log p, which is increasing and concave: after one step the iterates approach
 * the root from the left, monotonically and quadratically. The upper half uses the symmetry
 * Φ⁻¹(p) = −Φ⁻¹(1 − p) with log(1 − p) = log(−expm1(log p)).
 */
export function normalQuantileFromLog(logP: number): number {
  if (logP >= 0) return Infinity;
  if (logP === -Infinity) return -Infinity;
  if (logP > -Math.LN2) {
    // p > 1/2: solve for the lower tail 1 − p.
    const logQ = Math.log(-Math.expm1(logP));
    return -lowerQuantile(logQ);
  }
  return lowerQuantile(logP);
}

export function normalQuantile(p: number): number {
  if (!(p > 0)) return -Infinity;
  if (p >= 1) return Infinity;
  if (p > 0.5) return -lowerQuantile(Math.log1p(-p));
  return lowerQuantile(Math.log(p));
}

/** Solve log Φ(t) = logP for t ≤ 0 (logP ≤ log ½). */
function lowerQuantile(logP: number): number {
  let t = -Math.sqrt(Math.max(0, -2 * logP)); // |t| ≥ |root|: h(t) ≤ 0 there, iterates then rise
  if (t > -1e-3) t = -1e-3;
  for (let i = 0; i < 100; i++) {
    const h = logNormalCdf(t) - logP;
    // d/dt log Φ(t) = φ(t)/Φ(t) (inverse Mills ratio), computed in logs for deep tails.
    const slope = Math.exp(-0.5 * t * t - 0.5 * Math.log(2 * Math.PI) - logNormalCdf(t));
    const step = h / slope;
    t -= step;
    if (Math.abs(step) <= 1e-15 * Math.max(1, Math.abs(t))) break;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Quadrature rules

export interface QuadratureRule {
  nodes: Float64Array;
  weights: Float64Array;
}

const hermiteCache = new Map<number, QuadratureRule>();

/**
 * Gauss–Hermite rule for the standard normal: E[f(t)] ≈ Σ w_i f(t_i), Σ w_i = 1.
 * Nodes: eigenvalues of the Jacobi matrix of the probabilists' Hermite polynomials (zero
 * diagonal, off-diagonal √k), located by Sturm-count bisection, then Newton-polished on q_n.
 */
export function hermiteRule(n: number): QuadratureRule {
  if (!Number.isInteger(n) || n < 1 || n > 200) throw new RangeError(`Gauss–Hermite order must be 1..200, got ${n}`);
  const cached = hermiteCache.get(n);
  if (cached) return cached;
  const nodes = new Float64Array(n);
  const weights = new Float64Array(n);
  const bound = 2 * Math.sqrt(n) + 1; // Gershgorin
  // Number of eigenvalues < x (Sturm sequence of the LDLᵀ pivots of J − xI).
  const countBelow = (x: number): number => {
    let count = 0;
    let d = -x;
    if (d < 0) count++;
    for (let k = 1; k < n; k++) {
      const prev = d === 0 ? 1e-300 : d;
      d = -x - k / prev;
      if (d < 0) count++;
    }
    return count;
  };
  for (let i = 0; i < n; i++) {
    let lo = -bound;
    let hi = bound;
    for (let it = 0; it < 200 && hi - lo > 1e-15 * Math.max(1, Math.abs(lo)); it++) {
      const mid = 0.5 * (lo + hi);
      if (countBelow(mid) > i) hi = mid;
      else lo = mid;
    }
    let t = 0.5 * (lo + hi);
    for (let it = 0; it < 3; it++) {
      const { qn, qnm1 } = hermiteOrthonormal(n, t);
      const dq = Math.sqrt(n) * qnm1;
      if (dq === 0) break;
      t -= qn / dq;
    }
    nodes[i] = t;
    let s = 0;
    let qPrev = 0;
    let q = 1;
    for (let k = 0; k < n; k++) {
      s += q * q;
      const next = (t * q - Math.sqrt(k) * qPrev) / Math.sqrt(k + 1);
      qPrev = q;
      q = next;
    }
    weights[i] = 1 / s;
  }
  // Symmetrise (the rule is exactly symmetric; rounding is not).
  for (let i = 0; i < n >> 1; i++) {
    const j = n - 1 - i;
    const t = 0.5 * (nodes[j]! - nodes[i]!);
    const w = 0.5 * (weights[i]! + weights[j]!);
    nodes[i] = -t;
    nodes[j] = t;
    weights[i] = w;
    weights[j] = w;
  }
  if (n % 2 === 1) nodes[n >> 1] = 0;
  const rule = { nodes, weights };
  hermiteCache.set(n, rule);
  return rule;
}

/** Orthonormal (w.r.t. N(0,1)) Hermite q_n(t) and q_{n−1}(t): t q_k = √(k+1) q_{k+1} + √k q_{k−1}. */
function hermiteOrthonormal(n: number, t: number): { qn: number; qnm1: number } {
  let qPrev = 0;
  let q = 1;
  for (let k = 0; k < n; k++) {
    const next = (t * q - Math.sqrt(k) * qPrev) / Math.sqrt(k + 1);
    qPrev = q;
    q = next;
  }
  return { qn: q, qnm1: qPrev };
}

const legendreCache = new Map<number, QuadratureRule>();

/** Gauss–Legendre on [−1, 1] (Newton on P_n from Chebyshev-like starting points). */
export function legendreRule(n: number): QuadratureRule {
  const cached = legendreCache.get(n);
  if (cached) return cached;
  const nodes = new Float64Array(n);
  const weights = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let x = Math.cos((Math.PI * (i + 0.75)) / (n + 0.5));
    let dp = 1;
    for (let it = 0; it < 100; it++) {
      let p0 = 1;
      let p1 = x;
      for (let k = 2; k <= n; k++) {
        const p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      const pn = n === 1 ? x : p1;
      const pnm1 = n === 1 ? 1 : p0;
      dp = (n * (x * pn - pnm1)) / (x * x - 1);
      const dx = pn / dp;
      x -= dx;
      if (Math.abs(dx) < 1e-16) break;
    }
    nodes[n - 1 - i] = x;
    weights[n - 1 - i] = 2 / ((1 - x * x) * dp * dp);
  }
  const rule = { nodes, weights };
  legendreCache.set(n, rule);
  return rule;
}

// ---------------------------------------------------------------------------------------------
// Expectations over a Gaussian

/** E[f(z)], z ~ N(mean, std²), by n-point Gauss–Hermite (use for smooth f). */
export function gaussExpect(mean: number, std: number, f: (z: number) => number, n = 64): number {
  if (!(std > 0)) return f(mean);
  const { nodes, weights } = hermiteRule(n);
  let s = 0;
  for (let i = 0; i < n; i++) s += weights[i]! * f(mean + std * nodes[i]!);
  return s;
}

const PANEL = 0.5;
const CORE = 8;
const T_MAX = 38.5;
const GL_ORDER = 12;

export interface NormalIntegral {
  /** ∫ h_j(t) φ(t) dt over the points where every h_j is finite. */
  values: number[];
  /** Probability mass where some h_j was NaN or infinite (a domain error, e.g. log of x ≤ 0). */
  invalid: number;
}

/**
 * ∫ h(t) φ(t) dt for a vector-valued h over the standard normal, panels split at `tBreaks`
 * (see the file comment). Points where h is not finite are left out and their mass reported.
 */
export function integrateStandardNormal(h: (t: number) => number[], dims: number, tBreaks: readonly number[] = []): NormalIntegral {
  return integrateStandardNormalInto(
    (t, out) => {
      const v = h(t);
      for (let j = 0; j < dims; j++) out[j] = v[j]!;
    },
    dims,
    tBreaks,
  );
}

/** Nodes t and weights (half-width · w_i · φ(t)) of the unsplit panels [k·PANEL, (k+1)·PANEL]. */
interface Panel {
  t: Float64Array;
  w: Float64Array;
}
const PANEL_OFFSET = Math.ceil(T_MAX / PANEL) + 1;
const regularPanels: (Panel | undefined)[] = [];

function panelNodes(a: number, b: number): Panel {
  const { nodes, weights } = legendreRule(GL_ORDER);
  const half = 0.5 * (b - a);
  const mid = 0.5 * (a + b);
  const t = new Float64Array(GL_ORDER);
  const w = new Float64Array(GL_ORDER);
  for (let i = 0; i < GL_ORDER; i++) {
    t[i] = mid + half * nodes[i]!;
    w[i] = half * weights[i]! * normalPdf(t[i]!);
  }
  return { t, w };
}

/** The panel [a, a + PANEL] of the regular grid (a a multiple of PANEL), computed once. */
function regularPanel(a: number): Panel {
  const k = Math.round(a / PANEL) + PANEL_OFFSET;
  let p = regularPanels[k];
  if (!p) regularPanels[k] = p = panelNodes(a, a + PANEL);
  return p;
}

/**
 * `integrateStandardNormal` with h writing its values into `out` (no array per point). The
 * regular panels' nodes and φ-weights come from a table; the sums are formed in the same order.
 */
export function integrateStandardNormalInto(h: (t: number, out: Float64Array) => void, dims: number, tBreaks: readonly number[] = []): NormalIntegral {
  const values = new Array<number>(dims).fill(0);
  let invalid = 0;
  const breaks = tBreaks.filter((b) => Number.isFinite(b) && Math.abs(b) < T_MAX).sort((a, b) => a - b);
  const v = new Float64Array(dims);
  const local = new Float64Array(dims);
  const panel = (p: Panel): number => {
    // Returns the largest |contribution| of the panel (to decide whether tails still matter).
    local.fill(0);
    for (let i = 0; i < GL_ORDER; i++) {
      const w = p.w[i]!;
      if (w === 0) continue;
      h(p.t[i]!, v);
      let ok = true;
      for (let j = 0; j < dims; j++) if (!Number.isFinite(v[j]!)) ok = false;
      if (!ok) {
        invalid += w;
        continue;
      }
      for (let j = 0; j < dims; j++) local[j]! += w * v[j]!;
    }
    let big = 0;
    for (let j = 0; j < dims; j++) {
      values[j]! += local[j]!;
      big = Math.max(big, Math.abs(local[j]!));
    }
    return big;
  };
  const run = (from: number, to: number): number => {
    // Integrate [from, to] (from < to) on the regular grid, split at breakpoints inside.
    let inside = false;
    for (const b of breaks) if (b > from && b < to) inside = true;
    if (!inside) return panel(regularPanel(from));
    let big = 0;
    const cuts = [from, ...breaks.filter((b) => b > from && b < to), to];
    for (let i = 0; i + 1 < cuts.length; i++) if (cuts[i + 1]! > cuts[i]!) big = Math.max(big, panel(panelNodes(cuts[i]!, cuts[i + 1]!)));
    return big;
  };
  for (let a = -CORE; a < CORE; a += PANEL) run(a, a + PANEL);
  const negligible = (big: number): boolean => {
    let total = 0;
    for (const x of values) total = Math.max(total, Math.abs(x));
    return big <= 1e-17 * total || big === 0;
  };
  for (let a = CORE; a < T_MAX; a += PANEL) if (negligible(run(a, a + PANEL)) && a > CORE + 2) break;
  for (let b = -CORE; b > -T_MAX; b -= PANEL) if (negligible(run(b - PANEL, b)) && b < -CORE - 2) break;
  return { values, invalid };
}

/** Breakpoints of a function of x: a fixed list, or computed from the range [lo, hi] of x. */
export type Breaks = readonly number[] | ((lo: number, hi: number) => number[]);

function breaksIn(breaks: Breaks | undefined, lo: number, hi: number): number[] {
  if (!breaks) return [];
  const list = typeof breaks === 'function' ? breaks(lo, hi) : breaks;
  return list.filter((b) => Number.isFinite(b) && b >= lo && b <= hi);
}

/**
 * E[f(z)], z ~ N(mean, std²), exact for piecewise-smooth f whose kinks and jumps are listed in
 * `breakpoints` (x-space). Non-finite values of f are skipped (see `gaussExpectMany`).
 */
export function gaussExpectPiecewise(mean: number, std: number, f: (z: number) => number, breakpoints: Breaks = []): number {
  return gaussExpectMany(mean, std, [f], breakpoints).values[0]!;
}

/** Identities of functions (memo keys; a WeakMap, so closures are still collected). */
const fnIds = new WeakMap<object, number>();
let nextFnId = 0;
const fnId = (f: object): number => {
  let id = fnIds.get(f);
  if (id === undefined) fnIds.set(f, (id = nextFnId++));
  return id;
};
/**
 * gaussExpectMany results by (function identities, mean, std, breakpoints): per-channel moments
 * often repeat a law (identical channels). Assumes the functions are pure — the same function
 * object gives the same values — as every scalar function of the rules is.
 */
const expectMemo = new Map<string, NormalIntegral>();
const EXPECT_MEMO_MAX = 50_000;

/** Several expectations in one pass; `invalid` is the mass where some f was not finite. */
export function gaussExpectMany(mean: number, std: number, fs: readonly ((z: number) => number)[], breakpoints: Breaks = []): NormalIntegral {
  let key = `${mean},${std}|`;
  for (const f of fs) key += `${fnId(f)},`;
  key += typeof breakpoints === 'function' ? `f${fnId(breakpoints)}` : breakpoints.join(',');
  const hit = expectMemo.get(key);
  if (hit) return { values: [...hit.values], invalid: hit.invalid };
  const r = gaussExpectManyUncached(mean, std, fs, breakpoints);
  if (expectMemo.size >= EXPECT_MEMO_MAX) expectMemo.clear();
  expectMemo.set(key, { values: [...r.values], invalid: r.invalid });
  return r;
}

function gaussExpectManyUncached(mean: number, std: number, fs: readonly ((z: number) => number)[], breakpoints: Breaks): NormalIntegral {
  if (!(std > 0)) {
    const v = fs.map((f) => f(mean));
    return v.every(Number.isFinite) ? { values: v, invalid: 0 } : { values: v.map(() => 0), invalid: 1 };
  }
  const tb = breaksIn(breakpoints, mean - T_MAX * std, mean + T_MAX * std).map((b) => (b - mean) / std);
  const n = fs.length;
  if (n === 1 || n === 2) return integratePair(fs[0]!, n === 2 ? fs[1]! : null, mean, std, tb);
  return integrateStandardNormalInto(
    (t, out) => {
      for (let j = 0; j < n; j++) out[j] = fs[j]!(mean + std * t);
    },
    n,
    tb,
  );
}

/**
 * `integrateStandardNormalInto` for one or two functions of x = mean + std·t (or of
 * x = g(mean + std·t)), with scalar accumulators instead of arrays: the same panels, points, tests
 * and sums in the same order, so the same results to the last bit (the per-channel moments of
 * unary ops run this thousands of times per model).
 */
function integratePair(
  f0: (x: number) => number,
  f1: ((x: number) => number) | null,
  mean: number,
  std: number,
  tBreaks: readonly number[],
  g: ((z: number) => number) | null = null,
): NormalIntegral {
  let s0 = 0;
  let s1 = 0;
  let invalid = 0;
  const breaks = tBreaks.filter((b) => Number.isFinite(b) && Math.abs(b) < T_MAX).sort((a, b) => a - b);
  const panel = (p: Panel): number => {
    let l0 = 0;
    let l1 = 0;
    for (let i = 0; i < GL_ORDER; i++) {
      const w = p.w[i]!;
      if (w === 0) continue;
      const z = mean + std * p.t[i]!;
      const x = g ? g(z) : z;
      const v0 = f0(x);
      const v1 = f1 ? f1(x) : 0;
      if (!Number.isFinite(v0) || !Number.isFinite(v1)) {
        invalid += w;
        continue;
      }
      l0 += w * v0;
      l1 += w * v1;
    }
    s0 += l0;
    s1 += l1;
    return f1 ? Math.max(Math.max(0, Math.abs(l0)), Math.abs(l1)) : Math.max(0, Math.abs(l0));
  };
  const run = (from: number, to: number): number => {
    let inside = false;
    for (const b of breaks) if (b > from && b < to) inside = true;
    if (!inside) return panel(regularPanel(from));
    let big = 0;
    const cuts = [from, ...breaks.filter((b) => b > from && b < to), to];
    for (let i = 0; i + 1 < cuts.length; i++) if (cuts[i + 1]! > cuts[i]!) big = Math.max(big, panel(panelNodes(cuts[i]!, cuts[i + 1]!)));
    return big;
  };
  for (let a = -CORE; a < CORE; a += PANEL) run(a, a + PANEL);
  const negligible = (big: number): boolean => {
    const total = f1 ? Math.max(Math.max(0, Math.abs(s0)), Math.abs(s1)) : Math.max(0, Math.abs(s0));
    return big <= 1e-17 * total || big === 0;
  };
  for (let a = CORE; a < T_MAX; a += PANEL) if (negligible(run(a, a + PANEL)) && a > CORE + 2) break;
  for (let b = -CORE; b > -T_MAX; b -= PANEL) if (negligible(run(b - PANEL, b)) && b < -CORE - 2) break;
  return { values: f1 ? [s0, s1] : [s0], invalid };
}

/** ∫_a^b f(x) dx by composite Gauss–Legendre (`panels` equal panels, split at breakpoints). */
export function integrateInterval(f: (x: number) => number, a: number, b: number, breakpoints: readonly number[] = [], panels = 16): number {
  if (!(b > a)) return 0;
  const { nodes, weights } = legendreRule(GL_ORDER);
  const cuts = new Set<number>();
  for (let i = 0; i <= panels; i++) cuts.add(a + ((b - a) * i) / panels);
  for (const x of breakpoints) if (x > a && x < b) cuts.add(x);
  const sorted = [...cuts].sort((p, q) => p - q);
  let s = 0;
  for (let i = 0; i + 1 < sorted.length; i++) {
    const lo = sorted[i]!;
    const hi = sorted[i + 1]!;
    const half = 0.5 * (hi - lo);
    const mid = 0.5 * (hi + lo);
    for (let k = 0; k < GL_ORDER; k++) s += half * weights[k]! * f(mid + half * nodes[k]!);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Distributions as functions of a Gaussian

/** X = g(z), z ~ N(mean, std²); `kinks` are z-values where g is not smooth (null: unknown). */
export interface ZForm {
  mean: number;
  std: number;
  g: (z: number) => number;
  kinks: number[];
  /** g is the identity (a plain Gaussian): breakpoints map to z directly. */
  identity: boolean;
  /** Known monotonicity of g: 1 non-decreasing, −1 non-increasing, 0 unknown / neither. */
  monotone: 1 | -1 | 0;
}

const kinkRegistry = new WeakMap<(z: number) => number, { kinks: number[]; monotone: 1 | -1 | 0 }>();

/** Remember the z-space kinks (and monotonicity) of a pushforward function. */
export function registerPushforward(fn: (z: number) => number, kinks: number[], monotone: 1 | -1 | 0 = 0): (z: number) => number {
  kinkRegistry.set(fn, { kinks: [...new Set(kinks.filter(Number.isFinite))].sort((a, b) => a - b), monotone });
  return fn;
}

const relu = (z: number): number => (z > 0 ? z : 0);

/** The Gaussian-function form of a continuous distribution; null for discrete/mixture/empirical. */
export function zFormOf(d: PredictedDistribution): ZForm | null {
  switch (d.kind) {
    case 'gaussian':
      return { mean: d.mean, std: d.std, g: (z) => z, kinks: [], identity: true, monotone: 1 };
    case 'rectified':
      return { mean: d.mean, std: d.std, g: relu, kinks: [0], identity: false, monotone: 1 };
    case 'pushforward': {
      const info = kinkRegistry.get(d.fn);
      return { mean: d.mean, std: d.std, g: d.fn, kinks: info?.kinks ?? [], identity: false, monotone: info?.monotone ?? 0 };
    }
    case 'uniform': {
      const { lo, hi } = d;
      return { mean: 0, std: 1, g: (t) => lo + (hi - lo) * normalCdf(t), kinks: [], identity: false, monotone: 1 };
    }
    case 'laplace': {
      const { mean, scale } = d;
      // Quantile of Laplace at u = Φ(t), in terms of the tail mass Φ(−|t|) to keep precision.
      const g = (t: number): number => {
        const tail = normalCdf(-Math.abs(t));
        const v = -scale * Math.log(2 * tail);
        return t >= 0 ? mean + v : mean - v;
      };
      return { mean: 0, std: 1, g, kinks: [0], identity: false, monotone: 1 };
    }
    default:
      return null;
  }
}

const ROOT_GRID = 0.1;
const ROOT_SPAN = 12;

/** z-values where g(z) crosses (or leaves) each breakpoint b, by scanning a grid and bisecting. */
function crossings(zf: ZForm, breaks: Breaks | undefined): number[] {
  if (!breaks || !(zf.std > 0)) return [];
  if (zf.identity) return breaksIn(breaks, zf.mean - T_MAX * zf.std, zf.mean + T_MAX * zf.std);
  const ts: number[] = [];
  const gs: number[] = [];
  for (let t = -ROOT_SPAN; t <= ROOT_SPAN + 1e-9; t += ROOT_GRID) {
    ts.push(t);
    gs.push(zf.g(zf.mean + zf.std * t));
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of gs) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(lo <= hi)) return [];
  const out: number[] = [];
  const side = (v: number, b: number): number => (v > b ? 1 : v < b ? -1 : 0);
  for (const b of breaksIn(breaks, lo, hi)) {
    for (let i = 0; i + 1 < ts.length; i++) {
      const sa = side(gs[i]!, b);
      const sb = side(gs[i + 1]!, b);
      if (sa === sb || Number.isNaN(gs[i]!) || Number.isNaN(gs[i + 1]!)) continue;
      // Boundary of the region where the side is still sa.
      let a = ts[i]!;
      let c = ts[i + 1]!;
      for (let it = 0; it < 60; it++) {
        const m = 0.5 * (a + c);
        if (side(zf.g(zf.mean + zf.std * m), b) === sa) a = m;
        else c = m;
      }
      out.push(zf.mean + zf.std * 0.5 * (a + c));
    }
  }
  return out;
}

/** Fallback moments for parts the integrator cannot see ('empirical'). */
export interface Moments {
  mean: number;
  meanSquare: number;
}

function momentGaussian(m: Moments): ZForm {
  const std = Math.sqrt(Math.max(0, m.meanSquare - m.mean * m.mean));
  return { mean: m.mean, std, g: (z) => z, kinks: [], identity: true, monotone: 1 };
}

/** E[f_j(X)] for X of distribution d; `breaks` are x-space kinks/jumps shared by all f_j. */
export function expectDist(d: PredictedDistribution, fs: readonly ((x: number) => number)[], breaks?: Breaks, fallback?: Moments): NormalIntegral {
  switch (d.kind) {
    case 'discrete': {
      const values = fs.map(() => 0);
      let invalid = 0;
      let total = 0;
      for (const w of d.weights) total += w;
      d.values.forEach((v, i) => {
        const w = (d.weights[i] ?? 0) / (total || 1);
        const ys = fs.map((f) => f(v));
        if (!ys.every(Number.isFinite)) invalid += w;
        else ys.forEach((y, j) => (values[j]! += w * y));
      });
      return { values, invalid };
    }
    case 'mixture': {
      const values = fs.map(() => 0);
      let invalid = 0;
      let total = 0;
      for (const p of d.parts) total += p.weight;
      for (const p of d.parts) {
        const w = p.weight / (total || 1);
        if (w === 0) continue;
        const r = expectDist(p.dist, fs, breaks, fallback);
        r.values.forEach((v, j) => (values[j]! += w * v));
        invalid += w * r.invalid;
      }
      return { values, invalid };
    }
    case 'empirical':
      return expectZ(momentGaussian(fallback ?? { mean: 0, meanSquare: 1 }), fs, breaks);
    default:
      return expectZ(zFormOf(d)!, fs, breaks);
  }
}

export function expectZ(zf: ZForm, fs: readonly ((x: number) => number)[], breaks?: Breaks): NormalIntegral {
  const { mean, std, g } = zf;
  if (!(std > 0)) {
    const x = g(mean);
    const v = fs.map((f) => f(x));
    return v.every(Number.isFinite) ? { values: v, invalid: 0 } : { values: v.map(() => 0), invalid: 1 };
  }
  const zb = [...zf.kinks, ...crossings(zf, breaks)];
  const tb = zb.map((z) => (z - mean) / std);
  const n = fs.length;
  if (n === 1 || n === 2) return integratePair(fs[0]!, n === 2 ? fs[1]! : null, mean, std, tb, g);
  return integrateStandardNormalInto(
    (t, out) => {
      const x = g(mean + std * t);
      for (let j = 0; j < n; j++) out[j] = fs[j]!(x);
    },
    n,
    tb,
  );
}

/** E[f_j(X)] for a Scale (its 'empirical' parts use the Scale's own moments). */
export function expectScale(s: Scale, fs: readonly ((x: number) => number)[], breaks?: Breaks): NormalIntegral {
  return expectDist(s.dist, fs, breaks, { mean: s.mean, meanSquare: s.meanSquare });
}

/** E[X], E[X²] of a distribution. */
export function distMoments(d: PredictedDistribution, fallback?: Moments): Moments {
  const r = expectDist(d, [(x) => x, (x) => x * x], undefined, fallback);
  return { mean: r.values[0]!, meanSquare: r.values[1]! };
}

// ---------------------------------------------------------------------------------------------
// Mapping a distribution through an elementwise function

/**
 * The distribution of f(X): a pushforward of X's Gaussian (kinks carried along), the mapped
 * values of a discrete one, part by part for a mixture. `approximate` is set when X had no
 * Gaussian form and was moment-matched ('empirical').
 */
export function mapDist(
  d: PredictedDistribution,
  f: (x: number) => number,
  label: string,
  breaks?: Breaks,
  fallback?: Moments,
  monotone: 1 | -1 | 0 = 0,
): { dist: PredictedDistribution; approximate: boolean } {
  switch (d.kind) {
    case 'discrete': {
      const merged = new Map<number, number>();
      d.values.forEach((v, i) => {
        const y = f(v);
        if (!Number.isFinite(y)) return;
        const key = Object.is(y, -0) ? 0 : y;
        merged.set(key, (merged.get(key) ?? 0) + (d.weights[i] ?? 0));
      });
      if (merged.size === 0) return { dist: { kind: 'discrete', values: [0], weights: [1] }, approximate: true };
      return { dist: { kind: 'discrete', values: [...merged.keys()], weights: [...merged.values()] }, approximate: false };
    }
    case 'mixture': {
      let approximate = false;
      const parts = d.parts.map((p) => {
        const m = mapDist(p.dist, f, label, breaks, fallback, monotone);
        approximate ||= m.approximate;
        return { weight: p.weight, dist: m.dist };
      });
      return { dist: { kind: 'mixture', parts }, approximate };
    }
    case 'empirical':
      return { dist: pushforwardOf(momentGaussian(fallback ?? { mean: 0, meanSquare: 1 }), f, label, breaks, monotone, 'x'), approximate: true };
    default: {
      const zf = zFormOf(d)!;
      const parent = d.kind === 'pushforward' ? d.label : d.kind === 'gaussian' ? 'x' : d.kind;
      if (!(zf.std > 0)) {
        const y = f(zf.g(zf.mean));
        return { dist: { kind: 'discrete', values: [Number.isFinite(y) ? y : 0], weights: [1] }, approximate: !Number.isFinite(y) };
      }
      return { dist: pushforwardOf(zf, f, label, breaks, monotone, parent), approximate: false };
    }
  }
}

function pushforwardOf(zf: ZForm, f: (x: number) => number, label: string, breaks: Breaks | undefined, monotone: 1 | -1 | 0, parent: string): PredictedDistribution {
  const g = zf.g;
  const fn = zf.identity ? f : (z: number) => f(g(z));
  const kinks = [...zf.kinks, ...crossings(zf, breaks)];
  const mono = (zf.monotone * monotone) as 1 | -1 | 0;
  // A fresh function object when f is used as-is, so each pushforward owns its registry entry.
  const final = fn === f ? (z: number) => f(z) : fn;
  registerPushforward(final, kinks, mono);
  return { kind: 'pushforward', mean: zf.mean, std: zf.std, fn: final, label: `${label}(${parent})` };
}

// ---------------------------------------------------------------------------------------------
// Order statistics (max / min of k independent copies)

/**
 * M_k(t) = Φ⁻¹(Φ(t)^{1/k}): if t ~ N(0,1), M_k(t) is distributed as the max of k independent
 * standard normals (the CDF of the max is Φ^k). Monotone and smooth, so the max is itself a
 * pushforward of a Gaussian and the same quadrature integrates it.
 */
export function maxOfKNormal(t: number, k: number): number {
  if (k === 1) return t;
  return normalQuantileFromLog(logNormalCdf(t) / k);
}

/** Its inverse: the t whose image under M_k is s: Φ⁻¹(Φ(s)^k). */
function maxOfKNormalInverse(s: number, k: number): number {
  if (k === 1) return s;
  return normalQuantileFromLog(logNormalCdf(s) * k);
}

/** Sorted atoms (value, probability) approximating a distribution (for order statistics). */
export function atomsOf(d: PredictedDistribution, fallback?: Moments): { values: number[]; probs: number[] } {
  const pairs: [number, number][] = [];
  const collect = (dist: PredictedDistribution, weight: number): void => {
    if (dist.kind === 'discrete') {
      let total = 0;
      for (const w of dist.weights) total += w;
      dist.values.forEach((v, i) => pairs.push([v, (weight * (dist.weights[i] ?? 0)) / (total || 1)]));
      return;
    }
    if (dist.kind === 'mixture') {
      let total = 0;
      for (const p of dist.parts) total += p.weight;
      for (const p of dist.parts) collect(p.dist, (weight * p.weight) / (total || 1));
      return;
    }
    const zf = dist.kind === 'empirical' ? momentGaussian(fallback ?? { mean: 0, meanSquare: 1 }) : zFormOf(dist)!;
    if (!(zf.std > 0)) {
      pairs.push([zf.g(zf.mean), weight]);
      return;
    }
    const { nodes, weights } = legendreRule(GL_ORDER);
    const step = 0.25;
    for (let a = -10; a < 10; a += step) {
      const half = step / 2;
      const mid = a + half;
      for (let i = 0; i < GL_ORDER; i++) {
        const t = mid + half * nodes[i]!;
        const v = zf.g(zf.mean + zf.std * t);
        if (Number.isFinite(v)) pairs.push([v, weight * half * weights[i]! * normalPdf(t)]);
      }
    }
  };
  collect(d, 1);
  pairs.sort((a, b) => a[0] - b[0]);
  let total = 0;
  for (const p of pairs) total += p[1];
  return { values: pairs.map((p) => p[0]), probs: pairs.map((p) => p[1] / (total || 1)) };
}

function monotonicity(zf: ZForm): 1 | -1 | 0 {
  if (zf.monotone !== 0) return zf.monotone;
  let up = true;
  let down = true;
  let prev = zf.g(zf.mean - 10 * zf.std);
  for (let t = -10 + 0.05; t <= 10; t += 0.05) {
    const v = zf.g(zf.mean + zf.std * t);
    const tol = 1e-12 * (Math.abs(v) + Math.abs(prev));
    if (v < prev - tol) up = false;
    if (v > prev + tol) down = false;
    prev = v;
  }
  return up ? 1 : down ? -1 : 0;
}

/**
 * Distribution of the max (or min) of k independent draws of d. Exact for Gaussian-based
 * kinds with a monotone g (max g(Z_i) = g(max Z_i)) and for discrete ones; otherwise moments
 * from sorted atoms and a moment-matched Gaussian (`approximate`).
 */
export function extremeOfK(d: PredictedDistribution, k: number, which: 'max' | 'min', fallback?: Moments): { dist: PredictedDistribution; approximate: boolean } {
  if (!(k > 1)) return { dist: d, approximate: false };
  if (d.kind === 'discrete') {
    const { values, probs } = atomsOf(d);
    return { dist: { kind: 'discrete', values, weights: extremeWeights(probs, k, which) }, approximate: false };
  }
  const zf = d.kind === 'mixture' || d.kind === 'empirical' ? null : zFormOf(d);
  const mono = zf && zf.std > 0 ? monotonicity(zf) : 0;
  if (zf && mono !== 0) {
    // max g(Z) = g(max Z) when g rises, g(min Z) when it falls; min likewise.
    const wantMaxZ = (which === 'max') === (mono === 1);
    const { mean, std, g } = zf;
    const fn = wantMaxZ ? (t: number) => g(mean + std * maxOfKNormal(t, k)) : (t: number) => g(mean - std * maxOfKNormal(-t, k));
    const kinks = zf.kinks.map((z) => {
      const s = (z - mean) / std;
      return wantMaxZ ? maxOfKNormalInverse(s, k) : -maxOfKNormalInverse(-s, k);
    });
    registerPushforward(fn, kinks, mono);
    const parent = d.kind === 'pushforward' ? d.label : d.kind;
    return { dist: { kind: 'pushforward', mean: 0, std: 1, fn, label: `${which}${k}(${parent})` }, approximate: false };
  }
  const { values, probs } = atomsOf(d, fallback);
  const w = extremeWeights(probs, k, which);
  let m1 = 0;
  let m2 = 0;
  values.forEach((v, i) => {
    m1 += w[i]! * v;
    m2 += w[i]! * v * v;
  });
  const std = Math.sqrt(Math.max(0, m2 - m1 * m1));
  return { dist: { kind: 'gaussian', mean: m1, std }, approximate: true };
}

/** P(extreme = atom i) = F_i^k − F_{i−1}^k (max) or S_{i}^k − S_{i+1}^k (min). */
function extremeWeights(probs: number[], k: number, which: 'max' | 'min'): number[] {
  const n = probs.length;
  const out = new Array<number>(n).fill(0);
  if (which === 'max') {
    let F = 0;
    let prev = 0;
    for (let i = 0; i < n; i++) {
      F = Math.min(1, F + probs[i]!);
      const cur = Math.pow(F, k);
      out[i] = cur - prev;
      prev = cur;
    }
  } else {
    let S = 0;
    let prev = 0;
    for (let i = n - 1; i >= 0; i--) {
      S = Math.min(1, S + probs[i]!);
      const cur = Math.pow(S, k);
      out[i] = cur - prev;
      prev = cur;
    }
  }
  return out;
}
