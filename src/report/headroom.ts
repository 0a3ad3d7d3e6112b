import type { TensorReport } from './types.js';

/** Counts and worst headroom of a format over a report's tensors (see tallyFormat). */
export interface FormatTally {
  /** Tensors whose overflow share exceeds the threshold. */
  over: number;
  /** Tensors whose underflow share exceeds the threshold. */
  under: number;
  /** Least headroom, log2(f.max / absmax) in bits, over tensors with a positive absmax; null: none. */
  worst: number | null;
  /** The first tensor that has the least headroom. */
  worstTensor: string | null;
}

/** Tally of the tensors that carry a risk for f: over/underflow shares above flagAbove, worst headroom. */
export function tallyFormat(f: { name: string; max: number }, tensors: TensorReport[], flagAbove: number): FormatTally {
  let over = 0;
  let under = 0;
  let worst: number | null = null;
  let worstTensor: string | null = null;
  for (const t of tensors) {
    const r = t.risk[f.name];
    if (!r) continue;
    if (r.overflow > flagAbove) over++;
    if (r.underflow > flagAbove) under++;
    if (t.absmax !== null && t.absmax > 0) {
      const h = Math.log2(f.max / t.absmax);
      if (worst === null || h < worst) {
        worst = h;
        worstTensor = t.name;
      }
    }
  }
  return { over, under, worst, worstTensor };
}
