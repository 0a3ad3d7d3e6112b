/**
 * Coherent gradients (backward pass).
 *
 * PRIMER §4 treats every gradient as independent from element to element. A gradient that went
 * back through a mean (GlobalAveragePool, ReduceMean over H×W, a squeeze-excite scale) is not:
 * ∂x = broadcast(g/n) is the same at every reduced position. Sums over those positions then add
 * coherently — P terms give P²·E, not P·E:
 *   conv weight gradient ∂W[m,c,j] = Σ_{b,o} g[b,m,o]·x[b,c,o+j],
 *   a broadcast operand ∂s = Σ_{p∈R} g_p·a_p (Mul) or Σ_{p∈R} g_p (Add: a bias),
 *   MatMul ∂W = Σ_rows x_r g_r,
 * and what matters is how much of x is constant along the same positions: its per-channel mean
 * (channels.ts), which random-init CNNs have in plenty (every ReLU / HardSwish makes one).
 *
 * The model: a gradient g = c + w, c constant along some axes A (for fixed other indices, and
 * independent across them), w independent from position to position; E[c²] = κ·E[g²] (the Scale's
 * `coherent` field, κ = share). For a sum over the output axes R of g·x:
 *   E[(Σ_R g·x)²] = P_R·( F·X + P_{R∩A}·C·D ),  C = κG, F = (1−κ)G, X = E[x²],
 *   D = E[x̄²] = M + (X − M)/n  (the mean power of x over the n positions of R∩A along which x
 *   varies; M the power of x's part constant along them: E_c[μ_c²] if the channel axis is not
 *   among them, else the overall mean squared).
 * With κ = 0 this is P_R·G·X, PRIMER §4's rule.
 *
 * Rules that do not know about coherence drop it (the engine keeps it only where a rule computed
 * it, or passed it through an op that keeps every element in place).
 */
import type { ChannelStats } from './channels.js';
import type { BackwardContext, RuleContext } from './rules/types.js';
import type { Coherence, Scale } from './scale.js';

/** The coherent structure of a gradient, when it has one. */
export function coherenceOf(g: Scale | null | undefined): Coherence | null {
  const c = g?.coherent;
  return c && c.axes.length > 0 && c.share > 0 ? c : null;
}

/** s with the given coherence (null/empty/zero share: none). */
export function withCoherence(s: Scale, c: Coherence | null | undefined): Scale {
  const out: Scale = { ...s };
  delete out.coherent;
  if (c && c.axes.length > 0 && c.share > 1e-9 && Number.isFinite(c.share)) {
    out.coherent = { axes: [...new Set(c.axes)].sort((a, b) => a - b), share: Math.min(1, c.share) };
  }
  return out;
}

/** Coherent (C) and independent (F) power of a gradient and the axes of C. */
export function gradParts(g: Scale): { G: number; C: number; F: number; axes: number[] } {
  const G = g.meanSquare;
  const c = coherenceOf(g);
  if (!c) return { G, C: 0, F: G, axes: [] };
  return { G, C: c.share * G, F: (1 - c.share) * G, axes: c.axes };
}

/** Mean power of n positions of x with constant-part power M: E[x̄²] = M + (X − M)/n. */
export function meanPower(X: number, M: number, n: number): number {
  const m = Math.min(Math.max(0, M), X);
  return n <= 1 ? X : m + (X - m) / n;
}

function numShape(t: { shape: (number | string | null)[] | null } | null | undefined): number[] | null {
  const s = t?.shape;
  if (!s) return null;
  return s.every((d): d is number => typeof d === 'number') ? (s as number[]) : null;
}

/** Numeric shape of input i / output k, when known. */
export function inShape(ctx: RuleContext, i: number): number[] | null {
  const s = numShape(ctx.inputTypes[i]);
  if (s) return s;
  const t = ctx.constant(i);
  return t ? t.dims : null;
}
export function outShape(ctx: RuleContext, k = 0): number[] | null {
  return numShape(ctx.outputTypes[k]);
}

/** Output axes along which input i is broadcast (numpy rules, right-aligned); null when shapes are unknown. */
export function broadcastAxes(ctx: RuleContext, i: number): number[] | null {
  const out = outShape(ctx);
  const inp = inShape(ctx, i);
  if (!out || !inp || inp.length > out.length) return null;
  const off = out.length - inp.length;
  const axes: number[] = [];
  for (let a = 0; a < out.length; a++) {
    const d = a < off ? 1 : inp[a - off]!;
    if (d === 1 && out[a] !== 1) axes.push(a);
  }
  return axes;
}

const prod = (shape: number[], axes: number[]): number => axes.reduce((p, a) => p * (shape[a] ?? 1), 1);

