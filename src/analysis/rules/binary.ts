/**
 * Elementwise binary and variadic ops: Add, Sub, Mul, Div, Pow, Where, Min, Max, Sum, Mean.
 *
 * PRIMER §3: of independent a, b, means add and variances add; E[(ab)²] = E[a²]E[b²]; by a
 * constant c everything scales (or shifts) exactly. A constant tensor brings its real moments,
 * and when it holds few values (a mask) the output is the mixture over those values — that is how
 * "scores + mask" keeps its -3.4e38 part. When both operands are functions of the same tensor
 * (x·sigmoid(x), x + 0.044715·x³) the engine (propagate.ts) composes them exactly instead.
 * Backward (PRIMER §4): Add passes g to both; Mul gives g·b and g·a; a broadcast operand sums
 * its gradient over the R copies it was repeated on: E[∂b²] = R·E[g²]·(…) — or, where g is
 * coherent along those copies (the gradient of a mean: a bias before a global pool, a
 * squeeze-excite scale), P_R·(F·E[x²] + P_{R∩A}·C·D_x) (coherence.ts).
 */
import {
  applyFn,
  gaussianOf,
  mixtureOf,
  momentsOf,
  nodesOf,
  pointDist,
  productDist,
  scaleDist,
  shiftDist,
  sumDist,
  type Moments,
} from '../dist.js';
import {
  broadcastRepeat,
  constArray,
  derivedConfidence,
  gradScale,
  joinNotes,
  makeScale,
  scalarConst,
  scaleFromDist,
  shapeFor,
  weaker,
} from '../helpers.js';
import { axesToInput, broadcastAxes, coherenceOf, inputAlong, inputMeanPower, inShape, outShape, summedPower, withCoherence } from '../coherence.js';
import type { Coherence, PredictedDistribution, Scale } from '../scale.js';
import { maskShare } from '../mask.js';
import type { BackwardContext, RuleContext, RuleTable } from './types.js';

const mom = (s: Scale): Moments => ({ mean: s.mean, meanSquare: s.meanSquare });

/** A note when a distribution holds mask-fill points (huge negative values). */
function maskNote(d: PredictedDistribution): string | undefined {
  if (d.kind !== 'mixture' && d.kind !== 'discrete') return undefined;
  const m = maskShare(d);
  return m ? `masked: ${(m.share * 100).toFixed(1)}% of elements at the mask fill ${m.fill.toPrecision(4)}` : undefined;
}

// ---------------------------------------------------------------------------------------------
// Add / Sub

/** y = a + sign·b. */
function addScales(ctx: RuleContext, sign: 1 | -1): (Scale | null)[] {
  const a = ctx.inputs[0];
  const b0 = ctx.inputs[1];
  if (!a || !b0) return [a ?? (b0 && sign < 0 ? negScale(b0) : b0) ?? null];
  const cb = scalarConst(ctx, 1);
  const ca = scalarConst(ctx, 0);
  if (cb !== null && ca === null) return [shiftScale(a, sign * cb, shapeFor(ctx, 0))];
  if (ca !== null && cb === null) {
    const b = sign < 0 ? negScale(b0) : b0;
    return [shiftScale(b, ca, sign < 0 ? scaleDist(shapeFor(ctx, 1), -1) : shapeFor(ctx, 1))];
  }
  const b = sign < 0 ? negScale(b0) : b0;
  const da = shapeFor(ctx, 0);
  const db = sign < 0 ? scaleDist(shapeFor(ctx, 1), -1) : shapeFor(ctx, 1);
  // Independent: E[y] = E[a] + E[b]; E[y²] = E[a²] + E[b²] + 2E[a]E[b]   (PRIMER §3)
  const mean = a.mean + b.mean;
  const ms = a.meanSquare + b.meanSquare + 2 * a.mean * b.mean;
  const dist = sumDist(da, db, mom(a), mom(b));
  const absmax = a.absmax !== null && b.absmax !== null ? a.absmax + b.absmax : null;
  return [makeScale(mean, ms, dist, derivedConfidence(a, b), { absmax, note: maskNote(dist) })];
}

