/**
 * Channel-resolved scales: per-channel moments (E[x_c], E[x_c²]) along one "channel" axis of a
 * tensor (or two, for attention heads), carried next to the Scales by the engine.
 *
 * Why: the element-i.i.d. picture of PRIMER §3 gets every tensor's RMS right after a matmul or a
 * conv, but each output channel m of y = W·x has its own mean μ·Σ_k w_km — a real, data-independent
 * offset. Reductions over the other axes keep those offsets (ReduceMean over space of a CNN
 * feature map, global average pooling, squeeze-and-excitation): E[mean²] = E_c[μ_c²] + E_c[v_c]/n,
 * not μ² + σ²/n. And channels of very different scales decide which elements underflow.
 *
 * With stored weights the per-channel moments follow exactly (inputs i.i.d. within a channel):
 *   Conv / MatMul / Gemm:  mean_m = Σ_c μ_c·S_mc + b_m,  E[y_m²] = mean_m² + Σ_c v_c·Q_mc
 *     (S_mc = Σ_taps w, Q_mc = Σ_taps w², per border pattern of valid taps for a conv);
 *   BatchNormalization, Add/Mul with per-channel constants: affine per channel;
 *   LayerNormalization over the channel axis: ẑ_f = (x_f − x̄)/σ_row per feature, then γ_f, β_f;
 *   elementwise f: E[f(x_c)], E[f(x_c)²] for x_c ~ N(μ_c, v_c) (when the channel is Gaussian);
 *   ReduceMean over non-channel axes: μ_c, μ_c² + v_c/n;
 *   attention P·V: rows of a softmax sum to 1, so y_c keeps V's channel mean: μ_c, μ_c² + K·E[p²]·v_c;
 *   layout ops move the axis (a feature axis split into heads × d becomes two channel axes);
 *   anything else drops the channel view.
 * The engine then takes the tensor's moments as the channel averages and its law as a mixture
 * over channel groups.
 */
import { isFloatType } from '../onnx/dtype.js';
import type { Dim, Node } from '../onnx/model.js';
import { erfc } from '../formats/special.js';
import { applyFn, gaussHermite, mixtureOf, momentsOf, scaleDist } from './dist.js';
import { constArray, constSource } from './helpers.js';
import { sliceSums } from './weights.js';
import { gaussExpectMany, type Breaks } from './quadrature.js';
import { convTapPatterns } from './rules/conv.js';
import type { RuleContext } from './rules/types.js';
import { UNARY } from './rules/unary.js';
import { compositionOf, IDENT } from './lineage.js';
import type { PredictedDistribution, Scale } from './scale.js';

export interface ChannelStats {
  /** Channel axis (non-negative) in a tensor of rank `rank`. */
  axis: number;
  /**
   * A second channel axis, when channels span two axes (attention heads: [.., heads, .., d]);
   * the channel index is then i_axis·size(minor) + i_minor.
   */
  minor?: number;
  rank: number;
  mean: Float64Array;
  ms: Float64Array;
  /** Within a channel the values are ~Gaussian (sums of many terms, or affine maps of them). */
  gaussian: boolean;
}

/** Largest channel count tracked. */
const MAX_CHANNELS = 1 << 14;
/** Largest multiply-add count spent on one node's channel statistics. */
const MAX_WORK = 4e7;
/**
 * Stored weights with more elements than this are not decoded whole for channel laws: the
 * per-unit Σ_k w, Σ_k w² that the weight pass reads once (weights.ts `sliceSums`) are used with
 * the input's channel-averaged moments instead — exact when the input's channels share one law
 * (mean_n = μ·S_n, E[y_n²] = mean_n² + σ²·Q_n), and the first-order picture otherwise. Keeps
 * the analysis of a multi-gigabyte model to one read of its weights.
 */
const FULL_READ = 1 << 21;

const vari = (s: ChannelStats, c: number): number => Math.max(0, s.ms[c]! - s.mean[c]! * s.mean[c]!);

function uniform(scale: Scale, axis: number, rank: number, C: number): ChannelStats {
  return {
    axis,
    rank,
    mean: new Float64Array(C).fill(scale.mean),
    ms: new Float64Array(C).fill(scale.meanSquare),
    gaussian: scale.dist.kind === 'gaussian',
  };
}

function numShape(s: Dim[] | null | undefined): number[] | null {
  if (!s) return null;
  return s.every((d): d is number => typeof d === 'number') ? (s as number[]) : null;
}

export interface ChannelContext {
  node: Node;
  ctx: RuleContext;
  /** Channel stats of the node's inputs (undefined: none known). */
  ins: (ChannelStats | undefined)[];
  /** Lineage of the node's output, when it is a function of one root with known channels. */
  lineage?: { rootStats: ChannelStats; fn: (x: number) => number };
}

