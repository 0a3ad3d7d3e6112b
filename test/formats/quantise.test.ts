import { describe, expect, it } from 'vitest';
import { decode, encode, parseFormat, quantise, quantiseArray, type Format } from '../../src/formats/index.js';
import { mulberry32, uniform53 } from '../helpers/random.js';

const same = (a: number, b: number): boolean => Object.is(a, b);

/** Object.is over arrays, reporting the first mismatch with its input. */
function expectSameAll(inputs: ArrayLike<number>, got: ArrayLike<number>, want: ArrayLike<number>): void {
  for (let i = 0; i < inputs.length; i++) {
    if (!same(got[i]!, want[i]!)) {
      expect({ x: inputs[i], got: got[i] }).toEqual({ x: inputs[i], got: want[i] });
    }
  }
}

const FP8 = ['e4m3', 'e4m3fnuz', 'e5m2', 'e5m2fnuz'].map(parseFormat);
const SMALL = [...FP8, ...['e2m3', 'e3m2', 'e2m1'].map(parseFormat)];

describe.each(SMALL.map((f) => [f.name, f] as const))('exhaustive over every code of %s', (_name, f: Format) => {
  const nCodes = 2 ** f.bits;
  const codes = Array.from({ length: nCodes }, (_, c) => c);

  it('decode → quantise is the identity, both saturating and not', () => {
    for (const c of codes) {
      const v = decode(c, f);
      if (Number.isNaN(v)) {
        expect(quantise(v, f)).toBeNaN();
        continue;
      }
      if (!Number.isFinite(v)) continue; // e5m2 ±Inf: covered below
      expect(same(quantise(v, f, false), v)).toBe(true);
      expect(same(quantise(v, f, true), v)).toBe(true);
    }
  });

  it('encode(decode(code)) == code for every non-NaN code', () => {
    for (const c of codes) {
      const v = decode(c, f);
      if (Number.isNaN(v)) continue;
      expect(encode(v, f, false)).toBe(c);
    }
  });

  it('has the convention\'s NaN / Inf / zero codes', () => {
    const nan = codes.filter((c) => Number.isNaN(decode(c, f)));
    const inf = codes.filter((c) => Math.abs(decode(c, f)) === Infinity);
    const zeros = codes.filter((c) => decode(c, f) === 0);
    const half = nCodes / 2;
    switch (f.convention) {
      case 'fn': // S.1111.111
        expect(nan).toEqual([half - 1, nCodes - 1]);
        expect(inf).toEqual([]);
        expect(zeros).toEqual([0, half]);
        break;
      case 'fnuz': // only the would-be -0
        expect(nan).toEqual([half]);
        expect(inf).toEqual([]);
        expect(zeros).toEqual([0]);
        break;
      case 'ieee': // S.11111.xx, xx != 0
        expect(nan.length).toBe(2 * (2 ** f.manBits - 1));
        expect(inf.map((c) => decode(c, f))).toEqual([Infinity, -Infinity]);
        expect(zeros).toEqual([0, half]);
        break;
      case 'finite':
        expect(nan).toEqual([]);
        expect(inf).toEqual([]);
        expect(zeros).toEqual([0, half]);
        break;
    }
    if (nan.length > 0) expect(nan).toContain(encode(NaN, f));
    else expect(() => encode(NaN, f)).toThrow();
    // The largest finite code decodes to max.
    const finite = codes.map((c) => decode(c, f)).filter(Number.isFinite);
    expect(Math.max(...finite)).toBe(f.max);
    expect(Math.min(...finite.filter((v) => v > 0))).toBe(f.minSubnormal);
  });

  // Consecutive non-negative values a < b, plus the virtual point one top-binade step past max.
  const positives = codes
    .filter((c) => c < nCodes / 2)
    .map((c) => ({ c, v: decode(c, f) }))
    .filter(({ v }) => Number.isFinite(v))
    .sort((p, q) => p.v - q.v);
  const maxCode = positives[positives.length - 1]!.c;
  const topStep = f.max - positives[positives.length - 2]!.v;

  it('every midpoint ties to the even code; just off the midpoint rounds to the nearer code', () => {
    for (let i = 0; i + 1 < positives.length; i++) {
      const a = positives[i]!;
      const b = positives[i + 1]!;
      const mid = (a.v + b.v) / 2; // exact in float64
      const even = a.c % 2 === 0 ? a.v : b.v;
      const eps = (b.v - a.v) * 2 ** -30;
      expect(quantise(mid, f), `mid ${mid}`).toBe(even);
      expect(quantise(mid + eps, f)).toBe(b.v);
      expect(quantise(mid - eps, f)).toBe(a.v);
      // Symmetric for negatives (FNUZ has no -0).
      const negEven = even === 0 && f.convention === 'fnuz' ? 0 : -even;
      expect(same(quantise(-mid, f), negEven)).toBe(true);
      expect(quantise(-(mid + eps), f)).toBe(-b.v);
    }
  });

  it('overflow follows the midpoint rule and the convention', () => {
    const mid = f.max + topStep / 2;
    const eps = topStep * 2 ** -30;
    const overflow = f.convention === 'ieee' ? Infinity : f.convention === 'finite' ? f.max : NaN;
    const atMid = maxCode % 2 === 0 ? f.max : overflow;
    expect(quantise(mid, f, false)).toBe(atMid);
    expect(quantise(mid - eps, f, false)).toBe(f.max);
    expect(quantise(mid + eps, f, false)).toBe(overflow);
    expect(quantise(-(mid + eps), f, false)).toBe(-overflow);
    expect(quantise(mid + eps, f, true)).toBe(f.max);
    expect(quantise(-1e30, f, true)).toBe(-f.max);
    expect(quantise(1e300, f, false)).toBe(overflow);
  });

  it('underflow: half the min subnormal ties to zero', () => {
    const s = f.minSubnormal;
    expect(quantise(s / 2, f)).toBe(0);
    expect(quantise(s / 2 + s * 2 ** -40, f)).toBe(s);
    expect(same(quantise(-s / 4, f), f.convention === 'fnuz' ? 0 : -0)).toBe(true);
    expect(same(quantise(-0, f), f.convention === 'fnuz' ? 0 : -0)).toBe(true);
    expect(quantise(1e-300, f)).toBe(0);
  });
});

