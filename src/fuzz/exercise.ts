/**
 * What the CLI does with a model file before and during analysis, stage by stage: load it,
 * order every graph, decode every initializer and Constant (streaming), then run the analysis
 * when src/analysis/analyze.ts exists. The fuzzer runs this on every mutated case.
 */
import { loadModel } from '../onnx/load.js';

export type Stage = 'load' | 'topo' | 'decode' | 'analyze' | 'done';

export interface ExerciseResult {
  nodes: number;
  initializers: number;
  values: number;
  analyzed: boolean;
}

type AnalyzeFn = (model: unknown) => unknown;
let analyzer: AnalyzeFn | null | undefined;

/** The analysis entry point, or null while src/analysis/analyze.ts does not exist. */
export async function loadAnalyzer(): Promise<AnalyzeFn | null> {
  if (analyzer !== undefined) return analyzer;
  // A variable specifier: the module is written in parallel and may not exist yet.
  const spec = '../analysis/analyze.js';
  try {
    const mod = (await import(spec)) as Record<string, unknown>;
    // What the CLI runs: the weight pass (readers of every weight range), then the propagation.
    const fn = mod.analyzeModelAsync ?? mod.analyzeModel ?? mod.analyze;
    analyzer = typeof fn === 'function' ? (fn as AnalyzeFn) : null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ERR_MODULE_NOT_FOUND') throw e;
    analyzer = null;
  }
  return analyzer;
}

export async function exerciseModel(file: string, onStage: (s: Stage) => void = () => {}, opts: { analyze?: boolean } = {}): Promise<ExerciseResult> {
  onStage('load');
  const model = loadModel(file);
  onStage('topo');
  let nodes = 0;
  for (const g of model.graph.allGraphs()) nodes += g.topologicalOrder().length;
  onStage('decode');
  let initializers = 0;
  let values = 0;
  let sink = 0;
  for (const g of model.graph.allGraphs()) {
    const tensors = [...g.initializers.values()];
    for (const n of g.nodes) {
      if (n.opType !== 'Constant' || n.domain !== '' || !n.outputs[0]) continue;
      const t = g.constant(n.outputs[0]);
      if (t) tensors.push(t);
    }
    for (const t of tensors) {
      initializers++;
      for (const chunk of t.chunks()) {
        values += chunk.length;
        if (chunk.length) sink += chunk[0]!;
      }
    }
  }
  let analyzed = false;
  if (opts.analyze !== false) {
    const analyze = await loadAnalyzer();
    if (analyze) {
      onStage('analyze');
      await analyze(model);
      analyzed = true;
    }
  }
  onStage('done');
  return { nodes, initializers, values: values + (sink === sink ? 0 : 0), analyzed };
}
