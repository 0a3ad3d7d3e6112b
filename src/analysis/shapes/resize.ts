/**
 * Resize and its ancestor Upsample. Output size per dim is `sizes` when given, else
 * floor(input · scale) (times the roi extent in tf_crop_and_resize mode).
 * Inputs by opset (https://onnx.ai/onnx/operators/onnx__Resize.html): 10: X, scales;
 * 11–12: X, roi, scales, sizes; 13+: roi and scales optional; 18: `axes` attribute and
 * keep_aspect_ratio_policy. Upsample: scales attribute before opset 9, input after.
 */
import type { Dim } from '../../onnx/model.js';
import { dimMul, dtypeOf, fail, hasInput, intsInput, normAxis, type ShapeTable, type ShapeContext, shapeOf, tensor } from './types.js';

/** floor(d · s), exact for symbolic dims only when s is a whole number. */
function scaleDim(d: Dim, s: number): Dim {
  if (typeof d === 'number') return Math.floor(d * s);
  return Number.isInteger(s) ? dimMul(d, s) : null;
}

function scaledShape(ctx: ShapeContext, x: Dim[], scales: number[], axes: number[]): Dim[] {
  if (scales.length !== axes.length) fail(ctx, `scales has ${scales.length} entries for ${axes.length} axes`);
  const out = [...x];
  const crop = ctx.attrs.string('coordinate_transformation_mode', 'half_pixel') === 'tf_crop_and_resize';
  const roi = crop && hasInput(ctx, 1) ? intsInput(ctx, 1) : null;
  axes.forEach((a, i) => {
    let s = scales[i]!;
    if (crop) {
      if (!roi) return void (out[a] = null);
      s *= roi[i + axes.length]! - roi[i]!;
    }
    out[a] = scaleDim(x[a]!, s);
  });
  return out;
}

function sizedShape(ctx: ShapeContext, x: Dim[], sizes: number[], axes: number[]): Dim[] {
  if (sizes.length !== axes.length) fail(ctx, `sizes has ${sizes.length} entries for ${axes.length} axes`);
  const out = [...x];
  const policy = ctx.attrs.string('keep_aspect_ratio_policy', 'stretch');
  if (policy === 'stretch') {
    axes.forEach((a, i) => (out[a] = sizes[i]!));
    return out;
  }
  // not_larger / not_smaller: one scale for all axes, the min (max) of sizes/input.
  const ratios = axes.map((a, i) => (typeof x[a] === 'number' ? sizes[i]! / (x[a] as number) : NaN));
  if (ratios.some((r) => Number.isNaN(r))) return axes.reduce((o, a) => ((o[a] = null), o), out);
  const s = policy === 'not_larger' ? Math.min(...ratios) : Math.max(...ratios);
  axes.forEach((a) => (out[a] = Math.round((x[a] as number) * s)));
  return out;
}

function resizeShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  if (!x) return null;
  const axesAttr = ctx.attrs.ints('axes');
  const axes = axesAttr ? axesAttr.map((a) => normAxis(ctx, a, x.length)) : x.map((_, i) => i);
  const [scalesAt, sizesAt] = ctx.opset < 11 ? [1, -1] : [2, 3];
  const sizes = sizesAt > 0 && hasInput(ctx, sizesAt) ? intsInput(ctx, sizesAt) : null;
  if (sizes && sizes.length > 0) return sizedShape(ctx, x, sizes, axes);
  const scales = hasInput(ctx, scalesAt) ? intsInput(ctx, scalesAt) : null;
  if (scales && scales.length > 0) return scaledShape(ctx, x, scales, axes);
  return x.map(() => null);
}

function upsampleShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  if (!x) return null;
  const scales = ctx.opset < 9 ? ctx.attrs.floats('scales') ?? null : intsInput(ctx, 1);
  if (!scales) return x.map(() => null);
  if (scales.length !== x.length) fail(ctx, `scales has ${scales.length} entries for rank ${x.length}`);
  return x.map((d, i) => scaleDim(d, scales[i]!));
}

export const shapes: ShapeTable = {
  Resize: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), resizeShape(ctx))] },
  Upsample: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), upsampleShape(ctx))] },
};
