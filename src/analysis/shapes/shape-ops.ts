/**
 * Ops that move data around without computing on it: Reshape, Transpose, Squeeze, Unsqueeze,
 * Flatten, Concat, Split, Slice, Expand, Tile, Pad, Shape, Size, ConstantOfShape, Range, Cast,
 * CastLike, Identity, Where, DepthToSpace, SpaceToDepth, Trilu, CumSum, Constant.
 *
 * These are also the ops of the shape subgraphs exporters emit (Shape → Gather → Unsqueeze →
 * Concat → Reshape), so most fold small constant values and propagate symbolic dims.
 * Attribute-vs-input forms follow the spec's version history
 * (https://onnx.ai/onnx/operators/): Reshape's shape is an input from opset 5 (allowzero from
 * 14); Squeeze/Unsqueeze axes and Split's split are inputs from 13; Slice's starts/ends/axes
 * from 10; Pad's pads from 11; Shape has start/end from 15.
 */
import { DataType } from '../../onnx/dtype.js';
import { constantNodeTensor, type Dim } from '../../onnx/model.js';
import { TensorData } from '../../onnx/tensor.js';
import {
  allKnown,
  attrOrInput,
  broadcastShapes,
  broadcastValue,
  castNumber,
  type ConstValue,
  constValue,
  count,
  dimAdd,
  dimDiv,
  dimMul,
  dimProduct,
  dimsInput,
  dtypeOf,
  fail,
  FOLD_CAP,
  foldLimit,
  fmtShape,
  hasInput,
  intsInput,
  normAxis,
  type ShapeRule,
  type ShapeTable,
  sameAs,
  type ShapeContext,
  shapeOf,
  strides,
  tensor,
  unifyDim,
} from './types.js';

/** Fold/dims helpers for ops that only relabel the dims of input 0. */
function passValue(dims: (ctx: ShapeContext) => Dim[] | null) {
  return (ctx: ShapeContext): (ConstValue | null)[] | null => {
    const v = ctx.inputValues[0];
    if (!v) return null;
    const d = dims(ctx);
    if (!d || !allKnown(d) || count(d) !== v.data.length) return null;
    return [{ dtype: v.dtype, dims: d, data: v.data }];
  };
}
const passDims = (ctx: ShapeContext) => (ctx.inputDims[0] ? [ctx.inputDims[0]] : null);

// ---------------------------------------------------------------------------------------
// Reshape, Flatten, Squeeze, Unsqueeze, Transpose

/**
 * Reshape: 0 copies the input dim at that index (unless allowzero=1), -1 is inferred so the
 * element count is preserved.
 */
function reshapeShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  let target: Dim[] | null = ctx.opset < 5 ? ctx.attrs.ints('shape') ?? null : dimsInput(ctx, 1);
  if (!target) {
    // Only the rank is known, from the length of the shape input.
    const len = shapeOf(ctx, 1)?.[0];
    return typeof len === 'number' ? new Array<Dim>(len).fill(null) : null;
  }
  const allowZero = ctx.opset >= 14 && ctx.attrs.int('allowzero', 0) === 1;
  target = target.map((t, i) => (t === 0 && !allowZero ? (x && i < x.length ? x[i]! : null) : t));
  const minus = target.filter((t) => t === -1).length;
  if (minus > 1) fail(ctx, `shape ${fmtShape(target)} has more than one -1`);
  if (minus === 1) {
    const known = dimProduct(target.filter((t) => t !== -1));
    const total = x ? dimProduct(x) : null;
    const inferred = total === null || known === null ? null : dimDiv(total, known);
    if (typeof total === 'number' && typeof known === 'number' && known !== 0 && total % known !== 0) {
      fail(ctx, `cannot reshape ${fmtShape(x)} (${total} elements) to ${fmtShape(target)}`);
    }
    target = target.map((t) => (t === -1 ? inferred : t));
  } else if (x && allKnown(x) && allKnown(target) && count(x) !== count(target)) {
    fail(ctx, `cannot reshape ${fmtShape(x)} (${count(x)} elements) to ${fmtShape(target)}`);
  }
  return target;
}

