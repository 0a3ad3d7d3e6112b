/**
 * Optimizer ops of the ai.onnx.preview.training domain
 * (https://onnx.ai/onnx/operators/onnx_aionnxpreviewtraining_Adam.html and neighbours). Their
 * inputs are the learning rate R, the update count T, then n tensors per group (X…, G…, then
 * the optimizer's state); each output is the new value of one X or state tensor, shaped like it.
 */
import { fail, sameAs, type ShapeContext, type ShapeRule, type ShapeTable } from './types.js';

/**
 * An optimizer whose inputs after R and T are `groups` groups of n tensors (X, G, state…) and
 * whose outputs are the new X then each new state, n per group: output group k (k = 0 for X)
 * is shaped like input group `outputOf[k]`.
 */
function optimizer(groups: number, outputOf: number[]): ShapeRule {
  return {
    shape: (ctx: ShapeContext) => {
      const tensors = ctx.node.inputs.length - 2;
      if (tensors <= 0 || tensors % groups !== 0) fail(ctx, `${ctx.node.inputs.length} inputs; expected R, T and ${groups} groups of n tensors`);
      const n = tensors / groups;
      return outputOf.flatMap((g) => Array.from({ length: n }, (_, i) => sameAs(ctx, 2 + g * n + i)));
    },
  };
}

export const shapes: ShapeTable = {
  /** Adagrad(R, T, X…, G…, H…) → X_new…, H_new…. */
  Adagrad: optimizer(3, [0, 2]),
  /** Adam(R, T, X…, G…, V…, H…) → X_new…, V_new…, H_new…. */
  Adam: optimizer(4, [0, 2, 3]),
  /** Momentum(R, T, X…, G…, V…) → X_new…, V_new…. */
  Momentum: optimizer(3, [0, 2]),
};
