import { describe, expect, it } from 'vitest';
import { diffBaseline, headroomBits, RMS_TAIL_FACTOR } from '../../src/gate/baseline.js';
import { evaluateGate } from '../../src/gate/evaluate.js';
import { defaultGateConfig, type GateConfig } from '../../src/gate/thresholds.js';
import type { FormatRisk, Report, TensorReport } from '../../src/report/types.js';

const risk = (overflow = 0, underflow = 0, sqnrDb: number | null = 31): FormatRisk => ({ overflow, underflow, subnormal: 0, sqnrDb });

function tensor(name: string, rms: number, absmax: number | null, r: Record<string, FormatRisk>, extra: Partial<TensorReport> = {}): TensorReport {
  return { name, kind: 'activation', op: 'MatMul', node: `n_${name}`, dtype: 'float32', shape: [4], mean: 0, rms, absmax, risk: r, confidence: 'high', ...extra };
}

function report(tensors: TensorReport[], formats = ['e4m3']): Report {
  return {
    tool: { name: 'unitscale', version: '0.1.0' },
    model: { path: 'm.onnx', irVersion: 8, opsets: { '': 17 } },
    mode: 'predicted',
    formats,
    tensors,
    summary: { tensors: tensors.length, formats: {} },
  };
}

const previous = report([
  tensor('stable', 1, 4, { e4m3: risk() }),
  tensor('growing', 8, 32, { e4m3: risk() }),
  tensor('hot', 1, 4, { e4m3: risk() }),
  tensor('noisy', 1, null, { e4m3: risk(0, 0, 31) }),
  tensor('already_bad', 1, 1000, { e4m3: risk(0.01) }),
  tensor('gone', 1, 4, { e4m3: risk() }),
]);

const current = report([
  tensor('stable', 1.1, 4.2, { e4m3: risk() }),
  tensor('growing', 32, 128, { e4m3: risk() }), // absmax ×4: headroom 3.8 → 1.8 bits
  tensor('hot', 300, 1200, { e4m3: risk(0.12) }), // now overflows
  tensor('noisy', 1, null, { e4m3: risk(0, 0, 24) }), // lost 7 dB, still above the 19.8 dB floor
  tensor('already_bad', 1, 2000, { e4m3: risk(0.02) }),
  tensor('fresh', 1, 1e4, { e4m3: risk(0.3) }), // new tensor, risky
  tensor('fresh_ok', 1, 4, { e4m3: risk() }),
]);

describe('headroomBits', () => {
  it('is log2(max / absmax), or log2(max / (6·rms)) without an absmax', () => {
    expect(headroomBits({ absmax: 448 / 8, rms: 1 }, 'e4m3')).toBeCloseTo(3, 12);
    expect(headroomBits({ absmax: null, rms: 448 / RMS_TAIL_FACTOR / 4 }, 'e4m3')).toBeCloseTo(2, 12);
    expect(headroomBits({ absmax: 896, rms: 1 }, 'e4m3')).toBeCloseTo(-1, 12);
    expect(headroomBits({ absmax: 4, rms: 1 }, 'e4m3', 'rms')).toBeCloseTo(Math.log2(448 / 6), 12);
    expect(headroomBits({ absmax: null, rms: null }, 'e4m3')).toBeNull();
    expect(headroomBits({ absmax: 1, rms: 1 }, 'no-such-format')).toBeNull();
  });
});

