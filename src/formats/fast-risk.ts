/**
 * Fast kernels for `RiskAccumulator` (risk.ts) on Float32Array / Float64Array data. They give
 * bit-for-bit the results of the generic per-element path (`roundMagnitude` + the same Neumaier
 * sums in the same order); only the way q(x) is found differs.
 *
 * Rounding by a magic constant. Let δ = 2^k be the format's step at |x| = a (the binade's
 * 2^(E−m), or the min subnormal below min normal) and C = 1.5·2^(k+52). C is a double whose ulp
 * is exactly δ, and as long as a < 2^(k+51) the exact sum a + C stays in C's binade
 * [2^(k+52), 2^(k+53)], so the double addition rounds a + C to the nearest multiple of δ with ties
 * to even (IEEE round-to-nearest-even, which JavaScript always uses). C/δ = 3·2^51 is even, so the
 * parity of (a + C)/δ is the parity of the rounded a/δ: "even" is the format's even code, exactly
 * as `roundMagnitude` decides. Then (a + C) − C is exact (Sterbenz), so
 *   q = (a + C) − C  ==  roundMagnitude(a, m, minNormal, minSubnormal).
 * The condition a < 2^(k+51) holds for normals when m ≤ 49 (a < 2^(E+1), k = E − m) and below min
 * normal always (a/δ < 2^m). C depends on a only through its binary exponent, so it is read from a
 * table indexed by the exponent field of the source float: 256 entries for float32, 2048 for
 * float64. Source subnormals (field 0) lie below the format's min normal as long as that is at
 * least the source's min normal (always for float64, where makeFormat requires 2^(1−b) ≥ 2^-1022;
 * for float32 when 1 − b ≥ −126), so field 0 takes the subnormal constant.
 *
 * Formats outside these bounds (m > 49, or a float32 source with 1 − b < −126, or C not finite for
 * a magnitude the format can hold) get no table and use the generic path.
 */

import { exponentOf, pow2 } from './binary.js';
import type { Format } from './format.js';

/** Running per-format counts and compensated noise energy (shared with risk.ts). */
export interface Tally {
  format: Format;
  overflow: number;
  underflow: number;
  subnormal: number;
  noise: number;
  noiseComp: number;
}

export type SourceKind = 'f32' | 'f64';

const F32_BIAS = 127;
const F64_BIAS = 1023;

const cache32 = new WeakMap<Format, Float64Array | null>();
const cache64 = new WeakMap<Format, Float64Array | null>();

/**
 * The magic-constant table of `f` for a float32 or float64 source, or null when the fast path
 * does not apply to this format (see the header). Cached per format object; do not modify.
 */
export function roundingTable(f: Format, source: SourceKind): Float64Array | null {
  const cache = source === 'f32' ? cache32 : cache64;
  let t = cache.get(f);
  if (t === undefined) cache.set(f, (t = buildTable(f, source)));
  return t;
}

function buildTable(f: Format, source: SourceKind): Float64Array | null {
  const m = f.manBits;
  if (m > 49) return null;
  const emin = 1 - f.bias; // exponent of min normal
  const bias = source === 'f32' ? F32_BIAS : F64_BIAS;
  const size = source === 'f32' ? 256 : 2048;
  if (1 - bias > emin) {
    // Source subnormals could be format normals: only float32 with an exotic bias gets here.
    return null;
  }
  const cSub = 1.5 * pow2(emin - m + 52);
  const topE = exponentOf(f.max); // a <= max has exponent <= topE
  const table = new Float64Array(size);
  for (let field = 0; field < size - 1; field++) {
    const E = field === 0 ? 1 - bias : field - bias;
    if (E < emin) table[field] = cSub;
    else {
      const c = 1.5 * pow2(E - m + 52);
      if (!Number.isFinite(c) && E <= topE) return null;
      table[field] = c;
    }
  }
  table[size - 1] = NaN; // Inf/NaN: never looked up
  return table;
}

/** Neumaier-compensated Σx² and the element counts of one chunk (float32 data). */
export interface SignalState {
  count: number;
  nonFinite: number;
  nan: number;
  zeros: number;
  signal: number;
  signalComp: number;
}

export function addSignalF32(s: SignalState, values: Float32Array): void {
  let count = 0;
  let zeros = 0;
  let nan = 0;
  let sum = s.signal;
  let comp = s.signalComp;
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const x = values[i]!;
    if (!(Math.abs(x) < Infinity)) {
      if (x !== x) nan++;
      continue;
    }
    count++;
    if (x === 0) zeros++;
    const x2 = x * x;
    const t = sum + x2;
    comp += Math.abs(sum) >= x2 ? sum - t + x2 : x2 - t + sum;
    sum = t;
  }
  s.count += count;
  s.zeros += zeros;
  s.nan += nan;
  s.nonFinite += n - count;
  s.signal = sum;
  s.signalComp = comp;
}

export function addSignalF64(s: SignalState, values: Float64Array): void {
  let count = 0;
  let zeros = 0;
  let nan = 0;
  let sum = s.signal;
  let comp = s.signalComp;
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const x = values[i]!;
    if (!(Math.abs(x) < Infinity)) {
      if (x !== x) nan++;
      continue;
    }
    count++;
    if (x === 0) zeros++;
    const x2 = x * x;
    const t = sum + x2;
    comp += Math.abs(sum) >= x2 ? sum - t + x2 : x2 - t + sum;
    sum = t;
  }
  s.count += count;
  s.zeros += zeros;
  s.nan += nan;
  s.nonFinite += n - count;
  s.signal = sum;
  s.signalComp = comp;
}

/** One format over float32 data; `bits` views the same memory as `values`. */
export function tallyF32(t: Tally, values: Float32Array, bits: Uint32Array, table: Float64Array): void {
  const max = t.format.max;
  const minNormal = t.format.minNormal;
  let overflow = 0;
  let underflow = 0;
  let subnormal = 0;
  let sum = t.noise;
  let comp = t.noiseComp;
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(values[i]!);
    if (!(a < Infinity)) continue; // NaN and ±Inf
    let q: number;
    if (a > max) {
      overflow++;
      q = max;
    } else {
      const c = table[(bits[i]! >>> 23) & 0xff]!;
      q = a + c - c;
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

/** One format over float64 data; `words` views the same memory, `hi` is the index (0/1) of the high word. */
export function tallyF64(t: Tally, values: Float64Array, words: Uint32Array, hi: number, table: Float64Array): void {
  const max = t.format.max;
  const minNormal = t.format.minNormal;
  let overflow = 0;
  let underflow = 0;
  let subnormal = 0;
  let sum = t.noise;
  let comp = t.noiseComp;
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(values[i]!);
    if (!(a < Infinity)) continue;
    let q: number;
    if (a > max) {
      overflow++;
      q = max;
    } else {
      const c = table[(words[2 * i + hi]! >>> 20) & 0x7ff]!;
      q = a + c - c;
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

/** Index (0 or 1) of the 32-bit word holding a double's sign and exponent. */
export const HI_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
