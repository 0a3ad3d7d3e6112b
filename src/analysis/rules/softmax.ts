/**
 * Softmax and LogSoftmax, with masked logits.
 *
 * PRIMER §3: softmax over n logits of variance σ² has mean exactly 1/n and E[p²] ≈ e^{σ²}/n².
 * The approximation fails for large σ (trained attention), so E[p²] is computed exactly for
 * i.i.d. Gaussian logits from the Laplace transform of a lognormal: with S the sum of the other
 * n − 1 exponentials, 1/(e^x + S)² = ∫ t·e^{−t(e^x + S)} dt, hence E[p²] = ∫ t·A(t)·L(t)^{n−1} dt,
 * L(t) = E[exp(−t·e^x)], A(t) = E[e^{2x} exp(−t·e^x)] (one-dimensional integrals). The law of p is
 * kept as a logit-normal sigmoid(N(c, w²)) (p_i = sigmoid(x_i − ln S)) with c, w set so that
 * E[p] = 1/n and E[p²] are exact — a pushforward of a Gaussian, so its FP8 underflow tail is
 * integrated, not guessed.
 *
 * Masks: logits at a huge negative value (a stored mask filled with float32 min, -1e4, …) give
 * exact zeros after exp; the rest behave like a softmax over the m unmasked logits of their row.
 * When the mask is a stored tensor added to the logits we read the number of unmasked logits of
 * every row (a causal mask has every m from 1 to n, which matters: E[p²] = (1/n)·mean_rows(1/m)·…);
 * otherwise every row is taken to have the average count.
 */
import type { Node } from '../../onnx/model.js';
import type { TensorData } from '../../onnx/tensor.js';
import { gaussHermite, mixtureOf, momentsOf, nodesOf, pointDist } from '../dist.js';
import { derivedConfidence, gradScale, joinNotes, makeScale, shapeFor, shapeOf } from '../helpers.js';
import type { PredictedDistribution, Scale } from '../scale.js';
import { MASK_FILL } from '../mask.js';
import type { BackwardContext, RuleContext, RuleTable } from './types.js';

const sigmoid = (t: number): number => (t >= 0 ? 1 / (1 + Math.exp(-t)) : Math.exp(t) / (1 + Math.exp(t)));

/** exp(x − max) is exactly 0 in float32 below about −104. */
const EXP_ZERO = 110;

interface SplitLogits {
  /** Share of logits at a mask fill. */
  masked: number;
  /** The fill value (mean of the masked parts). */
  fill: number;
  /** Law of the live logits (normalised). */
  live: PredictedDistribution;
}

/** Separate mask-fill parts (far below the live logits) from the live ones. */
export function splitMask(d: PredictedDistribution): SplitLogits {
  const parts: { weight: number; dist: PredictedDistribution }[] = [];
  const push = (w: number, x: PredictedDistribution): void => {
    if (x.kind === 'mixture') for (const p of x.parts) push(w * p.weight, p.dist);
    else if (x.kind === 'discrete') {
      const W = x.weights.reduce((a, b) => a + b, 0) || 1;
      x.values.forEach((v, i) => parts.push({ weight: (w * x.weights[i]!) / W, dist: pointDist(v) }));
    } else parts.push({ weight: w, dist: x });
  };
  push(1, d);
  const stats = parts.map((p) => {
    const m = momentsOf(p.dist) ?? { mean: 0, meanSquare: 0 };
    return { ...p, mean: m.mean, sd: Math.sqrt(Math.max(0, m.meanSquare - m.mean * m.mean)) };
  });
  const top = Math.max(...stats.map((s) => s.mean + 4 * s.sd));
  let masked = 0;
  let fillSum = 0;
  const live: typeof parts = [];
  for (const s of stats) {
    if (s.mean + 10 * s.sd < top - EXP_ZERO || s.mean <= MASK_FILL * 1e3) {
      masked += s.weight;
      fillSum += s.weight * s.mean;
    } else live.push({ weight: s.weight, dist: s.dist });
  }
  return { masked, fill: masked > 0 ? fillSum / masked : 0, live: live.length ? mixtureOf(live) : pointDist(0) };
}

