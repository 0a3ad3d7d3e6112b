/**
 * Normalisations: LayerNormalization, RMSNormalization, BatchNormalization (inference),
 * InstanceNormalization, GroupNormalization, LpNormalization, MeanVarianceNormalization, and the
 * com.microsoft SimplifiedLayerNormalization / SkipLayerNormalization / SkipSimplifiedLayerNormalization.
 *
 * PRIMER §3: the normalised part ẑ = (x − mean_row)/√(var_row + ε) has mean 0 and
 * E[ẑ²] = v/(v + ε) with v = σ²(K−1)/K the expected row variance (so a tiny input stays tiny when
 * ε dominates); then y = γ·ẑ + β per channel gives E[y] = mean(β), E[y²] = mean(γ²)·E[ẑ²] + mean(β²)
 * from the real γ, β, and the law of y is the mixture over channels of γ_c·ẑ + β_c.
 * BatchNormalization (inference) is the affine map a_c·x + b_c, a_c = γ_c/√(var_c+ε),
 * b_c = β_c − a_c·mean_c, per channel: E[y²] = E[x²]·mean(a²) + 2μ·mean(ab) + mean(b²).
 * PRIMER §4: LayerNorm ∂x ≈ g·γ/σ_x; ∂γ = Σ_rows g·ẑ; ∂β = Σ_rows g.
 */
import type { Dim } from '../../onnx/model.js';
import { affineDist, gaussianOf, mixtureOf, momentsOf, scaleDist, sumDist } from '../dist.js';
import {
  constArray,
  countOf,
  derivedConfidence,
  gradScale,
  knownProduct,
  makeScale,
  shapeFor,
  shapeOf,
} from '../helpers.js';
import type { PredictedDistribution, Scale } from '../scale.js';
import type { BackwardContext, RuleContext, RuleTable } from './types.js';

/** Per-channel affine pairs (a_c, b_c) as the law of y = a·z + b over channels. */
function channelMixture(z: PredictedDistribution, a: ArrayLike<number>, b: ArrayLike<number> | null, maxParts = 24): PredictedDistribution {
  const n = a.length;
  const pairs: [number, number][] = [];
  for (let c = 0; c < n; c++) pairs.push([a[c]!, b ? b[c % b.length]! : 0]);
  const distinct = new Map<string, { a: number; b: number; w: number }>();
  for (const [x, y] of pairs) {
    const k = `${x},${y}`;
    const cur = distinct.get(k);
    if (cur) cur.w += 1 / n;
    else distinct.set(k, { a: x, b: y, w: 1 / n });
  }
  if (distinct.size <= maxParts) {
    return mixtureOf([...distinct.values()].map((p) => ({ weight: p.w, dist: affineDist(z, p.a, p.b) })));
  }
  // Buckets of channels sorted by |a|: each keeps its RMS gain, its mean shift and its shift spread.
  pairs.sort((p, q) => Math.abs(p[0]) - Math.abs(q[0]));
  const zm = momentsOf(z) ?? { mean: 0, meanSquare: 1 };
  const parts: { weight: number; dist: PredictedDistribution }[] = [];
  for (let k = 0; k < maxParts; k++) {
    const lo = Math.floor((k * n) / maxParts);
    const hi = Math.floor(((k + 1) * n) / maxParts);
    if (hi <= lo) continue;
    let a2 = 0;
    let am = 0;
    let bm = 0;
    let b2 = 0;
    for (let i = lo; i < hi; i++) {
      a2 += pairs[i]![0] ** 2;
      am += pairs[i]![0];
      bm += pairs[i]![1];
      b2 += pairs[i]![1] ** 2;
    }
    const m = hi - lo;
    const gain = Math.sqrt(a2 / m) * (am < 0 ? -1 : 1);
    const shift = bm / m;
    const spread = Math.max(0, b2 / m - shift * shift);
    let d = affineDist(z, gain, shift);
    if (spread > 0) {
      const dm = { mean: gain * zm.mean + shift, meanSquare: gain * gain * zm.meanSquare + 2 * gain * zm.mean * shift + shift * shift };
      d = sumDist(d, gaussianOf(0, spread), dm, { mean: 0, meanSquare: spread });
    }
    parts.push({ weight: m / n, dist: d });
  }
  return mixtureOf(parts);
}

interface AffineParams {
  /** Gains per channel (γ); null when not stored (then moments only). */
  gamma: ArrayLike<number> | null;
  beta: ArrayLike<number> | null;
  /** Moments of γ and β (from their scales when not stored). */
  g2: number;
  gMean: number;
  bMean: number;
  b2: number;
  gAbsMax: number | null;
  bAbsMax: number | null;
}

