/**
 * Element-wise ops: unary (shape and type of the input), binary and variadic with numpy
 * broadcasting, comparisons and logic (bool outputs). Binary arithmetic also folds small
 * constant tensors, and propagates symbolic dims through shape arithmetic
 * (Shape(x)[0] * Shape(x)[1] → "batch*seq").
 */
import { DataType } from '../../onnx/dtype.js';
import type { Dim } from '../../onnx/model.js';
import {
  broadcastShapes,
  broadcastValue,
  castNumber,
  type ConstValue,
  constValue,
  dimAdd,
  dimDiv,
  dimMul,
  dtypeOf,
  fail,
  type FoldFn,
  type ShapeRule,
  type ShapeTable,
  sameAs,
  type ShapeContext,
  shapeOf,
  tensor,
  unifyDim,
} from './types.js';

// ---------------------------------------------------------------------------------------
// Unary

/** Ops whose output has the input's shape and dtype. */
const SAME_TYPE_UNARY = [
  'Abs', 'Acos', 'Acosh', 'Asin', 'Asinh', 'Atan', 'Atanh', 'BitwiseNot', 'Ceil', 'Celu', 'Clip',
  'Cos', 'Cosh', 'Elu', 'Erf', 'Exp', 'Floor', 'Gelu', 'HardSigmoid', 'HardSwish', 'LeakyRelu',
  'Log', 'Mish', 'Neg', 'Not', 'Reciprocal', 'Relu', 'Round', 'Selu', 'Shrink', 'Sigmoid', 'Sign',
  'Sin', 'Sinh', 'Softplus', 'Softsign', 'Sqrt', 'Swish', 'Tan', 'Tanh', 'ThresholdedRelu',
];

/** Value maps of unary ops worth folding (cheap, and seen in shape arithmetic). */
const UNARY_FOLD: Record<string, (x: number) => number> = {
  Abs: Math.abs,
  Neg: (x) => -x,
  Ceil: Math.ceil,
  Floor: Math.floor,
  Sqrt: Math.sqrt,
  Reciprocal: (x) => 1 / x,
  Relu: (x) => Math.max(0, x),
  Not: (x) => (x ? 0 : 1),
  Sign: Math.sign,
  Exp: Math.exp,
  Log: Math.log,
  // Round half to even, as the spec requires.
  Round: (x) => {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  },
};

function unaryFold(fn: (x: number) => number): FoldFn {
  return (ctx) => {
    const v = ctx.inputValues[0];
    if (!v) return null;
    return [constValue(v.dtype, v.dims, v.data.map((x) => castNumber(fn(x), v.dtype)))];
  };
}

const sameTypeUnary: ShapeRule = { shape: (ctx) => [sameAs(ctx, 0)] };

/** IsNaN/IsInf: same shape, bool. */
const boolUnary: ShapeRule = { shape: (ctx) => [tensor(DataType.BOOL, shapeOf(ctx, 0))] };

// ---------------------------------------------------------------------------------------
// Binary and variadic

/**
 * Output shape of a broadcasting op. Before opset 7, Add/Sub/Mul/Div/Pow/And/… had no numpy
 * broadcasting: with `broadcast=1`, B is broadcast to A's shape (so the output is A's shape);
 * without it the shapes are equal.
 */
function broadcastOutput(ctx: ShapeContext, inputs: number[]): Dim[] | null {
  if (ctx.opset < 7 && inputs.length === 2 && ctx.node.domain === '') {
    const a = shapeOf(ctx, 0);
    const b = shapeOf(ctx, 1);
    if (ctx.attrs.int('broadcast', 0) === 1) return a;
    if (!a || !b || a.length !== b.length) return a ?? b;
    return a.map((d, i) => unifyDim(d, b[i]!) ?? fail(ctx, `input shapes differ at dim ${i}: ${d} vs ${b[i]}`));
  }
  return broadcastShapes(
    inputs.map((i) => shapeOf(ctx, i)),
    ctx,
  );
}

function present(ctx: ShapeContext): number[] {
  return ctx.node.inputs.map((n, i) => (n ? i : -1)).filter((i) => i >= 0);
}

/** Folds an n-ary element-wise op over small known inputs. */
function naryFold(fn: (xs: number[], dtype: number) => number, outDtype?: (ctx: ShapeContext) => number): FoldFn {
  return (ctx) => {
    const idx = present(ctx);
    const vals = idx.map((i) => ctx.inputValues[i] ?? null);
    if (vals.some((v) => v === null) || vals.length === 0) return null;
    // Old-style axis broadcasting is not numpy broadcasting: leave it alone.
    if (ctx.opset < 7 && ctx.attrs.has('axis')) return null;
    const known = vals as ConstValue[];
    const shape = broadcastShapes(
      known.map((v) => v.dims),
      ctx,
    ) as number[];
    const cols = known.map((v) => broadcastValue(v, shape));
    if (cols.some((c) => c === null)) return null;
    const inDtype = known[0]!.dtype;
    const dtype = outDtype ? outDtype(ctx) : inDtype;
    const n = cols[0]!.length;
    const out = new Array<number>(n);
    for (let k = 0; k < n; k++) out[k] = castNumber(fn(cols.map((c) => c![k]!), inDtype), dtype);
    return [constValue(dtype, shape, out)];
  };
}

const isInt = (dtype: number) =>
  dtype !== DataType.FLOAT && dtype !== DataType.DOUBLE && dtype !== DataType.FLOAT16 && dtype !== DataType.BFLOAT16;