const rowCache = new WeakMap<TensorData, Map<string, Map<number, number> | null>>();

/**
 * Rows of a stored mask added to the logits: share of rows with m unmasked entries along the
 * softmax axis (the mask broadcasts uniformly, so its own rows have the output's shares).
 */
function traceMaskRows(node: Node, axis: number, rank: number, n: number): Map<number, number> | null {
  const producer = node.graph.producerOf(node.inputs[0] ?? '');
  if (!producer || producer.opType !== 'Add') return null;
  for (const name of producer.inputs) {
    const t = name ? producer.graph.constant(name) : null;
    if (!t || t.count > 1 << 24 || t.count === 0) continue;
    const key = `${axis}:${rank}:${n}`;
    let byKey = rowCache.get(t);
    if (!byKey) rowCache.set(t, (byKey = new Map()));
    if (byKey.has(key)) {
      const hit = byKey.get(key)!;
      if (hit) return hit;
      continue;
    }
    const rows = maskRows(t, axis, rank, n);
    byKey.set(key, rows);
    if (rows) return rows;
  }
  return null;
}

function maskRows(t: TensorData, axis: number, rank: number, n: number): Map<number, number> | null {
  const v = t.toFloat64();
  let any = false;
  for (let i = 0; i < v.length; i++) if (v[i]! <= MASK_FILL) any = true;
  if (!any) return null;
  const dims = t.dims;
  const ax = axis - (rank - dims.length);
  const hist = new Map<number, number>();
  if (ax < 0 || dims[ax] === 1) {
    // The mask is constant along the axis: a row is all masked or all live.
    for (let i = 0; i < v.length; i++) {
      const m = v[i]! <= MASK_FILL ? 0 : n;
      hist.set(m, (hist.get(m) ?? 0) + 1 / v.length);
    }
    return hist;
  }
  if (dims[ax] !== n) return null;
  const inner = dims.slice(ax + 1).reduce((a, b) => a * b, 1);
  const outer = dims.slice(0, ax).reduce((a, b) => a * b, 1);
  const rows = outer * inner;
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      let m = 0;
      for (let k = 0; k < n; k++) if (v[(o * n + k) * inner + i]! > MASK_FILL) m++;
      hist.set(m, (hist.get(m) ?? 0) + 1 / rows);
    }
  return hist;
}

/**
 * Laplace-transform tables of a lognormal: for x ~ N(0, s2) and t on a log grid,
 *   L(t) = E[exp(−t·e^x)],  A(t) = E[e^{2x}·exp(−t·e^x)].
 * With S_k a sum of k i.i.d. e^x, E[exp(−tS_k)] = L(t)^k, which gives exact moments of softmax
 * outputs through 1/S² = ∫ t·e^{−tS} dt and ln S = ∫ (e^{−t} − e^{−tS})/t dt.
 */
interface LaplaceTables {
  t: Float64Array;
  L: Float64Array;
  A: Float64Array;
  du: number;
}

const tableCache = new Map<string, LaplaceTables>();

function laplaceTables(s2: number, maxM: number): LaplaceTables {
  const sd = Math.sqrt(s2);
  const lo = -Math.log(Math.max(2, maxM)) - 8 * sd - 12;
  const hi = 8 * sd + 8;
  const key = `${s2}:${Math.round(lo)}`;
  const hit = tableCache.get(key);
  if (hit) return hit;
  const NU = 500;
  const NX = 600;
  const du = (hi - lo) / (NU - 1);
  const t = new Float64Array(NU);
  const L = new Float64Array(NU);
  const A = new Float64Array(NU);
  const hx = (18 * sd) / (NX - 1);
  const ex = new Float64Array(NX);
  const wx = new Float64Array(NX);
  let wsum = 0;
  for (let k = 0; k < NX; k++) {
    const x = -9 * sd + k * hx;
    ex[k] = Math.exp(x);
    wx[k] = Math.exp((-0.5 * (x * x)) / s2) * (k === 0 || k === NX - 1 ? 0.5 : 1);
    wsum += wx[k]!;
  }
  for (let k = 0; k < NX; k++) wx[k] = wx[k]! / wsum;
  for (let i = 0; i < NU; i++) {
    t[i] = Math.exp(lo + i * du);
    let l = 0;
    let a = 0;
    for (let k = 0; k < NX; k++) {
      const e = Math.exp(-t[i]! * ex[k]!);
      l += wx[k]! * e;
      a += wx[k]! * ex[k]! * ex[k]! * e;
    }
    L[i] = l;
    A[i] = a;
  }
  const out = { t, L, A, du };
  if (tableCache.size > 64) tableCache.clear();
  tableCache.set(key, out);
  return out;
}

