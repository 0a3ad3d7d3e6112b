import { describe, expect, it } from 'vitest';
import { evaluateGate } from '../../src/gate/evaluate.js';
import {
  defaultGateConfig,
  defaultMinSqnr,
  globMatch,
  parseFailOn,
  thresholdsFor,
  type GateConfig,
} from '../../src/gate/thresholds.js';
import { UsageError } from '../../src/errors.js';
import type { FormatRisk, Report, TensorReport } from '../../src/report/types.js';

const risk = (overflow = 0, underflow = 0, sqnrDb: number | null = 31, subnormal = 0): FormatRisk => ({ overflow, underflow, subnormal, sqnrDb });

function tensor(name: string, r: Record<string, FormatRisk>, extra: Partial<TensorReport> = {}): TensorReport {
  return { name, kind: 'activation', op: 'MatMul', node: `${name}_node`, dtype: 'float32', shape: [1, 64], mean: 0, rms: 1, absmax: 4, risk: r, confidence: 'high', order: 1, ...extra };
}

function report(tensors: TensorReport[], formats = ['e4m3']): Report {
  return {
    tool: { name: 'unitscale', version: '0.1.0' },
    model: { path: 'model.onnx', irVersion: 8, opsets: { '': 17 } },
    mode: 'predicted',
    formats,
    tensors,
    summary: { tensors: tensors.length, formats: {} },
  };
}

function cfg(over: Partial<GateConfig> = {}): GateConfig {
  return { ...defaultGateConfig(), ...over };
}

/** A report with planted problems: one overflowing MatMul, one underflowing mask, one clean tensor. */
const planted = report([
  tensor('clean', { e4m3: risk() }),
  tensor('/layer0/attn/MatMul_output_0', { e4m3: risk(0.16, 0) }, { order: 2 }),
  tensor('/layer0/attn/mask_add', { e4m3: risk(0, 0.3) }, { op: 'Add', order: 3 }),
  tensor('/layer0/attn/Softmax_output_0', { e4m3: risk(0, 0.05) }, { op: 'Softmax', order: 4 }),
]);

describe('thresholds', () => {
  it('parses --fail-on lists and expands any', () => {
    expect(parseFailOn('overflow')).toEqual(['overflow']);
    expect(parseFailOn('regression, overflow')).toEqual(['overflow', 'regression']);
    expect(parseFailOn('any')).toEqual(['overflow', 'underflow', 'sqnr', 'regression']);
    expect(parseFailOn('none')).toEqual([]);
    expect(() => parseFailOn('overflw')).toThrow(UsageError);
    expect(() => parseFailOn('')).toThrow(/empty list/);
  });

  it('derives defaults per format and lets per-format settings win over all-format ones', () => {
    expect(defaultMinSqnr('e4m3')).toBeCloseTo(19.8, 5);
    expect(defaultMinSqnr('fp16')).toBeCloseTo(61.96, 1);
    const th = { all: { maxOverflow: 1e-3 }, perFormat: { e4m3: { maxOverflow: 0 } } };
    expect(thresholdsFor({ thresholds: th }, 'e4m3').maxOverflow).toBe(0);
    expect(thresholdsFor({ thresholds: th }, 'fp8').maxOverflow).toBe(0); // alias → canonical
    expect(thresholdsFor({ thresholds: th }, 'e5m2').maxOverflow).toBe(1e-3);
    expect(thresholdsFor({ thresholds: { all: {}, perFormat: {} } }, 'e5m2')).toEqual({ maxOverflow: 1e-6, maxUnderflow: 1e-2, minSqnr: 13.8 });
  });

  it('matches globs across slashes, literally otherwise', () => {
    expect(globMatch('*mask*', '/layer0/attn/mask_add')).toBe(true);
    expect(globMatch('*mask*', '/layer0/attn/MatMul')).toBe(false);
    expect(globMatch('/layer?/attn/*', '/layer0/attn/x')).toBe(true);
    expect(globMatch('a.b', 'axb')).toBe(false);
    expect(globMatch('(x)[0]+', '(x)[0]+')).toBe(true);
  });
});