/** Flatten: [prod(dims before axis), prod(dims from axis)]. */
function flattenShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  if (!x) return null;
  let axis = ctx.attrs.int('axis', 1);
  if (axis < 0) axis += x.length;
  if (axis < 0 || axis > x.length) fail(ctx, `axis ${ctx.attrs.int('axis', 1)} is out of range for rank ${x.length}`);
  return [dimProduct(x.slice(0, axis)), dimProduct(x.slice(axis))];
}

/** Squeeze: remove the listed axes (each must be 1), or every dim that is 1 when none are listed. */
function squeezeShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  if (!x) return null;
  const axes = attrOrInput(ctx, 'axes', 1, 13);
  if (axes === null) return null;
  if (axes === undefined || axes.length === 0) {
    // Which dims are 1 must be known for the rank to be known.
    if (x.some((d) => typeof d !== 'number')) return null;
    return x.filter((d) => d !== 1);
  }
  const norm = axes.map((a) => normAxis(ctx, a, x.length));
  for (const a of norm) if (typeof x[a] === 'number' && x[a] !== 1) fail(ctx, `cannot squeeze axis ${a} of size ${x[a]}`);
  return x.filter((_, i) => !norm.includes(i));
}

/** Unsqueeze: insert 1s at the listed axes (normalized against the output rank). */
function unsqueezeShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  const axes = attrOrInput(ctx, 'axes', 1, 13);
  if (!x || !axes) return null;
  const rank = x.length + axes.length;
  const norm = axes.map((a) => normAxis(ctx, a, rank));
  const out: Dim[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(norm.includes(i) ? 1 : x[k++]!);
  return out;
}

function transposeShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  if (!x) return null;
  const perm = ctx.attrs.ints('perm') ?? x.map((_, i) => x.length - 1 - i);
  if (perm.length !== x.length) fail(ctx, `perm ${JSON.stringify(perm)} does not match rank ${x.length}`);
  return perm.map((p) => x[normAxis(ctx, p, x.length)]!);
}

function foldTranspose(ctx: ShapeContext): (ConstValue | null)[] | null {
  const v = ctx.inputValues[0];
  if (!v) return null;
  const r = v.dims.length;
  const perm = ctx.attrs.ints('perm') ?? v.dims.map((_, i) => r - 1 - i);
  const outDims = perm.map((p) => v.dims[p]!);
  const inStrides = strides(v.dims);
  const outStrides = strides(outDims);
  const out = new Array<number>(v.data.length);
  for (let flat = 0; flat < out.length; flat++) {
    let src = 0;
    for (let ax = 0; ax < r; ax++) src += (Math.floor(flat / outStrides[ax]!) % outDims[ax]!) * inStrides[perm[ax]!]!;
    out[flat] = v.data[src]!;
  }
  return [constValue(v.dtype, outDims, out)];
}

// ---------------------------------------------------------------------------------------
// Concat, Split

function concatShape(ctx: ShapeContext): Dim[] | null {
  const shapes = ctx.node.inputs.map((_, i) => shapeOf(ctx, i)).filter((_, i) => hasInput(ctx, i));
  const known = shapes.filter((s): s is Dim[] => s !== null);
  if (known.length === 0) return null;
  const rank = known[0]!.length;
  if (known.some((s) => s.length !== rank)) fail(ctx, `inputs have different ranks: ${known.map(fmtShape).join(', ')}`);
  const axis = normAxis(ctx, ctx.attrs.int('axis', 0), rank);
  const out: Dim[] = [];
  for (let d = 0; d < rank; d++) {
    if (d === axis) {
      out.push(shapes.length === known.length ? known.reduce<Dim>((acc, s) => dimAdd(acc, s[d]!), 0) : null);
      continue;
    }
    let u: Dim = null;
    for (const s of known) {
      const next = unifyDim(u, s[d]!);
      if (next === undefined) fail(ctx, `inputs differ on dim ${d}: ${known.map(fmtShape).join(', ')}`);
      u = next;
    }
    out.push(u);
  }
  return out;
}

