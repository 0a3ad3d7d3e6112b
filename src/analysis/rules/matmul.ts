/**
 * Contractions: MatMul, Gemm, Einsum (two operands); MatMulInteger has integer outputs (no scale).
 *
 * PRIMER §3: y = Σ_k x_k w_k over fan-in K gives E[y²] = K·E[x²]E[w²] + K(K−1)·E[x]²E[w]².
 * When W is stored, the second term is taken exactly from the weights: for x i.i.d. (mean μ,
 * variance σ²) and column n of W, E[y_n²] = σ²·Σ_k w_kn² + μ²·(Σ_k w_kn)², averaged over n —
 * which is the primer's formula with the real column sums instead of K²E[w]².
 * PRIMER §4: ∂x = g·Wᵀ: E[∂x²] = N_out·E[g²]E[w²]; ∂W = xᵀg: E[∂W²] = B·E[x²]E[g²]. In general
 * each input element takes part in (outputs × K / its own count) products, which is N_out for x
 * and the number of rows B for W (including broadcast batch dims). A gradient coherent along
 * rows (the gradient of a mean over tokens) sums coherently in ∂W (coherence.ts).
 */
import type { Dim } from '../../onnx/model.js';
import { gaussianOf, productDist, sumDist } from '../dist.js';
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
  broadcastRepeat,
  type ConstSource,
} from '../helpers.js';
import { axesToInput, broadcastAxes, coherenceOf, inputMeanPower, inShape, outShape, summedPower, withCoherence } from '../coherence.js';
import type { Scale } from '../scale.js';
import { sliceSums } from '../weights.js';
import type { BackwardContext, RuleContext, RuleTable, StoredReads } from './types.js';

const num = (d: Dim | undefined): number | null => (typeof d === 'number' ? d : null);

function dimsOf(src: ConstSource): number[] {
  return src.dims;
}

/**
 * Moments of y = Σ_k a_k b_k over K terms (PRIMER §3), using the stored operand's exact
 * fan-in sums when one side is constant (`sums` over the contracted axis of that operand).
 */
export function contraction(
  a: Scale,
  b: Scale,
  K: number,
  stored: { side: 'a' | 'b'; src: ConstSource; from: number; to: number } | null,
): { mean: number; meanSquare: number; maxAbsSum: number | null } {
  if (stored) {
    const w = stored.side === 'b' ? b : a;
    const x = stored.side === 'b' ? a : b;
    const s = sliceSums(stored.src, stored.from, stored.to);
    const varX = Math.max(0, x.meanSquare - x.mean * x.mean);
    // E[y²] = σ_x²·K·E[w²] + μ_x²·mean_n(S_n²);  E[y] = μ_x·mean_n(S_n)
    return { mean: x.mean * s.meanSum, meanSquare: varX * K * w.meanSquare + x.mean * x.mean * s.meanSumSq, maxAbsSum: s.maxAbsSum };
  }
  // E[y²] = K·E[a²]E[b²] + K(K−1)·E[a]²E[b]²;  E[y] = K·E[a]E[b]
  return {
    mean: K * a.mean * b.mean,
    meanSquare: K * a.meanSquare * b.meanSquare + K * (K - 1) * a.mean * a.mean * b.mean * b.mean,
    maxAbsSum: null,
  };
}

/** The law of a sum of K products: Gaussian (CLT) unless K is 1 (a plain product). */
function contractionScale(ctx: RuleContext, a: Scale, b: Scale, K: number, m: { mean: number; meanSquare: number }, absmax: number | null): Scale {
  const dist = K === 1 ? productDist(shapeFor(ctx, 0), shapeFor(ctx, 1)) : gaussianOf(m.mean, m.meanSquare);
  return makeScale(m.mean, m.meanSquare, dist, derivedConfidence(a, b), { absmax });
}

