/**
 * A WebAssembly SIMD kernel for `RiskAccumulator` on float32 data: the per-format loop of
 * fast-risk.ts (`tallyF32`) for two formats per f64x2 vector, several vectors per pass over the
 * data. Every lane performs exactly the binary64 operations of the JavaScript loop, in the same
 * order (WebAssembly float arithmetic is IEEE 754 round-to-nearest-even, with no fused or
 * reassociated operations), so the counts and the compensated sums are bit-for-bit those of
 * `tallyF32`, hence of the generic path:
 *
 *   q    = a > max ? max : (a + C) − C          C from the format's table, by exponent field
 *   e2   = (a − q)²
 *   t    = sum + e2;  comp += |sum| ≥ e2 ? (sum − t) + e2 : (e2 − t) + sum;  sum = t
 *   over += a > max;  zero += q == 0;  low += q < minNormal
 *
 * (underflow = zero − exact zeros, subnormal = low − zero.) Σx² rides in a lane of its own: a
 * pseudo-format whose constant is so large that q is always 0, hence e2 = x², with max = ∞.
 *
 * The module is assembled here from its instructions with the shared encoder (src/wasm/
 * assembler.ts; no toolchain, no binary blob): `kernel()` returns null where WebAssembly SIMD is
 * missing or the host is big-endian, and the caller keeps the JavaScript loop.
 */

import { F32, F64, I32, ModuleBuilder, V128, type Code } from '../wasm/assembler.js';
import { LITTLE_ENDIAN, WASM } from '../wasm/runtime.js';

// ---------------------------------------------------------------------------------------------
// Memory layout (bytes)

/** i32 finite count at 0, i32 exact-zero count at 4 (of the last call). */
const STATE_BASE = 64;
/**
 * Running statistics of the `tallyStats<k>` variants (carried across calls): Σx (f64) at 8,
 * min and max (f32) at 16 and 20, the count of x ≤ -1e4 at 24, the smallest non-zero |x| bits
 * at 28.
 */
const STAT_SUM = 8;
const STAT_MIN = 16;
const STAT_MAX = 20;
const STAT_MASKED = 24;
const STAT_LO = 28;
/** Mask-fill threshold of the statistics (src/analysis/mask.ts), exact in float32. */
const MASK_FILL = -1e4;
/** Per pair of lanes: sum, comp, max, minNormal, over, zero, low (each a v128). */
const PAIR_STRIDE = 128;
export const MAX_PAIRS = 64;
const TABLE_BASE = STATE_BASE + MAX_PAIRS * PAIR_STRIDE;
/** Per pair: 256 exponent fields × (C of lane 0, C of lane 1). */
const TABLE_STRIDE = 256 * 16;
const DATA_BASE = TABLE_BASE + MAX_PAIRS * TABLE_STRIDE;
/** Float32 elements copied in per call. */
export const BLOCK = 1 << 16;
/** u32 counts of |x| bits >>> 15 (the `tallyStats<k>` variants add to them; the caller zeroes them). */
const HIST_BASE = DATA_BASE + 4 * BLOCK;
export const HIST_BINS = 1 << 16;
const PAGES = Math.ceil((HIST_BASE + 4 * HIST_BINS) / 65536);
/** Pairs per pass over a block: more share the loads, fewer keep the vectors in registers. */
const PAIRS_PER_PASS = 2;

const SUM = 0;
const COMP = 16;
const MAX = 32;
const MIN_NORMAL = 48;
const OVER = 64;
const ZERO = 80;
const LOW = 96;

/**
 * Function `tally<k>(data, n, firstPair)`: k pairs over n float32 at byte address data. With
 * `stats`, also the running Σx, min, max, mask-fill count and smallest non-zero |x| (STAT_*),
 * and the |x| histogram (HIST_BASE), element by element in order (so Σx is the same sequential
 * double sum as a JavaScript loop's).
 */
