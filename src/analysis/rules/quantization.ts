/**
 * Quantisation ops (PRIMER §5: QuantizeLinear / DequantizeLinear carry FP8 and INT8 in ONNX).
 *
 * - QuantizeLinear q = saturate(round(x / s) + zp): integer outputs carry no scale (null); an FP8
 *   / FP4 output is a float tensor with Scale x/s (per-tensor, per-axis or blocked s; zp is 0 for
 *   float formats).
 * - DequantizeLinear y = (q − zp)·s: exact from the real values when q is a constant (quantised
 *   weights); s·q for a float8 q; for q = QuantizeLinear(x) — the QDQ pair a rewrite inserts — the
 *   elementwise function y = s·(clamp(round(x/s′) + zp′) − zp) of x, integrated exactly (the
 *   rounding steps are breakpoints); otherwise uniform over the representable range, 'low'.
 * - DynamicQuantizeLinear: y_scale = (max(0, max x) − min(0, min x)) / 255 from the expected
 *   extremes of x (reduce.ts order statistics).
 *
 * How DequantizeLinear sees its QuantizeLinear's input: the integer q has no Scale, so
 * QuantizeLinear's rule leaves x's Scale and its parameters in a side table keyed by its Node,
 * and DequantizeLinear looks up its producer (the engine evaluates producers first).
 */
import { DataType, isFloatType } from '../../onnx/dtype.js';
import type { Node } from '../../onnx/model.js';
import type { Scale } from '../scale.js';
import { scaleBy, unknownScale } from '../scale.js';
import { reduceScale } from './reduce.js';
import { capped, constantValues, hasInput, minConfidence, mixtureScale, numel, numericShape, outputIsFloat, scaleOfValues, zeroScale } from './shape-ops.js';
import type { OpRule, RuleContext, RuleTable } from './types.js';
import { applyElementwise, type ScalarFn } from './unary.js';

/** Integer range of a quantised type. */
export function intRange(dtype: number): [number, number] | null {
  switch (dtype) {
    case DataType.INT8:
      return [-128, 127];
    case DataType.UINT8:
      return [0, 255];
    case DataType.INT16:
      return [-32768, 32767];
    case DataType.UINT16:
      return [0, 65535];
    case DataType.INT32:
      return [-2147483648, 2147483647];
    case DataType.UINT32:
      return [0, 4294967295];
    case DataType.INT4:
      return [-8, 7];
    case DataType.UINT4:
      return [0, 15];
    case DataType.INT2:
      return [-2, 1];
    case DataType.UINT2:
      return [0, 3];
    default:
      return null;
  }
}

interface QParams {
  scales: Float64Array;
  zps: Float64Array | null;
  axis: number;
  blockSize: number;
}

function qParams(ctx: RuleContext): QParams | null {
  const scales = constantValues(ctx, 1);
  if (!scales || scales.length === 0) return null;
  const zps = hasInput(ctx, 2) ? constantValues(ctx, 2) : null;
  return { scales, zps, axis: ctx.attrs.int('axis', 1), blockSize: ctx.opset >= 21 ? ctx.attrs.int('block_size', 0) : 0 };
}

/** Up to 32 groups of (scale, zero point) pairs with their shares of the elements. */
function groups(p: QParams): { s: number; zp: number; weight: number }[] {
  const counts = new Map<string, { s: number; zp: number; weight: number }>();
  p.scales.forEach((s, i) => {
    const zp = p.zps ? (p.zps.length === p.scales.length ? p.zps[i]! : p.zps[0]!) : 0;
    const key = `${s}|${zp}`;
    const e = counts.get(key);
    if (e) e.weight++;
    else counts.set(key, { s, zp, weight: 1 });
  });
  let list = [...counts.values()];
  if (list.length > 32) {
    list.sort((a, b) => a.s - b.s);
    const out: typeof list = [];
    for (let k = 0; k < 32; k++) {
      const lo = Math.floor((k * list.length) / 32);
      const hi = Math.floor(((k + 1) * list.length) / 32);
      if (hi <= lo) continue;
      let s = 0;
      let zp = 0;
      let w = 0;
      for (let i = lo; i < hi; i++) {
        s += list[i]!.s * list[i]!.weight;
        zp += list[i]!.zp * list[i]!.weight;
        w += list[i]!.weight;
      }
      out.push({ s: s / w, zp: zp / w, weight: w });
    }
    list = out;
  }
  return list;
}

