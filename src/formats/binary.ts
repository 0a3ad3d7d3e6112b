/**
 * Exact float64 helpers shared by the quantiser and the bit codec: powers of two without
 * `Math.pow` (whose exactness the spec does not promise) and the binary exponent of a double.
 */

const POW2_MIN = -1074;
const POW2_MAX = 1023;

// Built by repeated doubling/halving, each step exact, so every entry is the exact power.
const POW2 = new Float64Array(POW2_MAX - POW2_MIN + 1);
POW2[-POW2_MIN] = 1;
for (let k = 1; k <= POW2_MAX; k++) POW2[k - POW2_MIN] = POW2[k - 1 - POW2_MIN]! * 2;
for (let k = -1; k >= POW2_MIN; k--) POW2[k - POW2_MIN] = POW2[k + 1 - POW2_MIN]! / 2;

/** 2^k exactly, for integer k; 0 below 2^-1074 and Infinity above 2^1023 (as IEEE would round). */
export function pow2(k: number): number {
  if (k < POW2_MIN) return 0;
  if (k > POW2_MAX) return Infinity;
  return POW2[k - POW2_MIN]!;
}

const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
/** Index of the 32-bit word holding sign and exponent (platform byte order). */
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/**
 * floor(log2(a)) for a positive NORMAL double (a >= 2^-1022), read from the exponent field:
 * exact where Math.log2 can be off by one next to powers of two.
 */
export function exponentOf(a: number): number {
  F64[0] = a;
  return ((U32[HI]! >>> 20) & 0x7ff) - 1023;
}