function kernelBody(c: Code, k: number, stats: boolean): void {
  // Params: 0 data, 1 n, 2 firstPair.
  const end = c.local(I32);
  const ab = c.local(I32);
  const toff = c.local(I32);
  const finite = c.local(I32);
  const zeros = c.local(I32);
  const sp = Array.from({ length: k }, () => c.local(I32)); // state address of pair j
  const tp = Array.from({ length: k }, () => c.local(I32)); // table address of pair j
  const [A, C, Q, OV, E, E2, T] = Array.from({ length: 7 }, () => c.local(V128)) as [number, number, number, number, number, number, number];
  const pairs = Array.from({ length: k }, () => ({
    sum: c.local(V128),
    comp: c.local(V128),
    max: c.local(V128),
    minN: c.local(V128),
    co: c.local(V128),
    cz: c.local(V128),
    cl: c.local(V128),
  }));
  const st = stats
    ? { sum: c.local(F64), min: c.local(F32), max: c.local(F32), x: c.local(F32), masked: c.local(I32), lo: c.local(I32), hp: c.local(I32) }
    : null;
  c.localGet(0).localGet(1).i32Const(4).op('i32.mul').op('i32.add').localSet(end);
  pairs.forEach((p, j) => {
    c.localGet(2).i32Const(j).op('i32.add').i32Const(PAIR_STRIDE).op('i32.mul').i32Const(STATE_BASE).op('i32.add').localSet(sp[j]!);
    c.localGet(2).i32Const(j).op('i32.add').i32Const(TABLE_STRIDE).op('i32.mul').i32Const(TABLE_BASE).op('i32.add').localSet(tp[j]!);
    c.localGet(sp[j]!).mem('v128.load', SUM).localSet(p.sum);
    c.localGet(sp[j]!).mem('v128.load', COMP).localSet(p.comp);
    c.localGet(sp[j]!).mem('v128.load', MAX).localSet(p.max);
    c.localGet(sp[j]!).mem('v128.load', MIN_NORMAL).localSet(p.minN);
  });
  if (st) {
    c.i32Const(0).mem('f64.load', STAT_SUM).localSet(st.sum);
    c.i32Const(0).mem('f32.load', STAT_MIN).localSet(st.min);
    c.i32Const(0).mem('f32.load', STAT_MAX).localSet(st.max);
    c.i32Const(0).mem('i32.load', STAT_MASKED).localSet(st.masked);
    c.i32Const(0).mem('i32.load', STAT_LO).localSet(st.lo);
  }
  c.block().loop();
  c.localGet(0).localGet(end).op('i32.ge_u').brIf(1);
  c.localGet(0).mem('i32.load').i32Const(0x7fffffff).op('i32.and').localTee(ab).i32Const(0x7f800000).op('i32.lt_u').if();
  c.localGet(finite).i32Const(1).op('i32.add').localSet(finite);
  c.localGet(zeros).localGet(ab).op('i32.eqz').op('i32.add').localSet(zeros);
  c.localGet(ab).ops('f32.reinterpret_i32', 'f64.promote_f32', 'f64x2.splat').localSet(A);
  c.localGet(ab).i32Const(23).op('i32.shr_u').i32Const(4).op('i32.shl').localSet(toff);
  if (st) {
    c.localGet(0).mem('f32.load', 0).localSet(st.x);
    c.localGet(st.sum).localGet(st.x).op('f64.promote_f32').op('f64.add').localSet(st.sum); // sum += x
    c.localGet(st.x).localGet(st.min).localGet(st.x).localGet(st.min).op('f32.lt').op('select').localSet(st.min); // x < min ? x : min
    c.localGet(st.x).localGet(st.max).localGet(st.x).localGet(st.max).op('f32.gt').op('select').localSet(st.max); // x > max ? x : max
    c.localGet(st.masked).localGet(st.x).f32Const(MASK_FILL).op('f32.le').op('i32.add').localSet(st.masked);
    c.localGet(ab).i32Const(15).op('i32.shr_u').i32Const(2).op('i32.shl').localSet(st.hp);
    c.localGet(st.hp).localGet(st.hp).mem('i32.load', HIST_BASE).i32Const(1).op('i32.add').mem('i32.store', HIST_BASE);
    // lo = ab < lo && ab != 0 ? ab : lo
    c.localGet(ab).localGet(st.lo).localGet(ab).localGet(st.lo).op('i32.lt_u').localGet(ab).i32Const(0).op('i32.ne').op('i32.and').op('select').localSet(st.lo);
  }
  pairs.forEach((p, j) => {
    c.localGet(toff).localGet(tp[j]!).op('i32.add').mem('v128.load', 0).localSet(C);
    c.localGet(A).localGet(C).op('f64x2.add').localGet(C).op('f64x2.sub').localSet(Q); // (a + C) − C
    c.localGet(A).localGet(p.max).op('f64x2.gt').localSet(OV); // a > max
    c.localGet(p.max).localGet(Q).localGet(OV).op('v128.bitselect').localSet(Q); // clip
    c.localGet(p.co).localGet(OV).op('i64x2.sub').localSet(p.co);
    c.localGet(p.cz).localGet(Q).f64x2Const(0).op('f64x2.eq').op('i64x2.sub').localSet(p.cz);
    c.localGet(p.cl).localGet(Q).localGet(p.minN).op('f64x2.lt').op('i64x2.sub').localSet(p.cl);
    c.localGet(A).localGet(Q).op('f64x2.sub').localTee(E).localGet(E).op('f64x2.mul').localSet(E2); // e²
    c.localGet(p.sum).localGet(E2).op('f64x2.add').localSet(T); // t = sum + e²
    c.localGet(p.sum).localGet(T).op('f64x2.sub').localGet(E2).op('f64x2.add'); // (sum − t) + e²
    c.localGet(E2).localGet(T).op('f64x2.sub').localGet(p.sum).op('f64x2.add'); // (e² − t) + sum
    c.localGet(p.sum).op('f64x2.abs').localGet(E2).op('f64x2.ge').op('v128.bitselect'); // |sum| ≥ e²
    c.localGet(p.comp).op('f64x2.add').localSet(p.comp);
    c.localGet(T).localSet(p.sum);
  });
  c.end(); // if
  c.localGet(0).i32Const(4).op('i32.add').localSet(0).br(0);
  c.end().end(); // loop, block
  pairs.forEach((p, j) => {
    c.localGet(sp[j]!).localGet(p.sum).mem('v128.store', SUM);
    c.localGet(sp[j]!).localGet(p.comp).mem('v128.store', COMP);
    c.localGet(sp[j]!).localGet(p.co).mem('v128.store', OVER);
    c.localGet(sp[j]!).localGet(p.cz).mem('v128.store', ZERO);
    c.localGet(sp[j]!).localGet(p.cl).mem('v128.store', LOW);
  });
  c.i32Const(0).localGet(finite).mem('i32.store', 0);
  c.i32Const(0).localGet(zeros).mem('i32.store', 4);
  if (st) {
    c.i32Const(0).localGet(st.sum).mem('f64.store', STAT_SUM);
    c.i32Const(0).localGet(st.min).mem('f32.store', STAT_MIN);
    c.i32Const(0).localGet(st.max).mem('f32.store', STAT_MAX);
    c.i32Const(0).localGet(st.masked).mem('i32.store', STAT_MASKED);
    c.i32Const(0).localGet(st.lo).mem('i32.store', STAT_LO);
  }
}

