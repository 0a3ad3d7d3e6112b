/** Builders for small in-memory models, and a one-node inference shortcut, for the shape tests. */
import { inferShapes, type InferOptions, type ShapeResult } from '../../../src/analysis/shapes/infer.js';
import { DataType } from '../../../src/onnx/dtype.js';
import { type Dim, Model, type TensorType } from '../../../src/onnx/model.js';
import {
  type AttributeProto,
  AttributeType,
  type GraphProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from '../../../src/onnx/proto-types.js';
import { makeTensorProto } from '../../../src/onnx/tensor.js';

export const F = DataType.FLOAT;
export const I64 = DataType.INT64;
export const BOOL = DataType.BOOL;

/** A value declaration; shape null = unknown rank. */
export function vi(name: string, dtype: number, shape: Dim[] | null): ValueInfoProto {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: dtype,
        ...(shape ? { shape: { dim: shape.map((d) => (typeof d === 'number' ? { dim_value: d } : d ? { dim_param: d } : {})) } } : {}),
      },
    },
  };
}

/** A sequence value declaration: its elements' tensor type. */
export function seqVi(name: string, dtype: number, shape: Dim[] | null): ValueInfoProto {
  return { name, type: { sequence_type: { elem_type: vi(name, dtype, shape).type } } };
}

/** An optional value declaration wrapping `inner` (a tensor or sequence declaration). */
export function optVi(inner: ValueInfoProto): ValueInfoProto {
  return { name: inner.name, type: { optional_type: { elem_type: inner.type } } };
}

/** Marks a float attribute (plain numbers become INT attributes). */
export class FloatAttr {
  constructor(readonly values: number[]) {}
}
export const f = (v: number) => new FloatAttr([v]);
export const floats = (v: number[]) => new FloatAttr(v);

export type AttrValue = number | number[] | string | string[] | FloatAttr | TensorProto | GraphProto;

function toAttr(name: string, v: AttrValue): AttributeProto {
  const enc = new TextEncoder();
  if (v instanceof FloatAttr) {
    return v.values.length === 1 ? { name, type: AttributeType.FLOAT, f: v.values[0] } : { name, type: AttributeType.FLOATS, floats: v.values };
  }
  if (typeof v === 'number') return { name, type: AttributeType.INT, i: v };
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: enc.encode(v) };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return { name, type: AttributeType.STRINGS, strings: (v as string[]).map((s) => enc.encode(s)) };
    return { name, type: AttributeType.INTS, ints: v as number[] };
  }
  if ('data_type' in v) return { name, type: AttributeType.TENSOR, t: v };
  return { name, type: AttributeType.GRAPH, g: v as GraphProto };
}

export function node(op: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, domain?: string): NodeProto {
  return {
    op_type: op,
    input: inputs,
    output: outputs,
    name: `${op}_${outputs[0] ?? ''}`,
    attribute: Object.entries(attrs).map(([k, v]) => toAttr(k, v)),
    ...(domain ? { domain } : {}),
  };
}

export function int64s(name: string, values: number[], dims: number[] = [values.length]): TensorProto {
  return makeTensorProto(name, I64, dims, values);
}

export function floatTensor(name: string, values: number[], dims: number[] = [values.length]): TensorProto {
  return makeTensorProto(name, F, dims, values);
}

export interface GraphSpec {
  inputs: ValueInfoProto[];
  nodes: NodeProto[];
  outputs?: ValueInfoProto[];
  initializers?: TensorProto[];
  valueInfo?: ValueInfoProto[];
  name?: string;
}

export function graph(spec: GraphSpec): GraphProto {
  return {
    name: spec.name ?? 'g',
    input: spec.inputs,
    output: spec.outputs ?? [],
    node: spec.nodes,
    initializer: spec.initializers ?? [],
    value_info: spec.valueInfo ?? [],
  };
}

export function model(spec: GraphSpec & { opset?: number; ir?: number; extraOpsets?: Record<string, number> }): Model {
  const opsets = [{ domain: '', version: spec.opset ?? 17 }, ...Object.entries(spec.extraOpsets ?? {}).map(([domain, version]) => ({ domain, version }))];
  return new Model({ ir_version: spec.ir ?? 8, opset_import: opsets, graph: graph(spec) }, null, null);
}

export function infer(spec: GraphSpec & { opset?: number }, opts?: InferOptions): ShapeResult {
  return inferShapes(model(spec), { useDeclared: false, ...opts });
}

/** Input tensors for `one`: a type, or a constant (becomes an initializer). */
export type Operand = TensorType | { value: TensorProto } | null;

/**
 * Infers a single node: operands are typed graph inputs (or initializers for `{ value }`,
 * '' for null). Returns the output types in order.
 */
export function one(op: string, operands: Operand[], attrs: Record<string, AttrValue> = {}, opts: { opset?: number; outputs?: number; domain?: string } = {}): (TensorType | null)[] {
  const inputs: ValueInfoProto[] = [];
  const initializers: TensorProto[] = [];
  const names = operands.map((o, i) => {
    if (o === null) return '';
    const name = `in${i}`;
    if ('value' in o) initializers.push({ ...o.value, name });
    else inputs.push(vi(name, o.dtype, o.shape));
    return name;
  });
  const outs = Array.from({ length: opts.outputs ?? 1 }, (_, i) => `out${i}`);
  const extra = opts.domain ? { [opts.domain]: 1 } : {};
  const r = inferShapes(model({ inputs, initializers, nodes: [node(op, names, outs, attrs, opts.domain)], opset: opts.opset, extraOpsets: extra }), { useDeclared: false });
  if (r.unsupported.size > 0) throw new Error(`unsupported: ${[...r.unsupported.keys()].join(', ')}`);
  return outs.map((o) => r.types.get(o) ?? null);
}

/** Shorthand: the output shapes of `one`. */
export function shapes(...args: Parameters<typeof one>): (Dim[] | null)[] {
  return one(...args).map((t) => t?.shape ?? null);
}

export const t = (shape: Dim[] | null, dtype: number = F): TensorType => ({ dtype, shape });
export const c = (values: number[], dims?: number[]): { value: TensorProto } => ({ value: int64s('', values, dims) });
export const cf = (values: number[], dims?: number[]): { value: TensorProto } => ({ value: floatTensor('', values, dims) });
