import { describe, expect, it } from 'vitest';
import { erfc, integrate, normalMass, normalTail } from '../../src/formats/special.js';

// Reference values from Python's math.erfc (an independent implementation).
const ERFC: [number, number][] = [
  [0, 1], [0.1, 0.8875370839817152], [0.49, 0.4883317388114769], [0.5, 0.4795001221869535],
  [1, 0.15729920705028513], [1.5, 0.033894853524689274], [2, 0.004677734981047265],
  [2.49, 0.000429287867733913], [2.5, 0.0004069520174449589], [3, 2.2090496998585438e-5],
  [4, 1.541725790028002e-8], [5, 1.5374597944280351e-12], [7, 4.183825607779414e-23],
  [10, 2.088487583762545e-45], [15, 7.212994172451206e-100], [20, 5.3958656116079005e-176],
  [26, 5.663192408856143e-296],
];

describe('special functions', () => {
  it.each(ERFC)('erfc(%s) to 1e-13 relative', (x, want) => {
    expect(Math.abs(erfc(x) / want - 1)).toBeLessThan(1e-13);
    expect(erfc(-x)).toBeCloseTo(2 - want, 15);
  });

  it('limits', () => {
    expect(erfc(Infinity)).toBe(0);
    expect(erfc(-Infinity)).toBe(2);
    expect(normalTail(37)).toBeGreaterThan(0); // ≈ 6e-300, not flushed to 0
    expect(normalTail(Infinity)).toBe(0);
  });

  it('normalMass keeps relative precision on narrow and far intervals', () => {
    expect(normalMass(-Infinity, Infinity)).toBeCloseTo(1, 15);
    expect(normalMass(0, 1)).toBeCloseTo(0.3413447460685429, 15);
    // narrow: ≈ width·φ(mid)
    const w = 1 + 1e-12 - 1; // the representable width
    expect(normalMass(1, 1 + w) / (w * Math.exp(-0.5) / Math.sqrt(2 * Math.PI))).toBeCloseTo(1, 9);
    // far tail
    const want = 6.220960574271819e-16 - 1.1285884059538422e-19; // Python: Q(8) - Q(9)
    expect(normalMass(8, 9) / want).toBeCloseTo(1, 11);
    expect(normalMass(-9, -8) / want).toBeCloseTo(1, 11);
  });

  it('Gauss–Legendre integrates polynomials of degree 19 exactly', () => {
    expect(integrate((x) => x ** 19, 0, 1)).toBeCloseTo(1 / 20, 15);
    expect(integrate(Math.exp, 0, 3, 0.5)).toBeCloseTo(Math.exp(3) - 1, 13);
  });
});