describe('documented FP8 corner values', () => {
  const e4m3 = parseFormat('e4m3');
  const e5m2 = parseFormat('e5m2');
  const e4m3fnuz = parseFormat('e4m3fnuz');
  it('E4M3FN: 464 → 448, above → NaN or 448', () => {
    expect(quantise(464, e4m3, false)).toBe(448);
    expect(quantise(464.0001, e4m3, false)).toBeNaN();
    expect(quantise(464.0001, e4m3, true)).toBe(448);
    expect(encode(448, e4m3)).toBe(0x7e);
    expect(encode(NaN, e4m3)).toBe(0x7f);
    expect(encode(-448, e4m3)).toBe(0xfe);
  });
  it('E5M2: 61440 ties up to Inf', () => {
    expect(quantise(61440, e5m2, false)).toBe(Infinity);
    expect(quantise(61439.99, e5m2, false)).toBe(57344);
    expect(encode(Infinity, e5m2, false)).toBe(0x7c);
    expect(encode(-Infinity, e5m2, false)).toBe(0xfc);
    expect(encode(NaN, e5m2)).toBe(0x7e);
  });
  it('infinite inputs follow the ONNX Cast table', () => {
    // saturate=1: FN and E5M2 clamp, FNUZ gives NaN; saturate=0: E5M2 keeps Inf, FN/FNUZ NaN.
    expect(quantise(Infinity, e4m3, true)).toBe(448);
    expect(quantise(-Infinity, e4m3, true)).toBe(-448);
    expect(quantise(Infinity, e5m2, true)).toBe(57344);
    expect(quantise(Infinity, e4m3fnuz, true)).toBeNaN();
    expect(quantise(Infinity, e4m3, false)).toBeNaN();
    expect(quantise(-Infinity, e5m2, false)).toBe(-Infinity);
    expect(quantise(Infinity, parseFormat('e2m1'), false)).toBe(6);
    expect(encode(-0, e4m3fnuz)).toBe(0);
    expect(encode(NaN, e4m3fnuz)).toBe(0x80);
  });
  it('a few hand-checked roundings', () => {
    expect(quantise(0.3, e4m3)).toBe(0.3125); // 0.3 = 2^-2·1.2 → 1.25
    expect(quantise(17, e4m3)).toBe(16); // step 2 in [16,32): 17 ties to 16 (even)
    expect(quantise(19, e4m3)).toBe(20); // 19 ties to 20 (mantissa 010, even)
    expect(quantise(2.5, parseFormat('e2m1'))).toBe(2); // {2, 3}: tie to even 2
    expect(quantise(5, parseFormat('e2m1'))).toBe(4); // {4, 6}: tie to even 4
    expect(quantise(0.25, parseFormat('e2m1'))).toBe(0);
    expect(quantise(0.75, parseFormat('e2m1'))).toBe(1); // {0.5, 1}: tie to 1.0 (code 2)
  });
});

