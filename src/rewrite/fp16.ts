/**
 * Casting a float32 graph to fp16 or bf16, keeping what would break in float32.
 *
 * Each node of the main graph gets a precision: the target type (its float32 inputs and
 * outputs become fp16/bf16) or float32. A node stays in float32 when
 *   - one of its float tensors is predicted out of the format's range: overflow (|x| past
 *     the max, e.g. x² in a decomposed LayerNorm of large activations) or underflow (RMS
 *     below the smallest normal, e.g. the vanishing activations of a randomly initialised
 *     CNN) — unless the overflow comes from a mask (below);
 *   - it is not a default-domain op, owns a subgraph, or is an op whose float type is fixed
 *     (QuantizeLinear/DequantizeLinear, random generators, …).
 * Casts are inserted wherever a value's stored type differs from what a consumer computes in.
 *
 * Masks: a constant holding a few huge sentinels next to ordinary values (a causal mask
 * filled with float32's lowest, -3.4e38) would become -Inf in fp16, and Inf − Inf = NaN in
 * the Softmax that follows. Such constants are saturated to the format's largest finite
 * magnitude (-65504 still blocks a logit: exp(-65504) = 0), and the tensors computed from
 * them by Add/Where/Reshape/… are not counted as overflowing.
 *
 * Constants are converted with the exact quantiser (round to nearest even). The unit-scale
 * pass before this one has already put every MatMul/Gemm/Conv operand at RMS ≈ 1, which is
 * what keeps those ops in range; the cast pass is told the scales of the values it created.
 */
import { DataType, dtypeName } from '../onnx/dtype.js';
import { encode, quantise, type Format } from '../formats/index.js';
import { Model, type Node } from '../onnx/model.js';
import { toNumber } from '../onnx/proto.js';
import type { NodeProto, TensorProto, ValueInfoProto } from '../onnx/proto-types.js';
import { TensorData } from '../onnx/tensor.js';
import { valueDtypes } from '../measure/capture.js';
import { getAttribute, makeAttribute, setAttribute, type ModelEditor } from './edit.js';
import { upgradeOpset } from './opset.js';
import type { ScaleSource, TensorScale } from './scales.js';
import type { Change } from './types.js';

export interface CastOptions {
  format: Format;
  keepIoTypes: boolean;
  scales: ScaleSource;
  /** Keep nothing in float32 and saturate nothing: the naive conversion (for comparisons). */
  naive?: boolean;
}

const FLOAT = DataType.FLOAT;

/** Ops whose float types are pinned by attributes or scales: left in float32. */
const FP32_ONLY = new Set([
  'QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear', 'RandomNormal', 'RandomUniform', 'RandomNormalLike',
  'RandomUniformLike', 'EyeLike', 'Multinomial', 'Bernoulli', 'STFT', 'DFT', 'MelWeightMatrix', 'HannWindow', 'HammingWindow',
  'BlackmanWindow', 'QLinearConv', 'QLinearMatMul', 'ConvInteger', 'MatMulInteger',
]);

/**
 * Ops whose ONNX schema at opset 19 has no bfloat16 type (most gained it at opset 22): with
 * --format bf16 they stay in float32, or the model would not be valid.
 */
const NO_BF16 = new Set([
  'Conv', 'ConvTranspose', 'AveragePool', 'MaxPool', 'GlobalAveragePool', 'GlobalMaxPool', 'LpPool', 'GlobalLpPool',
  'InstanceNormalization', 'LRN', 'RoiAlign', 'MaxRoiPool', 'MaxUnpool', 'Acos', 'Asin', 'Atan', 'Cos', 'Sin', 'Tan', 'Cosh',
  'Sinh', 'Acosh', 'Asinh', 'Atanh', 'Elu', 'Selu', 'ThresholdedRelu', 'HardSigmoid', 'HardSwish', 'Softsign', 'Softplus', 'Mish',
  'LpNormalization', 'GRU', 'LSTM', 'RNN', 'Det', 'GridSample', 'Celu', 'Round', 'TopK', 'Range', 'Einsum',
]);

