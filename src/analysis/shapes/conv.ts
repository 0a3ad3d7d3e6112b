/**
 * Convolutions: Conv, ConvTranspose, and the sliding-window arithmetic they share with the
 * pooling ops. Spec: https://onnx.ai/onnx/operators/onnx__Conv.html (output size with
 * auto_pad), onnx__ConvTranspose.html (output_shape / output_padding).
 */
import type { Dim } from '../../onnx/model.js';
import { dimMul, dtypeOf, fail, type ShapeTable, type ShapeContext, shapeOf, tensor, unifyDim } from './types.js';

export interface WindowParams {
  kernel: Dim[];
  strides: number[];
  dilations: number[];
  /** [x1_begin, x2_begin, …, x1_end, x2_end, …] as in the spec. */
  pads: number[];
  autoPad: string;
  ceilMode: boolean;
}

/** Kernel, strides, dilations, pads and auto_pad of a windowed op with `n` spatial dims. */
export function windowParams(ctx: ShapeContext, n: number, kernel: Dim[]): WindowParams {
  const a = ctx.attrs;
  const p: WindowParams = {
    kernel,
    strides: a.ints('strides') ?? new Array<number>(n).fill(1),
    dilations: a.ints('dilations') ?? new Array<number>(n).fill(1),
    pads: a.ints('pads') ?? new Array<number>(2 * n).fill(0),
    autoPad: a.string('auto_pad', 'NOTSET'),
    ceilMode: a.int('ceil_mode', 0) === 1,
  };
  // The spec requires one stride/dilation per spatial axis (≥ 1) and pads ≥ 0: anything else is
  // a malformed model, and letting it through would yield absurd shapes downstream.
  const check = (name: string, v: number[], len: number, min: number) => {
    if (v.length !== len || v.some((x) => !Number.isSafeInteger(x) || x < min)) {
      fail(ctx, `${name} ${JSON.stringify(v)} is invalid for ${n} spatial axes`);
    }
  };
  check('strides', p.strides, n, 1);
  check('dilations', p.dilations, n, 1);
  if (a.has('pads')) check('pads', p.pads, 2 * n, 0);
  return p;
}

/**
 * Output size of one spatial dim of a sliding window:
 *  - SAME_UPPER / SAME_LOWER: ceil(in / stride)
 *  - VALID: floor((in − effective_kernel) / stride) + 1 (ceil with ceil_mode)
 *  - NOTSET: floor((in + pad_begin + pad_end − effective_kernel) / stride) + 1 (ceil with ceil_mode)
 * where effective_kernel = (k − 1)·dilation + 1. A symbolic input size survives only where the
 * output provably equals it (stride 1 and "same" padding).
 */
export function windowDim(ctx: ShapeContext, input: Dim, i: number, p: WindowParams): Dim {
  const n = p.kernel.length;
  const k = p.kernel[i] ?? null;
  const s = p.strides[i] ?? 1;
  const d = p.dilations[i] ?? 1;
  const same = p.autoPad === 'SAME_UPPER' || p.autoPad === 'SAME_LOWER';
  if (same) {
    if (typeof input === 'number') return Math.ceil(input / s);
    return s === 1 ? input : null;
  }
  if (k === null || typeof k !== 'number') return null;
  const eff = (k - 1) * d + 1;
  const padTotal = p.autoPad === 'VALID' ? 0 : (p.pads[i] ?? 0) + (p.pads[i + n] ?? 0);
  if (typeof input !== 'number') return s === 1 && padTotal === eff - 1 ? input : null;
  const span = input + padTotal - eff;
  if (span < 0) fail(ctx, `window of ${eff} (kernel ${k}, dilation ${d}) exceeds padded input ${input + padTotal} on spatial axis ${i}`);
  let out = (p.ceilMode ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  // With ceil_mode, a last window starting past the input and its begin padding is dropped
  // (PyTorch's rule, which the ONNX reference and runtimes follow).
  if (p.ceilMode && (out - 1) * s >= input + (p.autoPad === 'VALID' ? 0 : (p.pads[i] ?? 0))) out--;
  return out;
}

/** Conv: Y is [N, M, spatial…] with M = W's first dim (X and W at the given input slots). */
export function convShape(ctx: ShapeContext, xAt = 0, wAt = 1): Dim[] | null {
  const x = shapeOf(ctx, xAt);
  const w = shapeOf(ctx, wAt);
  if (!x) return null;
  const n = x.length - 2;
  if (n < 1) fail(ctx, `input rank ${x.length} is too small for a convolution`);
  const kernel: Dim[] = ctx.attrs.ints('kernel_shape') ?? (w ? w.slice(2) : new Array<Dim>(n).fill(null));
  if (w && w.length !== x.length) fail(ctx, `weight rank ${w.length} differs from input rank ${x.length}`);
  if (w) {
    const group = ctx.attrs.int('group', 1);
    const c = x[1]!;
    const cw = dimMul(w[1]!, group);
    if (unifyDim(c, cw) === undefined) fail(ctx, `input has ${c} channels but weight expects ${cw} (group ${group})`);
  }
  const p = windowParams(ctx, n, kernel);
  return [x[0]!, w ? w[0]! : null, ...x.slice(2).map((d, i) => windowDim(ctx, d, i, p))];
}

/**
 * ConvTranspose: W is [C, M/group, k…], so Y has M = W[1]·group channels. Spatial size is
 * output_shape when given, else
 *   stride·(in − 1) + output_padding + (k − 1)·dilation + 1 − pad_begin − pad_end
 * (with SAME_* auto_pad: in·stride).
 */
function convTransposeShape(ctx: ShapeContext): Dim[] | null {
  const x = shapeOf(ctx, 0);
  const w = shapeOf(ctx, 1);
  if (!x) return null;
  const n = x.length - 2;
  const group = ctx.attrs.int('group', 1);
  const m = w ? dimMul(w[1]!, group) : null;
  const explicit = ctx.attrs.ints('output_shape');
  if (explicit && explicit.length > 0) return [x[0]!, m, ...explicit.slice(-n)];
  const kernel: Dim[] = ctx.attrs.ints('kernel_shape') ?? (w ? w.slice(2) : new Array<Dim>(n).fill(null));
  const p = windowParams(ctx, n, kernel);
  const outPad = ctx.attrs.ints('output_padding') ?? new Array<number>(n).fill(0);
  const spatial = x.slice(2).map((d, i): Dim => {
    const s = p.strides[i] ?? 1;
    if (typeof d !== 'number') return s === 1 && p.autoPad.startsWith('SAME') ? d : null;
    if (p.autoPad.startsWith('SAME')) return d * s;
    const k = kernel[i];
    if (typeof k !== 'number') return null;
    const pads = p.autoPad === 'VALID' ? 0 : (p.pads[i] ?? 0) + (p.pads[i + n] ?? 0);
    return s * (d - 1) + (outPad[i] ?? 0) + (k - 1) * (p.dilations[i] ?? 1) + 1 - pads;
  });
  return [x[0]!, m, ...spatial];
}

export const shapes: ShapeTable = {
  Conv: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), convShape(ctx))] },
  ConvTranspose: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), convTransposeShape(ctx))] },
  /** Deformable convolution has the output shape of the plain one. */
  DeformConv: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), convShape(ctx))] },
};
