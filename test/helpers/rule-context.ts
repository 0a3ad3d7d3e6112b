/**
 * Build a RuleContext / BackwardContext for one node, for rule tests: a one-node in-memory
 * model (so attributes, constants and the Node are the real classes), with the inputs'
 * scales and types given directly.
 */
import type { BackwardContext, RuleContext } from '../../src/analysis/rules/types.js';
import type { Scale } from '../../src/analysis/scale.js';
import { gaussianScale } from '../../src/analysis/scale.js';
import { DataType } from '../../src/onnx/dtype.js';
import { Model, type Dim, type TensorType } from '../../src/onnx/model.js';
import { AttributeType, type AttributeProto, type ModelProto, type TensorProto } from '../../src/onnx/proto-types.js';
import { makeTensorProto } from '../../src/onnx/tensor.js';

const utf8 = new TextEncoder();

export type AttrValue = number | string | number[] | string[] | TensorProto | { float: number } | { floats: number[] };

/** Integers become INT/INTS, other numbers FLOAT/FLOATS; `{float: 1}` forces a float. */
export function attr(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: utf8.encode(v) };
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: AttributeType.INT, i: v } : { name, type: AttributeType.FLOAT, f: v };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return { name, type: AttributeType.STRINGS, strings: (v as string[]).map((s) => utf8.encode(s)) };
    const nums = v as number[];
    return nums.every(Number.isInteger) ? { name, type: AttributeType.INTS, ints: nums } : { name, type: AttributeType.FLOATS, floats: nums };
  }
  if ('float' in v) return { name, type: AttributeType.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: AttributeType.FLOATS, floats: v.floats };
  return { name, type: AttributeType.TENSOR, t: v };
}

export interface InputSpec {
  scale?: Scale | null;
  /** Shape (numbers or symbols); null: unknown rank. */
  shape?: Dim[] | null;
  dtype?: number;
  /** Constant values (an initializer): a TensorProto or plain numbers (float32 unless dtype says). */
  constant?: TensorProto | number[];
  /** Omitted optional input (''). */
  omitted?: boolean;
  /** In chainContexts: this input is the previous node's output 0. */
  fromPrevious?: boolean;
}

export interface NodeSpec {
  op: string;
  domain?: string;
  attrs?: Record<string, AttrValue>;
  inputs: InputSpec[];
  outputs?: { shape?: Dim[] | null; dtype?: number }[];
  opset?: number;
  /** Folded small values by input index (what shape inference would know). */
  constValues?: Record<number, unknown>;
}

export function ruleContext(spec: NodeSpec): RuleContext {
  return chainContexts([spec])[0]!;
}

/**
 * Contexts for a chain of nodes in one model: an input with `fromPrevious` reads the previous
 * node's output 0 (so rules that look at their producer see the real Node).
 */
export function chainContexts(specs: NodeSpec[]): RuleContext[] {
  const opset = specs[0]?.opset ?? 18;
  const initializers: TensorProto[] = [];
  const wiring = specs.map((spec, k) => {
    const inputNames = spec.inputs.map((inp, i) => {
      if (inp.omitted) return '';
      if (inp.fromPrevious && k > 0) return `n${k - 1}_out0`;
      const name = `n${k}_in${i}`;
      if (inp.constant) {
        const t = Array.isArray(inp.constant)
          ? makeTensorProto(name, inp.dtype ?? DataType.FLOAT, inp.shape?.every((d) => typeof d === 'number') ? (inp.shape as number[]) : [inp.constant.length], inp.constant)
          : { ...inp.constant, name };
        initializers.push(t);
      }
      return name;
    });
    const outCount = spec.outputs?.length ?? 1;
    return { inputNames, outputNames: Array.from({ length: outCount }, (_, i) => `n${k}_out${i}`) };
  });
  const proto: ModelProto = {
    ir_version: 10,
    opset_import: [{ domain: '', version: opset }],
    graph: {
      name: 'test',
      node: specs.map((spec, k) => ({
        op_type: spec.op,
        domain: spec.domain ?? '',
        input: wiring[k]!.inputNames,
        output: wiring[k]!.outputNames,
        attribute: Object.entries(spec.attrs ?? {}).map(([name, v]) => attr(name, v)),
      })),
      initializer: initializers,
    },
  };
  const model = new Model(proto, null, null);
  const typeOf = (inp: { shape?: Dim[] | null; dtype?: number } | undefined, constant?: TensorProto | number[]): TensorType | null => {
    if (!inp) return null;
    const shape = inp.shape !== undefined ? inp.shape : constant && !Array.isArray(constant) ? (constant.dims ?? []).map(Number) : null;
    return { dtype: inp.dtype ?? DataType.FLOAT, shape };
  };
  return specs.map((spec, k) => {
    const node = model.graph.nodes[k]!;
    const outCount = wiring[k]!.outputNames.length;
    return {
      node,
      attrs: node.attrs,
      opset: spec.opset ?? opset,
      inputs: spec.inputs.map((inp) => (inp.omitted ? null : inp.scale === undefined ? null : inp.scale)),
      inputTypes: spec.inputs.map((inp) => (inp.omitted ? null : typeOf(inp, inp.constant))),
      outputTypes: Array.from({ length: outCount }, (_, i) => (spec.outputs?.[i] ? typeOf(spec.outputs[i]) : null)),
      constant: (i: number) => {
        const name = node.inputs[i];
        return name ? model.graph.constant(name) : null;
      },
      constValue: (i: number) => (spec.constValues?.[i] ?? null) as never,
    };
  });
}

export function backwardContext(spec: NodeSpec, outputs: (Scale | null)[], outputGrads: (Scale | null)[]): BackwardContext {
  return { ...ruleContext(spec), outputs, outputGrads };
}

/** N(mean, std²) input of the given shape. */
export function gaussianInput(mean: number, std: number, shape: Dim[] | null = null): InputSpec {
  return { scale: gaussianScale(mean, std), shape };
}
