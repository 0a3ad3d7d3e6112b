/**
 * Casting to a format: exact round-to-nearest, ties-to-even (PRIMER §1), computed in float64 from
 * the format's parameters alone, so custom formats need no tables. Plus the bit-level codec.
 *
 * Why float64 is exact here: a format value is r·δ with δ a power of two (the step of its binade,
 * or the min subnormal below min normal) and r an integer below 2^(m+1) ≤ 2^53. Dividing |x| by δ
 * only shifts the exponent, so y = |x|/δ is exact, and y - floor(y) is exact for y < 2^53. The
 * comparison of that fraction with 1/2 is therefore the exact rounding decision, ties included.
 * Parity of r is parity of the code's last mantissa bit (r = 2^m + mantissa for normals,
 * r = mantissa for subnormals), and r = 2^(m+1) is the next binade's even code, so "r even"
 * is exactly IEEE ties-to-even. (With m = 0 there is no mantissa bit; ties then go to the larger
 * power of two.)
 *
 * Overflow uses the midpoint rule: the grid of the top binade is extended one step past max, and a
 * value overflows iff it rounds to that virtual point. E4M3FN: 464 is the midpoint of 448 and the
 * NaN code's 480 and ties to 448 (even); anything above overflows. E5M2: 61440 ties up to 2^16 and
 * overflows. IEEE values from 2^(Emax+1) - δ/2 on overflow, as Math.fround does for float32.
 */

import { exponentOf, pow2 } from './binary.js';
import { FormatError, type Format } from './format.js';

/**
 * Value for a magnitude past max (or an infinite input), following ONNX Cast (opset 19+):
 * saturate → ±max, except that FNUZ formats map ±Inf to NaN even when saturating;
 * no saturate → ±Inf for IEEE formats, NaN for FN/FNUZ.
 * `finite` formats (OCP FP6/FP4) have no code for either, so they always clamp to ±max.
 */
function overflowValue(negative: boolean, infinite: boolean, f: Format, saturate: boolean): number {
  const c = f.convention;
  if (c === 'finite' || (saturate && !(infinite && c === 'fnuz'))) return negative ? -f.max : f.max;
  if (c === 'ieee') return negative ? -Infinity : Infinity;
  return NaN;
}

/**
 * |x| rounded to the format's grid (normal + subnormal) with ties to even, ignoring max.
 * `a` must be finite and >= 0. Exported for the hot loops of the risk module (not public API).
 */
export function roundMagnitude(a: number, manBits: number, minNormal: number, minSubnormal: number): number {
  const step = a < minNormal ? minSubnormal : pow2(exponentOf(a) - manBits);
  const y = a / step;
  let r = Math.floor(y);
  const frac = y - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 !== 0)) r += 1;
  return r * step;
}

/**
 * Cast x to format f and back to a number. NaN → NaN. Negative values that round to zero keep
 * their sign (−0) except in FNUZ formats, which have no negative zero.
 */
export function quantise(x: number, f: Format, saturate = true): number {
  if (x !== x) return NaN;
  const negative = x < 0 || (x === 0 && 1 / x < 0);
  const a = Math.abs(x);
  if (a === Infinity) return overflowValue(negative, true, f, saturate);
  const q = roundMagnitude(a, f.manBits, f.minNormal, f.minSubnormal);
  if (q > f.max) return overflowValue(negative, false, f, saturate);
  if (q === 0) return negative && f.convention !== 'fnuz' ? -0 : 0;
  return negative ? -q : q;
}

/**
 * `quantise` over an array, same results, with the format's constants hoisted out of the loop.
 * Writes into `out` (default: a new Float64Array of src.length) and returns it.
 */
export function quantiseArray(
  src: ArrayLike<number>,
  f: Format,
  saturate = true,
  out?: Float64Array | Float32Array,
): Float64Array | Float32Array {
  const n = src.length;
  const dst = out ?? new Float64Array(n);
  if (dst.length < n) throw new RangeError(`output length ${dst.length} < input length ${n}`);
  const { manBits, minNormal, minSubnormal, max } = f;
  const keepNegZero = f.convention !== 'fnuz';
  for (let i = 0; i < n; i++) {
    const x = src[i]!;
    const a = Math.abs(x);
    if (a <= max) {
      // In-range fast path (NaN fails the comparison and takes the slow path).
      const q = roundMagnitude(a, manBits, minNormal, minSubnormal);
      if (q <= max) {
        const negative = x < 0 || (x === 0 && 1 / x < 0);
        dst[i] = negative && (q !== 0 || keepNegZero) ? -q : q;
        continue;
      }
    }
    dst[i] = quantise(x, f, saturate);
  }
  return dst;
}

function checkCodecWidth(f: Format): void {
  if (f.bits > 32) throw new FormatError(`bit codec supports formats of at most 32 bits; ${f.name} has ${f.bits}`);
}

/**
 * Bit pattern of x cast to f (sign | exponent field | mantissa, as an unsigned integer).
 * NaN codes: IEEE quiet NaN 0 11…1 10…0; FN 0 11…1 11…1; FNUZ 1 00…0. `finite` formats have no NaN
 * code and throw. Formats of up to 32 bits (all of FP4/FP6/FP8/FP16/BF16, and fp32/tf32).
 */
export function encode(x: number, f: Format, saturate = true): number {
  checkCodecWidth(f);
  const e = f.expBits;
  const m = f.manBits;
  const signBit = pow2(e + m);
  const topField = pow2(e) - 1;
  const q = quantise(x, f, saturate);
  if (q !== q) {
    switch (f.convention) {
      case 'ieee':
        if (m === 0) throw new FormatError(`${f.name} has no NaN code`);
        return topField * pow2(m) + pow2(m - 1);
      case 'fn':
        return signBit - 1;
      case 'fnuz':
        return signBit;
      case 'finite':
        throw new FormatError(`${f.name} has no NaN code`);
    }
  }
  const sign = q < 0 || (q === 0 && 1 / q < 0) ? signBit : 0;
  const a = Math.abs(q);
  if (a === Infinity) return sign + topField * pow2(m);
  if (a < f.minNormal) return sign + a / f.minSubnormal;
  const E = exponentOf(a);
  return sign + (E + f.bias) * pow2(m) + (a / pow2(E) - 1) * pow2(m);
}

/** Value of a bit pattern of f, honouring the convention's NaN/Inf/negative-zero codes. */
export function decode(code: number, f: Format): number {
  checkCodecWidth(f);
  const e = f.expBits;
  const m = f.manBits;
  const signBit = pow2(e + m);
  if (!Number.isInteger(code) || code < 0 || code >= 2 * signBit) {
    throw new FormatError(`code ${code} is not a ${f.bits}-bit pattern of ${f.name}`);
  }
  const negative = code >= signBit;
  const rest = negative ? code - signBit : code;
  const field = Math.floor(rest / pow2(m));
  const man = rest - field * pow2(m);
  const topField = pow2(e) - 1;
  switch (f.convention) {
    case 'ieee':
      if (field === topField) return man === 0 ? (negative ? -Infinity : Infinity) : NaN;
      break;
    case 'fn':
      if (field === topField && man === pow2(m) - 1) return NaN;
      break;
    case 'fnuz':
      if (code === signBit) return NaN;
      break;
    case 'finite':
      break;
  }
  const a = field === 0 ? man * f.minSubnormal : pow2(field - f.bias) * (1 + man / pow2(m));
  return negative ? -a : a;
}
