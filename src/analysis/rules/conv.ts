/**
 * Conv and ConvTranspose.
 *
 * PRIMER §3: a convolution is a matmul whose fan-in is K = C_in/groups × kernel volume, lowered at
 * the borders by padding. We count, exactly from the shapes, which kernel taps fall inside the
 * input for every output position (per spatial axis: strides, dilations, pads, auto_pad; the
 * patterns of all axes combine as a product), and for each such pattern T use the stored weights:
 *   E[y²] = σ²·mean_m Σ_{c, j∈T} w²_mcj + μ²·mean_m (Σ_{c, j∈T} w_mcj)²,  E[y] = μ·mean_m Σ_{c,j∈T} w_mcj,
 * averaged over the patterns with their share of output positions (x i.i.d. with mean μ, variance σ²).
 * ConvTranspose is the same with the taps that reach each output position.
 * PRIMER §4: every input element takes part in (outputs × K_eff / its count) products:
 * E[∂x²] = that · E[g²]E[w²]; likewise E[∂W²] = (outputs × K_eff / |W|)·E[x²]E[g²].
 * A coherent output gradient (the gradient of a global pool: the same at every position,
 * coherence.ts) sums coherently in ∂W against the input's per-channel means, and keeps its
 * structure through ∂x (coherentConvBackward).
 */
import type { Dim } from '../../onnx/model.js';
import { gaussianOf, sumDist } from '../dist.js';
import {
  constArray,
  constSource,
  countOf,
  derivedConfidence,
  gradScale,
  knownProduct,
  makeScale,
  outShapeOf,
  shapeFor,
  shapeOf,
  type ConstSource,
} from '../helpers.js';
import { coherenceOf, constantPart, gradParts, meanPower, summedPower, withCoherence } from '../coherence.js';
import type { Scale } from '../scale.js';
import type { BackwardContext, RuleContext, RuleTable } from './types.js';

interface AxisGeom {
  /** Input size along the axis (null: unknown → every tap counted valid). */
  inSize: number | null;
  outSize: number | null;
  kernel: number;
  stride: number;
  dilation: number;
  padBegin: number;
}

/**
 * Histogram over the output positions of one axis of which kernel taps fall inside the input:
 * key (the valid taps, listed) → { taps, share }. Any kernel size (a 1-D STFT basis has 256+ taps).
 */
function axisPatterns(g: AxisGeom, transpose: boolean): Map<string, { taps: number[]; share: number }> {
  const all = Array.from({ length: g.kernel }, (_, j) => j);
  if (g.inSize === null || g.outSize === null || g.outSize <= 0) {
    if (!transpose) return new Map([['all', { taps: all, share: 1 }]]);
    // Transposed without sizes: on average kernel/stride taps reach a position; approximate by a
    // pattern of that many taps.
    const k = Math.max(1, Math.round(g.kernel / g.stride));
    return new Map([['avg', { taps: all.slice(0, k), share: 1 }]]);
  }
  const hist = new Map<string, { taps: number[]; share: number }>();
  for (let o = 0; o < g.outSize; o++) {
    const taps: number[] = [];
    for (let j = 0; j < g.kernel; j++) {
      if (!transpose) {
        const i = o * g.stride - g.padBegin + j * g.dilation;
        if (i >= 0 && i < g.inSize) taps.push(j);
      } else {
        const t = o + g.padBegin - j * g.dilation;
        if (t % g.stride === 0) {
          const i = t / g.stride;
          if (i >= 0 && i < g.inSize) taps.push(j);
        }
      }
    }
    const key = taps.join(',');
    const h = hist.get(key);
    if (h) h.share += 1 / g.outSize;
    else hist.set(key, { taps, share: 1 / g.outSize });
  }
  return hist;
}