function foldConcat(ctx: ShapeContext): (ConstValue | null)[] | null {
  const vals = ctx.node.inputs.map((_, i) => ctx.inputValues[i] ?? null).filter((_, i) => hasInput(ctx, i));
  if (vals.length === 0 || vals.some((v) => v === null)) return null;
  const list = vals as ConstValue[];
  const rank = list[0]!.dims.length;
  const axis = normAxis(ctx, ctx.attrs.int('axis', 0), rank);
  // Row-major: the output is, for each outer index, the inputs' blocks one after another.
  const outer = count(list[0]!.dims.slice(0, axis));
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const v of list) {
      const block = count(v.dims.slice(axis));
      for (let k = 0; k < block; k++) out.push(v.data[o * block + k]!);
    }
  }
  const dims = [...list[0]!.dims];
  dims[axis] = list.reduce((a, v) => a + v.dims[axis]!, 0);
  return [constValue(list[0]!.dtype, dims, out)];
}

function concatDims(ctx: ShapeContext): (Dim[] | null)[] | null {
  const parts = ctx.node.inputs.map((_, i) => ctx.inputDims[i] ?? null).filter((_, i) => hasInput(ctx, i));
  if (parts.some((p) => p === null)) return null;
  return [(parts as Dim[][]).flat()];
}

/** Sizes of Split's outputs along the axis: given, or equal parts (opset 18: last may be smaller). */
function splitSizes(ctx: ShapeContext, dim: Dim): Dim[] | null {
  const n = ctx.node.outputs.length;
  const given = attrOrInput(ctx, 'split', 1, 13);
  if (given === null) return null;
  if (given !== undefined && given.length > 0) {
    if (given.length !== n) fail(ctx, `split has ${given.length} sizes for ${n} outputs`);
    if (typeof dim === 'number' && given.reduce((a, b) => a + b, 0) !== dim) fail(ctx, `split sizes ${JSON.stringify(given)} do not add up to ${dim}`);
    return given;
  }
  if (typeof dim !== 'number') {
    const part = dimDiv(dim, n);
    return new Array<Dim>(n).fill(part);
  }
  if (ctx.attrs.has('num_outputs')) {
    const chunk = Math.ceil(dim / n);
    return Array.from({ length: n }, (_, i) => Math.max(0, Math.min(chunk, dim - i * chunk)));
  }
  if (dim % n !== 0) fail(ctx, `cannot split ${dim} into ${n} equal parts`);
  return new Array<Dim>(n).fill(dim / n);
}

function splitShapes(ctx: ShapeContext): (ReturnType<typeof tensor> | null)[] {
  const x = shapeOf(ctx, 0);
  const dtype = dtypeOf(ctx, 0);
  const n = ctx.node.outputs.length;
  if (!x) return new Array(n).fill(tensor(dtype, null));
  const axis = normAxis(ctx, ctx.attrs.int('axis', 0), x.length);
  const sizes = splitSizes(ctx, x[axis]!);
  return Array.from({ length: n }, (_, i) => {
    const s = [...x];
    s[axis] = sizes ? sizes[i]! : null;
    return tensor(dtype, s);
  });
}

// ---------------------------------------------------------------------------------------
// Slice

interface SliceParams {
  starts: number[];
  ends: number[];
  axes: number[];
  steps: number[];
}

/** Slice parameters when known (attributes before opset 10, inputs 1–4 after). */
function sliceParams(ctx: ShapeContext, rank: number): SliceParams | null {
  let starts: number[] | null | undefined;
  let ends: number[] | null | undefined;
  let axes: number[] | null | undefined;
  let steps: number[] | null | undefined;
  if (ctx.opset < 10) {
    starts = ctx.attrs.ints('starts');
    ends = ctx.attrs.ints('ends');
    axes = ctx.attrs.ints('axes');
  } else {
    starts = intsInput(ctx, 1);
    ends = intsInput(ctx, 2);
    axes = hasInput(ctx, 3) ? intsInput(ctx, 3) : undefined;
    steps = hasInput(ctx, 4) ? intsInput(ctx, 4) : undefined;
  }
  if (!starts || !ends || axes === null || steps === null) return null;
  if (starts.length !== ends.length) fail(ctx, `starts and ends have different lengths`);
  const ax = (axes ?? starts.map((_, i) => i)).map((a) => normAxis(ctx, a, rank));
  return { starts, ends, axes: ax, steps: steps ?? starts.map(() => 1) };
}