function affineParams(ctx: RuleContext, gi: number, bi: number | null): AffineParams {
  const gs = ctx.inputs[gi] ?? null;
  const bs = bi !== null ? (ctx.inputs[bi] ?? null) : null;
  const gamma = gs ? constArray(ctx, gi) : null;
  const beta = bs && bi !== null ? constArray(ctx, bi) : null;
  return {
    gamma,
    beta,
    g2: gs ? gs.meanSquare : 1,
    gMean: gs ? gs.mean : 1,
    bMean: bs ? bs.mean : 0,
    b2: bs ? bs.meanSquare : 0,
    gAbsMax: gs ? gs.absmax : 1,
    bAbsMax: bs ? bs.absmax : 0,
  };
}

/**
 * y = γ·ẑ + β with ẑ of law z (mean 0, E[ẑ²] = r2): moments from the real γ, β (PRIMER §3).
 */
function normalisedOutput(z: PredictedDistribution, zMean: number, r2: number, p: AffineParams, bound: number | null, conf: Scale['confidence']): Scale {
  // E[y] = mean(γ)·E[ẑ] + mean(β);  E[y²] = mean(γ²)·E[ẑ²] + 2·mean(γβ)·E[ẑ] + mean(β²)
  const mean = p.gMean * zMean + p.bMean;
  const ms = p.g2 * r2 + 2 * p.gMean * p.bMean * zMean + p.b2;
  let dist: PredictedDistribution;
  if (p.gamma) dist = channelMixture(z, p.gamma, p.beta);
  else dist = sumDist(scaleDist(z, Math.sqrt(p.g2)), gaussianOf(p.bMean, p.b2), { mean: 0, meanSquare: p.g2 * r2 }, { mean: p.bMean, meanSquare: p.b2 });
  let absmax: number | null = null;
  if (bound !== null && p.gAbsMax !== null && p.bAbsMax !== null) {
    if (p.gamma) {
      absmax = 0;
      for (let c = 0; c < p.gamma.length; c++) absmax = Math.max(absmax, Math.abs(p.gamma[c]!) * bound + (p.beta ? Math.abs(p.beta[c % p.beta.length]!) : 0));
    } else absmax = p.gAbsMax * bound + p.bAbsMax;
  }
  return makeScale(mean, ms, dist, conf, { absmax });
}

/** Law of the standardised input: (x − μ)/σ·r (the input's own shape, rescaled). */
function standardised(d: PredictedDistribution, x: Scale, r: number, centre: boolean): PredictedDistribution {
  const sd = Math.sqrt(Math.max(0, x.meanSquare - x.mean * x.mean));
  if (!(sd > 0)) return { kind: 'discrete', values: [0], weights: [1] };
  return centre ? affineDist(d, r / sd, (-x.mean * r) / sd) : scaleDist(d, r / Math.sqrt(x.meanSquare));
}

function axisOf(ctx: RuleContext, fallback: number): { rank: number; axis: number } | null {
  const s = shapeOf(ctx, 0);
  if (!s) return null;
  let axis = ctx.attrs.int('axis', fallback)!;
  if (axis < 0) axis += s.length;
  return { rank: s.length, axis };
}

function tail(s: Dim[] | null, from: number): number | null {
  return s ? knownProduct(s.slice(from)) : null;
}

/** LayerNorm-style (centre = true) or RMSNorm-style (centre = false) over the trailing axes. */
function rowNorm(ctx: RuleContext, x: Scale, xd: PredictedDistribution, K: number | null, eps: number, centre: boolean, gi: number, bi: number | null): Scale {
  const varX = Math.max(0, x.meanSquare - x.mean * x.mean);
  let r2: number;
  let zMean = 0;
  if (centre) {
    const v = K ? (varX * (K - 1)) / K : varX;
    r2 = v / (v + eps);
  } else {
    // ẑ = x/√(mean_row(x²) + ε): E[ẑ²] = m2/(m2 + ε), E[ẑ] = μ/√(m2 + ε).
    r2 = x.meanSquare / (x.meanSquare + eps);
    zMean = x.mean / Math.sqrt(x.meanSquare + eps);
  }
  const z = standardised(xd, x, Math.sqrt(r2), centre);
  // |ẑ| ≤ √(K−1) (centred) or √K: a row with one outlier.
  const bound = K ? Math.sqrt(centre ? K - 1 : K) * Math.sqrt(r2) : null;
  return normalisedOutput(z, zMean, r2, affineParams(ctx, gi, bi), bound, derivedConfidence(x));
}