/**
 * Forward input i seen along the output axes `axes` (x broadcast to the output shape `out`):
 * X = E[x²]; M = the power of x's part constant along them (all of x along axes where it is
 * broadcast; per-channel means where the channel view is known); n = the number of positions
 * along them where x varies. null when shapes are unknown.
 */
export function inputAlong(ctx: BackwardContext, i: number, axes: number[], out: number[]): { X: number; M: number; n: number } | null {
  const x = ctx.inputs[i];
  const shape = inShape(ctx, i);
  if (!x || !shape || shape.length > out.length) return null;
  const off = out.length - shape.length;
  const varying = axes.filter((a) => a >= off && shape[a - off] !== 1).map((a) => a - off);
  const X = x.meanSquare;
  if (varying.length === 0) return { X, M: X, n: 1 };
  return { X, M: constantPart(x, ctx.channels?.(i) ?? null, varying), n: prod(shape, varying) };
}

/** D = E[x̄²] of forward input i averaged over the output axes `axes` (inputAlong). */
export function inputMeanPower(ctx: BackwardContext, i: number, axes: number[], out: number[]): number | null {
  const r = inputAlong(ctx, i, axes, out);
  return r ? meanPower(r.X, r.M, r.n) : null;
}

/**
 * Power of the part of x constant along its axes `axes`: E_c[μ_c²] when the channel axis (or
 * axes) of x's channel view is not among them, else the overall mean squared.
 */
export function constantPart(x: Scale, ch: ChannelStats | null, axes: number[]): number {
  if (ch && !axes.includes(ch.axis) && (ch.minor === undefined || !axes.includes(ch.minor))) {
    let m2 = 0;
    for (let c = 0; c < ch.mean.length; c++) m2 += ch.mean[c]! * ch.mean[c]!;
    return Math.min(x.meanSquare, m2 / Math.max(1, ch.mean.length));
  }
  return Math.min(x.meanSquare, x.mean * x.mean);
}

/**
 * E[(Σ_{p∈R} g_p·x_p)²] per element of the result, R the summed output axes (module comment):
 * P_R·(F·X + P_{R∩A}·C·D(R∩A)). `factor` is x: its E[x²] and D for given axes; null for x ≡ 1
 * (a plain sum of g, X = D = 1), when the result's coherent part, Σ_R c, is still constant
 * along A∖R (in output coordinates). null when D is not known.
 */
export function summedPower(
  g: Scale,
  R: number[],
  out: number[],
  factor: { X: number; dc: (axes: number[]) => number | null } | null,
): { power: number; coherent: Coherence | null } | null {
  const { C, F, axes } = gradParts(g);
  const X = factor ? factor.X : 1;
  const PR = prod(out, R);
  const RA = R.filter((a) => axes.includes(a));
  let D = X;
  if (C > 0 && RA.length > 0) {
    const d = factor ? factor.dc(RA) : 1;
    if (d === null) return null;
    D = d;
  }
  const PRA = prod(out, RA);
  const coh = PRA * C * D;
  const power = PR * (F * X + coh);
  const rest = axes.filter((a) => !R.includes(a));
  return { power, coherent: !factor && C > 0 && rest.length ? { axes: rest, share: coh / Math.max(1e-300, F + coh) } : null };
}

/** Output-coordinate axes → input i's coordinates (right-aligned broadcast), dropping axes in `drop`. */
export function axesToInput(axes: number[], outRank: number, inRank: number, drop: number[] = []): number[] {
  const off = outRank - inRank;
  return axes.filter((a) => !drop.includes(a) && a >= off).map((a) => a - off);
}

/**
 * Sum of independent gradient contributions (a value used twice): powers add; the coherent
 * parts add along the axes both are constant along (a part constant along more axes is also
 * constant along fewer).
 */
export function mergeCoherence(a: Scale, b: Scale): Coherence | null {
  const ca = coherenceOf(a);
  const cb = coherenceOf(b);
  const G = a.meanSquare + b.meanSquare;
  if (!(G > 0) || (!ca && !cb)) return null;
  if (ca && cb) {
    const axes = ca.axes.filter((x) => cb.axes.includes(x));
    if (!axes.length) {
      // Keep the larger coherent part.
      const [big, other] = ca.share * a.meanSquare >= cb.share * b.meanSquare ? [ca, a] : [cb, b];
      return { axes: big.axes, share: (big.share * other.meanSquare) / G };
    }
    return { axes, share: (ca.share * a.meanSquare + cb.share * b.meanSquare) / G };
  }
  const [c, s] = ca ? [ca, a] : [cb!, b];
  return { axes: c.axes, share: (c.share * s.meanSquare) / G };
}
