/**
 * Control flow: If, Loop, Scan. Their output types come from their subgraphs, inferred by the
 * walker (ctx.inferSubgraph) with outer-scope values visible.
 * Spec: https://onnx.ai/onnx/operators/onnx__If.html, onnx__Loop.html, onnx__Scan.html.
 */
import { ModelError } from '../../errors.js';
import { DataType } from '../../onnx/dtype.js';
import type { Dim, TensorType } from '../../onnx/model.js';
import { hasInput, joinTypes, normAxis, type ShapeTable, type ShapeContext, tensor } from './types.js';

function subgraph(ctx: ShapeContext, attribute: string, inputs: (TensorType | null)[]): (TensorType | null)[] {
  return ctx.inferSubgraph ? ctx.inferSubgraph(attribute, inputs) : [];
}

/**
 * If: only the taken branch when the condition is folded (the other one is often impossible
 * for these shapes: exporters guard squeezes of size-1 dims that way). Otherwise what both
 * branches agree on; a branch that is impossible for these shapes cannot be the one taken.
 */
function ifShape(ctx: ShapeContext): (TensorType | null)[] {
  const cond = ctx.inputValues[0]?.data[0];
  if (cond !== undefined) return subgraph(ctx, cond ? 'then_branch' : 'else_branch', []);
  let thenOut: (TensorType | null)[] | null = null;
  let elseOut: (TensorType | null)[] | null = null;
  let error: unknown = null;
  try {
    thenOut = subgraph(ctx, 'then_branch', []);
  } catch (e) {
    if (!(e instanceof ModelError)) throw e;
    error = e;
  }
  try {
    elseOut = subgraph(ctx, 'else_branch', []);
  } catch (e) {
    if (!(e instanceof ModelError)) throw e;
    error = e;
  }
  if (!thenOut && !elseOut) throw error;
  if (!thenOut || !elseOut) return (thenOut ?? elseOut)!;
  return ctx.node.outputs.map((_, i) => joinTypes(thenOut[i] ?? null, elseOut[i] ?? null));
}

function sameTypes(a: (TensorType | null)[], b: (TensorType | null)[]): boolean {
  return a.length === b.length && a.every((t, i) => JSON.stringify(t) === JSON.stringify(b[i]));
}

/**
 * Loop(M, cond, v_initial…): body(iter, cond, v…) → (cond, v…, scan…). Outputs: the final
 * loop-carried values (which the body may reshape from one iteration to the next, so their
 * type is what the initial values and the body's outputs agree on), then the scan outputs
 * stacked along a new leading dim of the trip count (known only for a fixed count loop).
 */
function loopShape(ctx: ShapeContext): (TensorType | null)[] {
  const initial = ctx.inputTypes.slice(2);
  const n = initial.length;
  const head: TensorType[] = [tensor(DataType.INT64, []), tensor(DataType.BOOL, [])];
  let carried = initial;
  let out = subgraph(ctx, 'body', [...head, ...carried]);
  const next = carried.map((t, i) => joinTypes(t, out[1 + i] ?? null));
  if (!sameTypes(next, carried)) {
    // A second pass with the generalized types reaches the fixpoint (joins only lose dims).
    carried = next;
    out = subgraph(ctx, 'body', [...head, ...carried]);
  }
  const finals = carried.map((t, i) => joinTypes(t, out[1 + i] ?? null));
  const trip = hasInput(ctx, 1) ? null : ctx.inputValues[0]?.data[0] ?? null;
  const scans = out.slice(1 + n).map((t) => (t ? tensor(t.dtype, t.shape ? [trip, ...t.shape] : null) : null));
  return [...finals, ...scans];
}

/**
 * Scan (opset ≥ 9): N state variables then M scan inputs; the body sees each scan input with
 * its scan axis removed, and its K extra outputs are stacked along scan_output_axes.
 */
function scanShape(ctx: ShapeContext): (TensorType | null)[] {
  if (ctx.opset < 9) return ctx.node.outputs.map(() => null);
  const m = ctx.attrs.int('num_scan_inputs', 0);
  const inputs = ctx.inputTypes;
  const n = inputs.length - m;
  const inAxes = ctx.attrs.ints('scan_input_axes') ?? new Array<number>(m).fill(0);
  let seqLen: Dim = null;
  const slices = inputs.slice(n).map((t, j) => {
    if (!t?.shape) return t ? tensor(t.dtype, null) : null;
    const axis = normAxis(ctx, inAxes[j]!, t.shape.length);
    if (seqLen === null) seqLen = t.shape[axis]!;
    return tensor(
      t.dtype,
      t.shape.filter((_, i) => i !== axis),
    );
  });
  const out = subgraph(ctx, 'body', [...inputs.slice(0, n), ...slices]);
  const k = ctx.node.outputs.length - n;
  const outAxes = ctx.attrs.ints('scan_output_axes') ?? new Array<number>(k).fill(0);
  const scans = out.slice(n, n + k).map((t, j) => {
    if (!t?.shape) return t ? tensor(t.dtype, null) : null;
    const axis = normAxis(ctx, outAxes[j]!, t.shape.length + 1);
    const s = [...t.shape];
    s.splice(axis, 0, seqLen);
    return tensor(t.dtype, s);
  });
  return [...out.slice(0, n), ...scans];
}

export const shapes: ShapeTable = {
  If: { shape: ifShape },
  Loop: { shape: loopShape },
  Scan: { shape: scanShape },
};