/** Per-output channel statistics of a node, or null when the channel view does not survive. */
export function channelForward(cc: ChannelContext): (ChannelStats | null)[] | null {
  const op = cc.node.domain === '' ? cc.node.opType : '';
  try {
    if (cc.lineage) return [unaryPerChannel(cc.lineage.rootStats, cc.lineage.fn, [])];
    switch (op) {
      case 'Conv':
        return [conv(cc)];
      case 'MatMul':
      case 'Gemm':
        return [matmul(cc, op === 'Gemm')];
      case 'Gather':
        return [gather(cc)];
      case 'BatchNormalization':
        return [batchNorm(cc)];
      case 'LayerNormalization':
      case 'RMSNormalization':
        return [layerNorm(cc, op === 'LayerNormalization')];
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div':
        return [binary(cc, op)];
      case 'ReduceMean':
      case 'ReduceSum':
      case 'GlobalAveragePool':
        return [reduce(cc, op)];
      case 'Identity':
      case 'Dropout':
        return cc.ins[0] ? [cc.ins[0]] : null;
      case 'Cast':
      case 'CastLike':
        return cc.ins[0] && isFloatType(cc.ctx.outputTypes[0]?.dtype ?? 0) ? [cc.ins[0]] : null;
      case 'Reshape':
      case 'Flatten':
      case 'Squeeze':
      case 'Unsqueeze':
        return [reshape(cc)];
      case 'Transpose':
        return [transpose(cc)];
      case 'Split':
        return split(cc);
      case 'Concat':
        return [concat(cc)];
      default: {
        const entry = UNARY[op];
        const x = cc.ins[0];
        if (!entry || !x) return null;
        const spec = entry(cc.ctx);
        const fn = 'parts' in spec ? (spec.parts.length === 1 ? spec.parts[0]!.fn : null) : spec;
        if (!fn) return null;
        return [unaryPerChannel(x, fn.f, fn.breaks ?? [])];
      }
    }
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * E[f(x_c)], E[f(x_c)²] per channel for Gaussian channels: Gauss–Hermite for smooth f (cheap
 * enough for thousands of channels), the piecewise integrator (exact at kinks) when f has
 * breakpoints and there are not too many channels.
 */
function unaryPerChannel(x: ChannelStats, f: (x: number) => number, breaks: Breaks): ChannelStats | null {
  if (!x.gaussian) return null;
  const C = x.mean.length;
  const mean = new Float64Array(C);
  const ms = new Float64Array(C);
  const hasBreaks = typeof breaks === 'function' || breaks.length > 0;
  if (hasBreaks && C <= 1024) {
    const f2 = (v: number): number => {
      const y = f(v);
      return y * y;
    };
    for (let c = 0; c < C; c++) {
      const mu = x.mean[c]!;
      const sd = Math.sqrt(vari(x, c));
      const r = gaussExpectMany(mu, sd, [f, f2], breaks);
      const ok = 1 - r.invalid;
      mean[c] = ok > 0 ? r.values[0]! / ok : 0;
      ms[c] = ok > 0 ? r.values[1]! / ok : 0;
    }
    return { ...x, mean, ms, gaussian: false };
  }
  const gh = gaussHermite(hasBreaks ? 96 : 40);
  const n = gh.x.length;
  const gw = gh.w;
  // f at μ_c + σ_c·x_i for every channel and node, shared with other functions of the same
  // channels (SiLU's x·sigmoid(x) reuses the Sigmoid node's values).
  const ys = valuesAt(f, ghPoints(x, gh.x));
  for (let c = 0; c < C; c++) {
    let a = 0;
    let b = 0;
    let w = 0;
    const base = c * n;
    for (let i = 0; i < n; i++) {
      const y = ys[base + i]!;
      if (!Number.isFinite(y)) continue;
      a += gw[i]! * y;
      b += gw[i]! * y * y;
      w += gw[i]!;
    }
    mean[c] = w > 0 ? a / w : 0;
    ms[c] = w > 0 ? b / w : 0;
  }
  return { ...x, mean, ms, gaussian: false };
}

/** Quadrature points μ_c + σ_c·x_i (channel-major) of channel stats, per rule; by stats arrays. */
const pointCache = new WeakMap<Float64Array, { ms: Float64Array; nodes: Float64Array; pts: Float64Array }[]>();

function ghPoints(x: ChannelStats, nodes: Float64Array): Float64Array {
  let list = pointCache.get(x.mean);
  if (!list) pointCache.set(x.mean, (list = []));
  for (const e of list) if (e.ms === x.ms && e.nodes === nodes) return e.pts;
  const C = x.mean.length;
  const n = nodes.length;
  const pts = new Float64Array(C * n);
  for (let c = 0; c < C; c++) {
    const mu = x.mean[c]!;
    const sd = Math.sqrt(vari(x, c));
    for (let i = 0; i < n; i++) pts[c * n + i] = mu + sd * nodes[i]!;
  }
  list.push({ ms: x.ms, nodes, pts });
  return pts;
}

/** Recent tables of function values at point sets (a few, bounded in size). */
const valueTables: { fn: (x: number) => number; pts: Float64Array; vals: Float64Array }[] = [];
const VALUE_TABLE_ELEMENTS = 1 << 22;
let valueTableElements = 0;

/**
 * fn at every point of pts. A composed lineage function is evaluated from its operands' tables
 * (the same arithmetic per point as calling it), so operands already tabulated are not recomputed.
 */
function valuesAt(fn: (x: number) => number, pts: Float64Array): Float64Array {
  if (fn === IDENT) return pts;
  for (const t of valueTables) if (t.fn === fn && t.pts === pts) return t.vals;
  const N = pts.length;
  const out = new Float64Array(N);
  const comp = compositionOf(fn);
  const [p0, p1] = comp ? comp.args : [];
  if (comp && comp.op === 'unary' && p0 && 'fn' in p0) {
    const g = comp.unary!;
    const A = valuesAt(p0.fn, pts);
    for (let p = 0; p < N; p++) out[p] = g(A[p]!);
  } else if (comp && comp.op === 'Mul' && p0 && p1 && 'fn' in p0 && 'fn' in p1) {
    const A = valuesAt(p0.fn, pts);
    const B = valuesAt(p1.fn, pts);
    for (let p = 0; p < N; p++) out[p] = A[p]! * B[p]!;
  } else if (comp && comp.op === 'Add' && p0 && p1 && 'fn' in p0 && 'fn' in p1) {
    const A = valuesAt(p0.fn, pts);
    const B = valuesAt(p1.fn, pts);
    for (let p = 0; p < N; p++) out[p] = A[p]! + B[p]!;
  } else if (comp) {
    const k = comp.args.length;
    const tabs = comp.args.map((a) => ('c' in a ? null : valuesAt(a.fn, pts)));
    const consts = comp.args.map((a) => ('c' in a ? a.c : 0));
    const vals = new Array<number>(k);
    for (let j = 0; j < k; j++) vals[j] = consts[j]!;
    const f = comp.f;
    for (let p = 0; p < N; p++) {
      for (let j = 0; j < k; j++) {
        const t = tabs[j];
        if (t) vals[j] = t[p]!;
      }
      out[p] = f(vals);
    }
  } else for (let p = 0; p < N; p++) out[p] = fn(pts[p]!);
  valueTables.push({ fn, pts, vals: out });
  valueTableElements += N;
  while (valueTables.length > 1 && valueTableElements > VALUE_TABLE_ELEMENTS) valueTableElements -= valueTables.shift()!.vals.length;
  return out;
}

/** Channel stats of input i seen along `axis` with C channels (uniform when none are known). */
function inputAlong(cc: ChannelContext, i: number, axis: number, rank: number, C: number): ChannelStats | null {
  const s = cc.ins[i];
  if (s) return s.axis === axis && s.minor === undefined && s.mean.length === C ? s : null;
  const sc = cc.ctx.inputs[i];
  return sc ? uniform(sc, axis, rank, C) : null;
}

function weights(cc: ChannelContext, i: number): { dims: number[]; v: ArrayLike<number> } | null {
  const src = constSource(cc.ctx, i);
  if (!src) return null;
  const v = constArray(cc.ctx, i, 1 << 24);
  return v ? { dims: src.dims, v } : null;
}

function conv(cc: ChannelContext): ChannelStats | null {
  const w = weights(cc, 1);
  const xs = cc.ctx.inputTypes[0]?.shape;
  if (!w || !xs || w.dims.length < 3) return null;
  const group = cc.ctx.attrs.int('group', 1)!;
  const M = w.dims[0]!;
  const Cg = w.dims[1]!;
  const kvol = w.dims.slice(2).reduce((a, b) => a * b, 1);
  const Cin = Cg * group;
  if (M > MAX_CHANNELS) return null;
  const x = inputAlong(cc, 0, 1, xs.length, Cin);
  if (!x) return null;
  let patterns = convTapPatterns(cc.ctx, false);
  if (!patterns) return null;
  if (patterns.length * M * Cg * kvol > MAX_WORK) {
    // Too many border patterns for the budget: one average pattern with fractional taps.
    const p = new Float64Array(kvol);
    for (const pt of patterns) for (const j of pt.taps) p[j]! += pt.share;
    patterns = [{ taps: [...p.keys()], share: 1 }];
    (patterns as { taps: number[]; share: number; weights?: Float64Array }[])[0]!.weights = p;
  }
  const bias = constArray(cc.ctx, 2);
  const mean = new Float64Array(M);
  const ms = new Float64Array(M);
  const perGroup = M / group;
  for (const pt of patterns) {
    const tw = (pt as { weights?: Float64Array }).weights;
    for (let m = 0; m < M; m++) {
      const g = Math.floor(m / perGroup);
      let s = 0;
      let e = 0;
      for (let ci = 0; ci < Cg; ci++) {
        const c = g * Cg + ci;
        const base = (m * Cg + ci) * kvol;
        let sw = 0;
        let sw2 = 0;
        for (const j of pt.taps) {
          const wv = w.v[base + j]!;
          const k = tw ? tw[j]! : 1;
          sw += k * wv;
          sw2 += k * wv * wv;
        }
        s += x.mean[c]! * sw;
        e += vari(x, c) * sw2;
      }
      const b = bias ? bias[m % bias.length]! : 0;
      mean[m]! += pt.share * (s + b);
      ms[m]! += pt.share * ((s + b) * (s + b) + e);
    }
  }
  return { axis: 1, rank: xs.length, mean, ms, gaussian: Cg * kvol >= 4 || x.gaussian };
}

/**
 * P·V with V channel-resolved along dims other than its contraction axis (attention output): per
 * channel c, y_c = Σ_k p_k v_kc gives E[y_c] = E[Σp]·μ_c and E[y_c²] = E[(Σp)²]·μ_c² + K·E[p²]·v_c.
 * Rows of a softmax sum to 1 exactly (E[Σp] = E[(Σp)²] = 1); otherwise p is taken i.i.d.
 */
function weightedSum(cc: ChannelContext): ChannelStats | null {
  const v = cc.ins[1];
  const p = cc.ctx.inputs[0];
  const vs = numShape(cc.ctx.inputTypes[1]?.shape);
  if (!v || !p || cc.ins[0] || !vs || vs.length < 2 || v.rank !== vs.length) return null;
  const r = vs.length;
  if (v.axis === r - 2 || v.minor === r - 2) return null;
  const K = vs[r - 2]!;
  const out = cc.ctx.outputTypes[0]?.shape;
  const orank = out?.length ?? r;
  const shift = orank - r;
  let sum1: number;
  let sum2: number;
  if (rowsSumToOne(cc.node)) {
    sum1 = 1;
    sum2 = 1;
  } else {
    sum1 = K * p.mean;
    sum2 = K * p.meanSquare + K * (K - 1) * p.mean * p.mean;
  }
  const C = v.mean.length;
  const mean = new Float64Array(C);
  const ms = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    mean[c] = sum1 * v.mean[c]!;
    ms[c] = sum2 * v.mean[c]! * v.mean[c]! + K * p.meanSquare * vari(v, c);
  }
  return { axis: v.axis + shift, ...(v.minor !== undefined ? { minor: v.minor + shift } : {}), rank: orank, mean, ms, gaussian: K >= 4 };
}

/** Is input 0 of a node the output of a Softmax (through NaN guards and layout ops)? */
function rowsSumToOne(node: Node): boolean {
  let name = node.inputs[0] ?? '';
  for (let depth = 0; depth < 6; depth++) {
    const p = node.graph.producerOf(name);
    if (!p) return false;
    if (p.opType === 'Softmax') return true;
    if (p.opType === 'Where') name = p.inputs[2] ?? '';
    else if (['Identity', 'Cast', 'Dropout'].includes(p.opType)) name = p.inputs[0] ?? '';
    else return false;
  }
  return false;
}

function matmul(cc: ChannelContext, gemm: boolean): ChannelStats | null {
  const src = constSource(cc.ctx, 1);
  if (!gemm && !src) return weightedSum(cc);
  const as = cc.ctx.inputTypes[0]?.shape;
  if (!src || !as || src.dims.length !== 2 || as.length < 1) return null;
  if (gemm && cc.ctx.attrs.int('transA', 0)) return null;
  const transB = gemm && cc.ctx.attrs.int('transB', 0) !== 0;
  const K = transB ? src.dims[1]! : src.dims[0]!;
  const N = transB ? src.dims[0]! : src.dims[1]!;
  if (N > MAX_CHANNELS || K * N > MAX_WORK) return null;
  const rank = as.length;
  const x = inputAlong(cc, 0, rank - 1, rank, K);
  if (!x) return null;
  const alpha = gemm ? cc.ctx.attrs.float('alpha', 1)! : 1;
  const beta = gemm ? cc.ctx.attrs.float('beta', 1)! : 1;
  let bias: ArrayLike<number> | null = null;
  if (gemm && cc.ctx.inputs[2]) {
    bias = constArray(cc.ctx, 2);
    if (!bias || (bias.length !== N && bias.length !== 1)) return null;
  }
  const mean = new Float64Array(N);
  const ms = new Float64Array(N);
  const finish = (n: number, s: number, e: number): void => {
    const m = alpha * s + (bias ? beta * bias[n % bias.length]! : 0);
    mean[n] = m;
    ms[n] = m * m + alpha * alpha * e;
  };
  if (K * N > FULL_READ) {
    // Per unit n: Σ_k w_kn (S_n) and Σ_k w_kn² (Q_n), with x's channel-averaged mean and variance.
    const cols = sliceSums(src, transB ? 1 : 0, transB ? 2 : 1);
    let mu = 0;
    let v = 0;
    for (let k = 0; k < K; k++) {
      mu += x.mean[k]! / K;
      v += vari(x, k) / K;
    }
    for (let n = 0; n < N; n++) finish(n, mu * cols.sums[n]!, v * cols.sumSqs[n]!);
    return { axis: rank - 1, rank, mean, ms, gaussian: K >= 4 || x.gaussian };
  }
  const w = constArray(cc.ctx, 1, FULL_READ)!;
  const xm = x.mean;
  const xv = new Float64Array(K);
  for (let k = 0; k < K; k++) xv[k] = vari(x, k);
  if (transB) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      let e = 0;
      const row = n * K;
      for (let k = 0; k < K; k++) {
        const wv = w[row + k]!;
        s += xm[k]! * wv;
        e += xv[k]! * wv * wv;
      }
      finish(n, s, e);
    }
  } else {
    // k outer, n inner (rows of w in memory order): every unit still sums over k in order.
    const sA = new Float64Array(N);
    const eA = new Float64Array(N);
    for (let k = 0; k < K; k++) {
      const m = xm[k]!;
      const v = xv[k]!;
      const row = k * N;
      for (let n = 0; n < N; n++) {
        const wv = w[row + n]!;
        sA[n]! += m * wv;
        eA[n]! += v * wv * wv;
      }
    }
    for (let n = 0; n < N; n++) finish(n, sA[n]!, eA[n]!);
  }
  return { axis: rank - 1, rank, mean, ms, gaussian: K >= 4 || x.gaussian };
}