function negScale(s: Scale): Scale {
  return { ...s, mean: -s.mean, dist: scaleDist(s.dist, -1), exactRisk: s.exactRisk };
}

/** x + c, exactly. */
function shiftScale(s: Scale, c: number, d: PredictedDistribution): Scale {
  const dist = shiftDist(d, c);
  return makeScale(s.mean + c, s.meanSquare + 2 * c * s.mean + c * c, dist, derivedConfidence(s), {
    absmax: s.absmax === null ? null : s.absmax + Math.abs(c),
    note: joinNotes(maskNote(dist)),
  });
}

// ---------------------------------------------------------------------------------------------
// Mul / Div

function mulScales(a: Scale, b: Scale, da: PredictedDistribution, db: PredictedDistribution): Scale {
  // Independent: E[ab] = E[a]E[b]; E[(ab)²] = E[a²]E[b²]   (PRIMER §3)
  const dist = productDist(da, db);
  const fz = a.fracZero !== undefined || b.fracZero !== undefined ? 1 - (1 - (a.fracZero ?? 0)) * (1 - (b.fracZero ?? 0)) : undefined;
  return makeScale(a.mean * b.mean, a.meanSquare * b.meanSquare, dist, derivedConfidence(a, b), {
    absmax: a.absmax !== null && b.absmax !== null ? a.absmax * b.absmax : null,
    ...(fz !== undefined ? { fracZero: fz } : {}),
  });
}

/** c·x, exactly (PRIMER §3: by a constant, scale exactly). */
export function timesConst(s: Scale, c: number, d: PredictedDistribution): Scale {
  const dist = c === 0 ? pointDist(0) : scaleDist(d, c);
  const out = makeScale(s.mean * c, s.meanSquare * c * c, dist, derivedConfidence(s), {
    absmax: s.absmax === null ? null : s.absmax * Math.abs(c),
    note: s.note && /mask/.test(s.note) ? s.note : undefined,
  });
  if (s.fracZero !== undefined) out.fracZero = c === 0 ? 1 : s.fracZero;
  return out;
}

function mul(ctx: RuleContext): (Scale | null)[] {
  const a = ctx.inputs[0];
  const b = ctx.inputs[1];
  if (!a || !b) return [a ?? b ?? null];
  const cb = scalarConst(ctx, 1);
  if (cb !== null) return [timesConst(a, cb, shapeFor(ctx, 0))];
  const ca = scalarConst(ctx, 0);
  if (ca !== null) return [timesConst(b, ca, shapeFor(ctx, 1))];
  return [mulScales(a, b, shapeFor(ctx, 0), shapeFor(ctx, 1))];
}

/** Moments and law of 1/b. */
function reciprocal(b: Scale, db: PredictedDistribution): { m: Moments; d: PredictedDistribution } | null {
  const d = applyFn(db, (x) => 1 / x, 'recip', gaussianOf(b.mean, b.meanSquare));
  const m = momentsOf(d);
  if (!m || !Number.isFinite(m.meanSquare)) return null;
  return { m, d };
}

function div(ctx: RuleContext): (Scale | null)[] {
  const a = ctx.inputs[0];
  const b = ctx.inputs[1];
  if (!a || !b) return [null];
  const cb = scalarConst(ctx, 1);
  if (cb !== null) return [timesConst(a, 1 / cb, shapeFor(ctx, 0))];
  const ca = scalarConst(ctx, 0);
  const r = reciprocal(b, shapeFor(ctx, 1));
  if (!r) return [makeScale(0, 1, gaussianOf(0, 1), 'unknown', { note: 'divisor can be 0: scale unknown' })];
  const inv: Scale = makeScale(r.m.mean, r.m.meanSquare, r.d, derivedConfidence(b));
  if (ca !== null) return [timesConst(inv, ca, r.d)];
  return [mulScales(a, inv, shapeFor(ctx, 0), r.d)];
}

