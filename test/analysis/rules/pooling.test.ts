import { describe, expect, it } from 'vitest';
import { distMoments } from '../../../src/analysis/quadrature.js';
import { axisWindows, rules } from '../../../src/analysis/rules/pooling.js';
import { gaussianScale, type PredictedDistribution, type Scale } from '../../../src/analysis/scale.js';
import { DataType } from '../../../src/onnx/dtype.js';
import { draw, stats } from '../../helpers/mc.js';
import { backwardContext, ruleContext, type AttrValue } from '../../helpers/rule-context.js';

function scaleFor(dist: PredictedDistribution): Scale {
  const m = distMoments(dist);
  return { mean: m.mean, meanSquare: m.meanSquare, dist, absmax: null, confidence: 'high' };
}

interface Pool2D {
  k: [number, number];
  s?: [number, number];
  pads?: [number, number, number, number];
  includePad?: boolean;
  kind: 'avg' | 'max' | 'lp';
  p?: number;
}

/** Direct 2-D pooling of an H×W image (reference, written from the ONNX definition). */
function pool2d(img: Float64Array, H: number, W: number, o: Pool2D): number[] {
  const [kh, kw] = o.k;
  const [sh, sw] = o.s ?? [1, 1];
  const [pt, pl, pb, pr] = o.pads ?? [0, 0, 0, 0];
  const OH = Math.floor((H + pt + pb - kh) / sh) + 1;
  const OW = Math.floor((W + pl + pr - kw) / sw) + 1;
  const out: number[] = [];
  for (let oy = 0; oy < OH; oy++) {
    for (let ox = 0; ox < OW; ox++) {
      let sum = 0;
      let count = 0;
      let padCount = 0;
      let mx = -Infinity;
      let lp = 0;
      for (let j = 0; j < kh; j++) {
        for (let i = 0; i < kw; i++) {
          const y = oy * sh - pt + j;
          const x = ox * sw - pl + i;
          padCount++;
          if (y < 0 || y >= H || x < 0 || x >= W) continue;
          const v = img[y * W + x]!;
          sum += v;
          count++;
          mx = Math.max(mx, v);
          lp += Math.abs(v) ** (o.p ?? 2);
        }
      }
      out.push(o.kind === 'avg' ? sum / (o.includePad ? padCount : count) : o.kind === 'max' ? mx : lp ** (1 / (o.p ?? 2)));
    }
  }
  return out;
}

function simulate(dist: PredictedDistribution, H: number, W: number, o: Pool2D, images = 4000): ReturnType<typeof stats> {
  const xs = draw(dist, H * W * images, 23);
  const all: number[] = [];
  for (let n = 0; n < images; n++) all.push(...pool2d(xs.subarray(n * H * W, (n + 1) * H * W), H, W, o));
  return stats(all);
}

function attrsOf(o: Pool2D): Record<string, AttrValue> {
  const a: Record<string, AttrValue> = { kernel_shape: o.k };
  if (o.s) a.strides = o.s;
  if (o.pads) a.pads = o.pads;
  if (o.includePad) a.count_include_pad = 1;
  if (o.p) a.p = o.p;
  return a;
}

const OPS = { avg: 'AveragePool', max: 'MaxPool', lp: 'LpPool' } as const;