function gather(cc: ChannelContext): ChannelStats | null {
  const t = cc.ctx.constant(0);
  const out = cc.ctx.outputTypes[0]?.shape;
  if (!t || !t.isFloat || t.dims.length !== 2 || (cc.ctx.attrs.int('axis', 0) ?? 0) !== 0 || !out) return null;
  const [V, D] = t.dims as [number, number];
  if (D > MAX_CHANNELS) return null;
  const ids = constArray(cc.ctx, 1);
  const mean = new Float64Array(D);
  const ms = new Float64Array(D);
  if (!ids || t.count > FULL_READ) {
    // Every row equally likely (unknown ids; or a big table, read once by the weight pass):
    // the per-column mean and mean square over the V rows.
    const cols = sliceSums(t, 0, 1);
    for (let d = 0; d < D; d++) {
      mean[d] = cols.sums[d]! / V;
      ms[d] = cols.sumSqs[d]! / V;
    }
    return { axis: out.length - 1, rank: out.length, mean, ms, gaussian: false };
  }
  const rows = Array.from(ids, (r) => (r < 0 ? r + V : r)).filter((r) => r >= 0 && r < V);
  if (!rows.length) return null;
  const vals = t.toFloat64();
  for (const r of rows)
    for (let d = 0; d < D; d++) {
      const v = vals[r * D + d]!;
      mean[d]! += v / rows.length;
      ms[d]! += (v * v) / rows.length;
    }
  return { axis: out.length - 1, rank: out.length, mean, ms, gaussian: false };
}

