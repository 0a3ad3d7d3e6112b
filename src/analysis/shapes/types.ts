/**
 * The contract of a shape rule, and the dim arithmetic every rule shares.
 *
 * A rule is a pure function from what is known about a node's inputs (types, small folded
 * values, shape tensors known dim by dim) to the types of its outputs, following the ONNX
 * operator specs (https://onnx.ai/onnx/operators/). Unknown stays unknown (null): a rule never
 * guesses, and throws (ModelError, one line) only when the shapes it sees are impossible.
 *
 * Symbolic dims: a dim is a number, a symbol ("batch"), or null (unknown).
 *  - Equal symbols are equal dims; different symbols are unrelated (either may be 1).
 *  - Products of dims stay symbolic as a canonical string "2*batch*seq" (numeric factor first,
 *    symbols sorted), so Flatten/Reshape keep "batch*seq" and a later Reshape can divide it back.
 *  - Sums of symbols ("past+1") are not represented: they become null.
 */
import { ModelError } from '../../errors.js';
import type { Attributes } from '../../onnx/attributes.js';
import { DataType, isFloatType } from '../../onnx/dtype.js';
import type { Dim, Node, TensorType } from '../../onnx/model.js';

export type { Dim, TensorType };

/** A tensor's value computed at analysis time (shape arithmetic); small tensors only. */
export interface ConstValue {
  dtype: number;
  dims: number[];
  /** Row-major values as numbers (int64 beyond 2^53 lose precision: fine for shapes). */
  data: number[];
}

/**
 * The type of a sequence value (SequenceConstruct & co): its element type when all elements
 * agree, and the element types one by one when the length is known at analysis time.
 */
export interface SequenceType {
  sequence: true;
  elem: TensorType | null;
  items: (TensorType | null)[] | null;
}

export interface ShapeContext {
  node: Node;
  /** Opset of the node's domain. */
  opset: number;
  inputTypes: (TensorType | null)[];
  /** Folded constant values of inputs, when known (small int/float tensors: shape arithmetic). */
  inputValues: (ConstValue | null)[];
  /**
   * Integer inputs of rank ≤ 1 known element by element as dims, possibly symbolic: the
   * output of Shape on a [batch, 3] tensor is ["batch", 3] even though it cannot be folded.
   * Fully known values appear here too (as numbers).
   */
  inputDims: (Dim[] | null)[];
  /** Types of sequence-valued inputs (null for tensors and unknowns). */
  inputSequences: (SequenceType | null)[];
  attrs: Attributes;
  /**
   * Infers the subgraph held by attribute `attribute`, its formal inputs typed as given, and
   * returns the types of its outputs (set by the walker for nodes with subgraphs).
   */
  inferSubgraph?: (attribute: string, inputs: (TensorType | null)[]) => (TensorType | null)[];
}

export type ShapeFn = (ctx: ShapeContext) => (TensorType | null)[];
export type FoldFn = (ctx: ShapeContext) => (ConstValue | null)[] | null;
/** Element-wise dim propagation for shape tensors (Shape → Gather → Concat → Reshape). */
export type DimsFn = (ctx: ShapeContext) => (Dim[] | null)[] | null;
/** Sequence-valued outputs of sequence ops (null at tensor outputs). */
export type SequencesFn = (ctx: ShapeContext) => (SequenceType | null)[];

export interface ShapeRule {
  shape: ShapeFn;
  fold?: FoldFn;
  dims?: DimsFn;
  sequences?: SequencesFn;
}

/** What each family file exports. */
export type ShapeTable = Record<string, ShapeRule>;

/** Largest integer/bool tensor (in elements) that folding computes or keeps. */
export const FOLD_CAP = 100_000;
/**
 * Float tensors are kept only when tiny (scales, ranges): folding exists for shape arithmetic,
 * and models that build their weights from ConstantOfShape must not be materialized.
 */
export const FLOAT_FOLD_CAP = 4096;

/** How many elements of `dtype` folding keeps. */
export function foldLimit(dtype: number): number {
  return isFloatType(dtype) ? FLOAT_FOLD_CAP : FOLD_CAP;
}

// ---------------------------------------------------------------------------------------
// Errors

/** An impossible shape: one line naming the node. */
export function fail(ctx: ShapeContext, message: string): never {
  throw new ModelError(`node '${ctx.node.name}' (${ctx.node.opType}): ${message}`);
}

// ---------------------------------------------------------------------------------------
// Dims

export function isKnown(d: Dim): d is number {
  return typeof d === 'number';
}

