/**
 * Unit-scaling multipliers (PRIMER §5; Blake et al. 2023). For each MatMul / Gemm / Conv
 * (attention MatMuls of two activations included):
 *
 *   y = op(x, W) + b      becomes      y = σx·σW · ( op(x/σx, W/σW) + b/(σx·σW) )
 *
 * - the weight is stored as W/σW (σW its exact RMS),
 * - an activation operand gets a Mul by 1/σx (σx from the ScaleSource) in front of the op,
 * - the bias is divided by σx·σW (Conv: a scaled initializer; Gemm: beta divided instead),
 * - a Mul by σx·σW after the op restores the output to its original scale.
 *
 * Every operand entering the op then has RMS ≈ 1, which is what puts it in the middle of an
 * FP8/FP16 range. By default the multipliers are rounded to powers of two: multiplying by
 * 2^k is exact in binary floating point (barring overflow and subnormals), so the rewritten
 * model computes bit-for-bit the same function in float32, and the RMS lands within √2 of 1.
 */
import { DataType, dtypeName, isFloatType } from '../onnx/dtype.js';
import type { Model } from '../onnx/model.js';
import type { NodeProto, TensorProto } from '../onnx/proto-types.js';
import { TensorData } from '../onnx/tensor.js';
import { encodeValues, getAttribute, makeAttribute, setAttribute, type ModelEditor } from './edit.js';
import type { ScaleSource, TensorScale } from './scales.js';
import type { Change } from './types.js';

export const SCALABLE_OPS = ['MatMul', 'Gemm', 'Conv', 'ConvTranspose'] as const;
export const DEFAULT_OPS = ['MatMul', 'Gemm', 'Conv'];

/** Operand inputs (the ones entering the multiply) and the bias input of each op. */
const OPERANDS: Record<string, { operands: number[]; bias: number | null }> = {
  MatMul: { operands: [0, 1], bias: null },
  Gemm: { operands: [0, 1], bias: 2 },
  Conv: { operands: [0, 1], bias: 2 },
  ConvTranspose: { operands: [0, 1], bias: 2 },
};

export type ScaleRounding = 'pow2' | 'none';

/** Largest factor by which a predicted (not measured, not exact) max |x| may lower a multiplier. */
const MAX_PREDICTED_CAP = 16;

export interface UnitScaleOptions {
  ops: string[];
  /** Scale only constant operands (weights); leave activations as they are. */
  weightsOnly: boolean;
  rounding: ScaleRounding;
  scales: ScaleSource;
  /** Where the activation scales come from, for the report ("static analysis", "measured"). */
  scaleLabel: string;
  /**
   * The largest magnitude the scaled operand may reach (the target format's max), or null.
   * A heavy-tailed operand (max |x| ≫ RMS, as in trained networks with outliers) would
   * saturate at RMS 1: its multiplier is then lowered until max |x| fits.
   */
  maxAfterScaling?: number | null;
}

export interface ScaledOperand {
  /** Input slot of the op. */
  index: number;
  /** The original value fed to that slot. */
  original: string;
  /** The value the op now reads (scaled), before any quantisation. */
  value: string;
  /** True when `value` is an initializer (a weight stored scaled). */
  isWeight: boolean;
  /** The multiplier applied (1 when none). */
  factor: number;
}

export interface ScaledOp {
  node: NodeProto;
  dtype: number;
  operands: ScaledOperand[];
}

/** The multiplier that brings a tensor of RMS `rms` to ≈ 1. */
export function unitFactor(rms: number, rounding: ScaleRounding): number {
  if (!(rms > 0) || !Number.isFinite(rms)) return 1;
  if (rounding === 'pow2') return 2 ** -Math.round(Math.log2(rms));
  return 1 / rms;
}

/** Is `name` a stored weight: an initializer (not an overridable graph input) or a Constant node's value? */
export function isWeightInitializer(editor: ModelEditor, name: string): boolean {
  return editor.weightTensor(name) !== null;
}

/** Element type of a value, from the model's declarations (initializers, value_info, I/O). */
export function valueDtype(editor: ModelEditor, model: Model, name: string): number | null {
  const init = editor.initializer(name);
  if (init) return init.data_type ?? null;
  const t = model.graph.declaredTypes.get(name);
  if (t && t.dtype) return t.dtype;
  const k = model.graph.constant(name);
  return k ? k.dtype : null;
}