function batchNorm(cc: ChannelContext): ChannelStats | null {
  const xs = cc.ctx.inputTypes[0]?.shape;
  const [g, b, mu, v] = [1, 2, 3, 4].map((i) => constArray(cc.ctx, i));
  if (!xs || !g || !b || !mu || !v || cc.ctx.attrs.int('training_mode', 0)) return null;
  const C = g.length;
  const x = inputAlong(cc, 0, 1, xs.length, C);
  if (!x) return null;
  const eps = cc.ctx.attrs.float('epsilon', 1e-5)!;
  const mean = new Float64Array(C);
  const ms = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const a = g[c]! / Math.sqrt(v[c % v.length]! + eps);
    const s = b[c % b.length]! - a * mu[c % mu.length]!;
    mean[c] = a * x.mean[c]! + s;
    ms[c] = a * a * x.ms[c]! + 2 * a * s * x.mean[c]! + s * s;
  }
  return { axis: 1, rank: xs.length, mean, ms, gaussian: x.gaussian };
}

function layerNorm(cc: ChannelContext, centre: boolean): ChannelStats | null {
  const xs = cc.ctx.inputTypes[0]?.shape;
  if (!xs) return null;
  const rank = xs.length;
  let axis = cc.ctx.attrs.int('axis', -1)!;
  if (axis < 0) axis += rank;
  if (axis !== rank - 1) return null;
  const K = xs[rank - 1];
  if (typeof K !== 'number' || K > MAX_CHANNELS) return null;
  const x = inputAlong(cc, 0, rank - 1, rank, K);
  if (!x) return null;
  const eps = cc.ctx.attrs.float('epsilon', 1e-5)!;
  const gam = constArray(cc.ctx, 1);
  const bet = centre && cc.ctx.inputs[2] ? constArray(cc.ctx, 2) : null;
  if (cc.ctx.inputs[1] && !gam) return null;
  if (centre && cc.ctx.inputs[2] && !bet) return null;
  let xbar = 0;
  for (let f = 0; f < K; f++) xbar += x.mean[f]! / K;
  // Expected row variance (centred) or row mean square (RMS).
  let rowVar = 0;
  for (let f = 0; f < K; f++) rowVar += (centre ? vari(x, f) * ((K - 1) / K) + (x.mean[f]! - xbar) ** 2 : x.ms[f]!) / K;
  const denom = Math.sqrt(rowVar + eps);
  const mean = new Float64Array(K);
  const ms = new Float64Array(K);
  for (let f = 0; f < K; f++) {
    const zm = ((centre ? x.mean[f]! - xbar : x.mean[f]!) / denom);
    const zv = (vari(x, f) * (centre ? (K - 1) / K : 1)) / (denom * denom);
    const gm = gam ? gam[f % gam.length]! : 1;
    const bt = bet ? bet[f % bet.length]! : 0;
    mean[f] = gm * zm + bt;
    ms[f] = gm * gm * (zm * zm + zv) + 2 * gm * bt * zm + bt * bt;
  }
  return { axis: rank - 1, rank, mean, ms, gaussian: x.gaussian };
}