// ---------------------------------------------------------------------------------------------
// Pow

function pow(ctx: RuleContext): (Scale | null)[] {
  const x = ctx.inputs[0];
  if (!x) return [null];
  const e = scalarConst(ctx, 1);
  if (e !== null) {
    if (e === 1) return [x];
    // y = x^c elementwise: the pushforward of x's law, moments by integration (PRIMER §3 elementwise f).
    const f = (v: number): number => Math.pow(v, e);
    const dist = applyFn(shapeFor(ctx, 0), f, `pow${e}`, gaussianOf(x.mean, x.meanSquare));
    const s = scaleFromDist(dist, derivedConfidence(x), {
      absmax: x.absmax !== null && e > 0 ? Math.pow(x.absmax, e) : null,
      note: !Number.isInteger(e) && x.mean - 3 * Math.sqrt(Math.max(0, x.meanSquare - x.mean ** 2)) < 0 ? 'non-integer power of values that can be negative (NaN)' : undefined,
    });
    return [s];
  }
  const base = scalarConst(ctx, 0);
  const y = ctx.inputs[1];
  if (base !== null && y) {
    const dist = applyFn(shapeFor(ctx, 1), (v) => Math.pow(base, v), `${base}^x`, gaussianOf(y.mean, y.meanSquare));
    return [scaleFromDist(dist, derivedConfidence(y))];
  }
  if (!y) return [null];
  // Both vary: moments over the product of both laws' nodes; Gaussian shape.
  const m = pairMoments(shapeFor(ctx, 0), shapeFor(ctx, 1), (u, v) => Math.pow(u, v));
  return [makeScale(m.mean, m.meanSquare, gaussianOf(m.mean, m.meanSquare), weaker(derivedConfidence(x, y), 'low'))];
}

/** E[f(a,b)], E[f(a,b)²] for independent a, b over their quadrature nodes. */
function pairMoments(da: PredictedDistribution, db: PredictedDistribution, f: (a: number, b: number) => number): Moments {
  const na = nodesOf(da, 24);
  const nb = nodesOf(db, 24);
  let m1 = 0;
  let m2 = 0;
  let W = 0;
  for (const p of na)
    for (const q of nb) {
      const v = f(p.x, q.x);
      if (!Number.isFinite(v)) continue;
      const w = p.w * q.w;
      W += w;
      m1 += w * v;
      m2 += w * v * v;
    }
  return W > 0 ? { mean: m1 / W, meanSquare: m2 / W } : { mean: 0, meanSquare: 0 };
}

// ---------------------------------------------------------------------------------------------
// Where

/** P(cond true): exact for a constant condition; 0 for IsNaN/IsInf guards; else unknown (½). */
function conditionShare(ctx: RuleContext): { p: number; known: boolean; note?: string } {
  const vals = constArray(ctx, 0);
  if (vals) {
    let t = 0;
    for (let i = 0; i < vals.length; i++) if (vals[i]) t++;
    return { p: vals.length ? t / vals.length : 0, known: true };
  }
  const producer = ctx.node.graph.producerOf(ctx.node.inputs[0] ?? '');
  if (producer && (producer.opType === 'IsNaN' || producer.opType === 'IsInf')) {
    return { p: 0, known: true, note: `condition from ${producer.opType}: taken as never true` };
  }
  return { p: 0.5, known: false, note: 'condition unknown: assumed true for half the elements' };
}