const ARITH: Record<string, (a: number, b: number, dtype: number, ctx: ShapeContext) => number> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => a - b,
  Mul: (a, b) => a * b,
  // Integer division truncates toward zero (as ONNX Runtime and the C++ reference do).
  Div: (a, b, dtype) => (isInt(dtype) ? (b === 0 ? 0 : Math.trunc(a / b)) : a / b),
  Pow: (a, b) => a ** b,
  // fmod=0: the sign follows the divisor (Python %); fmod=1: C fmod.
  Mod: (a, b, _dtype, ctx) => (ctx.attrs.int('fmod', 0) === 1 ? a % b : b === 0 ? 0 : a - Math.floor(a / b) * b),
};

/** Symbolic dims of Add/Sub/Mul/Div on shape tensors (rank ≤ 1, broadcast of a scalar). */
function arithDims(op: string) {
  const f: Record<string, (a: Dim, b: Dim) => Dim> = {
    Add: dimAdd,
    Sub: (a, b) => (b === 0 ? a : typeof a === 'number' && typeof b === 'number' ? a - b : null),
    Mul: dimMul,
    Div: dimDiv,
  };
  const fn = f[op]!;
  return (ctx: ShapeContext) => {
    const a = ctx.inputDims[0];
    const b = ctx.inputDims[1];
    if (!a || !b) return null;
    // Only element-wise on equal lengths or with a one-element side.
    const n = Math.max(a.length, b.length);
    if (a.length !== n && a.length !== 1) return null;
    if (b.length !== n && b.length !== 1) return null;
    // A scalar times a scalar must stay rank-0: the shape rule knows the rank, we only give dims.
    const out: Dim[] = [];
    for (let i = 0; i < n; i++) out.push(fn(a[a.length === 1 ? 0 : i]!, b[b.length === 1 ? 0 : i]!));
    return [out];
  };
}

function binary(op: string): ShapeRule {
  const fn = ARITH[op]!;
  const rule: ShapeRule = {
    shape: (ctx) => [tensor(dtypeOf(ctx, 0), broadcastOutput(ctx, [0, 1]))],
    fold: (ctx) => naryFold((xs, dtype) => fn(xs[0]!, xs[1]!, dtype, ctx))(ctx),
  };
  if (op in { Add: 1, Sub: 1, Mul: 1, Div: 1 }) rule.dims = arithDims(op);
  return rule;
}

const COMPARE: Record<string, (a: number, b: number) => boolean> = {
  Equal: (a, b) => a === b,
  Less: (a, b) => a < b,
  LessOrEqual: (a, b) => a <= b,
  Greater: (a, b) => a > b,
  GreaterOrEqual: (a, b) => a >= b,
  And: (a, b) => a !== 0 && b !== 0,
  Or: (a, b) => a !== 0 || b !== 0,
  Xor: (a, b) => a !== 0 !== (b !== 0),
};

function compare(op: string): ShapeRule {
  const fn = COMPARE[op]!;
  return {
    shape: (ctx) => [tensor(DataType.BOOL, broadcastOutput(ctx, [0, 1]))],
    fold: naryFold((xs) => (fn(xs[0]!, xs[1]!) ? 1 : 0), () => DataType.BOOL),
  };
}

const VARIADIC: Record<string, (xs: number[]) => number> = {
  Max: (xs) => Math.max(...xs),
  Min: (xs) => Math.min(...xs),
  Sum: (xs) => xs.reduce((a, b) => a + b, 0),
  Mean: (xs) => xs.reduce((a, b) => a + b, 0) / xs.length,
};

/** Max/Min/Sum/Mean: numpy broadcasting of all inputs (opset ≥ 8; equal shapes before). */
function variadic(op: string): ShapeRule {
  const fn = VARIADIC[op]!;
  return {
    shape: (ctx) => {
      const idx = present(ctx);
      const shape =
        ctx.opset >= 8
          ? broadcastShapes(
              idx.map((i) => shapeOf(ctx, i)),
              ctx,
            )
          : idx.map((i) => shapeOf(ctx, i)).find((s) => s !== null) ?? null;
      return [tensor(dtypeOf(ctx, idx[0] ?? 0), shape)];
    },
    fold: naryFold((xs) => fn(xs)),
  };
}

export const shapes: ShapeTable = {};
for (const op of SAME_TYPE_UNARY) {
  const fold = UNARY_FOLD[op];
  shapes[op] = fold ? { ...sameTypeUnary, fold: unaryFold(fold) } : sameTypeUnary;
}
shapes.IsNaN = boolUnary;
shapes.IsInf = boolUnary;
for (const op of Object.keys(ARITH)) shapes[op] = binary(op);
for (const op of Object.keys(COMPARE)) shapes[op] = compare(op);
for (const op of Object.keys(VARIADIC)) shapes[op] = variadic(op);

/** Bit shifts and bitwise logic: broadcasting, dtype of the first input. */
for (const op of ['BitShift', 'BitwiseAnd', 'BitwiseOr', 'BitwiseXor']) {
  shapes[op] = { shape: (ctx) => [tensor(dtypeOf(ctx, 0), broadcastOutput(ctx, [0, 1]))] };
}

/** PRelu: the slope broadcasts to X unidirectionally, so the output is X's shape. */
shapes.PRelu = { shape: (ctx) => [sameAs(ctx, 0)] };