/** Per-channel view of an operand in the output frame: stats, constant vector, or uniform. */
type Operand =
  | { kind: 'stats'; s: ChannelStats }
  | { kind: 'vector'; v: ArrayLike<number> }
  | { kind: 'global'; mean: number; ms: number; gaussian: boolean; isConst: boolean };

function operand(cc: ChannelContext, i: number, outRank: number): { op: Operand; axis: number | null; minor?: number; C: number | null } | null {
  const sc = cc.ctx.inputs[i];
  if (!sc) return null;
  const st = cc.ins[i];
  if (st) {
    const shift = outRank - st.rank;
    return { op: { kind: 'stats', s: st }, axis: st.axis + shift, ...(st.minor !== undefined ? { minor: st.minor + shift } : {}), C: st.mean.length };
  }
  const src = constSource(cc.ctx, i);
  if (src) {
    const dims = src.dims;
    const nonOne = dims.map((d, k) => (d !== 1 ? k : -1)).filter((k) => k >= 0);
    if (nonOne.length === 0) {
      const v = constArray(cc.ctx, i)!;
      return { op: { kind: 'global', mean: v[0]!, ms: v[0]! * v[0]!, gaussian: true, isConst: true }, axis: null, C: null };
    }
    if (nonOne.length === 1) {
      const v = constArray(cc.ctx, i);
      if (v) return { op: { kind: 'vector', v }, axis: nonOne[0]! + (outRank - dims.length), C: dims[nonOne[0]!]! };
    }
    return { op: { kind: 'global', mean: sc.mean, ms: sc.meanSquare, gaussian: false, isConst: true }, axis: null, C: null };
  }
  return { op: { kind: 'global', mean: sc.mean, ms: sc.meanSquare, gaussian: sc.dist.kind === 'gaussian', isConst: false }, axis: null, C: null };
}