function layerNorm(ctx: RuleContext): (Scale | null)[] {
  const x = ctx.inputs[0];
  if (!x) return [null, null, null];
  const ax = axisOf(ctx, -1);
  const K = ax ? tail(shapeOf(ctx, 0), ax.axis) : null;
  const eps = ctx.attrs.float('epsilon', 1e-5)!;
  const y = rowNorm(ctx, x, shapeFor(ctx, 0), K, eps, true, 1, 2);
  return [y, ...rowStats(x, K, eps)];
}

/** Optional Mean and InvStdDev outputs: the row mean (μ, σ²/K) and 1/√(v+ε). */
function rowStats(x: Scale, K: number | null, eps: number): (Scale | null)[] {
  const varX = Math.max(0, x.meanSquare - x.mean * x.mean);
  const n = K ?? 1;
  const meanRow = makeScale(x.mean, x.mean * x.mean + varX / n, gaussianOf(x.mean, x.mean * x.mean + varX / n), derivedConfidence(x));
  const inv = 1 / Math.sqrt((varX * (n - 1)) / n + eps);
  const invStd = makeScale(inv, inv * inv, { kind: 'discrete', values: [inv], weights: [1] }, 'medium');
  return [meanRow, invStd];
}

function rmsNorm(ctx: RuleContext): (Scale | null)[] {
  const x = ctx.inputs[0];
  if (!x) return [null];
  const ax = axisOf(ctx, -1);
  const K = ax ? tail(shapeOf(ctx, 0), ax.axis) : null;
  const eps = ctx.attrs.float('epsilon', 1e-5)!;
  return [rowNorm(ctx, x, shapeFor(ctx, 0), K, eps, false, 1, null)];
}

/** SkipLayerNormalization(input, skip, gamma, beta?, bias?) and the simplified (RMS) variant. */
function skipNorm(ctx: RuleContext, centre: boolean): (Scale | null)[] {
  const a = ctx.inputs[0];
  const b = ctx.inputs[1];
  if (!a || !b) return [null];
  const biasIdx = centre ? 4 : 3;
  const bias = ctx.inputs[biasIdx] ?? null;
  let mean = a.mean + b.mean;
  let ms = a.meanSquare + b.meanSquare + 2 * a.mean * b.mean;
  let d = sumDist(shapeFor(ctx, 0), shapeFor(ctx, 1), a, b);
  if (bias) {
    d = sumDist(d, shapeFor(ctx, biasIdx), { mean, meanSquare: ms }, bias);
    ms += bias.meanSquare + 2 * mean * bias.mean;
    mean += bias.mean;
  }
  const sum = makeScale(mean, ms, d, derivedConfidence(a, b, bias));
  const s = shapeOf(ctx, 0);
  const K = s && s.length ? tail(s, s.length - 1) : null;
  const eps = ctx.attrs.float('epsilon', 1e-12)!;
  const y = rowNorm(ctx, sum, d, K, eps, centre, 2, centre ? 3 : null);
  const [m, inv] = rowStats(sum, K, eps);
  return [y, m!, inv!, sum];
}

/** Channels on axis 1, normalised over the spatial axes (Instance) or over groups (Group). */
function channelNorm(ctx: RuleContext, K: number | null, eps: number): Scale | null {
  const x = ctx.inputs[0];
  if (!x) return null;
  const varX = Math.max(0, x.meanSquare - x.mean * x.mean);
  const v = K ? (varX * (K - 1)) / K : varX;
  const r2 = v / (v + eps);
  const z = standardised(shapeFor(ctx, 0), x, Math.sqrt(r2), true);
  const bound = K ? Math.sqrt(K - 1) * Math.sqrt(r2) : null;
  return normalisedOutput(z, 0, r2, affineParams(ctx, 1, 2), bound, derivedConfidence(x));
}

function instanceNorm(ctx: RuleContext): (Scale | null)[] {
  const s = shapeOf(ctx, 0);
  const K = s ? tail(s, 2) : null;
  return [channelNorm(ctx, K, ctx.attrs.float('epsilon', 1e-5)!)];
}

function groupNorm(ctx: RuleContext): (Scale | null)[] {
  const s = shapeOf(ctx, 0);
  const G = ctx.attrs.int('num_groups', 1)!;
  const C = s && typeof s[1] === 'number' ? s[1] : null;
  const spatial = s ? tail(s, 2) : null;
  const K = C !== null && spatial !== null ? (C / G) * spatial : null;
  return [channelNorm(ctx, K, ctx.attrs.float('epsilon', 1e-5)!)];
}

