/**
 * Fan-in sums of float32 weights in WebAssembly SIMD (weights.ts `sliceSums`: Σw, Σ|w|, Σw² per
 * output unit), for the weight pass. The plain JavaScript loop costs ~3 ns per element, as much
 * as everything else in the pass together; this kernel takes f32x4 vectors, widens each half to
 * f64x2 (exact) and accumulates in float64, skipping non-finite values like the lazy path does.
 *
 *   cols(p, n, c): element j of the n at byte address p adds into column c + j of S, A, Q
 *                  (one row, or part of one, of a [.., K, N] weight reduced over K);
 *   rows(p, n):    Σ, Σ|·|, Σ² of the n elements at p into OUT (a run of one slice when the
 *                  reduced axes are the innermost, as for Gemm's transposed B).
 *
 * n may be any count: the last 1–3 elements go through a scalar tail. Summation order differs
 * from the lazy path only in rounding (float64), and is fixed, so results do not depend on the
 * thread count.
 */
import { I32, ModuleBuilder, V128, type Code } from '../wasm/assembler.js';
import { instantiate } from '../wasm/runtime.js';

/** Elements of input per call. */
export const SLICE_BLOCK = 1 << 18;
/** Columns held at once (wider windows go through the JavaScript loop). */
export const MAX_COLUMNS = 1 << 16;

const DATA = 1 << 16;
const S_BASE = DATA + 4 * SLICE_BLOCK;
const A_BASE = S_BASE + 8 * MAX_COLUMNS;
const Q_BASE = A_BASE + 8 * MAX_COLUMNS;
const OUT = 0; // three f64: Σ, Σ|·|, Σ²
const PAGES = Math.ceil((Q_BASE + 8 * MAX_COLUMNS) / 65536);

const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];

/** x with non-finite lanes replaced by 0 (|x| < ∞ is false for NaN and ±∞). */
function finiteOnly(c: Code, x: number, inf: number): Code {
  return c.localGet(x).f64x2Const(0).localGet(x).op('f64x2.abs').localGet(inf).op('f64x2.lt').op('v128.bitselect');
}

function moduleBytes(): Uint8Array {
  const m = new ModuleBuilder();
  m.memory(PAGES, { export: 'memory' });
  // cols(p, n4, c): n4 groups of 4 elements (the caller does the tail).
  m.func('cols', [I32, I32, I32], [], (c) => {
    const [p, n, col] = [0, 1, 2];
    const v = c.local(V128);
    const lo = c.local(V128);
    const hi = c.local(V128);
    const inf = c.local(V128);
    const off = c.local(I32);
    c.f64x2Const(Infinity).localSet(inf);
    c.localGet(col).i32Const(3).op('i32.shl').localSet(off);
    c.block().loop();
    c.localGet(n).op('i32.eqz').brIf(1);
    c.localGet(p).mem('v128.load', 0, 0).localSet(v);
    c.localGet(v).op('f64x2.promote_low_f32x4').localSet(lo);
    c.localGet(v).localGet(v).i8x16Shuffle(HIGH_HALF).op('f64x2.promote_low_f32x4').localSet(hi);
    finiteOnly(c, lo, inf).localSet(lo);
    finiteOnly(c, hi, inf).localSet(hi);
    for (const [base, f] of [
      [S_BASE, null],
      [A_BASE, 'f64x2.abs'],
      [Q_BASE, 'sq'],
    ] as const) {
      for (const [half, at] of [
        [lo, 0],
        [hi, 16],
      ] as const) {
        c.localGet(off);
        c.localGet(off).mem('v128.load', base + at, 0);
        c.localGet(half);
        if (f === 'f64x2.abs') c.op('f64x2.abs');
        if (f === 'sq') c.localGet(half).op('f64x2.mul');
        c.op('f64x2.add').mem('v128.store', base + at, 0);
      }
    }
    c.localGet(p).i32Const(16).op('i32.add').localSet(p);
    c.localGet(off).i32Const(32).op('i32.add').localSet(off);
    c.localGet(n).i32Const(1).op('i32.sub').localSet(n);
    c.br(0).end().end();
  });
  // rows(p, n4): Σ, Σ|·|, Σ² of n4 groups of 4 into OUT (added to what is there).
  m.func('rows', [I32, I32], [], (c) => {
    const [p, n] = [0, 1];
    const v = c.local(V128);
    const lo = c.local(V128);
    const hi = c.local(V128);
    const inf = c.local(V128);
    const s = c.local(V128);
    const a = c.local(V128);
    const q = c.local(V128);
    c.f64x2Const(Infinity).localSet(inf);
    c.block().loop();
    c.localGet(n).op('i32.eqz').brIf(1);
    c.localGet(p).mem('v128.load', 0, 0).localSet(v);
    c.localGet(v).op('f64x2.promote_low_f32x4').localSet(lo);
    c.localGet(v).localGet(v).i8x16Shuffle(HIGH_HALF).op('f64x2.promote_low_f32x4').localSet(hi);
    finiteOnly(c, lo, inf).localSet(lo);
    finiteOnly(c, hi, inf).localSet(hi);
    c.localGet(s).localGet(lo).op('f64x2.add').localGet(hi).op('f64x2.add').localSet(s);
    c.localGet(a).localGet(lo).op('f64x2.abs').op('f64x2.add').localGet(hi).op('f64x2.abs').op('f64x2.add').localSet(a);
    c.localGet(q).localGet(lo).localGet(lo).op('f64x2.mul').op('f64x2.add').localGet(hi).localGet(hi).op('f64x2.mul').op('f64x2.add').localSet(q);
    c.localGet(p).i32Const(16).op('i32.add').localSet(p);
    c.localGet(n).i32Const(1).op('i32.sub').localSet(n);
    c.br(0).end().end();
    for (const [acc, at] of [
      [s, 0],
      [a, 8],
      [q, 16],
    ] as const) {
      c.i32Const(OUT);
      c.i32Const(OUT).mem('f64.load', at);
      c.localGet(acc).lane('f64x2.extract_lane', 0).op('f64.add');
      c.localGet(acc).lane('f64x2.extract_lane', 1).op('f64.add');
      c.mem('f64.store', at);
    }
  });
  return m.bytes();
}