function at(o: Operand, c: number): { m: number; s: number } {
  if (o.kind === 'stats') return { m: o.s.mean[c]!, s: o.s.ms[c]! };
  if (o.kind === 'vector') {
    const v = o.v[c % o.v.length]!;
    return { m: v, s: v * v };
  }
  return { m: o.mean, s: o.ms };
}

function binary(cc: ChannelContext, op: string): ChannelStats | null {
  const out = cc.ctx.outputTypes[0]?.shape;
  const rank = out?.length ?? Math.max(...cc.ins.map((s) => s?.rank ?? 0));
  const a = operand(cc, 0, rank);
  const b = operand(cc, 1, rank);
  if (!a || !b) return null;
  const axes = [a, b].filter((o) => o.axis !== null);
  if (!axes.length || !cc.ins.some(Boolean)) return null;
  const axis = axes[0]!.axis!;
  const minor = axes[0]!.minor;
  const C = axes[0]!.C!;
  if (axes.some((o) => o.axis !== axis || o.minor !== minor || o.C !== C)) return null;
  const mean = new Float64Array(C);
  const ms = new Float64Array(C);
  const isConstB = b.op.kind === 'vector' || (b.op.kind === 'global' && b.op.isConst);
  const isConstA = a.op.kind === 'vector' || (a.op.kind === 'global' && a.op.isConst);
  for (let c = 0; c < C; c++) {
    const x = at(a.op, c);
    const y = at(b.op, c);
    switch (op) {
      case 'Add':
        mean[c] = x.m + y.m;
        ms[c] = x.s + y.s + 2 * x.m * y.m;
        break;
      case 'Sub':
        mean[c] = x.m - y.m;
        ms[c] = x.s + y.s - 2 * x.m * y.m;
        break;
      case 'Mul':
        mean[c] = x.m * y.m;
        ms[c] = x.s * y.s;
        break;
      case 'Div':
        if (!isConstB) return null;
        mean[c] = x.m / y.m;
        ms[c] = x.s / (y.m * y.m);
        break;
    }
  }
  const g = (o: Operand): boolean => (o.kind === 'stats' ? o.s.gaussian : o.kind === 'vector' ? true : o.gaussian);
  let gaussian: boolean;
  if (op === 'Add' || op === 'Sub') gaussian = g(a.op) && g(b.op);
  else gaussian = (isConstB && g(a.op)) || (isConstA && g(b.op));
  return { axis, ...(minor !== undefined ? { minor } : {}), rank, mean, ms, gaussian };
}

function reduceAxes(cc: ChannelContext, rank: number, op: string): number[] | null {
  if (op === 'GlobalAveragePool') return [...Array(rank).keys()].slice(2);
  const fromInput = op === 'ReduceSum' ? cc.ctx.opset >= 13 : cc.ctx.opset >= 18;
  let axes: number[] | null;
  if (fromInput && !cc.ctx.attrs.has('axes')) {
    if (!cc.node.inputs[1]) axes = [];
    else {
      const v = constArray(cc.ctx, 1);
      if (!v) return null;
      axes = Array.from(v);
    }
  } else axes = cc.ctx.attrs.ints('axes') ?? [];
  if (axes.length === 0) return cc.ctx.attrs.int('noop_with_empty_axes', 0) ? null : [...Array(rank).keys()];
  return [...new Set(axes.map((a) => (a < 0 ? a + rank : a)))].sort((p, q) => p - q);
}

function reduce(cc: ChannelContext, op: string): ChannelStats | null {
  const x = cc.ins[0];
  const xs = numShape(cc.ctx.inputTypes[0]?.shape);
  if (!x || !xs) return null;
  const axes = reduceAxes(cc, xs.length, op);
  if (!axes || axes.includes(x.axis) || x.minor !== undefined) return null;
  const n = axes.reduce((p, a) => p * xs[a]!, 1);
  const keep = op === 'GlobalAveragePool' || cc.ctx.attrs.int('keepdims', 1) !== 0;
  const C = x.mean.length;
  const mean = new Float64Array(C);
  const ms = new Float64Array(C);
  const sum = op === 'ReduceSum';
  for (let c = 0; c < C; c++) {
    const v = vari(x, c);
    // Mean of n i.i.d. values of channel c: μ_c, μ_c² + v_c/n; a sum is n times that.
    const m = x.mean[c]!;
    mean[c] = sum ? n * m : m;
    ms[c] = sum ? n * n * m * m + n * v : m * m + v / n;
  }
  const before = axes.filter((a) => a < x.axis).length;
  const rank = keep ? xs.length : xs.length - axes.length;
  return { axis: keep ? x.axis : x.axis - before, rank, mean, ms, gaussian: x.gaussian || n >= 8 };
}

