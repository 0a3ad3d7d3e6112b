/**
 * One pass over float32 weights: moments (count, Σx, Σx², min, max, absmax, zeros, NaN/Inf) and,
 * for several formats at once, the exact risk tallies of `RiskAccumulator` (overflow, underflow,
 * subnormal counts and the noise energy Σ(|x| − q)²). A WebAssembly SIMD kernel, assembled here
 * (src/wasm/assembler.ts), works on four float32 lanes; only the energies are accumulated in
 * float64. Counts are exactly those of `addToTally` (risk.ts); sums agree with a float64 loop to
 * ~1e-11 relative or better (plain float64 partial sums in two lanes per call of at most
 * `capacity` elements, then Neumaier-compensated across calls).
 *
 * Per format, with a = |x| (bit pattern `ab`, an i32 ordered like a) and M = the format's max:
 *
 *   over  = ab > bits(M)                    overflow (counted; q is then M: clip first)
 *   ac    = min(ab, bits(M))                the clipped magnitude
 *   q     = round-to-nearest-even of ac onto the format's grid (below)
 *   qz    = ab < tz1,  lo = ab < tl         q == 0 and q < minNormal, by thresholds on |x| found
 *                                           with the reference rounding (`thresholdsFor`), so
 *                                           ties count exactly as `addToTally` counts them
 *                                           → underflow = #qz − #zeros, subnormal = #lo − #qz
 *   noise += (a − q)²                       float64
 *
 * Rounding, two exact ways (the format picks one in `planFor`):
 *
 * - magic constant (formats with a narrower range than float32: fp16, fp8, fp6, fp4, …). For ac in
 *   binade E ≥ Emin the step is δ = 2^(E−m), for ac < minNormal it is the min subnormal
 *   2^(Emin−m). C = 1.5·2^23·δ is a float32 whose ulp is δ; ac < 2^(E+1) ≤ 2^(m+1)·δ and
 *   m ≤ 20 keep ac + C inside C's binade, so the float32 addition rounds ac to the nearest multiple
 *   of δ, ties to even ((C/δ) = 1.5·2^23 is even, so the parity is that of the format's code), and
 *   (ac + C) − C is exact. C's bit pattern is (ab & 0x7f800000) + ((23 − m) << 23 | 0x400000) in
 *   the normal range; below min normal (including float32 subnormals, whose exponent field is 0,
 *   and zero) the subnormal constant is larger, so C = max_s(that, bits(C_sub)). Needs
 *   Emin > −126 (float32 subnormals lie below the format's min normal), m ≤ 20 and C finite up to
 *   M (exponent of M ≤ 104 + m).
 *
 * - integer rounding of the bit pattern (formats with float32's exponent range: bf16, tf32, fp32).
 *   With s = 23 − m: q = (ac + 2^(s−1) − 1 + ((ac >> s) & 1)) & ~(2^s − 1), the textbook
 *   round-to-nearest-even of the mantissa (a carry into the exponent is the next binade's even
 *   code). Float32 subnormals have steps of 2^−149, so rounding their bit patterns to multiples of
 *   2^s rounds them onto the grid 2^(s−149) = 2^(−126−m), which is the format's subnormal grid when
 *   Emin = −126. Needs Emin = −126 and 1 ≤ m ≤ 23 (m = 23: q = ac).
 *
 * Anything else (wider exponent ranges than float32, m = 0 with float32's range, m > 23, formats
 * whose limits are not float32 numbers) is not covered: `WeightKernel.create` returns null.
 *
 * Blocks (`kernelBody`). The kernel walks the call in blocks of BLOCK_VECTORS·4 elements. A
 * moments pass reads the block, accumulates Σx, Σx², min, max, finds the block's absmax and min |x|,
 * and writes |x| and its exponent field to a scratch area that stays in L1. Then one pass per format
 * reads the scratch, in a loop specialised for what the block needs (decided from its absmax and
 * min nonzero |x|, so exactly):
 * - clipping and overflow counts only if absmax > M; past 2M also e = promote(a) − promote(q) in
 *   float64 as the reference does. Otherwise e = a − q in float32, exact while a ≤ 2M
 *   (q/2 ≤ a ≤ 2q, Sterbenz, with q = M for clipped a; or q = 0), squared in float64.
 * - the subnormal constant only if some |x| < minNormal; the qz / lo counts only if some nonzero
 *   |x| lies below their thresholds (a skipped count is then exactly the block's zeros).
 * - zeros are counted (and the min nonzero |x| found) by an extra pass only in blocks holding a 0.
 * One format per loop keeps every live value in the 16 vector registers V8 uses (the earlier
 * all-formats-in-one-loop kernel spilled a third of its instructions). `paths.full` counts calls
 * in which some block clipped.
 *
 * NaN and ±Inf: the kernel does not mask them (weights rarely hold any). They make the call's
 * Σx or Σx² non-finite, and that call is then done again element by element in JavaScript
 * (`scalarRange`), which follows `addToTally` to the letter. The last n mod GRAIN (8) elements of a
 * call go the same way.
 */