/** Start and length of a slice of a dim of size d (spec clamping rules, negative steps included). */
function sliceRange(d: number, start: number, end: number, step: number): { start: number; len: number } {
  if (step === 0) return { start: 0, len: 0 };
  let s = start < 0 ? start + d : start;
  let e = end < 0 ? end + d : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), d);
    e = Math.min(Math.max(e, 0), d);
  } else {
    s = Math.min(Math.max(s, 0), d - 1);
    e = Math.min(Math.max(e, -1), d - 1);
  }
  return { start: s, len: Math.max(0, Math.ceil((e - s) / step)) };
}

/** int64 "to the end" sentinels (INT64_MAX and friends) as exporters write them. */
const HUGE = 2 ** 52;

function sliceDim(d: Dim, start: number, end: number, step: number): Dim {
  if (typeof d === 'number') return sliceRange(d, start, end, step).len;
  // A symbolic dim survives a whole-range slice.
  if (step === 1 && start === 0 && end >= HUGE) return d;
  if (step === -1 && start === -1 && end <= -HUGE) return d;
  return null;
}

function sliceShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  if (!x) return null;
  const p = sliceParams(ctx, x.length);
  if (!p) {
    // Which axes are sliced is known when axes are given even if starts/ends are not.
    const axes = ctx.opset >= 10 && hasInput(ctx, 3) ? intsInput(ctx, 3) : null;
    if (axes) {
      const norm = axes.map((a) => normAxis(ctx, a, x.length));
      return x.map((d, i) => (norm.includes(i) ? null : d));
    }
    return x.map(() => null);
  }
  const out = [...x];
  p.axes.forEach((a, i) => (out[a] = sliceDim(x[a]!, p.starts[i]!, p.ends[i]!, p.steps[i]!)));
  return out;
}

/** Flat source indices of a slice of a tensor with known dims. */
function sliceIndices(dims: number[], p: SliceParams): { dims: number[]; index: number[] } | null {
  const ranges = dims.map((d) => ({ start: 0, len: d, step: 1 }));
  p.axes.forEach((a, i) => {
    const r = sliceRange(dims[a]!, p.starts[i]!, p.ends[i]!, p.steps[i]!);
    ranges[a] = { ...r, step: p.steps[i]! };
  });
  const outDims = ranges.map((r) => r.len);
  const n = count(outDims);
  if (n > FOLD_CAP) return null;
  const inStrides = strides(dims);
  const outStrides = strides(outDims);
  const index = new Array<number>(n);
  for (let flat = 0; flat < n; flat++) {
    let src = 0;
    for (let ax = 0; ax < dims.length; ax++) {
      const k = Math.floor(flat / outStrides[ax]!) % outDims[ax]!;
      src += (ranges[ax]!.start + k * ranges[ax]!.step) * inStrides[ax]!;
    }
    index[flat] = src;
  }
  return { dims: outDims, index };
}

function foldSlice(ctx: ShapeContext): (ConstValue | null)[] | null {
  const v = ctx.inputValues[0];
  if (!v) return null;
  const p = sliceParams(ctx, v.dims.length);
  if (!p) return null;
  const s = sliceIndices(v.dims, p);
  return s ? [constValue(v.dtype, s.dims, s.index.map((i) => v.data[i]!))] : null;
}

function sliceDims(ctx: ShapeContext): (Dim[] | null)[] | null {
  const d = ctx.inputDims[0];
  if (!d || shapeOf(ctx, 0)?.length !== 1) return null;
  const p = sliceParams(ctx, 1);
  if (!p) return null;
  const s = sliceIndices([d.length], p);
  return s ? [s.index.map((i) => d[i]!)] : null;
}

