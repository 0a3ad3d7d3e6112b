/**
 * A small WebAssembly binary encoder: enough to hand-write numeric kernels (scalar and SIMD)
 * from TypeScript without a toolchain or a checked-in binary.
 *
 *   const m = new ModuleBuilder();
 *   m.memory(2, { export: 'memory' });
 *   m.func('sum', [I32, I32], [F64], (c) => {
 *     const acc = c.local(F64);
 *     c.block().loop()
 *       .localGet(1).op('i32.eqz').brIf(1)
 *       .localGet(acc).localGet(0).mem('f64.load').op('f64.add').localSet(acc)
 *       .localGet(0).i32Const(8).op('i32.add').localSet(0)
 *       .localGet(1).i32Const(1).op('i32.sub').localSet(1)
 *       .br(0)
 *       .end().end()
 *       .localGet(acc);
 *   });
 *   const bytes = m.bytes();
 *
 * Instructions are named as in the WebAssembly text format ('i32.add', 'f64x2.promote_low_f32x4');
 * the name tables below are the binary encodings of the core spec and of the fixed-width SIMD
 * proposal (opcode prefix 0xfd), and `op()` only accepts names of instructions without immediates,
 * so a typo is a type error. Instructions with immediates have their own methods. The encoder does
 * not type-check the code; `WebAssembly.validate` does.
 */

// ---------------------------------------------------------------------------------------------
// Value types and LEB128

export const I32 = 0x7f;
export const I64 = 0x7e;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof I64 | typeof F32 | typeof F64 | typeof V128;

