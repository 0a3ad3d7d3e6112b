/**
 * A few com.microsoft contrib ops that ONNX Runtime's optimizers and exporters emit
 * (https://github.com/microsoft/onnxruntime/blob/main/docs/ContribOperators.md): fused
 * activations and normalizations keep the input's shape; FusedMatMul is MatMul with
 * optional transposes of the last two dims; FusedConv is Conv.
 */
import { convShape } from './conv.js';
import { matmulShape } from './matmul.js';
import { broadcastShapes, dtypeOf, type Dim, type ShapeRule, type ShapeTable, sameAs, shapeOf, tensor } from './types.js';

const same: ShapeRule = { shape: (ctx) => [sameAs(ctx, 0)] };

const swapLast = (s: Dim[] | null, on: boolean): Dim[] | null => (s && on && s.length >= 2 ? [...s.slice(0, -2), s[s.length - 1]!, s[s.length - 2]!] : s);

/** SkipLayerNormalization(input, skip, gamma, …): output, mean, inv_std_var, input+skip+bias. */
const skipLayerNorm: ShapeRule = {
  shape: (ctx) => {
    const y = sameAs(ctx, 0);
    return [y, null, null, y];
  },
};

export const shapes: ShapeTable = {
  Gelu: same,
  FastGelu: same,
  QuickGelu: same,
  BiasGelu: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), broadcastShapes([shapeOf(ctx, 0), shapeOf(ctx, 1)], ctx))] },
  BiasAdd: same,
  SimplifiedLayerNormalization: same,
  SkipLayerNormalization: skipLayerNorm,
  SkipSimplifiedLayerNormalization: skipLayerNorm,
  FusedMatMul: {
    shape: (ctx) => [
      tensor(dtypeOf(ctx, 0), matmulShape(ctx, swapLast(shapeOf(ctx, 0), ctx.attrs.int('transA', 0) === 1), swapLast(shapeOf(ctx, 1), ctx.attrs.int('transB', 0) === 1))),
    ],
  },
  FusedConv: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), convShape(ctx))] },
};
