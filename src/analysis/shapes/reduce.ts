/**
 * Reductions (ReduceSum, ReduceMean, …, ArgMax/ArgMin). The axes are an attribute before
 * opset 13 for ReduceSum and before 18 for the others, an optional input after. No axes means
 * all axes, unless noop_with_empty_axes=1 (then the op is the identity). keepdims (default 1)
 * keeps reduced dims as 1. Spec: https://onnx.ai/onnx/operators/onnx__ReduceSum.html.
 */
import { DataType } from '../../onnx/dtype.js';
import type { Dim } from '../../onnx/model.js';
import {
  attrOrInput,
  castNumber,
  type ConstValue,
  constValue,
  dtypeOf,
  type FoldFn,
  normAxis,
  type ShapeRule,
  type ShapeTable,
  type ShapeContext,
  shapeOf,
  strides,
  tensor,
} from './types.js';

/** The reduced axes (normalized), 'all', 'none' (noop), or null when not known. */
function reducedAxes(ctx: ShapeContext, rank: number): number[] | null {
  const since = ctx.node.opType === 'ReduceSum' ? 13 : 18;
  const axes = attrOrInput(ctx, 'axes', 1, since);
  if (axes === null) return null;
  if (axes === undefined || axes.length === 0) {
    if (ctx.attrs.int('noop_with_empty_axes', 0) === 1) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((a) => normAxis(ctx, a, rank));
}

function reducedShape(x: Dim[], axes: number[], keep: boolean): Dim[] {
  const out: Dim[] = [];
  x.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keep) out.push(1);
  });
  return out;
}

const REDUCERS: Record<string, ((xs: number[]) => number) | undefined> = {
  ReduceSum: (xs) => xs.reduce((a, b) => a + b, 0),
  ReduceProd: (xs) => xs.reduce((a, b) => a * b, 1),
  ReduceMax: (xs) => Math.max(...xs),
  ReduceMin: (xs) => Math.min(...xs),
  ReduceMean: (xs) => xs.reduce((a, b) => a + b, 0) / xs.length,
};

/** Folds a reduction of a small known tensor (ReduceProd of a shape: element counts). */
const foldReduce: FoldFn = (ctx) => {
  const fn = REDUCERS[ctx.node.opType];
  const v: ConstValue | null = ctx.inputValues[0] ?? null;
  if (!fn || !v) return null;
  const axes = reducedAxes(ctx, v.dims.length);
  if (!axes) return null;
  const keep = ctx.attrs.int('keepdims', 1) === 1;
  const outDims = reducedShape(v.dims, axes, keep) as number[];
  const groups = new Map<number, number[]>();
  const inStrides = strides(v.dims);
  const keptDims = v.dims.map((d, i) => (axes.includes(i) ? 1 : d));
  const keptStrides = strides(keptDims);
  for (let flat = 0; flat < v.data.length; flat++) {
    let key = 0;
    for (let ax = 0; ax < v.dims.length; ax++) {
      if (axes.includes(ax)) continue;
      key += (Math.floor(flat / inStrides[ax]!) % v.dims[ax]!) * keptStrides[ax]!;
    }
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(v.data[flat]!);
  }
  const n = keptDims.reduce((a, b) => a * b, 1);
  const out: number[] = [];
  for (let k = 0; k < n; k++) out.push(castNumber(fn(groups.get(k) ?? []), v.dtype));
  return [constValue(v.dtype, outDims, out)];
};

const reduce: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const dtype = dtypeOf(ctx, 0);
    if (!x) return [tensor(dtype, null)];
    const axes = reducedAxes(ctx, x.length);
    const keep = ctx.attrs.int('keepdims', 1) === 1;
    if (!axes) return [tensor(dtype, keep ? x.map((d) => (d === 1 ? 1 : null)) : null)];
    return [tensor(dtype, reducedShape(x, axes, keep))];
  },
  fold: foldReduce,
};

/** ArgMax/ArgMin: one axis (attribute, default 0), int64 indices. */
const argReduce: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    if (!x) return [tensor(DataType.INT64, null)];
    const axis = normAxis(ctx, ctx.attrs.int('axis', 0), x.length);
    return [tensor(DataType.INT64, reducedShape(x, [axis], ctx.attrs.int('keepdims', 1) === 1))];
  },
};

export const shapes: ShapeTable = {
  ArgMax: argReduce,
  ArgMin: argReduce,
};
for (const op of [
  'ReduceSum',
  'ReduceMean',
  'ReduceMax',
  'ReduceMin',
  'ReduceProd',
  'ReduceL1',
  'ReduceL2',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'ReduceSumSquare',
]) {
  shapes[op] = reduce;
}
