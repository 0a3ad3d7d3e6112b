/**
 * The risk of storing a tensor in a format: overflow, underflow and subnormal shares and SQNR,
 * with exactly the definitions of /work/shared/validation/README.md:
 *   q(x)      = cast(clip(x, -max, max))         (round to nearest even)
 *   overflow  = share of |x| > max
 *   underflow = share of x != 0 with q(x) == 0
 *   subnormal = share of x != 0 with 0 < |q(x)| < min normal
 *   sqnrDb    = 10·log10(Σx² / Σ(x − q(x))²)      (+Infinity when exact)
 * Shares are over the finite elements. Measured exactly (`RiskAccumulator`) or predicted from a
 * distribution by deterministic integration (`predictRisk`, PRIMER §2).
 */

import { absLaw, isDiscrete, type AbsLaw, type Distribution, type DiscreteLaw } from './distribution.js';
import { exponentOf, pow2 } from './binary.js';
import type { Format } from './format.js';
import { roundMagnitude } from './quantise.js';
import { kernel, MAX_PAIRS, runLanes, SIGNAL_TABLE, type Lane } from './fast-wasm.js';
import { addSignalF32, addSignalF64, HI_WORD, roundingTable, tallyF32, tallyF64, type SignalState, type Tally } from './fast-risk.js';
import { integrate } from './special.js';

export type { Distribution } from './distribution.js';

export interface Risk {
  overflow: number;
  underflow: number;
  subnormal: number;
  sqnrDb: number;
}

/** What `RiskAccumulator.result()` returns: element counts and the risk per format name. */
export interface MeasuredRisk {
  /** Finite elements (the denominator of every share). */
  count: number;
  /** ±Inf and NaN elements, left out of every statistic. */
  nonFinite: number;
  /** NaN elements (a subset of nonFinite). */
  nan: number;
  /** Exact zeros among the finite elements. */
  zeros: number;
  formats: Record<string, Risk>;
}

/** SQNR in dB from signal and noise energies; +Inf when exact, -Inf when only noise. */
function sqnrDb(signal: number, noise: number): number {
  if (noise === 0) return Infinity;
  if (signal === 0) return -Infinity;
  return 10 * Math.log10(signal / noise);
}

// ---------------------------------------------------------------------------------------------
// Measured risk

/**
 * Exact, streaming risk of real values under several formats at once: feed chunks with `add`,
 * read `result` at any time. Sums of squares are compensated (Neumaier), so the result does not
 * depend on how the tensor was chunked beyond the last bits.
 *
 * Float32Array and Float64Array chunks take the fast kernels of fast-risk.ts (rounding by a
 * magic constant looked up by exponent field, one monomorphic loop per format); they give
 * bit-for-bit the results of the generic path below, which other array-likes and formats the
 * kernels do not cover use.
 */
export class RiskAccumulator {
  private readonly tallies: Tally[];
  private readonly state: SignalState = { count: 0, nonFinite: 0, nan: 0, zeros: 0, signal: 0, signalComp: 0 };
  private tables32: (Float64Array | null)[] | null = null;
  private tables64: (Float64Array | null)[] | null = null;
  private lanes: Lane[] | null = null;

  constructor(formats: Format[]) {
    this.tallies = formats.map((format) => ({ format, overflow: 0, underflow: 0, subnormal: 0, noise: 0, noiseComp: 0 }));
  }

  add(values: ArrayLike<number>): void {
    if (values instanceof Float32Array) return this.addF32(values);
    if (values instanceof Float64Array) return this.addF64(values);
    const s = this.state;
    const n = values.length;
    let sum = s.signal;
    let comp = s.signalComp;
    for (let i = 0; i < n; i++) {
      const x = values[i]!;
      if (!Number.isFinite(x)) {
        s.nonFinite++;
        if (x !== x) s.nan++;
        continue;
      }
      s.count++;
      if (x === 0) s.zeros++;
      const t = sum + x * x;
      comp += Math.abs(sum) >= x * x ? sum - t + x * x : x * x - t + sum;
      sum = t;
    }
    s.signal = sum;
    s.signalComp = comp;
    for (const tally of this.tallies) addToTally(tally, values);
  }

