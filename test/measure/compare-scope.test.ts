/**
 * `measure --compare` with values inside If branches: analyze lists them with a scope; measure
 * inlines the taken branch and keeps the names, saying which branch in the note. Where names
 * repeat, the prediction of the measured branch is the one compared.
 */
import { describe, expect, it } from 'vitest';
import { compareReports } from '../../src/measure/compare.js';
import type { Report, TensorReport } from '../../src/report/types.js';

function tensor(name: string, rms: number, extra: Partial<TensorReport> = {}): TensorReport {
  return {
    name, kind: 'activation', op: 'Mul', node: `n_${name}`, dtype: 'float32', shape: [4],
    mean: 0, rms, absmax: rms * 4, risk: { fp16: { overflow: 0, underflow: 0, subnormal: 0, sqnrDb: 70 } }, ...extra,
  };
}

function report(mode: Report['mode'], tensors: TensorReport[]): Report {
  return {
    tool: { name: 'unitscale', version: '0.1.0' },
    model: { path: 'm.onnx', irVersion: 10, opsets: { 'ai.onnx': 18 } },
    mode, formats: ['fp16'], tensors, summary: { tensors: tensors.length, formats: {} },
  };
}

describe('compareReports with scoped predictions', () => {
  const predicted = report('predicted', [
    tensor('hot', 1),
    tensor('hot', 2, { scope: 'If_3/then_branch' }),
    tensor('hot', 4, { scope: 'If_3/else_branch' }),
    tensor('deep', 8, { scope: 'If_3/then_branch/If_9/else_branch' }),
    tensor('deep', 16, { scope: 'If_3/else_branch/If_12/else_branch' }),
    tensor('only_branch', 1, { scope: 'If_3/then_branch' }),
    tensor('hot', 99, { kind: 'gradient', gradientOf: 'activation' }),
  ]);

  it('matches the branch the note names, the main graph otherwise; gradients never', () => {
    const measured = report('measured', [
      tensor('hot', 1),
      tensor('hot', 4, { note: "measured inside the else_branch of If 'If_3' (taken on every run)" }),
      tensor('deep', 8, { note: "measured inside the else_branch of If 'If_9' (taken on every run)" }),
      tensor('only_branch', 2, { note: "measured inside the then_branch of If 'If_3' (taken on every run)" }),
    ]);
    const r = compareReports(predicted, measured);
    const got = r.tensors.map((t) => [t.scope ?? null, t.predicted?.rms, t.predicted?.log2Error]);
    expect(got).toEqual([
      [null, 1, 0],
      ['If_3/else_branch', 4, 0],
      ['If_3/then_branch/If_9/else_branch', 8, 0],
      ['If_3/then_branch', 1, -1],
    ]);
    const c = r.summary.compare as { matched: number; matchedInSubgraphs: number; missingFromPrediction: number };
    expect(c).toMatchObject({ matched: 4, matchedInSubgraphs: 3, missingFromPrediction: 0 });
  });

  it('a measured scope (if measure ever sets one) is matched exactly', () => {
    const r = compareReports(predicted, report('measured', [tensor('hot', 2, { scope: 'If_3/then_branch' })]));
    expect(r.tensors[0]!.predicted!.log2Error).toBe(0);
  });
});