/** The float type the op computes in (its operands share it). */
function nodeDtype(editor: ModelEditor, model: Model, node: NodeProto, slots: number[]): number | null {
  for (const i of slots) {
    const v = node.input?.[i];
    if (!v) continue;
    const d = valueDtype(editor, model, v);
    if (d !== null) return d;
  }
  for (const o of node.output ?? []) {
    const d = valueDtype(editor, model, o);
    if (d !== null) return d;
  }
  return null;
}

/** Multiply a float initializer's values by `factor` in place (keeps its name and metadata). */
export function scaleInitializerInPlace(t: TensorProto, modelDir: string | null, factor: number): void {
  const values = new TensorData(t, modelDir).toFloat64();
  for (let i = 0; i < values.length; i++) values[i]! *= factor;
  setTensorValues(t, values);
}

/** Replace a tensor's data with `values` encoded in its own type, as raw_data. */
export function setTensorValues(t: TensorProto, values: ArrayLike<number>): void {
  t.raw_data = encodeValues(t.data_type ?? DataType.FLOAT, values);
  for (const f of ['float_data', 'int32_data', 'int64_data', 'double_data', 'uint64_data', 'external_data'] as const) delete t[f];
  delete t.data_location;
}

function fmt(x: number): string {
  if (x === 0) return '0';
  const k = Math.log2(Math.abs(x));
  if (Number.isInteger(k)) return `2^${k}`;
  return x.toPrecision(4);
}