import { Code, I32, ModuleBuilder, V128 } from '../wasm/assembler.js';
import { LITTLE_ENDIAN, WASM } from '../wasm/runtime.js';
import type { Format } from './format.js';
import { roundMagnitude } from './quantise.js';
import type { Risk } from './risk.js';

export interface FormatTally {
  overflow: number;
  underflow: number;
  subnormal: number;
  noise: number;
}

export interface Float32Summary {
  /** Elements seen. */
  count: number;
  /** NaN and ±Inf (excluded from everything below). */
  nonFinite: number;
  nan: number;
  /** Exact zeros among the finite elements. */
  zeros: number;
  /** Σx and Σx² over the finite elements (float64 accumulation). */
  sum: number;
  sumSq: number;
  /** Over the finite elements (absmax 0, min +Inf, max −Inf when there are none). */
  absmax: number;
  min: number;
  max: number;
  /** One per format, in the order given to `WeightKernel.create`. */
  formats: FormatTally[];
}

// ---------------------------------------------------------------------------------------------
// Per-format plan

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
function bitsOf(x: number): number {
  F32[0] = x;
  return U32[0]! | 0;
}

interface Thresholds {
  /** 1 + the largest |x| bit pattern that rounds to 0: q = 0 ⟺ ab < tz1. */
  tz1: number;
  /** The smallest |x| bit pattern that rounds to minNormal or more: q < minNormal ⟺ ab < tl. */
  tl: number;
}

interface MagicPlan extends Thresholds {
  kind: 'magic';
  maxBits: number;
  minNormalBits: number;
  /** Added to the exponent bits of ac: C's bit pattern in the normal range. */
  k: number;
  /** Bit pattern of the subnormal range's constant. */
  cSub: number;
}

interface IntegerPlan extends Thresholds {
  kind: 'int';
  maxBits: number;
  minNormalBits: number;
  /** 23 − m. */
  shift: number;
}

type Plan = MagicPlan | IntegerPlan;

/** floor(log2 x) of a positive float32 normal number. */
function exponent32(x: number): number {
  return ((bitsOf(x) >>> 23) & 0xff) - 127;
}

function fromBits(b: number): number {
  U32[0] = b >>> 0;
  return F32[0]!;
}

/**
 * The count thresholds of f on |x| bit patterns, found by bisection with the reference rounding
 * (`roundMagnitude`, monotone in |x|): so the counts are exactly those of `addToTally`, ties
 * included, whatever the kernel's own rounding does.
 */
function thresholdsFor(f: Format, maxBits: number): Thresholds {
  const q = (b: number): number => roundMagnitude(fromBits(b), f.manBits, f.minNormal, f.minSubnormal);
  // Largest b in [0, maxBits] with q(b) = 0 (q(0) = 0).
  let lo = 0;
  let hi = maxBits;
  while (lo < hi) {
    const mid = lo + Math.ceil((hi - lo) / 2);
    if (q(mid) === 0) lo = mid;
    else hi = mid - 1;
  }
  const tz1 = lo + 1;
  // Smallest b in [0, maxBits] with q(b) ≥ minNormal (q(maxBits) = max ≥ minNormal).
  lo = 0;
  hi = maxBits;
  while (lo < hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (q(mid) >= f.minNormal) hi = mid;
    else lo = mid + 1;
  }
  return { tz1, tl: lo };
}