function where(ctx: RuleContext): (Scale | null)[] {
  const a = ctx.inputs[1];
  const b = ctx.inputs[2];
  if (!a || !b) return [a ?? b ?? null];
  const { p, known, note } = conditionShare(ctx);
  if (p === 0 && known) return [{ ...b, exactRisk: undefined, confidence: derivedConfidence(b), note: joinNotes(b.note) }];
  if (p === 1 && known) return [{ ...a, exactRisk: undefined, confidence: derivedConfidence(a), note: joinNotes(a.note) }];
  const dist = mixtureOf([
    { weight: p, dist: shapeFor(ctx, 1) },
    { weight: 1 - p, dist: shapeFor(ctx, 2) },
  ]);
  const conf = known ? derivedConfidence(a, b) : weaker(derivedConfidence(a, b), 'low');
  return [
    makeScale(p * a.mean + (1 - p) * b.mean, p * a.meanSquare + (1 - p) * b.meanSquare, dist, conf, {
      absmax: a.absmax !== null && b.absmax !== null ? Math.max(a.absmax, b.absmax) : null,
      note: joinNotes(known ? undefined : note, maskNote(dist)),
    }),
  ];
}

// ---------------------------------------------------------------------------------------------
// Min / Max / Sum / Mean

function minmax(ctx: RuleContext, isMax: boolean): (Scale | null)[] {
  const pick = isMax ? Math.max : Math.min;
  const idx = ctx.inputs.map((s, i) => (s ? i : -1)).filter((i) => i >= 0);
  if (idx.length === 0) return [null];
  let acc: Scale = ctx.inputs[idx[0]!]!;
  let accDist = shapeFor(ctx, idx[0]!);
  for (const i of idx.slice(1)) {
    const c = scalarConst(ctx, i);
    const other = ctx.inputs[i]!;
    const accConst = i === idx[1] ? scalarConst(ctx, idx[0]!) : null;
    if (c !== null || accConst !== null) {
      const k = c !== null ? c : accConst!;
      const base = c !== null ? accDist : shapeFor(ctx, i);
      const baseScale = c !== null ? acc : other;
      accDist = applyFn(base, (x) => pick(x, k), `${isMax ? 'max' : 'min'}(·,${k})`, gaussianOf(baseScale.mean, baseScale.meanSquare));
      acc = scaleFromDist(accDist, derivedConfidence(baseScale), {
        absmax: baseScale.absmax !== null ? Math.max(baseScale.absmax, Math.abs(k)) : null,
      });
      continue;
    }
    const od = shapeFor(ctx, i);
    const m = pairMoments(accDist, od, (u, v) => pick(u, v));
    accDist = gaussianOf(m.mean, m.meanSquare);
    acc = makeScale(m.mean, m.meanSquare, accDist, derivedConfidence(acc, other), {
      absmax: acc.absmax !== null && other.absmax !== null ? Math.max(acc.absmax, other.absmax) : null,
    });
  }
  return [acc];
}

function sumAll(ctx: RuleContext, average: boolean): (Scale | null)[] {
  const present = ctx.inputs.map((s, i) => (s ? i : -1)).filter((i) => i >= 0);
  if (present.length === 0) return [null];
  let acc = ctx.inputs[present[0]!]!;
  let accDist = shapeFor(ctx, present[0]!);
  for (const i of present.slice(1)) {
    const b = ctx.inputs[i]!;
    const db = shapeFor(ctx, i);
    const dist = sumDist(accDist, db, mom(acc), mom(b));
    acc = makeScale(acc.mean + b.mean, acc.meanSquare + b.meanSquare + 2 * acc.mean * b.mean, dist, derivedConfidence(acc, b), {
      absmax: acc.absmax !== null && b.absmax !== null ? acc.absmax + b.absmax : null,
    });
    accDist = dist;
  }
  if (present.length === 1) acc = { ...acc, exactRisk: undefined, confidence: derivedConfidence(acc) };
  return [average ? timesConst(acc, 1 / present.length, accDist) : acc];
}

// ---------------------------------------------------------------------------------------------
// Backward

function g2(ctx: BackwardContext): number | null {
  const g = ctx.outputGrads[0];
  return g ? g.meanSquare : null;
}