export function unitScale(editor: ModelEditor, model: Model, opts: UnitScaleOptions, changes: Change[]): ScaledOp[] {
  const wanted = new Set(opts.ops);
  const targets = editor.graph.node!.filter((n) => (n.domain ?? '') === '' && wanted.has(n.op_type ?? '') && OPERANDS[n.op_type ?? '']);
  const targetSet = new Set(targets);
  for (const g of model.graph.allGraphs()) {
    if (g === model.graph) continue;
    for (const n of g.nodes) {
      if (n.domain === '' && wanted.has(n.opType)) {
        changes.push({ pass: 'unit-scale', node: n.name, op: n.opType, action: 'skip', value: null, inserted: null, constant: null, reason: 'inside a subgraph (If/Loop/Scan body): left as it is' });
      }
    }
  }

  /** Weights whose every use is an operand slot of a rewritten op: scaled in place. */
  const inPlaceOk = (w: string): boolean => {
    if (editor.isGraphOutput(w)) return false;
    for (const c of editor.consumers(w)) {
      if (!targetSet.has(c)) return false;
      const slots = OPERANDS[c.op_type!]!.operands;
      const uses = (c.input ?? []).map((v, i) => (v === w ? i : -1)).filter((i) => i >= 0);
      if (uses.length === 0 || uses.some((i) => !slots.includes(i))) return false; // used by a subgraph or a bias slot
    }
    return true;
  };

  const weightDone = new Map<string, { value: string; factor: number }>(); // original weight → scaled value
  const mulDone = new Map<string, string>(); // `${value}|${factor}` → scaled value
  const scaled: ScaledOp[] = [];

  for (const node of targets) {
    const op = node.op_type!;
    const spec = OPERANDS[op]!;
    const name = node.name || op;
    const dtype = nodeDtype(editor, model, node, spec.operands) ?? DataType.FLOAT;
    if (!isFloatType(dtype)) {
      changes.push({ pass: 'unit-scale', node: name, op, action: 'skip', value: null, inserted: null, constant: null, reason: `computes in ${dtypeName(dtype)}, not a float type` });
      continue;
    }
    const operands: ScaledOperand[] = [];
    let outFactor = 1; // product of the operand multipliers
    for (const idx of spec.operands) {
      const v = node.input?.[idx];
      if (!v) continue;
      const isWeight = isWeightInitializer(editor, v);
      const isConst = isWeight || model.graph.constant(v) !== null || model.graph.producer.get(v)?.opType === 'ConstantOfShape';
      if (opts.weightsOnly && !isConst) {
        operands.push({ index: idx, original: v, value: v, isWeight: false, factor: 1 });
        continue;
      }
      const s: TensorScale | null = opts.scales(v);
      if (!s) {
        changes.push({ pass: 'unit-scale', node: name, op, action: 'skip', value: v, inserted: null, constant: null, reason: `no scale known for '${v}' (${opts.scaleLabel}): operand left unscaled` });
        operands.push({ index: idx, original: v, value: v, isWeight, factor: 1 });
        continue;
      }
      let factor = unitFactor(s.rms, opts.rounding);
      let capped = '';
      const cap = opts.maxAfterScaling ?? null;
      if (cap !== null && s.absmax !== null && s.absmax > 0 && Number.isFinite(s.absmax) && s.absmax * factor > cap) {
        let limit = opts.rounding === 'pow2' ? 2 ** Math.floor(Math.log2(cap / s.absmax)) : cap / s.absmax;
        // A predicted max may be a loose bound (bounds compound through deep graphs): it may
        // lower the multiplier by at most 16x, so one bad bound cannot sink the operand into subnormals.
        if (s.origin === 'predicted') limit = Math.max(limit, factor / MAX_PREDICTED_CAP);
        capped = `; lowered from ${fmt(factor)} so that max |x| ${s.absmax.toPrecision(4)} stays within ${cap}`;
        factor = limit;
      }
      if (factor === 1) {
        operands.push({ index: idx, original: v, value: v, isWeight, factor: 1 });
        continue;
      }
      if (isWeight) {
        let done = weightDone.get(v);
        if (!done) {
          const t = editor.weightTensor(v)!.tensor;
          if (inPlaceOk(v)) {
            scaleInitializerInPlace(t, model.dir, factor);
            done = { value: v, factor };
            changes.push({ pass: 'unit-scale', node: name, op, action: 'scale-weight', value: v, inserted: `stored as ${v} × ${fmt(factor)} (in place)`, constant: factor, reason: `weight RMS ${s.rms.toPrecision(4)} (exact) → ≈1${capped}` });
          } else {
            const copy: TensorProto = { name: `${v}_unitscaled`, data_type: t.data_type ?? DataType.FLOAT, dims: t.dims ?? [] };
            const values = new TensorData(t, model.dir).toFloat64();
            for (let i = 0; i < values.length; i++) values[i]! *= factor;
            setTensorValues(copy, values);
            const newName = editor.addInitializer(copy);
            editor.derived.set(newName, { from: v, factor });
            done = { value: newName, factor };
            changes.push({ pass: 'unit-scale', node: name, op, action: 'scale-weight', value: v, inserted: `new initializer ${newName} = ${v} × ${fmt(factor)} (${v} is also used elsewhere)`, constant: factor, reason: `weight RMS ${s.rms.toPrecision(4)} (exact) → ≈1${capped}` });
          }
          weightDone.set(v, done);
        }
        editor.replaceInput(node, idx, done.value);
        operands.push({ index: idx, original: v, value: done.value, isWeight: true, factor: done.factor });
        outFactor *= done.factor;
        continue;
      }
      const key = `${v}|${factor}`;
      let sv = mulDone.get(key);
      if (!sv) {
        sv = editor.fresh(`${v}_unitscaled`);
        const k = editor.scalar(factor, dtype, `unitscale_${fmt(factor).replace('^', '')}`);
        const mul = editor.node('Mul', [v, k], [sv], `${name}/unitscale_in${idx}`, editor.opset < 7 ? [makeAttribute('broadcast', 1)] : []);
        editor.insertBefore(node, mul);
        editor.derived.set(sv, { from: v, factor });
        mulDone.set(key, sv);
        changes.push({ pass: 'unit-scale', node: mul.name!, op: 'Mul', action: 'scale-input', value: v, inserted: `Mul(${v}, ${fmt(factor)}) → ${sv} before ${name}`, constant: factor, reason: `${s.origin ?? 'predicted'} RMS ${s.rms.toPrecision(4)} (${opts.scaleLabel}) → ≈1${capped}` });
      }
      editor.replaceInput(node, idx, sv);
      operands.push({ index: idx, original: v, value: sv, isWeight: false, factor });
      outFactor *= factor;
    }

    if (outFactor !== 1) {
      const restore = 1 / outFactor;
      // Bias: divided by the operands' product so that it lands on the scaled output.
      const b = spec.bias !== null ? node.input?.[spec.bias] : undefined;
      if (b) scaleBias(editor, model, node, spec.bias!, b, outFactor, dtype, changes, inPlaceOkBias(editor, b, node));
      const y = node.output![0]!;
      const raw = editor.renameOutput(node, 0, `${y}_unitscaled`);
      editor.derived.set(raw, { from: y, factor: outFactor });
      const k = editor.scalar(restore, dtype, `unitscale_${fmt(restore).replace('^', '')}`);
      const mul = editor.node('Mul', [raw, k], [y], `${name}/unitscale_out`, editor.opset < 7 ? [makeAttribute('broadcast', 1)] : []);
      editor.insertAfter(node, mul);
      changes.push({ pass: 'unit-scale', node: mul.name!, op: 'Mul', action: 'restore-output', value: y, inserted: `Mul(${raw}, ${fmt(restore)}) → ${y} after ${name}`, constant: restore, reason: `undo the operand multipliers (${operands.filter((o) => o.factor !== 1).map((o) => fmt(o.factor)).join(' · ')}): output keeps its original scale` });
    }
    scaled.push({ node, dtype, operands });
  }
  return scaled;
}