// ---------------------------------------------------------------------------------------------
// FP16 against an independent reference: integer arithmetic on the float64 bit pattern (BigInt),
// sharing nothing with the float64-division algorithm under test. (Node 20 has no Math.f16round.)

const fp16 = parseFormat('fp16');
const view = new DataView(new ArrayBuffer(8));

/** RNE of a finite double to binary16, no saturation (±Inf past the midpoint rule). */
function refFp16(x: number): number {
  if (x === 0) return x;
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const expField = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  // |x| = S · 2^k exactly
  const S = expField === 0 ? frac : frac | (1n << 52n);
  const k = expField === 0 ? -1074 : expField - 1075;
  const E = k + S.toString(2).length - 1; // floor(log2 |x|)
  const qexp = Math.max(E, -14) - 10; // binary16 spacing at |x|
  const shift = BigInt(qexp - k);
  let R: bigint;
  if (shift <= 0n) R = S << -shift;
  else {
    R = S >> shift;
    const rem = S - (R << shift);
    const half = 1n << (shift - 1n);
    if (rem > half || (rem === half && (R & 1n) === 1n)) R += 1n;
  }
  let v = Number(R) * 2 ** qexp;
  if (v > 65504) v = Infinity;
  return negative ? -v : v;
}

/** binary16 code → value by the textbook formula. */
function refFp16Decode(c: number): number {
  const s = c >> 15 ? -1 : 1;
  const e = (c >> 10) & 0x1f;
  const m = c & 0x3ff;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1024 + m) * 2 ** (e - 25);
}