function matmul(ctx: RuleContext): (Scale | null)[] {
  const a = ctx.inputs[0];
  const b = ctx.inputs[1];
  if (!a || !b) return [null];
  const sa = shapeOf(ctx, 0);
  const sb = shapeOf(ctx, 1);
  const srcB = constSource(ctx, 1);
  const srcA = constSource(ctx, 0);
  const rb = sb?.length ?? srcB?.dims.length ?? null;
  const ra = sa?.length ?? srcA?.dims.length ?? null;
  let K: number | null = null;
  if (sa && sa.length >= 1) K = num(sa[sa.length - 1]);
  if (K === null && sb && sb.length >= 1) K = num(sb.length === 1 ? sb[0] : sb[sb.length - 2]);
  if (K === null && srcB) K = srcB.dims.length === 1 ? srcB.dims[0]! : srcB.dims[srcB.dims.length - 2]!;
  if (K === null && srcA) K = srcA.dims[srcA.dims.length - 1]!;
  if (K === null) return [makeScale(0, 1, gaussianOf(0, 1), 'unknown', { note: 'MatMul fan-in unknown (shape not inferred)' })];
  let stored: Parameters<typeof contraction>[3] = null;
  if (srcB && rb !== null) stored = rb === 1 ? { side: 'b', src: srcB, from: 0, to: 1 } : { side: 'b', src: srcB, from: rb - 2, to: rb - 1 };
  else if (srcA && ra !== null) stored = { side: 'a', src: srcA, from: ra - 1, to: ra };
  const m = contraction(a, b, K, stored);
  const x = stored?.side === 'a' ? b : a;
  const absmax = m.maxAbsSum !== null && x.absmax !== null ? m.maxAbsSum * x.absmax : a.absmax !== null && b.absmax !== null ? K * a.absmax * b.absmax : null;
  return [contractionScale(ctx, a, b, K, m, absmax)];
}

function gemm(ctx: RuleContext): (Scale | null)[] {
  const a = ctx.inputs[0];
  const b = ctx.inputs[1];
  if (!a || !b) return [null];
  const alpha = ctx.attrs.float('alpha', 1)!;
  const beta = ctx.attrs.float('beta', 1)!;
  const transA = ctx.attrs.int('transA', 0)! !== 0;
  const transB = ctx.attrs.int('transB', 0)! !== 0;
  const sa = shapeOf(ctx, 0);
  const sb = shapeOf(ctx, 1);
  const srcB = constSource(ctx, 1);
  const srcA = constSource(ctx, 0);
  let K: number | null = sa && sa.length === 2 ? num(sa[transA ? 0 : 1]) : null;
  if (K === null && sb && sb.length === 2) K = num(sb[transB ? 1 : 0]);
  if (K === null && srcB) K = srcB.dims[transB ? 1 : 0]!;
  if (K === null && srcA) K = srcA.dims[transA ? 0 : 1]!;
  if (K === null) return [makeScale(0, 1, gaussianOf(0, 1), 'unknown', { note: 'Gemm fan-in unknown (shape not inferred)' })];
  let stored: Parameters<typeof contraction>[3] = null;
  if (srcB && dimsOf(srcB).length === 2) stored = transB ? { side: 'b', src: srcB, from: 1, to: 2 } : { side: 'b', src: srcB, from: 0, to: 1 };
  else if (srcA && dimsOf(srcA).length === 2) stored = transA ? { side: 'a', src: srcA, from: 0, to: 1 } : { side: 'a', src: srcA, from: 1, to: 2 };
  const m0 = contraction(a, b, K, stored);
  // y = α·AB + β·C
  let mean = alpha * m0.mean;
  let ms = alpha * alpha * m0.meanSquare;
  const x = stored?.side === 'a' ? b : a;
  let absmax = m0.maxAbsSum !== null && x.absmax !== null ? Math.abs(alpha) * m0.maxAbsSum * x.absmax : null;
  let dist = gaussianOf(mean, ms);
  const c = ctx.inputs[2];
  const storedC = c && beta !== 0 && stored?.side === 'b' ? constArray(ctx, 2) : null;
  const sums = stored ? sliceSums(stored.src, stored.from, stored.to).sums : null;
  if (c && storedC && sums && (storedC.length === sums.length || storedC.length === 1)) {
    // Per column n: E[y_n] = α·μ·S_n + β·c_n; E[y_n²] = α²σ²·Σ_k w_kn² + E[y_n]²  (exact given W, c).
    const N = sums.length;
    const varX = Math.max(0, x.meanSquare - x.mean * x.mean);
    let m1 = 0;
    let m2 = 0;
    let cmax = 0;
    for (let n = 0; n < N; n++) {
      const cn = storedC[n % storedC.length]!;
      const yn = alpha * x.mean * sums[n]! + beta * cn;
      m1 += yn / N;
      m2 += yn * yn / N;
      cmax = Math.max(cmax, Math.abs(cn));
    }
    mean = m1;
    ms = alpha * alpha * varX * K * (stored!.side === 'b' ? b.meanSquare : a.meanSquare) + m2;
    dist = gaussianOf(mean, ms);
    absmax = absmax !== null ? absmax + Math.abs(beta) * cmax : null;
  } else if (c && beta !== 0) {
    const cm = { mean: beta * c.mean, meanSquare: beta * beta * c.meanSquare };
    // Independent bias: means add, variances add (PRIMER §3).
    dist = sumDist(dist, productDist(shapeFor(ctx, 2), { kind: 'discrete', values: [beta], weights: [1] }), { mean, meanSquare: ms }, cm);
    ms = ms + cm.meanSquare + 2 * mean * cm.mean;
    mean = mean + cm.mean;
    absmax = absmax !== null && c.absmax !== null ? absmax + Math.abs(beta) * c.absmax : null;
  }
  return [makeScale(mean, ms, dist, derivedConfidence(a, b, c), { absmax })];
}