/** Fan-in sums of one range; `begin` sets the window of columns, `end` hands them out. */
export class SliceKernel {
  private readonly f32: Float32Array;
  private readonly f64: Float64Array;
  private readonly colsFn: (p: number, n4: number, c: number) => void;
  private readonly rowsFn: (p: number, n4: number) => void;

  private constructor(exports: Record<string, unknown>) {
    const mem = (exports.memory as { buffer: ArrayBuffer }).buffer;
    this.f32 = new Float32Array(mem);
    this.f64 = new Float64Array(mem);
    this.colsFn = exports.cols as (p: number, n4: number, c: number) => void;
    this.rowsFn = exports.rows as (p: number, n4: number) => void;
  }

  /** null where WebAssembly SIMD is missing or the host is big-endian. */
  static create(): SliceKernel | null {
    const exports = instantiate(moduleBytes());
    return exports ? new SliceKernel(exports) : null;
  }

  /** Zero the first `width` columns of S, A, Q. */
  clearColumns(width: number): void {
    for (const base of [S_BASE, A_BASE, Q_BASE]) this.f64.fill(0, base / 8, base / 8 + width);
  }

  /** Copy values in (at most SLICE_BLOCK). */
  load(values: Float32Array): void {
    this.f32.set(values, DATA / 4);
  }

  /** Add elements [i, i + n) of the loaded values into columns c … c + n − 1. */
  cols(i: number, n: number, col: number): void {
    const n4 = n >> 2;
    if (n4 > 0) this.colsFn(DATA + 4 * i, n4, col);
    const f64 = this.f64;
    for (let k = n4 * 4; k < n; k++) {
      const x = this.f32[DATA / 4 + i + k]!;
      if (x - x !== 0) continue;
      f64[S_BASE / 8 + col + k]! += x;
      f64[A_BASE / 8 + col + k]! += Math.abs(x);
      f64[Q_BASE / 8 + col + k]! += x * x;
    }
  }

  /** Σ, Σ|·|, Σ² of elements [i, i + n) of the loaded values. */
  rows(i: number, n: number): [number, number, number] {
    const f64 = this.f64;
    f64[OUT / 8] = f64[OUT / 8 + 1] = f64[OUT / 8 + 2] = 0;
    const n4 = n >> 2;
    if (n4 > 0) this.rowsFn(DATA + 4 * i, n4);
    let s = f64[OUT / 8]!;
    let a = f64[OUT / 8 + 1]!;
    let q = f64[OUT / 8 + 2]!;
    for (let k = n4 * 4; k < n; k++) {
      const x = this.f32[DATA / 4 + i + k]!;
      if (x - x !== 0) continue;
      s += x;
      a += Math.abs(x);
      q += x * x;
    }
    return [s, a, q];
  }

  /** Column sums accumulated so far, columns [0, width). */
  columns(width: number): { S: Float64Array; A: Float64Array; Q: Float64Array } {
    return {
      S: this.f64.slice(S_BASE / 8, S_BASE / 8 + width),
      A: this.f64.slice(A_BASE / 8, A_BASE / 8 + width),
      Q: this.f64.slice(Q_BASE / 8, Q_BASE / 8 + width),
    };
  }
}
