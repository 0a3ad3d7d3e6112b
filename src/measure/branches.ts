/**
 * Making If bodies measurable. Values inside an If branch are not graph values, so ORT cannot
 * return them. But with concrete inputs the condition is concrete: when every run takes the
 * same branch of a top-level If, the If is replaced by that branch's nodes (plus Identity nodes
 * from the branch outputs to the If outputs), which computes the same values with the same
 * kernels, and its intermediates become ordinary graph values. Repeated for Ifs nested in the
 * inlined branches. Ifs whose branch differs between runs, and Loop/Scan bodies, stay as they
 * are (their inner values are reported as not measurable).
 */
import * as ort from 'onnxruntime-node';
import { ExitCode, UnitscaleError } from '../errors.js';
import { DataType } from '../onnx/dtype.js';
import { Model } from '../onnx/model.js';
import type { GraphProto, ModelProto, NodeProto } from '../onnx/proto-types.js';
import { createSession, modelWithOutputs, oneLine, toOrtFeeds } from './capture.js';
import type { FeedSet } from './inputs.js';

export interface Inlined {
  model: Model;
  /** value name → "then_branch of If 'If_25'" for values that came out of an inlined branch. */
  origin: Map<string, string>;
  notes: string[];
}

const MAX_ROUNDS = 8;

export async function inlineTakenBranches(model: Model, sets: FeedSet[]): Promise<Inlined> {
  const origin = new Map<string, string>();
  const notes: string[] = [];
  let current = model;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const ifs = current.graph.nodes.filter((n) => n.opType === 'If' && n.domain === '' && n.inputs[0]);
    if (ifs.length === 0 || sets.length === 0) break;
    const conds = [...new Set(ifs.map((n) => n.inputs[0]!))];
    const values = await fetchConditions(current, conds, sets);
    const choice = new Map<string, 'then_branch' | 'else_branch'>();
    for (const n of ifs) {
      const v = values.get(n.inputs[0]!);
      if (!v || v.length === 0) continue;
      if (v.every((b) => b === v[0])) choice.set(n.name, v[0] ? 'then_branch' : 'else_branch');
      else notes.push(`If '${n.name}' takes different branches across runs: its branches are not measured`);
    }
    if (choice.size === 0) break;
    const g = current.proto.graph!;
    const nodes: NodeProto[] = [];
    const initializer = [...(g.initializer ?? [])];
    const valueInfo = [...(g.value_info ?? [])];
    current.graph.nodes.forEach((n) => {
      const which = choice.get(n.name);
      if (!which) {
        nodes.push(n.proto);
        return;
      }
      const branch = n.attrs.graph(which) as GraphProto;
      const where = `${which} of If '${n.name}'`;
      notes.push(`If '${n.name}' takes its ${which.replace('_branch', '')} branch on every run: measured inside it`);
      for (const b of branch.node ?? []) {
        nodes.push(b);
        for (const o of b.output ?? []) if (o) origin.set(o, where);
      }
      for (const t of branch.initializer ?? []) {
        initializer.push(t);
        if (t.name) origin.set(t.name, where);
      }
      valueInfo.push(...(branch.value_info ?? []), ...(branch.output ?? []).filter((o) => o.type?.tensor_type?.elem_type));
      (branch.output ?? []).forEach((bo, i) => {
        const out = n.outputs[i];
        if (out) nodes.push({ op_type: 'Identity', name: `${n.name}/${which}/output_${i}`, input: [bo.name ?? ''], output: [out] });
      });
    });
    const proto: ModelProto = { ...current.proto, graph: { ...g, node: nodes, initializer, value_info: valueInfo } };
    try {
      current = new Model(proto, model.path, model.dir);
    } catch (e) {
      // A branch whose names collide with the outer graph's: keep the If as it is.
      notes.push(`could not inline the If branches (${oneLine(e)}): their values are not measured`);
      break;
    }
  }
  return { model: current, origin, notes };
}

/** The boolean condition values, per run. */
async function fetchConditions(model: Model, names: string[], sets: FeedSet[]): Promise<Map<string, boolean[]>> {
  const out = new Map<string, boolean[]>();
  let session: ort.InferenceSession;
  try {
    session = await createSession(model, modelWithOutputs(model.proto, names.map((name) => ({ name, dtype: DataType.BOOL }))));
  } catch {
    return out; // a condition that is not a plain bool graph value: leave the Ifs alone
  }
  try {
    for (const set of sets) {
      let res: ort.InferenceSession.OnnxValueMapType;
      try {
        res = await session.run(toOrtFeeds(set));
      } catch (e) {
        throw new UnitscaleError(`ONNX Runtime failed running the model: ${oneLine(e)}`, ExitCode.RUNTIME);
      }
      for (const n of names) {
        const t = res[n] as ort.Tensor | undefined;
        if (!t || t.size !== 1) continue;
        const list = out.get(n) ?? [];
        list.push(Boolean(Number((t.data as ArrayLike<number | boolean>)[0])));
        out.set(n, list);
      }
    }
  } finally {
    await session.release();
  }
  for (const [k, v] of out) if (v.length !== sets.length) out.delete(k);
  return out;
}
