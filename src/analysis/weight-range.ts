/**
 * One range of one float32 weight, reduced in a single pass: moments and per-format risk (the
 * WebAssembly kernel, formats/weight-kernel.ts), the first ≤ MAX_DISCRETE distinct values, and
 * the fan-in sums the rules asked for (Σw, Σ|w|, Σw² per output unit, weights.ts `sliceSums`).
 * Used by the weight pass's workers and, for inline tensors, by the main thread; ranges of a
 * tensor are merged in order (`mergeRanges`), so a result does not depend on who reduced which.
 */
import { mergeSummaries, type Float32Summary, type WeightKernel } from '../formats/weight-kernel.js';
import { MAX_COLUMNS, type SliceKernel } from './slice-kernel.js';
import { MAX_DISCRETE } from './weights.js';

/** Element types the pass reads: float32 as is; float16 and bfloat16 widened to float32 (exactly). */
export type ElementKind = 'f32' | 'f16' | 'bf16';
export const ELEMENT_BYTES: Record<ElementKind, number> = { f32: 4, f16: 2, bf16: 2 };

let halfTable: Float32Array | null = null;
/** float32 value of every float16 bit pattern (exact: float16 ⊂ float32). */
function halfToFloat(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? sign * m * 2 ** -24 : e === 31 ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return (halfTable = t);
}

/**
 * Where the raw bytes of n elements go in the kernel's input buffer: float32 at 0; 2-byte types
 * in the upper half [2n, 4n), from where `widen` converts them forward in place (element i is
 * written at 4i ≤ 2n + 2i, at or before the bytes still to be read).
 */
export function rawOffset(kind: ElementKind, n: number): number {
  return kind === 'f32' ? 0 : 2 * n;
}

/** Convert n elements of `kind` read at rawOffset(kind, n) into float32 at the buffer's start. */
export function widen(bytes: Uint8Array, kind: ElementKind, n: number): void {
  if (kind === 'f32') return;
  const src = new Uint16Array(bytes.buffer, bytes.byteOffset + 2 * n, n);
  if (kind === 'bf16') {
    const dst = new Uint32Array(bytes.buffer, bytes.byteOffset, n);
    for (let i = 0; i < n; i++) dst[i] = src[i]! << 16;
  } else {
    const dst = new Float32Array(bytes.buffer, bytes.byteOffset, n);
    const t = halfToFloat();
    for (let i = 0; i < n; i++) dst[i] = t[src[i]!]!;
  }
}

/** Sums over axes [from, to) of a tensor: element i belongs to slice ⌊i/(mid·inner)⌋·inner + i mod inner. */
export interface SliceLayout {
  from: number;
  to: number;
  mid: number;
  inner: number;
  slices: number;
}

export function sliceLayout(dims: number[], from: number, to: number): SliceLayout {
  const prod = (a: number[]) => a.reduce((x, y) => x * y, 1);
  const inner = prod(dims.slice(to));
  const mid = prod(dims.slice(from, to));
  return { from, to, mid, inner, slices: prod(dims.slice(0, from)) * inner };
}

/** Partial fan-in sums for slices [lo, lo + S.length). */
export interface SlicePart {
  lo: number;
  S: Float64Array;
  A: Float64Array;
  Q: Float64Array;
}

export interface RangeResult {
  summary: Float32Summary;
  /** Distinct finite values in order of first appearance with their counts; null: more than MAX_DISCRETE. */
  distinct: { values: number[]; counts: number[] } | null;
  slices: SlicePart[];
}

/** The slices a range of elements [first, first + n) touches. */
function window(l: SliceLayout, first: number, n: number): { lo: number; hi: number } {
  if (n === 0) return { lo: 0, hi: 0 };
  const block = l.mid * l.inner;
  const last = first + n - 1;
  if (l.inner === 1) return { lo: Math.floor(first / l.mid), hi: Math.floor(last / l.mid) + 1 };
  return { lo: Math.floor(first / block) * l.inner, hi: (Math.floor(last / block) + 1) * l.inner };
}

/** Accumulates one range, fed in blocks already in the kernel's input buffer. */
export class RangeReducer {
  private readonly parts: SlicePart[];
  private values: number[] = [];
  private counts: number[] = [];
  private tracking = true;
  private next: number;

  constructor(
    private readonly kernel: WeightKernel,
    private readonly slicer: SliceKernel | null,
    private readonly layouts: SliceLayout[],
    first: number,
    count: number,
    trackDistinct: boolean,
  ) {
    kernel.reset();
    this.next = first;
    this.tracking = trackDistinct;
    this.parts = layouts.map((l) => {
      const { lo, hi } = window(l, first, count);
      return { lo, S: new Float64Array(hi - lo), A: new Float64Array(hi - lo), Q: new Float64Array(hi - lo) };
    });
  }

  /** The kernel's input buffer holds the next n values: reduce them. */
  run(view: Float32Array, n: number): void {
    this.kernel.run(n);
    if (this.tracking) this.track(view, n);
    if (this.layouts.length && this.slicer) this.slicer.load(view.subarray(0, n));
    for (let k = 0; k < this.layouts.length; k++) addSlices(this.layouts[k]!, this.parts[k]!, view, n, this.next, this.slicer);
    this.next += n;
  }

