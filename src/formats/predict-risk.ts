/**
 * `predictRiskMany`: the predicted risk of a distribution under several formats at once — the
 * same quantities, definitions and algorithm as risk.ts's `predictRisk` (read its comment for the
 * maths), built for the analyser's hot loop where thousands of distributions are integrated.
 *
 * What is the same, what is faster, and why the numbers do not move:
 * - the law of |x| (`absLaw`) is built once for all formats; the shares (overflow, underflow,
 *   subnormal) and the signal are the very same closed-form expressions, bit for bit;
 * - the noise is integrated over the same segments, breakpoints and cells, with the same choice
 *   per segment between the δ²/12 rule and exact cell-by-cell integration. How the exact cells
 *   are integrated differs:
 *   · `predictRisk` uses 10-point Gauss–Legendre through closures on pieces at most half the
 *     density's length scale wide. Here the Gaussian kinds (gaussian, rectified) evaluate their
 *     density inline, one Gaussian component at a time (a zero-mean |x| has two equal components:
 *     computed once and doubled; a component that underflows, or the mirror component φ((x+μ)/σ)
 *     where it is below 1e-18 of the main one, is skipped), with as many nodes as the piece's
 *     width and distance from the centre need (`glOrder`, from measured errors: ≤ ~1e-13 per piece);
 *   · runs of whole cells of one width reuse the exponentials from cell to cell (`gaussRun`);
 *   · whole segments of many cells with δ ≤ σ/2 take the exact Euler–Maclaurin expansion of the
 *     sawtooth (`eulerMaclaurin`): the δ²/12 term plus boundary terms in Hermite functions, whose
 *     remainder for a Gaussian is of order e^{−2π²σ²/δ²};
 *   · uniform pieces (constant density) are integrated in closed form, Laplace pieces with the
 *     order table on the Laplace scale;
 * - binades are visited from the top down and the loop stops once all binades left below cannot
 *   reach 1e-20 of the noise found (bf16's 120-odd binades under a unit-scale tensor).
 * The SQNR agrees with `predictRisk` to ~1e-12 dB (noise ~1e-13 relative), far inside both paths'
 * own integration error; test/formats/predict-risk.test.ts compares them over a sweep of
 * distributions and all built-in formats.
 */

import { absLaw, isDiscrete, type AbsLaw, type Distribution } from './distribution.js';
import { exponentOf, pow2 } from './binary.js';
import type { Format } from './format.js';
import { discreteRisk, type Risk } from './risk.js';
import { gaussLegendre, normalMass } from './special.js';

/** Same thresholds as risk.ts (see there). */
const SMOOTH_STEP = 1 / 64;
const EXACT_CELLS = 64;

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
/** φ(t) is exactly 0 in double precision beyond this |t| (exp(−745.2) underflows). */
const PHI_ZERO = 38.7;

function sqnrDb(signal: number, noise: number): number {
  if (noise === 0) return Infinity;
  if (signal === 0) return -Infinity;
  return 10 * Math.log10(signal / noise);
}

const clamp01 = (p: number): number => Math.min(1, Math.max(0, p));

// ---------------------------------------------------------------------------------------------
// Gauss–Legendre rules of order 2..10 (Newton on P_n, as special.ts builds its 10-point rule)

interface Rule {
  nodes: Float64Array;
  weights: Float64Array;
}

/** special.ts's rule, with the middle node of an odd rule pinned to exactly 0. */
function gaussLegendreRule(n: number): Rule {
  const rule = gaussLegendre(n);
  if (n % 2 === 1) rule.nodes[n >> 1] = 0;
  return rule;
}

const RULES: Rule[] = [];
for (let n = 2; n <= 10; n++) RULES[n] = gaussLegendreRule(n);

/**
 * Nodes needed for ∫ (x − g)² φ(t) over a piece of half-width h (in σ) whose centre sits at |t| = d
 * from the component's centre: the error of n-point Gauss–Legendre grows like (h·(d + 3))^(2n);
 * the thresholds keep the worst measured relative error of a piece below ~1e-13 (t up to 14, the
 * grid point anywhere in or next to the piece, pieces clipped to 30%).
 */
function glOrder(r: number): number {
  if (r <= 0.05) return 4;
  if (r <= 0.2) return 5;
  if (r <= 0.5) return 6;
  if (r <= 1) return 7;
  if (r <= 1.5) return 8;
  if (r <= 2) return 9;
  return 10;
}