/** Unsigned LEB128 of a non-negative integer below 2^53. */
export function uleb128(n: number): number[] {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`uleb128: ${n} is not a non-negative integer`);
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of an integer (number within ±2^53, or bigint for i64 immediates). */
export function sleb128(value: number | bigint): number[] {
  let n = BigInt(value);
  const out: number[] = [];
  for (;;) {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    if ((n === 0n && (b & 0x40) === 0) || (n === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** A vector: its length (uleb128) then its items. */
export function encodeVec(items: number[][]): number[] {
  return [...uleb128(items.length), ...items.flat()];
}

/** A name: UTF-8 bytes with their length. */
export function encodeName(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...uleb128(bytes.length), ...bytes];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb128(body.length), ...body];
}

// ---------------------------------------------------------------------------------------------
// Opcodes of instructions without immediates

const CORE = {
  unreachable: 0x00, nop: 0x01, return: 0x0f, drop: 0x1a, select: 0x1b,
  'i32.eqz': 0x45, 'i32.eq': 0x46, 'i32.ne': 0x47, 'i32.lt_s': 0x48, 'i32.lt_u': 0x49, 'i32.gt_s': 0x4a,
  'i32.gt_u': 0x4b, 'i32.le_s': 0x4c, 'i32.le_u': 0x4d, 'i32.ge_s': 0x4e, 'i32.ge_u': 0x4f,
  'i64.eqz': 0x50, 'i64.eq': 0x51, 'i64.ne': 0x52, 'i64.lt_s': 0x53, 'i64.lt_u': 0x54, 'i64.gt_s': 0x55,
  'i64.gt_u': 0x56, 'i64.le_s': 0x57, 'i64.le_u': 0x58, 'i64.ge_s': 0x59, 'i64.ge_u': 0x5a,
  'f32.eq': 0x5b, 'f32.ne': 0x5c, 'f32.lt': 0x5d, 'f32.gt': 0x5e, 'f32.le': 0x5f, 'f32.ge': 0x60,
  'f64.eq': 0x61, 'f64.ne': 0x62, 'f64.lt': 0x63, 'f64.gt': 0x64, 'f64.le': 0x65, 'f64.ge': 0x66,
  'i32.clz': 0x67, 'i32.ctz': 0x68, 'i32.popcnt': 0x69, 'i32.add': 0x6a, 'i32.sub': 0x6b, 'i32.mul': 0x6c,
  'i32.div_s': 0x6d, 'i32.div_u': 0x6e, 'i32.rem_s': 0x6f, 'i32.rem_u': 0x70, 'i32.and': 0x71, 'i32.or': 0x72,
  'i32.xor': 0x73, 'i32.shl': 0x74, 'i32.shr_s': 0x75, 'i32.shr_u': 0x76, 'i32.rotl': 0x77, 'i32.rotr': 0x78,
  'i64.clz': 0x79, 'i64.ctz': 0x7a, 'i64.popcnt': 0x7b, 'i64.add': 0x7c, 'i64.sub': 0x7d, 'i64.mul': 0x7e,
  'i64.div_s': 0x7f, 'i64.div_u': 0x80, 'i64.rem_s': 0x81, 'i64.rem_u': 0x82, 'i64.and': 0x83, 'i64.or': 0x84,
  'i64.xor': 0x85, 'i64.shl': 0x86, 'i64.shr_s': 0x87, 'i64.shr_u': 0x88, 'i64.rotl': 0x89, 'i64.rotr': 0x8a,
  'f32.abs': 0x8b, 'f32.neg': 0x8c, 'f32.ceil': 0x8d, 'f32.floor': 0x8e, 'f32.trunc': 0x8f, 'f32.nearest': 0x90,
  'f32.sqrt': 0x91, 'f32.add': 0x92, 'f32.sub': 0x93, 'f32.mul': 0x94, 'f32.div': 0x95, 'f32.min': 0x96,
  'f32.max': 0x97, 'f32.copysign': 0x98,
  'f64.abs': 0x99, 'f64.neg': 0x9a, 'f64.ceil': 0x9b, 'f64.floor': 0x9c, 'f64.trunc': 0x9d, 'f64.nearest': 0x9e,
  'f64.sqrt': 0x9f, 'f64.add': 0xa0, 'f64.sub': 0xa1, 'f64.mul': 0xa2, 'f64.div': 0xa3, 'f64.min': 0xa4,
  'f64.max': 0xa5, 'f64.copysign': 0xa6,
  'i32.wrap_i64': 0xa7, 'i32.trunc_f32_s': 0xa8, 'i32.trunc_f32_u': 0xa9, 'i32.trunc_f64_s': 0xaa,
  'i32.trunc_f64_u': 0xab, 'i64.extend_i32_s': 0xac, 'i64.extend_i32_u': 0xad, 'i64.trunc_f32_s': 0xae,
  'i64.trunc_f32_u': 0xaf, 'i64.trunc_f64_s': 0xb0, 'i64.trunc_f64_u': 0xb1, 'f32.convert_i32_s': 0xb2,
  'f32.convert_i32_u': 0xb3, 'f32.convert_i64_s': 0xb4, 'f32.convert_i64_u': 0xb5, 'f32.demote_f64': 0xb6,
  'f64.convert_i32_s': 0xb7, 'f64.convert_i32_u': 0xb8, 'f64.convert_i64_s': 0xb9, 'f64.convert_i64_u': 0xba,
  'f64.promote_f32': 0xbb, 'i32.reinterpret_f32': 0xbc, 'i64.reinterpret_f64': 0xbd,
  'f32.reinterpret_i32': 0xbe, 'f64.reinterpret_i64': 0xbf,
  'i32.extend8_s': 0xc0, 'i32.extend16_s': 0xc1, 'i64.extend8_s': 0xc2, 'i64.extend16_s': 0xc3,
  'i64.extend32_s': 0xc4,
} as const;

/** SIMD instructions without immediates: opcode after the 0xfd prefix. */
const SIMD = {
  'i8x16.swizzle': 0x0e,
  'i8x16.splat': 0x0f, 'i16x8.splat': 0x10, 'i32x4.splat': 0x11, 'i64x2.splat': 0x12, 'f32x4.splat': 0x13,
  'f64x2.splat': 0x14,
  'i8x16.eq': 0x23, 'i8x16.ne': 0x24, 'i8x16.lt_s': 0x25, 'i8x16.lt_u': 0x26, 'i8x16.gt_s': 0x27,
  'i8x16.gt_u': 0x28, 'i8x16.le_s': 0x29, 'i8x16.le_u': 0x2a, 'i8x16.ge_s': 0x2b, 'i8x16.ge_u': 0x2c,
  'i16x8.eq': 0x2d, 'i16x8.ne': 0x2e, 'i16x8.lt_s': 0x2f, 'i16x8.lt_u': 0x30, 'i16x8.gt_s': 0x31,
  'i16x8.gt_u': 0x32, 'i16x8.le_s': 0x33, 'i16x8.le_u': 0x34, 'i16x8.ge_s': 0x35, 'i16x8.ge_u': 0x36,
  'i32x4.eq': 0x37, 'i32x4.ne': 0x38, 'i32x4.lt_s': 0x39, 'i32x4.lt_u': 0x3a, 'i32x4.gt_s': 0x3b,
  'i32x4.gt_u': 0x3c, 'i32x4.le_s': 0x3d, 'i32x4.le_u': 0x3e, 'i32x4.ge_s': 0x3f, 'i32x4.ge_u': 0x40,
  'f32x4.eq': 0x41, 'f32x4.ne': 0x42, 'f32x4.lt': 0x43, 'f32x4.gt': 0x44, 'f32x4.le': 0x45, 'f32x4.ge': 0x46,
  'f64x2.eq': 0x47, 'f64x2.ne': 0x48, 'f64x2.lt': 0x49, 'f64x2.gt': 0x4a, 'f64x2.le': 0x4b, 'f64x2.ge': 0x4c,
  'v128.not': 0x4d, 'v128.and': 0x4e, 'v128.andnot': 0x4f, 'v128.or': 0x50, 'v128.xor': 0x51,
  'v128.bitselect': 0x52, 'v128.any_true': 0x53,
  'f32x4.demote_f64x2_zero': 0x5e, 'f64x2.promote_low_f32x4': 0x5f,
  'i8x16.abs': 0x60, 'i8x16.neg': 0x61, 'i8x16.popcnt': 0x62, 'i8x16.all_true': 0x63, 'i8x16.bitmask': 0x64,
  'i8x16.narrow_i16x8_s': 0x65, 'i8x16.narrow_i16x8_u': 0x66,
  'f32x4.ceil': 0x67, 'f32x4.floor': 0x68, 'f32x4.trunc': 0x69, 'f32x4.nearest': 0x6a,
  'i8x16.shl': 0x6b, 'i8x16.shr_s': 0x6c, 'i8x16.shr_u': 0x6d, 'i8x16.add': 0x6e, 'i8x16.add_sat_s': 0x6f,
  'i8x16.add_sat_u': 0x70, 'i8x16.sub': 0x71, 'i8x16.sub_sat_s': 0x72, 'i8x16.sub_sat_u': 0x73,
  'f64x2.ceil': 0x74, 'f64x2.floor': 0x75,
  'i8x16.min_s': 0x76, 'i8x16.min_u': 0x77, 'i8x16.max_s': 0x78, 'i8x16.max_u': 0x79,
  'f64x2.trunc': 0x7a, 'i8x16.avgr_u': 0x7b,
  'i16x8.extadd_pairwise_i8x16_s': 0x7c, 'i16x8.extadd_pairwise_i8x16_u': 0x7d,
  'i32x4.extadd_pairwise_i16x8_s': 0x7e, 'i32x4.extadd_pairwise_i16x8_u': 0x7f,
  'i16x8.abs': 0x80, 'i16x8.neg': 0x81, 'i16x8.q15mulr_sat_s': 0x82, 'i16x8.all_true': 0x83,
  'i16x8.bitmask': 0x84, 'i16x8.narrow_i32x4_s': 0x85, 'i16x8.narrow_i32x4_u': 0x86,
  'i16x8.extend_low_i8x16_s': 0x87, 'i16x8.extend_high_i8x16_s': 0x88, 'i16x8.extend_low_i8x16_u': 0x89,
  'i16x8.extend_high_i8x16_u': 0x8a, 'i16x8.shl': 0x8b, 'i16x8.shr_s': 0x8c, 'i16x8.shr_u': 0x8d,
  'i16x8.add': 0x8e, 'i16x8.add_sat_s': 0x8f, 'i16x8.add_sat_u': 0x90, 'i16x8.sub': 0x91,
  'i16x8.sub_sat_s': 0x92, 'i16x8.sub_sat_u': 0x93, 'f64x2.nearest': 0x94, 'i16x8.mul': 0x95,
  'i16x8.min_s': 0x96, 'i16x8.min_u': 0x97, 'i16x8.max_s': 0x98, 'i16x8.max_u': 0x99, 'i16x8.avgr_u': 0x9b,
  'i16x8.extmul_low_i8x16_s': 0x9c, 'i16x8.extmul_high_i8x16_s': 0x9d, 'i16x8.extmul_low_i8x16_u': 0x9e,
  'i16x8.extmul_high_i8x16_u': 0x9f,
  'i32x4.abs': 0xa0, 'i32x4.neg': 0xa1, 'i32x4.all_true': 0xa3, 'i32x4.bitmask': 0xa4,
  'i32x4.extend_low_i16x8_s': 0xa7, 'i32x4.extend_high_i16x8_s': 0xa8, 'i32x4.extend_low_i16x8_u': 0xa9,
  'i32x4.extend_high_i16x8_u': 0xaa, 'i32x4.shl': 0xab, 'i32x4.shr_s': 0xac, 'i32x4.shr_u': 0xad,
  'i32x4.add': 0xae, 'i32x4.sub': 0xb1, 'i32x4.mul': 0xb5, 'i32x4.min_s': 0xb6, 'i32x4.min_u': 0xb7,
  'i32x4.max_s': 0xb8, 'i32x4.max_u': 0xb9, 'i32x4.dot_i16x8_s': 0xba,
  'i32x4.extmul_low_i16x8_s': 0xbc, 'i32x4.extmul_high_i16x8_s': 0xbd, 'i32x4.extmul_low_i16x8_u': 0xbe,
  'i32x4.extmul_high_i16x8_u': 0xbf,
  'i64x2.abs': 0xc0, 'i64x2.neg': 0xc1, 'i64x2.all_true': 0xc3, 'i64x2.bitmask': 0xc4,
  'i64x2.extend_low_i32x4_s': 0xc7, 'i64x2.extend_high_i32x4_s': 0xc8, 'i64x2.extend_low_i32x4_u': 0xc9,
  'i64x2.extend_high_i32x4_u': 0xca, 'i64x2.shl': 0xcb, 'i64x2.shr_s': 0xcc, 'i64x2.shr_u': 0xcd,
  'i64x2.add': 0xce, 'i64x2.sub': 0xd1, 'i64x2.mul': 0xd5, 'i64x2.eq': 0xd6, 'i64x2.ne': 0xd7,
  'i64x2.lt_s': 0xd8, 'i64x2.gt_s': 0xd9, 'i64x2.le_s': 0xda, 'i64x2.ge_s': 0xdb,
  'i64x2.extmul_low_i32x4_s': 0xdc, 'i64x2.extmul_high_i32x4_s': 0xdd, 'i64x2.extmul_low_i32x4_u': 0xde,
  'i64x2.extmul_high_i32x4_u': 0xdf,
  'f32x4.abs': 0xe0, 'f32x4.neg': 0xe1, 'f32x4.sqrt': 0xe3, 'f32x4.add': 0xe4, 'f32x4.sub': 0xe5,
  'f32x4.mul': 0xe6, 'f32x4.div': 0xe7, 'f32x4.min': 0xe8, 'f32x4.max': 0xe9, 'f32x4.pmin': 0xea,
  'f32x4.pmax': 0xeb,
  'f64x2.abs': 0xec, 'f64x2.neg': 0xed, 'f64x2.sqrt': 0xef, 'f64x2.add': 0xf0, 'f64x2.sub': 0xf1,
  'f64x2.mul': 0xf2, 'f64x2.div': 0xf3, 'f64x2.min': 0xf4, 'f64x2.max': 0xf5, 'f64x2.pmin': 0xf6,
  'f64x2.pmax': 0xf7,
  'i32x4.trunc_sat_f32x4_s': 0xf8, 'i32x4.trunc_sat_f32x4_u': 0xf9, 'f32x4.convert_i32x4_s': 0xfa,
  'f32x4.convert_i32x4_u': 0xfb, 'i32x4.trunc_sat_f64x2_s_zero': 0xfc, 'i32x4.trunc_sat_f64x2_u_zero': 0xfd,
  'f64x2.convert_low_i32x4_s': 0xfe, 'f64x2.convert_low_i32x4_u': 0xff,
} as const;

/** Loads and stores: opcode bytes and natural alignment (log2 of the access width in bytes). */
const MEMORY = {
  'i32.load': [[0x28], 2], 'i64.load': [[0x29], 3], 'f32.load': [[0x2a], 2], 'f64.load': [[0x2b], 3],
  'i32.load8_s': [[0x2c], 0], 'i32.load8_u': [[0x2d], 0], 'i32.load16_s': [[0x2e], 1], 'i32.load16_u': [[0x2f], 1],
  'i64.load8_s': [[0x30], 0], 'i64.load8_u': [[0x31], 0], 'i64.load16_s': [[0x32], 1], 'i64.load16_u': [[0x33], 1],
  'i64.load32_s': [[0x34], 2], 'i64.load32_u': [[0x35], 2],
  'i32.store': [[0x36], 2], 'i64.store': [[0x37], 3], 'f32.store': [[0x38], 2], 'f64.store': [[0x39], 3],
  'i32.store8': [[0x3a], 0], 'i32.store16': [[0x3b], 1], 'i64.store8': [[0x3c], 0], 'i64.store16': [[0x3d], 1],
  'i64.store32': [[0x3e], 2],
  'v128.load': [[0xfd, 0x00], 4], 'v128.load8x8_s': [[0xfd, 0x01], 3], 'v128.load8x8_u': [[0xfd, 0x02], 3],
  'v128.load16x4_s': [[0xfd, 0x03], 3], 'v128.load16x4_u': [[0xfd, 0x04], 3], 'v128.load32x2_s': [[0xfd, 0x05], 3],
  'v128.load32x2_u': [[0xfd, 0x06], 3], 'v128.load8_splat': [[0xfd, 0x07], 0], 'v128.load16_splat': [[0xfd, 0x08], 1],
  'v128.load32_splat': [[0xfd, 0x09], 2], 'v128.load64_splat': [[0xfd, 0x0a], 3], 'v128.store': [[0xfd, 0x0b], 4],
  'v128.load32_zero': [[0xfd, 0x5c], 2], 'v128.load64_zero': [[0xfd, 0x5d], 3],
} as const satisfies Record<string, readonly [readonly number[], number]>;

/** Lane instructions: opcode after 0xfd; the lane index follows as one byte. */
const LANE = {
  'i8x16.extract_lane_s': 0x15, 'i8x16.extract_lane_u': 0x16, 'i8x16.replace_lane': 0x17,
  'i16x8.extract_lane_s': 0x18, 'i16x8.extract_lane_u': 0x19, 'i16x8.replace_lane': 0x1a,
  'i32x4.extract_lane': 0x1b, 'i32x4.replace_lane': 0x1c, 'i64x2.extract_lane': 0x1d, 'i64x2.replace_lane': 0x1e,
  'f32x4.extract_lane': 0x1f, 'f32x4.replace_lane': 0x20, 'f64x2.extract_lane': 0x21, 'f64x2.replace_lane': 0x22,
} as const;

export type SimpleOp = keyof typeof CORE | keyof typeof SIMD;
export type MemoryOp = keyof typeof MEMORY;
export type LaneOp = keyof typeof LANE;

/** Block types: no result, or one value. */
export type BlockType = 'void' | ValType;

function uleb32(n: number): number[] {
  return uleb128(n >>> 0);
}

// ---------------------------------------------------------------------------------------------
// Function bodies

/**
 * The body of one function: its locals and instructions. Parameters are locals 0..k-1; `local()`
 * declares the next ones. Every emitting method returns `this`, so code reads as a sequence.
 */
export class Code {
  private readonly localTypes: ValType[] = [];
  private readonly code: number[] = [];
  private depth = 0;

  constructor(readonly params: readonly ValType[]) {}

  /** Declare a local of the given type; returns its index. */
  local(type: ValType): number {
    this.localTypes.push(type);
    return this.params.length + this.localTypes.length - 1;
  }

  /** Append raw bytes (an escape hatch for instructions this encoder does not name). */
  raw(...bytes: number[]): this {
    for (const b of bytes) this.code.push(b);
    return this;
  }

  /** An instruction without immediates, by its text-format name. */
  op(name: SimpleOp): this {
    if (name in SIMD) return this.raw(0xfd, ...uleb128(SIMD[name as keyof typeof SIMD]));
    return this.raw(CORE[name as keyof typeof CORE]);
  }

  /** Several instructions without immediates, in order. */
  ops(...names: SimpleOp[]): this {
    for (const n of names) this.op(n);
    return this;
  }

  // Variables
  localGet(i: number): this {
    return this.raw(0x20, ...uleb128(i));
  }
  localSet(i: number): this {
    return this.raw(0x21, ...uleb128(i));
  }
  localTee(i: number): this {
    return this.raw(0x22, ...uleb128(i));
  }
  globalGet(i: number): this {
    return this.raw(0x23, ...uleb128(i));
  }
  globalSet(i: number): this {
    return this.raw(0x24, ...uleb128(i));
  }

  // Constants
  i32Const(v: number): this {
    return this.raw(0x41, ...sleb128(v | 0));
  }
  i64Const(v: number | bigint): this {
    return this.raw(0x42, ...sleb128(BigInt.asIntN(64, BigInt(v))));
  }
  f32Const(v: number): this {
    return this.raw(0x43, ...new Uint8Array(new Float32Array([v]).buffer));
  }
  f64Const(v: number): this {
    return this.raw(0x44, ...new Uint8Array(new Float64Array([v]).buffer));
  }
  /** v128.const from 16 bytes (little-endian lane order). */
  v128Const(bytes: ArrayLike<number>): this {
    if (bytes.length !== 16) throw new RangeError('v128.const needs 16 bytes');
    return this.raw(0xfd, ...uleb128(0x0c), ...Array.from(bytes, (b) => b & 0xff));
  }
  /** v128.const with four i32 lanes (an integer, or the float32 bit pattern via `f32Bits`). */
  i32x4Const(lanes: readonly [number, number, number, number] | number): this {
    const l = typeof lanes === 'number' ? [lanes, lanes, lanes, lanes] : lanes;
    return this.v128Const(new Uint8Array(new Int32Array(l).buffer));
  }
  f32x4Const(lanes: readonly [number, number, number, number] | number): this {
    const l = typeof lanes === 'number' ? [lanes, lanes, lanes, lanes] : lanes;
    return this.v128Const(new Uint8Array(new Float32Array(l).buffer));
  }
  f64x2Const(lanes: readonly [number, number] | number): this {
    const l = typeof lanes === 'number' ? [lanes, lanes] : lanes;
    return this.v128Const(new Uint8Array(new Float64Array(l).buffer));
  }

  // Memory
  /** A load or store with its memarg: static byte offset, alignment (log2; default natural). */
  mem(name: MemoryOp, offset = 0, alignLog2?: number): this {
    const [bytes, natural] = MEMORY[name];
    const [first, ...rest] = bytes;
    const opcode = first === 0xfd ? [0xfd, ...uleb128(rest[0]!)] : [first!];
    return this.raw(...opcode, ...uleb128(alignLog2 ?? natural), ...uleb32(offset));
  }
  memorySize(): this {
    return this.raw(0x3f, 0x00);
  }
  memoryGrow(): this {
    return this.raw(0x40, 0x00);
  }
  /** memory.fill (bulk memory): [dest, value, length] on the stack. */
  memoryFill(): this {
    return this.raw(0xfc, ...uleb128(11), 0x00);
  }
  /** memory.copy (bulk memory): [dest, src, length] on the stack. */
  memoryCopy(): this {
    return this.raw(0xfc, ...uleb128(10), 0x00, 0x00);
  }

  // SIMD with immediates
  /** i8x16.shuffle of the two vectors on the stack: 16 byte indices in 0..31. */
  i8x16Shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16 || lanes.some((l) => !(l >= 0 && l < 32))) throw new RangeError('i8x16.shuffle needs 16 lane indices in 0..31');
    return this.raw(0xfd, ...uleb128(0x0d), ...lanes);
  }
  lane(name: LaneOp, index: number): this {
    return this.raw(0xfd, ...uleb128(LANE[name]), index);
  }

  // Control
  block(type: BlockType = 'void'): this {
    this.depth++;
    return this.raw(0x02, type === 'void' ? 0x40 : type);
  }
  loop(type: BlockType = 'void'): this {
    this.depth++;
    return this.raw(0x03, type === 'void' ? 0x40 : type);
  }
  if(type: BlockType = 'void'): this {
    this.depth++;
    return this.raw(0x04, type === 'void' ? 0x40 : type);
  }
  else(): this {
    return this.raw(0x05);
  }
  end(): this {
    if (this.depth === 0) throw new Error('end without an open block');
    this.depth--;
    return this.raw(0x0b);
  }
  br(depth: number): this {
    return this.raw(0x0c, ...uleb128(depth));
  }
  brIf(depth: number): this {
    return this.raw(0x0d, ...uleb128(depth));
  }
  brTable(depths: readonly number[], fallback: number): this {
    return this.raw(0x0e, ...encodeVec(depths.map((d) => uleb128(d))), ...uleb128(fallback));
  }
  call(funcIndex: number): this {
    return this.raw(0x10, ...uleb128(funcIndex));
  }

  /** The function's code entry (size, locals, instructions, final `end`). */
  encode(): number[] {
    if (this.depth !== 0) throw new Error(`${this.depth} block(s) left open`);
    // Locals are declared as runs of equal types.
    const runs: number[][] = [];
    for (let i = 0; i < this.localTypes.length; ) {
      let j = i;
      while (j < this.localTypes.length && this.localTypes[j] === this.localTypes[i]) j++;
      runs.push([...uleb128(j - i), this.localTypes[i]!]);
      i = j;
    }
    const body = [...encodeVec(runs), ...this.code, 0x0b];
    return [...uleb128(body.length), ...body];
  }
}

