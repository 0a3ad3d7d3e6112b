/**
 * Raising the default-domain opset (FP8 QuantizeLinear/DequantizeLinear need 19) without
 * changing what any node computes.
 *
 * Every op of the default domain is looked up in a table of the schema changes between its
 * old opset and the target. Most versions only add types or optional attributes whose
 * defaults keep the old meaning: nothing to do. Where a version moved an attribute to an
 * input (Slice 10, Pad/Clip 11, Squeeze/Unsqueeze/Split/ReduceSum 13, the other Reduce* 18,
 * TopK 10, Dropout 12, Reshape 5) the node is converted (the attribute becomes a constant
 * input); where semantics changed (Softmax/LogSoftmax/Hardmax 13: one axis instead of a
 * 2-D coercion; legacy broadcast 7; RoiAlign 16's default) the node is converted to the
 * same computation; where no safe conversion is known (Resize 10, Upsample, Scan 8, the
 * experimental ops dropped at 10, …) the upgrade is refused with a message naming them.
 */
import { ModelError } from '../errors.js';
import { DataType } from '../onnx/dtype.js';
import { toNumber } from '../onnx/proto.js';
import type { AttributeProto, GraphProto, NodeProto, TensorProto } from '../onnx/proto-types.js';
import { getAttribute, makeAttribute, makeTensor, removeAttribute, setAttribute, type ModelEditor } from './edit.js';
import type { Change } from './types.js';

