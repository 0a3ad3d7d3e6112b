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
 * The module is assembled here from its instructions (no toolchain, no binary blob): `kernel()`
 * returns null where WebAssembly SIMD is missing or the host is big-endian, and the caller keeps
 * the JavaScript loop.
 */

// ---------------------------------------------------------------------------------------------
// A minimal WebAssembly binary encoder (just what the kernel uses)

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const str = (s: string): number[] => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];

const I32 = 0x7f;
const F32 = 0x7d;
const F64 = 0x7c;
const V128 = 0x7b;

const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  end: [0x0b],
  br: (d: number) => [0x0c, ...uleb(d)],
  brIf: (d: number) => [0x0d, ...uleb(d)],
  get: (l: number) => [0x20, ...uleb(l)],
  set: (l: number) => [0x21, ...uleb(l)],
  tee: (l: number) => [0x22, ...uleb(l)],
  i32Load: [0x28, 2, 0],
  i32LoadAt: (offset: number) => [0x28, 2, ...uleb(offset)],
  f32Load: (offset: number) => [0x2a, 2, ...uleb(offset)],
  f64Load: (offset: number) => [0x2b, 3, ...uleb(offset)],
  f32Store: (offset: number) => [0x38, 2, ...uleb(offset)],
  f64Store: (offset: number) => [0x39, 3, ...uleb(offset)],
  f32Const: (v: number) => [0x43, ...new Uint8Array(new Float32Array([v]).buffer)],
  select: [0x1b],
  i32Ne: [0x47],
  f32Lt: [0x5d],
  f32Gt: [0x5e],
  f32Le: [0x5f],
  f64Add: [0xa0],
  i32Store: (offset: number) => [0x36, 2, ...uleb(offset)],
  i32Const: (v: number) => [0x41, ...sleb(v)],
  i32Eqz: [0x45],
  i32LtU: [0x49],
  i32GeU: [0x4f],
  i32Add: [0x6a],
  i32Mul: [0x6c],
  i32And: [0x71],
  i32Shl: [0x74],
  i32ShrU: [0x76],
  f64PromoteF32: [0xbb],
  f32ReinterpretI32: [0xbe],
  v128Load: (offset: number) => [0xfd, ...uleb(0x00), 4, ...uleb(offset)],
  v128Store: (offset: number) => [0xfd, ...uleb(0x0b), 4, ...uleb(offset)],
  v128Zero: [0xfd, ...uleb(0x0c), ...new Array<number>(16).fill(0)],
  f64x2Splat: [0xfd, ...uleb(0x14)],
  f64x2Eq: [0xfd, ...uleb(0x47)],
  f64x2Lt: [0xfd, ...uleb(0x49)],
  f64x2Gt: [0xfd, ...uleb(0x4a)],
  f64x2Ge: [0xfd, ...uleb(0x4c)],
  v128Bitselect: [0xfd, ...uleb(0x52)],
  i64x2Sub: [0xfd, ...uleb(0xd1)],
  f64x2Abs: [0xfd, ...uleb(0xec)],
  f64x2Add: [0xfd, ...uleb(0xf0)],
  f64x2Sub: [0xfd, ...uleb(0xf1)],
  f64x2Mul: [0xfd, ...uleb(0xf2)],
};

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
function kernelBody(k: number, stats = false): number[] {
  // Locals: params 0 data, 1 n, 2 firstPair; i32 3 end, 4 ab, 5 toff, 6 finite, 7 zeros,
  // 8.. statePtr[k], tablePtr[k]; v128 A, C, Q, OV, E, E2, T, then per pair SUM, COMP, MAX, MINN, CO, CZ, CL.
  const end = 3;
  const ab = 4;
  const toff = 5;
  const finite = 6;
  const zeros = 7;
  const sp = (j: number): number => 8 + j;
  const tp = (j: number): number => 8 + k + j;
  const v0 = 8 + 2 * k;
  const [A, C, Q, OV, E, E2, T] = [0, 1, 2, 3, 4, 5, 6].map((i) => v0 + i) as [number, number, number, number, number, number, number];
  const pv = (j: number, i: number): number => v0 + 7 + 7 * j + i;
  const sum = (j: number): number => pv(j, 0);
  const comp = (j: number): number => pv(j, 1);
  const max = (j: number): number => pv(j, 2);
  const minN = (j: number): number => pv(j, 3);
  const co = (j: number): number => pv(j, 4);
  const cz = (j: number): number => pv(j, 5);
  const cl = (j: number): number => pv(j, 6);
  const sbase = v0 + 7 + 7 * k;
  const [sumL, minL, maxL, xL, maskedL, loL, hp] = [0, 1, 2, 3, 4, 5, 6].map((i) => sbase + i) as [number, number, number, number, number, number, number];
  const locals = [
    [...uleb(5 + 2 * k), I32],
    [...uleb(7 + 7 * k), V128],
    ...(stats ? [[1, F64], [3, F32], [3, I32]] : []),
  ];
  const code: number[] = [];
  const emit = (...parts: (number[] | number)[]): void => {
    for (const p of parts) typeof p === 'number' ? code.push(p) : code.push(...p);
  };
  emit(op.get(0), op.get(1), op.i32Const(4), op.i32Mul, op.i32Add, op.set(end));
  for (let j = 0; j < k; j++) {
    emit(op.get(2), op.i32Const(j), op.i32Add, op.i32Const(PAIR_STRIDE), op.i32Mul, op.i32Const(STATE_BASE), op.i32Add, op.set(sp(j)));
    emit(op.get(2), op.i32Const(j), op.i32Add, op.i32Const(TABLE_STRIDE), op.i32Mul, op.i32Const(TABLE_BASE), op.i32Add, op.set(tp(j)));
    emit(op.get(sp(j)), op.v128Load(SUM), op.set(sum(j)));
    emit(op.get(sp(j)), op.v128Load(COMP), op.set(comp(j)));
    emit(op.get(sp(j)), op.v128Load(MAX), op.set(max(j)));
    emit(op.get(sp(j)), op.v128Load(MIN_NORMAL), op.set(minN(j)));
  }
  if (stats) {
    emit(op.i32Const(0), op.f64Load(STAT_SUM), op.set(sumL));
    emit(op.i32Const(0), op.f32Load(STAT_MIN), op.set(minL));
    emit(op.i32Const(0), op.f32Load(STAT_MAX), op.set(maxL));
    emit(op.i32Const(0), op.i32LoadAt(STAT_MASKED), op.set(maskedL));
    emit(op.i32Const(0), op.i32LoadAt(STAT_LO), op.set(loL));
  }
  emit(op.block, op.loop);
  emit(op.get(0), op.get(end), op.i32GeU, op.brIf(1));
  emit(op.get(0), op.i32Load, op.i32Const(0x7fffffff), op.i32And, op.tee(ab), op.i32Const(0x7f800000), op.i32LtU, op.if);
  emit(op.get(finite), op.i32Const(1), op.i32Add, op.set(finite));
  emit(op.get(zeros), op.get(ab), op.i32Eqz, op.i32Add, op.set(zeros));
  emit(op.get(ab), op.f32ReinterpretI32, op.f64PromoteF32, op.f64x2Splat, op.set(A));
  emit(op.get(ab), op.i32Const(23), op.i32ShrU, op.i32Const(4), op.i32Shl, op.set(toff));
  if (stats) {
    emit(op.get(0), op.f32Load(0), op.set(xL));
    emit(op.get(sumL), op.get(xL), op.f64PromoteF32, op.f64Add, op.set(sumL)); // sum += x
    emit(op.get(xL), op.get(minL), op.get(xL), op.get(minL), op.f32Lt, op.select, op.set(minL)); // x < min ? x : min
    emit(op.get(xL), op.get(maxL), op.get(xL), op.get(maxL), op.f32Gt, op.select, op.set(maxL)); // x > max ? x : max
    emit(op.get(maskedL), op.get(xL), op.f32Const(MASK_FILL), op.f32Le, op.i32Add, op.set(maskedL));
    emit(op.get(ab), op.i32Const(15), op.i32ShrU, op.i32Const(2), op.i32Shl, op.set(hp));
    emit(op.get(hp), op.get(hp), op.i32LoadAt(HIST_BASE), op.i32Const(1), op.i32Add, op.i32Store(HIST_BASE));
    // lo = ab < lo && ab != 0 ? ab : lo
    emit(op.get(ab), op.get(loL), op.get(ab), op.get(loL), op.i32LtU, op.get(ab), op.i32Const(0), op.i32Ne, op.i32And, op.select, op.set(loL));
  }
  for (let j = 0; j < k; j++) {
    emit(op.get(toff), op.get(tp(j)), op.i32Add, op.v128Load(0), op.set(C));
    emit(op.get(A), op.get(C), op.f64x2Add, op.get(C), op.f64x2Sub, op.set(Q)); // (a + C) − C
    emit(op.get(A), op.get(max(j)), op.f64x2Gt, op.set(OV)); // a > max
    emit(op.get(max(j)), op.get(Q), op.get(OV), op.v128Bitselect, op.set(Q)); // clip
    emit(op.get(co(j)), op.get(OV), op.i64x2Sub, op.set(co(j)));
    emit(op.get(cz(j)), op.get(Q), op.v128Zero, op.f64x2Eq, op.i64x2Sub, op.set(cz(j)));
    emit(op.get(cl(j)), op.get(Q), op.get(minN(j)), op.f64x2Lt, op.i64x2Sub, op.set(cl(j)));
    emit(op.get(A), op.get(Q), op.f64x2Sub, op.tee(E), op.get(E), op.f64x2Mul, op.set(E2)); // e²
    emit(op.get(sum(j)), op.get(E2), op.f64x2Add, op.set(T)); // t = sum + e²
    emit(op.get(sum(j)), op.get(T), op.f64x2Sub, op.get(E2), op.f64x2Add); // (sum − t) + e²
    emit(op.get(E2), op.get(T), op.f64x2Sub, op.get(sum(j)), op.f64x2Add); // (e² − t) + sum
    emit(op.get(sum(j)), op.f64x2Abs, op.get(E2), op.f64x2Ge, op.v128Bitselect); // |sum| ≥ e²
    emit(op.get(comp(j)), op.f64x2Add, op.set(comp(j)));
    emit(op.get(T), op.set(sum(j)));
  }
  emit(op.end); // if
  emit(op.get(0), op.i32Const(4), op.i32Add, op.set(0), op.br(0));
  emit(op.end, op.end); // loop, block
  for (let j = 0; j < k; j++) {
    emit(op.get(sp(j)), op.get(sum(j)), op.v128Store(SUM));
    emit(op.get(sp(j)), op.get(comp(j)), op.v128Store(COMP));
    emit(op.get(sp(j)), op.get(co(j)), op.v128Store(OVER));
    emit(op.get(sp(j)), op.get(cz(j)), op.v128Store(ZERO));
    emit(op.get(sp(j)), op.get(cl(j)), op.v128Store(LOW));
  }
  emit(op.i32Const(0), op.get(finite), op.i32Store(0));
  emit(op.i32Const(0), op.get(zeros), op.i32Store(4));
  if (stats) {
    emit(op.i32Const(0), op.get(sumL), op.f64Store(STAT_SUM));
    emit(op.i32Const(0), op.get(minL), op.f32Store(STAT_MIN));
    emit(op.i32Const(0), op.get(maxL), op.f32Store(STAT_MAX));
    emit(op.i32Const(0), op.get(maskedL), op.i32Store(STAT_MASKED));
    emit(op.i32Const(0), op.get(loL), op.i32Store(STAT_LO));
  }
  emit(op.end);
  const body = [...vec(locals), ...code];
  return [...uleb(body.length), ...body];
}

function moduleBytes(): Uint8Array {
  const ks = Array.from({ length: PAIRS_PER_PASS }, (_, i) => i + 1);
  const type = [0x60, ...vec([[I32], [I32], [I32]]), ...vec([])];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([type])),
    ...section(3, vec([...ks, ...ks].map(() => [0]))),
    ...section(5, vec([[0x00, ...uleb(PAGES)]])),
    ...section(7, vec([
      [...str('memory'), 0x02, 0],
      ...ks.map((k, i) => [...str(`tally${k}`), 0x00, i]),
      ...ks.map((k, i) => [...str(`tallyStats${k}`), 0x00, ks.length + i]),
    ])),
    ...section(10, vec([...ks.map((k) => kernelBody(k)), ...ks.map((k) => kernelBody(k, true))])),
  ];
  return Uint8Array.from(bytes);
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

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The part of the WebAssembly JS API used here (the project's TypeScript libs do not declare it). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const WASM = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

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