/** How the kernel rounds onto f's grid, or null when it cannot do so exactly (see the header). */
function planFor(f: Format): Plan | null {
  const m = f.manBits;
  const emin = 1 - f.bias;
  const exact32 = (v: number): boolean => Number.isFinite(v) && v > 0 && Math.fround(v) === v;
  if (!exact32(f.max) || !exact32(f.minNormal) || !exact32(f.minSubnormal)) return null;
  if (!(f.max >= f.minNormal)) return null;
  const maxBits = bitsOf(f.max);
  const minNormalBits = bitsOf(f.minNormal);
  if (emin > -126 && m <= 20 && exponent32(f.max) <= 104 + m) {
    const k = ((23 - m) << 23) | 0x400000;
    const cSub = ((emin + 127 + 23 - m) << 23) | 0x400000;
    return { kind: 'magic', maxBits, minNormalBits, k, cSub, ...thresholdsFor(f, maxBits) };
  }
  if (emin === -126 && m >= 1 && m <= 23) {
    return { kind: 'int', maxBits, minNormalBits, shift: 23 - m, ...thresholdsFor(f, maxBits) };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Memory layout (bytes)

/** Results of the last call: Σx, Σx² (f64x2 each), min, max (f32x4). */
const OUT_SUM = 0;
const OUT_SQ = 16;
const OUT_MIN = 32;
const OUT_MAX = 48;
/** Exact zeros (i32). */
const OUT_ZEROS = 64;
/** 1 when some block of the call needed clipping for some format (i32). */
const OUT_FULL = 68;
/** Per format f at OUT_FORMAT + FORMAT_STRIDE·f: noise (f64x2), then the qz, lo, over counts (i32x4). */
const OUT_FORMAT = 128;
const FORMAT_STRIDE = 64;
const F_NOISE = 0;
const F_QZ = 16;
const F_LO = 32;
const F_OVER = 48;
export const MAX_FORMATS = 16;
/** |x| of the current block (BLOCK_VECTORS vectors), read by the per-format passes. */
const SCRATCH = 8192;
/** Inputs start at the second page. */
const DATA = 65536;
const CAPACITY = 1 << 18;
const PAGES = 1 + (4 * CAPACITY) / 65536;
/**
 * Vectors per block: the block's |x| and exponent fields (2 KiB each) stay in L1 while every format
 * reads them. Smaller blocks skip counts more often but pay the per-pass setup more often; 128–256
 * measured best (512 and more slower).
 */
const BLOCK_VECTORS = 128;
/** x & EXP_MASK (the exponent field of |x|) of the current block, for the magic-constant formats. */
const SCRATCH_EXP = SCRATCH + 16 * BLOCK_VECTORS;
/** Vectors per loop iteration of the format passes and of the moments pass (4 measured no faster). */
const UNROLL = 2;
const MOMENTS_UNROLL = 2;
/** Elements the kernel takes per call must be a multiple of this; the rest go to `scalarRange`. */
const GRAIN = 4 * Math.max(UNROLL, MOMENTS_UNROLL);

const ABS_MASK = 0x7fffffff;
const EXP_MASK = 0x7f800000 | 0;
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
const SWAP_HALVES = [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
const SWAP_PAIRS = [4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11];

/** What a per-format pass over a block does (see `kernelBody`). */
interface Variant {
  /** Some |x| of the block exceeds max: clip, count overflows. */
  clip: boolean;
  /** Some |x| exceeds 2·max: a − q in float64 (in float32 it is exact up to 2·max only). */
  wide: boolean;
  /** Some |x| of the block lies below min normal (magic rounding needs its subnormal constant). */
  sub: boolean;
  /** Count q < minNormal (else the block has no such nonzero |x|). */
  lo: boolean;
  /** Count q = 0 (else the block has no such nonzero |x|). */
  z: boolean;
}

/**
 * The kernel function body, `(nVectors)` with nVectors a multiple of GRAIN / 4: reduce 4·nVectors
 * float32 at DATA, write the call's results at 0 (the block scheme is in the header).
 *
 * Counts: q = 0 ⟺ ab < tz1 and q < minNormal ⟺ ab < tl (thresholds found with the reference
 * rounding, see `thresholdsFor`; they include zeros), each mask subtracted from an i32x4 counter.
 * Accumulators live in memory between passes (each pass loads and stores its own), so no value is
 * live across the loops of other passes.
 */
function kernelBody(c: Code, plans: Plan[]): void {
  const nVec = 0;
  const p = c.local(I32);
  const end = c.local(I32);
  const blockEnd = c.local(I32);
  const s = c.local(I32);
  const sEnd = c.local(I32);
  const minAb = c.local(I32);
  const minNZ = c.local(I32);
  const absBits = c.local(I32);
  const zeros = c.local(I32);
  const v = (): number => c.local(V128);
  const anyMagic = plans.some((pl) => pl.kind === 'magic');

  /** A constant vector in a fresh local, set here (before the loop that reads it). */
  const konst = (value: number): number => {
    const l = v();
    c.i32x4Const(value | 0).localSet(l);
    return l;
  };
  const vload = (ptr: number, offset: number, into: number): void => {
    c.localGet(ptr).mem('v128.load', offset).localSet(into);
  };
  const vstore = (offset: number, local: number): void => {
    c.i32Const(0).localGet(local).mem('v128.store', offset);
  };
  const vloadAbs = (offset: number, into: number): void => {
    c.i32Const(0).mem('v128.load', offset).localSet(into);
  };
  /** Horizontal reduction of an i32x4 local to an i32 on the stack. */
  const horizontal = (l: number, op: 'i32x4.min_u' | 'i32x4.max_s' | 'i32x4.add'): void => {
    c.localGet(l).localGet(l).localGet(l).i8x16Shuffle(SWAP_HALVES).op(op).localSet(l);
    c.localGet(l).localGet(l).localGet(l).i8x16Shuffle(SWAP_PAIRS).op(op).localSet(l);
    c.localGet(l).lane('i32x4.extract_lane', 0);
  };
  /** A do-while loop over the block's scratch: s from SCRATCH to sEnd, `unroll` vectors a turn. */
  const scratchLoop = (body: (offset: number) => void, alsoAdvance?: number, unroll = UNROLL): void => {
    c.i32Const(SCRATCH).localSet(s);
    c.loop();
    for (let u = 0; u < unroll; u++) body(16 * u);
    if (alsoAdvance !== undefined) c.localGet(alsoAdvance).i32Const(16 * unroll).op('i32.add').localSet(alsoAdvance);
    c.localGet(s).i32Const(16 * unroll).op('i32.add').localTee(s);
    c.localGet(sEnd).op('i32.lt_u').brIf(0);
    c.end();
  };
  /** acc += Σ parts (a balanced tree of f64x2 adds). */
  const accumulate = (acc: number, parts: number[]): void => {
    c.localGet(acc);
    const tree = (xs: number[]): void => {
      if (xs.length === 1) {
        c.localGet(xs[0]!);
        return;
      }
      const h = xs.length >> 1;
      tree(xs.slice(0, h));
      tree(xs.slice(h));
      c.op('f64x2.add');
    };
    tree(parts);
    c.op('f64x2.add').localSet(acc);
  };
  /** part = lo² + hi² of the f32x4 in `e` (promoted to float64). */
  const squares = (e: number, part: number): void => {
    const lo = v();
    const hi = v();
    c.localGet(e).op('f64x2.promote_low_f32x4').localSet(lo);
    c.localGet(e).localGet(e).i8x16Shuffle(HIGH_HALF).op('f64x2.promote_low_f32x4').localSet(hi);
    c.localGet(lo).localGet(lo).op('f64x2.mul').localGet(hi).localGet(hi).op('f64x2.mul').op('f64x2.add').localSet(part);
  };

  // Zero the outputs, min/max to ±Inf.
  c.i32Const(0).i32Const(0).i32Const(OUT_FORMAT + FORMAT_STRIDE * plans.length).memoryFill();
  c.i32Const(0).f32x4Const(Infinity).mem('v128.store', OUT_MIN);
  c.i32Const(0).f32x4Const(-Infinity).mem('v128.store', OUT_MAX);

  c.i32Const(DATA).localSet(p);
  c.i32Const(DATA).localGet(nVec).i32Const(4).op('i32.shl').op('i32.add').localSet(end);

  c.block().loop();
  c.localGet(p).localGet(end).op('i32.ge_u').brIf(1);
  // blockEnd = min(p + 16·BLOCK_VECTORS, end); the block's scratch ends at sEnd.
  c.localGet(p).i32Const(16 * BLOCK_VECTORS).op('i32.add').localTee(blockEnd);
  c.localGet(end).localGet(blockEnd).localGet(end).op('i32.lt_u').op('select').localSet(blockEnd);
  c.localGet(blockEnd).localGet(p).op('i32.sub').i32Const(SCRATCH).op('i32.add').localSet(sEnd);

  // --- Moments pass: Σx, Σx², min, max, min |x|; |x| to scratch.
  {
    const abs = konst(ABS_MASK);
    const expMask = anyMagic ? konst(EXP_MASK) : -1;
    const sum = v();
    const sq = v();
    const mn = v();
    const mx = v();
    const mab = v();
    vloadAbs(OUT_SUM, sum);
    vloadAbs(OUT_SQ, sq);
    c.f32x4Const(Infinity).localSet(mn);
    c.f32x4Const(-Infinity).localSet(mx);
    c.i32x4Const(-1).localSet(mab);
    const xs = Array.from({ length: MOMENTS_UNROLL }, v);
    const abv = Array.from({ length: MOMENTS_UNROLL }, v);
    const los = Array.from({ length: MOMENTS_UNROLL }, v);
    const his = Array.from({ length: MOMENTS_UNROLL }, v);
    const sums = Array.from({ length: MOMENTS_UNROLL }, v);
    const sqs = Array.from({ length: MOMENTS_UNROLL }, v);
    scratchLoop((off) => {
      const u = off / 16;
      const x = xs[u]!;
      const ab = abv[u]!;
      vload(p, off, x);
      c.localGet(x).localGet(abs).op('v128.and').localSet(ab);
      c.localGet(s).localGet(ab).mem('v128.store', off);
      if (anyMagic) c.localGet(s).localGet(x).localGet(expMask).op('v128.and').mem('v128.store', off + SCRATCH_EXP - SCRATCH);
      // Both halves promoted straight from memory (no shuffle; V8 folds the 64-bit load).
      c.localGet(p).mem('v128.load64_zero', off).op('f64x2.promote_low_f32x4').localSet(los[u]!);
      c.localGet(p).mem('v128.load64_zero', off + 8).op('f64x2.promote_low_f32x4').localSet(his[u]!);
      c.localGet(los[u]!).localGet(his[u]!).op('f64x2.add').localSet(sums[u]!);
      c.localGet(los[u]!).localGet(los[u]!).op('f64x2.mul').localGet(his[u]!).localGet(his[u]!).op('f64x2.mul');
      c.op('f64x2.add').localSet(sqs[u]!);
      if (u === MOMENTS_UNROLL - 1) {
        accumulate(sum, sums);
        accumulate(sq, sqs);
        // Reduce the turn's vectors first: one dependent min / max per turn, not one per vector.
        const fold = (acc: number, of: number[], op: 'i32x4.min_u' | 'f32x4.pmin' | 'f32x4.pmax'): void => {
          c.localGet(acc);
          c.localGet(of[0]!);
          for (let i = 1; i < of.length; i++) c.localGet(of[i]!).op(op);
          c.op(op).localSet(acc);
        };
        fold(mab, abv, 'i32x4.min_u');
        fold(mn, xs, 'f32x4.pmin');
        fold(mx, xs, 'f32x4.pmax');
      }
    }, p, MOMENTS_UNROLL);
    vstore(OUT_SUM, sum);
    vstore(OUT_SQ, sq);
    c.i32Const(0).i32Const(0).mem('v128.load', OUT_MIN).localGet(mn).op('f32x4.pmin').mem('v128.store', OUT_MIN);
    c.i32Const(0).i32Const(0).mem('v128.load', OUT_MAX).localGet(mx).op('f32x4.pmax').mem('v128.store', OUT_MAX);
    // The block's absmax (bit pattern; NaN/Inf only matter for calls redone in JavaScript).
    c.localGet(mn).localGet(abs).op('v128.and').localGet(mx).localGet(abs).op('v128.and').op('i32x4.max_s').localSet(mx);
    horizontal(mx, 'i32x4.max_s');
    c.localSet(absBits);
    horizontal(mab, 'i32x4.min_u');
    c.localSet(minAb);
  }

  // --- Zeros: only when the block has some; then also the min nonzero |x|.
  c.i32Const(0).localSet(zeros);
  c.localGet(minAb).localSet(minNZ);
  c.localGet(minAb).op('i32.eqz').if();
  {
    const one = konst(1);
    const zero = konst(0);
    const zc = v();
    const nz = v();
    const ab = v();
    c.i32x4Const(0).localSet(zc);
    c.i32x4Const(-1).localSet(nz);
    scratchLoop((off) => {
      vload(s, off, ab);
      c.localGet(zc).localGet(ab).localGet(zero).op('i32x4.eq').op('i32x4.sub').localSet(zc);
      c.localGet(nz).localGet(ab).localGet(one).op('i32x4.sub').op('i32x4.min_u').localSet(nz);
    });
    horizontal(zc, 'i32x4.add');
    c.localSet(zeros);
    horizontal(nz, 'i32x4.min_u');
    c.i32Const(1).op('i32.add').localSet(minNZ);
    c.i32Const(0).i32Const(0).mem('i32.load', OUT_ZEROS).localGet(zeros).op('i32.add').mem('i32.store', OUT_ZEROS);
  }
  c.end();

  // --- One pass per format, specialised.
  plans.forEach((pl, f) => {
    const base = OUT_FORMAT + FORMAT_STRIDE * f;
    /** Add the block's zeros to lane 0 of a count the pass skipped. */
    const addZeros = (slot: number): void => {
      c.i32Const(0).i32Const(0).mem('i32.load', base + slot).localGet(zeros).op('i32.add').mem('i32.store', base + slot);
    };
    const pass = (vr: Variant): void => {
      if (vr.clip) c.i32Const(0).i32Const(1).mem('i32.store', OUT_FULL);
      const magic = pl.kind === 'magic';
      const intRound = pl.kind === 'int' && pl.shift > 0;
      const kk = magic ? konst(pl.k) : -1;
      const cSub = magic && vr.sub ? konst(pl.cSub) : -1;
      const half = intRound ? konst((1 << (pl.shift - 1)) - 1) : -1;
      const one = intRound ? konst(1) : -1;
      const mask = intRound ? konst(~((1 << pl.shift) - 1)) : -1;
      const maxB = vr.clip ? konst(pl.maxBits) : -1;
      const maxExp = vr.clip && magic ? konst(pl.maxBits & EXP_MASK) : -1;
      const tz1 = vr.z ? konst(pl.tz1) : -1;
      const tl = vr.lo ? konst(pl.tl) : -1;
      const noise = v();
      const cz = v();
      const cl = v();
      const co = v();
      vloadAbs(base + F_NOISE, noise);
      if (vr.z) vloadAbs(base + F_QZ, cz);
      if (vr.lo) vloadAbs(base + F_LO, cl);
      if (vr.clip) vloadAbs(base + F_OVER, co);
      const abv = Array.from({ length: UNROLL }, v);
      const acv = Array.from({ length: UNROLL }, v);
      const ccv = Array.from({ length: UNROLL }, v);
      const qv = Array.from({ length: UNROLL }, v);
      const ev = Array.from({ length: UNROLL }, v);
      const parts = Array.from({ length: UNROLL }, v);
      scratchLoop((off) => {
        const u = off / 16;
        const ab = abv[u]!;
        const q = qv[u]!;
        vload(s, off, ab);
        let ac = ab;
        if (vr.clip) {
          ac = acv[u]!;
          c.localGet(ab).localGet(maxB).op('i32x4.min_s').localSet(ac);
          c.localGet(co).localGet(ab).localGet(maxB).op('i32x4.gt_s').op('i32x4.sub').localSet(co);
        }
        if (magic) {
          const cc = ccv[u]!;
          // The exponent field of ac: that of ab (stored by the moments pass) unless clipped.
          if (vr.clip) c.localGet(s).mem('v128.load', off + SCRATCH_EXP - SCRATCH).localGet(maxExp).op('i32x4.min_s');
          else c.localGet(s).mem('v128.load', off + SCRATCH_EXP - SCRATCH);
          c.localGet(kk).op('i32x4.add');
          if (cSub >= 0) c.localGet(cSub).op('i32x4.max_s');
          c.localSet(cc);
          c.localGet(ac).localGet(cc).op('f32x4.add').localGet(cc).op('f32x4.sub').localSet(q);
        } else if (intRound) {
          c.localGet(ac).localGet(half).op('i32x4.add');
          c.localGet(ac).i32Const(pl.shift).op('i32x4.shr_u').localGet(one).op('v128.and').op('i32x4.add');
          c.localGet(mask).op('v128.and').localSet(q);
        } else {
          c.localGet(ac).localSet(q);
        }
        if (vr.z) c.localGet(cz).localGet(tz1).localGet(ab).op('i32x4.gt_s').op('i32x4.sub').localSet(cz);
        if (vr.lo) c.localGet(cl).localGet(tl).localGet(ab).op('i32x4.gt_s').op('i32x4.sub').localSet(cl);
        if (vr.wide) {
          // e = promote(a) − promote(q) in float64 (a − max is not exact in float32 past 2·max).
          const lo = ev[u]!;
          const hi = acv[u]!;
          // (a promoted half by half straight from the scratch: loads instead of a shuffle.)
          c.localGet(s).mem('v128.load64_zero', off).op('f64x2.promote_low_f32x4');
          c.localGet(q).op('f64x2.promote_low_f32x4').op('f64x2.sub').localSet(lo);
          c.localGet(s).mem('v128.load64_zero', off + 8).op('f64x2.promote_low_f32x4');
          c.localGet(q).localGet(q).i8x16Shuffle(HIGH_HALF).op('f64x2.promote_low_f32x4').op('f64x2.sub').localSet(hi);
          c.localGet(lo).localGet(lo).op('f64x2.mul').localGet(hi).localGet(hi).op('f64x2.mul').op('f64x2.add').localSet(parts[u]!);
        } else {
          // e = a − q, exact in float32 for a ≤ 2·max (Sterbenz: q ≤ a ≤ 2q, or q = 0).
          c.localGet(ab).localGet(q).op('f32x4.sub').localSet(ev[u]!);
          squares(ev[u]!, parts[u]!);
        }
        if (u === UNROLL - 1) accumulate(noise, parts);
      });
      vstore(base + F_NOISE, noise);
      if (vr.z) vstore(base + F_QZ, cz);
      else addZeros(F_QZ);
      if (vr.lo) vstore(base + F_LO, cl);
      else addZeros(F_LO);
      if (vr.clip) vstore(base + F_OVER, co);
    };
    const ltU = (local: number, value: number): void => {
      c.localGet(local).i32Const(value).op('i32.lt_u');
    };
    // absmax > max: clip (and beyond 2·max, a − q in float64).
    c.localGet(absBits).i32Const(pl.maxBits).op('i32.gt_u').if();
    {
      c.localGet(absBits).i32Const(Math.min(pl.maxBits + 0x800000, 0x7f800000)).op('i32.gt_u').if();
      pass({ clip: true, wide: true, sub: true, lo: true, z: true });
      c.else();
      pass({ clip: true, wide: false, sub: true, lo: true, z: true });
      c.end();
    }
    c.else();
    {
      const counted = (sub: boolean): void => {
        ltU(minNZ, pl.tl);
        c.if();
        ltU(minNZ, pl.tz1);
        c.if();
        pass({ clip: false, wide: false, sub, lo: true, z: true });
        c.else();
        pass({ clip: false, wide: false, sub, lo: true, z: false });
        c.end();
        c.else();
        pass({ clip: false, wide: false, sub, lo: false, z: false });
        c.end();
      };
      const none = { clip: false, wide: false, sub: false, lo: false, z: false };
      // No |x| below min normal: no subnormal constant, no counts.
      ltU(minNZ, pl.minNormalBits);
      c.if();
      counted(true);
      c.else();
      pass(none);
      c.end();
    }
    c.end();
  });

  c.br(0);
  c.end().end(); // loop, block
}

/** Where each format's counts are read: i32 index of four lanes to add. */
function formatIndex(f: number, slot: number): number {
  return (OUT_FORMAT + FORMAT_STRIDE * f + slot) / 4;
}

function moduleBytes(plans: Plan[]): Uint8Array {
  const m = new ModuleBuilder();
  m.memory(PAGES, { maxPages: PAGES, export: 'memory' });
  m.func('run', [I32], [], (c) => kernelBody(c, plans));
  return m.bytes();
}

// ---------------------------------------------------------------------------------------------
// Driver


type RunFn = (nVectors: number) => void;

/** A compensated (Neumaier) running sum. */
class Sum {
  value = 0;
  comp = 0;
  add(x: number): void {
    const t = this.value + x;
    this.comp += Math.abs(this.value) >= Math.abs(x) ? this.value - t + x : x - t + this.value;
    this.value = t;
  }
  get total(): number {
    return this.value + this.comp;
  }
  reset(): void {
    this.value = this.comp = 0;
  }
}

interface Running {
  count: number;
  nonFinite: number;
  nan: number;
  zeros: number;
  sum: Sum;
  sumSq: Sum;
  min: number;
  max: number;
  over: number[];
  under: number[];
  sub: number[];
  noise: Sum[];
}

const moduleCache = new Map<string, object | null>();

export class WeightKernel {
  /** Elements that fit in the input buffer. */
  readonly capacity = CAPACITY;
  /**
   * Calls of `run` by the path that produced their result (diagnostics for tests and benches):
   * the kernel with no clipping anywhere, the kernel with some block clipped (data past some max),
   * element by element (NaN/Inf).
   */
  readonly paths = { fast: 0, full: 0, scalar: 0 };
  /** The kernel's input buffer (capacity·4 bytes); read float32 data straight into it. */
  readonly inputBytes: Uint8Array;
  private readonly input: Float32Array;
  private readonly f64: Float64Array;
  private readonly f32: Float32Array;
  private readonly i32: Int32Array;
  private readonly acc: Running;
  private readonly formats: Format[];

  private constructor(
    formats: Format[],
    private readonly plans: Plan[],
    memory: ArrayBuffer,
    private readonly kernel: RunFn,
  ) {
    this.formats = [...formats];
    this.inputBytes = new Uint8Array(memory, DATA, 4 * CAPACITY);
    this.input = new Float32Array(memory, DATA, CAPACITY);
    this.f64 = new Float64Array(memory, 0, DATA / 8);
    this.f32 = new Float32Array(memory, 0, DATA / 4);
    this.i32 = new Int32Array(memory, 0, DATA / 4);
    const n = formats.length;
    this.acc = {
      count: 0, nonFinite: 0, nan: 0, zeros: 0, sum: new Sum(), sumSq: new Sum(), min: Infinity, max: -Infinity,
      over: new Array<number>(n).fill(0), under: new Array<number>(n).fill(0), sub: new Array<number>(n).fill(0),
      noise: Array.from({ length: n }, () => new Sum()),
    };
  }

  /**
   * A kernel for these formats, or null when WebAssembly SIMD is unavailable, the host is
   * big-endian, or some format is not covered exactly (then use `RiskAccumulator`).
   */
  static create(formats: Format[]): WeightKernel | null {
    if (!WASM || !LITTLE_ENDIAN || formats.length > MAX_FORMATS) return null;
    const plans: Plan[] = [];
    for (const f of formats) {
      const pl = planFor(f);
      if (!pl) return null;
      plans.push(pl);
    }
    try {
      const key = JSON.stringify(plans);
      let mod = moduleCache.get(key);
      if (mod === undefined) {
        const bytes = moduleBytes(plans);
        mod = WASM.validate(bytes) ? new WASM.Module(bytes) : null;
        moduleCache.set(key, mod);
      }
      if (!mod) return null;
      const inst = new WASM.Instance(mod, {});
      const mem = (inst.exports.memory as { buffer: ArrayBuffer }).buffer;
      return new WeightKernel(formats, plans, mem, inst.exports.run as RunFn);
    } catch {
      return null;
    }
  }

  /** Reduce the first n float32 values of the input buffer into the running summary. */
  run(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > CAPACITY) throw new RangeError(`run(n): n must be an integer in 0..${CAPACITY}, got ${n}`);
    const whole = n - (n % GRAIN);
    if (whole > 0) {
      this.kernel(whole >> 2);
      if (this.callIsFinite()) {
        const full = this.i32[OUT_FULL / 4] !== 0;
        this.takeCall(whole);
        this.paths[full ? 'full' : 'fast']++;
      } else {
        this.scalarRange(0, whole);
        this.paths.scalar++;
      }
    }
    if (whole < n) this.scalarRange(whole, n);
  }

  /** Copy `values` into the input buffer block by block and run each. */
  add(values: Float32Array): void {
    for (let start = 0; start < values.length; start += CAPACITY) {
      const block = values.subarray(start, Math.min(values.length, start + CAPACITY));
      this.input.set(block);
      this.run(block.length);
    }
  }

  /** The running summary (a copy). */
  summary(): Float32Summary {
    const a = this.acc;
    const finite = a.count - a.nonFinite;
    return {
      count: a.count,
      nonFinite: a.nonFinite,
      nan: a.nan,
      zeros: a.zeros,
      sum: a.sum.total,
      sumSq: a.sumSq.total,
      absmax: finite > 0 ? Math.max(Math.abs(a.min), Math.abs(a.max)) : 0,
      min: a.min,
      max: a.max,
      formats: this.formats.map((_, f) => ({ overflow: a.over[f]!, underflow: a.under[f]!, subnormal: a.sub[f]!, noise: a.noise[f]!.total })),
    };
  }

  reset(): void {
    const a = this.acc;
    a.count = a.nonFinite = a.nan = a.zeros = 0;
    a.sum.reset();
    a.sumSq.reset();
    a.min = Infinity;
    a.max = -Infinity;
    a.over.fill(0);
    a.under.fill(0);
    a.sub.fill(0);
    for (const s of a.noise) s.reset();
  }

  private callIsFinite(): boolean {
    const f = this.f64;
    return Number.isFinite(f[OUT_SUM / 8]! + f[OUT_SUM / 8 + 1]! + f[OUT_SQ / 8]! + f[OUT_SQ / 8 + 1]!);
  }

  /** The sum of the four i32 lanes at index i. */
  private lanes(i: number): number {
    const c = this.i32;
    return c[i]! + c[i + 1]! + c[i + 2]! + c[i + 3]!;
  }

  /** Fold the kernel's results for `n` (finite) elements into the running summary. */
  private takeCall(n: number): void {
    const a = this.acc;
    const f64 = this.f64;
    const f32 = this.f32;
    a.count += n;
    const zeros = this.i32[OUT_ZEROS / 4]!;
    a.zeros += zeros;
    a.sum.add(f64[OUT_SUM / 8]! + f64[OUT_SUM / 8 + 1]!);
    a.sumSq.add(f64[OUT_SQ / 8]! + f64[OUT_SQ / 8 + 1]!);
    for (let i = 0; i < 4; i++) {
      const lo = f32[OUT_MIN / 4 + i]!;
      const hi = f32[OUT_MAX / 4 + i]!;
      if (lo < a.min) a.min = lo;
      if (hi > a.max) a.max = hi;
    }
    for (let f = 0; f < this.plans.length; f++) {
      const qz = this.lanes(formatIndex(f, F_QZ));
      const lo = this.lanes(formatIndex(f, F_LO));
      a.over[f]! += this.lanes(formatIndex(f, F_OVER));
      a.under[f]! += qz - zeros;
      a.sub[f]! += lo - qz;
      const o = (OUT_FORMAT + FORMAT_STRIDE * f + F_NOISE) / 8;
      a.noise[f]!.add(f64[o]! + f64[o + 1]!);
    }
  }

  /** Elements [from, to) of the input buffer, one by one, with the semantics of `addToTally`. */
  private scalarRange(from: number, to: number): void {
    const a = this.acc;
    const x = this.input;
    const formats = this.formats;
    let sum = 0;
    let sq = 0;
    for (let i = from; i < to; i++) {
      const v = x[i]!;
      a.count++;
      if (!Number.isFinite(v)) {
        a.nonFinite++;
        if (v !== v) a.nan++;
        continue;
      }
      if (v === 0) a.zeros++;
      sum += v;
      sq += v * v;
      if (v < a.min) a.min = v;
      if (v > a.max) a.max = v;
      const abs = Math.abs(v);
      for (let f = 0; f < formats.length; f++) {
        const { manBits, minNormal, minSubnormal, max } = formats[f]!;
        let q: number;
        if (abs > max) {
          a.over[f]!++;
          q = max;
        } else q = roundMagnitude(abs, manBits, minNormal, minSubnormal);
        if (q === 0) {
          if (abs !== 0) a.under[f]!++;
        } else if (q < minNormal) a.sub[f]!++;
        const e = abs - q;
        a.noise[f]!.add(e * e);
      }
    }
    a.sum.add(sum);
    a.sumSq.add(sq);
  }
}

/** SQNR in dB from signal and noise energies; +Inf when exact, −Inf when only noise. */
function sqnrDb(signal: number, noise: number): number {
  if (noise === 0) return Infinity;
  if (signal === 0) return -Infinity;
  return 10 * Math.log10(signal / noise);
}

/** The risk per format name, as `RiskAccumulator.result().formats` gives it. */
export function summaryRisk(s: Float32Summary, formats: Format[]): Record<string, Risk> {
  if (formats.length !== s.formats.length) throw new RangeError(`summary has ${s.formats.length} formats, ${formats.length} given`);
  const n = s.count - s.nonFinite;
  const share = (k: number): number => (n === 0 ? 0 : k / n);
  const out: Record<string, Risk> = {};
  formats.forEach((f, i) => {
    const t = s.formats[i]!;
    out[f.name] = { overflow: share(t.overflow), underflow: share(t.underflow), subnormal: share(t.subnormal), sqnrDb: sqnrDb(s.sumSq, t.noise) };
  });
  return out;
}

/** The summary of a‖b (same formats in the same order). */
export function mergeSummaries(a: Float32Summary, b: Float32Summary): Float32Summary {
  if (a.formats.length !== b.formats.length) throw new RangeError('summaries of different format lists');
  const min = Math.min(a.min, b.min);
  const max = Math.max(a.max, b.max);
  return {
    count: a.count + b.count,
    nonFinite: a.nonFinite + b.nonFinite,
    nan: a.nan + b.nan,
    zeros: a.zeros + b.zeros,
    sum: a.sum + b.sum,
    sumSq: a.sumSq + b.sumSq,
    absmax: Math.max(a.absmax, b.absmax),
    min,
    max,
    formats: a.formats.map((t, i) => {
      const u = b.formats[i]!;
      return { overflow: t.overflow + u.overflow, underflow: t.underflow + u.underflow, subnormal: t.subnormal + u.subnormal, noise: t.noise + u.noise };
    }),
  };
}