  private addF32(values: Float32Array): void {
    const tables = (this.tables32 ??= this.tallies.map((t) => roundingTable(t.format, 'f32')));
    const k = values.length >= WASM_MIN_LENGTH && this.tallies.length < 2 * MAX_PAIRS ? kernel() : null;
    if (k) return this.addF32Wasm(k, values, tables);
    addSignalF32(this.state, values);
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < this.tallies.length; i++) {
      const table = tables[i]!;
      if (table) tallyF32(this.tallies[i]!, values, bits, table);
      else addToTally(this.tallies[i]!, values);
    }
  }

  /** The same through the WebAssembly SIMD kernel: Σx² and every format with a table in one go. */
  private addF32Wasm(k: NonNullable<ReturnType<typeof kernel>>, values: Float32Array, tables: (Float64Array | null)[]): void {
    const s = this.state;
    const fast = this.tallies.filter((_, i) => tables[i]);
    const lanes = (this.lanes ??= [
      newLane(SIGNAL_TABLE, Infinity, 0),
      ...this.tallies.flatMap((t, i) => (tables[i] ? [newLane(tables[i]!, t.format.max, t.format.minNormal)] : [])),
    ]);
    lanes[0]!.noise = s.signal;
    lanes[0]!.noiseComp = s.signalComp;
    fast.forEach((t, i) => {
      const lane = lanes[i + 1]!;
      lane.noise = t.noise;
      lane.noiseComp = t.noiseComp;
      lane.over = lane.zero = lane.low = 0;
    });
    const { finite, zeros } = runLanes(k, values, lanes);
    s.signal = lanes[0]!.noise;
    s.signalComp = lanes[0]!.noiseComp;
    s.count += finite;
    s.zeros += zeros;
    if (finite < values.length) {
      s.nonFinite += values.length - finite;
      for (let i = 0; i < values.length; i++) if (values[i] !== values[i]) s.nan++;
    }
    fast.forEach((t, i) => {
      const lane = lanes[i + 1]!;
      t.noise = lane.noise;
      t.noiseComp = lane.noiseComp;
      t.overflow += lane.over;
      t.underflow += lane.zero - zeros;
      t.subnormal += lane.low - lane.zero;
    });
    this.tallies.forEach((t, i) => {
      if (!tables[i]) addToTally(t, values);
    });
  }

  private addF64(values: Float64Array): void {
    addSignalF64(this.state, values);
    const tables = (this.tables64 ??= this.tallies.map((t) => roundingTable(t.format, 'f64')));
    const words = new Uint32Array(values.buffer, values.byteOffset, 2 * values.length);
    for (let k = 0; k < this.tallies.length; k++) {
      const table = tables[k]!;
      if (table) tallyF64(this.tallies[k]!, values, words, HI_WORD, table);
      else addToTally(this.tallies[k]!, values);
    }
  }

  result(): MeasuredRisk {
    const formats: Record<string, Risk> = {};
    const s = this.state;
    const n = s.count;
    const share = (k: number): number => (n === 0 ? 0 : k / n);
    for (const t of this.tallies) {
      formats[t.format.name] = {
        overflow: share(t.overflow),
        underflow: share(t.underflow),
        subnormal: share(t.subnormal),
        sqnrDb: sqnrDb(s.signal + s.signalComp, t.noise + t.noiseComp),
      };
    }
    return { count: n, nonFinite: s.nonFinite, nan: s.nan, zeros: s.zeros, formats };
  }
}

/** Below this many elements the JavaScript loops win over copying into the kernel's memory. */
const WASM_MIN_LENGTH = 64;

function newLane(table: Float64Array, max: number, minNormal: number): Lane {
  return { table, max, minNormal, noise: 0, noiseComp: 0, over: 0, zero: 0, low: 0 };
}