export function allKnown(shape: Dim[]): shape is number[] {
  return shape.every(isKnown);
}

/** Numeric factor and sorted symbols of a dim that is a product ("2*batch*seq"). */
interface Factors {
  coef: number;
  syms: string[];
}

function factors(d: number | string): Factors {
  if (typeof d === 'number') return { coef: d, syms: [] };
  let coef = 1;
  const syms: string[] = [];
  for (const part of d.split('*')) {
    if (/^\d+$/.test(part)) coef *= Number(part);
    else syms.push(part);
  }
  return { coef, syms: syms.sort() };
}

function fromFactors(f: Factors): Dim {
  if (f.syms.length === 0) return f.coef;
  if (f.coef === 0) return 0;
  return (f.coef === 1 ? [] : [String(f.coef)]).concat(f.syms).join('*');
}

export function dimMul(a: Dim, b: Dim): Dim {
  if (a === 0 || b === 0) return 0;
  if (a === null || b === null) return null;
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  const fa = factors(a);
  const fb = factors(b);
  return fromFactors({ coef: fa.coef * fb.coef, syms: [...fa.syms, ...fb.syms].sort() });
}

export function dimProduct(dims: Dim[]): Dim {
  return dims.reduce<Dim>((acc, d) => dimMul(acc, d), 1);
}

/** a / b when it is exact (numbers dividing evenly, or b's symbols cancelling in a); else null. */
export function dimDiv(a: Dim, b: Dim): Dim {
  if (a === null || b === null || b === 0) return null;
  if (typeof a === 'number' && typeof b === 'number') return a % b === 0 ? a / b : null;
  if (a === b) return 1;
  const fa = factors(a);
  const fb = factors(b);
  if (fa.coef % fb.coef !== 0) return null;
  const left = [...fa.syms];
  for (const s of fb.syms) {
    const i = left.indexOf(s);
    if (i < 0) return null;
    left.splice(i, 1);
  }
  return fromFactors({ coef: fa.coef / fb.coef, syms: left });
}

/** a + b for numbers; sums of symbols are not represented (null), but x + 0 = x. */
export function dimAdd(a: Dim, b: Dim): Dim {
  if (a === 0) return b;
  if (b === 0) return a;
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  return null;
}

/**
 * The better-known of two dims that must be equal (a Concat's non-axis dims, an op's
 * same-shape inputs): a number beats a symbol beats null. Returns undefined when both are
 * numbers and differ (the caller decides whether that is an error).
 */
export function unifyDim(a: Dim, b: Dim): Dim | undefined {
  if (a === null) return b;
  if (b === null) return a;
  if (typeof a === 'number' && typeof b === 'number') return a === b ? a : undefined;
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return a;
}

/** Shapes of the same tensor seen two ways (e.g. If branches): keep only what both agree on. */
export function joinShapes(a: Dim[] | null, b: Dim[] | null): Dim[] | null {
  if (!a || !b || a.length !== b.length) return null;
  return a.map((d, i) => (d === b[i] ? d : null));
}

export function joinTypes(a: TensorType | null, b: TensorType | null): TensorType | null {
  if (!a || !b) return null;
  return { dtype: a.dtype === b.dtype ? a.dtype : DataType.UNDEFINED, shape: joinShapes(a.shape, b.shape) };
}

/** One output dim of multidirectional (numpy) broadcasting; undefined when impossible. */
function broadcastDim(a: Dim, b: Dim): Dim | undefined {
  if (a === 1) return b;
  if (b === 1) return a;
  if (a === b) return a;
  if (typeof a === 'number' && typeof b === 'number') return undefined;
  // One side is a number ≠ 1: the other must be 1 or that number, so the result is it.
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  // Two different symbols, or an unknown: either might be 1.
  return null;
}

/**
 * Numpy-style multidirectional broadcasting
 * (https://github.com/onnx/onnx/blob/main/docs/Broadcasting.md). null when any rank is
 * unknown; throws through `ctx` when two concrete dims clash.
 */
export function broadcastShapes(shapes: (Dim[] | null)[], ctx?: ShapeContext): Dim[] | null {
  if (shapes.some((s) => s === null)) return null;
  const list = shapes as Dim[][];
  const rank = Math.max(0, ...list.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of list) {
      const k = i - (rank - s.length);
      if (k < 0) continue;
      const next = broadcastDim(d, s[k]!);
      if (next === undefined) {
        const msg = `cannot broadcast shapes ${list.map(fmtShape).join(' and ')}`;
        if (ctx) fail(ctx, msg);
        throw new ModelError(msg);
      }
      d = next;
    }
    out.push(d);
  }
  return out;
}

