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
 *   qz    = q == 0,  lo = q < minNormal     → underflow = #qz − #zeros, subnormal = #lo − #qz
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
 * Two functions per module:
 * - `fast` assumes no element exceeds any format's max: no clipping, no overflow counts, and
 *   e = a − q in float32, exact for a ≤ M (q/2 ≤ a ≤ 2q, Sterbenz; or q = 0), squared in float64.
 * - `full` clips, counts overflows, and computes e = promote(a) − promote(q) in float64 as the
 *   reference does (past M, a − M is not exact in float32 once a > 2M).
 * `run` calls `fast`; if the call's absmax exceeds the smallest max it runs the call again with
 * `full` (and starts the next call with `full` until a call fits again). Well-scaled weights thus
 * pay neither clipping nor overflow counting.
 *
 * NaN and ±Inf: the kernel does not mask them (weights rarely hold any). They make the call's
 * Σx or Σx² non-finite, and that call is then done again element by element in JavaScript
 * (`scalarRange`), which follows `addToTally` to the letter. The last n mod 4 elements of a call
 * go the same way.
 */

import { Code, I32, ModuleBuilder, V128 } from '../wasm/assembler.js';
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

interface MagicPlan {
  kind: 'magic';
  maxBits: number;
  minNormalBits: number;
  /** Added to the exponent bits of ac: C's bit pattern in the normal range. */
  k: number;
  /** Bit pattern of the subnormal range's constant. */
  cSub: number;
}

interface IntegerPlan {
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
    return { kind: 'magic', maxBits, minNormalBits, k, cSub };
  }
  if (emin === -126 && m >= 1 && m <= 23) return { kind: 'int', maxBits, minNormalBits, shift: 23 - m };
  return null;
}

// ---------------------------------------------------------------------------------------------
// Memory layout (bytes)

/** Results of the last call: Σx, Σx² (f64x2 each), min, max (f32x4). */
const OUT_SUM = 0;
const OUT_SQ = 16;
const OUT_MIN = 32;
const OUT_MAX = 48;
/** Noise of format f (f64x2) at OUT_NOISE + 16·f. */
const OUT_NOISE = 64;
export const MAX_FORMATS = 16;
/** Count slots (i32x4 each) at OUT_COUNTS + 16·j. */
const OUT_COUNTS = OUT_NOISE + 16 * MAX_FORMATS;
/** Inputs start at the second page. */
const DATA = 65536;
const CAPACITY = 1 << 18;
const PAGES = 1 + (4 * CAPACITY) / 65536;
/** Vectors per inner block: the 8-bit counters then spill into 32-bit ones (at most 255). */
const BLOCK_VECTORS = 240;

const ABS_MASK = 0x7fffffff;
const EXP_MASK = 0x7f800000 | 0;
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];

/** What each count slot counts: exact zeros, or a format's over / qz / lo. */
type Slot = { kind: 'zero' } | { kind: 'over' | 'qz' | 'lo'; format: number };

function slotsFor(nFormats: number, full: boolean): Slot[] {
  const slots: Slot[] = [{ kind: 'zero' }];
  for (let f = 0; f < nFormats; f++) {
    if (full) slots.push({ kind: 'over', format: f });
    slots.push({ kind: 'qz', format: f }, { kind: 'lo', format: f });
  }
  return slots;
}

/**
 * The kernel function body, `(nVectors)`: reduce 4·nVectors float32 at DATA, write the call's
 * results at 0. `full` adds clipping, overflow counts and a − q in float64 (see the header).
 *
 * Counting: each test gives a lane mask of 0 / −1. Masks are narrowed four at a time into one
 * i8x16 (i32 → i16 → i8, saturating, so −1 stays −1) and subtracted from an 8-bit counter, whose
 * lanes are widened into 32-bit counters every BLOCK_VECTORS vectors; masks left over when their
 * number is not a multiple of four go straight into 32-bit counters.
 */