/** The generic path: `roundMagnitude` per element (any array-like, any format). */
function addToTally(t: Tally, values: ArrayLike<number>): void {
  const { manBits, minNormal, minSubnormal, max } = t.format;
  let overflow = 0;
  let underflow = 0;
  let subnormal = 0;
  let sum = t.noise;
  let comp = t.noiseComp;
  for (let i = 0, n = values.length; i < n; i++) {
    const a = Math.abs(values[i]!);
    if (!(a < Infinity)) continue; // NaN and ±Inf
    let q: number;
    if (a > max) {
      overflow++;
      q = max; // clip first, as the definition says
    } else {
      q = roundMagnitude(a, manBits, minNormal, minSubnormal);
    }
    if (q === 0) {
      if (a !== 0) underflow++;
    } else if (q < minNormal) subnormal++;
    const e = a - q;
    const e2 = e * e;
    const s = sum + e2;
    comp += Math.abs(sum) >= e2 ? sum - s + e2 : e2 - s + sum;
    sum = s;
  }
  t.overflow += overflow;
  t.underflow += underflow;
  t.subnormal += subnormal;
  t.noise = sum;
  t.noiseComp = comp;
}

// ---------------------------------------------------------------------------------------------
// Predicted risk
//
// Everything depends on |x| only (the formats are sign-symmetric), so we work with the law of |x|:
// an atom at 0 (rectified) and a density p on (0, ∞). The shares are probabilities of intervals,
// read off closed-form CDFs:
//   overflow  = P(|x| > max)
//   underflow = P(0 < |x| ≤ s/2)                      (s/2 ties to 0, which is even)
//   subnormal = P(s/2 < |x| < minNormal − s/2)        (minNormal − s/2 ties up to minNormal, even)
// The noise E[(x − q(x))²] is integrated over the format's grid. [0, max] is split into segments
// of constant step δ: the subnormal range [0, minNormal] (step s) and each binade [2^E, 2^(E+1)]
// (step 2^(E−m)), the top one ending at max; past max the error is (|x| − max)².
//
// Within a segment the error is the sawtooth e(a) = a − g(a), g the nearest grid point, and
//   ∫_u^v p e² = δ²/12 · P(u<|x|<v) + [p·W]_u^v − ∫_u^v p′ W,   W(a) = t(4t² − δ²)/12, t = e(a),
// because W′ = e² − δ²/12 and W vanishes at every cell edge. W is periodic with zero mean, so the
// last integral is O(p″δ⁴) and its share of the noise is ~(δ/L)²/30 for a density varying on a
// length L. Where δ ≤ L/64 we use the first two terms (the "δ²/12 rule" plus the exact boundary
// correction, which also makes piecewise-constant densities exact); elsewhere we integrate
// p(a)(a − g)² cell by cell with Gauss–Legendre, so coarse grids (FP8/FP4) and tiny scales (all mass
// inside one subnormal cell) are integrated exactly. Only the window where the continuous part
// has mass above ~1e-32 is integrated.

/** Use the δ²/12 rule where the grid step is at most this share of the density's length scale. */
const SMOOTH_STEP = 1 / 64;

/** Intervals spanning at most this many cells are always integrated cell by cell. */
const EXACT_CELLS = 64;

/** A segment of the grid: points origin + jδ, covering [from, to]. */
function segmentNoise(law: AbsLaw, from: number, to: number, origin: number, step: number): number {
  const u0 = Math.max(from, law.lo);
  const v0 = Math.min(to, law.hi);
  if (!(v0 > u0)) return 0;
  let noise = 0;
  let u = u0;
  for (const b of [...law.breaks.filter((x) => x > u0 && x < v0), v0]) {
    // Few cells: integrate them exactly (cheap, and the δ²/12 rule would cancel catastrophically
    // against its boundary terms on an interval much shorter than δ).
    const exact = (b - u) / step <= EXACT_CELLS || step > law.scale * SMOOTH_STEP;
    noise += exact ? cellNoise(law, u, b, origin, step) : smoothNoise(law, u, b, origin, step);
    u = b;
  }
  return noise;
}

/** δ²/12 rule with the exact boundary correction [p·W]_u^v (p smooth on (u, v)). */
function smoothNoise(law: AbsLaw, u: number, v: number, origin: number, step: number): number {
  const W = (a: number): number => {
    const t = a - (origin + Math.round((a - origin) / step) * step);
    return (t * (4 * t * t - step * step)) / 12;
  };
  // One-sided densities, so a jump at u or v (uniform's edges) is taken from inside.
  const inset = (v - u) * 1e-9;
  return ((step * step) / 12) * law.mass(u, v) + law.pdf(v - inset) * W(v) - law.pdf(u + inset) * W(u);
}