/** Ops through which a mask's sentinels pass unchanged (still a mask afterwards). */
const MASK_PASS = new Set([
  'Add', 'Sub', 'Where', 'Expand', 'Reshape', 'Slice', 'Concat', 'Unsqueeze', 'Squeeze', 'Transpose', 'Cast', 'Min', 'Max',
  'Identity', 'Gather', 'Tile', 'Flatten', 'Mul',
]);

/** Inputs that keep their own type whatever the node computes in. */
function slotKind(op: string, i: number): 'follow' | 'any' | 'fixed' {
  if ((op === 'Cast' || op === 'Shape' || op === 'Size' || op === 'CastLike') && i === 0) return 'any';
  if (op === 'Resize' && (i === 1 || i === 2)) return 'fixed';
  if (op === 'Upsample' && i === 1) return 'fixed';
  if (op === 'Dropout' && i === 1) return 'any';
  return 'follow';
}

/** Outputs whose type does not follow the node's precision. */
function outputFollows(op: string, i: number): boolean {
  if (op === 'LayerNormalization' && i > 0) return false; // Mean, InvStdDev: stash_type
  return true;
}

type Verdict = { kind: 'overflow' | 'underflow'; detail: string };

function fmtNum(x: number): string {
  return Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : x.toPrecision(3);
}

/** Is a tensor of this scale outside the format's useful range? */
export function rangeVerdict(s: TensorScale, f: Format): Verdict | null {
  const r = s.risk?.[f.name];
  // A measured or exact max is the truth; a predicted one may be a loose bound, so predictions
  // go by their overflow share (with a 4σ margin on the RMS for tails the model does not see).
  const known = s.absmax !== null && Number.isFinite(s.absmax) && s.origin !== 'predicted';
  if ((r && r.overflow > 1e-6) || (known && s.absmax! > f.max) || s.rms * 4 > f.max) {
    return { kind: 'overflow', detail: `${s.origin ?? 'predicted'} ${known ? `max |x| ${fmtNum(s.absmax!)}` : `RMS ${fmtNum(s.rms)}`}${r && r.overflow > 0 ? ` (${(r.overflow * 100).toPrecision(2)}% past ${fmtNum(f.max)})` : ` > ${f.name} max ${fmtNum(f.max)}`}` };
  }
  if (s.rms > 0 && s.rms < f.minNormal) {
    return { kind: 'underflow', detail: `${s.origin ?? 'predicted'} RMS ${fmtNum(s.rms)} < ${f.name} smallest normal ${fmtNum(f.minNormal)}` };
  }
  return null;
}

interface ConstInfo {
  values: Float64Array;
  outOfRange: number;
  /** A mask: a few sentinel values past the range next to in-range ones. */
  maskLike: boolean;
}

function constInfo(values: Float64Array, f: Format): ConstInfo {
  let out = 0;
  let inRange = 0;
  const big = new Set<number>();
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (Math.abs(v) > f.max) {
      out++;
      if (big.size < 3) big.add(v);
    } else inRange++;
  }
  return { values, outOfRange: out, maskLike: out > 0 && inRange > 0 && big.size <= 2 };
}

/** Convert a float32 tensor proto to the target type in place (saturating when asked). */
function convertTensor(t: TensorProto, values: Float64Array, f: Format, saturate: boolean): { saturated: number; flushed: number } {
  let saturated = 0;
  let flushed = 0;
  const q = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    let x = v;
    if (saturate && Number.isFinite(v) && Math.abs(v) > f.max) {
      x = Math.sign(v) * f.max;
      saturated++;
    }
    q[i] = x;
    if (v !== 0 && Number.isFinite(v) && Math.abs(v) <= f.max && quantise(v, f) === 0) flushed++;
  }
  t.data_type = f.onnxType!;
  t.raw_data = encodeHalf(q, f);
  for (const k of ['float_data', 'int32_data', 'double_data', 'external_data'] as const) delete t[k];
  delete t.data_location;
  return { saturated, flushed };
}

/** Bit patterns by the exact quantiser: round to nearest even, ±Inf past the max (as Cast does). */
function encodeHalf(values: Float64Array, f: Format): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = encode(values[i]!, f, false);
  return new Uint8Array(out.buffer);
}

