/**
 * What a model holds, for `unitscale inspect`: opsets, I/O, op histogram, parameters by dtype
 * (initializers, Constant nodes and everything inside subgraphs), external files, functions.
 */
import { dtypeName } from './dtype.js';
import type { Dim, Graph, Model } from './model.js';
import { typeFromProto } from './model.js';
import type { ValueInfoProto } from './proto-types.js';
import { constantNodeTensor } from './model.js';
import type { TensorData } from './tensor.js';

export interface ValueSummary {
  name: string;
  dtype: string;
  shape: Dim[] | null;
}

export interface Inventory {
  path: string | null;
  irVersion: number;
  opsets: Record<string, number>;
  producer: { name: string; version: string };
  graphName: string;
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  nodes: number;
  subgraphs: number;
  opTypes: Record<string, number>;
  parameters: { count: number; bytes: number; byDtype: Record<string, { tensors: number; count: number; bytes: number }> };
  externalFiles: { file: string; tensors: number; bytes: number }[];
  functions: { domain: string; name: string; nodes: number }[];
  metadata: Record<string, string>;
}

function summarise(v: ValueInfoProto): ValueSummary {
  const t = typeFromProto(v.type);
  return { name: v.name ?? '', dtype: t ? dtypeName(t.dtype) : 'non-tensor', shape: t ? t.shape : null };
}

export function inventory(model: Model): Inventory {
  const opTypes: Record<string, number> = {};
  const byDtype: Inventory['parameters']['byDtype'] = {};
  const external = new Map<string, { tensors: number; bytes: number }>();
  let nodes = 0;
  let subgraphs = -1;
  const addTensor = (t: TensorData) => {
    const key = t.dtypeName;
    const e = (byDtype[key] ??= { tensors: 0, count: 0, bytes: 0 });
    e.tensors++;
    e.count += t.count;
    e.bytes += t.byteLength;
    if (t.external) {
      const x = external.get(t.external.location) ?? { tensors: 0, bytes: 0 };
      x.tensors++;
      x.bytes += t.external.length;
      external.set(t.external.location, x);
    }
  };
  const visit = (g: Graph) => {
    subgraphs++;
    for (const t of g.initializers.values()) addTensor(t);
    for (const n of g.nodes) {
      nodes++;
      const key = n.domain ? `${n.domain}.${n.opType}` : n.opType;
      opTypes[key] = (opTypes[key] ?? 0) + 1;
      if (n.opType === 'Constant' && n.domain === '') {
        const t = constantNodeTensor(n, model.dir);
        if (t) addTensor(t);
      }
    }
  };
  for (const g of model.graph.allGraphs()) visit(g);
  const count = Object.values(byDtype).reduce((a, e) => a + e.count, 0);
  const bytes = Object.values(byDtype).reduce((a, e) => a + e.bytes, 0);
  return {
    path: model.path,
    irVersion: model.irVersion,
    opsets: Object.fromEntries([...model.opsets].map(([d, v]) => [d || 'ai.onnx', v])),
    producer: { name: model.proto.producer_name ?? '', version: model.proto.producer_version ?? '' },
    graphName: model.graph.name,
    inputs: model.graph.inputs.map(summarise),
    outputs: model.graph.outputs.map(summarise),
    nodes,
    subgraphs,
    opTypes: Object.fromEntries(Object.entries(opTypes).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))),
    parameters: { count, bytes, byDtype },
    externalFiles: [...external].map(([file, e]) => ({ file, ...e })),
    functions: model.functions.map((f) => ({ domain: f.domain ?? '', name: f.name ?? '', nodes: (f.node ?? []).length })),
    metadata: Object.fromEntries((model.proto.metadata_props ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
  };
}