// ---------------------------------------------------------------------------------------------
// Modules

export interface MemoryOptions {
  maxPages?: number;
  /** Export the memory under this name. */
  export?: string;
}

interface FuncEntry {
  type: number;
  code: Code;
  exportName: string | null;
}

/** A module: one memory (defined or imported), functions, exports. Build, then call `bytes()`. */
export class ModuleBuilder {
  private readonly types: number[][] = [];
  private readonly imports: number[][] = [];
  private readonly funcs: FuncEntry[] = [];
  private memoryDef: number[] | null = null;
  private memoryExport: string | null = null;
  private importedFuncs = 0;

  private typeIndex(params: readonly ValType[], results: readonly ValType[]): number {
    const t = [0x60, ...encodeVec(params.map((p) => [p])), ...encodeVec(results.map((r) => [r]))];
    const key = t.join(',');
    const i = this.types.findIndex((x) => x.join(',') === key);
    if (i >= 0) return i;
    this.types.push(t);
    return this.types.length - 1;
  }

  private static limits(min: number, max?: number): number[] {
    return max === undefined ? [0x00, ...uleb128(min)] : [0x01, ...uleb128(min), ...uleb128(max)];
  }

  /** Define the module's memory (64 KiB pages). */
  memory(minPages: number, opts: MemoryOptions = {}): this {
    if (this.memoryDef || this.imports.length) throw new Error('one memory per module');
    this.memoryDef = ModuleBuilder.limits(minPages, opts.maxPages);
    this.memoryExport = opts.export ?? null;
    return this;
  }