describe('fp16 against an independent reference', () => {
  it('all 65536 codes decode, round-trip and re-quantise', () => {
    for (let c = 0; c < 65536; c++) {
      const want = refFp16Decode(c);
      const got = decode(c, fp16);
      if (Number.isNaN(want)) {
        expect(got).toBeNaN();
        continue;
      }
      expect(same(got, want)).toBe(true);
      expect(encode(got, fp16, false)).toBe(c);
      expect(same(quantise(got, fp16, false), got)).toBe(true);
    }
  });

  it('every midpoint and its neighbours between consecutive fp16 values', () => {
    const xs: number[] = [];
    for (let c = 0; c < 0x7c00; c++) {
      const a = refFp16Decode(c);
      const b = refFp16Decode(c + 1); // c = 0x7bff → b = Inf: the overflow midpoint uses 2^16
      const hi = b === Infinity ? 65536 : b;
      const mid = (a + hi) / 2;
      const eps = (hi - a) * 2 ** -35;
      xs.push(mid, mid - eps, mid + eps, -mid, -(mid + eps));
    }
    const got = quantiseArray(xs, fp16, false);
    expectSameAll(xs, got, xs.map(refFp16));
  });

  it('1e6 random doubles over 2^-30 .. 2^17, non-saturating and saturating', () => {
    const rng = mulberry32(16);
    const n = 1_000_000;
    const xs = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const mag = 2 ** (-30 + 47 * uniform53(rng));
      xs[i] = rng() < 0.5 ? -mag : mag;
    }
    const want = Array.from(xs, refFp16);
    expectSameAll(xs, quantiseArray(xs, fp16, false), want);
    const wantSat = want.map((v) => Math.max(-65504, Math.min(65504, v)));
    expectSameAll(xs, quantiseArray(xs, fp16, true), wantSat);
    // the scalar path agrees with the array path
    for (let i = 0; i < n; i += 997) expect(same(quantise(xs[i]!, fp16, false), want[i]!)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// BF16 against the classic "add 0x7FFF + lsb, truncate" RNE on the float32 bit pattern.

describe('bf16 against RNE truncation of float32 bits', () => {
  const bf16 = parseFormat('bf16');
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const ref = (bits: number): number => {
    const lsb = Math.floor(bits / 65536) % 2;
    u32[0] = Math.floor((bits + 0x7fff + lsb) / 65536) * 65536;
    return f32[0]!;
  };
  const valueOf = (bits: number): number => {
    u32[0] = bits;
    return f32[0]!;
  };
  const isNaNBits = (bits: number): boolean => (bits & 0x7fffffff) > 0x7f800000;

  it('1e6 random float32 patterns and every tie pattern', () => {
    const rng = mulberry32(0xbf16);
    const patterns: number[] = [];
    for (let i = 0; i < 1_000_000; i++) patterns.push(Math.floor(rng() * 2 ** 32));
    for (let hi = 0; hi < 65536; hi++) for (const lo of [0x7fff, 0x8000, 0x8001, 0]) patterns.push(hi * 65536 + lo);
    const bitsIn = patterns.filter((b) => !isNaNBits(b));
    const xs = bitsIn.map(valueOf);
    expectSameAll(xs, quantiseArray(xs, bf16, false), bitsIn.map(ref));
  });
});

describe('fp32 quantise equals Math.fround', () => {
  const fp32 = parseFormat('fp32');
  it('random doubles over 2^-160 .. 2^130 and exact float32 ties', () => {
    const rng = mulberry32(32);
    const xs: number[] = [];
    for (let i = 0; i < 300_000; i++) {
      const mag = 2 ** (-160 + 290 * uniform53(rng));
      xs.push(rng() < 0.5 ? -mag : mag);
    }
    // ties: a float32 value plus half its spacing (normal and subnormal ranges)
    for (let i = 0; i < 20_000; i++) {
      const v = Math.fround(2 ** (-149 + 276 * rng()));
      const next = Math.fround(v * (1 + 2 ** -23)) === v ? v + 2 ** -149 : Math.fround(v * (1 + 2 ** -23));
      xs.push((v + next) / 2);
    }
    expectSameAll(xs, quantiseArray(xs, fp32, false), xs.map(Math.fround));
    const inRange = xs.filter((x) => Math.abs(Math.fround(x)) <= fp32.max);
    expectSameAll(inRange, inRange.map((x) => quantise(x, fp32)), inRange.map(Math.fround));
  });
});

describe('quantiseArray', () => {
  it('matches the scalar path, including specials, and fills a Float32Array', () => {
    const f = parseFormat('e4m3');
    const xs = [0, -0, 1e-9, -1e-9, 0.1, -0.1, 447, 465, -1e9, NaN, Infinity, -Infinity, 3.3];
    for (const sat of [true, false]) {
      const got = quantiseArray(xs, f, sat);
      expectSameAll(xs, got, xs.map((x) => quantise(x, f, sat)));
    }
    const out = new Float32Array(xs.length);
    expect(quantiseArray(xs, f, true, out)).toBe(out);
    expect(out[4]).toBe(Math.fround(quantise(0.1, f)));
    expect(() => quantiseArray(xs, f, true, new Float64Array(2))).toThrow(RangeError);
  });
});

describe('custom formats use the same rules', () => {
  it('e3m4 grid: exhaustive round trip, midpoint ties', () => {
    const f = parseFormat('e3m4');
    for (let c = 0; c < 256; c++) {
      const v = decode(c, f);
      if (Number.isNaN(v)) continue;
      expect(encode(v, f, false)).toBe(c);
    }
    expect(quantise(15.75, f, false)).toBe(Infinity); // max 15.5, code 0x6f odd → tie overflows
    expect(quantise(1 + 1 / 32, f)).toBe(1); // tie between 1 and 1.0625 → 1 (even)
  });
});
