/**
 * FP8 simulation in ONNX (opset ≥ 19): a QuantizeLinear → DequantizeLinear pair with a FLOAT8
 * zero point on each unit-scaled operand of MatMul/Gemm/Conv. Those ops do not take FP8
 * inputs, so the pair wraps them: the operand is rounded to the FP8 grid (saturating, the
 * default of QuantizeLinear-19) and handed to the op back in its float type.
 *
 * The scale of each pair is 1: the operand has already been brought to RMS ≈ 1 by the unit
 * scaling multipliers, which is the point of the exercise.
 *
 * `weightsFp8`: a weight is stored as an FP8 initializer (bytes from the project's own exact
 * quantiser, `encode`) read through a DequantizeLinear — a quarter of the float32 size.
 */
import { DataType, dtypeName } from '../onnx/dtype.js';
import { encode, quantise, type Format } from '../formats/index.js';
import type { Model } from '../onnx/model.js';
import type { NodeProto } from '../onnx/proto-types.js';
import { TensorData } from '../onnx/tensor.js';
import type { ModelEditor } from './edit.js';
import type { Change } from './types.js';
import type { ScaledOp } from './unit-scale.js';

export interface QdqOptions {
  format: Format;
  weightsOnly: boolean;
  weightsFp8: boolean;
  /**
   * QDQ scale of each operand (default 1: unit-scaled operands need none). Used to build the
   * calibrated baseline (per-tensor max |x| / format max) the benchmark compares against.
   */
  scaleOf?: (value: string) => number;
}

/** Types QuantizeLinear-19 takes as input / scale. */
const QDQ_FLOAT_TYPES = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16]);

function sqnrDb(x: Float64Array, q: ArrayLike<number>): number | null {
  let s = 0;
  let n = 0;
  for (let i = 0; i < x.length; i++) {
    s += x[i]! * x[i]!;
    const d = x[i]! - q[i]!;
    n += d * d;
  }
  return n === 0 ? null : 10 * Math.log10(s / n);
}

export function quantizeOperands(editor: ModelEditor, model: Model, ops: ScaledOp[], opts: QdqOptions, changes: Change[]): void {
  const f = opts.format;
  const fp8 = f.onnxType!;
  const qdqDone = new Map<string, string>(); // value → dequantized value
  const fp8Done = new Map<string, string>(); // weight initializer → value the ops read

  // Which weight slots read each initializer (to know when the float copy can go entirely).
  const weightSlotUses = new Map<string, number>();
  for (const o of ops) for (const p of o.operands) if (p.isWeight) weightSlotUses.set(p.value, (weightSlotUses.get(p.value) ?? 0) + 1);

  for (const { node, dtype, operands } of ops) {
    const name = node.name || node.op_type!;
    if (!QDQ_FLOAT_TYPES.has(dtype)) {
      changes.push({ pass: 'qdq', node: name, op: node.op_type!, action: 'skip', value: null, inserted: null, constant: null, reason: `QuantizeLinear-19 does not take ${dtypeName(dtype)}` });
      continue;
    }
    const zero = editor.scalar(0, fp8, `unitscale_${f.name}_zero`);
    for (const p of operands) {
      const scale = opts.scaleOf?.(p.original) ?? 1;
      const one = editor.scalar(scale, dtype, scale === 1 ? 'unitscale_one' : 'unitscale_qdq_scale');
      if (opts.weightsOnly && !p.isWeight) continue;
      if (p.isWeight && opts.weightsFp8) {
        let read = fp8Done.get(p.value);
        if (!read) {
          read = storeWeightFp8(editor, model, node, p.value, f, one, scale, zero, exclusive(editor, p.value, weightSlotUses.get(p.value) ?? 0), changes);
          fp8Done.set(p.value, read);
        }
        if (read !== p.value) editor.replaceInput(node, p.index, read);
        continue;
      }
      let dq = qdqDone.get(p.value);
      if (!dq) {
        const q = editor.fresh(`${p.value}_${f.name}`);
        dq = editor.fresh(`${p.value}_${f.name}_dq`);
        const qn = editor.node('QuantizeLinear', [p.value, one, zero], [q], `${name}/unitscale_q${p.index}`);
        const dn = editor.node('DequantizeLinear', [q, one, zero], [dq], `${name}/unitscale_dq${p.index}`);
        editor.insertBefore(node, qn, dn);
        qdqDone.set(p.value, dq);
        changes.push({
          pass: 'qdq',
          node: qn.name!,
          op: 'QuantizeLinear',
          action: 'quantize',
          value: p.value,
          inserted: `QuantizeLinear/DequantizeLinear (${f.name}, scale ${scale}) → ${dq} into ${name} input ${p.index}`,
          constant: scale,
          reason: p.factor !== 1 ? `operand unit-scaled (× ${p.factor}) before rounding to ${f.name}` : `operand rounded to ${f.name} (no multiplier: already at scale ≈ 1 or scale unknown)`,
        });
      }
      editor.replaceInput(node, p.index, dq);
    }
  }
}

