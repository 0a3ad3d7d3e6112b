/**
 * Pooling: windowed (MaxPool, AveragePool, LpPool — the window arithmetic of conv.ts), global
 * (spatial dims become 1), MaxUnpool, and region pooling (MaxRoiPool, RoiAlign).
 * Spec: https://onnx.ai/onnx/operators/onnx__MaxPool.html and siblings.
 */
import { DataType } from '../../onnx/dtype.js';
import type { Dim } from '../../onnx/model.js';
import { windowDim, windowParams } from './conv.js';
import { dtypeOf, fail, hasInput, intsInput, type ShapeRule, type ShapeTable, type ShapeContext, shapeOf, tensor } from './types.js';

function pooledShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  if (!x) return null;
  const kernel = ctx.attrs.ints('kernel_shape');
  if (!kernel) fail(ctx, 'kernel_shape is required');
  const n = x.length - 2;
  if (kernel.length !== n) fail(ctx, `kernel_shape has ${kernel.length} dims for ${n} spatial dims`);
  const p = windowParams(ctx, n, kernel);
  return [x[0]!, x[1]!, ...x.slice(2).map((d, i) => windowDim(ctx, d, i, p))];
}

/** Y, and for MaxPool the optional Indices (int64) of the same shape. */
const windowed: ShapeRule = {
  shape: (ctx) => {
    const s = pooledShape(ctx);
    return [tensor(dtypeOf(ctx, 0), s), tensor(DataType.INT64, s)];
  },
};

const global: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    return [tensor(dtypeOf(ctx, 0), x ? [...x.slice(0, 2), ...x.slice(2).map(() => 1)] : null)];
  },
};

/**
 * MaxUnpool: output_shape input when given; else per spatial dim
 * (in − 1)·stride + kernel − pad_begin − pad_end.
 */
const maxUnpool: ShapeRule = {
  shape: (ctx) => {
    const explicit = hasInput(ctx, 2) ? intsInput(ctx, 2) : null;
    if (explicit) return [tensor(dtypeOf(ctx, 0), explicit)];
    if (hasInput(ctx, 2)) return [tensor(dtypeOf(ctx, 0), null)];
    const x = shapeOf(ctx, 0);
    const kernel = ctx.attrs.ints('kernel_shape') ?? [];
    if (!x) return [tensor(dtypeOf(ctx, 0), null)];
    const n = x.length - 2;
    const strides = ctx.attrs.ints('strides') ?? new Array<number>(n).fill(1);
    const pads = ctx.attrs.ints('pads') ?? new Array<number>(2 * n).fill(0);
    const spatial = x.slice(2).map((d, i): Dim => (typeof d === 'number' ? (d - 1) * strides[i]! + kernel[i]! - pads[i]! - pads[i + n]! : null));
    return [tensor(dtypeOf(ctx, 0), [x[0]!, x[1]!, ...spatial])];
  },
};

/** MaxRoiPool: [num_rois, C, pooled_h, pooled_w]; RoiAlign: [num_rois, C, output_h, output_w]. */
const roiPool: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const rois = shapeOf(ctx, 1);
    const pooled = ctx.attrs.ints('pooled_shape') ?? [ctx.attrs.int('output_height', 1), ctx.attrs.int('output_width', 1)];
    return [tensor(dtypeOf(ctx, 0), [rois?.[0] ?? null, x?.[1] ?? null, ...pooled])];
  },
};

export const shapes: ShapeTable = {
  MaxPool: windowed,
  AveragePool: windowed,
  LpPool: windowed,
  GlobalAveragePool: global,
  GlobalMaxPool: global,
  GlobalLpPool: global,
  MaxUnpool: maxUnpool,
  MaxRoiPool: roiPool,
  RoiAlign: roiPool,
};