// ---------------------------------------------------------------------------------------
// Expand, Tile, Pad

/** Expand: bidirectional broadcast of the input with the given shape. */
function expandShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  const target = dimsInput(ctx, 1);
  if (target) return broadcastShapes([x, target], ctx);
  const len = shapeOf(ctx, 1)?.[0];
  if (!x || typeof len !== 'number') return null;
  const rank = Math.max(len, x.length);
  // Unknown target: a dim of x other than 1 survives broadcasting.
  return Array.from({ length: rank }, (_, i) => {
    const k = i - (rank - x.length);
    const d = k >= 0 ? x[k]! : 1;
    return typeof d === 'number' && d !== 1 ? d : null;
  });
}

function foldExpand(ctx: ShapeContext): (ConstValue | null)[] | null {
  const v = ctx.inputValues[0];
  const shape = expandShape(ctx);
  if (!v || !shape || !allKnown(shape)) return null;
  const data = broadcastValue(v, shape);
  return data ? [constValue(v.dtype, shape, data)] : null;
}

function tileShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  const reps = intsInput(ctx, 1);
  if (!x) return null;
  if (!reps) return x.map(() => null);
  if (reps.length !== x.length) fail(ctx, `repeats has ${reps.length} entries for rank ${x.length}`);
  return x.map((d, i) => dimMul(d, reps[i]!));
}

/** Pad: each dim grows by its begin and end pads (negative pads crop). */
function padShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  if (!x) return null;
  const pads = ctx.opset < 11 ? ctx.attrs.ints('pads') ?? ctx.attrs.ints('paddings') ?? null : intsInput(ctx, 1);
  if (!pads) return x.map(() => null);
  const r = x.length;
  let axes = x.map((_, i) => i);
  if (ctx.opset >= 18 && hasInput(ctx, 3)) {
    const given = intsInput(ctx, 3);
    if (!given) return x.map(() => null);
    axes = given.map((a) => normAxis(ctx, a, r));
  }
  const n = axes.length;
  if (pads.length !== 2 * n) fail(ctx, `pads has ${pads.length} entries for ${n} axes`);
  const out = [...x];
  axes.forEach((a, i) => (out[a] = dimAdd(x[a]!, pads[i]! + pads[i + n]!)));
  return out;
}

// ---------------------------------------------------------------------------------------
// Shape, Size, ConstantOfShape, Range

/** The slice [start, end) of the dims that Shape reports (opset 15), clamped as in the spec. */
function shapeSlice(ctx: ShapeContext, rank: number): [number, number] {
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
  const start = clamp(ctx.attrs.int('start', 0));
  const end = clamp(ctx.attrs.int('end', rank));
  return [start, Math.max(start, end)];
}

const shapeOp: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    if (!x) return [tensor(DataType.INT64, [null])];
    const [s, e] = shapeSlice(ctx, x.length);
    return [tensor(DataType.INT64, [e - s])];
  },
  fold: (ctx) => {
    const x = shapeOf(ctx, 0);
    if (!x) return null;
    const [s, e] = shapeSlice(ctx, x.length);
    const dims = x.slice(s, e);
    return allKnown(dims) ? [constValue(DataType.INT64, [dims.length], dims)] : null;
  },
  dims: (ctx) => {
    const x = shapeOf(ctx, 0);
    if (!x) return null;
    const [s, e] = shapeSlice(ctx, x.length);
    return [x.slice(s, e)];
  },
};

const sizeOp: ShapeRule = {
  shape: () => [tensor(DataType.INT64, [])],
  fold: (ctx) => {
    const x = shapeOf(ctx, 0);
    return x && allKnown(x) ? [constValue(DataType.INT64, [], [count(x)])] : null;
  },
  dims: (ctx) => {
    const x = shapeOf(ctx, 0);
    return x ? [[dimProduct(x)]] : null;
  },
};

