/**
 * The contract of an op rule (PRIMER §3–4). One registry maps op type → rule; a rule is a pure
 * function from what is known about the inputs to what follows for the outputs, in the manner
 * of the ONNX reference evaluator (one uniform signature) and Graphcore unit-scaling's
 * functional ops (each op next to its scaling maths).
 */
import type { Attributes } from '../../onnx/attributes.js';
import type { Node, TensorType } from '../../onnx/model.js';
import type { TensorData } from '../../onnx/tensor.js';
import type { ChannelStats } from '../channels.js';
import type { ConstValue } from '../shapes/types.js';
import type { Scale } from '../scale.js';

export interface RuleContext {
  node: Node;
  attrs: Attributes;
  /** Opset of the node's domain. */
  opset: number;
  /** Scales of the inputs; null for omitted inputs and non-float tensors (ids, shapes, masks of bool type). */
  inputs: (Scale | null)[];
  inputTypes: (TensorType | null)[];
  outputTypes: (TensorType | null)[];
  /** The input's tensor when it is a compile-time constant (initializer or Constant node). */
  constant(index: number): TensorData | null;
  /** Folded small values (shape arithmetic) from shape inference. */
  constValue(index: number): ConstValue | null;
  /**
   * Control flow (forward pass): propagate the subgraph held by attribute `attribute` (If
   * branches, Loop/Scan `body`) with its formal inputs at `inputScales` (null: no scale, e.g. an
   * iteration count) and the enclosing scopes' values visible; returns the scales of the
   * subgraph's outputs. Absent where the engine does not offer it (backward pass, rule tests).
   * Throws when the subgraph cannot be analysed.
   */
  subgraph?(attribute: string, inputScales: (Scale | null)[]): (Scale | null)[];
}

export type ForwardRule = (ctx: RuleContext) => (Scale | null)[];

export interface BackwardContext extends RuleContext {
  /** Forward scales of this node's outputs. */
  outputs: (Scale | null)[];
  /**
   * Scales of the gradients arriving at each output (null: no gradient flows there). A gradient
   * may carry `coherent` (coherence.ts): a share of it constant along some axes.
   */
  outputGrads: (Scale | null)[];
  /** Channel-resolved forward statistics of input i (channels.ts), when known. */
  channels?(index: number): ChannelStats | null;
}

/** Gradient scales for each input (null: not differentiable / no gradient). */
export type BackwardRule = (ctx: BackwardContext) => (Scale | null)[];

/**
 * Fan-in reductions of stored operands a rule will ask `sliceSums` for (weights.ts): for input
 * `input`, sums over the axes [from, to) of its dims. The weight pass (weight-pass.ts) computes
 * them during its single parallel read of the weights. A hint only: anything not declared is
 * computed when asked, at the cost of another read.
 */
export interface StoredRead {
  input: number;
  from: number;
  to: number;
}

/** `stored(i)`: the dims of input i when it is a stored tensor, else null. */
export type StoredReads = (node: Node, attrs: Attributes, stored: (i: number) => number[] | null) => StoredRead[];

export interface OpRule {
  forward: ForwardRule;
  backward?: BackwardRule;
  reads?: StoredReads;
}

/** What each family file exports: `export const rules: RuleTable = { MatMul: {...}, ... }`. */
export type RuleTable = Record<string, OpRule>;