// ---------------------------------------------------------------------------------------------
// Piece integrals ∫_a^b p(x)(x − g)² dx, a density without kinks inside (a, b). Plain functions
// over a state object (no closures are created per cell: this runs ~10⁵ times per model).

/** Integrator kinds: Gaussian components, Laplace (closure density), constant density. */
const GAUSS = 0;
const LAPLACE = 1;
const CONSTANT = 2;
type Kind = typeof GAUSS | typeof LAPLACE | typeof CONSTANT;

interface Integrator {
  law: AbsLaw;
  kind: Kind;
  /** Widest piece (half the length scale; Infinity for a constant density). */
  width: number;
  /** Gauss: σ, 1/σ, component centres (one or two), and whether a zero-mean |x| doubles one. */
  sigma: number;
  inv: number;
  m0: number;
  m1: number;
  components: number;
  doubled: boolean;
  /** An upper bound of the density of |x| (for dropping binades that cannot matter). */
  pmax: number;
}

/** One Gaussian component: ∫_a^b φ((x − m)/σ)(x − g)² dx · (1/σ), over one piece. */
function gaussComponent(I: Integrator, m: number, a: number, b: number, g: number): number {
  const inv = I.inv;
  const ta = (a - m) * inv;
  const tb = (b - m) * inv;
  if (ta > PHI_ZERO || tb < -PHI_ZERO) return 0; // φ underflows to 0 on the whole piece
  const mid = (a + b) / 2;
  const half = (b - a) / 2;
  const d = Math.abs((mid - m) * inv);
  const rule = RULES[glOrder(half * inv * (d + 3))]!;
  const nodes = rule.nodes;
  const weights = rule.weights;
  let s = 0;
  for (let i = 0; i < nodes.length; i++) {
    const x = mid + half * nodes[i]!;
    const t = (x - m) * inv;
    const e = x - g;
    s += weights[i]! * Math.exp(-0.5 * t * t) * e * e;
  }
  return s * INV_SQRT_2PI * half * inv;
}

/**
 * The mirror component φ((x + μ)/σ) of |x| is e^{−2μx/σ²} times the main one at the same x; past
 * e^{−41.4} ≈ 1e-18 it cannot change a double sum and is skipped.
 */
const MIRROR_NEGLIGIBLE = 41.4;

function mirrorNegligible(I: Integrator, xLow: number): boolean {
  return 2 * I.m0 * xLow * I.inv * I.inv > MIRROR_NEGLIGIBLE;
}

function piece(I: Integrator, a: number, b: number, g: number): number {
  switch (I.kind) {
    case GAUSS: {
      if (I.doubled) return 2 * gaussComponent(I, 0, a, b, g);
      const v = gaussComponent(I, I.m0, a, b, g);
      return I.components === 2 && !mirrorNegligible(I, a) ? v + gaussComponent(I, I.m1, a, b, g) : v;
    }
    case CONSTANT: {
      const p = I.law.pdf((a + b) / 2);
      if (p === 0) return 0;
      const ea = a - g;
      const eb = b - g;
      return (p * (eb * eb * eb - ea * ea * ea)) / 3;
    }
    case LAPLACE: {
      const mid = (a + b) / 2;
      const half = (b - a) / 2;
      const rule = RULES[glOrder((4 * half) / I.law.scale)]!;
      let s = 0;
      for (let i = 0; i < rule.nodes.length; i++) {
        const x = mid + half * rule.nodes[i]!;
        const e = x - g;
        s += rule.weights[i]! * I.law.pdf(x) * e * e;
      }
      return s * half;
    }
  }
}

