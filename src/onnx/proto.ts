/**
 * ONNX protobuf codec on protobufjs, with the schema parsed at run time from onnx.proto.
 *
 * Why a runtime schema and not generated static code: protobufjs compiles the decoder and
 * encoder of each message type to JavaScript on first use, so the speed is that of static
 * code (measured in bench/RESULTS.md), while the schema stays one readable .proto file that
 * follows upstream ONNX. `bytes` fields decode to views into the input buffer (no copy),
 * which keeps loading of large models lean.
 */
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import Long from 'long';
import type { ModelProto, TensorProto } from './proto-types.js';

// int64 fields decode to Long so that values past 2^53 (INT64_MAX in Slice ends) survive a
// round trip bit-exactly; `toNumber` below converts where a JavaScript number is enough.
protobuf.util.Long = Long as unknown as typeof protobuf.util.Long;
protobuf.configure();

const SCHEMA_URL = new URL('../../src/onnx/onnx.proto', import.meta.url);

let root: protobuf.Root | null = null;
function schema(): protobuf.Root {
  if (!root) {
    const parsed = protobuf.parse(readFileSync(SCHEMA_URL, 'utf8'), { keepCase: true });
    root = parsed.root;
  }
  return root;
}

export function messageType(name: string): protobuf.Type {
  return schema().lookupType(`onnx.${name}`);
}

export function decodeModelProto(bytes: Uint8Array): ModelProto {
  return messageType('ModelProto').decode(bytes) as unknown as ModelProto;
}

export function encodeModelProto(model: ModelProto): Uint8Array {
  return messageType('ModelProto').encode(model as unknown as protobuf.Message).finish();
}

export function decodeTensorProto(bytes: Uint8Array): TensorProto {
  return messageType('TensorProto').decode(bytes) as unknown as TensorProto;
}

export function encodeTensorProto(t: TensorProto): Uint8Array {
  return messageType('TensorProto').encode(t as unknown as protobuf.Message).finish();
}

/** Plain-object form of any message (for deep comparison in round-trip checks). */
export function toPlainObject(typeName: string, msg: unknown): Record<string, unknown> {
  const type = messageType(typeName);
  return type.toObject(msg as protobuf.Message, { longs: String, bytes: String, defaults: false, arrays: false, oneofs: false });
}

export function create<T>(typeName: string, fields: Partial<T>): T {
  return messageType(typeName).create(fields as Record<string, unknown>) as unknown as T;
}

export type Int64 = number | Long | null | undefined;

export function toNumber(v: Int64): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  return v.toNumber();
}

export function toBigInt(v: Int64): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'number') return BigInt(v);
  return BigInt(v.toString());
}

export { Long };