/** The module: memory, then `tally1..` and `tallyStats1..` (PAIRS_PER_PASS of each). */
export function moduleBytes(): Uint8Array {
  const m = new ModuleBuilder();
  m.memory(PAGES, { export: 'memory' });
  for (const stats of [false, true]) {
    for (let k = 1; k <= PAIRS_PER_PASS; k++) m.func(`${stats ? 'tallyStats' : 'tally'}${k}`, [I32, I32, I32], [], (c) => kernelBody(c, k, stats));
  }
  return m.bytes();
}


// ---------------------------------------------------------------------------------------------
// Driver

type TallyFn = (data: number, n: number, firstPair: number) => void;

interface Kernel {
  f64: Float64Array;
  i32: Int32Array;
  f32: Float32Array;
  tally: TallyFn[];
  tallyStats: TallyFn[];
  /** The |x| histogram of `runLanesStats` (bins of float32 bits >>> 15). */
  hist: Uint32Array;
}

let instance: Kernel | null | undefined;
let enabled = true;

/** Switch the kernel off (or back on): the JavaScript loops then run. For tests and benchmarks. */
export function useKernel(on: boolean): void {
  enabled = on;
}


/** The compiled kernel, or null where it cannot run (then use the JavaScript loop). */
export function kernel(): Kernel | null {
  if (!enabled) return null;
  if (instance !== undefined) return instance;
  instance = null;
  try {
    if (!LITTLE_ENDIAN || !WASM) return null;
    const bytes = moduleBytes();
    if (!WASM.validate(bytes)) return null;
    const inst = new WASM.Instance(new WASM.Module(bytes), {});
    const mem = inst.exports.memory as { buffer: ArrayBuffer };
    const tally = Array.from({ length: PAIRS_PER_PASS }, (_, i) => inst.exports[`tally${i + 1}`] as TallyFn);
    const tallyStats = Array.from({ length: PAIRS_PER_PASS }, (_, i) => inst.exports[`tallyStats${i + 1}`] as TallyFn);
    instance = {
      f64: new Float64Array(mem.buffer),
      i32: new Int32Array(mem.buffer),
      f32: new Float32Array(mem.buffer),
      tally,
      tallyStats,
      hist: new Uint32Array(mem.buffer, HIST_BASE, HIST_BINS),
    };
  } catch {
    instance = null;
  }
  return instance;
}

/** One lane: a format's table and limits, and its running sums and counts. */
export interface Lane {
  table: Float64Array;
  max: number;
  minNormal: number;
  noise: number;
  noiseComp: number;
  over: number;
  zero: number;
  low: number;
}

/** The signal lane's constant: 1.5·2^181 has an ulp of 2^129, beyond twice float32's max, so q = 0. */
export const SIGNAL_TABLE = new Float64Array(256).fill(1.5 * 2 ** 181);

