/**
 * Index-driven ops: Gather (+ folding, it is the "pick dim k of Shape(x)" of shape
 * subgraphs), GatherElements, GatherND, the Scatter family, NonZero, TopK, OneHot.
 * Spec: https://onnx.ai/onnx/operators/onnx__Gather.html and siblings.
 */
import { DataType } from '../../onnx/dtype.js';
import type { Dim } from '../../onnx/model.js';
import {
  constValue,
  count,
  dtypeOf,
  fail,
  FOLD_CAP,
  intsInput,
  normAxis,
  type ShapeRule,
  type ShapeTable,
  sameAs,
  type ShapeContext,
  shapeOf,
  tensor,
} from './types.js';

/** Gather: data.shape[:axis] + indices.shape + data.shape[axis+1:]. */
function gatherShape(ctx: ShapeContext): Dim[] | null {
  const data = shapeOf(ctx, 0);
  const idx = shapeOf(ctx, 1);
  if (!data || !idx) return null;
  if (data.length === 0) fail(ctx, 'cannot gather from a scalar');
  const axis = normAxis(ctx, ctx.attrs.int('axis', 0), data.length);
  return [...data.slice(0, axis), ...idx, ...data.slice(axis + 1)];
}

/** Index i into a dim of size d, negatives counted from the end; throws when out of range. */
function indexInto(ctx: ShapeContext, i: number, d: number): number {
  const k = i < 0 ? i + d : i;
  if (k < 0 || k >= d) fail(ctx, `index ${i} is out of range for a dim of size ${d}`);
  return k;
}

const gather: ShapeRule = {
  shape: (ctx) => [tensor(dtypeOf(ctx, 0), gatherShape(ctx))],
  fold: (ctx) => {
    const v = ctx.inputValues[0];
    const ind = ctx.inputValues[1];
    if (!v || !ind || v.dims.length === 0) return null;
    const axis = normAxis(ctx, ctx.attrs.int('axis', 0), v.dims.length);
    const outer = count(v.dims.slice(0, axis));
    const d = v.dims[axis]!;
    const inner = count(v.dims.slice(axis + 1));
    const n = outer * ind.data.length * inner;
    if (n > FOLD_CAP) return null;
    const out: number[] = [];
    for (let o = 0; o < outer; o++) {
      for (const i of ind.data) {
        const k = indexInto(ctx, i, d);
        for (let j = 0; j < inner; j++) out.push(v.data[(o * d + k) * inner + j]!);
      }
    }
    return [constValue(v.dtype, [...v.dims.slice(0, axis), ...ind.dims, ...v.dims.slice(axis + 1)], out)];
  },
  // Shape(x)[k]: pick dims (possibly symbolic) out of a shape tensor.
  dims: (ctx) => {
    const dims = ctx.inputDims[0];
    const ind = intsInput(ctx, 1);
    if (!dims || !ind || shapeOf(ctx, 0)?.length !== 1) return null;
    return [ind.map((i) => dims[indexInto(ctx, i, dims.length)]!)];
  },
};

/** GatherND with batch_dims b: indices.shape[:-1] + data.shape[b + indices.shape[-1]:]. */
function gatherNDShape(ctx: ShapeContext): Dim[] | null {
  const data = shapeOf(ctx, 0);
  const idx = shapeOf(ctx, 1);
  if (!data || !idx || idx.length === 0) return null;
  const last = idx[idx.length - 1];
  if (typeof last !== 'number') return null;
  const b = ctx.attrs.int('batch_dims', 0);
  if (b + last > data.length) fail(ctx, `index depth ${last} with batch_dims ${b} exceeds data rank ${data.length}`);
  return [...idx.slice(0, -1), ...data.slice(b + last)];
}

/** TopK: values and int64 indices, the axis dim replaced by K (input from opset 10, attribute before). */
const topK: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const dtype = dtypeOf(ctx, 0);
    if (!x) return [tensor(dtype, null), tensor(DataType.INT64, null)];
    const axis = normAxis(ctx, ctx.attrs.int('axis', -1), x.length);
    const k = ctx.opset < 10 ? ctx.attrs.int('k') ?? null : intsInput(ctx, 1)?.[0] ?? null;
    if (k !== null && typeof x[axis] === 'number' && k > (x[axis] as number)) fail(ctx, `k = ${k} exceeds the axis size ${x[axis]}`);
    const s = x.map((d, i) => (i === axis ? k : d));
    return [tensor(dtype, s), tensor(DataType.INT64, s)];
  },
};

/** OneHot: the indices' shape with `depth` inserted at axis (default -1: appended); dtype of values. */
const oneHot: ShapeRule = {
  shape: (ctx) => {
    const idx = shapeOf(ctx, 0);
    const dtype = dtypeOf(ctx, 2);
    if (!idx) return [tensor(dtype, null)];
    const depthV = intsInput(ctx, 1)?.[0];
    const depth = depthV === undefined ? null : Math.trunc(depthV);
    const rank = idx.length + 1;
    const axis = normAxis(ctx, ctx.attrs.int('axis', -1), rank);
    const out = [...idx];
    out.splice(axis, 0, depth);
    return [tensor(dtype, out)];
  },
};

/** NonZero: [rank, number of non-zeros] int64; the count is data-dependent unless folded. */
const nonZero: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const v = ctx.inputValues[0];
    const nz = v ? v.data.filter((e) => e !== 0).length : null;
    return [tensor(DataType.INT64, [x ? x.length : null, nz])];
  },
};

const sameAsData: ShapeRule = { shape: (ctx) => [sameAs(ctx, 0)] };

export const shapes: ShapeTable = {
  Gather: gather,
  GatherElements: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), shapeOf(ctx, 1))] },
  GatherND: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), gatherNDShape(ctx))] },
  ScatterND: sameAsData,
  ScatterElements: sameAsData,
  Scatter: sameAsData,
  NonZero: nonZero,
  TopK: topK,
  OneHot: oneHot,
};