/** IR version that introduced each opset (onnx/helper.py VERSION_TABLE). */
export function irVersionForOpset(opset: number): number {
  if (opset <= 8) return 3;
  if (opset <= 9) return 4;
  if (opset <= 10) return 5;
  if (opset <= 11) return 6;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

/** Ops whose every version up to 19 only widens types or adds attributes with backward-compatible defaults. */
const COMPATIBLE = new Set(
  (
    'Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor ' +
    'BlackmanWindow Cast CastLike Ceil Celu CenterCropPad Col2Im Compress Concat ConcatFromSequence Constant ConstantOfShape Conv ' +
    'ConvInteger ConvTranspose Cos Cosh CumSum DFT DepthToSpace DequantizeLinear Det Div DynamicQuantizeLinear Einsum Elu Equal Erf Exp ' +
    'Expand EyeLike Flatten Floor GRU Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater ' +
    'GreaterOrEqual GridSample GroupNormalization HammingWindow HannWindow HardSigmoid HardSwish Identity If InstanceNormalization ' +
    'IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual Log Loop LpNormalization LpPool MatMul MatMulInteger Max ' +
    'MaxPool MaxRoiPool MaxUnpool Mean MeanVarianceNormalization MelWeightMatrix Min Mish Mod Mul Multinomial Neg NegativeLogLikelihoodLoss ' +
    'NonMaxSuppression NonZero Not OneHot Optional OptionalGetElement OptionalHasElement Or PRelu Pow QLinearConv QLinearMatMul ' +
    'QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal Relu Reshape ReverseSequence ' +
    'RoiAlign Round STFT Scan ScatterElements ScatterND Selu SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert ' +
    'SequenceLength SequenceMap Shape Shrink Sigmoid Sign Sin Sinh Size SoftmaxCrossEntropyLoss Softplus Softsign SpaceToDepth ' +
    'SplitToSequence Sqrt StringNormalizer Sub Sum Tan Tanh TfIdfVectorizer ThresholdedRelu Tile TopK Transpose Trilu Unique Where Xor ' +
    'BatchNormalization Clip Dropout Pad Slice Split Squeeze Unsqueeze ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ' +
    'ReduceL2 ReduceLogSum ReduceLogSumExp ReduceSumSquare Softmax LogSoftmax Hardmax Scatter Resize'
  ).split(/\s+/),
);

/** Ops with no safe automatic conversion. */
const REFUSED: Record<string, string> = {
  Upsample: 'deprecated at opset 10; replace it by Resize (re-export the model at a newer opset)',
  Resize: 'Resize-10 → 11 changed the coordinate transformation (half_pixel vs asymmetric); re-export the model at opset ≥ 11',
  Affine: 'experimental op removed at opset 10',
  Crop: 'experimental op removed at opset 10',
  ConstantFill: 'experimental op removed at opset 10',
  DynamicSlice: 'experimental op removed at opset 10',
  GRUUnit: 'experimental op removed at opset 10',
  GivenTensorFill: 'experimental op removed at opset 10',
  ImageScaler: 'experimental op removed at opset 10',
  ParametricSoftplus: 'experimental op removed at opset 10',
  Scale: 'experimental op removed at opset 10',
  ScaledTanh: 'experimental op removed at opset 10',
};

/** The opset version of each op where its schema changed in a way that needs work here. */
const LEGACY_BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'And', 'Or', 'Xor', 'Equal', 'Greater', 'Less']);
const REDUCE_18 = new Set(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare']);
const SOFTMAX_LIKE = new Set(['Softmax', 'LogSoftmax', 'Hardmax']);

const TYPE_NAMES: Record<string, number> = {
  FLOAT: DataType.FLOAT, FLOAT16: DataType.FLOAT16, DOUBLE: DataType.DOUBLE, INT8: DataType.INT8, INT16: DataType.INT16, INT32: DataType.INT32,
  INT64: DataType.INT64, UINT8: DataType.UINT8, UINT16: DataType.UINT16, UINT32: DataType.UINT32, UINT64: DataType.UINT64, BOOL: DataType.BOOL, STRING: DataType.STRING,
};

export interface OpsetContext {
  editor: ModelEditor;
  /** Rank of a value when declared; null when unknown. */
  rank(value: string): number | null;
  /** Element type of a value when declared; null when unknown. */
  dtype(value: string): number | null;
  /** True for nodes of the main graph (insertions are possible there only). */
  topLevel: boolean;
  from: number;
  to: number;
}

type Converted = { ok: true; note: string | null } | { ok: false; reason: string };
const ok = (note: string | null = null): Converted => ({ ok: true, note });
const refuse = (reason: string): Converted => ({ ok: false, reason });

function ints(a: AttributeProto | undefined): number[] | null {
  if (!a) return null;
  return (a.ints ?? []).map((v) => toNumber(v));
}

/** Move an INTS attribute to an int64 constant input at `slot` (absent attribute → omitted input). */
function attrToInput(ctx: OpsetContext, node: NodeProto, attr: string, slot: number, required = false): Converted | null {
  const a = removeAttribute(node, attr);
  const inputs = (node.input ??= []);
  if (!a) {
    if (required) return refuse(`attribute '${attr}' is missing`);
    return null;
  }
  const v = (a.ints ?? []).length > 0 || a.type === 7 ? ints(a)! : [toNumber(a.i)];
  const name = ctx.editor.addInitializer(makeTensor(`${node.name || node.op_type}_${attr}`, DataType.INT64, [v.length], v));
  while (inputs.length < slot) inputs.push('');
  inputs[slot] = name;
  return null;
}

function scalarInput(ctx: OpsetContext, node: NodeProto, base: string, value: number, dtype: number): string {
  return ctx.editor.addInitializer(makeTensor(`${node.name || node.op_type}_${base}`, dtype, [], [value]));
}

function convertNode(ctx: OpsetContext, node: NodeProto): Converted {
  const op = node.op_type ?? '';
  const { from, to } = ctx;
  const crosses = (v: number) => from < v && to >= v;
  if (REFUSED[op] && !(op === 'Resize' && from >= 11)) return refuse(REFUSED[op]!);
  if (!COMPATIBLE.has(op)) return refuse(`not in unitscale's opset table (cannot tell whether its schema changed between opset ${from} and ${to})`);
  const notes: string[] = [];

  // Opset < 6: the 'consumed_inputs' optimisation hint was dropped; it never changed results.
  if (crosses(6) && removeAttribute(node, 'consumed_inputs')) notes.push("dropped legacy 'consumed_inputs'");

  if (crosses(7) && LEGACY_BROADCAST.has(op)) {
    const b = getAttribute(node, 'broadcast');
    const axis = getAttribute(node, 'axis');
    if (b && toNumber(b.i) === 1 && axis) {
      const ra = ctx.rank(node.input![0]!);
      const rb = ctx.rank(node.input![1]!);
      const ax = toNumber(axis.i);
      if (ra === null || rb === null) return refuse('legacy broadcast with an explicit axis and unknown ranks');
      const start = ax < 0 ? ax + ra : ax;
      if (start + rb !== ra) {
        // B aligned at `axis`: numpy broadcasting needs trailing ones on B.
        const init = ctx.editor.initializer(node.input![1]!);
        if (!init) return refuse(`legacy broadcast at axis ${ax} of a computed tensor`);
        const dims = [...(init.dims ?? []).map((d) => toNumber(d)), ...new Array(ra - start - rb).fill(1)];
        const copy: TensorProto = { ...init, name: `${init.name}_bcast`, dims };
        node.input![1] = ctx.editor.addInitializer(copy);
        notes.push(`B reshaped to [${dims}] for numpy broadcasting`);
      }
    }
    if (removeAttribute(node, 'broadcast')) notes.push("dropped legacy 'broadcast'");
    if (removeAttribute(node, 'axis')) notes.push("dropped legacy 'axis'");
  }
  if (crosses(7) && op === 'PRelu') {
    // PRelu-6 applied a 1-D slope per channel (axis 1); PRelu-7 broadcasts it numpy-style (last axis).
    const slope = node.input?.[1] ?? '';
    const init = ctx.editor.initializer(slope);
    const dims = init ? (init.dims ?? []).map((d) => toNumber(d)) : null;
    const rx = ctx.rank(node.input?.[0] ?? '');
    if (!dims) return refuse('PRelu-6 with a computed slope (its per-channel broadcast changed at opset 7)');
    const size = dims.reduce((a, b) => a * b, 1);
    if (dims.length === 1 && size > 1) {
      if (rx === null) return refuse('PRelu-6 per-channel slope with an input of unknown rank');
      if (rx > 2) {
        const copy: TensorProto = { ...init!, name: `${init!.name}_per_channel`, dims: [size, ...new Array(rx - 2).fill(1)] };
        node.input![1] = ctx.editor.addInitializer(copy);
        notes.push(`slope reshaped to [${copy.dims}] (per channel, as PRelu-6 applied it)`);
      }
    }
  }
  if (crosses(7) && op === 'Gemm' && removeAttribute(node, 'broadcast')) notes.push("dropped legacy 'broadcast' (C broadcasts unidirectionally since opset 7)");
  if (crosses(7) && ['GRU', 'LSTM', 'RNN'].includes(op) && getAttribute(node, 'output_sequence')) return refuse("legacy 'output_sequence' attribute (removed at opset 7)");

  if (op === 'Cast' && from < 6) {
    const a = getAttribute(node, 'to');
    if (a && a.s && a.s.length > 0) {
      const t = TYPE_NAMES[new TextDecoder().decode(a.s).toUpperCase()];
      if (t === undefined) return refuse('Cast-1 with an unknown type name');
      setAttribute(node, makeAttribute('to', t));
      notes.push('Cast-1 type name → enum');
    }
  }
  if (op === 'Concat' && from < 4 && !getAttribute(node, 'axis')) {
    setAttribute(node, makeAttribute('axis', 1));
    notes.push('Concat-1 default axis 1 made explicit');
  }
  if (op === 'Reshape' && crosses(5)) {
    const r = attrToInput(ctx, node, 'shape', 1, true);
    if (r) return r;
    notes.push('shape attribute → input');
  }
  if (op === 'Tile' && crosses(6)) return refuse('Tile-1 (tiles/axis inputs) has no automatic conversion');

  if (op === 'BatchNormalization') {
    if (crosses(9)) {
      const sp = getAttribute(node, 'spatial');
      if (sp && toNumber(sp.i) === 0) return refuse('BatchNormalization with spatial=0 (per-activation) has no equivalent since opset 9');
      removeAttribute(node, 'spatial');
      if (removeAttribute(node, 'is_test')) notes.push("dropped 'is_test'");
    }
    if (crosses(14) && (node.output ?? []).length > 1) {
      const extra = node.output!.slice(1).filter((o) => o);
      const used = extra.filter((o) => ctx.editor.consumers(o).length > 0 || ctx.editor.isGraphOutput(o));
      if (used.length > 0) return refuse(`training outputs (${used.join(', ')}) are used; inference BatchNormalization-14 has one output`);
      node.output = node.output!.slice(0, 1);
      notes.push('unused training outputs removed');
    }
  }
  if (op === 'Dropout') {
    if (removeAttribute(node, 'is_test')) notes.push("dropped 'is_test'");
    if (crosses(10) && (node.output ?? []).length > 1 && node.output![1]) {
      const m = node.output![1]!;
      if (ctx.editor.consumers(m).length > 0 || ctx.editor.isGraphOutput(m)) return refuse('its mask output is used, and its type changed at opset 10');
    }
    if (crosses(12)) {
      const r = getAttribute(node, 'ratio');
      removeAttribute(node, 'ratio');
      if (r) {
        (node.input ??= []).splice(1, Infinity, scalarInput(ctx, node, 'ratio', r.f ?? 0.5, DataType.FLOAT));
        notes.push('ratio attribute → input');
      }
    }
  }
  if (op === 'Slice' && crosses(10)) {
    for (const [attr, slot] of [['starts', 1], ['ends', 2], ['axes', 3]] as const) {
      const r = attrToInput(ctx, node, attr, slot, attr !== 'axes');
      if (r) return r;
    }
    notes.push('starts/ends/axes attributes → inputs');
  }
  if (op === 'TopK' && crosses(10)) {
    const r = attrToInput(ctx, node, 'k', 1, true);
    if (r) return r;
    notes.push('k attribute → input');
  }
  if (op === 'Pad' && crosses(11)) {
    if (getAttribute(node, 'paddings')) return refuse("Pad-1 ('paddings') has no automatic conversion");
    const value = getAttribute(node, 'value');
    removeAttribute(node, 'value');
    const r = attrToInput(ctx, node, 'pads', 1, true);
    if (r) return r;
    const mode = getAttribute(node, 'mode');
    const isConstant = !mode || !mode.s || new TextDecoder().decode(mode.s) === 'constant';
    if (value && isConstant && (value.f ?? 0) !== 0) node.input![2] = scalarInput(ctx, node, 'value', value.f ?? 0, ctx.dtype(node.input![0]!) ?? DataType.FLOAT);
    notes.push('pads/value attributes → inputs');
  }
  if (op === 'Clip' && crosses(11)) {
    const lo = removeAttribute(node, 'min');
    const hi = removeAttribute(node, 'max');
    const dt = ctx.dtype(node.input![0]!) ?? DataType.FLOAT;
    const inputs = (node.input ??= []);
    if (lo) inputs[1] = scalarInput(ctx, node, 'min', lo.f ?? 0, dt);
    if (hi) {
      while (inputs.length < 2) inputs.push('');
      inputs[2] = scalarInput(ctx, node, 'max', hi.f ?? 0, dt);
    }
    notes.push('min/max attributes → inputs');
  }
  if (op === 'Scatter' && crosses(11)) {
    node.op_type = 'ScatterElements';
    notes.push('Scatter → ScatterElements (same semantics)');
  }
  if (op === 'Scan' && from < 9) return refuse('Scan-8 (batch axis) has no automatic conversion');
  if (op === 'RoiAlign' && crosses(16) && !getAttribute(node, 'coordinate_transformation_mode')) {
    setAttribute(node, makeAttribute('coordinate_transformation_mode', 'output_half_pixel'));
    notes.push("old default coordinate_transformation_mode 'output_half_pixel' made explicit");
  }
  if ((op === 'Squeeze' || op === 'Unsqueeze') && crosses(13)) {
    const r = attrToInput(ctx, node, 'axes', 1, op === 'Unsqueeze');
    if (r) return r;
    notes.push('axes attribute → input');
  }
  if (op === 'ReduceSum' && crosses(13)) {
    attrToInput(ctx, node, 'axes', 1);
    notes.push('axes attribute → input');
  }
  if (REDUCE_18.has(op) && crosses(18)) {
    attrToInput(ctx, node, 'axes', 1);
    notes.push('axes attribute → input');
  }
  if (op === 'Split') {
    if (from < 2 && (node.input ?? []).length > 1) return refuse('Split-1 with a split input has no automatic conversion');
    if (crosses(13)) attrToInput(ctx, node, 'split', 1);
    if (crosses(18) && !(node.input?.[1]) && !getAttribute(node, 'num_outputs')) {
      setAttribute(node, makeAttribute('num_outputs', (node.output ?? []).length));
      notes.push('equal split made explicit with num_outputs');
    }
  }
  if (SOFTMAX_LIKE.has(op) && crosses(13)) {
    const axisAttr = getAttribute(node, 'axis');
    const axis = axisAttr ? toNumber(axisAttr.i) : 1;
    const x = node.input![0]!;
    const r = ctx.rank(x);
    const norm = r !== null && axis < 0 ? axis + r : axis;
    if (r !== null && norm === r - 1) {
      setAttribute(node, makeAttribute('axis', norm));
      notes.push(`axis ${norm} is the last: same result under the one-axis semantics of opset 13`);
    } else {
      if (!ctx.topLevel) return refuse(`${op} coerced to 2-D at axis ${axis} inside a subgraph`);
      // Old semantics: flatten to 2-D at `axis`, normalise each row, restore the shape.
      const e = ctx.editor;
      const base = node.name || op;
      const shape = e.fresh(`${x}_shape`);
      const flat = e.fresh(`${x}_2d`);
      const y = node.output![0]!;
      const y2 = e.fresh(`${y}_2d`);
      const shapeNode = e.node('Shape', [x], [shape], `${base}/opset13_shape`);
      const flatNode = e.node('Flatten', [x], [flat], `${base}/opset13_flatten`, [makeAttribute('axis', axis)]);
      const reshape = e.node('Reshape', [y2, shape], [y], `${base}/opset13_reshape`);
      e.insertBefore(node, shapeNode, flatNode);
      e.insertAfter(node, reshape);
      node.input![0] = flat;
      node.output![0] = y2;
      setAttribute(node, makeAttribute('axis', 1));
      e.invalidate();
      notes.push(`old 2-D coercion at axis ${axis} kept explicitly: Flatten → ${op}(axis 1) → Reshape`);
    }
  }
  return ok(notes.length > 0 ? notes.join('; ') : null);
}

function convertGraph(ctx: OpsetContext, g: GraphProto, failures: string[], changes: Change[]): void {
  for (const node of [...(g.node ?? [])]) {
    const domain = node.domain ?? '';
    if (domain === '' || domain === 'ai.onnx') {
      const r = convertNode(ctx, node);
      const label = `${node.name || '(unnamed)'} (${node.op_type})`;
      if (!r.ok) failures.push(`${label}: ${r.reason}`);
      else if (r.note) changes.push({ pass: 'opset', node: node.name || node.op_type || '', op: node.op_type ?? '', action: 'convert-node', value: null, inserted: r.note, constant: null, reason: `same computation under opset ${ctx.to}` });
    }
    for (const a of node.attribute ?? []) {
      for (const sg of [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]) convertGraph({ ...ctx, topLevel: false }, sg, failures, changes);
    }
  }
}

/**
 * Raise the default-domain opset to `target` (no-op when already there), converting nodes
 * whose schema changed; throws a ModelError naming every node it cannot convert.
 */
export function upgradeOpset(editor: ModelEditor, target: number, changes: Change[], info?: { rank?: (v: string) => number | null; dtype?: (v: string) => number | null }): void {
  const from = editor.opset;
  if (from >= target) return;
  const declared = new Map<string, { rank: number | null; dtype: number | null }>();
  const g = editor.graph;
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.value_info ?? [])]) {
    const tt = v.type?.tensor_type;
    if (v.name && tt) declared.set(v.name, { rank: tt.shape ? (tt.shape.dim ?? []).length : null, dtype: tt.elem_type ?? null });
  }
  for (const t of g.initializer ?? []) if (t.name) declared.set(t.name, { rank: (t.dims ?? []).length, dtype: t.data_type ?? null });
  const ctx: OpsetContext = {
    editor,
    rank: (v) => declared.get(v)?.rank ?? info?.rank?.(v) ?? null,
    dtype: (v) => declared.get(v)?.dtype ?? info?.dtype?.(v) ?? null,
    topLevel: true,
    from,
    to: target,
  };
  const failures: string[] = [];
  const converted: Change[] = [];
  convertGraph(ctx, g, failures, converted);
  if (failures.length > 0) {
    const shown = failures.slice(0, 5).join('; ');
    throw new ModelError(`cannot raise the opset from ${from} to ${target} (needed for ${target >= 19 ? 'FP8 QuantizeLinear' : 'the rewrite'}): ${shown}${failures.length > 5 ? `; and ${failures.length - 5} more` : ''}`);
  }
  changes.push(...converted);
  editor.setOpset(target);
  const ir = toNumber(editor.proto.ir_version);
  const needIr = irVersionForOpset(target);
  let irNote = '';
  if (ir < needIr) {
    editor.proto.ir_version = needIr;
    irNote = `; IR version ${ir} → ${needIr}`;
    if (ir < 4) {
      // IR < 4 listed every initializer among the inputs; from IR 4 that would make them overridable inputs.
      const inits = new Set((g.initializer ?? []).map((t) => t.name));
      const before = (g.input ?? []).length;
      g.input = (g.input ?? []).filter((v) => !inits.has(v.name));
      if (g.input.length !== before) irNote += ` (${before - g.input.length} initializers no longer listed as graph inputs)`;
    }
  }
  changes.push({ pass: 'opset', node: '(model)', op: '', action: 'upgrade-opset', value: null, inserted: `opset ${from} → ${target}${irNote}`, constant: target, reason: target >= 19 ? 'QuantizeLinear/DequantizeLinear with FLOAT8 zero points need opset 19' : 'needed by the rewrite' });
}
