/**
 * Loss ops (https://onnx.ai/onnx/operators/onnx__SoftmaxCrossEntropyLoss.html,
 * onnx__NegativeLogLikelihoodLoss.html): scores [N, C, D1…Dk], integer labels [N, D1…Dk]. The
 * loss has the labels' shape when reduction="none", else it is a scalar (mean, the default, or
 * sum).
 */
import type { Dim } from '../../onnx/model.js';
import { dtypeOf, fail, sameAs, type ShapeContext, type ShapeRule, type ShapeTable, shapeOf, tensor, unifyDim } from './types.js';

/**
 * The unreduced loss's shape: the labels', completed from the scores' [N, D1…Dk] where the
 * labels' dims are unknown (the two must agree).
 */
function perElementShape(ctx: ShapeContext): Dim[] | null {
  const scores = shapeOf(ctx, 0);
  const labels = shapeOf(ctx, 1);
  if (scores && scores.length < 2) fail(ctx, `scores of rank ${scores.length}; expected [N, C, D1…Dk]`);
  const fromScores = scores ? [scores[0]!, ...scores.slice(2)] : null;
  if (!labels) return fromScores;
  if (!fromScores) return [...labels];
  if (labels.length !== fromScores.length) fail(ctx, `labels of rank ${labels.length} for scores of rank ${scores!.length}`);
  return labels.map((d, i) => {
    const u = unifyDim(d, fromScores[i]!);
    if (u === undefined) fail(ctx, `labels dim ${i} is ${d} but the scores say ${fromScores[i]}`);
    return u;
  });
}

function loss(ctx: ShapeContext) {
  const reduction = ctx.attrs.string('reduction', 'mean');
  const shape = perElementShape(ctx);
  return tensor(dtypeOf(ctx, 0), reduction === 'none' ? shape : []);
}

/** NegativeLogLikelihoodLoss(input, target[, weight]): the loss. */
const nllLoss: ShapeRule = { shape: (ctx) => [loss(ctx)] };

/** SoftmaxCrossEntropyLoss(scores, labels[, weights]): the loss, and log_prob shaped like the scores. */
const softmaxCrossEntropyLoss: ShapeRule = { shape: (ctx) => [loss(ctx), sameAs(ctx, 0)] };

export const shapes: ShapeTable = {
  NegativeLogLikelihoodLoss: nllLoss,
  SoftmaxCrossEntropyLoss: softmaxCrossEntropyLoss,
};