function inPlaceOkBias(editor: ModelEditor, b: string, node: NodeProto): boolean {
  if (!isWeightInitializer(editor, b) || editor.isGraphOutput(b)) return false;
  return editor.consumers(b).every((c) => c === node) && (node.input ?? []).filter((v) => v === b).length === 1;
}

function scaleBias(editor: ModelEditor, model: Model, node: NodeProto, slot: number, b: string, factor: number, dtype: number, changes: Change[], inPlace: boolean): void {
  const name = node.name || node.op_type!;
  if (node.op_type === 'Gemm') {
    const beta = getAttribute(node, 'beta')?.f ?? 1;
    setAttribute(node, makeAttribute('beta', { float: beta * factor }));
    changes.push({ pass: 'unit-scale', node: name, op: 'Gemm', action: 'scale-bias', value: b, inserted: `beta ${beta} → ${beta * factor}`, constant: factor, reason: 'C is added to the scaled product: its coefficient takes the same multiplier' });
    return;
  }
  if (isWeightInitializer(editor, b)) {
    const t = editor.weightTensor(b)!.tensor;
    if (inPlace) {
      scaleInitializerInPlace(t, model.dir, factor);
      changes.push({ pass: 'unit-scale', node: name, op: node.op_type!, action: 'scale-bias', value: b, inserted: `stored as ${b} × ${fmt(factor)} (in place)`, constant: factor, reason: 'the bias is added to the scaled product: it takes the same multiplier' });
    } else {
      const copy: TensorProto = { name: `${b}_unitscaled`, data_type: t.data_type ?? DataType.FLOAT, dims: t.dims ?? [] };
      const values = new TensorData(t, model.dir).toFloat64();
      for (let i = 0; i < values.length; i++) values[i]! *= factor;
      setTensorValues(copy, values);
      const nb = editor.addInitializer(copy);
      editor.replaceInput(node, slot, nb);
      changes.push({ pass: 'unit-scale', node: name, op: node.op_type!, action: 'scale-bias', value: b, inserted: `new initializer ${nb} = ${b} × ${fmt(factor)}`, constant: factor, reason: 'the bias is added to the scaled product: it takes the same multiplier' });
    }
    return;
  }
  const sb = editor.fresh(`${b}_unitscaled`);
  const k = editor.scalar(factor, dtype);
  const mul = editor.node('Mul', [b, k], [sb], `${name}/unitscale_bias`, editor.opset < 7 ? [makeAttribute('broadcast', 1)] : []);
  editor.insertBefore(node, mul);
  editor.replaceInput(node, slot, sb);
  changes.push({ pass: 'unit-scale', node: mul.name!, op: 'Mul', action: 'scale-bias', value: b, inserted: `Mul(${b}, ${fmt(factor)}) → ${sb}`, constant: factor, reason: 'the bias is added to the scaled product: it takes the same multiplier' });
}