function batchNorm(ctx: RuleContext): (Scale | null)[] {
  const x = ctx.inputs[0];
  if (!x) return [null];
  const eps = ctx.attrs.float('epsilon', 1e-5)!;
  const gamma = constArray(ctx, 1);
  const beta = constArray(ctx, 2);
  const mu = constArray(ctx, 3);
  const v = constArray(ctx, 4);
  const training = ctx.attrs.int('training_mode', 0)! !== 0;
  if (training || !gamma || !beta || !mu || !v) {
    // Batch statistics (training) or unknown parameters: behaves like a normalisation per channel.
    const s = shapeOf(ctx, 0);
    const K = s ? knownProduct([s[0] ?? null, ...s.slice(2)]) : null;
    const out = channelNorm(ctx, K, eps);
    if (out && !training) out.confidence = 'low';
    return [out];
  }
  const C = gamma.length;
  const a = new Float64Array(C);
  const b = new Float64Array(C);
  let a2 = 0;
  let am = 0;
  let ab = 0;
  let bm = 0;
  let b2 = 0;
  for (let c = 0; c < C; c++) {
    a[c] = gamma[c]! / Math.sqrt(v[c % v.length]! + eps);
    b[c] = beta[c % beta.length]! - a[c]! * mu[c % mu.length]!;
    a2 += a[c]! ** 2 / C;
    am += a[c]! / C;
    ab += (a[c]! * b[c]!) / C;
    bm += b[c]! / C;
    b2 += b[c]! ** 2 / C;
  }
  // Per channel y = a_c·x + b_c (PRIMER §3, BatchNorm inference).
  const mean = x.mean * am + bm;
  const ms = x.meanSquare * a2 + 2 * x.mean * ab + b2;
  const dist = channelMixture(shapeFor(ctx, 0), a, b);
  let absmax: number | null = null;
  if (x.absmax !== null) {
    absmax = 0;
    for (let c = 0; c < C; c++) absmax = Math.max(absmax, Math.abs(a[c]!) * x.absmax + Math.abs(b[c]!));
  }
  return [makeScale(mean, ms, dist, derivedConfidence(x), { absmax })];
}

function lpNorm(ctx: RuleContext): (Scale | null)[] {
  const x = ctx.inputs[0];
  if (!x) return [null];
  const s = shapeOf(ctx, 0);
  let axis = ctx.attrs.int('axis', -1)!;
  if (s && axis < 0) axis += s.length;
  const K = s && typeof s[axis] === 'number' ? (s[axis] as number) : null;
  const p = ctx.attrs.int('p', 2)!;
  if (!K) return [makeScale(0, 0, gaussianOf(0, 0), 'unknown', { note: 'LpNormalization size unknown' })];
  // y = x/‖x‖_p: for p = 2, ‖x‖² ≈ K·E[x²], so y = x/√(K·E[x²]); p = 1: ‖x‖₁ ≈ K·E|x|.
  const norm = p === 1 ? K * Math.sqrt((2 / Math.PI) * x.meanSquare) : Math.sqrt(K * x.meanSquare);
  const c = norm > 0 ? 1 / norm : 0;
  return [makeScale(x.mean * c, x.meanSquare * c * c, scaleDist(shapeFor(ctx, 0), c), derivedConfidence(x), { absmax: 1 })];
}

function mvn(ctx: RuleContext): (Scale | null)[] {
  const x = ctx.inputs[0];
  if (!x) return [null];
  const z = standardised(shapeFor(ctx, 0), x, 1, true);
  return [makeScale(0, 1, z, derivedConfidence(x))];
}

// ---------------------------------------------------------------------------------------------
// Backward

function rows(ctx: RuleContext, K: number | null): number {
  const n = countOf(ctx, 0);
  return n !== null && K ? n / K : 1;
}

/** ∂x ≈ g·γ/σ_x; ∂γ = Σ_rows g·ẑ; ∂β = Σ_rows g   (PRIMER §4). */
function normBackward(ctx: BackwardContext, K: number | null, eps: number, centre: boolean, gi: number, bi: number | null): (Scale | null)[] {
  const g = ctx.outputGrads[0];
  const x = ctx.inputs[0];
  const out: (Scale | null)[] = ctx.inputs.map(() => null);
  if (!g || !x) return out;
  const G = g.meanSquare;
  const varX = centre ? Math.max(0, x.meanSquare - x.mean * x.mean) : x.meanSquare;
  const gam = ctx.inputs[gi];
  const g2 = gam ? gam.meanSquare : 1;
  out[0] = gradScale((G * g2) / (varX + eps));
  const r2 = varX / (varX + eps);
  const B = rows(ctx, K);
  if (gam) out[gi] = gradScale(B * G * r2);
  if (bi !== null && ctx.inputs[bi]) out[bi] = gradScale(B * G);
  return out;
}

