/**
 * The scale-rule registry: op type → OpRule, merged from the family tables (ARCHITECTURE: "the
 * registry is just the list of families"). Ops outside the default domain are registered by
 * their bare name (com.microsoft's SkipLayerNormalization & co); the engine looks up
 * "domain:Op" first, then "Op".
 */
import { rules as binary } from './rules/binary.js';
import { rules as controlFlow } from './rules/control-flow.js';
import { rules as conv } from './rules/conv.js';
import { rules as matmul } from './rules/matmul.js';
import { rules as misc } from './rules/misc.js';
import { rules as normalization } from './rules/normalization.js';
import { rules as pooling } from './rules/pooling.js';
import { rules as quantization } from './rules/quantization.js';
import { rules as reduce } from './rules/reduce.js';
import { rules as shapeOps } from './rules/shape-ops.js';
import { rules as softmax } from './rules/softmax.js';
import type { OpRule, RuleTable } from './rules/types.js';
import { rules as unary } from './rules/unary.js';

const FAMILIES: [string, RuleTable][] = [
  ['matmul', matmul],
  ['conv', conv],
  ['normalization', normalization],
  ['softmax', softmax],
  ['binary', binary],
  ['unary', unary],
  ['reduce', reduce],
  ['pooling', pooling],
  ['shape-ops', shapeOps],
  ['control-flow', controlFlow],
  ['quantization', quantization],
  ['misc', misc],
];

/** Ops defined by more than one family (the first family listed wins). */
export const duplicateRules: { op: string; families: string[] }[] = [];

function merge(): Map<string, OpRule> {
  const out = new Map<string, OpRule>();
  const owner = new Map<string, string>();
  for (const [family, table] of FAMILIES) {
    for (const [op, rule] of Object.entries(table)) {
      if (out.has(op)) {
        const d = duplicateRules.find((x) => x.op === op);
        if (d) d.families.push(family);
        else duplicateRules.push({ op, families: [owner.get(op)!, family] });
        continue;
      }
      out.set(op, rule);
      owner.set(op, family);
    }
  }
  return out;
}

export const registry: Map<string, OpRule> = merge();
