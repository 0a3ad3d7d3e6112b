import { describe, expect, it } from 'vitest';
import { listFormats, parseFormat, predictRisk, type Distribution } from '../../src/formats/index.js';
import { predictRiskMany } from '../../src/formats/predict-risk.js';

// predictRiskMany is predictRisk for several formats at once, with faster quadrature inside the
// exact cells: shares must be identical, SQNR equal to ~1e-9 dB (both are ~1e-12 relative).
const formats = [...listFormats(), parseFormat('e3m4'), parseFormat('e6m1fn')];

function sweep(): Distribution[] {
  const out: Distribution[] = [];
  for (const s of [1e-30, 1e-12, 3e-8, 1e-5, 2.3e-3, 0.07, 1, 13, 300, 7e3, 1e5, 3e9, 1e30]) {
    for (const m of [0, 0.3, 1, 4, -2, 20, 50]) {
      out.push({ kind: 'gaussian', mean: m * s, std: s });
      out.push({ kind: 'rectified', mean: m * s, std: s });
      out.push({ kind: 'laplace', mean: m * s, scale: s });
      out.push({ kind: 'uniform', lo: -s, hi: Math.abs(m) * s + s / 2 });
    }
  }
  out.push({ kind: 'gaussian', mean: 1, std: 0 });
  out.push({ kind: 'discrete', values: [0, 1e-9, 0.3, -500, 1e6], weights: [1, 2, 3, 4, 5] });
  out.push({ kind: 'uniform', lo: 2, hi: 2 });
  return out;
}

describe('predictRiskMany', () => {
  it('matches predictRisk on every format over a sweep of distributions', () => {
    let worstDb = 0;
    for (const d of sweep()) {
      const many = predictRiskMany(d, formats);
      formats.forEach((f, i) => {
        const one = predictRisk(d, f);
        const r = many[i]!;
        expect(r.overflow).toBe(one.overflow);
        expect(r.underflow).toBe(one.underflow);
        expect(r.subnormal).toBe(one.subnormal);
        if (Number.isFinite(one.sqnrDb)) {
          const diff = Math.abs(r.sqnrDb - one.sqnrDb);
          worstDb = Math.max(worstDb, diff);
          expect(diff, `${JSON.stringify(d)} ${f.name}`).toBeLessThan(1e-9);
        } else expect(r.sqnrDb).toBe(one.sqnrDb);
      });
    }
    expect(worstDb).toBeLessThan(1e-9);
  });

  it('throws on invalid distributions like predictRisk', () => {
    expect(() => predictRiskMany({ kind: 'gaussian', mean: 0, std: -1 }, formats)).toThrow(RangeError);
    expect(() => predictRiskMany({ kind: 'uniform', lo: 1, hi: 0 }, formats)).toThrow(RangeError);
  });

  it('returns one result per format, in order', () => {
    const fs = [parseFormat('bf16'), parseFormat('e4m3'), parseFormat('bf16')];
    const r = predictRiskMany({ kind: 'gaussian', mean: 0, std: 1 }, fs);
    expect(r).toHaveLength(3);
    expect(r[0]).toEqual(r[2]);
    expect(r[1]).toEqual(predictRiskMany({ kind: 'gaussian', mean: 0, std: 1 }, [fs[1]!])[0]);
  });
});
