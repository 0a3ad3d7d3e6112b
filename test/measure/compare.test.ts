import { describe, expect, it } from 'vitest';
import { compareReports, log2Error } from '../../src/measure/compare.js';
import type { Report, TensorReport } from '../../src/report/types.js';

function tensor(name: string, rms: number | null, extra: Partial<TensorReport> = {}): TensorReport {
  return {
    name, kind: 'activation', op: 'MatMul', node: `n_${name}`, dtype: 'float32', shape: [4, 4],
    mean: 0, rms, absmax: rms === null ? null : rms * 4,
    risk: { fp16: { overflow: 0, underflow: 0, subnormal: 0, sqnrDb: 70 } }, ...extra,
  };
}

function report(mode: Report['mode'], tensors: TensorReport[]): Report {
  return {
    tool: { name: 'unitscale', version: '0.1.0' },
    model: { path: 'm.onnx', irVersion: 10, opsets: { 'ai.onnx': 18 } },
    mode, formats: ['fp16'], tensors,
    summary: { tensors: tensors.length, formats: {}, ...(mode === 'predicted' ? { unsupportedOps: ['Foo'] } : {}) },
  };
}

describe('compareReports', () => {
  const predicted = report('predicted', [
    tensor('a', 1), tensor('b', 8, { distribution: 'gaussian' }), tensor('c', 0.25), tensor('z', 0), tensor('u', null), tensor('only_pred', 1),
  ]);
  const measured = report('measured', [
    tensor('a', 1, { measured: { std: 1, min: -3, max: 3, absP50: 0.6, absP99: 2.5, absP999: 3, fracZero: 0, count: 16, nonFinite: 0 } }),
    tensor('b', 2), tensor('c', 0.5), tensor('z', 0), tensor('u', 3), tensor('only_meas', 1),
  ]);
  const r = compareReports(predicted, measured);

  it('puts the prediction and its log2 error on each measured tensor', () => {
    expect(r.mode).toBe('compare');
    expect(r.tensors.map((t) => t.name)).toEqual(['a', 'b', 'c', 'z', 'u', 'only_meas']);
    const by = new Map(r.tensors.map((t) => [t.name, t]));
    expect(by.get('a')!.predicted).toEqual({ mean: 0, rms: 1, absmax: 4, log2Error: 0 });
    expect(by.get('a')!.measured!.count).toBe(16);
    expect(by.get('b')!.predicted!.log2Error).toBe(2);
    expect(by.get('b')!.distribution).toBe('gaussian');
    expect(by.get('c')!.predicted!.log2Error).toBe(-1);
    expect(by.get('z')!.predicted!.log2Error).toBe(0);
    expect(by.get('u')!.predicted!.log2Error).toBeNull();
    expect(by.get('only_meas')!.predicted).toBeUndefined();
  });

  it('flags errors beyond 1 bit (not exactly 1) and summarises', () => {
    const by = new Map(r.tensors.map((t) => [t.name, t]));
    expect(by.get('b')!.note).toMatch(/prediction off by \+2\.00 bits/);
    expect(by.get('c')!.note).toBeUndefined();
    const c = r.summary.compare as { matched: number; flagged: number; medianAbsLog2Error: number; maxAbsLog2Error: number; worst: { name: string }[]; missingFromPrediction: number };
    expect(c.matched).toBe(4);
    expect(c.flagged).toBe(1);
    expect(c.medianAbsLog2Error).toBe(0.5);
    expect(c.maxAbsLog2Error).toBe(2);
    expect(c.worst[0]!.name).toBe('b');
    expect(c.missingFromPrediction).toBe(1);
    expect(r.summary.unsupportedOps).toEqual(['Foo']);
  });

  it('log2Error edge cases', () => {
    expect(log2Error(4, 1)).toBe(2);
    expect(log2Error(0, 1)).toBeNull();
    expect(log2Error(null, 1)).toBeNull();
    expect(log2Error(Infinity, 1)).toBeNull();
  });
});