  /** Import the memory as module.name (pass a WebAssembly.Memory of at least minPages). */
  importMemory(module: string, name: string, minPages: number, maxPages?: number): this {
    if (this.memoryDef) throw new Error('one memory per module');
    this.imports.push([...encodeName(module), ...encodeName(name), 0x02, ...ModuleBuilder.limits(minPages, maxPages)]);
    return this;
  }

  /** Import a function; returns its index (imports come before defined functions). */
  importFunc(module: string, name: string, params: readonly ValType[], results: readonly ValType[]): number {
    if (this.funcs.length) throw new Error('import functions before defining any');
    this.imports.push([...encodeName(module), ...encodeName(name), 0x00, ...uleb128(this.typeIndex(params, results))]);
    return this.importedFuncs++;
  }

  /** Define a function (exported as `name` unless it is null); returns its index. */
  func(name: string | null, params: readonly ValType[], results: readonly ValType[], build: (c: Code) => void): number {
    const code = new Code(params);
    build(code);
    this.funcs.push({ type: this.typeIndex(params, results), code, exportName: name });
    return this.importedFuncs + this.funcs.length - 1;
  }

  bytes(): Uint8Array {
    const exports: number[][] = [];
    if (this.memoryExport !== null) exports.push([...encodeName(this.memoryExport), 0x02, 0x00]);
    this.funcs.forEach((f, i) => {
      if (f.exportName !== null) exports.push([...encodeName(f.exportName), 0x00, ...uleb128(this.importedFuncs + i)]);
    });
    const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    if (this.types.length) out.push(...section(1, encodeVec(this.types)));
    if (this.imports.length) out.push(...section(2, encodeVec(this.imports)));
    if (this.funcs.length) out.push(...section(3, encodeVec(this.funcs.map((f) => uleb128(f.type)))));
    if (this.memoryDef) out.push(...section(5, encodeVec([this.memoryDef])));
    if (exports.length) out.push(...section(7, encodeVec(exports)));
    if (this.funcs.length) out.push(...section(10, encodeVec(this.funcs.map((f) => f.code.encode()))));
    return Uint8Array.from(out);
  }
}
