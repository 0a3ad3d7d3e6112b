/**
 * Softmax, LogSoftmax, Hardmax: the output has the input's shape and dtype (the axis only
 * chooses what is normalized). Spec: https://onnx.ai/onnx/operators/onnx__Softmax.html.
 */
import { type ShapeRule, type ShapeTable, sameAs } from './types.js';

const same: ShapeRule = { shape: (ctx) => [sameAs(ctx, 0)] };

export const shapes: ShapeTable = {
  Softmax: same,
  LogSoftmax: same,
  Hardmax: same,
};
