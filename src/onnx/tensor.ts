/**
 * TensorData: a lazy view of one TensorProto (an initializer, a Constant's value, an
 * attribute). Nothing is decoded or read from disk until a stage asks; `raw_data` stays a
 * view into the model file's buffer (often not 4-byte aligned, so decoding goes through
 * DataView or a copy), and external data is read from its file in bounded chunks.
 */
import { ModelError } from '../errors.js';
import { q } from './quote.js';
import { decode as decodeCode, formatForOnnxType } from '../formats/index.js';
import { byteLength, DataType, dtypeBits, dtypeName, isFloatType } from './dtype.js';
import { type ExternalRef, readRange, readRangeChunks, resolveExternal } from './external.js';
import { toNumber } from './proto.js';
import type { TensorProto } from './proto-types.js';

/** Largest element count unitscale will decode in one piece; bigger ones must stream. */
const MAX_DECODE_ELEMENTS = 2 ** 28;
const DEFAULT_CHUNK_BYTES = 1 << 22;

export class TensorData {
  readonly name: string;
  readonly dtype: number;
  readonly dims: number[];
  readonly count: number;
  readonly external: ExternalRef | null;

  constructor(
    readonly proto: TensorProto,
    modelDir: string | null,
  ) {
    this.name = proto.name ?? '';
    this.dtype = proto.data_type ?? DataType.UNDEFINED;
    this.dims = (proto.dims ?? []).map((d) => toNumber(d));
    for (const d of this.dims) {
      if (!Number.isSafeInteger(d) || d < 0) throw new ModelError(`tensor ${q(this.name)} has invalid dimension ${d}`);
    }
    this.count = this.dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(this.count)) throw new ModelError(`tensor ${q(this.name)} has an absurd element count`);
    const isExternal = proto.data_location === 1;
    if (isExternal) {
      const expected = this.dtype === DataType.STRING ? null : byteLength(this.dtype, this.count);
      this.external = resolveExternal(proto.external_data ?? [], modelDir, this.name, expected);
    } else {
      this.external = null;
      this.checkInlineSize();
    }
  }

  get dtypeName(): string {
    return dtypeName(this.dtype);
  }

  get isFloat(): boolean {
    return isFloatType(this.dtype);
  }

  /** Bytes the tensor's values occupy (in the file, whether inline or external). */
  get byteLength(): number {
    if (this.external) return this.external.length;
    if (this.proto.raw_data && this.proto.raw_data.length > 0) return this.proto.raw_data.length;
    return byteLength(this.dtype, this.count);
  }

  private hasRaw(): boolean {
    return this.proto.raw_data !== undefined && this.proto.raw_data !== null && this.proto.raw_data.length > 0;
  }

  private checkInlineSize(): void {
    if (this.dtype === DataType.STRING || this.dtype === DataType.UNDEFINED) return;
    if (dtypeBits(this.dtype) === 0) throw new ModelError(`tensor ${q(this.name)} has unsupported data type ${this.dtype}`);
    if (this.hasRaw()) {
      const want = byteLength(this.dtype, this.count);
      if (this.proto.raw_data!.length !== want) {
        throw new ModelError(
          `tensor ${q(this.name)} raw_data has ${this.proto.raw_data!.length} bytes, its shape needs ${want}`,
        );
      }
      return;
    }
    const n = this.typedFieldLength();
    const perField = subBytePerField(this.dtype);
    const need = Math.ceil(this.count / perField);
    // An empty field with a non-empty shape is how some exporters write all-default data
    // (rare, but legal for zero-size tensors only); anything else must match the shape.
    if (n !== need && !(n === 0 && this.count === 0)) {
      throw new ModelError(`tensor ${q(this.name)} holds ${n} values, its shape ${JSON.stringify(this.dims)} needs ${need}`);
    }
  }

  private typedFieldLength(): number {
    const p = this.proto;
    switch (this.dtype) {
      case DataType.FLOAT:
        return p.float_data?.length ?? 0;
      case DataType.DOUBLE:
        return p.double_data?.length ?? 0;
      case DataType.INT64:
        return p.int64_data?.length ?? 0;
      case DataType.UINT32:
      case DataType.UINT64:
        return p.uint64_data?.length ?? 0;
      case DataType.STRING:
        return p.string_data?.length ?? 0;
      default:
        return p.int32_data?.length ?? 0;
    }
  }

  /** The raw little-endian bytes (inline: a view; external: read now). */
  rawBytes(): Uint8Array {
    if (this.external) return readRange(this.external.file, this.external.offset, this.external.length);
    if (this.hasRaw()) return this.proto.raw_data!;
    return encodeTypedFieldsAsRaw(this.proto, this.dtype, this.count);
  }

  /** All values as float64 (floats decoded exactly; integers and bools as numbers). */
  toFloat64(): Float64Array {
    if (this.count > MAX_DECODE_ELEMENTS) {
      throw new ModelError(`tensor ${q(this.name)} has ${this.count} elements: too large to decode at once`);
    }
    if (this.dtype === DataType.STRING) throw new ModelError(`tensor ${q(this.name)} holds strings, not numbers`);
    if (!this.external && !this.hasRaw()) return decodeTypedFields(this.proto, this.dtype, this.count);
    return decodeRaw(this.rawBytes(), this.dtype, this.count);
  }

  /** Integer values as JavaScript numbers (int64 beyond 2^53 lose precision: fine for shapes). */
  toNumbers(): number[] {
    return Array.from(this.toFloat64());
  }

  /**
   * Stream the values in float64 chunks of at most ~chunkBytes of source data, reading
   * external data piece by piece, so memory stays bounded whatever the tensor's size.
   */
  *chunks(chunkBytes = DEFAULT_CHUNK_BYTES): Generator<Float64Array> {
    if (this.dtype === DataType.STRING) return;
    if (!this.external) {
      yield this.toFloat64();
      return;
    }
    const bits = dtypeBits(this.dtype);
    // Whole elements per chunk, and an even count so packed 4-bit pairs never split.
    const bytesPerUnit = Math.max(1, bits / 8);
    const unit = bits < 8 ? 1 : bytesPerUnit;
    const chunk = Math.max(unit, Math.floor(chunkBytes / unit) * unit);
    let remaining = this.count;
    for (const bytes of readRangeChunks(this.external.file, this.external.offset, this.external.length, chunk)) {
      const n = Math.min(remaining, Math.floor((bytes.length * 8) / bits));
      yield decodeRaw(bytes, this.dtype, n);
      remaining -= n;
    }
  }
}