describe('diffBaseline', () => {
  const regs = diffBaseline(current, previous);

  it('finds new risky tensors, lost headroom and lost SQNR — and nothing else', () => {
    expect(regs.map((r) => `${r.type}:${r.tensor}:${r.category}`)).toEqual([
      'new-risk:hot:overflow',
      'new-risk:fresh:overflow',
      'headroom-loss:growing:overflow',
      'sqnr-loss:noisy:sqnr',
    ]);
  });

  it('measures headroom loss in bits on a common basis', () => {
    const g = regs.find((r) => r.type === 'headroom-loss')!;
    expect(g.headroomBefore).toBeCloseTo(Math.log2(448 / 32), 10);
    expect(g.headroomAfter).toBeCloseTo(Math.log2(448 / 128), 10);
    expect(g.delta).toBeCloseTo(-2, 10);
    expect(g.message).toBe('growing: lost 2.0 bits of e4m3 headroom (3.8 → 1.8 bits)');
  });

  it('describes a new risk with before and after', () => {
    const hot = regs[0]!;
    expect(hot).toMatchObject({ before: 0, after: 0.12, format: 'e4m3' });
    expect(hot.message).toBe('hot: new overflow risk in e4m3: 12% overflow (was 0)');
    expect(regs[1]!.message).toMatch(/\(a new tensor\)$/);
    expect(regs[1]!.before).toBeNull();
  });

  it('uses the rms basis when either side lacks an absmax', () => {
    const prev = report([tensor('t', 1, null, { e4m3: risk() })]);
    const cur = report([tensor('t', 8, 100, { e4m3: risk() })]);
    const [r] = diffBaseline(cur, prev);
    expect(r!.type).toBe('headroom-loss');
    expect(r!.delta).toBeCloseTo(-3, 10);
  });

  it('respects the tolerances and the margin', () => {
    expect(diffBaseline(current, previous, { regression: { headroomBits: 2.5, sqnrDb: 10 } }).map((r) => r.type)).toEqual(['new-risk', 'new-risk']);
    // a tensor far from the limit may shrink its headroom without being a regression
    const prev = report([tensor('t', 1, 1, { e4m3: risk() })], ['e4m3']);
    const cur = report([tensor('t', 1, 4, { e4m3: risk() })], ['e4m3']); // 8.8 → 6.8 bits
    expect(diffBaseline(cur, prev).map((r) => r.type)).toEqual(['headroom-loss']);
    expect(diffBaseline(cur, prev, { regression: { marginBits: 6 } })).toEqual([]);
  });

  it('applies the allow-list', () => {
    expect(diffBaseline(current, previous, { ignore: ['hot', { tensor: 'fresh*' }] }).map((r) => r.tensor)).toEqual(['growing', 'noisy']);
    expect(diffBaseline(current, previous, { ignore: [{ categories: ['regression'] }] })).toEqual([]);
  });

  it('keeps gradients apart from forward values of the same name', () => {
    const fine = risk(0, 0, 70); // fp16's SQNR floor is 62 dB
    const prev = report([tensor('x', 1, 4, { fp16: fine }), tensor('x', 1, 4, { fp16: fine }, { kind: 'gradient' })], ['fp16']);
    const cur = report([tensor('x', 1, 4, { fp16: fine }), tensor('x', 1e-9, 1e-8, { fp16: risk(0, 0.9, 3) }, { kind: 'gradient' })], ['fp16']);
    const regs2 = diffBaseline(cur, prev);
    expect(regs2.map((r) => `${r.kind}:${r.type}:${r.category}`)).toEqual(['gradient:new-risk:underflow', 'gradient:new-risk:sqnr']);
    expect(regs2[0]!.message).toMatch(/^gradient of x: new underflow risk in fp16/);
  });

  it('an identical report has no regression', () => {
    expect(diffBaseline(previous, previous)).toEqual([]);
  });
});

describe('--fail-on regression', () => {
  const gate = (over: Partial<GateConfig>) => evaluateGate(current, { ...defaultGateConfig(), baseline: previous, ...over });

  it('fails only on regressions: risks already in the baseline stay warnings', () => {
    const r = gate({ failOn: ['regression'] });
    expect(r.exitCode).toBe(1);
    const errors = r.violations.filter((v) => v.level === 'error');
    expect(errors.every((v) => v.category === 'regression')).toBe(true);
    expect(errors.map((v) => v.tensor)).toEqual(['hot', 'fresh', 'growing', 'noisy']);
    // already_bad overflows in both reports: reported, not failing
    expect(r.violations.find((v) => v.tensor === 'already_bad')).toMatchObject({ rule: 'overflow', level: 'warning' });
  });

  it('passes when nothing got worse, even with risks present', () => {
    const r = evaluateGate(previous, { ...defaultGateConfig(), baseline: previous, failOn: ['regression'] });
    expect(r.exitCode).toBe(0);
    expect(r.violations.map((v) => [v.tensor, v.level])).toEqual([['already_bad', 'warning']]);
  });

  it('reports regressions as warnings when not failing on them', () => {
    const r = gate({ failOn: [] });
    expect(r.exitCode).toBe(0);
    expect(r.regressions).toHaveLength(4);
    expect(r.violations.filter((v) => v.category === 'regression')).toHaveLength(4);
  });
});