/** ConstantOfShape: the shape is the input's value; the dtype and fill value come from `value` (default float 0). */
function fillValue(ctx: ShapeContext): { dtype: number; value: number } {
  const t = ctx.attrs.tensor('value');
  if (!t) return { dtype: DataType.FLOAT, value: 0 };
  const dtype = t.data_type ?? DataType.FLOAT;
  if (dtype === DataType.STRING) return { dtype, value: 0 };
  const td = new TensorData(t, ctx.node.graph.model.dir);
  return { dtype, value: td.count > 0 ? td.toNumbers()[0]! : 0 };
}

const constantOfShape: ShapeRule = {
  shape: (ctx) => {
    const shape = dimsInput(ctx, 0);
    const { dtype } = fillValue(ctx);
    if (shape) return [tensor(dtype, shape)];
    const len = shapeOf(ctx, 0)?.[0];
    return [tensor(dtype, typeof len === 'number' ? new Array<Dim>(len).fill(null) : null)];
  },
  fold: (ctx) => {
    const shape = intsInput(ctx, 0);
    const { dtype, value } = fillValue(ctx);
    if (!shape || count(shape) > foldLimit(dtype)) return null;
    return [constValue(dtype, shape, new Array<number>(count(shape)).fill(value))];
  },
};

/** Range: max(ceil((limit − start) / delta), 0) elements of start's dtype. */
const range: ShapeRule = {
  shape: (ctx) => {
    const [start, limit, delta] = [0, 1, 2].map((i) => ctx.inputValues[i]?.data[0]);
    const dtype = dtypeOf(ctx, 0);
    if (start !== undefined && limit !== undefined && delta !== undefined) {
      if (delta === 0) fail(ctx, 'delta is 0');
      return [tensor(dtype, [Math.max(Math.ceil((limit - start) / delta), 0)])];
    }
    // Range(0, n, 1) has n elements even when n is symbolic.
    const lim = ctx.inputDims[1]?.[0];
    if (start === 0 && delta === 1 && lim !== undefined && lim !== null) return [tensor(dtype, [lim])];
    return [tensor(dtype, [null])];
  },
  fold: (ctx) => {
    const [start, limit, delta] = [0, 1, 2].map((i) => ctx.inputValues[i]?.data[0]);
    if (start === undefined || limit === undefined || delta === undefined || delta === 0) return null;
    const n = Math.max(Math.ceil((limit - start) / delta), 0);
    if (n > FOLD_CAP) return null;
    const dtype = dtypeOf(ctx, 0);
    return [constValue(dtype, [n], Array.from({ length: n }, (_, i) => castNumber(start + i * delta, dtype)))];
  },
};

// ---------------------------------------------------------------------------------------
// Cast, Identity, Where, Constant

function castTo(ctx: ShapeContext): number {
  return ctx.node.opType === 'CastLike' ? dtypeOf(ctx, 1) : ctx.attrs.int('to', DataType.UNDEFINED);
}

const cast: ShapeRule = {
  shape: (ctx) => [tensor(castTo(ctx), shapeOf(ctx, 0))],
  fold: (ctx) => {
    const v = ctx.inputValues[0];
    const to = castTo(ctx);
    if (!v || to === DataType.STRING || to === DataType.UNDEFINED) return null;
    return [constValue(to, v.dims, v.data.map((x) => castNumber(x, to)))];
  },
  dims: passDims,
};

const identity: ShapeRule = {
  shape: (ctx) => [sameAs(ctx, 0)],
  // Identity also passes sequences through.
  sequences: (ctx) => [ctx.inputSequences[0] ?? null],
  fold: (ctx) => (ctx.inputValues[0] ? [ctx.inputValues[0]] : null),
  dims: passDims,
};

