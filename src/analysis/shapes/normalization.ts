/**
 * Normalizations: the output has the input's shape. Extra outputs: BatchNormalization's
 * running/saved statistics are per channel ([C]); LayerNormalization's Mean and InvStdDev keep
 * the leading dims up to `axis` and set the normalized ones to 1.
 * Spec: https://onnx.ai/onnx/operators/onnx__BatchNormalization.html, onnx__LayerNormalization.html.
 */
import { DataType } from '../../onnx/dtype.js';
import { dtypeOf, normAxis, type ShapeRule, type ShapeTable, sameAs, shapeOf, tensor } from './types.js';

const same: ShapeRule = { shape: (ctx) => [sameAs(ctx, 0)] };

const batchNorm: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const c = x && x.length > 1 ? x[1]! : null;
    // Statistics take the dtype of the mean input (opset 15 allows it to differ from X).
    const stat = tensor(ctx.inputTypes[3]?.dtype ?? dtypeOf(ctx, 0), [c]);
    return [sameAs(ctx, 0), stat, stat, stat, stat];
  },
};

const layerNorm: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const statType = ctx.attrs.int('stash_type', DataType.FLOAT);
    if (!x) return [sameAs(ctx, 0), tensor(statType, null), tensor(statType, null)];
    const axis = normAxis(ctx, ctx.attrs.int('axis', -1), x.length);
    const stats = x.map((d, i) => (i < axis ? d : 1));
    return [sameAs(ctx, 0), tensor(statType, stats), tensor(statType, stats)];
  },
};

export const shapes: ShapeTable = {
  BatchNormalization: batchNorm,
  InstanceNormalization: same,
  GroupNormalization: same,
  LayerNormalization: layerNorm,
  RMSNormalization: same,
  LpNormalization: same,
  MeanVarianceNormalization: same,
  LRN: same,
};