/**
 * Run `lanes` (at most 2·MAX_PAIRS) over float32 `values`: updates each lane's sums and counts
 * and returns the number of finite elements and of exact zeros among them.
 */
export function runLanes(k: Kernel, values: Float32Array, lanes: Lane[]): { finite: number; zeros: number } {
  return run(k, values, lanes, false);
}

/** What `runLanesStats` adds to `runLanes`'s counts (over the finite elements). */
export interface ChunkStats {
  finite: number;
  zeros: number;
  /** Σx in element order (a sequential double sum). */
  sum: number;
  /** Smallest and largest x (+Inf / -Inf when no element is finite). */
  min: number;
  max: number;
  /** Elements x ≤ -1e4 (attention-mask fills). */
  masked: number;
  /** Smallest non-zero |x| float32 bits (0x7f800000 when none). */
  lo: number;
}

/**
 * `runLanes`, and in the same pass over the data the chunk's Σx, min, max, mask-fill count and
 * smallest non-zero |x|, with `k.hist[bits(|x|) >>> 15]` incremented for every finite element
 * (zeros included). `k.hist` must be all zero before the call; the caller reads and re-zeroes it.
 * The lanes' results are exactly `runLanes`'s.
 */
export function runLanesStats(k: Kernel, values: Float32Array, lanes: Lane[]): ChunkStats {
  const { f64, f32, i32 } = k;
  f64[STAT_SUM / 8] = 0;
  f32[STAT_MIN / 4] = Infinity;
  f32[STAT_MAX / 4] = -Infinity;
  i32[STAT_MASKED / 4] = 0;
  i32[STAT_LO / 4] = 0x7f800000;
  const { finite, zeros } = run(k, values, lanes, true);
  return { finite, zeros, sum: f64[STAT_SUM / 8]!, min: f32[STAT_MIN / 4]!, max: f32[STAT_MAX / 4]!, masked: i32[STAT_MASKED / 4]!, lo: i32[STAT_LO / 4]! };
}

function run(k: Kernel, values: Float32Array, lanes: Lane[], stats: boolean): { finite: number; zeros: number } {
  const pairs = Math.ceil(lanes.length / 2);
  if (pairs > MAX_PAIRS) throw new RangeError(`at most ${2 * MAX_PAIRS} lanes`);
  const { f64, i32, f32 } = k;
  // Tables and state in, lane by lane (an odd last lane is shadowed by a copy of lane 0).
  for (let p = 0; p < pairs; p++) {
    for (let h = 0; h < 2; h++) {
      const lane = lanes[2 * p + h] ?? lanes[0]!;
      const t = (TABLE_BASE + p * TABLE_STRIDE) / 8 + h;
      for (let field = 0; field < 256; field++) f64[t + 2 * field] = lane.table[field]!;
      const s = (STATE_BASE + p * PAIR_STRIDE) / 8 + h;
      f64[s + SUM / 8] = lane.noise;
      f64[s + COMP / 8] = lane.noiseComp;
      f64[s + MAX / 8] = lane.max;
      f64[s + MIN_NORMAL / 8] = lane.minNormal;
    }
  }
  let finite = 0;
  let zeros = 0;
  for (let start = 0; start < values.length; start += BLOCK) {
    const block = values.subarray(start, Math.min(values.length, start + BLOCK));
    f32.set(block, DATA_BASE / 4);
    for (let p = 0; p < pairs; p += PAIRS_PER_PASS) {
      const kk = Math.min(PAIRS_PER_PASS, pairs - p);
      (stats && p === 0 ? k.tallyStats : k.tally)[kk - 1]!(DATA_BASE, block.length, p);
      for (let j = p; j < p + kk; j++) {
        for (let h = 0; h < 2; h++) {
          const lane = lanes[2 * j + h];
          if (!lane) continue;
          const c = (STATE_BASE + j * PAIR_STRIDE) / 4 + 2 * h; // low word of the i64 lane
          lane.over += i32[c + OVER / 4]!;
          lane.zero += i32[c + ZERO / 4]!;
          lane.low += i32[c + LOW / 4]!;
        }
      }
    }
    finite += i32[0]!;
    zeros += i32[1]!;
  }
  for (let p = 0; p < pairs; p++) {
    for (let h = 0; h < 2; h++) {
      const lane = lanes[2 * p + h];
      if (!lane) continue;
      const s = (STATE_BASE + p * PAIR_STRIDE) / 8 + h;
      lane.noise = f64[s + SUM / 8]!;
      lane.noiseComp = f64[s + COMP / 8]!;
    }
  }
  return { finite, zeros };
}
