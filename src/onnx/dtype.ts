/** ONNX TensorProto.DataType codes and what unitscale needs to know about each. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
  UINT2: 25,
  INT2: 26,
} as const;
export type DataTypeCode = number;

const NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(DataType).map(([k, v]) => [v, k.toLowerCase()]),
);

export function dtypeName(code: number): string {
  return NAMES[code] ?? `dtype${code}`;
}

/** Bits per element in raw_data (sub-byte types are packed two or four to a byte). */
export function dtypeBits(code: number): number {
  switch (code) {
    case DataType.BOOL:
    case DataType.UINT8:
    case DataType.INT8:
    case DataType.FLOAT8E4M3FN:
    case DataType.FLOAT8E4M3FNUZ:
    case DataType.FLOAT8E5M2:
    case DataType.FLOAT8E5M2FNUZ:
    case DataType.FLOAT8E8M0:
      return 8;
    case DataType.UINT16:
    case DataType.INT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return 16;
    case DataType.FLOAT:
    case DataType.INT32:
    case DataType.UINT32:
      return 32;
    case DataType.INT64:
    case DataType.UINT64:
    case DataType.DOUBLE:
    case DataType.COMPLEX64:
      return 64;
    case DataType.COMPLEX128:
      return 128;
    case DataType.UINT4:
    case DataType.INT4:
    case DataType.FLOAT4E2M1:
      return 4;
    case DataType.UINT2:
    case DataType.INT2:
      return 2;
    default:
      return 0; // STRING, UNDEFINED: no fixed width
  }
}

/** Real floating-point types: the tensors whose scale unitscale reports. */
export function isFloatType(code: number): boolean {
  return (
    code === DataType.FLOAT ||
    code === DataType.DOUBLE ||
    code === DataType.FLOAT16 ||
    code === DataType.BFLOAT16 ||
    code === DataType.FLOAT8E4M3FN ||
    code === DataType.FLOAT8E4M3FNUZ ||
    code === DataType.FLOAT8E5M2 ||
    code === DataType.FLOAT8E5M2FNUZ ||
    code === DataType.FLOAT4E2M1 ||
    code === DataType.FLOAT8E8M0
  );
}

export function isIntegerType(code: number): boolean {
  return (
    code === DataType.UINT8 ||
    code === DataType.INT8 ||
    code === DataType.UINT16 ||
    code === DataType.INT16 ||
    code === DataType.INT32 ||
    code === DataType.INT64 ||
    code === DataType.UINT32 ||
    code === DataType.UINT64 ||
    code === DataType.UINT4 ||
    code === DataType.INT4 ||
    code === DataType.UINT2 ||
    code === DataType.INT2
  );
}

/** Byte length of `count` packed elements (sub-byte types round up to whole bytes). */
export function byteLength(code: number, count: number): number {
  return Math.ceil((dtypeBits(code) * count) / 8);
}