/** ∫_a^b p(x − g)², split into ceil((b − a)/width) equal pieces as special.ts's `integrate`. */
function integratePieces(I: Integrator, a: number, b: number, g: number): number {
  if (!(b > a)) return 0;
  const pieces = Number.isFinite(I.width) ? Math.max(1, Math.ceil((b - a) / I.width)) : 1;
  if (pieces === 1) return piece(I, a, b, g);
  const w = (b - a) / pieces;
  let total = 0;
  for (let p = 0; p < pieces; p++) {
    const lo = a + p * w;
    const hi = p === pieces - 1 ? b : lo + w;
    total += piece(I, lo, hi, g);
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Noise over the format's grid (structure of risk.ts's continuousNoise)

function segmentNoise(I: Integrator, from: number, to: number, origin: number, step: number): number {
  const law = I.law;
  const u0 = Math.max(from, law.lo);
  const v0 = Math.min(to, law.hi);
  if (!(v0 > u0)) return 0;
  const smoothOk = !(step > law.scale * SMOOTH_STEP);
  if (law.breaks.length === 0) {
    if (smoothOk && (v0 - u0) / step > EXACT_CELLS) return smoothNoise(I, u0, v0, origin, step);
    if (I.kind === GAUSS && step <= I.sigma * EM_MAX_STEP && u0 === from && v0 === to) {
      const em = eulerMaclaurin(I, from, to, step);
      if (em !== null) return em;
    }
    return cellNoise(I, u0, v0, origin, step);
  }
  let noise = 0;
  let u = u0;
  const ends = [...law.breaks.filter((x) => x > u0 && x < v0), v0];
  for (const b of ends) {
    noise += smoothOk && (b - u) / step > EXACT_CELLS ? smoothNoise(I, u, b, origin, step) : cellNoise(I, u, b, origin, step);
    u = b;
  }
  return noise;
}

// ---------------------------------------------------------------------------------------------
// Whole segments of many exact cells, for the Gaussian kinds: Euler–Maclaurin on the sawtooth
//
// With e(x) the distance to the nearest grid point (step δ) and W_j the periodic, zero-mean j-th
// antiderivatives of e² − δ²/12 (W_j(x) = δ^{j+2}·2B̃_{j+2}(x/δ + ½)/(j+2)!), repeated integration
// by parts gives, exactly,
//   ∫_u^v p e² = δ²/12 · P(u<|x|<v) + Σ_{j=1}^{J} (−1)^{j+1} [p^{(j−1)} W_j]_u^v + (−1)^J ∫_u^v p^{(J)} W_J.
// On grid points W_j vanishes for odd j and W_2i = γ_i δ^{2i+2}, γ_i = (−1)^{i+1}·4η(2i+2)/(2π)^{2i+2}
// (η the Dirichlet eta; γ_1 = 7/2880). For a Gaussian component p = φ((x−m)/σ)/σ,
// p^{(k)} = (−1)^k He_k(t)φ(t)/σ^{k+1}, so a segment between grid points holds
//   δ²/12 · P + δ² Σ_i γ_i (δ/σ)^{2i} [He_{2i−1}(t) φ(t)]_{t_u}^{t_v}.
// The remainder is bounded by ~δ²(δ/2πσ)^J √(J!) and, for the Gaussian, what is left once the
// boundary series has converged is of order e^{−2π²σ²/δ²} (e^{−79} at δ = σ/2). The series is
// summed until its terms fall below 1e-17 of the segment's noise; if they do not (far tails, where
// t·δ/σ grows), or they cancel heavily, the segment is integrated cell by cell instead. Used only
// where the cells are exact in `predictRisk`, δ ≤ σ/2 and the segment lies inside the integration
// window (so both paths integrate the same interval). Masses come from `phiMass`: special.ts's
// normalMass with the node count of `glOrder` on narrow intervals (same ~1e-15 accuracy).

const EM_MAX_STEP = 1 / 2;
const EM_TERMS = 30;
/** γ_i for i = 1 … EM_TERMS (index i − 1). */
const EM_GAMMA: Float64Array = (() => {
  const g = new Float64Array(EM_TERMS);
  const pi2 = Math.PI * Math.PI;
  const zetaSmall: Record<number, number> = { 4: (pi2 * pi2) / 90, 6: (pi2 * pi2 * pi2) / 945, 8: (pi2 * pi2 * pi2 * pi2) / 9450, 10: (pi2 ** 5) / 93555 };
  for (let i = 1; i <= EM_TERMS; i++) {
    const s = 2 * i + 2;
    let zeta = zetaSmall[s];
    if (zeta === undefined) {
      zeta = 0;
      for (let k = 40; k >= 1; k--) zeta += k ** -s;
    }
    const eta = (1 - 2 ** (1 - s)) * zeta;
    g[i - 1] = ((i % 2 === 1 ? 1 : -1) * 4 * eta) / (2 * Math.PI) ** s;
  }
  return g;
})();

/** ∫_{z1}^{z2} φ, as special.ts's normalMass but with the Gauss–Legendre order of `glOrder`. */
function phiMass(z1: number, z2: number): number {
  if (!(z2 > z1)) return 0;
  const reach = Math.max(1, Math.abs(z1), Math.abs(z2));
  if ((z2 - z1) * reach > 0.5) return normalMass(z1, z2);
  const mid = (z1 + z2) / 2;
  const half = (z2 - z1) / 2;
  const rule = RULES[glOrder(half * (Math.abs(mid) + 3))]!;
  let s = 0;
  for (let i = 0; i < rule.nodes.length; i++) {
    const t = mid + half * rule.nodes[i]!;
    s += rule.weights[i]! * Math.exp(-0.5 * t * t);
  }
  return s * INV_SQRT_2PI * half;
}

/** P(u < |x| < v) of a Gaussian kind, component by component (as its law's `mass`). */
function gaussMass(I: Integrator, u: number, v: number): number {
  const inv = I.inv;
  if (I.doubled) return 2 * phiMass(u * inv, v * inv);
  let m = phiMass((u - I.m0) * inv, (v - I.m0) * inv);
  if (I.components === 2) m += phiMass((u - I.m1) * inv, (v - I.m1) * inv);
  return m;
}

/** Noise of the segment [u, v] (grid points, step δ) by the boundary series; null: use the cells. */
function eulerMaclaurin(I: Integrator, u: number, v: number, step: number): number | null {
  const base = ((step * step) / 12) * gaussMass(I, u, v);
  const r2 = step * I.inv * (step * I.inv);
  const comps = I.doubled ? 1 : I.components === 2 && !mirrorNegligible(I, u) ? 2 : 1;
  // Terms are summed as multiples of δ² (times 2 for the doubled zero-mean component).
  const unit = (I.doubled ? 2 : 1) * step * step;
  let series = 0;
  let scale = 0;
  for (let c = 0; c < comps; c++) {
    const m = I.doubled ? 0 : c === 0 ? I.m0 : I.m1;
    const tu = (u - m) * I.inv;
    const tv = (v - m) * I.inv;
    if (tu > PHI_ZERO || tv < -PHI_ZERO) continue;
    const phiU = INV_SQRT_2PI * Math.exp(-0.5 * tu * tu);
    const phiV = INV_SQRT_2PI * Math.exp(-0.5 * tv * tv);
    // Odd Hermite polynomials He_1, He_3, … by He_{k+1} = t·He_k − k·He_{k−1}, two steps a term.
    let uPrev = 1;
    let uCur = tu;
    let vPrev = 1;
    let vCur = tv;
    let k = 1;
    let pw = 1;
    let s = 0;
    let last = Infinity;
    let done = false;
    for (let i = 0; i < EM_TERMS; i++) {
      if (i > 0) {
        for (let step2 = 0; step2 < 2; step2++, k++) {
          const un = tu * uCur - k * uPrev;
          uPrev = uCur;
          uCur = un;
          const vn = tv * vCur - k * vPrev;
          vPrev = vCur;
          vCur = vn;
        }
      }
      pw *= r2;
      const term = EM_GAMMA[i]! * pw * (vCur * phiV - uCur * phiU);
      s += term;
      const a = Math.abs(term) * unit;
      scale = Math.max(scale, a);
      if (a <= 1e-17 * Math.abs(base + unit * (series + s)) || a === 0) {
        done = true;
        break;
      }
      if (i >= 2 && a > last) return null; // the asymptotic series turned: integrate the cells
      last = a;
    }
    if (!done) return null;
    series += s;
  }
  const noise = base + unit * series;
  // A series much larger than the result means cancellation: the cells are safer.
  if (scale > 1e3 * Math.abs(noise)) return null;
  return noise;
}

function sawW(a: number, origin: number, step: number): number {
  const t = a - (origin + Math.round((a - origin) / step) * step);
  return (t * (4 * t * t - step * step)) / 12;
}

function smoothNoise(I: Integrator, u: number, v: number, origin: number, step: number): number {
  const law = I.law;
  const inset = (v - u) * 1e-9;
  const wv = sawW(v, origin, step);
  const wu = sawW(u, origin, step);
  const mass = I.kind === GAUSS ? gaussMass(I, u, v) : law.mass(u, v);
  // W vanishes on grid points (binade ends): skip the density there (same value, fewer exps).
  return ((step * step) / 12) * mass + (wv === 0 ? 0 : law.pdf(v - inset) * wv) - (wu === 0 ? 0 : law.pdf(u + inset) * wu);
}

function cellNoise(I: Integrator, u: number, v: number, origin: number, step: number): number {
  const first = Math.round((u - origin) / step);
  const last = Math.round((v - origin) / step);
  let noise = 0;
  if (I.kind === GAUSS && last - first >= 3 && step <= I.width) {
    // Whole cells first+1 … last−1 in one sweep; the (possibly clipped) end cells below.
    noise += gaussRun(I, origin, step, first + 1, last - 1);
    noise += edgeCell(I, u, v, origin, step, first) + edgeCell(I, u, v, origin, step, last);
    return noise;
  }
  for (let j = first; j <= last; j++) {
    const g = origin + j * step;
    const a = Math.max(u, g - step / 2);
    const b = Math.min(v, g + step / 2);
    if (b > a) noise += integratePieces(I, a, b, g);
  }
  return noise;
}

function edgeCell(I: Integrator, u: number, v: number, origin: number, step: number, j: number): number {
  const g = origin + j * step;
  const a = Math.max(u, g - step / 2);
  const b = Math.min(v, g + step / 2);
  return b > a ? integratePieces(I, a, b, g) : 0;
}

/** Re-seed the product recurrence of `gaussRun` with fresh exponentials every this many cells. */
const RESEED = 16;
const runSums = new Float64Array(16);
const runVals = new Float64Array(16);
const runB = new Float64Array(16);

/**
 * Σ over whole cells j = j0 … j1 (centres g_j = origin + j·δ, each one piece: δ ≤ σ/2) of
 * ∫ φ((x − m)/σ)(x − g_j)² dx/σ, per component, with the Gauss–Legendre rule of `glOrder` for the
 * run's widest |t|. In a cell x − g_j = (δ/2)ν_i at node i, so the squared error is the same in
 * every cell, and with t_j = (g_j − m)/σ, η_i = (δ/2)ν_i/σ, Δ = δ/σ the density at node i moves from
 * cell to cell by a product: e^{−(t_{j+1}+η_i)²/2} = e^{−(t_j+η_i)²/2} · A_j · B_i with
 * A_j = e^{−t_jΔ−Δ²/2}, B_i = e^{−η_iΔ}, A_{j+1} = A_j·e^{−Δ²}. Exponentials are taken afresh every
 * RESEED cells (rounding then stays ~1e-14 relative) and wherever |t| > 30 (no underflowed seeds).
 */
function gaussRun(I: Integrator, origin: number, step: number, j0: number, j1: number): number {
  const inv = I.inv;
  const half = step / 2;
  const hT = half * inv;
  const centres: number[] = [];
  let d = 0;
  const comps = I.doubled ? [0] : I.components === 2 && !mirrorNegligible(I, origin + j0 * step - half) ? [I.m0, I.m1] : [I.m0];
  for (const m of comps) {
    const tFirst = (origin + j0 * step - m) * inv;
    const tLast = (origin + j1 * step - m) * inv;
    if (tFirst - hT > PHI_ZERO || tLast + hT < -PHI_ZERO) continue;
    centres.push(m);
    d = Math.max(d, Math.abs(tFirst), Math.abs(tLast));
  }
  if (centres.length === 0) return 0;
  const rule = RULES[glOrder(hT * (d + 3))]!;
  const nodes = rule.nodes;
  const weights = rule.weights;
  const n = nodes.length;
  const D = step * inv;
  const decay = Math.exp(-D * D);
  const B = runB;
  for (let i = 0; i < n; i++) B[i] = Math.exp(-hT * nodes[i]! * D);
  const sums = runSums;
  const vals = runVals;
  let total = 0;
  for (const m of centres) {
    for (let i = 0; i < n; i++) sums[i] = 0;
    let A = 0;
    let since = RESEED;
    for (let j = j0; j <= j1; j++) {
      const t = (origin + j * step - m) * inv;
      if (since >= RESEED || Math.abs(t) > 30) {
        for (let i = 0; i < n; i++) {
          const ti = t + hT * nodes[i]!;
          vals[i] = Math.exp(-0.5 * ti * ti);
        }
        A = Math.exp(-t * D - 0.5 * D * D);
        since = 0;
      }
      for (let i = 0; i < n; i++) sums[i]! += vals[i]!;
      for (let i = 0; i < n; i++) vals[i]! *= A * B[i]!;
      A *= decay;
      since++;
    }
    let s = 0;
    for (let i = 0; i < n; i++) s += weights[i]! * nodes[i]! * nodes[i]! * sums[i]!;
    total += s;
  }
  // ∫ over a cell = (δ/2)/σ · Σ_i w_i φ(t_i) ((δ/2)ν_i)² → INV_SQRT_2PI · h³/σ · Σ_i w_i ν_i² e^{−t_i²/2}.
  return (I.doubled ? 2 : 1) * total * INV_SQRT_2PI * half * half * half * inv;
}

function overflowNoise(I: Integrator, max: number): number {
  const law = I.law;
  const u0 = Math.max(max, law.lo);
  if (!(law.hi > u0)) return 0;
  let noise = 0;
  let u = u0;
  for (const b of [...law.breaks.filter((x) => x > u0 && x < law.hi), law.hi]) {
    noise += integratePieces(I, u, b, max);
    u = b;
  }
  return noise;
}

/** Below this share of the noise found so far, the binades left below cannot change a double. */
const NEGLIGIBLE = 1e-20;

/**
 * The noise: overflow part, then the binades from the top down, then the subnormal segment.
 * Binade E holds at most (δ²/4)·P + O(pmax·δ³) ≤ pmax·2^E·δ²/2 of noise with δ = 2^(E−m), so all
 * binades below E together hold less than pmax·2^(3E−2m)/14; once that is below 1e-20 of the noise
 * already found the loop stops (bf16's 120-odd binades under a unit-scale tensor contribute less
 * than 2^-60 of its noise). Only the order of the additions differs from `predictRisk`.
 */
function continuousNoise(I: Integrator, f: Format): number {
  const law = I.law;
  if (!(law.hi > law.lo)) return 0;
  let noise = overflowNoise(I, f.max);
  const top = Math.min(law.hi, f.max);
  const Elo = law.lo > f.minNormal ? exponentOf(law.lo) : 1 - f.bias;
  let Ehi = Elo;
  while (pow2(Ehi + 1) < top) Ehi++;
  for (let E = Ehi; E >= Elo; E--) {
    const a = pow2(E);
    if (!(a < top)) continue;
    noise += segmentNoise(I, a, Math.min(2 * a, f.max), a, pow2(E - f.manBits));
    if (noise > 0 && (I.pmax * pow2(3 * E - 2 * f.manBits)) / 14 < NEGLIGIBLE * noise) break;
  }
  return noise + segmentNoise(I, 0, Math.min(f.minNormal, f.max), 0, f.minSubnormal);
}

function integratorOf(d: Distribution, law: AbsLaw): Integrator {
  const I: Integrator = { law, kind: LAPLACE, width: law.scale / 2, sigma: 0, inv: 0, m0: 0, m1: 0, components: 0, doubled: false, pmax: 1 / law.scale };
  switch (d.kind) {
    case 'gaussian': {
      const mu = Math.abs(d.mean);
      I.kind = GAUSS;
      I.sigma = d.std;
      I.inv = 1 / d.std;
      I.m0 = mu;
      I.m1 = -mu;
      I.components = 2;
      I.doubled = mu === 0;
      I.pmax = (2 * INV_SQRT_2PI) / d.std;
      break;
    }
    case 'rectified':
      I.kind = GAUSS;
      I.sigma = d.std;
      I.inv = 1 / d.std;
      I.m0 = d.mean;
      I.components = 1;
      I.pmax = INV_SQRT_2PI / d.std;
      break;
    case 'uniform':
      I.kind = CONSTANT;
      I.pmax = 2 / (d.hi - d.lo);
      break;
    default:
      break;
  }
  return I;
}

/**
 * Risk of a tensor whose elements follow d, stored in each of `formats` (in that order): the
 * quantities of risk.ts's `predictRisk`, computed for all formats in one go. Throws RangeError
 * for an invalid distribution, as `predictRisk` does.
 */
export function predictRiskMany(d: Distribution, formats: readonly Format[]): Risk[] {
  const law = absLaw(d);
  if (isDiscrete(law)) return formats.map((f) => discreteRisk(law, f));
  const I = integratorOf(d, law);
  return formats.map((f) => {
    const s = f.minSubnormal;
    return {
      overflow: clamp01(law.tail(f.max)),
      underflow: clamp01(law.mass(0, s / 2)),
      subnormal: clamp01(law.mass(s / 2, f.minNormal - s / 2)),
      sqnrDb: sqnrDb(law.secondMoment, continuousNoise(I, f)),
    };
  });
}