/** E[p²] for one of m softmax outputs of i.i.d. N(·, s2) logits: ∫ t·A(t)·L(t)^{m−1} dt. */
export function softmaxSecondMoment(m: number, s2: number): number {
  if (m <= 1) return 1;
  if (!(s2 > 1e-12)) return 1 / (m * m);
  const T = laplaceTables(s2, m);
  let acc = 0;
  const n = T.t.length;
  for (let i = 0; i < n; i++) {
    // t = e^u, dt = t·du
    const v = T.t[i]! * T.t[i]! * T.A[i]! * Math.pow(T.L[i]!, m - 1);
    acc += (i === 0 || i === n - 1 ? 0.5 : 1) * v;
  }
  return acc * T.du;
}

/** E[ln Σ_{j≤m} e^{x_j}] − μ for m i.i.d. N(μ, s2) logits: ∫ (e^{−t} − L(t)^m)/t dt. */
function logSumExpOffset(m: number, s2: number): number {
  if (m <= 0) return 0;
  if (!(s2 > 1e-12)) return Math.log(m);
  const T = laplaceTables(s2, m);
  let acc = 0;
  const n = T.t.length;
  for (let i = 0; i < n; i++) {
    const v = Math.exp(-T.t[i]!) - Math.pow(T.L[i]!, m);
    acc += (i === 0 || i === n - 1 ? 0.5 : 1) * v;
  }
  return acc * T.du;
}

/**
 * Law of one softmax probability over m live logits of variance s2: a logit-normal
 * sigmoid(N(c, w²)) whose mean is exactly 1/m and whose second moment is the exact E[p²]
 * (Laplace-transform integral above) — PRIMER §3's e^{σ²}/n² at small σ, right at any σ.
 */
export function softmaxProbLaw(m: number, s2: number): PredictedDistribution {
  if (m <= 1) return pointDist(1);
  if (!(s2 > 1e-12)) return pointDist(1 / m);
  const target = softmaxSecondMoment(m, s2);
  if (!(target > (1 / (m * m)) * (1 + 1e-9))) return pointDist(1 / m);
  const gh = gaussHermite(64);
  const moments = (c: number, w: number): [number, number] => {
    let a = 0;
    let b = 0;
    for (let i = 0; i < gh.x.length; i++) {
      const p = sigmoid(c + w * gh.x[i]!);
      a += gh.w[i]! * p;
      b += gh.w[i]! * p * p;
    }
    return [a, b];
  };
  /** The centre c giving mean 1/m at spread w (the mean grows with c). */
  const centre = (w: number): number => {
    let lo = -Math.log(m) - 12 * w - 20;
    let hi = -Math.log(m) + 12 * w + 20;
    for (let it = 0; it < 70; it++) {
      const mid = (lo + hi) / 2;
      if (moments(mid, w)[0] < 1 / m) lo = mid;
      else hi = mid;
    }
    return (lo + hi) / 2;
  };
  // At a fixed mean, E[p²] grows with the spread w.
  let lo = 0;
  let hi = Math.max(1, 3 * Math.sqrt(s2));
  while (moments(centre(hi), hi)[1] < target && hi < 200) hi *= 2;
  for (let it = 0; it < 50; it++) {
    const mid = (lo + hi) / 2;
    if (moments(centre(mid), mid)[1] < target) lo = mid;
    else hi = mid;
  }
  const w = (lo + hi) / 2;
  return { kind: 'pushforward', mean: centre(w), std: w, fn: sigmoid, label: `softmax(n=${m})` };
}

