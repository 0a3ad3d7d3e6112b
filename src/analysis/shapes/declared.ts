/**
 * The types a graph declares (inputs, outputs, value_info), read straight from the protobuf.
 *
 * Why not Graph.declaredTypes: protobufjs gives absent proto2 fields their default through the
 * prototype, so `dim.dim_value` reads 0 on a dim that only has a dim_param (or neither); the
 * check must be for an own property. Also applies `--dim name=value` overrides.
 */
import type { Dim, Graph, TensorType } from '../../onnx/model.js';
import { toNumber } from '../../onnx/proto.js';
import type { TensorShapeDimension, TypeProto } from '../../onnx/proto-types.js';
import { dimMul, type SequenceType } from './types.js';

function own(o: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key) && (o as Record<string, unknown>)[key] !== null && (o as Record<string, unknown>)[key] !== undefined;
}

function readDim(d: TensorShapeDimension): Dim {
  if (d.dim_param) return d.dim_param;
  if (own(d, 'dim_value')) return toNumber(d.dim_value);
  return null;
}

/**
 * A TypeProto's tensor type, or null (sequences, maps, absent). An optional tensor reads as the
 * tensor it may hold (Optional/OptionalGetElement pass that type through).
 */
export function readType(t: TypeProto | undefined | null): TensorType | null {
  if (t?.optional_type) t = t.optional_type.elem_type;
  const tt = t?.tensor_type ?? t?.sparse_tensor_type;
  if (!tt) return null;
  const shape = tt.shape ? (tt.shape.dim ?? []).map(readDim) : null;
  return { dtype: tt.elem_type ?? 0, shape };
}

/**
 * A TypeProto's sequence type (also inside an optional): the element type its elements share,
 * length unknown; null for anything else.
 */
export function readSequenceType(t: TypeProto | undefined | null): SequenceType | null {
  if (t?.optional_type) t = t.optional_type.elem_type;
  if (!t?.sequence_type) return null;
  return { sequence: true, elem: readType(t.sequence_type.elem_type), items: null };
}

/** Replaces symbols named in `dims` (also inside products like "batch*seq") by their values. */
export function substituteDims(t: TensorType, dims: Record<string, number> | undefined): TensorType {
  if (!dims || !t.shape || Object.keys(dims).length === 0) return t;
  return { dtype: t.dtype, shape: t.shape.map((d) => substituteDim(d, dims)) };
}

export function substituteDim(d: Dim, dims: Record<string, number>): Dim {
  if (typeof d !== 'string') return d;
  if (d in dims) return dims[d]!;
  if (!d.includes('*')) return d;
  return d.split('*').reduce<Dim>((acc, part) => dimMul(acc, part in dims ? dims[part]! : /^\d+$/.test(part) ? Number(part) : part), 1);
}

/** Declared tensor types of a graph's values (not its nested subgraphs), overrides applied. */
export function readDeclared(graph: Graph, dims?: Record<string, number>): Map<string, TensorType> {
  const out = new Map<string, TensorType>();
  const p = graph.proto;
  for (const vi of [...(p.input ?? []), ...(p.output ?? []), ...(p.value_info ?? [])]) {
    const t = readType(vi.type);
    if (vi.name && t) out.set(vi.name, substituteDims(t, dims));
  }
  return out;
}

/** Is this declared value a sequence (so a tensor type is not expected for it)? */
export function declaresSequence(graph: Graph, name: string): boolean {
  const p = graph.proto;
  return [...(p.input ?? []), ...(p.output ?? []), ...(p.value_info ?? [])].some((vi) => vi.name === name && !!vi.type?.sequence_type);
}