  private track(view: Float32Array, n: number): void {
    const { values, counts } = this;
    for (let i = 0; i < n; i++) {
      const x = view[i]!;
      if (x !== x || x === Infinity || x === -Infinity) continue;
      let k = 0;
      while (k < values.length && values[k] !== x) k++;
      if (k < values.length) counts[k]!++;
      else if (values.length < MAX_DISCRETE) {
        values.push(x === 0 ? 0 : x);
        counts.push(1);
      } else {
        this.tracking = false;
        this.values = [];
        this.counts = [];
        return;
      }
    }
  }

  result(): RangeResult {
    return {
      summary: this.kernel.summary(),
      distinct: this.tracking ? { values: this.values, counts: this.counts } : null,
      slices: this.parts,
    };
  }
}

/** Σw, Σ|w|, Σw² of view[0, n) (elements first … first+n−1) into their slices (finite values only). */
function addSlices(l: SliceLayout, p: SlicePart, view: Float32Array, n: number, first: number, k: SliceKernel | null): void {
  const { S, A, Q, lo } = p;
  const { mid, inner } = l;
  if (inner === 1) {
    // Contiguous runs of `mid` elements share a slice.
    let i = 0;
    while (i < n) {
      const e = first + i;
      const slice = Math.floor(e / mid) - lo;
      const len = Math.min(n - i, mid - (e % mid));
      const [s, a, q] = k ? k.rows(i, len) : jsRun(view, i, len);
      S[slice]! += s;
      A[slice]! += a;
      Q[slice]! += q;
      i += len;
    }
    return;
  }
  // Rows of `inner` elements each add into the slices of their block.
  const block = mid * inner;
  const w = window(l, first, n);
  const width = w.hi - w.lo;
  const useKernel = k !== null && width <= MAX_COLUMNS;
  if (useKernel) k.clearColumns(width);
  let i = 0;
  while (i < n) {
    const e = first + i;
    const col = e % inner;
    const slice = Math.floor(e / block) * inner + col;
    const len = Math.min(n - i, inner - col);
    if (useKernel) k.cols(i, len, slice - w.lo);
    else {
      let j = slice - lo;
      for (let end = i + len, t = i; t < end; t++, j++) {
        const x = view[t]!;
        if (x - x !== 0) continue;
        S[j]! += x;
        A[j]! += Math.abs(x);
        Q[j]! += x * x;
      }
    }
    i += len;
  }
  if (useKernel) {
    const c = k.columns(width);
    const at = w.lo - lo;
    for (let j = 0; j < width; j++) {
      S[at + j]! += c.S[j]!;
      A[at + j]! += c.A[j]!;
      Q[at + j]! += c.Q[j]!;
    }
  }
}

function jsRun(view: Float32Array, i: number, len: number): [number, number, number] {
  let s = 0;
  let a = 0;
  let q = 0;
  for (let t = i; t < i + len; t++) {
    const x = view[t]!;
    if (x - x !== 0) continue;
    s += x;
    a += Math.abs(x);
    q += x * x;
  }
  return [s, a, q];
}

/** A tensor's ranges merged in order: summary, distinct values, full fan-in sums per layout. */
export function mergeRanges(
  ranges: RangeResult[],
  layouts: SliceLayout[],
): { summary: Float32Summary; distinct: Map<number, number> | null; slices: { S: Float64Array; A: Float64Array; Q: Float64Array }[] } {
  let summary = ranges[0]!.summary;
  for (let r = 1; r < ranges.length; r++) summary = mergeSummaries(summary, ranges[r]!.summary);
  let values: number[] | null = [];
  let counts: number[] = [];
  for (const r of ranges) {
    if (!values) break;
    if (!r.distinct) {
      values = null;
      break;
    }
    r.distinct.values.forEach((v, k) => {
      if (!values) return;
      const at = values.indexOf(v);
      if (at >= 0) counts[at]! += r.distinct!.counts[k]!;
      else if (values.length < MAX_DISCRETE) {
        values.push(v);
        counts.push(r.distinct!.counts[k]!);
      } else values = null;
    });
  }
  const finite = summary.count - summary.nonFinite;
  let distinct: Map<number, number> | null = null;
  if (values && finite > 0) {
    distinct = new Map();
    for (let k = 0; k < values.length; k++) distinct.set(values[k]!, counts[k]! / finite);
  }
  const slices = layouts.map((l, k) => {
    const S = new Float64Array(l.slices);
    const A = new Float64Array(l.slices);
    const Q = new Float64Array(l.slices);
    for (const r of ranges) {
      const p = r.slices[k]!;
      for (let j = 0; j < p.S.length; j++) {
        S[p.lo + j]! += p.S[j]!;
        A[p.lo + j]! += p.A[j]!;
        Q[p.lo + j]! += p.Q[j]!;
      }
    }
    return { S, A, Q };
  });
  return { summary, distinct, slices };
}