/** The quantised type: the zero point's, else output_dtype, else the output's, else uint8. */
function quantType(ctx: RuleContext): number {
  const zpType = ctx.inputTypes[2]?.dtype ?? ctx.constant(2)?.dtype;
  if (zpType) return zpType;
  const od = ctx.attrs.int('output_dtype', 0);
  if (od) return od;
  return ctx.outputTypes[0]?.dtype || DataType.UINT8;
}

const roundHalfEven = (x: number): number => (Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : Math.round(x));

interface Stash {
  x: Scale;
  params: QParams;
  qtype: number;
}
const quantized = new WeakMap<Node, Stash>();

const quantizeLinear: OpRule = {
  forward: (ctx) => {
    const x = ctx.inputs[0];
    const params = qParams(ctx);
    const qtype = quantType(ctx);
    if (x && params) quantized.set(ctx.node, { x, params, qtype });
    else quantized.delete(ctx.node);
    if (!isFloatType(qtype) || !outputIsFloat(ctx, 0, false)) return [null];
    // Float8/Float4 output: x / s (zero point must be 0 for float types).
    if (!x) return [unknownScale('QuantizeLinear: input scale unknown')];
    if (!params) return [capped({ ...x, exactRisk: undefined }, 'low', 'QuantizeLinear: scale not constant')];
    return [mixtureScale(groups(params).map((g) => ({ weight: g.weight, scale: scaleBy(x, 1 / g.s) })))];
  },
};

/** Exact values of (q − zp)·s for a constant q, with per-axis or blocked parameters. */
function dequantizeValues(q: Float64Array, dims: number[], p: QParams): Float64Array {
  const out = new Float64Array(q.length);
  const rank = dims.length;
  const axis = rank ? (p.axis < 0 ? p.axis + rank : p.axis) : 0;
  const zpAt = (i: number): number => (p.zps ? (p.zps.length === p.scales.length ? p.zps[i]! : p.zps[0]!) : 0);
  if (p.scales.length === 1) {
    for (let i = 0; i < q.length; i++) out[i] = (q[i]! - zpAt(0)) * p.scales[0]!;
    return out;
  }
  const inner = numel(dims.slice(axis + 1));
  const D = dims[axis] ?? 1;
  if (p.blockSize <= 0) {
    for (let i = 0; i < q.length; i++) {
      const c = Math.floor(i / inner) % D;
      out[i] = (q[i]! - zpAt(c)) * p.scales[c]!;
    }
    return out;
  }
  // Blocked: the scale tensor has x's shape with dims[axis] → ceil(D / B).
  const nb = Math.ceil(D / p.blockSize);
  for (let i = 0; i < q.length; i++) {
    const outer = Math.floor(i / (inner * D));
    const a = Math.floor(i / inner) % D;
    const j = i % inner;
    const si = (outer * nb + Math.floor(a / p.blockSize)) * inner + j;
    out[i] = (q[i]! - zpAt(si)) * p.scales[si]!;
  }
  return out;
}