function tensorOf(model: Model, t: TensorProto): Float64Array {
  return new TensorData(t, model.dir).toFloat64();
}

export function castGraph(editor: ModelEditor, model: Model, opts: CastOptions, changes: Change[]): void {
  const f = opts.format;
  const T = f.onnxType!;
  // bfloat16 reached most op schemas between opsets 13 and 16.
  if (T === DataType.BFLOAT16 && editor.opset < 19) upgradeOpset(editor, 19, changes);
  const g = editor.graph;
  const view = new Model(editor.proto, model.path, model.dir);
  const dtypes = valueDtypes(view.graph, null);
  const isF32 = (v: string | undefined): v is string => !!v && dtypes.get(v) === FLOAT;
  const naive = opts.naive ?? false;

  // ---- Constants: exact values, out-of-range counts, masks.
  const constants = new Map<string, ConstInfo>();
  for (const t of g.initializer ?? []) {
    if (t.name && (t.data_type ?? FLOAT) === FLOAT) constants.set(t.name, constInfo(tensorOf(model, t), f));
  }
  for (const n of g.node ?? []) {
    if ((n.domain ?? '') !== '') continue;
    if (n.op_type === 'Constant') {
      const vn = view.graph.constant(n.output?.[0] ?? '');
      if (vn && vn.dtype === FLOAT) constants.set(n.output![0]!, constInfo(vn.toFloat64(), f));
    } else if (n.op_type === 'ConstantOfShape') {
      const v = getAttribute(n, 'value')?.t;
      if (v && (v.data_type ?? FLOAT) === FLOAT) constants.set(n.output![0]!, constInfo(new TensorData(v, model.dir).toFloat64(), f));
    }
  }

  // ---- Range verdicts of every float32 value (constants: exact).
  const verdict = new Map<string, Verdict>();
  for (const [v, dt] of dtypes) {
    if (dt !== FLOAT) continue;
    const c = constants.get(v);
    if (c) {
      if (c.outOfRange > 0) verdict.set(v, { kind: 'overflow', detail: `${c.outOfRange} constant value(s) past ${f.name} max ${fmtNum(f.max)}` });
      continue;
    }
    const s = opts.scales(v);
    if (!s) continue;
    const r = rangeVerdict(s, f);
    if (r) verdict.set(v, r);
  }

  // ---- Mask-derived values: overflow that comes from saturable sentinels.
  const maskDerived = new Set<string>();
  for (const [v, c] of constants) if (c.maskLike) maskDerived.add(v);
  const topo: Node[] = view.graph.topologicalOrder();
  for (const n of topo) {
    if (n.domain !== '' || !MASK_PASS.has(n.opType)) continue;
    const floatIns = n.inputs.filter((i) => isF32(i));
    const fromMask = floatIns.some((i) => maskDerived.has(i));
    const othersOk = floatIns.every((i) => maskDerived.has(i) || verdict.get(i)?.kind !== 'overflow');
    if (fromMask && othersOk) for (const o of n.outputs) if (isF32(o)) maskDerived.add(o);
  }
  const problem = (v: string): Verdict | null => {
    if (naive) return null;
    const r = verdict.get(v);
    if (!r) return null;
    if (r.kind === 'overflow' && maskDerived.has(v)) return null;
    return r;
  };

  // ---- Node precisions. null: the node has no float32 tensor (untouched).
  const half = new Map<NodeProto, boolean>();
  const why = new Map<NodeProto, string>();
  const captured = new Set<string>();
  for (const n of view.graph.nodes) for (const c of n.implicitInputs()) captured.add(c);
  const isConstNode = (n: NodeProto) => (n.domain ?? '') === '' && (n.op_type === 'Constant' || n.op_type === 'ConstantOfShape');
  for (const n of g.node ?? []) {
    if (isConstNode(n)) continue;
    const op = n.op_type ?? '';
    const ins = (n.input ?? []).filter((v, i) => isF32(v) && slotKind(op, i) === 'follow');
    const outs = (n.output ?? []).filter((v, i) => isF32(v) && outputFollows(op, i));
    if (ins.length === 0 && outs.length === 0) continue;
    let reason: string | null = null;
    if ((n.domain ?? '') !== '' && n.domain !== 'ai.onnx') reason = `custom domain '${n.domain}': its type constraints are unknown`;
    else if ((n.attribute ?? []).some((a) => a.g || (a.graphs ?? []).length > 0)) reason = 'owns a subgraph';
    else if (FP32_ONLY.has(op)) reason = 'its float types are fixed by the op';
    else if (T === DataType.BFLOAT16 && NO_BF16.has(op)) reason = `${op} has no bfloat16 type at opset ${editor.opset} (ONNX schema)`;
    else if (outs.some((o) => captured.has(o))) reason = 'its output is read inside a subgraph';
    else if (!naive) {
      for (const v of [...ins, ...outs]) {
        const p = problem(v);
        if (p) {
          reason = `${ins.includes(v) ? 'input' : 'output'} '${v}' would ${p.kind} in ${f.name}: ${p.detail}`;
          break;
        }
      }
    }
    half.set(n, reason === null);
    if (reason) why.set(n, reason);
  }

  // ---- Storage type of every float32 value.
  const producer = new Map<string, NodeProto>();
  for (const n of g.node ?? []) (n.output ?? []).forEach((o) => o && producer.set(o, n));
  const graphInputs = new Set((g.input ?? []).map((v) => v.name ?? ''));
  const wants = (n: NodeProto, i: number): number | null => {
    const v = n.input?.[i];
    if (!isF32(v)) return null;
    const kind = slotKind(n.op_type ?? '', i);
    if (kind === 'any') return null;
    if (kind === 'fixed') return FLOAT;
    const h = half.get(n);
    if (h === undefined) return null;
    return h ? T : FLOAT;
  };
  /** Every (node, slot) reading v, with the type it wants. */
  const demand = new Map<string, { node: NodeProto; slot: number; type: number }[]>();
  for (const n of g.node ?? []) {
    (n.input ?? []).forEach((v, i) => {
      const w = wants(n, i);
      if (w === null || !v) return;
      let l = demand.get(v);
      if (!l) demand.set(v, (l = []));
      l.push({ node: n, slot: i, type: w });
    });
  }
  for (const c of captured) {
    if (!isF32(c)) continue;
    let l = demand.get(c);
    if (!l) demand.set(c, (l = []));
    l.push({ node: {}, slot: -1, type: FLOAT }); // read by a subgraph: must stay float32
  }

  const storage = new Map<string, number>();
  const castCache = new Map<string, string>();
  const halfCopies = new Map<string, string>();

  // Constant-producing nodes and initializers take the type their readers want.
  const constantType = (v: string): number => {
    if (naive) return (demand.get(v) ?? []).some((d) => d.type === T) ? T : FLOAT;
    const ds = demand.get(v) ?? [];
    const c = constants.get(v)!;
    const anyHalf = ds.some((d) => d.type === T);
    if (!anyHalf) return FLOAT;
    if (c.outOfRange > 0 && !c.maskLike) return FLOAT; // (its readers are float32 anyway)
    return T;
  };

  let converted = 0;
  let convertedBytes = 0;
  for (const t of [...(g.initializer ?? [])]) {
    const v = t.name ?? '';
    if (!constants.has(v)) continue;
    if (graphInputs.has(v) && editor.irVersion >= 4) {
      storage.set(v, FLOAT);
      continue;
    }
    const ds = demand.get(v) ?? [];
    const ty = constantType(v);
    const needsFloat = ds.some((d) => d.type === FLOAT) || editor.isGraphOutput(v);
    const c = constants.get(v)!;
    if (ty === T && !needsFloat) {
      const r = convertTensor(t, c.values, f, !naive);
      storage.set(v, T);
      converted++;
      convertedBytes += c.values.length * 2;
      if (r.saturated > 0) changes.push({ pass: 'fp16', node: v, op: 'initializer', action: 'saturate', value: v, inserted: `${r.saturated} value(s) clamped to ±${fmtNum(f.max)}`, constant: -f.max, reason: `a mask: its sentinels (float32 extremes) would become ±Inf in ${f.name}, and −Inf − (−Inf) = NaN in the Softmax after it` });
      if (r.flushed > 0) changes.push({ pass: 'fp16', node: v, op: 'initializer', action: 'convert-constant', value: v, inserted: `${r.flushed} of ${c.values.length} value(s) flush to 0 in ${f.name}`, constant: null, reason: 'below the smallest subnormal' });
    } else {
      storage.set(v, FLOAT);
      if (ty === T || ds.some((d) => d.type === T)) {
        const copy: TensorProto = { name: `${v}_${f.name}`, dims: t.dims ?? [], data_type: FLOAT };
        const r = convertTensor(copy, c.values, f, !naive);
        const name = editor.addInitializer(copy);
        halfCopies.set(v, name);
        changes.push({ pass: 'fp16', node: v, op: 'initializer', action: 'convert-constant', value: v, inserted: `${f.name} copy ${name}${r.saturated ? ` (${r.saturated} value(s) saturated)` : ''}`, constant: null, reason: 'read by both float32 and ' + f.name + ' ops' });
      }
    }
  }
  if (converted > 0) changes.push({ pass: 'fp16', node: '(initializers)', op: 'initializer', action: 'convert-constant', value: null, inserted: `${converted} float32 initializers stored as ${f.name} (${convertedBytes} bytes)`, constant: null, reason: 'round to nearest even with the exact quantiser' });

  for (const n of g.node ?? []) {
    if (!isConstNode(n)) continue;
    const v = n.output?.[0];
    if (!v || !constants.has(v)) continue;
    const ty = constantType(v);
    storage.set(v, ty);
    if (ty !== T) continue;
    const c = constants.get(v)!;
    let t: TensorProto | undefined;
    if (n.op_type === 'ConstantOfShape') t = getAttribute(n, 'value')?.t;
    else {
      const a = (n.attribute ?? []).find((x) => ['value', 'value_float', 'value_floats'].includes(x.name ?? ''));
      if (a && a.name === 'value') t = a.t;
      else if (a) {
        // value_float(s): re-express as a tensor of the target type.
        const dims = a.name === 'value_float' ? [] : [c.values.length];
        t = { name: '', dims, data_type: FLOAT };
        n.attribute = (n.attribute ?? []).filter((x) => x !== a);
        setAttribute(n, makeAttribute('value', t));
      }
    }
    if (!t) {
      storage.set(v, FLOAT);
      continue;
    }
    const r = convertTensor(t, c.values, f, !naive);
    changes.push({ pass: 'fp16', node: n.name || n.op_type || '', op: n.op_type ?? '', action: r.saturated ? 'saturate' : 'convert-constant', value: v, inserted: r.saturated ? `${r.saturated} value(s) clamped to ±${fmtNum(f.max)}` : `value stored as ${f.name}`, constant: r.saturated ? -f.max : null, reason: r.saturated ? 'a mask: its sentinels would become ±Inf' : 'read by ' + f.name + ' ops' });
  }

  for (const vi of g.input ?? []) {
    const v = vi.name ?? '';
    if (constants.has(v) && editor.irVersion < 4) {
      // IR < 4: the initializer's input entry declares its (new) type.
      if (storage.get(v) === T) setElemType(vi, T);
      continue;
    }
    if (!isF32(v)) continue;
    if (storage.has(v)) continue;
    const p = problem(v);
    const keep = opts.keepIoTypes || p !== null || captured.has(v);
    storage.set(v, keep ? FLOAT : T);
    if (!keep) setElemType(vi, T);
    else if (p && !opts.keepIoTypes) changes.push({ pass: 'fp16', node: v, op: 'input', action: 'keep-fp32', value: v, inserted: 'graph input kept float32', constant: null, reason: `would ${p.kind}: ${p.detail}` });
  }
  for (const n of g.node ?? []) {
    if (isConstNode(n)) continue;
    const h = half.get(n);
    (n.output ?? []).forEach((o, i) => {
      if (!isF32(o)) return;
      storage.set(o, h && outputFollows(n.op_type ?? '', i) ? T : FLOAT);
    });
  }

  // ---- Rewrite the nodes: Cast targets, then the edges.
  for (const n of [...(g.node ?? [])]) {
    const h = half.get(n);
    if (h === undefined) continue;
    const name = n.name || n.op_type || '';
    if (!h) {
      changes.push({ pass: 'fp16', node: name, op: n.op_type ?? '', action: 'keep-fp32', value: null, inserted: 'runs in float32 (Casts at its edges)', constant: null, reason: why.get(n) ?? '' });
    } else if (n.op_type === 'Cast' && toNumber(getAttribute(n, 'to')?.i) === FLOAT) {
      setAttribute(n, makeAttribute('to', T));
      changes.push({ pass: 'fp16', node: name, op: 'Cast', action: 'retype-cast', value: n.output?.[0] ?? null, inserted: `to = ${dtypeName(T)}`, constant: null, reason: `its consumers compute in ${f.name}` });
    }
    (n.input ?? []).forEach((v, i) => {
      const w = wants(n, i);
      if (w === null || !v) return;
      const s = storage.get(v) ?? FLOAT;
      if (s === w) return;
      if (w === T && halfCopies.has(v)) {
        n.input![i] = halfCopies.get(v)!;
        return;
      }
      const key = `${v}|${w}`;
      let c = castCache.get(key);
      if (!c) {
        c = editor.fresh(`${v}_${w === T ? f.name : 'fp32'}`);
        const cast = editor.node('Cast', [v], [c], `${v}/unitscale_cast_${w === T ? f.name : 'fp32'}`, [makeAttribute('to', w)]);
        editor.insertBefore(n, cast);
        castCache.set(key, c);
        changes.push({ pass: 'fp16', node: cast.name!, op: 'Cast', action: 'cast', value: v, inserted: `Cast(${v} → ${dtypeName(w)}) → ${c}`, constant: null, reason: w === FLOAT ? `${name} runs in float32` : `${name} runs in ${f.name}` });
      }
      n.input![i] = c;
    });
  }

  // ---- Graph outputs.
  for (const vi of g.output ?? []) {
    const v = vi.name ?? '';
    if (!isF32(v)) continue;
    const s = storage.get(v) ?? FLOAT;
    if (s !== T) continue;
    if (!opts.keepIoTypes) {
      setElemType(vi, T);
      continue;
    }
    const p = producer.get(v);
    if (!p) continue;
    const inner = editor.fresh(`${v}_${f.name}`);
    p.output = (p.output ?? []).map((o) => (o === v ? inner : o));
    for (const n of g.node ?? []) if (n !== p) n.input = (n.input ?? []).map((i) => (i === v ? inner : i));
    const cast = editor.node('Cast', [inner], [v], `${v}/unitscale_cast_out`, [makeAttribute('to', FLOAT)]);
    editor.insertAfter(p, cast);
    storage.set(inner, T);
    storage.set(v, FLOAT);
    changes.push({ pass: 'fp16', node: cast.name!, op: 'Cast', action: 'cast', value: v, inserted: `Cast(${inner} → float) → ${v}`, constant: null, reason: '--keep-io-types: the graph output stays float32' });
  }
  if (opts.keepIoTypes) {
    for (const vi of g.input ?? []) if (isF32(vi.name ?? '') && storage.get(vi.name ?? '') === FLOAT && (demand.get(vi.name ?? '') ?? []).some((d) => d.type === T)) {
      changes.push({ pass: 'fp16', node: vi.name ?? '', op: 'input', action: 'cast', value: vi.name ?? '', inserted: `graph input kept float32, cast to ${f.name} where read`, constant: null, reason: '--keep-io-types' });
    }
  }

  // ---- value_info follows the new types.
  for (const vi of g.value_info ?? []) {
    const v = vi.name ?? '';
    if (isF32(v) && storage.get(v) === T) setElemType(vi, T);
  }
  editor.invalidate();
}

function setElemType(vi: ValueInfoProto, t: number): void {
  const tt = vi.type?.tensor_type;
  if (tt) tt.elem_type = t;
}