/** Is every use of this initializer a weight slot of a quantised op (so the float copy can go)? */
function exclusive(editor: ModelEditor, w: string, slotUses: number): boolean {
  if (editor.isGraphOutput(w)) return false;
  let uses = 0;
  for (const c of editor.consumers(w)) uses += (c.input ?? []).filter((v) => v === w).length + (hasSubgraph(c) ? 1 : 0);
  return uses === slotUses;
}

function hasSubgraph(n: NodeProto): boolean {
  return (n.attribute ?? []).some((a) => a.g || (a.graphs ?? []).length > 0);
}

function storeWeightFp8(
  editor: ModelEditor,
  model: Model,
  node: NodeProto,
  w: string,
  f: Format,
  one: string,
  scale: number,
  zero: string,
  exclusiveUse: boolean,
  changes: Change[],
): string {
  const { tensor: t, node: constNode } = editor.weightTensor(w)!;
  const values = new TensorData(t, model.dir).toFloat64();
  const codes = new Uint8Array(values.length);
  const q = new Float64Array(values.length);
  let saturated = 0;
  let flushed = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]! / scale;
    codes[i] = encode(v, f, true);
    q[i] = quantise(v, f, true) * scale;
    if (Math.abs(v) > f.max) saturated++;
    else if (v !== 0 && q[i] === 0) flushed++;
  }
  const sqnr = sqnrDb(values, q);
  const stats = `SQNR ${sqnr === null ? '∞' : sqnr.toFixed(1)} dB${saturated ? `, ${saturated} saturated` : ''}${flushed ? `, ${flushed} flushed to 0` : ''}`;
  if (exclusiveUse) {
    // The float weight is replaced outright: FP8 bytes + a DequantizeLinear producing its old name.
    if (constNode) editor.removeNode(constNode);
    else editor.removeInitializer(w);
    const w8 = editor.addInitializer({ name: `${w}_${f.name}`, data_type: f.onnxType!, dims: t.dims ?? [], raw_data: codes, ...(t.doc_string ? { doc_string: t.doc_string } : {}) });
    const dq = editor.node('DequantizeLinear', [w8, one, zero], [w], `${w}/unitscale_dq`);
    editor.insertAtStart(dq);
    changes.push({ pass: 'qdq', node: dq.name!, op: 'DequantizeLinear', action: 'fp8-weight', value: w, inserted: `${w} stored as ${f.name} initializer ${w8} (${values.length} bytes) + DequantizeLinear`, constant: scale, reason: `${scale === 1 ? 'weight at unit scale' : `scale ${scale}`}; ${stats}` });
    return w;
  }
  const w8 = editor.addInitializer({ name: `${w}_${f.name}`, data_type: f.onnxType!, dims: t.dims ?? [], raw_data: codes });
  const out = editor.fresh(`${w}_${f.name}_dq`);
  const dq = editor.node('DequantizeLinear', [w8, one, zero], [out], `${w}/unitscale_dq`);
  editor.insertAtStart(dq);
  changes.push({ pass: 'qdq', node: dq.name!, op: 'DequantizeLinear', action: 'fp8-weight', value: w, inserted: `FP8 copy ${w8} + DequantizeLinear → ${out} (the float ${w} is still used elsewhere)`, constant: scale, reason: `${scale === 1 ? 'weight at unit scale' : `scale ${scale}`}; ${stats}` });
  return out;
}