// ---------------------------------------------------------------------------------------------
// Einsum (two operands; one operand is a sum over the labels it drops)

interface EinsumSpec {
  inputs: string[];
  output: string;
}

/** Fresh labels for the dims "..." stands for: outside [A-Za-z], so they clash with no letter. */
const ellipsisLabels = (n: number): string => Array.from({ length: n }, (_, k) => String.fromCharCode(0x100 + k)).join('');

/**
 * The equation with "..." expanded into fresh labels given the operands' ranks, so that the rest
 * is plain Einsum (https://onnx.ai/onnx/operators/onnx__Einsum.html): every "..." stands for the
 * same number of dims (one standing for none is accepted, as ONNX Runtime does), broadcast
 * together; without "->" the output is the ellipsis dims, then the letters used once, sorted.
 * A string says why the equation is not handled.
 */
function parseEinsum(eq: string, ranks: (number | null)[]): EinsumSpec | string {
  const clean = eq.replace(/\s+/g, '');
  const [lhs, rhs, extra] = clean.split('->');
  if (lhs === undefined || extra !== undefined) return 'malformed equation';
  const terms = lhs.split(',');
  const letters = (s: string): string => s.replace('...', '');
  if ([...terms, rhs ?? ''].some((s) => !/^[A-Za-z]*$/.test(letters(s)))) return 'malformed equation';
  if (terms.length !== ranks.length) return 'operand count differs from the equation';
  let ell = 0;
  const ellRanks: number[] = [];
  for (let i = 0; i < terms.length; i++) {
    if (!terms[i]!.includes('...')) continue;
    const r = ranks[i];
    if (r === null || r === undefined) return 'ellipsis with an operand of unknown rank';
    const n = r - letters(terms[i]!).length;
    if (n < 0 || (n > 0 && ell > 0 && n !== ell)) return 'ellipsis ranks do not match';
    ellRanks[i] = n;
    if (n > 0) ell = n;
  }
  const labels = ellipsisLabels(ell);
  const inputs = terms.map((s, i) => (s.includes('...') ? s.replace('...', labels.slice(ell - ellRanks[i]!)) : s));
  let output = rhs?.replace('...', labels);
  if (output === undefined) {
    // Implicit output: the ellipsis dims, then the letters appearing once, sorted.
    const counts = new Map<string, number>();
    for (const s of terms) for (const ch of letters(s)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    const once = [...counts].filter(([, n]) => n === 1).map(([ch]) => ch).sort().join('');
    output = (terms.some((s) => s.includes('...')) ? labels : '') + once;
  }
  return { inputs, output };
}

/** Each label's size (the non-1 one when an operand broadcasts); null when one is symbolic only. */
function labelSizes(spec: EinsumSpec, shapes: (Dim[] | null)[]): Map<string, number> | null {
  const sizes = new Map<string, number>();
  const symbolic = new Set<string>();
  for (let i = 0; i < spec.inputs.length; i++) {
    const s = shapes[i];
    if (!s || s.length !== spec.inputs[i]!.length) return null;
    for (let j = 0; j < s.length; j++) {
      const d = s[j];
      const ch = spec.inputs[i]![j]!;
      if (typeof d !== 'number') symbolic.add(ch);
      else if (d !== 1 || !sizes.has(ch)) sizes.set(ch, d);
    }
  }
  for (const ch of symbolic) if ((sizes.get(ch) ?? 1) === 1) return null;
  return sizes;
}

/** A sum of n i.i.d. copies: mean n·μ, E[·²] = n·σ² + n²μ². */
function summed(s: Scale, n: number): Scale {
  if (n === 1) return s;
  const v = Math.max(0, s.meanSquare - s.mean * s.mean);
  return makeScale(n * s.mean, n * v + n * n * s.mean * s.mean, gaussianOf(n * s.mean, n * v + n * n * s.mean * s.mean), derivedConfidence(s));
}

function einsum(ctx: RuleContext): (Scale | null)[] {
  const shapes = ctx.inputTypes.map((t) => t?.shape ?? null);
  const spec = parseEinsum(ctx.attrs.string('equation', '') ?? '', shapes.map((s) => s?.length ?? null));
  const present = ctx.inputs.filter(Boolean) as Scale[];
  if (typeof spec === 'string' || present.length !== ctx.inputs.length || ctx.inputs.length > 2) {
    const why = typeof spec === 'string' ? spec : 'more than two operands';
    return [makeScale(0, 1, gaussianOf(0, 1), 'unknown', { note: `Einsum form not handled (${why})` })];
  }
  const sizes = labelSizes(spec, shapes);
  if (!sizes) return [makeScale(0, 1, gaussianOf(0, 1), 'unknown', { note: 'Einsum sizes unknown' })];
  const out = new Set(spec.output);
  const prod = (labels: string[]): number => labels.reduce((p, ch) => p * (sizes.get(ch) ?? 1), 1);
  // An operand's labels, less those it broadcasts (size 1 against n): it is the same element
  // along them, so a sum over such a label belongs to the other operand alone.
  const labelsOf = (i: number): Set<string> =>
    new Set([...spec.inputs[i]!].filter((ch, j) => !(shapes[i]![j] === 1 && sizes.get(ch)! > 1)));
  if (spec.inputs.length === 1) {
    const dropped = [...new Set(spec.inputs[0]!)].filter((ch) => !out.has(ch));
    return [summed(present[0]!, prod(dropped))];
  }
  const [la, lb] = [labelsOf(0), labelsOf(1)];
  const shared = [...la].filter((ch) => lb.has(ch) && !out.has(ch));
  const onlyA = [...la].filter((ch) => !lb.has(ch) && !out.has(ch));
  const onlyB = [...lb].filter((ch) => !la.has(ch) && !out.has(ch));
  const a = summed(present[0]!, prod(onlyA));
  const b = summed(present[1]!, prod(onlyB));
  const K = prod(shared);
  const m = contraction(a, b, K, null);
  return [makeScale(m.mean, m.meanSquare, gaussianOf(m.mean, m.meanSquare), derivedConfidence(a, b))];
}

// ---------------------------------------------------------------------------------------------
// Backward

/** Products each element of input i takes part in: outputs × K / its element count. */
function terms(ctx: RuleContext, i: number, K: number): number {
  const out = knownProduct(outShapeOf(ctx, 0));
  const n = countOf(ctx, i);
  if (out === null || n === null || n === 0) return K;
  return (out * K) / n;
}

function fanIn(ctx: RuleContext, transA = false): number | null {
  const sa = shapeOf(ctx, 0);
  if (sa && sa.length >= 1) {
    const d = transA && sa.length === 2 ? sa[0] : sa[sa.length - 1];
    if (typeof d === 'number') return d;
  }
  const src = constSource(ctx, 0);
  if (src) return src.dims[transA && src.dims.length === 2 ? 0 : src.dims.length - 1] ?? null;
  return null;
}

function matmulBackward(ctx: BackwardContext, alpha = 1, transA = false): (Scale | null)[] {
  const g = ctx.outputGrads[0];
  const [a, b] = ctx.inputs;
  if (!g || !a || !b) return ctx.inputs.map(() => null);
  const K = fanIn(ctx, transA) ?? 1;
  const G = g.meanSquare * alpha * alpha;
  // ∂A = g·Bᵀ: E[∂A²] = N_out·E[g²]E[b²];  ∂B = Aᵀ·g: E[∂B²] = rows·E[a²]E[g²]   (PRIMER §4)
  const out: (Scale | null)[] = [gradScale(terms(ctx, 0, K) * G * b.meanSquare), gradScale(terms(ctx, 1, K) * G * a.meanSquare)];
  if (ctx.inputs.length > 2) {
    const beta = ctx.attrs.float('beta', 1)!;
    out.push(ctx.inputs[2] ? gradScale(g.meanSquare * beta * beta * broadcastRepeat(ctx, 2)) : null);
  }
  if (coherenceOf(g) && !transA) coherentMatmulBackward(ctx, out, alpha);
  return out;
}

/**
 * A coherent output gradient g = c + w (coherence.ts), c constant along some row axes (a mean over
 * tokens, say), and a 2-D second operand W:
 *  - ∂W = Σ_rows x_r g_r: E[∂W²] = P_R·(F·E[x²] + P_{R∩A}·C·D_x) over the rows R (x's feature
 *    means make D_x large);
 *  - ∂x = g·Wᵀ acts on the last axis only: c·Wᵀ is still constant along the row axes of A, with
 *    the same share of the power;
 *  - a bias summed over the rows: P_R·(F + P_{R∩A}·C).
 */
function coherentMatmulBackward(ctx: BackwardContext, out: (Scale | null)[], alpha: number): void {
  const g = ctx.outputGrads[0]!;
  const coh = coherenceOf(g)!;
  const ys = outShape(ctx);
  const ws = inShape(ctx, 1);
  const xs = inShape(ctx, 0);
  if (!ys || !ws || !xs || ws.length !== 2 || ys.length < 2) return;
  const last = ys.length - 1;
  const rows = ys.map((_, k) => k).filter((k) => k !== last);
  const ga = { ...g, meanSquare: g.meanSquare * alpha * alpha };
  const x = ctx.inputs[0]!;
  const conf = derivedConfidence(g, x);
  const c = conf === 'high' || conf === 'exact' ? 'medium' : conf;
  if (out[1]) {
    const s = summedPower(ga, rows, ys, { X: x.meanSquare, dc: (axes) => inputMeanPower(ctx, 0, axes, ys) });
    if (s) out[1] = gradScale(s.power, c);
  }
  const keep = coh.axes.filter((a) => a !== last);
  if (out[0] && keep.length) out[0] = withCoherence(out[0], { axes: axesToInput(keep, ys.length, xs.length), share: coh.share });
  if (out[2]) {
    const R = broadcastAxes(ctx, 2);
    const beta = ctx.attrs.float('beta', 1)!;
    const s = R ? summedPower({ ...g, meanSquare: g.meanSquare * beta * beta }, R, ys, null) : null;
    if (s) out[2] = gradScale(s.power, c);
  }
}


/** MatMul's stored operand: B's fan-in axis (rank-1 B: its only axis), else A's last axis. */
const matmulReads: StoredReads = (_node, _attrs, stored) => {
  const b = stored(1);
  if (b) return [b.length === 1 ? { input: 1, from: 0, to: 1 } : { input: 1, from: b.length - 2, to: b.length - 1 }];
  const a = stored(0);
  return a && a.length >= 1 ? [{ input: 0, from: a.length - 1, to: a.length }] : [];
};

/** Gemm's stored operand (both 2-D): the contracted axis, after transposition. */
const gemmReads: StoredReads = (_node, attrs, stored) => {
  const b = stored(1);
  if (b?.length === 2) return [attrs.int('transB', 0) ? { input: 1, from: 1, to: 2 } : { input: 1, from: 0, to: 1 }];
  const a = stored(0);
  if (a?.length === 2) return [attrs.int('transA', 0) ? { input: 0, from: 0, to: 1 } : { input: 0, from: 1, to: 2 }];
  return [];
};

export const rules: RuleTable = {
  MatMul: { forward: matmul, backward: (ctx) => matmulBackward(ctx), reads: matmulReads },
  Gemm: {
    reads: gemmReads,
    forward: gemm,
    backward: (ctx) => matmulBackward(ctx, ctx.attrs.float('alpha', 1)!, ctx.attrs.int('transA', 0)! !== 0),
  },
  Einsum: { forward: einsum },
  // Integer in, integer out: nothing to scale.
  MatMulInteger: { forward: () => [null] },
};
