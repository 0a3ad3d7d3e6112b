/**
 * Signal-processing ops (opset 17+): DFT, STFT, the window generators (HannWindow,
 * HammingWindow, BlackmanWindow) and MelWeightMatrix
 * (https://onnx.ai/onnx/operators/onnx__DFT.html and neighbours). Complex values are a trailing
 * dim of 2 (real, imaginary); real inputs end in 1. Lengths given as scalar inputs are read when
 * known at analysis time (folded, or a symbolic dim from a Shape subgraph); otherwise the dim is
 * unknown.
 */
import { DataType } from '../../onnx/dtype.js';
import type { Dim } from '../../onnx/model.js';
import { dimsInput, dtypeOf, fail, hasInput, intsInput, type ShapeContext, type ShapeRule, type ShapeTable, shapeOf, tensor } from './types.js';

/** A scalar (or 1-element) length input as a dim: its value, a symbol, or null. */
function scalarDim(ctx: ShapeContext, i: number): Dim {
  const d = dimsInput(ctx, i);
  return d && d.length === 1 ? d[0]! : null;
}

/** floor(n/2) + 1: the non-redundant bins of a real signal's DFT of length n. */
function onesidedBins(n: Dim): Dim {
  return typeof n === 'number' ? Math.floor(n / 2) + 1 : null;
}

function checkComplexDim(ctx: ShapeContext, d: Dim): void {
  if (typeof d === 'number' && d !== 1 && d !== 2) fail(ctx, `last dim is ${d}; expected 1 (real) or 2 (complex)`);
}

/**
 * DFT(input[, dft_length][, axis]): the input's shape, last dim 2; the transformed axis holds
 * dft_length when given, and floor(n/2)+1 of its n when onesided. The axis is an attribute
 * (default 1) before opset 20, a scalar input (default -2) from then on; it ranges over the
 * signal dims, [-r, -2] ∪ [0, r-2].
 */
const dft: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const dtype = dtypeOf(ctx, 0);
    if (!x) return [tensor(dtype, null)];
    const r = x.length;
    if (r < 2) fail(ctx, `input of rank ${r}; expected [signal dims…, 1 or 2]`);
    checkComplexDim(ctx, x[r - 1]!);
    let axis: number | undefined;
    if (ctx.opset >= 20) {
      if (hasInput(ctx, 2)) {
        const v = intsInput(ctx, 2);
        if (!v || v.length !== 1) return [tensor(dtype, new Array<Dim>(r - 1).fill(null).concat([2]))];
        axis = v[0]!;
      } else axis = -2;
    } else axis = ctx.attrs.int('axis', 1);
    const a = axis < 0 ? axis + r : axis;
    if (a < 0 || a > r - 2) fail(ctx, `axis ${axis} is out of range for rank ${r} (the last dim holds the complex parts)`);
    let n: Dim = x[a]!;
    if (hasInput(ctx, 1)) n = scalarDim(ctx, 1);
    if (ctx.attrs.int('onesided', 0) === 1) n = onesidedBins(n);
    const out = [...x];
    out[a] = n;
    out[r - 1] = 2;
    return [tensor(dtype, out)];
  },
};

/**
 * STFT(signal, frame_step[, window][, frame_length]): [batch, frames, bins, 2] where the DFT
 * size is frame_length (else the window's length), frames = (signal_length − size) ÷ frame_step
 * + 1 (integer division) and bins = size ÷ 2 + 1 when onesided (the default), else size.
 */
const stft: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const dtype = dtypeOf(ctx, 0);
    if (x && x.length !== 3) fail(ctx, `signal of rank ${x.length}; expected [batch, signal_length, 1 or 2]`);
    if (x) checkComplexDim(ctx, x[2]!);
    let size: Dim = null;
    if (hasInput(ctx, 3)) size = scalarDim(ctx, 3);
    else if (hasInput(ctx, 2)) {
      const w = shapeOf(ctx, 2);
      if (w && w.length !== 1) fail(ctx, `window of rank ${w.length}; expected 1`);
      size = w ? w[0]! : null;
    }
    const step = scalarDim(ctx, 1);
    const len = x ? x[1]! : null;
    let frames: Dim = null;
    if (typeof len === 'number' && typeof size === 'number' && typeof step === 'number' && step > 0) {
      if (size > len) fail(ctx, `frame length ${size} exceeds the signal length ${len}`);
      frames = Math.floor((len - size) / step) + 1;
    }
    const bins = ctx.attrs.int('onesided', 1) === 1 ? onesidedBins(size) : size;
    return [tensor(dtype, [x ? x[0]! : null, frames, bins, 2])];
  },
};

/** Hann/Hamming/BlackmanWindow(size): a 1-D window of `size` values, of output_datatype (float). */
const window: ShapeRule = {
  shape: (ctx) => [tensor(ctx.attrs.int('output_datatype', DataType.FLOAT), [scalarDim(ctx, 0)])],
};

/**
 * MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz):
 * [floor(dft_length/2) + 1, num_mel_bins], of output_datatype (float).
 */
const melWeightMatrix: ShapeRule = {
  shape: (ctx) => [tensor(ctx.attrs.int('output_datatype', DataType.FLOAT), [onesidedBins(scalarDim(ctx, 1)), scalarDim(ctx, 0)])],
};

export const shapes: ShapeTable = {
  DFT: dft,
  STFT: stft,
  HannWindow: window,
  HammingWindow: window,
  BlackmanWindow: window,
  MelWeightMatrix: melWeightMatrix,
};
