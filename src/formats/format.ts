/**
 * Binary floating-point formats, derived from (exponent bits, mantissa bits, bias, convention).
 *
 * Every number of a `Format` comes out of `makeFormat`; nothing is typed in by hand, so a custom
 * `eXmY` is exactly as trustworthy as a built-in. The rules are those of PRIMER §1:
 *   min normal    = 2^(1-b)
 *   min subnormal = 2^(1-b-m)
 *   max finite    = depends on how the convention spends the top exponent field (see `maxFinite`).
 */

import { pow2 } from './binary.js';

/**
 * How a format spends its special codes.
 * - `ieee`:   the all-ones exponent field holds ±Inf (mantissa 0) and NaN (anything else).
 * - `fn`:     finite-only; the top exponent holds ordinary numbers except the single all-ones
 *             exponent+mantissa pattern (per sign), which is NaN. (OCP FP8 E4M3, ONNX FLOAT8E4M3FN.)
 * - `fnuz`:   finite-only, no negative zero; the code that would be -0 (sign bit alone) is the only
 *             NaN; by convention the bias is one larger than IEEE's. (Graphcore/AMD, ONNX *FNUZ.)
 * - `finite`: every code is a finite number, no Inf and no NaN (OCP MX FP6 E2M3/E3M2, FP4 E2M1).
 */
export type SpecialConvention = 'ieee' | 'fn' | 'fnuz' | 'finite';

export interface Format {
  /** Canonical name (what `parseFormat` accepts and reports use). */
  name: string;
  expBits: number;
  manBits: number;
  bias: number;
  convention: SpecialConvention;
  /** Total storage bits: 1 sign + e + m. */
  bits: number;
  /** Largest finite magnitude. */
  max: number;
  /** Smallest positive normal, 2^(1-bias). */
  minNormal: number;
  /** Smallest positive subnormal, 2^(1-bias-m). */
  minSubnormal: number;
  hasInf: boolean;
  /** ONNX TensorProto.DataType, or null when ONNX has no such element type. */
  onnxType: number | null;
}

/** Thrown for an unknown format name or impossible format parameters. */
export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FormatError';
  }
}

export interface MakeFormatOptions {
  bias?: number;
  convention?: SpecialConvention;
  name?: string;
  onnxType?: number;
}

const CONVENTIONS: readonly SpecialConvention[] = ['ieee', 'fn', 'fnuz', 'finite'];

/**
 * Largest finite value. With biased exponent field k the normal numbers are 2^(k-b)·(1 + j/2^m).
 * - ieee:   top field (2^e - 1) is reserved, so k = 2^e - 2 with a full mantissa.
 * - fn:     k = 2^e - 1 is usable but its all-ones mantissa is NaN, so the largest mantissa is
 *           2^m - 2 (E4M3FN: 2^8·1.75 = 448). With m = 0 the top field is only NaN: fall back to k-1.
 * - fnuz / finite: every code of the top field is a number: k = 2^e - 1, full mantissa.
 */
function maxFinite(e: number, m: number, bias: number, c: SpecialConvention): number {
  const topField = pow2(e) - 1;
  const fullMantissa = 2 - pow2(-m); // 1.111…1 (m ones)
  switch (c) {
    case 'ieee':
      return pow2(topField - 1 - bias) * fullMantissa;
    case 'fn':
      if (m === 0) return pow2(topField - 1 - bias);
      return pow2(topField - bias) * (2 - pow2(1 - m)); // 1.111…10
    case 'fnuz':
    case 'finite':
      return pow2(topField - bias) * fullMantissa;
  }
}

/**
 * Build a format from its defining parameters. Default bias is 2^(e-1) - 1, plus one for fnuz
 * (which is how E4M3FNUZ gets bias 8 and E5M2FNUZ bias 16). Throws `FormatError` for parameters
 * whose values a float64 cannot hold exactly (we compute every quantisation in float64).
 */
export function makeFormat(expBits: number, manBits: number, opts: MakeFormatOptions = {}): Format {
  const convention = opts.convention ?? 'ieee';
  if (!CONVENTIONS.includes(convention)) {
    throw new FormatError(`unknown special-value convention '${String(convention)}' (use ieee, fn, fnuz or finite)`);
  }
  if (!Number.isInteger(expBits) || expBits < 1 || expBits > 11) {
    throw new FormatError(`exponent bits must be an integer in 1..11, got ${expBits}`);
  }
  if (!Number.isInteger(manBits) || manBits < 0 || manBits > 52) {
    throw new FormatError(`mantissa bits must be an integer in 0..52, got ${manBits}`);
  }
  if (convention === 'ieee' && expBits < 2) {
    throw new FormatError('an IEEE-style format needs at least 2 exponent bits (the top one is Inf/NaN)');
  }
  const bias = opts.bias ?? pow2(expBits - 1) - 1 + (convention === 'fnuz' ? 1 : 0);
  if (!Number.isInteger(bias)) throw new FormatError(`bias must be an integer, got ${bias}`);

  const minNormal = pow2(1 - bias);
  const minSubnormal = pow2(1 - bias - manBits);
  const max = maxFinite(expBits, manBits, bias, convention);
  // float64 must represent the whole grid exactly: normals down to 2^-1022, subnormals to 2^-1074.
  if (1 - bias < -1022 || 1 - bias - manBits < -1074 || !Number.isFinite(max) || max < minNormal) {
    throw new FormatError(`format e${expBits}m${manBits} with bias ${bias} does not fit in float64 arithmetic`);
  }
  const suffix = convention === 'ieee' ? '' : convention === 'finite' ? 'finite' : convention;
  return Object.freeze({
    name: opts.name ?? `e${expBits}m${manBits}${suffix}`,
    expBits,
    manBits,
    bias,
    convention,
    bits: 1 + expBits + manBits,
    max,
    minNormal,
    minSubnormal,
    hasInf: convention === 'ieee',
    onnxType: opts.onnxType ?? null,
  });
}