/**
 * The gradient of input i that sums g·x over the output axes R_i it is broadcast along
 * (x ≡ 1 for Add: `factor` null), with a coherent g (coherence.ts); null when g has no coherent
 * part or the shapes are unknown (the callers' independent rules apply).
 */
function coherentSum(ctx: BackwardContext, i: number, G: number, factor: number | null, scale = 1): Scale | null {
  const g = ctx.outputGrads[0];
  const coh = coherenceOf(g);
  const out = outShape(ctx);
  const R = broadcastAxes(ctx, i);
  const inRank = inShape(ctx, i)?.length;
  if (!g || !coh || !out || !R || inRank === undefined) return null;
  const s = summedPower({ ...g, meanSquare: G }, R, out, factor === null ? null : { X: ctx.inputs[factor]!.meanSquare, dc: (axes) => inputMeanPower(ctx, factor, axes, out) });
  if (!s) return null;
  let coherent: Coherence | null = s.coherent ? { axes: axesToInput(s.coherent.axes, out.length, inRank), share: s.coherent.share } : null;
  if (factor !== null && !coh.axes.some((a) => R.includes(a))) {
    // c·x keeps, constant along A, c times x's part constant along A (all of x where it is
    // broadcast): power P_R·C·M_x(A).
    const along = inputAlong(ctx, factor, coh.axes, out);
    const PR = R.reduce((p, a) => p * out[a]!, 1);
    if (along && s.power > 0) coherent = { axes: axesToInput(coh.axes, out.length, inRank), share: (PR * coh.share * G * along.M) / s.power };
  }
  return withCoherence(gradScale(s.power * scale), coherent);
}

function addBackward(ctx: BackwardContext): (Scale | null)[] {
  const G = g2(ctx);
  if (G === null) return ctx.inputs.map(() => null);
  // ∂a = g, ∂b = ±g, each summed over the copies a broadcast operand was repeated on.
  return ctx.inputs.map((s, i) => (s ? (coherentSum(ctx, i, G, null) ?? gradScale(G * broadcastRepeat(ctx, i))) : null));
}

function mulBackward(ctx: BackwardContext): (Scale | null)[] {
  const G = g2(ctx);
  const [a, b] = ctx.inputs;
  if (G === null || !a || !b) return [null, null];
  // ∂a = g·b: E[∂a²] = E[g²]E[b²] (×R_a); ∂b = g·a likewise — coherently where g is (coherence.ts).
  return [
    coherentSum(ctx, 0, G, 1) ?? gradScale(G * b.meanSquare * broadcastRepeat(ctx, 0)),
    coherentSum(ctx, 1, G, 0) ?? gradScale(G * a.meanSquare * broadcastRepeat(ctx, 1)),
  ];
}

/**
 * The coherence of a gradient g·f for input i, where f is constant along the coherent axes of g
 * (the operand giving f is broadcast along them) and input i is not summed along them; else null.
 */
function keptCoherence(ctx: BackwardContext, i: number, constantFactor: number | null, shareFactor = 1): Coherence | null {
  const coh = coherenceOf(ctx.outputGrads[0]);
  const out = outShape(ctx);
  const R = broadcastAxes(ctx, i);
  const inRank = inShape(ctx, i)?.length;
  if (!coh || !out || !R || inRank === undefined || R.length > 0) return null;
  if (constantFactor !== null) {
    const Rf = broadcastAxes(ctx, constantFactor);
    if (!Rf || !coh.axes.every((a) => Rf.includes(a))) return null;
  }
  return { axes: axesToInput(coh.axes, out.length, inRank), share: coh.share * shareFactor };
}

