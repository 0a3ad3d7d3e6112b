/**
 * The shape-rule registry: op type → rule, per domain. The default ONNX domain merges the
 * family tables; other domains hold the few ops the corpora use (com.microsoft contrib ops,
 * Gradient and the optimizers of ai.onnx.preview.training). Model-local functions are handled
 * by the walker (infer.ts, which imports this registry; import inferShapes from there).
 */
import { shapes as controlFlow } from './control-flow.js';
import { shapes as conv } from './conv.js';
import { shapes as elementwise } from './elementwise.js';
import { shapes as indexing } from './indexing.js';
import { shapes as loss } from './loss.js';
import { shapes as matmul } from './matmul.js';
import { shapes as microsoft } from './microsoft.js';
import { shapes as misc, trainingShapes } from './misc.js';
import { shapes as normalization } from './normalization.js';
import { shapes as optional } from './optional.js';
import { shapes as pooling } from './pooling.js';
import { shapes as quantization } from './quantization.js';
import { shapes as recurrent } from './recurrent.js';
import { shapes as reduce } from './reduce.js';
import { shapes as resize } from './resize.js';
import { shapes as sequence } from './sequence.js';
import { shapes as shapeOps } from './shape-ops.js';
import { shapes as signal } from './signal.js';
import { shapes as softmax } from './softmax.js';
import { shapes as training } from './training.js';
import type { ShapeRule, ShapeTable } from './types.js';

function merge(tables: ShapeTable[]): Map<string, ShapeRule> {
  const out = new Map<string, ShapeRule>();
  for (const t of tables) {
    for (const [op, rule] of Object.entries(t)) {
      if (out.has(op)) throw new Error(`shape rule for ${op} is defined twice`);
      out.set(op, rule);
    }
  }
  return out;
}

/** Rules of the default domain ('' / 'ai.onnx'). */
export const shapeRegistry: Map<string, ShapeRule> = merge([
  elementwise,
  matmul,
  conv,
  pooling,
  normalization,
  softmax,
  reduce,
  shapeOps,
  indexing,
  resize,
  controlFlow,
  quantization,
  recurrent,
  sequence,
  optional,
  signal,
  loss,
  misc,
]);

const domainRegistries = new Map<string, Map<string, ShapeRule>>([
  ['', shapeRegistry],
  ['com.microsoft', merge([microsoft])],
  ['ai.onnx.preview.training', merge([trainingShapes, training])],
]);

/** The rule for an op, or undefined when none exists. */
export function lookupRule(domain: string, opType: string): ShapeRule | undefined {
  return domainRegistries.get(domain === 'ai.onnx' ? '' : domain)?.get(opType);
}

export type { ConstValue, ShapeRule, SequenceType, ShapeContext } from './types.js';
