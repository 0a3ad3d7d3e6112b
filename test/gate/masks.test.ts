import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeModel } from '../../src/analysis/analyze.js';
import { parseFormat } from '../../src/formats/index.js';
import { evaluateGate } from '../../src/gate/evaluate.js';
import { defaultGateConfig } from '../../src/gate/thresholds.js';
import { loadModel } from '../../src/onnx/load.js';
import { hasShared, SHARED } from '../helpers/corpus.js';

describe.skipIf(!hasShared)('mask fills and the gate', () => {
  const report = analyzeModel(loadModel(path.join(SHARED, 'validation/gpt2_tiny.onnx')), { formats: ['fp16', 'e4m3'].map(parseFormat) });
  it('marks the stored causal masks and the masked scores', () => {
    const masked = report.tensors.filter((t) => (t.maskFill ?? 0) > 0).map((t) => t.name);
    // two stored masks (initializers) and the two scores + mask Adds; nothing else
    expect(masked.length).toBe(4);
    for (const t of report.tensors.filter((x) => (x.maskFill ?? 0) > 0)) {
      expect(t.maskFill!).toBeGreaterThan(0.4);
      expect(t.risk.fp16!.overflow).toBeGreaterThan(0.4);
    }
  });
  it('does not fail on mask fills unless checkMasks is set', () => {
    const cfg = { ...defaultGateConfig(), failOn: ['overflow' as const] };
    expect(evaluateGate(report, cfg).exitCode).toBe(0);
    const strict = evaluateGate(report, { ...cfg, checkMasks: true });
    expect(strict.exitCode).toBe(1);
    expect(strict.violations.filter((v) => v.category === 'overflow').length).toBeGreaterThanOrEqual(4);
  });
  it('still fails on overflow beyond the mask share', () => {
    const t = report.tensors.find((x) => (x.maskFill ?? 0) > 0)!;
    const planted = { ...report, tensors: [{ ...t, risk: { fp16: { ...t.risk.fp16!, overflow: t.maskFill! + 0.01 } } }] };
    expect(evaluateGate(planted, { ...defaultGateConfig(), failOn: ['overflow'] }).exitCode).toBe(1);
  });
});