function kernelBody(c: Code, plans: Plan[], full: boolean): void {
  const wide = full;
  const slots = slotsFor(plans.length, full);
  const groups = Math.floor(slots.length / 4);
  const nVec = 0;
  const p = c.local(I32);
  const end = c.local(I32);
  const blockEnd = c.local(I32);
  const v = (): number => c.local(V128);
  const sum = v();
  const sq = v();
  const mn = v();
  const mx = v();
  const noise = plans.map(v);
  const cnt8 = Array.from({ length: groups }, v);
  // cnt32[g] for g < groups holds group g; cnt32[groups + r] the leftover slot 4·groups + r.
  const cnt32 = Array.from({ length: groups + slots.length - 4 * groups }, v);

  // Constants live in locals set before the loop (TurboFan keeps what fits in registers; loading
  // them with v128.load32_splat inside the loop or writing v128.const measured no faster).
  const konst = new Map<number, number>();
  const k = (value: number): Code => {
    let l = konst.get(value | 0);
    if (l === undefined) {
      l = v();
      konst.set(value | 0, l);
      c.i32x4Const(value | 0).localSet(l);
    }
    return c.localGet(l);
  };
  // Create them up front (so the loop only reads locals).
  const prelude = (): void => {
    const values = [ABS_MASK, EXP_MASK, 1];
    for (const pl of plans) {
      values.push(pl.maxBits, pl.minNormalBits);
      if (pl.kind === 'magic') values.push(pl.k, pl.cSub);
      else if (pl.shift > 0) values.push((1 << (pl.shift - 1)) - 1, ~((1 << pl.shift) - 1));
    }
    for (const x of values) if (!konst.has(x | 0)) k(x).op('drop');
  };
  prelude();

  c.i32Const(DATA).localSet(p);
  c.i32Const(DATA).localGet(nVec).i32Const(4).op('i32.shl').op('i32.add').localSet(end);
  c.f32x4Const(Infinity).localSet(mn);
  c.f32x4Const(-Infinity).localSet(mx);

  let pending: number[] = [];
  let slot = 0;
  const pushMask = (mask: number): void => {
    const j = slot++;
    if (j < 4 * groups) {
      pending.push(mask);
      if (pending.length === 4) {
        const g = Math.floor(j / 4);
        const [m0, m1, m2, m3] = pending as [number, number, number, number];
        c.localGet(cnt8[g]!);
        c.localGet(m0).localGet(m1).op('i16x8.narrow_i32x4_s');
        c.localGet(m2).localGet(m3).op('i16x8.narrow_i32x4_s');
        c.op('i8x16.narrow_i16x8_s').op('i8x16.sub').localSet(cnt8[g]!);
        pending = [];
      }
    } else {
      const l = cnt32[groups + (j - 4 * groups)]!;
      c.localGet(l).localGet(mask).op('i32x4.sub').localSet(l);
    }
  };

  const xb = v();
  const ab = v();
  const xlo = v();
  const xhi = v();
  const alo = v();
  const ahi = v();
  const ac = v();
  const q = v();
  const elo = v();
  const ehi = v();
  const e = v();

  c.block().loop();
  c.localGet(p).localGet(end).op('i32.ge_u').brIf(1);
  // blockEnd = min(p + 16·BLOCK_VECTORS, end)
  c.localGet(p).i32Const(16 * BLOCK_VECTORS).op('i32.add').localTee(blockEnd);
  c.localGet(end).localGet(blockEnd).localGet(end).op('i32.lt_u').op('select').localSet(blockEnd);
  c.loop();
  {
    slot = 0;
    c.localGet(p).mem('v128.load').localSet(xb);
    c.localGet(xb);
    k(ABS_MASK).op('v128.and').localSet(ab);
    const zero = v();
    c.localGet(ab).i32x4Const(0).op('i32x4.eq').localSet(zero);
    pushMask(zero);
    c.localGet(mn).localGet(xb).op('f32x4.pmin').localSet(mn);
    c.localGet(mx).localGet(xb).op('f32x4.pmax').localSet(mx);
    c.localGet(xb).op('f64x2.promote_low_f32x4').localSet(xlo);
    c.localGet(xb).localGet(xb).i8x16Shuffle(HIGH_HALF).op('f64x2.promote_low_f32x4').localSet(xhi);
    c.localGet(sum).localGet(xlo).localGet(xhi).op('f64x2.add').op('f64x2.add').localSet(sum);
    c.localGet(sq).localGet(xlo).localGet(xlo).op('f64x2.mul').localGet(xhi).localGet(xhi).op('f64x2.mul');
    c.op('f64x2.add').op('f64x2.add').localSet(sq);
    if (wide) {
      c.localGet(xlo).op('f64x2.abs').localSet(alo);
      c.localGet(xhi).op('f64x2.abs').localSet(ahi);
    }
    plans.forEach((pl, f) => {
      if (full) {
        c.localGet(ab);
        k(pl.maxBits).op('i32x4.min_s').localSet(ac);
        const over = v();
        c.localGet(ab);
        k(pl.maxBits).op('i32x4.gt_s').localSet(over);
        pushMask(over);
      } else c.localGet(ab).localSet(ac);
      if (pl.kind === 'magic') {
        const cc = v();
        c.localGet(ac);
        k(EXP_MASK).op('v128.and');
        k(pl.k).op('i32x4.add');
        k(pl.cSub).op('i32x4.max_s').localSet(cc);
        c.localGet(ac).localGet(cc).op('f32x4.add').localGet(cc).op('f32x4.sub').localSet(q);
      } else if (pl.shift > 0) {
        c.localGet(ac);
        k((1 << (pl.shift - 1)) - 1).op('i32x4.add');
        c.localGet(ac).i32Const(pl.shift).op('i32x4.shr_u');
        k(1).op('v128.and').op('i32x4.add');
        k(~((1 << pl.shift) - 1)).op('v128.and').localSet(q);
      } else {
        c.localGet(ac).localSet(q);
      }
      const qz = v();
      c.localGet(q).i32x4Const(0).op('i32x4.eq').localSet(qz);
      pushMask(qz);
      const lo = v();
      c.localGet(q);
      k(pl.minNormalBits).op('i32x4.lt_s').localSet(lo);
      pushMask(lo);
      if (wide) {
        c.localGet(alo).localGet(q).op('f64x2.promote_low_f32x4').op('f64x2.sub').localSet(elo);
        c.localGet(ahi).localGet(q).localGet(q).i8x16Shuffle(HIGH_HALF).op('f64x2.promote_low_f32x4').op('f64x2.sub').localSet(ehi);
      } else {
        c.localGet(ab).localGet(q).op('f32x4.sub').localSet(e);
        c.localGet(e).op('f64x2.promote_low_f32x4').localSet(elo);
        c.localGet(e).localGet(e).i8x16Shuffle(HIGH_HALF).op('f64x2.promote_low_f32x4').localSet(ehi);
      }
      const nf = noise[f]!;
      c.localGet(nf).localGet(elo).localGet(elo).op('f64x2.mul').localGet(ehi).localGet(ehi).op('f64x2.mul');
      c.op('f64x2.add').op('f64x2.add').localSet(nf);
    });
    if (pending.length) throw new Error('internal: masks left pending');
  }
  c.localGet(p).i32Const(16).op('i32.add').localTee(p);
  c.localGet(blockEnd).op('i32.lt_u').brIf(0);
  c.end(); // inner loop
  for (let g = 0; g < groups; g++) {
    c.localGet(cnt32[g]!).localGet(cnt8[g]!);
    c.op('i16x8.extadd_pairwise_i8x16_u').op('i32x4.extadd_pairwise_i16x8_u').op('i32x4.add').localSet(cnt32[g]!);
    c.i32x4Const(0).localSet(cnt8[g]!);
  }
  c.br(0);
  c.end().end(); // outer loop, block

  const store = (offset: number, local: number): void => {
    c.i32Const(0).localGet(local).mem('v128.store', offset);
  };
  store(OUT_SUM, sum);
  store(OUT_SQ, sq);
  store(OUT_MIN, mn);
  store(OUT_MAX, mx);
  noise.forEach((l, f) => store(OUT_NOISE + 16 * f, l));
  cnt32.forEach((l, j) => store(OUT_COUNTS + 16 * j, l));
}

