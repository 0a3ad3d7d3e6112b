/**
 * Lineage: which tensors are elementwise functions of one and the same tensor.
 *
 * The independence rules of PRIMER §3 are wrong when both operands of a binary op come from the
 * same tensor: x·sigmoid(x) (SiLU), 0.5·x·(1 + tanh(c·(x + 0.044715·x³))) (GELU-tanh),
 * x·(1 + erf(x/√2))/2 (GELU-erf) are exported as chains of elementwise ops whose branches meet
 * again. The engine records, for every value reached from a root tensor r through elementwise ops
 * with scalar constants, the scalar function F with value = F(r); where two branches of the same
 * root meet, the output is F applied to r's law — exact, whatever the correlation.
 */
import type { Node } from '../onnx/model.js';
import { UNARY, type ScalarFn } from './rules/unary.js';
import type { RuleContext } from './rules/types.js';

export interface Lineage {
  /** The value everything is a function of. */
  root: string;
  fn: (x: number) => number;
  /** Human label of the composed function. */
  label: string;
}

type Nary = (xs: number[]) => number;

const BINARY: Record<string, Nary> = {
  Add: (v) => v[0]! + v[1]!,
  Sub: (v) => v[0]! - v[1]!,
  Mul: (v) => v[0]! * v[1]!,
  Div: (v) => v[0]! / v[1]!,
  Pow: (v) => Math.pow(v[0]!, v[1]!),
  Max: (v) => Math.max(...v),
  Min: (v) => Math.min(...v),
  Sum: (v) => v.reduce((a, b) => a + b, 0),
  Mean: (v) => v.reduce((a, b) => a + b, 0) / v.length,
};

/** Ops that pass values through unchanged elementwise (same positions). */
const IDENTITY = new Set(['Identity', 'Cast', 'CastLike']);

/**
 * The scalar function of an elementwise node of the default domain, as a function of its input
 * values (absent/omitted inputs are skipped by the caller), or null when the op is not one.
 * `ctx` provides the attributes and constant inputs (Clip's bounds) the unary table needs.
 */
export function scalarFunction(node: Node, ctx: RuleContext): { f: Nary; unaryInputs: number } | null {
  if (node.domain !== '') return null;
  const op = node.opType;
  if (BINARY[op]) return { f: BINARY[op]!, unaryInputs: 0 };
  if (IDENTITY.has(op)) return { f: (v) => v[0]!, unaryInputs: 1 };
  const entry = UNARY[op];
  if (!entry) return null;
  let spec: ReturnType<typeof entry>;
  try {
    spec = entry(ctx);
  } catch {
    return null;
  }
  let fn: ScalarFn | null = null;
  if ('parts' in spec) {
    if (spec.parts.length !== 1) return null;
    fn = spec.parts[0]!.fn;
  } else fn = spec;
  const f = fn.f;
  // Unary ops read only input 0 as the tensor (Clip's min/max are constants handled by the spec).
  return { f: (v) => f(v[0]!), unaryInputs: 1 };
}