/** Group counts into at most `max` buckets (geometric), each at its harmonic-mean count. */
function bucketCounts(hist: Map<number, number>, max = 24): Map<number, number> {
  if (hist.size <= max) return hist;
  const out = new Map<number, number>();
  const zero = hist.get(0);
  if (zero) out.set(0, zero);
  const ms = [...hist.keys()].filter((m) => m > 0).sort((a, b) => a - b);
  const lo = Math.log(ms[0]!);
  const hi = Math.log(ms[ms.length - 1]!) + 1e-9;
  const groups = new Map<number, { w: number; inv: number }>();
  for (const m of ms) {
    const g = Math.floor(((Math.log(m) - lo) / (hi - lo)) * (max - 1));
    const cur = groups.get(g) ?? { w: 0, inv: 0 };
    const w = hist.get(m)!;
    cur.w += w;
    cur.inv += w / m;
    groups.set(g, cur);
  }
  for (const { w, inv } of groups.values()) {
    const m = Math.max(1, Math.round(w / inv));
    out.set(m, (out.get(m) ?? 0) + w);
  }
  return out;
}

interface SoftmaxSetup {
  x: Scale;
  n: number;
  split: SplitLogits;
  rows: Map<number, number>;
  s2: number;
  liveMean: number;
  traced: boolean;
}

function setup(ctx: RuleContext): SoftmaxSetup | null {
  const x = ctx.inputs[0];
  if (!x) return null;
  const shape = shapeOf(ctx, 0);
  if (!shape) return null;
  const rank = shape.length;
  const newStyle = ctx.opset >= 13;
  let axis = ctx.attrs.int('axis', newStyle ? -1 : 1)!;
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return null;
  const dims = newStyle ? [shape[axis]] : shape.slice(axis);
  let n = 1;
  for (const d of dims) {
    if (typeof d !== 'number') return null;
    n *= d;
  }
  const split = splitMask(shapeFor(ctx, 0));
  const lm = momentsOf(split.live) ?? { mean: x.mean, meanSquare: x.meanSquare };
  const s2 = Math.max(0, lm.meanSquare - lm.mean * lm.mean);
  let rows: Map<number, number> | null = null;
  if (split.masked > 0 && newStyle) rows = traceMaskRows(ctx.node, axis, rank, n);
  const traced = rows !== null;
  if (!rows) {
    rows = new Map([[Math.max(split.masked < 1 ? 1 : 0, Math.round(n * (1 - split.masked))), 1]]);
  }
  return { x, n, split, rows: bucketCounts(rows), s2, liveMean: lm.mean, traced };
}

function softmax(ctx: RuleContext): (Scale | null)[] {
  const st = setup(ctx);
  if (!st) {
    const x = ctx.inputs[0];
    if (!x) return [null];
    return [makeScale(0, 0, { kind: 'uniform', lo: 0, hi: 1 }, 'unknown', { absmax: 1, note: 'softmax size unknown' })];
  }
  const { n, rows, s2, split } = st;
  const parts: { weight: number; dist: PredictedDistribution }[] = [];
  let ms = 0;
  for (const [m, share] of rows) {
    if (m === 0) {
      // Every logit of the row at the fill: all equal, p = 1/n each.
      parts.push({ weight: share, dist: pointDist(1 / n) });
      ms += share / (n * n);
      continue;
    }
    const law = softmaxProbLaw(m, s2);
    const mm = momentsOf(law)!;
    parts.push({ weight: (share * m) / n, dist: law });
    if (m < n) parts.push({ weight: (share * (n - m)) / n, dist: pointDist(0) });
    // E[p²] over the row's elements: (m/n)·E[p_live²] (masked ones are 0).
    ms += ((share * m) / n) * mm.meanSquare;
  }
  const dist = mixtureOf(parts);
  const zeroShare = parts.filter((p) => p.dist.kind === 'discrete' && (p.dist as { values: number[] }).values[0] === 0).reduce((a, p) => a + p.weight, 0);
  const note =
    split.masked > 0
      ? `softmax over masked logits: ${(zeroShare * 100).toFixed(1)}% exact zeros${st.traced ? ' (unmasked count per row read from the stored mask)' : ''}`
      : undefined;
  // Mean exactly 1/n (each row sums to 1) — PRIMER §3.
  return [makeScale(1 / n, ms, dist, derivedConfidence(st.x), { absmax: 1, fracZero: zeroShare, note: joinNotes(note) })];
}