/** Where each slot's count is read: i32 index into memory and how many lanes to add. */
function slotReaders(nFormats: number, full: boolean): { index: number; lanes: number }[] {
  const slots = slotsFor(nFormats, full);
  const groups = Math.floor(slots.length / 4);
  return slots.map((_, j) =>
    j < 4 * groups
      ? { index: (OUT_COUNTS + 16 * Math.floor(j / 4)) / 4 + (j % 4), lanes: 1 }
      : { index: (OUT_COUNTS + 16 * (groups + j - 4 * groups)) / 4, lanes: 4 },
  );
}

function moduleBytes(plans: Plan[]): Uint8Array {
  const m = new ModuleBuilder();
  m.memory(PAGES, { maxPages: PAGES, export: 'memory' });
  m.func('fast', [I32], [], (c) => kernelBody(c, plans, false));
  m.func('full', [I32], [], (c) => kernelBody(c, plans, true));
  return m.bytes();
}

// ---------------------------------------------------------------------------------------------
// Driver

/** The part of the WebAssembly JS API used here (the project's TypeScript libs do not declare it). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const WASM = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

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
   * the fast function, the full one (clipping, data past some max), element by element (NaN/Inf).
   */
  readonly paths = { fast: 0, full: 0, scalar: 0 };
  /** The kernel's input buffer (capacity·4 bytes); read float32 data straight into it. */
  readonly inputBytes: Uint8Array;
  private readonly input: Float32Array;
  private readonly f64: Float64Array;
  private readonly f32: Float32Array;
  private readonly i32: Int32Array;
  private readonly readers: { fast: { index: number; lanes: number }[]; full: { index: number; lanes: number }[] };
  private readonly acc: Running;
  private readonly formats: Format[];
  /** The smallest max of the formats: past it, the fast function does not apply. */
  private readonly fastUpTo: number;
  /** Run the full function first (the last call needed it). */
  private preferFull = false;

  private constructor(
    formats: Format[],
    private readonly plans: Plan[],
    memory: ArrayBuffer,
    private readonly fast: RunFn,
    private readonly full: RunFn,
  ) {
    this.formats = [...formats];
    this.inputBytes = new Uint8Array(memory, DATA, 4 * CAPACITY);
    this.input = new Float32Array(memory, DATA, CAPACITY);
    this.f64 = new Float64Array(memory, 0, DATA / 8);
    this.f32 = new Float32Array(memory, 0, DATA / 4);
    this.i32 = new Int32Array(memory, 0, DATA / 4);
    this.readers = { fast: slotReaders(formats.length, false), full: slotReaders(formats.length, true) };
    this.fastUpTo = Math.min(Infinity, ...formats.map((f) => f.max));
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
      return new WeightKernel(formats, plans, mem, inst.exports.fast as RunFn, inst.exports.full as RunFn);
    } catch {
      return null;
    }
  }

  /** Reduce the first n float32 values of the input buffer into the running summary. */
  run(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > CAPACITY) throw new RangeError(`run(n): n must be an integer in 0..${CAPACITY}, got ${n}`);
    const whole = n & ~3;
    if (whole > 0) {
      let full = this.preferFull;
      (full ? this.full : this.fast)(whole >> 2);
      let ok = this.callIsFinite();
      if (ok) {
        const overflows = this.callAbsmax() > this.fastUpTo;
        if (overflows && !full) {
          // Some |x| > max: redo the call with clipping and overflow counts, and start with
          // that function next time (such data tends to continue).
          this.full(whole >> 2);
          full = true;
          ok = this.callIsFinite();
        }
        this.preferFull = overflows;
      }
      if (ok) {
        this.takeCall(whole, full);
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
    this.preferFull = false;
  }

  private callIsFinite(): boolean {
    const f = this.f64;
    return Number.isFinite(f[OUT_SUM / 8]! + f[OUT_SUM / 8 + 1]! + f[OUT_SQ / 8]! + f[OUT_SQ / 8 + 1]!);
  }

  private callAbsmax(): number {
    const f = this.f32;
    const lo = Math.min(f[OUT_MIN / 4]!, f[OUT_MIN / 4 + 1]!, f[OUT_MIN / 4 + 2]!, f[OUT_MIN / 4 + 3]!);
    const hi = Math.max(f[OUT_MAX / 4]!, f[OUT_MAX / 4 + 1]!, f[OUT_MAX / 4 + 2]!, f[OUT_MAX / 4 + 3]!);
    return Math.max(-lo, hi);
  }

  private count(readers: { index: number; lanes: number }[], slot: number): number {
    const r = readers[slot]!;
    let s = 0;
    for (let i = 0; i < r.lanes; i++) s += this.i32[r.index + i]!;
    return s;
  }

  /** Fold the kernel's results for `n` (finite) elements into the running summary. */
  private takeCall(n: number, full: boolean): void {
    const readers = full ? this.readers.full : this.readers.fast;
    const per = full ? 3 : 2;
    const a = this.acc;
    const f64 = this.f64;
    const f32 = this.f32;
    a.count += n;
    const zeros = this.count(readers, 0);
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
      const over = full ? this.count(readers, 1 + per * f) : 0;
      const qz = this.count(readers, per * f + per - 1);
      const lo = this.count(readers, per * f + per);
      a.over[f]! += over;
      a.under[f]! += qz - zeros;
      a.sub[f]! += lo - qz;
      const o = (OUT_NOISE + 16 * f) / 8;
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