function lnBackward(ctx: BackwardContext): (Scale | null)[] {
  const ax = axisOf(ctx, -1);
  const K = ax ? tail(shapeOf(ctx, 0), ax.axis) : null;
  return normBackward(ctx, K, ctx.attrs.float('epsilon', 1e-5)!, true, 1, 2);
}

function rmsBackward(ctx: BackwardContext): (Scale | null)[] {
  const ax = axisOf(ctx, -1);
  const K = ax ? tail(shapeOf(ctx, 0), ax.axis) : null;
  return normBackward(ctx, K, ctx.attrs.float('epsilon', 1e-5)!, false, 1, null);
}

function channelBackward(ctx: BackwardContext): (Scale | null)[] {
  const s = shapeOf(ctx, 0);
  const C = s && typeof s[1] === 'number' ? s[1] : null;
  const n = countOf(ctx, 0);
  const K = n !== null && C ? n / C : null;
  return normBackward(ctx, K, ctx.attrs.float('epsilon', 1e-5)!, true, 1, 2);
}

function bnBackward(ctx: BackwardContext): (Scale | null)[] {
  const g = ctx.outputGrads[0];
  const x = ctx.inputs[0];
  const out: (Scale | null)[] = ctx.inputs.map(() => null);
  if (!g || !x) return out;
  const gamma = constArray(ctx, 1);
  const v = constArray(ctx, 4);
  const eps = ctx.attrs.float('epsilon', 1e-5)!;
  if (!gamma || !v) return channelBackward(ctx);
  let a2 = 0;
  let inv = 0;
  for (let c = 0; c < gamma.length; c++) {
    a2 += gamma[c]! ** 2 / (v[c % v.length]! + eps) / gamma.length;
    inv += 1 / (v[c % v.length]! + eps) / gamma.length;
  }
  const n = countOf(ctx, 0);
  const B = n !== null ? n / gamma.length : 1;
  // Inference BN is affine per channel: ∂x = g·a_c; ∂γ = Σ g·x̂; ∂β = Σ g.
  out[0] = gradScale(g.meanSquare * a2);
  out[1] = gradScale(B * g.meanSquare * x.meanSquare * inv);
  out[2] = gradScale(B * g.meanSquare);
  return out;
}

function skipBackward(ctx: BackwardContext, centre: boolean): (Scale | null)[] {
  const g = ctx.outputGrads[0];
  const a = ctx.inputs[0];
  const b = ctx.inputs[1];
  const out: (Scale | null)[] = ctx.inputs.map(() => null);
  if (!g || !a || !b) return out;
  const sum = ctx.outputs[3];
  const ms = sum ? sum.meanSquare : a.meanSquare + b.meanSquare;
  const mean = sum ? sum.mean : a.mean + b.mean;
  const v = centre ? Math.max(0, ms - mean * mean) : ms;
  const eps = ctx.attrs.float('epsilon', 1e-12)!;
  const gam = ctx.inputs[2];
  const dx = gradScale((g.meanSquare * (gam ? gam.meanSquare : 1)) / (v + eps));
  const extra = ctx.outputGrads[3];
  const dsum = extra ? gradScale(dx.meanSquare + extra.meanSquare) : dx;
  out[0] = dsum;
  out[1] = dsum;
  const s = shapeOf(ctx, 0);
  const K = s && s.length ? tail(s, s.length - 1) : null;
  const B = rows(ctx, K);
  if (gam) out[2] = gradScale(B * g.meanSquare * (v / (v + eps)));
  if (centre && ctx.inputs[3]) out[3] = gradScale(B * g.meanSquare);
  return out;
}

export const rules: RuleTable = {
  LayerNormalization: { forward: layerNorm, backward: lnBackward },
  RMSNormalization: { forward: rmsNorm, backward: rmsBackward },
  SimplifiedLayerNormalization: { forward: rmsNorm, backward: rmsBackward },
  SkipLayerNormalization: { forward: (ctx) => skipNorm(ctx, true), backward: (ctx) => skipBackward(ctx, true) },
  SkipSimplifiedLayerNormalization: { forward: (ctx) => skipNorm(ctx, false), backward: (ctx) => skipBackward(ctx, false) },
  BatchNormalization: { forward: batchNorm, backward: bnBackward },
  InstanceNormalization: { forward: instanceNorm, backward: channelBackward },
  GroupNormalization: { forward: groupNorm, backward: channelBackward },
  LpNormalization: { forward: lpNorm },
  MeanVarianceNormalization: { forward: mvn },
};