/** Exact ∫_u^v p(a)(a − g(a))² da, one Voronoi cell [g − δ/2, g + δ/2] at a time. */
function cellNoise(law: AbsLaw, u: number, v: number, origin: number, step: number): number {
  const first = Math.round((u - origin) / step);
  const last = Math.round((v - origin) / step);
  const width = law.scale / 2;
  let noise = 0;
  for (let j = first; j <= last; j++) {
    const g = origin + j * step;
    const a = Math.max(u, g - step / 2);
    const b = Math.min(v, g + step / 2);
    if (b > a) noise += integrate((x) => law.pdf(x) * (x - g) * (x - g), a, b, width);
  }
  return noise;
}

/** ∫_max^∞ (a − max)² p(a) da over the window. */
function overflowNoise(law: AbsLaw, max: number): number {
  const u0 = Math.max(max, law.lo);
  if (!(law.hi > u0)) return 0;
  let noise = 0;
  let u = u0;
  for (const b of [...law.breaks.filter((x) => x > u0 && x < law.hi), law.hi]) {
    noise += integrate((x) => law.pdf(x) * (x - max) * (x - max), u, b, law.scale / 2);
    u = b;
  }
  return noise;
}

function continuousNoise(law: AbsLaw, f: Format): number {
  if (!(law.hi > law.lo)) return 0;
  let noise = segmentNoise(law, 0, Math.min(f.minNormal, f.max), 0, f.minSubnormal);
  const top = Math.min(law.hi, f.max);
  // Binades that meet the window, from the one holding law.lo (or the first normal one) up.
  let E = law.lo > f.minNormal ? exponentOf(law.lo) : 1 - f.bias;
  for (; pow2(E) < top; E++) {
    const a = pow2(E);
    noise += segmentNoise(law, a, Math.min(2 * a, f.max), a, pow2(E - f.manBits));
  }
  return noise + overflowNoise(law, f.max);
}

/** Exact risk of a discrete law (also used by predict-risk.ts). */
export function discreteRisk(law: DiscreteLaw, f: Format): Risk {
  const { manBits, minNormal, minSubnormal, max } = f;
  let overflow = 0;
  let underflow = 0;
  let subnormal = 0;
  let signal = 0;
  let noise = 0;
  law.values.forEach((x, i) => {
    const p = law.probs[i]!;
    const a = Math.abs(x);
    const q = a > max ? max : roundMagnitude(a, manBits, minNormal, minSubnormal);
    if (a > max) overflow += p;
    if (q === 0 && a !== 0) underflow += p;
    if (q > 0 && q < minNormal) subnormal += p;
    signal += p * a * a;
    noise += p * (a - q) * (a - q);
  });
  return { overflow, underflow, subnormal, sqnrDb: sqnrDb(signal, noise) };
}

const clamp01 = (p: number): number => Math.min(1, Math.max(0, p));

/**
 * Risk of a tensor whose elements follow d, stored in f. Deterministic: no sampling. Shares come
 * from closed-form CDFs (relative accuracy ~1e-12 down to the smallest normal doubles), the SQNR
 * from the segment-wise integration above (well within 0.01 dB; the tests bound it against
 * Monte-Carlo).
 */
export function predictRisk(d: Distribution, f: Format): Risk {
  const law = absLaw(d);
  if (isDiscrete(law)) return discreteRisk(law, f);
  const s = f.minSubnormal;
  return {
    overflow: clamp01(law.tail(f.max)),
    underflow: clamp01(law.mass(0, s / 2)),
    subnormal: clamp01(law.mass(s / 2, f.minNormal - s / 2)),
    sqnrDb: sqnrDb(law.secondMoment, continuousNoise(law, f)),
  };
}

/**
 * Bits of room above a magnitude before it overflows: log2(max / value). Use the absmax for a
 * hard bound or the RMS for the bulk; negative means the value already overflows.
 */
export function headroomBits(value: number, f: Format): number {
  return Math.log2(f.max / Math.abs(value));
}

/**
 * Bits of room below a magnitude before it leaves the normal range: log2(value / minNormal).
 * Negative means the value is subnormal (precision loss); below −m it underflows to zero.
 */
export function footroomBits(value: number, f: Format): number {
  return Math.log2(Math.abs(value) / f.minNormal);
}