const dequantizeLinear: OpRule = {
  forward: (ctx) => {
    if (!outputIsFloat(ctx)) return [null];
    const params = qParams(ctx);
    if (!params) return [{ ...unknownScale('DequantizeLinear: scale not constant'), confidence: 'low' }];
    // (a) constant quantised values (weights): exact.
    const q = constantValues(ctx, 0);
    const t = ctx.constant(0);
    if (q && t) return [scaleOfValues(dequantizeValues(q, t.dims, params), 'dequantised constant')];
    // (b) the output of a QuantizeLinear whose input scale is known: y = f(x), integrated exactly.
    const producer = ctx.node.graph.producerOf(ctx.node.inputs[0] ?? '');
    const stash = producer && producer.opType === 'QuantizeLinear' ? quantized.get(producer) : undefined;
    if (stash) return [qdq(stash, params)];
    // (c) a float8 input: s·q.
    const x = ctx.inputs[0];
    if (x) return [mixtureScale(groups(params).map((g) => ({ weight: g.weight, scale: scaleBy(x, g.s) })))];
    // (d) integers of unknown values: uniform over the representable range.
    const range = intRange(ctx.inputTypes[0]?.dtype ?? quantType(ctx));
    if (!range) return [{ ...unknownScale('DequantizeLinear: input values unknown'), confidence: 'low' }];
    const parts = groups(params).map((g) => {
      const lo = (range[0] - g.zp) * g.s;
      const hi = (range[1] - g.zp) * g.s;
      const mean = (lo + hi) / 2;
      const meanSquare = (lo * lo + lo * hi + hi * hi) / 3;
      const s: Scale = { mean, meanSquare, dist: { kind: 'uniform', lo, hi }, absmax: Math.max(Math.abs(lo), Math.abs(hi)), confidence: 'low' };
      return { weight: g.weight, scale: s };
    });
    return [capped(mixtureScale(parts), 'low', 'quantised input of unknown values: uniform over the representable range')];
  },
};

/** DequantizeLinear(QuantizeLinear(x)): the elementwise fake-quantisation of x. */
function qdq(stash: Stash, dq: QParams): Scale {
  const range = intRange(stash.qtype);
  const qg = groups(stash.params);
  const dg = groups(dq);
  const sameLayout = qg.length === dg.length;
  const parts = qg.map((g, i) => {
    const d = sameLayout ? dg[i]! : dg[0]!;
    const [qmin, qmax] = range ?? [-Infinity, Infinity];
    const f = (v: number): number => d.s * (Math.min(qmax, Math.max(qmin, roundHalfEven(v / g.s) + g.zp)) - d.zp);
    // Jumps of round(): x = s·(k + ½ − zp); the grid is generated for the range actually covered.
    const fn: ScalarFn = {
      f,
      d: (v) => (roundHalfEven(v / g.s) + g.zp > qmin && roundHalfEven(v / g.s) + g.zp < qmax ? d.s / g.s : 0),
      breaks: (lo, hi) => {
        const a = Math.max(Math.ceil(lo / g.s - 0.5), qmin - g.zp - 1);
        const b = Math.min(Math.floor(hi / g.s - 0.5), qmax - g.zp + 1);
        if (!(b - a <= 4096)) return [];
        const out: number[] = [];
        for (let k = a; k <= b; k++) out.push(g.s * (k + 0.5));
        return out;
      },
      monotone: 1,
      ...(range ? { range: [d.s * (qmin - d.zp), d.s * (qmax - d.zp)] as [number, number] } : {}),
    };
    return { weight: g.weight, fn };
  });
  const y = applyElementwise(stash.x, { parts }, 'QDQ');
  return { ...y, confidence: minConfidence(y.confidence, 'high'), note: 'fake quantisation of the QuantizeLinear input' };
}

const dynamicQuantizeLinear: OpRule = {
  forward: (ctx) => {
    const x = ctx.inputs[0];
    const shape = numericShape(ctx.inputTypes[0]);
    if (!x) return [null, unknownScale('DynamicQuantizeLinear: input scale unknown'), null];
    const n = shape ? numel(shape) : null;
    if (!n) return [null, { ...unknownScale('DynamicQuantizeLinear: input size unknown'), confidence: 'low' }, null];
    const hi = Math.max(0, reduceScale(x, n, 'max').mean);
    const lo = Math.min(0, reduceScale(x, n, 'min').mean);
    const s = zeroScale((hi - lo) / 255);
    return [null, { ...s, confidence: minConfidence(x.confidence, 'medium'), note: 'from the expected extremes of the input' }, null];
  },
};

const intOutputs: OpRule = { forward: (ctx) => ctx.node.outputs.map(() => null) };

export const rules: RuleTable = {
  QuantizeLinear: quantizeLinear,
  DequantizeLinear: dequantizeLinear,
  DynamicQuantizeLinear: dynamicQuantizeLinear,
  ConvInteger: intOutputs,
  QLinearMatMul: intOutputs,
  QLinearConv: intOutputs,
};