function reshape(cc: ChannelContext): ChannelStats | null {
  const x = cc.ins[0];
  const xs = numShape(cc.ctx.inputTypes[0]?.shape);
  const ys = numShape(cc.ctx.outputTypes[0]?.shape);
  if (!x || !xs || !ys) return null;
  const prod = (d: number[], a: number, b: number): number => d.slice(a, b).reduce((p, q) => p * q, 1);
  if (x.minor !== undefined) {
    // Two consecutive channel axes merged back into one (heads·d → features).
    if (x.minor !== x.axis + 1) return null;
    const P = prod(xs, 0, x.axis);
    const C2 = xs[x.axis]! * xs[x.minor]!;
    for (let k = 0; k < ys.length; k++) if (prod(ys, 0, k) === P && ys[k] === C2) return { axis: k, rank: ys.length, mean: x.mean, ms: x.ms, gaussian: x.gaussian };
    return null;
  }
  const C = xs[x.axis]!;
  {
    // One channel axis split into two consecutive ones (features → heads·d).
    const P = prod(xs, 0, x.axis);
    for (let k = 0; k + 1 < ys.length; k++) {
      if (prod(ys, 0, k) === P && ys[k]! * ys[k + 1]! === C && ys[k] !== 1 && ys[k + 1] !== 1 && ys[k] !== C) {
        return { ...x, axis: k, minor: k + 1, rank: ys.length };
      }
    }
  }
  const prefix = xs.slice(0, x.axis).reduce((a, b) => a * b, 1);
  let p = 1;
  for (let k = 0; k < ys.length; k++) {
    if (p === prefix && ys[k] === C) return { ...x, axis: k, rank: ys.length };
    p *= ys[k]!;
    if (p > prefix) break;
  }
  return null;
}

function transpose(cc: ChannelContext): ChannelStats | null {
  const x = cc.ins[0];
  if (!x) return null;
  const perm = cc.ctx.attrs.ints('perm') ?? [...Array(x.rank).keys()].reverse();
  const k = perm.indexOf(x.axis);
  if (k < 0) return null;
  if (x.minor === undefined) return { ...x, axis: k };
  const j = perm.indexOf(x.minor);
  if (j < 0) return null;
  if (k < j) return { ...x, axis: k, minor: j };
  // The two channel axes swap order: re-index channels (major, minor) → (minor, major).
  const xs = numShape(cc.ctx.inputTypes[0]?.shape);
  if (!xs) return null;
  const A = xs[x.axis]!;
  const B = xs[x.minor]!;
  const mean = new Float64Array(A * B);
  const ms = new Float64Array(A * B);
  for (let a = 0; a < A; a++)
    for (let b = 0; b < B; b++) {
      mean[b * A + a] = x.mean[a * B + b]!;
      ms[b * A + a] = x.ms[a * B + b]!;
    }
  return { ...x, axis: j, minor: k, mean, ms };
}

function split(cc: ChannelContext): (ChannelStats | null)[] | null {
  const x = cc.ins[0];
  if (!x) return null;
  let axis = cc.ctx.attrs.int('axis', 0)!;
  if (axis < 0) axis += x.rank;
  const outs = cc.node.outputs.length;
  if (axis !== x.axis && axis !== x.minor) return cc.node.outputs.map(() => x);
  if (x.minor !== undefined) return null;
  let sizes: number[] | null = null;
  const s = cc.node.inputs[1] ? constArray(cc.ctx, 1) : null;
  if (s) sizes = Array.from(s);
  else if (cc.ctx.attrs.ints('split')) sizes = cc.ctx.attrs.ints('split')!;
  else {
    const types = cc.ctx.outputTypes.map((t) => t?.shape?.[axis]);
    if (types.every((d): d is number => typeof d === 'number')) sizes = types;
    else if (x.mean.length % outs === 0) sizes = new Array(outs).fill(x.mean.length / outs);
  }
  if (!sizes || sizes.reduce((a, b) => a + b, 0) !== x.mean.length) return null;
  let o = 0;
  return sizes.map((n) => {
    const r = { ...x, mean: x.mean.slice(o, o + n), ms: x.ms.slice(o, o + n) };
    o += n;
    return r;
  });
}

function concat(cc: ChannelContext): ChannelStats | null {
  const ys = cc.ctx.outputTypes[0]?.shape;
  if (!ys) return null;
  let axis = cc.ctx.attrs.int('axis', 0)!;
  if (axis < 0) axis += ys.length;
  const known = cc.ins.find(Boolean);
  if (!known || known.axis !== axis || known.minor !== undefined) return null;
  const means: number[] = [];
  const mss: number[] = [];
  let gaussian = true;
  for (let i = 0; i < cc.node.inputs.length; i++) {
    const C = cc.ctx.inputTypes[i]?.shape?.[axis];
    if (typeof C !== 'number') return null;
    const s = inputAlong(cc, i, axis, ys.length, C);
    if (!s) return null;
    means.push(...s.mean);
    mss.push(...s.ms);
    gaussian &&= s.gaussian;
  }
  return { axis, rank: ys.length, mean: Float64Array.from(means), ms: Float64Array.from(mss), gaussian };
}

// ---------------------------------------------------------------------------------------------
// From channels back to one Scale

/** Share of exact zeros in a law (points at 0, the dead half of rectified parts). */
function zeroShare(d: PredictedDistribution): number {
  switch (d.kind) {
    case 'discrete': {
      const W = d.weights.reduce((a, b) => a + b, 0) || 1;
      return d.values.reduce((a, v, i) => a + (v === 0 ? d.weights[i]! / W : 0), 0);
    }
    case 'rectified':
      return d.std > 0 ? 0.5 * erfc((d.mean / d.std) * Math.SQRT1_2) : d.mean <= 0 ? 1 : 0;
    case 'mixture':
      return d.parts.reduce((a, p) => a + p.weight * zeroShare(p.dist), 0);
    default:
      return 0;
  }
}