/** How many elements one typed-field entry carries (4-bit types pack two per int32 entry). */
function subBytePerField(dtype: number): number {
  const bits = dtypeBits(dtype);
  return bits === 4 ? 2 : bits === 2 ? 4 : 1;
}

const lookupTables = new Map<number, Float64Array>();
/** Value of every code of a ≤16-bit float type, built once from the format's definition. */
function lookupTable(dtype: number): Float64Array {
  let t = lookupTables.get(dtype);
  if (!t) {
    const f = formatForOnnxType(dtype);
    if (!f) throw new ModelError(`no decoder for data type ${dtypeName(dtype)}`);
    const n = 1 << f.bits;
    t = new Float64Array(n);
    for (let c = 0; c < n; c++) t[c] = decodeCode(c, f);
    lookupTables.set(dtype, t);
  }
  return t;
}

function e8m0(code: number): number {
  // FLOAT8E8M0: a pure power of two 2^(code-127); 0xFF is NaN.
  return code === 0xff ? NaN : 2 ** (code - 127);
}

export function decodeRaw(bytes: Uint8Array, dtype: number, count: number): Float64Array {
  const out = new Float64Array(count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case DataType.FLOAT:
      if (bytes.byteOffset % 4 === 0) out.set(new Float32Array(bytes.buffer, bytes.byteOffset, count));
      else for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case DataType.DOUBLE:
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case DataType.INT8:
      for (let i = 0; i < count; i++) out[i] = dv.getInt8(i);
      break;
    case DataType.UINT8:
    case DataType.BOOL:
      for (let i = 0; i < count; i++) out[i] = bytes[i]!;
      break;
    case DataType.INT16:
      for (let i = 0; i < count; i++) out[i] = dv.getInt16(i * 2, true);
      break;
    case DataType.UINT16:
      for (let i = 0; i < count; i++) out[i] = dv.getUint16(i * 2, true);
      break;
    case DataType.INT32:
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(i * 4, true);
      break;
    case DataType.UINT32:
      for (let i = 0; i < count; i++) out[i] = dv.getUint32(i * 4, true);
      break;
    case DataType.INT64:
      for (let i = 0; i < count; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      break;
    case DataType.UINT64:
      for (let i = 0; i < count; i++) out[i] = Number(dv.getBigUint64(i * 8, true));
      break;
    case DataType.FLOAT16:
    case DataType.BFLOAT16: {
      const t = lookupTable(dtype);
      for (let i = 0; i < count; i++) out[i] = t[dv.getUint16(i * 2, true)]!;
      break;
    }
    case DataType.FLOAT8E4M3FN:
    case DataType.FLOAT8E4M3FNUZ:
    case DataType.FLOAT8E5M2:
    case DataType.FLOAT8E5M2FNUZ: {
      const t = lookupTable(dtype);
      for (let i = 0; i < count; i++) out[i] = t[bytes[i]!]!;
      break;
    }
    case DataType.FLOAT8E8M0:
      for (let i = 0; i < count; i++) out[i] = e8m0(bytes[i]!);
      break;
    case DataType.INT4:
    case DataType.UINT4:
    case DataType.FLOAT4E2M1:
      for (let i = 0; i < count; i++) out[i] = nibble(bytes[i >> 1]!, i & 1, dtype);
      break;
    default:
      throw new ModelError(`cannot decode data type ${dtypeName(dtype)}`);
  }
  return out;
}

/** Element `half` (0 = low nibble, first element) of a packed 4-bit byte. */
function nibble(byte: number, half: number, dtype: number): number {
  const v = half === 0 ? byte & 0x0f : byte >> 4;
  if (dtype === DataType.UINT4) return v;
  if (dtype === DataType.INT4) return v >= 8 ? v - 16 : v;
  return lookupTable(DataType.FLOAT4E2M1)[v]!;
}

function decodeTypedFields(p: TensorProto, dtype: number, count: number): Float64Array {
  const out = new Float64Array(count);
  switch (dtype) {
    case DataType.FLOAT:
      out.set((p.float_data ?? []).slice(0, count));
      return out;
    case DataType.DOUBLE:
      out.set((p.double_data ?? []).slice(0, count));
      return out;
    case DataType.INT64: {
      const src = p.int64_data ?? [];
      for (let i = 0; i < count; i++) out[i] = toNumber(src[i]);
      return out;
    }
    case DataType.UINT32:
    case DataType.UINT64: {
      const src = p.uint64_data ?? [];
      for (let i = 0; i < count; i++) out[i] = toNumber(src[i]);
      return out;
    }
    default: {
      const src = p.int32_data ?? [];
      const bits = dtypeBits(dtype);
      if (bits === 16 && (dtype === DataType.FLOAT16 || dtype === DataType.BFLOAT16)) {
        const t = lookupTable(dtype);
        for (let i = 0; i < count; i++) out[i] = t[src[i]! & 0xffff]!;
        return out;
      }
      if (bits === 8 && isFloatType(dtype)) {
        if (dtype === DataType.FLOAT8E8M0) for (let i = 0; i < count; i++) out[i] = e8m0(src[i]! & 0xff);
        else {
          const t = lookupTable(dtype);
          for (let i = 0; i < count; i++) out[i] = t[src[i]! & 0xff]!;
        }
        return out;
      }
      if (bits === 4) {
        for (let i = 0; i < count; i++) out[i] = nibble(src[i >> 1]! & 0xff, i & 1, dtype);
        return out;
      }
      for (let i = 0; i < count; i++) out[i] = src[i]!;
      return out;
    }
  }
}

/** Raw little-endian bytes of a tensor stored in typed fields (for hashing and rewriting). */
function encodeTypedFieldsAsRaw(p: TensorProto, dtype: number, count: number): Uint8Array {
  const bytes = new Uint8Array(byteLength(dtype, count));
  const dv = new DataView(bytes.buffer);
  const bits = dtypeBits(dtype);
  if (dtype === DataType.FLOAT) (p.float_data ?? []).forEach((v, i) => dv.setFloat32(i * 4, v, true));
  else if (dtype === DataType.DOUBLE) (p.double_data ?? []).forEach((v, i) => dv.setFloat64(i * 8, v, true));
  else if (dtype === DataType.INT64) (p.int64_data ?? []).forEach((v, i) => dv.setBigInt64(i * 8, BigInt(String(v)), true));
  else if (dtype === DataType.UINT64) (p.uint64_data ?? []).forEach((v, i) => dv.setBigUint64(i * 8, BigInt(String(v)), true));
  else if (dtype === DataType.UINT32) (p.uint64_data ?? []).forEach((v, i) => dv.setUint32(i * 4, toNumber(v), true));
  else {
    const src = p.int32_data ?? [];
    if (bits === 4) src.forEach((v, i) => (bytes[i] = v & 0xff));
    else if (bits === 8) src.forEach((v, i) => (bytes[i] = v & 0xff));
    else if (bits === 16) src.forEach((v, i) => dv.setUint16(i * 2, v & 0xffff, true));
    else if (bits === 32) src.forEach((v, i) => dv.setInt32(i * 4, v, true));
    else throw new ModelError(`cannot re-encode data type ${dtypeName(dtype)}`);
  }
  return bytes;
}

/** A fresh float32 / int64 TensorProto with raw little-endian data (for builders and rewrites). */
export function makeTensorProto(name: string, dtype: number, dims: number[], values: ArrayLike<number>): TensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (values.length !== count) throw new Error(`makeTensorProto(${name}): ${values.length} values for shape ${dims}`);
  let raw: Uint8Array;
  if (dtype === DataType.FLOAT) raw = new Uint8Array(Float32Array.from(values).buffer);
  else if (dtype === DataType.DOUBLE) raw = new Uint8Array(Float64Array.from(values).buffer);
  else if (dtype === DataType.INT64) raw = new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v)))).buffer);
  else if (dtype === DataType.INT32) raw = new Uint8Array(Int32Array.from(values).buffer);
  else if (dtype === DataType.BOOL || dtype === DataType.UINT8) raw = Uint8Array.from(values);
  else if (dtype === DataType.INT8) raw = new Uint8Array(Int8Array.from(values).buffer);
  else throw new Error(`makeTensorProto(${name}): use makeTensorProtoFromBytes for ${dtypeName(dtype)}`);
  return { name, data_type: dtype, dims, raw_data: raw };
}

export function makeTensorProtoFromBytes(name: string, dtype: number, dims: number[], raw: Uint8Array): TensorProto {
  return { name, data_type: dtype, dims, raw_data: raw };
}
