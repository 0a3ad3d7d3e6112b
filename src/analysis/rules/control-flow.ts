/**
 * Control flow (If, Loop, Scan). Their outputs are produced by subgraphs, and a rule sees only
 * the node's own inputs — not the scales of the values a branch body computes or captures from
 * the enclosing graph. Until the engine offers a hook to analyse a subgraph (proposed:
 * `RuleContext.subgraph?(attribute, inputScales) → output scales`, see the family owner's
 * report), every float output is reported as unknown with a note saying why, and which branch
 * of an If with a constant condition would run.
 */
import { unknownScale } from '../scale.js';
import { constantScalar, outputIsFloat } from './shape-ops.js';
import type { OpRule, RuleTable } from './types.js';

const ifRule: OpRule = {
  forward: (ctx) => {
    const cond = constantScalar(ctx, 0);
    const which = cond === undefined ? 'condition not constant: the larger-RMS branch would be taken, with low confidence' : `condition is constant: the ${cond ? 'then' : 'else'} branch runs`;
    return ctx.node.outputs.map((_, i) => (outputIsFloat(ctx, i) ? unknownScale(`If: subgraph outputs are not analysed yet (${which})`) : null));
  },
};

const bodyRule = (op: string): OpRule => ({
  forward: (ctx) => ctx.node.outputs.map((_, i) => (outputIsFloat(ctx, i) ? unknownScale(`${op}: subgraph outputs are not analysed yet`) : null)),
});

export const rules: RuleTable = {
  If: ifRule,
  Loop: bodyRule('Loop'),
  Scan: bodyRule('Scan'),
};