function divBackward(ctx: BackwardContext): (Scale | null)[] {
  const G = g2(ctx);
  const [a, b] = ctx.inputs;
  if (G === null || !a || !b) return [null, null];
  const db = shapeFor(ctx, 1);
  const inv2 = momentsOf(applyFn(db, (x) => 1 / (x * x), 'recip2', gaussianOf(b.mean, b.meanSquare)));
  const inv4 = momentsOf(applyFn(db, (x) => 1 / (x * x * x * x), 'recip4', gaussianOf(b.mean, b.meanSquare)));
  // ∂a = g/b: E[g²]E[1/b²]; ∂b = −g·a/b²: E[g²]E[a²]E[1/b⁴].
  return [
    inv2 ? withCoherence(gradScale(G * inv2.mean * broadcastRepeat(ctx, 0)), keptCoherence(ctx, 0, 1)) : null,
    inv4 ? gradScale(G * a.meanSquare * inv4.mean * broadcastRepeat(ctx, 1)) : null,
  ];
}

function powBackward(ctx: BackwardContext): (Scale | null)[] {
  const G = g2(ctx);
  const x = ctx.inputs[0];
  const e = scalarConst(ctx, 1);
  if (G === null || !x || e === null) return [null, null];
  // ∂x = g·c·x^(c−1): E[∂x²] = E[g²]·c²·E[x^(2c−2)].
  const d = applyFn(shapeFor(ctx, 0), (v) => e * e * Math.pow(v, 2 * e - 2), 'dpow', gaussianOf(x.mean, x.meanSquare));
  const m = momentsOf(d);
  return [m ? gradScale(G * m.mean) : null, null];
}

function whereBackward(ctx: BackwardContext): (Scale | null)[] {
  const G = g2(ctx);
  if (G === null) return [null, null, null];
  const { p } = conditionShare(ctx);
  // A coherent part c of g: c·1[cond] keeps c·p constant (power C·p² of G·p), unless the
  // condition is itself constant along those axes.
  const kept = (i: number, q: number): Coherence | null => keptCoherence(ctx, i, 0) ?? keptCoherence(ctx, i, null, q);
  const ga = ctx.inputs[1] ? withCoherence(gradScale(G * p * broadcastRepeat(ctx, 1), 'medium', 1 - p), kept(1, p)) : null;
  const gb = ctx.inputs[2] ? withCoherence(gradScale(G * (1 - p) * broadcastRepeat(ctx, 2), 'medium', p), kept(2, 1 - p)) : null;
  return [null, ga, gb];
}

function minmaxBackward(ctx: BackwardContext): (Scale | null)[] {
  const G = g2(ctx);
  if (G === null) return ctx.inputs.map(() => null);
  const n = ctx.inputs.filter(Boolean).length;
  // Each input receives g where it is selected: about 1/n of the elements when alike.
  return ctx.inputs.map((s, i) => (s ? gradScale((G / n) * broadcastRepeat(ctx, i), 'low', 1 - 1 / n) : null));
}

function meanBackward(ctx: BackwardContext): (Scale | null)[] {
  const G = g2(ctx);
  if (G === null) return ctx.inputs.map(() => null);
  const n = ctx.inputs.filter(Boolean).length;
  return ctx.inputs.map((s, i) => (s ? (coherentSum(ctx, i, G, null, 1 / (n * n)) ?? gradScale((G / (n * n)) * broadcastRepeat(ctx, i))) : null));
}

export const rules: RuleTable = {
  Add: { forward: (ctx) => addScales(ctx, 1), backward: addBackward },
  Sub: { forward: (ctx) => addScales(ctx, -1), backward: addBackward },
  Mul: { forward: mul, backward: mulBackward },
  Div: { forward: div, backward: divBackward },
  Pow: { forward: pow, backward: powBackward },
  Where: { forward: where, backward: whereBackward },
  Max: { forward: (ctx) => minmax(ctx, true), backward: minmaxBackward },
  Min: { forward: (ctx) => minmax(ctx, false), backward: minmaxBackward },
  Sum: { forward: (ctx) => sumAll(ctx, false), backward: addBackward },
  Mean: { forward: (ctx) => sumAll(ctx, true), backward: meanBackward },
};