/** Geometry of every spatial axis from attributes and shapes (Conv and ConvTranspose). */
function geometry(ctx: RuleContext, kernel: number[], transpose: boolean): AxisGeom[] {
  const n = kernel.length;
  const xs = shapeOf(ctx, 0);
  const ys = outShapeOf(ctx, 0);
  const strides = ctx.attrs.ints('strides') ?? new Array(n).fill(1);
  const dil = ctx.attrs.ints('dilations') ?? new Array(n).fill(1);
  const pads = ctx.attrs.ints('pads') ?? new Array(2 * n).fill(0);
  const autoPad = ctx.attrs.string('auto_pad', 'NOTSET') ?? 'NOTSET';
  const outPad = ctx.attrs.ints('output_padding') ?? new Array(n).fill(0);
  const num = (d: Dim | undefined): number | null => (typeof d === 'number' ? d : null);
  const out: AxisGeom[] = [];
  for (let a = 0; a < n; a++) {
    const I = num(xs?.[2 + a]);
    const k = kernel[a]!;
    const s = strides[a] ?? 1;
    const d = dil[a] ?? 1;
    let pb = pads[a] ?? 0;
    let pe = pads[a + n] ?? 0;
    let O = num(ys?.[2 + a]);
    const span = d * (k - 1) + 1;
    if (!transpose) {
      if (autoPad === 'VALID') pb = pe = 0;
      if ((autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') && I !== null) {
        const o = Math.ceil(I / s);
        const total = Math.max(0, (o - 1) * s + span - I);
        pb = autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
        pe = total - pb;
      }
      if (O === null && I !== null) O = Math.floor((I + pb + pe - span) / s) + 1;
    } else {
      if (O === null && I !== null) {
        const given = ctx.attrs.ints('output_shape');
        O = given ? given[a]! : s * (I - 1) + (outPad[a] ?? 0) + span - pb - pe;
      }
      if ((autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') && I !== null && O !== null) {
        const total = Math.max(0, s * (I - 1) + (outPad[a] ?? 0) + span - O);
        pb = autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
      }
    }
    // Positions are enumerated one by one below. Along an axis far longer than the kernel the
    // borders are a vanishing share, so such an axis (or an absurd, corrupted one) is treated
    // as unknown: every tap counted valid, which is its limit.
    const huge = (x: number | null) => x !== null && (!Number.isSafeInteger(x) || x > MAX_ENUMERATED_TAPS / Math.max(1, k));
    if (huge(I) || huge(O)) out.push({ inSize: null, outSize: null, kernel: k, stride: s, dilation: d, padBegin: pb });
    else out.push({ inSize: I, outSize: O, kernel: k, stride: s, dilation: d, padBegin: pb });
  }
  return out;
}

/** Combined patterns over all axes: list of {taps (flat kernel indices), share}. */
function combinedPatterns(geoms: AxisGeom[], transpose: boolean): { taps: number[]; share: number }[] {
  let acc: { taps: number[]; share: number }[] = [{ taps: [0], share: 1 }];
  for (let a = 0; a < geoms.length; a++) {
    const g = geoms[a]!;
    const hist = axisPatterns(g, transpose);
    const next: { taps: number[]; share: number }[] = [];
    for (const p of acc)
      for (const h of hist.values()) {
        const taps: number[] = [];
        for (const t of p.taps) for (const j of h.taps) taps.push(t * g.kernel + j);
        next.push({ taps, share: p.share * h.share });
      }
    acc = next;
  }
  return acc;
}

/**
 * Output positions grouped by which kernel taps fall inside the input (flat kernel indices), with
 * their share of the positions, for a Conv (or ConvTranspose) node; null if the kernel is unknown.
 */
export function convTapPatterns(ctx: RuleContext, transpose: boolean): { taps: number[]; share: number }[] | null {
  const src = constSource(ctx, 1);
  const ws = src?.dims ?? shapeOf(ctx, 1)?.map((d) => (typeof d === 'number' ? d : null));
  if (!ws || ws.length < 3 || ws.some((d) => d === null)) return null;
  const kernel = ctx.attrs.ints('kernel_shape') ?? (ws as number[]).slice(2);
  const geoms = geometry(ctx, kernel, transpose);
  // A kernel no real model has (corrupted dims) is left unknown rather than enumerated.
  const absurd = (g: AxisGeom) => !Number.isSafeInteger(g.kernel) || g.kernel > MAX_ENUMERATED_TAPS;
  if (geoms.some(absurd) || geoms.reduce((a, g) => a * g.kernel, 1) > MAX_ENUMERATED_TAPS) return null;
  return combinedPatterns(geoms, transpose);
}

/** Most taps (output positions × kernel size, per axis; kernel volume overall) enumerated exactly. */
const MAX_ENUMERATED_TAPS = 1 << 24;

interface TapStats {
  /** Per output channel m and flat tap j: Σ over the input channels of its group of w. */
  sums: Float64Array;
  /** Per tap j: mean over output channels of Σ_c w². */
  energy: Float64Array;
  outChannels: number;
  kvol: number;
  maxAbsSum: number;
}

const tapCache = new WeakMap<object, TapStats>();

/**
 * Per-tap sums of the stored kernel. Conv: W [M, C/g, k…]. ConvTranspose: W [C, M/g, k…], output
 * channel m = group·(M/g) + m', summing over the C/g input channels of that group.
 */
function tapStats(src: ConstSource, transpose: boolean, group: number): TapStats {
  const hit = tapCache.get(src);
  if (hit) return hit;
  const dims = src.dims;
  const kvol = dims.slice(2).reduce((a, b) => a * b, 1);
  const d0 = dims[0]!;
  const d1 = dims[1]!;
  const M = transpose ? d1 * group : d0;
  const sums = new Float64Array(M * kvol);
  const sq = new Float64Array(kvol);
  const abs = new Float64Array(M);
  let offset = 0;
  const feed = (chunk: ArrayLike<number>): void => {
    for (let q = 0; q < chunk.length; q++) {
      const i = offset + q;
      const w = chunk[i - offset]!;
      if (!Number.isFinite(w)) continue;
      const j = i % kvol;
      const r = Math.floor(i / kvol);
      const a = Math.floor(r / d1);
      const b = r % d1;
      const m = transpose ? Math.floor(a / (d0 / group)) * d1 + b : a;
      sums[m * kvol + j]! += w;
      sq[j]! += w * w;
      abs[m]! += Math.abs(w);
    }
    offset += chunk.length;
  };
  if ('chunks' in src) for (const c of src.chunks()) feed(c);
  else feed(src.data);
  for (let j = 0; j < kvol; j++) sq[j] = sq[j]! / M;
  let maxAbsSum = 0;
  for (let m = 0; m < M; m++) maxAbsSum = Math.max(maxAbsSum, abs[m]!);
  const out = { sums, energy: sq, outChannels: M, kvol, maxAbsSum };
  tapCache.set(src, out);
  return out;
}

interface ConvMoments {
  mean: number;
  meanSquare: number;
  /** Average effective fan-in (input channels × valid taps). */
  kEff: number;
  maxAbsSum: number | null;
}

function convMoments(ctx: RuleContext, transpose: boolean, bias: ArrayLike<number> | null = null): ConvMoments | null {
  const x = ctx.inputs[0];
  const w = ctx.inputs[1];
  if (!x || !w) return null;
  const wsrc = constSource(ctx, 1);
  const ws = wsrc?.dims ?? (shapeOf(ctx, 1)?.map((d) => (typeof d === 'number' ? d : null)) as (number | null)[] | undefined);
  if (!ws || ws.length < 3 || ws.some((d) => d === null)) return null;
  const wd = ws as number[];
  const group = ctx.attrs.int('group', 1)!;
  const kernel = ctx.attrs.ints('kernel_shape') ?? wd.slice(2);
  const cPerGroup = transpose ? wd[0]! / group : wd[1]!;
  const patterns = combinedPatterns(geometry(ctx, kernel, transpose), transpose);
  const varX = Math.max(0, x.meanSquare - x.mean * x.mean);
  let kEff = 0;
  for (const p of patterns) kEff += p.share * cPerGroup * p.taps.length;
  if (!wsrc) {
    // Weights not stored: PRIMER §3 with the effective fan-in.
    const ms = kEff * x.meanSquare * w.meanSquare + kEff * (kEff - 1) * x.mean ** 2 * w.mean ** 2;
    return { mean: kEff * x.mean * w.mean, meanSquare: ms, kEff, maxAbsSum: null };
  }
  const t = tapStats(wsrc, transpose, group);
  let mean = 0;
  let ms = 0;
  for (const p of patterns) {
    let energy = 0;
    for (const j of p.taps) energy += t.energy[j]!;
    let s1 = 0;
    let s2 = 0;
    if (x.mean !== 0 || bias) {
      for (let m = 0; m < t.outChannels; m++) {
        let s = 0;
        for (const j of p.taps) s += t.sums[m * t.kvol + j]!;
        const y = x.mean * s + (bias ? bias[m % bias.length]! : 0);
        s1 += y;
        s2 += y * y;
      }
      s1 /= t.outChannels;
      s2 /= t.outChannels;
    }
    // E[y²] = σ²·Σ_{j∈T} E_j + mean_m((μ·S_m,T + b_m)²)
    ms += p.share * (varX * energy + s2);
    mean += p.share * s1;
  }
  return { mean, meanSquare: ms, kEff, maxAbsSum: t.maxAbsSum };
}

function conv(ctx: RuleContext, transpose: boolean): (Scale | null)[] {
  const x = ctx.inputs[0];
  const w = ctx.inputs[1];
  if (!x || !w) return [null];
  const b = ctx.inputs[2];
  const storedBias = b ? constArray(ctx, 2) : null;
  const m = convMoments(ctx, transpose, storedBias);
  if (!m) return [makeScale(0, 1, gaussianOf(0, 1), 'unknown', { note: `${ctx.node.opType} kernel shape unknown` })];
  let mean = m.mean;
  let ms = m.meanSquare;
  let dist = gaussianOf(mean, ms);
  let absmax = m.maxAbsSum !== null && x.absmax !== null ? m.maxAbsSum * x.absmax : null;
  if (storedBias) {
    let bm = 0;
    for (let i = 0; i < storedBias.length; i++) bm = Math.max(bm, Math.abs(storedBias[i]!));
    absmax = absmax !== null ? absmax + bm : null;
  } else if (b) {
    // Independent per-channel bias: means and variances add (PRIMER §3).
    dist = sumDist(dist, shapeFor(ctx, 2), { mean, meanSquare: ms }, b);
    ms = ms + b.meanSquare + 2 * mean * b.mean;
    mean += b.mean;
    absmax = absmax !== null && b.absmax !== null ? absmax + b.absmax : null;
  }
  return [makeScale(mean, ms, dist, derivedConfidence(x, w, b), { absmax })];
}

function convBackward(ctx: BackwardContext, transpose: boolean): (Scale | null)[] {
  const g = ctx.outputGrads[0];
  const x = ctx.inputs[0];
  const w = ctx.inputs[1];
  const out: (Scale | null)[] = ctx.inputs.map(() => null);
  if (!g || !x || !w) return out;
  const m = convMoments(ctx, transpose);
  const outCount = knownProduct(outShapeOf(ctx, 0));
  if (!m || outCount === null) return out;
  const macs = outCount * m.kEff;
  const nx = countOf(ctx, 0);
  const nw = countOf(ctx, 1);
  // Each element of x (of W) takes part in macs/|x| (macs/|W|) products (PRIMER §4).
  const exact = transpose ? null : inputGradEnergy(ctx);
  if (exact !== null) out[0] = gradScale(exact * g.meanSquare);
  else if (nx) out[0] = gradScale((macs / nx) * g.meanSquare * w.meanSquare);
  if (nw) out[1] = gradScale((macs / nw) * g.meanSquare * x.meanSquare);
  if (ctx.inputs[2]) {
    const nb = countOf(ctx, 2) ?? 1;
    out[2] = gradScale((outCount / nb) * g.meanSquare);
  }
  if (!transpose && coherenceOf(g)) coherentConvBackward(ctx, out);
  return out;
}

/** Per spatial axis and tap: the number of output positions where the tap lands inside the input. */
function validCounts(geo: AxisGeom[]): number[][] | null {
  const out: number[][] = [];
  for (const a of geo) {
    if (a.inSize === null || a.outSize === null) return null;
    const n = new Array<number>(a.kernel).fill(0);
    for (let o = 0; o < a.outSize; o++)
      for (let j = 0; j < a.kernel; j++) {
        const i = o * a.stride - a.padBegin + j * a.dilation;
        if (i >= 0 && i < a.inSize) n[j]!++;
      }
    out.push(n);
  }
  return out;
}

/** Largest weight-count × pattern-count spent on a coherent input gradient. */
const COHERENT_WORK = 5e7;

/**
 * Conv backward with a coherent output gradient g = c + w (coherence.ts; c constant along the
 * axes A of y: spatial and/or batch):
 *  - weight: ∂W[m,c,j] = Σ_{b,o valid for j} g·x. Over the N_j valid positions of tap j, of which
 *    N_{A,j} along A: E[∂W_j²] = N_j·(F·E[x²] + N_{A,j}·C·D_x(N_{A,j})), averaged over taps;
 *  - bias: Σ_{b,o} g = P·(F + P_A·C);
 *  - input, when c is constant along every spatial axis: ∂x_i = Σ_m c_m·S_{mc,T(i)} (+ the
 *    independent part, as before), S the kernel summed over the taps T(i) that reach input position
 *    i. Its power is mean_i Σ_m S²·C and its part constant over positions is
 *    (Σ_m (Σ_j w_j·N_j/P_in)²)·C — each tap reaches N_j of the P_in positions. A 1×1 stride-1
 *    kernel keeps the share as it is along any axes.
 */
function coherentConvBackward(ctx: BackwardContext, out: (Scale | null)[]): void {
  const g = ctx.outputGrads[0]!;
  const x = ctx.inputs[0]!;
  const { G, C, F, axes } = gradParts(g);
  const A = axes.filter((a) => a !== 1);
  const ys = numShapeOf(outShapeOf(ctx, 0));
  const src = constSource(ctx, 1);
  const ws = src?.dims ?? numShapeOf(shapeOf(ctx, 1));
  if (!ys || !ws || ws.length < 3 || A.length === 0) return;
  const kernel = ctx.attrs.ints('kernel_shape') ?? ws.slice(2);
  const geo = geometry(ctx, kernel, false);
  const counts = validCounts(geo);
  if (!counts) return;
  const B = ys[0]!;
  const nsp = kernel.length;
  const spatialA = A.filter((a) => a >= 2).map((a) => a - 2);
  const batchA = A.includes(0);
  const kvol = kernel.reduce((p, k) => p * k, 1);
  // Per flat tap: N_j (valid output positions) and N_{A,j} (those along A).
  const Nj = new Float64Array(kvol);
  const NAj = new Float64Array(kvol);
  for (let j = 0; j < kvol; j++) {
    let r = j;
    let n = 1;
    let na = batchA ? B : 1;
    for (let a = nsp - 1; a >= 0; a--) {
      const ja = r % kernel[a]!;
      r = Math.floor(r / kernel[a]!);
      const c = counts[a]![ja]!;
      n *= c;
      if (spatialA.includes(a)) na *= c;
    }
    Nj[j] = n;
    NAj[j] = na;
  }
  const X = x.meanSquare;
  const M = constantPart(x, ctx.channels?.(0) ?? null, A);
  const conf = derivedConfidence(g, x);
  const c = conf === 'high' || conf === 'exact' ? 'medium' : conf;
  if (ctx.inputs[1]) {
    let e = 0;
    for (let j = 0; j < kvol; j++) if (Nj[j]! > 0) e += B * Nj[j]! * (F * X + NAj[j]! * C * meanPower(X, M, NAj[j]!));
    out[1] = gradScale(e / kvol, c);
  }
  if (ctx.inputs[2] && out[2]) {
    const R = ys.map((_, k) => k).filter((k) => k !== 1);
    const s = summedPower(g, R, ys, null);
    if (s) out[2] = gradScale(s.power, c);
  }
  // Input gradient.
  const xs = numShapeOf(shapeOf(ctx, 0));
  if (!xs || !out[0]) return;
  const strides = ctx.attrs.ints('strides') ?? new Array(nsp).fill(1);
  const pads = ctx.attrs.ints('pads') ?? new Array(2 * nsp).fill(0);
  const pointwise = kvol === 1 && strides.every((v) => v === 1) && pads.every((v) => v === 0) && xs.slice(2).every((d, a) => d === ys[a + 2]);
  if (pointwise) {
    out[0] = withCoherence(out[0], { axes: A, share: C / G });
    return;
  }
  if (!src || !Array.from({ length: nsp }, (_, a) => a).every((a) => spatialA.includes(a))) return;
  const group = ctx.attrs.int('group', 1)!;
  const Mout = ws[0]!;
  const cl = ws[1]!;
  const cin = cl * group;
  const Pin = xs.slice(2).reduce((p, d) => p * d, 1);
  const fwdGeo = geo;
  const back = fwdGeo.map((a) => ({ ...a, inSize: a.outSize, outSize: a.inSize }));
  const patterns = combinedPatterns(back, true);
  if (patterns.length * Mout * cl * kvol > COHERENT_WORK) return;
  const w = 'chunks' in src ? src.toFloat64() : src.data;
  let dcSum = 0;
  const powT = new Float64Array(patterns.length);
  for (let r = 0; r < Mout * cl; r++) {
    const base = r * kvol;
    let s = 0;
    for (let j = 0; j < kvol; j++) s += w[base + j]! * Nj[j]!;
    s /= Pin;
    dcSum += s * s;
    patterns.forEach((p, t) => {
      let st = 0;
      for (const j of p.taps) st += w[base + j]!;
      powT[t]! += st * st;
    });
  }
  let pc = 0;
  patterns.forEach((p, t) => (pc += p.share * powT[t]!));
  const coherentPower = (C * pc) / cin;
  const dc = (C * dcSum) / cin;
  const exact = inputGradEnergy(ctx);
  if (exact === null) return;
  const indep = exact * F;
  const total = coherentPower + indep;
  if (!(total > 0)) return;
  out[0] = withCoherence(gradScale(total, c), { axes: A, share: dc / total });
}

function numShapeOf(s: (Dim | null)[] | null | undefined): number[] | null {
  if (!s) return null;
  return s.every((d): d is number => typeof d === 'number') ? (s as number[]) : null;
}

/**
 * E[∂x²]/E[g²] for a Conv with stored weights: input position i receives w·g from every output
 * position o and tap j with o·s − pad + j·d = i (the transposed pattern); averaged over input
 * positions and channels: Σ_T share_T Σ_{j∈T} (Σ_{m,c} w²_mcj)/C_in.
 */
function inputGradEnergy(ctx: RuleContext): number | null {
  const src = constSource(ctx, 1);
  if (!src || src.dims.length < 3) return null;
  const kernel = ctx.attrs.ints('kernel_shape') ?? src.dims.slice(2);
  const fwdGeo = geometry(ctx, kernel, false);
  if (fwdGeo.some((g) => g.inSize === null || g.outSize === null)) return null;
  const back = fwdGeo.map((g) => ({ ...g, inSize: g.outSize, outSize: g.inSize }));
  const patterns = combinedPatterns(back, true);
  const group = ctx.attrs.int('group', 1)!;
  const t = tapStats(src, false, group);
  const cin = src.dims[1]! * group;
  let e = 0;
  for (const p of patterns) {
    let s = 0;
    for (const j of p.taps) s += t.energy[j]!;
    e += p.share * s;
  }
  // energy_j is a mean over output channels: × M / C_in turns it into the per-input-channel sum.
  return (e * t.outChannels) / cin;
}

export const rules: RuleTable = {
  Conv: { forward: (ctx) => conv(ctx, false), backward: (ctx) => convBackward(ctx, false) },
  ConvTranspose: { forward: (ctx) => conv(ctx, true), backward: (ctx) => convBackward(ctx, true) },
};