describe('pooling forward against a direct simulation (5 standard errors)', () => {
  const H = 7;
  const W = 6;
  const configs: [string, Pool2D][] = [
    ['avg 3×3 s1 no pad', { kind: 'avg', k: [3, 3] }],
    ['avg 3×3 s2 pad 1 (border windows smaller)', { kind: 'avg', k: [3, 3], s: [2, 2], pads: [1, 1, 1, 1] }],
    ['avg 3×3 s2 pad 1 count_include_pad', { kind: 'avg', k: [3, 3], s: [2, 2], pads: [1, 1, 1, 1], includePad: true }],
    ['avg 2×2 s2', { kind: 'avg', k: [2, 2], s: [2, 2] }],
    ['max 3×3 s2 pad 1', { kind: 'max', k: [3, 3], s: [2, 2], pads: [1, 1, 1, 1] }],
    ['max 2×2 s2', { kind: 'max', k: [2, 2], s: [2, 2] }],
    ['lp p=2 2×2 s2', { kind: 'lp', k: [2, 2], s: [2, 2], p: 2 }],
  ];
  for (const dist of [
    { kind: 'gaussian', mean: 0.4, std: 1.1 },
    { kind: 'rectified', mean: 0.1, std: 1 },
  ] as PredictedDistribution[]) {
    for (const [name, o] of configs) {
      it(`${name} on ${dist.kind}`, () => {
        const ctx = ruleContext({ op: OPS[o.kind], attrs: attrsOf(o), inputs: [{ scale: scaleFor(dist), shape: [1, 1, H, W] }], opset: 18 });
        const pred = rules[OPS[o.kind]]!.forward(ctx)[0]!;
        const s = simulate(dist, H, W, o);
        expect(Math.abs(pred.mean - s.mean)).toBeLessThanOrEqual(5 * s.seMean + 1e-9);
        // LpPool's distribution is a Gamma approximation: its mean is within 1%.
        if (o.kind === 'lp') expect(Math.abs(pred.mean - s.mean) / s.mean).toBeLessThan(0.01);
        expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThanOrEqual(5 * s.seMeanSquare + 1e-9);
      });
    }
  }

  it('GlobalLpPool p=2: E[y²] = n·E[x²] exactly', () => {
    const ctx = ruleContext({ op: 'GlobalLpPool', inputs: [{ scale: gaussianScale(0, 2), shape: [1, 4, 5, 5] }] });
    expect(rules.GlobalLpPool!.forward(ctx)[0]!.meanSquare).toBeCloseTo(100, 10);
  });
});

describe('geometry', () => {
  it('window counts, SAME padding and ceil_mode', () => {
    const a = axisWindows(7, 3, 2, 1, 1, 1, 'NOTSET', false);
    expect(a!.valid).toEqual([2, 3, 3, 2]);
    expect(a!.padded).toEqual([3, 3, 3, 3]);
    const same = axisWindows(5, 3, 1, 1, 0, 0, 'SAME_UPPER', false);
    expect(same!.valid).toEqual([2, 3, 3, 3, 2]);
    const ceil = axisWindows(6, 3, 2, 1, 0, 0, 'NOTSET', true);
    expect(ceil!.valid).toEqual([3, 3, 2]);
    const dil = axisWindows(7, 3, 1, 2, 0, 0, 'NOTSET', false);
    expect(dil!.valid).toEqual([3, 3, 3]);
  });
  it('refuses to enumerate an absurd geometry (corrupted dims) instead of hanging', () => {
    expect(axisWindows(2 ** 62, 3, 1, 1, 0, 0, 'NOTSET', false)).toBeNull();
    expect(axisWindows(8, 3, 1, 1, 2 ** 40, 0, 'NOTSET', false)).toBeNull();
  });

  it('unknown spatial size: interior windows only, medium confidence', () => {
    const ctx = ruleContext({ op: 'AveragePool', attrs: { kernel_shape: [2, 2] }, inputs: [{ scale: gaussianScale(0, 1), shape: [1, 3, 'h', 'w'] }] });
    const y = rules.AveragePool!.forward(ctx)[0]!;
    expect(y.meanSquare).toBeCloseTo(0.25, 12);
    expect(y.confidence).toBe('medium');
  });

  it('MaxPool indices output carries no scale', () => {
    const ctx = ruleContext({ op: 'MaxPool', attrs: { kernel_shape: [2, 2] }, inputs: [{ scale: gaussianScale(0, 1), shape: [1, 1, 4, 4] }], outputs: [{}, { dtype: DataType.INT64 }] });
    const outs = rules.MaxPool!.forward(ctx);
    expect(outs[1]).toBeNull();
  });
});

describe('backward', () => {
  it('AveragePool 2×2 s2: ∂x = g/4; MaxPool 2×2 s2: g at one of 4', () => {
    const spec = (op: string) => ({ op, attrs: { kernel_shape: [2, 2], strides: [2, 2] }, inputs: [{ scale: gaussianScale(0, 1), shape: [1, 1, 4, 4] }], outputs: [{ shape: [1, 1, 2, 2] }] });
    const g = gaussianScale(0, 1);
    expect(rules.AveragePool!.backward!(backwardContext(spec('AveragePool'), [null], [g]))[0]!.meanSquare).toBeCloseTo(1 / 16, 14);
    const m = rules.MaxPool!.backward!(backwardContext(spec('MaxPool'), [null], [g]))[0]!;
    expect(m.meanSquare).toBeCloseTo(1 / 4, 14);
    expect(m.fracZero).toBeCloseTo(3 / 4, 14);
  });
});