export function fmtShape(s: Dim[] | null): string {
  return s ? `[${s.map((d) => (d === null ? '?' : String(d))).join(',')}]` : '[?]';
}

/** An axis in [-rank, rank) made non-negative; throws through ctx when out of range. */
export function normAxis(ctx: ShapeContext, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(ctx, `axis ${axis} is out of range for rank ${rank}`);
  return a;
}

// ---------------------------------------------------------------------------------------
// Reading inputs

export function shapeOf(ctx: ShapeContext, i: number): Dim[] | null {
  return ctx.inputTypes[i]?.shape ?? null;
}

export function dtypeOf(ctx: ShapeContext, i: number): number {
  return ctx.inputTypes[i]?.dtype ?? DataType.UNDEFINED;
}

/** Is input i given (present and not the '' placeholder of an omitted optional input)? */
export function hasInput(ctx: ShapeContext, i: number): boolean {
  return (ctx.node.inputs[i] ?? '') !== '';
}

export function tensor(dtype: number, shape: Dim[] | null): TensorType {
  return { dtype, shape };
}

/** Same type as input i (element-wise unary ops). */
export function sameAs(ctx: ShapeContext, i: number): TensorType | null {
  const t = ctx.inputTypes[i];
  return t ? { dtype: t.dtype, shape: t.shape ? [...t.shape] : null } : null;
}

/** Values of input i when folded (any rank, flattened; floats too, e.g. Resize scales). */
export function intsInput(ctx: ShapeContext, i: number): number[] | null {
  if (!hasInput(ctx, i)) return null;
  return ctx.inputValues[i]?.data ?? null;
}

/** A 1-D shape-like input known dim by dim (folded numbers, or symbolic propagation). */
export function dimsInput(ctx: ShapeContext, i: number): Dim[] | null {
  if (!hasInput(ctx, i)) return null;
  const v = ctx.inputValues[i];
  if (v && v.dims.length <= 1) return [...v.data];
  return ctx.inputDims[i] ?? null;
}

/**
 * Integer list given as attribute `attr` before opset `sinceOpset` and as input `index` from
 * then on (axes of Squeeze/Unsqueeze/ReduceX, split of Split, …). Returns undefined when absent,
 * null when present but not known at analysis time.
 */
export function attrOrInput(ctx: ShapeContext, attr: string, index: number, sinceOpset: number): number[] | null | undefined {
  if (ctx.opset < sinceOpset || ctx.attrs.has(attr)) return ctx.attrs.ints(attr);
  if (!hasInput(ctx, index)) return undefined;
  return intsInput(ctx, index);
}

// ---------------------------------------------------------------------------------------
// Values

export function constValue(dtype: number, dims: number[], data: number[]): ConstValue | null {
  return data.length <= foldLimit(dtype) ? { dtype, dims, data } : null;
}

export function count(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Cast a number to what storing it in `dtype` gives (ints truncate and wrap, bools are 0/1). */
export function castNumber(v: number, dtype: number): number {
  if (isFloatType(dtype)) return dtype === DataType.FLOAT ? Math.fround(v) : v;
  if (dtype === DataType.BOOL) return v !== 0 ? 1 : 0;
  if (!Number.isFinite(v)) return v;
  const t = Math.trunc(v);
  switch (dtype) {
    case DataType.INT8:
      return (t << 24) >> 24;
    case DataType.UINT8:
      return t & 0xff;
    case DataType.INT16:
      return (t << 16) >> 16;
    case DataType.UINT16:
      return t & 0xffff;
    case DataType.INT32:
      return t | 0;
    case DataType.UINT32:
      return t >>> 0;
    default:
      return t;
  }
}

/** Row-major strides of a shape. */
export function strides(dims: number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
}

/** Values of `v` broadcast to `shape` (numpy rules), when small enough. */
export function broadcastValue(v: ConstValue, shape: number[]): number[] | null {
  const n = count(shape);
  if (n > FOLD_CAP) return null;
  const rank = shape.length;
  const src = v.dims;
  const srcStrides = strides(src);
  const out = new Array<number>(n);
  const outStrides = strides(shape);
  for (let flat = 0; flat < n; flat++) {
    let off = 0;
    for (let ax = 0; ax < rank; ax++) {
      const k = ax - (rank - src.length);
      if (k < 0) continue;
      const idx = Math.floor(flat / outStrides[ax]!) % shape[ax]!;
      if (src[k] !== 1) off += idx * srcStrides[k]!;
    }
    out[flat] = v.data[off]!;
  }
  return out;
}