function logSoftmax(ctx: RuleContext): (Scale | null)[] {
  const st = setup(ctx);
  if (!st) return [ctx.inputs[0] ? makeScale(0, 1, { kind: 'gaussian', mean: 0, std: 1 }, 'unknown', { note: 'softmax size unknown' }) : null];
  const { n, rows, s2, split } = st;
  const parts: { weight: number; dist: PredictedDistribution }[] = [];
  const sd = Math.sqrt(s2);
  for (const [m, share] of rows) {
    if (m === 0) {
      parts.push({ weight: share, dist: pointDist(-Math.log(n)) });
      continue;
    }
    // log p = x − LSE: centred at −E[ln Σ e^{x−μ}] with the logits' spread.
    const c = -logSumExpOffset(m, s2);
    parts.push({ weight: (share * m) / n, dist: sd > 0 ? { kind: 'gaussian', mean: Math.min(0, c), std: sd } : pointDist(Math.min(0, c)) });
    if (m < n) parts.push({ weight: (share * (n - m)) / n, dist: pointDist(split.fill) });
  }
  const dist = mixtureOf(parts);
  const mm = momentsOf(dist)!;
  return [makeScale(mm.mean, mm.meanSquare, dist, derivedConfidence(st.x), { note: split.masked > 0 ? 'log-softmax over masked logits' : undefined })];
}

// ---------------------------------------------------------------------------------------------
// Backward

function thirdMoment(d: PredictedDistribution): number {
  let s = 0;
  for (const q of nodesOf(d, 32)) s += q.w * q.x * q.x * q.x;
  return s;
}

function softmaxBackward(ctx: BackwardContext): (Scale | null)[] {
  const g = ctx.outputGrads[0];
  const p = ctx.outputs[0];
  if (!g || !p) return [null];
  const shape = shapeOf(ctx, 0);
  let axis = ctx.attrs.int('axis', ctx.opset >= 13 ? -1 : 1)!;
  if (shape && axis < 0) axis += shape.length;
  const nd = shape?.[axis];
  const n = typeof nd === 'number' ? nd : 1 / Math.max(p.mean, 1e-30);
  // ∂x_i = p_i(g_i − Σ_j p_j g_j): E[∂x²] = E[g²]·(E[p²](1 + n·E[p²]) − 2E[p³]) for i.i.d. g.
  const e3 = thirdMoment(p.dist);
  const v = p.meanSquare * (1 + n * p.meanSquare) - 2 * e3;
  return [gradScale(g.meanSquare * Math.max(v, 0), 'medium', p.fracZero ?? 0)];
}

function logSoftmaxBackward(ctx: BackwardContext): (Scale | null)[] {
  const g = ctx.outputGrads[0];
  if (!g) return [null];
  const shape = shapeOf(ctx, 0);
  let axis = ctx.attrs.int('axis', ctx.opset >= 13 ? -1 : 1)!;
  if (shape && axis < 0) axis += shape.length;
  const nd = shape?.[axis];
  const n = typeof nd === 'number' ? nd : 1;
  // ∂x = g − p·Σg; with p ≈ softmax of the same logits, E[∂x²] ≈ E[g²](1 − 2/n + n·E[p²]).
  const x = ctx.inputs[0];
  const s2 = x ? Math.max(0, x.meanSquare - x.mean * x.mean) : 0;
  const ep2 = Math.exp(Math.min(s2, 50)) / (n * n);
  return [gradScale(g.meanSquare * Math.max(0, 1 - 2 / n + n * ep2))];
}

export const rules: RuleTable = {
  Softmax: { forward: softmax, backward: softmaxBackward },
  LogSoftmax: { forward: logSoftmax, backward: logSoftmaxBackward },
};