describe('evaluateGate', () => {
  it('exit 0 without --fail-on: everything is a warning', () => {
    const r = evaluateGate(planted, cfg());
    expect(r.exitCode).toBe(0);
    expect(r.violations.map((v) => [v.rule, v.tensor, v.level])).toEqual([
      ['overflow', '/layer0/attn/MatMul_output_0', 'warning'],
      ['underflow', '/layer0/attn/mask_add', 'warning'],
      ['underflow', '/layer0/attn/Softmax_output_0', 'warning'],
    ]);
    expect(r.checked).toBe(4);
  });

  it('exit 1 when a risk in --fail-on exceeds its threshold; the others stay warnings', () => {
    const r = evaluateGate(planted, cfg({ failOn: ['overflow'] }));
    expect(r.exitCode).toBe(1);
    expect(r.violations.filter((v) => v.level === 'error').map((v) => v.tensor)).toEqual(['/layer0/attn/MatMul_output_0']);
    expect(r.violations[0]!.message).toMatch(/16% of the elements overflow e4m3 \(\|x\| > 448\)/);
    expect(r.violations[0]).toMatchObject({ format: 'e4m3', value: 0.16, threshold: 1e-6, category: 'overflow' });
  });

  it('exit 0 when within thresholds', () => {
    const r = evaluateGate(planted, cfg({ failOn: ['overflow', 'underflow'], thresholds: { all: { maxOverflow: 0.2, maxUnderflow: 0.5 }, perFormat: {} } }));
    expect(r.exitCode).toBe(0);
    expect(r.violations).toEqual([]);
  });

  it('threshold is exclusive: a risk equal to it passes', () => {
    const r = evaluateGate(report([tensor('t', { e4m3: risk(1e-6, 0.01) })]), cfg({ failOn: parseFailOn('any') }));
    expect(r.violations).toEqual([]);
  });

  it('applies the allow-list: globs on tensor names and {op} objects', () => {
    const withIgnore = cfg({ failOn: ['underflow'], ignore: ['*mask*', { op: 'Softmax' }] });
    const r = evaluateGate(planted, withIgnore);
    expect(r.exitCode).toBe(0);
    expect(r.ignored).toBe(2);
    expect(r.violations.map((v) => v.rule)).toEqual(['overflow']);
  });

  it('allow-list entries can be narrowed to formats, categories, kinds and nodes', () => {
    const rep = report(
      [tensor('w', { e4m3: risk(0.1, 0.1), e5m2: risk(0.1, 0) }, { kind: 'weight', op: 'initializer', node: null })],
      ['e4m3', 'e5m2'],
    );
    const only = (ignore: GateConfig['ignore']) => evaluateGate(rep, cfg({ failOn: parseFailOn('any'), ignore })).violations.map((v) => `${v.format}:${v.rule}`);
    expect(only([{ kind: 'weight' }])).toEqual([]);
    expect(only([{ kind: 'weight', formats: ['fp8'] }])).toEqual(['e5m2:overflow']);
    expect(only([{ tensor: 'w', categories: ['overflow'] }])).toEqual(['e4m3:underflow']);
    expect(only([{ node: '*' }])).toHaveLength(3); // node is null: a node glob does not match it
  });

  it('gates SQNR against the per-format default floor', () => {
    const rep = report([tensor('noisy', { e4m3: risk(0, 0, 12) }), tensor('exact', { e4m3: risk(0, 0, null) })]);
    const r = evaluateGate(rep, cfg({ failOn: ['sqnr'] }));
    expect(r.exitCode).toBe(1);
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toMatchObject({ rule: 'low-sqnr', tensor: 'noisy', threshold: 19.8 });
    const off = evaluateGate(rep, cfg({ failOn: ['sqnr'], thresholds: { all: { minSqnr: null }, perFormat: {} } }));
    expect(off.exitCode).toBe(0);
  });

  it('skips tensors whose prediction is unknown unless asked', () => {
    const rep = report([tensor('guess', { e4m3: risk(0.5, 0) }, { confidence: 'unknown' })]);
    expect(evaluateGate(rep, cfg({ failOn: ['overflow'] })).exitCode).toBe(0);
    expect(evaluateGate(rep, cfg({ failOn: ['overflow'], includeUnknown: true })).exitCode).toBe(1);
  });

  it('gates gradients too, and names them as gradients', () => {
    const rep = report([tensor('h', { fp16: risk(0, 0.4, 50) }, { kind: 'gradient', gradientOf: 'activation' })], ['fp16']);
    const r = evaluateGate(rep, cfg({ failOn: ['underflow'] }));
    expect(r.exitCode).toBe(1);
    expect(r.violations[0]!.message).toMatch(/^gradient of h/);
  });

  it('orders errors before warnings', () => {
    const r = evaluateGate(planted, cfg({ failOn: ['underflow'] }));
    expect(r.violations.map((v) => v.level)).toEqual(['error', 'error', 'warning']);
  });
});