/** Where(cond, X, Y): broadcast of all three, X's dtype. */
const where: ShapeRule = {
  shape: (ctx) => [
    tensor(
      dtypeOf(ctx, 1),
      broadcastShapes(
        [0, 1, 2].map((i) => shapeOf(ctx, i)),
        ctx,
      ),
    ),
  ],
  fold: (ctx) => {
    const [c, x, y] = [0, 1, 2].map((i) => ctx.inputValues[i] ?? null);
    if (!c || !x || !y) return null;
    const shape = broadcastShapes([c.dims, x.dims, y.dims], ctx) as number[];
    const [cb, xb, yb] = [c, x, y].map((v) => broadcastValue(v, shape));
    if (!cb || !xb || !yb) return null;
    return [constValue(x.dtype, shape, cb.map((k, i) => (k ? xb[i]! : yb[i]!)))];
  },
  dims: (ctx) => {
    // Element-wise choice on shape tensors when the condition is known.
    const c = ctx.inputValues[0];
    const [x, y] = [ctx.inputDims[1], ctx.inputDims[2]];
    if (!c || !x || !y || c.dims.length > 1) return null;
    const n = Math.max(c.data.length, x.length, y.length);
    const at = (a: readonly (Dim | number)[], i: number) => a[a.length === 1 ? 0 : i];
    return [Array.from({ length: n }, (_, i) => (at(c.data, i) ? at(x, i) ?? null : at(y, i) ?? null))];
  },
};

const constant: ShapeRule = {
  shape: (ctx) => {
    const t = constantNodeTensor(ctx.node, ctx.node.graph.model.dir);
    return [t ? tensor(t.dtype, [...t.dims]) : null];
  },
  fold: (ctx) => {
    const t = constantNodeTensor(ctx.node, ctx.node.graph.model.dir);
    if (!t || t.count > foldLimit(t.dtype) || t.dtype === DataType.STRING) return null;
    return [constValue(t.dtype, [...t.dims], t.toNumbers())];
  },
};

// ---------------------------------------------------------------------------------------
// DepthToSpace, SpaceToDepth

/** DepthToSpace: [N, C/b², H·b, W·b]; SpaceToDepth is the inverse. */
function depthSpace(toSpace: boolean): ShapeRule {
  return {
    shape: (ctx) => {
      const x = shapeOf(ctx, 0);
      const b = ctx.attrs.int('blocksize', 1);
      if (!x) return [sameAs(ctx, 0)];
      if (x.length !== 4) fail(ctx, `input must be 4-D, got ${fmtShape(x)}`);
      const [n, c, h, w] = x as [Dim, Dim, Dim, Dim];
      const shape = toSpace ? [n, dimDiv(c, b * b), dimMul(h, b), dimMul(w, b)] : [n, dimMul(c, b * b), dimDiv(h, b), dimDiv(w, b)];
      return [tensor(dtypeOf(ctx, 0), shape)];
    },
  };
}

// ---------------------------------------------------------------------------------------

export const shapes: ShapeTable = {
  Reshape: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), reshapeShape(ctx))], fold: passValue(reshapeShape), dims: passDims },
  Flatten: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), flattenShape(ctx))], fold: passValue(flattenShape) },
  Squeeze: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), squeezeShape(ctx))], fold: passValue(squeezeShape), dims: passDims },
  Unsqueeze: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), unsqueezeShape(ctx))], fold: passValue(unsqueezeShape), dims: passDims },
  Transpose: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), transposeShape(ctx))], fold: foldTranspose },
  Concat: { shape: (ctx) => [tensor(dtypeOf(ctx, ctx.node.inputs.findIndex((n) => n !== '')), concatShape(ctx))], fold: foldConcat, dims: concatDims },
  Split: { shape: splitShapes },
  Slice: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), sliceShape(ctx))], fold: foldSlice, dims: sliceDims },
  Expand: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), expandShape(ctx))], fold: foldExpand },
  Tile: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), tileShape(ctx))] },
  Pad: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), padShape(ctx))] },
  Shape: shapeOp,
  Size: sizeOp,
  ConstantOfShape: constantOfShape,
  Range: range,
  Cast: cast,
  CastLike: cast,
  Identity: identity,
  Where: where,
  Constant: constant,
  DepthToSpace: depthSpace(true),
  SpaceToDepth: depthSpace(false),
  Trilu: { shape: (ctx) => [sameAs(ctx, 0)] },
  CumSum: { shape: (ctx) => [sameAs(ctx, 0)] },
};