// ONNX TensorProto.DataType values (onnx.proto).
const ONNX_FLOAT = 1;
const ONNX_FLOAT16 = 10;
const ONNX_BFLOAT16 = 16;
const ONNX_FLOAT8E4M3FN = 17;
const ONNX_FLOAT8E4M3FNUZ = 18;
const ONNX_FLOAT8E5M2 = 19;
const ONNX_FLOAT8E5M2FNUZ = 20;
const ONNX_FLOAT4E2M1 = 23;

/** The built-ins of PRIMER §1, widest first. */
const BUILTINS: readonly Format[] = [
  makeFormat(8, 23, { name: 'fp32', onnxType: ONNX_FLOAT }),
  makeFormat(8, 10, { name: 'tf32' }),
  makeFormat(8, 7, { name: 'bf16', onnxType: ONNX_BFLOAT16 }),
  makeFormat(5, 10, { name: 'fp16', onnxType: ONNX_FLOAT16 }),
  makeFormat(4, 3, { name: 'e4m3', convention: 'fn', onnxType: ONNX_FLOAT8E4M3FN }),
  makeFormat(4, 3, { name: 'e4m3fnuz', convention: 'fnuz', onnxType: ONNX_FLOAT8E4M3FNUZ }),
  makeFormat(5, 2, { name: 'e5m2', onnxType: ONNX_FLOAT8E5M2 }),
  makeFormat(5, 2, { name: 'e5m2fnuz', convention: 'fnuz', onnxType: ONNX_FLOAT8E5M2FNUZ }),
  makeFormat(2, 3, { name: 'e2m3', convention: 'finite' }),
  makeFormat(3, 2, { name: 'e3m2', convention: 'finite' }),
  makeFormat(2, 1, { name: 'e2m1', convention: 'finite', onnxType: ONNX_FLOAT4E2M1 }),
];

const BY_NAME = new Map<string, Format>(BUILTINS.map((f) => [f.name, f]));

/**
 * Other spellings, after normalisation (lower case, '_', '-', ' ' and '.' removed). These cover
 * the ONNX type names, the ml_dtypes / PyTorch names and common shorthand. Note that ml_dtypes'
 * "fn" suffix on FP6/FP4 means "finite" (no NaN at all), so e2m1fn is OCP FP4, not a custom FN.
 */
const ALIASES: Record<string, string> = {
  float32: 'fp32', float: 'fp32', f32: 'fp32', single: 'fp32', e8m23: 'fp32',
  tensorfloat32: 'tf32',
  bfloat16: 'bf16', bfloat: 'bf16',
  float16: 'fp16', half: 'fp16', f16: 'fp16', e5m10: 'fp16',
  e4m3fn: 'e4m3', fp8: 'e4m3', fp8e4m3: 'e4m3', fp8e4m3fn: 'e4m3', float8e4m3fn: 'e4m3', float8e4m3: 'e4m3',
  fp8e4m3fnuz: 'e4m3fnuz', float8e4m3fnuz: 'e4m3fnuz',
  fp8e5m2: 'e5m2', float8e5m2: 'e5m2',
  fp8e5m2fnuz: 'e5m2fnuz', float8e5m2fnuz: 'e5m2fnuz',
  fp6: 'e2m3', fp6e2m3: 'e2m3', e2m3fn: 'e2m3', float6e2m3fn: 'e2m3', float6e2m3: 'e2m3',
  fp6e3m2: 'e3m2', e3m2fn: 'e3m2', float6e3m2fn: 'e3m2', float6e3m2: 'e3m2',
  fp4: 'e2m1', fp4e2m1: 'e2m1', e2m1fn: 'e2m1', float4e2m1: 'e2m1', float4e2m1fn: 'e2m1',
};

const CUSTOM = /^e(\d{1,2})m(\d{1,2})(fn|fnuz|finite)?$/;

function validNamesMessage(): string {
  return `valid formats: ${BUILTINS.map((f) => f.name).join(', ')}, aliases such as float16/half/bfloat16/fp8/float8e4m3fn, or custom eXmY / eXmYfn / eXmYfnuz / eXmYfinite (e.g. e3m4, e6m1fn)`;
}

/**
 * Resolve a user-supplied name. Built-ins and aliases win over the custom pattern, so `e4m3` is
 * OCP E4M3FN (not an IEEE-style e4m3) and `e2m1` is OCP FP4; a custom plain `eXmY` is IEEE-style.
 */
export function parseFormat(name: string): Format {
  const key = name.trim().toLowerCase().replace(/[_\-\s.]/g, '');
  const builtin = BY_NAME.get(key) ?? BY_NAME.get(ALIASES[key] ?? '');
  if (builtin) return builtin;
  const m = CUSTOM.exec(key);
  if (m) {
    const e = Number(m[1]);
    const man = Number(m[2]);
    const convention: SpecialConvention = (m[3] as SpecialConvention | undefined) ?? 'ieee';
    try {
      return makeFormat(e, man, { convention, name: key });
    } catch (err) {
      if (err instanceof FormatError) throw new FormatError(`format '${name}': ${err.message}`);
      throw err;
    }
  }
  throw new FormatError(`unknown format '${name}'; ${validNamesMessage()}`);
}

/** The built-in formats, widest first. */
export function listFormats(): Format[] {
  return [...BUILTINS];
}

/** The built-in format of an ONNX TensorProto.DataType, or null (ints, bool, double, string, …). */
export function formatForOnnxType(t: number): Format | null {
  return BUILTINS.find((f) => f.onnxType === t) ?? null;
}
