/**
 * Quantization: (De)QuantizeLinear keep the shape and change the dtype; the integer and
 * QLinear variants of Conv/MatMul have the float op's shape and an integer dtype.
 * Spec: https://onnx.ai/onnx/operators/onnx__QuantizeLinear.html and siblings.
 */
import { DataType } from '../../onnx/dtype.js';
import { convShape } from './conv.js';
import { matmulShape } from './matmul.js';
import { dtypeOf, hasInput, type ShapeTable, type ShapeContext, shapeOf, tensor } from './types.js';

/** QuantizeLinear: the zero point's dtype, else output_dtype (opset 21), else uint8. */
function quantizedDtype(ctx: ShapeContext): number {
  if (hasInput(ctx, 2) && ctx.inputTypes[2]) return ctx.inputTypes[2].dtype;
  const attr = ctx.attrs.int('output_dtype', 0);
  return attr !== 0 ? attr : DataType.UINT8;
}

/** DequantizeLinear: float before opset 19; from 19 the scale's dtype (or output_dtype, opset 23). */
function dequantizedDtype(ctx: ShapeContext): number {
  const attr = ctx.attrs.int('output_dtype', 0);
  if (attr !== 0) return attr;
  if (ctx.opset >= 19 && ctx.inputTypes[1]) return ctx.inputTypes[1].dtype;
  return DataType.FLOAT;
}

export const shapes: ShapeTable = {
  QuantizeLinear: { shape: (ctx) => [tensor(quantizedDtype(ctx), shapeOf(ctx, 0))] },
  DequantizeLinear: { shape: (ctx) => [tensor(dequantizedDtype(ctx), shapeOf(ctx, 0))] },
  /** y (uint8, x's shape), y_scale (float scalar), y_zero_point (uint8 scalar). */
  DynamicQuantizeLinear: {
    shape: (ctx) => [tensor(DataType.UINT8, shapeOf(ctx, 0)), tensor(DataType.FLOAT, []), tensor(DataType.UINT8, [])],
  },
  /** QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp[, B]): y has y_zp's dtype. */
  QLinearConv: { shape: (ctx) => [tensor(dtypeOf(ctx, 7), convShape(ctx, 0, 3))] },
  /** QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp). */
  QLinearMatMul: { shape: (ctx) => [tensor(dtypeOf(ctx, 7), matmulShape(ctx, shapeOf(ctx, 0), shapeOf(ctx, 3)))] },
  /** Integer convolution accumulates in int32. */
  ConvInteger: { shape: (ctx) => [tensor(DataType.INT32, convShape(ctx))] },
};
