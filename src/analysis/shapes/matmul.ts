/**
 * Matrix products: MatMul (numpy matmul semantics), Gemm, MatMulInteger.
 * Spec: https://onnx.ai/onnx/operators/onnx__MatMul.html, onnx__Gemm.html.
 */
import { DataType } from '../../onnx/dtype.js';
import type { Dim } from '../../onnx/model.js';
import { broadcastShapes, dtypeOf, fail, type ShapeTable, type ShapeContext, shapeOf, tensor, unifyDim } from './types.js';

/** The inner dims of a product must agree; two different numbers are an impossible model. */
function checkInner(ctx: ShapeContext, k1: Dim, k2: Dim): void {
  if (unifyDim(k1, k2) === undefined) fail(ctx, `inner dimensions ${k1} and ${k2} differ`);
}

/**
 * numpy.matmul: 1-D operands are promoted (A to [1,K], B to [K,1]) and the added dim removed
 * from the result; leading (batch) dims broadcast.
 */
export function matmulShape(ctx: ShapeContext, a: Dim[] | null, b: Dim[] | null): Dim[] | null {
  if (!a || !b) return null;
  if (a.length === 0 || b.length === 0) fail(ctx, 'MatMul operands must have rank ≥ 1');
  const aa = a.length === 1 ? [1, a[0]!] : a;
  const bb = b.length === 1 ? [b[0]!, 1] : b;
  checkInner(ctx, aa[aa.length - 1]!, bb[bb.length - 2]!);
  const batch = broadcastShapes([aa.slice(0, -2), bb.slice(0, -2)], ctx)!;
  const out: Dim[] = [...batch];
  if (a.length > 1) out.push(aa[aa.length - 2]!);
  if (b.length > 1) out.push(bb[bb.length - 1]!);
  return out;
}

export const shapes: ShapeTable = {
  MatMul: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), matmulShape(ctx, shapeOf(ctx, 0), shapeOf(ctx, 1)))] },

  /** Integer product accumulates in int32. */
  MatMulInteger: { shape: (ctx) => [tensor(DataType.INT32, matmulShape(ctx, shapeOf(ctx, 0), shapeOf(ctx, 1)))] },

  /** Y = alpha·op(A)·op(B) + beta·C with op = transpose when transA/transB: Y is [M, N]. */
  Gemm: {
    shape: (ctx) => {
      const a = shapeOf(ctx, 0);
      const b = shapeOf(ctx, 1);
      if (!a || !b) return [tensor(dtypeOf(ctx, 0), null)];
      if (a.length !== 2 || b.length !== 2) {
        // Before opset 7 Gemm accepted other ranks loosely; be strict only on rank 2.
        return [tensor(dtypeOf(ctx, 0), null)];
      }
      const [m, k1] = ctx.attrs.int('transA', 0) ? [a[1]!, a[0]!] : [a[0]!, a[1]!];
      const [k2, n] = ctx.attrs.int('transB', 0) ? [b[1]!, b[0]!] : [b[0]!, b[1]!];
      checkInner(ctx, k1, k2);
      return [tensor(dtypeOf(ctx, 0), [m, n])];
    },
  },
};