/** Channel groups: channels sorted by mean square (stably), cut into k runs of equal size. */
interface Groups {
  /** Per non-empty group: mean of the channel means, of the mean squares, and the group's share. */
  a: number[];
  b: number[];
  weight: number[];
}

/** Groups by channel stats arrays (layout ops pass them on unchanged: computed once). */
const groupCache = new WeakMap<Float64Array, { mean: Float64Array; groups: number; g: Groups }[]>();

/** The channel indices in order of increasing ms, ties in index order (a stable sort). */
function msOrder(ms: Float64Array): ArrayLike<number> {
  const C = ms.length;
  const sorted = Float64Array.from(ms).sort();
  let distinct = true;
  for (let i = 0; i < C; i++) {
    const v = sorted[i]!;
    if (v !== v || (i > 0 && v === sorted[i - 1])) {
      distinct = false;
      break;
    }
  }
  if (distinct) {
    // Distinct values: each channel's rank is where its value sits in the sorted values.
    const order = new Uint32Array(C);
    for (let c = 0; c < C; c++) {
      const v = ms[c]!;
      let lo = 0;
      let hi = C - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (sorted[mid]! < v) lo = mid + 1;
        else hi = mid;
      }
      order[lo] = c;
    }
    return order;
  }
  return [...Array(C).keys()].sort((p, q) => ms[p]! - ms[q]!);
}

function channelGroups(st: { mean: Float64Array; ms: Float64Array }, groups: number): Groups {
  let list = groupCache.get(st.ms);
  if (!list) groupCache.set(st.ms, (list = []));
  for (const e of list) if (e.mean === st.mean && e.groups === groups) return e.g;
  const C = st.mean.length;
  const order = msOrder(st.ms);
  const k = Math.min(groups, C);
  const g: Groups = { a: [], b: [], weight: [] };
  for (let j = 0; j < k; j++) {
    const lo = Math.floor((j * C) / k);
    const hi = Math.floor(((j + 1) * C) / k);
    if (hi <= lo) continue;
    let a = 0;
    let b = 0;
    for (let i = lo; i < hi; i++) {
      a += st.mean[order[i]!]!;
      b += st.ms[order[i]!]!;
    }
    a /= hi - lo;
    b /= hi - lo;
    g.a.push(a);
    g.b.push(b);
    g.weight.push((hi - lo) / C);
  }
  list.push({ mean: st.mean, groups, g });
  return g;
}

/**
 * Channel averages, and a law that is a mixture over channel groups: each group keeps the rule's
 * shape (a single continuous law rescaled to the group's RMS), or a Gaussian with the group's
 * moments plus the rule's share of exact zeros.
 */
export function scaleFromChannels(st: ChannelStats, rule: Scale, groups = 24): Scale {
  const C = st.mean.length;
  let m1 = 0;
  let m2 = 0;
  for (let c = 0; c < C; c++) {
    m1 += st.mean[c]! / C;
    m2 += st.ms[c]! / C;
  }
  const grp = channelGroups(st, groups);
  const parts: { weight: number; dist: PredictedDistribution }[] = [];
  const single = rule.dist.kind !== 'mixture' && rule.dist.kind !== 'empirical' && rule.dist.kind !== 'gaussian' && rule.dist.kind !== 'discrete';
  const ruleM = single ? momentsOf(rule.dist) : null;
  const ruleRms = ruleM ? Math.sqrt(ruleM.meanSquare) : 0;
  const z = st.gaussian || rule.dist.kind === 'empirical' ? 0 : Math.min(0.999, zeroShare(rule.dist));
  for (let g = 0; g < grp.a.length; g++) {
    const a = grp.a[g]!;
    const b = grp.b[g]!;
    let d: PredictedDistribution;
    if (!st.gaussian && single && ruleRms > 0) d = scaleDist(rule.dist, Math.sqrt(b) / ruleRms);
    else if (z > 0) {
      // The non-zero part carries all the moments: mean a/(1−z), E[x²] b/(1−z).
      const nm = a / (1 - z);
      const nms = b / (1 - z);
      d = mixtureOf([
        { weight: z, dist: { kind: 'discrete', values: [0], weights: [1] } },
        { weight: 1 - z, dist: { kind: 'gaussian', mean: nm, std: Math.sqrt(Math.max(0, nms - nm * nm)) } },
      ]);
    } else d = { kind: 'gaussian', mean: a, std: Math.sqrt(Math.max(0, b - a * a)) };
    parts.push({ weight: grp.weight[g]!, dist: d });
  }
  return { ...rule, mean: m1, meanSquare: Math.max(m2, m1 * m1), dist: mixtureOf(parts), exactRisk: undefined };
}

/** The law of f(x) over channel groups of a Gaussian-channel input x (exact per group). */
export function unaryLawFromChannels(x: ChannelStats, f: (v: number) => number, label: string, groups = 24): PredictedDistribution {
  const grp = channelGroups(x, groups);
  const parts: { weight: number; dist: PredictedDistribution }[] = [];
  for (let g = 0; g < grp.a.length; g++) {
    const a = grp.a[g]!;
    const b = grp.b[g]!;
    parts.push({ weight: grp.weight[g]!, dist: applyFn({ kind: 'gaussian', mean: a, std: Math.sqrt(Math.max(0, b - a * a)) }, f, label) });
  }
  return mixtureOf(parts);
}

