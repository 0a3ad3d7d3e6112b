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
export function scalarFunction(node: Node, ctx: RuleContext): { f: Nary; unaryInputs: number; unary?: (x: number) => number } | null {
  if (node.domain !== '') return null;
  const op = node.opType;
  if (BINARY[op]) return { f: BINARY[op]!, unaryInputs: 0 };
  if (IDENTITY.has(op)) return { f: (v) => v[0]!, unaryInputs: 1, unary: IDENT };
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
  return { f: (v) => f(v[0]!), unaryInputs: 1, unary: f };
}

/** The identity (a value's lineage before any elementwise op): one shared object. */
export const IDENT = (x: number): number => x;

/** An operand of a composed lineage function: a scalar constant or a function of the root. */
export type LineageArg = { c: number } | { fn: (x: number) => number };

/**
 * How a composed lineage function is built: F(x) = f(args(x)); kept so tables of values at many
 * points (channels.ts `valuesAt`) compose from their operands' tables.
 */
export interface Composition {
  f: Nary;
  args: LineageArg[];
  /** 'unary' (f(v) = unary(v[0])), or the op name of a binary op. */
  op: string;
  unary?: (x: number) => number;
}
const compositions = new WeakMap<(x: number) => number, Composition>();

export function compositionOf(fn: (x: number) => number): Composition | undefined {
  return compositions.get(fn);
}

/**
 * F(x) = f(a_1(x), …, a_n(x)) as one closure, the same arithmetic as evaluating every operand into
 * an array and calling f (bit for bit), with fewer calls: a unary op of the root is its scalar
 * function itself, the common binary ops are written out.
 */
export function composeLineage(sf: { f: Nary; unaryInputs: number; unary?: (x: number) => number }, args: LineageArg[], op: string): (x: number) => number {
  let fn: ((x: number) => number) | null = null;
  const g = sf.unary;
  if (sf.unaryInputs === 1 && g && args.length === 1 && 'fn' in args[0]!) {
    const a = args[0].fn;
    fn = a === IDENT ? g : (x: number) => g(a(x));
  } else if (sf.unaryInputs === 0 && args.length === 2 && (op === 'Add' || op === 'Sub' || op === 'Mul' || op === 'Div' || op === 'Pow')) {
    fn = binaryClosure(op, args[0]!, args[1]!);
  }
  if (!fn) {
    const fns = args.map((p) => ('c' in p ? () => p.c : p.fn));
    const vals = new Array<number>(fns.length);
    const f = sf.f;
    fn = (x: number): number => {
      for (let k = 0; k < fns.length; k++) vals[k] = fns[k]!(x);
      return f(vals);
    };
  }
  if (fn !== g && !compositions.has(fn)) compositions.set(fn, { f: sf.f, args, op: sf.unaryInputs === 1 && g ? 'unary' : op, ...(g ? { unary: g } : {}) });
  return fn;
}

function binaryClosure(op: string, p: LineageArg, q: LineageArg): (x: number) => number {
  if ('c' in p && 'c' in q) return () => BINARY[op]!([p.c, q.c]);
  if ('c' in p) {
    const c = p.c;
    const b = (q as { fn: (x: number) => number }).fn;
    switch (op) {
      case 'Add':
        return (x) => c + b(x);
      case 'Sub':
        return (x) => c - b(x);
      case 'Mul':
        return (x) => c * b(x);
      case 'Div':
        return (x) => c / b(x);
      default:
        return (x) => Math.pow(c, b(x));
    }
  }
  const a = p.fn;
  if ('c' in q) {
    const c = q.c;
    switch (op) {
      case 'Add':
        return (x) => a(x) + c;
      case 'Sub':
        return (x) => a(x) - c;
      case 'Mul':
        return (x) => a(x) * c;
      case 'Div':
        return (x) => a(x) / c;
      default:
        return (x) => Math.pow(a(x), c);
    }
  }
  const b = q.fn;
  switch (op) {
    case 'Add':
      return (x) => a(x) + b(x);
    case 'Sub':
      return (x) => a(x) - b(x);
    case 'Mul':
      return (x) => a(x) * b(x);
    case 'Div':
      return (x) => a(x) / b(x);
    default:
      return (x) => Math.pow(a(x), b(x));
  }
}
