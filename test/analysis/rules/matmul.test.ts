import { describe, expect, it } from 'vitest';
import { rules } from '../../../src/analysis/rules/matmul.js';
import { gaussianScale, type Scale } from '../../../src/analysis/scale.js';
import { DataType } from '../../../src/onnx/dtype.js';
import { gaussians, stats } from '../../helpers/mc.js';
import { backwardContext, ruleContext, type NodeSpec } from '../../helpers/rule-context.js';

const fwd = (spec: NodeSpec): Scale => rules[spec.op]!.forward(ruleContext(spec))[0]!;

/** Moments of a stored tensor's values, as the engine would give them. */
function scaleOf(v: ArrayLike<number>): Scale {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < v.length; i++) {
    s += v[i]!;
    s2 += v[i]! * v[i]!;
  }
  const mean = s / v.length;
  return { ...gaussianScale(mean, Math.sqrt(s2 / v.length - mean * mean)), confidence: 'exact', absmax: Math.max(...Array.from(v, Math.abs)) };
}

/** y = x·W for x [B, K] and W [K, N] row-major. */
function matmul(x: Float64Array, w: ArrayLike<number>, B: number, K: number, N: number): Float64Array {
  const y = new Float64Array(B * N);
  for (let b = 0; b < B; b++)
    for (let k = 0; k < K; k++) {
      const xv = x[b * K + k]!;
      for (let n = 0; n < N; n++) y[b * N + n]! += xv * w[k * N + n]!;
    }
  return y;
}

/** Mean and mean square per row (rows are independent samples), then their MC stats. */
function rowStats(y: Float64Array, B: number, N: number): { m1: ReturnType<typeof stats>; m2: ReturnType<typeof stats> } {
  const r1 = new Float64Array(B);
  const r2 = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < N; n++) {
      r1[b]! += y[b * N + n]! / N;
      r2[b]! += y[b * N + n]! ** 2 / N;
    }
  }
  return { m1: stats(r1), m2: stats(r2) };
}

describe('MatMul with stored weights (PRIMER §3, exact column sums)', () => {
  const B = 6000;
  const K = 24;
  const N = 12;
  // Weights with a clear mean: the K(K−1)E[x]²E[w]² term matters.
  const w = Float64Array.from(Float32Array.from(gaussians(K * N, 0.08, 0.2, 3))); // stored as float32
  const x = gaussians(B * K, 0.5, 1.3, 4);
  const y = matmul(x, w, B, K, N);
  const { m1, m2 } = rowStats(y, B, N);
  const pred = fwd({
    op: 'MatMul',
    inputs: [
      { scale: gaussianScale(0.5, 1.3), shape: [B, K] },
      { scale: scaleOf(w), shape: [K, N], constant: Array.from(w) },
    ],
    outputs: [{ shape: [B, N] }],
  });

  it('predicts mean and mean square of y = xW within MC error', () => {
    expect(Math.abs(pred.mean - m1.mean)).toBeLessThanOrEqual(5 * m1.seMean);
    expect(Math.abs(pred.meanSquare - m2.mean)).toBeLessThanOrEqual(5 * m2.seMean);
  });

  it('bounds |y| by max column Σ|w| · max|x|', () => {
    expect(pred.absmax).toBeNull(); // x unbounded
    const bounded = fwd({
      op: 'MatMul',
      inputs: [
        { scale: { ...gaussianScale(0, 1), absmax: 2 }, shape: [B, K] },
        { scale: scaleOf(w), shape: [K, N], constant: Array.from(w) },
      ],
    });
    let worst = 0;
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += Math.abs(w[k * N + n]!);
      worst = Math.max(worst, s);
    }
    expect(bounded.absmax).toBeCloseTo(2 * worst, 10);
  });

  it('is Gaussian-shaped with high confidence', () => {
    expect(pred.dist.kind).toBe('gaussian');
    expect(pred.confidence).toBe('high');
  });
});

describe('MatMul of two activations (attention scores)', () => {
  it('E[y²] = K·E[a²]E[b²] + K(K−1)E[a]²E[b]²', () => {
    const K = 16;
    const n = 40000;
    const a = gaussians(n * K, 0.3, 0.7, 5);
    const b = gaussians(n * K, -0.2, 1.1, 6);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let k = 0; k < K; k++) y[i]! += a[i * K + k]! * b[i * K + k]!;
    const s = stats(y);
    const pred = fwd({
      op: 'MatMul',
      inputs: [
        { scale: gaussianScale(0.3, 0.7), shape: [2, 4, 32, K] },
        { scale: gaussianScale(-0.2, 1.1), shape: [2, 4, K, 32] },
      ],
    });
    expect(Math.abs(pred.mean - s.mean)).toBeLessThanOrEqual(5 * s.seMean);
    expect(Math.abs(pred.meanSquare - s.meanSquare)).toBeLessThanOrEqual(5 * s.seMeanSquare);
  });

  it('marks the output unknown when the fan-in cannot be told', () => {
    const pred = fwd({ op: 'MatMul', inputs: [{ scale: gaussianScale(0, 1), shape: null }, { scale: gaussianScale(0, 1), shape: null }] });
    expect(pred.confidence).toBe('unknown');
  });
});

describe('Gemm', () => {
  it('handles transB, alpha, beta and a stored bias', () => {
    const B = 5000;
    const K = 10;
    const N = 6;
    const wT = Float64Array.from(Float32Array.from(gaussians(N * K, 0.05, 0.3, 7))); // [N, K], stored as float32
    const bias = [0.5, -1, 0.25, 2, 0, -0.3].map(Math.fround);
    const alpha = 0.7;
    const beta = 1.5;
    const x = gaussians(B * K, 0.2, 1, 8);
    const w = new Float64Array(K * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) w[k * N + n] = wT[n * K + k]!;
    const y = matmul(x, w, B, K, N);
    for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) y[b * N + n] = alpha * y[b * N + n]! + beta * bias[n]!;
    const { m1, m2 } = rowStats(y, B, N);
    const pred = fwd({
      op: 'Gemm',
      attrs: { transB: 1, alpha: { float: alpha }, beta: { float: beta } },
      inputs: [
        { scale: gaussianScale(0.2, 1), shape: [B, K] },
        { scale: scaleOf(wT), shape: [N, K], constant: Array.from(wT) },
        { scale: scaleOf(bias), shape: [N], constant: bias },
      ],
    });
    expect(Math.abs(pred.mean - m1.mean)).toBeLessThanOrEqual(5 * m1.seMean);
    expect(Math.abs(pred.meanSquare - m2.mean)).toBeLessThanOrEqual(5 * m2.seMean);
  });
});

describe('Einsum (two operands)', () => {
  it('contracts the shared labels and sums labels only one operand has', () => {
    const I = 3;
    const J = 8;
    const L = 4;
    const n = 30000;
    const a = gaussians(n * J * L, 0.1, 1, 9);
    const b = gaussians(n * J, 0.4, 0.5, 10);
    // "ijl,ij->i": y = Σ_j (Σ_l a_jl)·b_j
    const y = new Float64Array(n);
    for (let s = 0; s < n; s++)
      for (let j = 0; j < J; j++) {
        let sa = 0;
        for (let l = 0; l < L; l++) sa += a[(s * J + j) * L + l]!;
        y[s]! += sa * b[s * J + j]!;
      }
    const st = stats(y);
    const pred = fwd({
      op: 'Einsum',
      attrs: { equation: 'ijl,ij->i' },
      inputs: [
        { scale: gaussianScale(0.1, 1), shape: [I, J, L] },
        { scale: gaussianScale(0.4, 0.5), shape: [I, J] },
      ],
    });
    expect(Math.abs(pred.mean - st.mean)).toBeLessThanOrEqual(5 * st.seMean);
    expect(Math.abs(pred.meanSquare - st.meanSquare)).toBeLessThanOrEqual(5 * st.seMeanSquare);
  });

  describe("ellipsis ('...' expanded into fresh labels, ONNX Einsum spec)", () => {
    const x = gaussianScale(0.3, 1.1);
    const w = gaussianScale(-0.2, 0.6);
    const einsum = (equation: string, sa: number[] | null, sb: number[] | null): Scale =>
      fwd({ op: 'Einsum', attrs: { equation }, inputs: [{ scale: x, shape: sa }, { scale: w, shape: sb }] });
    const matmul = (sa: number[], sb: number[]): Scale => fwd({ op: 'MatMul', inputs: [{ scale: x, shape: sa }, { scale: w, shape: sb }] });
    const same = (p: Scale, q: Scale): void => {
      expect(p.confidence).not.toBe('unknown');
      expect(p.mean).toBeCloseTo(q.mean, 12);
      expect(p.meanSquare).toBeCloseTo(q.meanSquare, 12);
    };

    it("'...ij,...jk->...ik' and its implicit form are MatMul", () => {
      const m = matmul([2, 5, 3, 8], [2, 5, 8, 4]);
      // E[y²] = K·E[a²]E[b²] + K(K−1)·E[a]²E[b]² with K = 8 (PRIMER §3)
      expect(m.meanSquare).toBeCloseTo(8 * (0.09 + 1.21) * (0.04 + 0.36) + 56 * 0.09 * 0.04, 10);
      same(einsum('...ij,...jk->...ik', [2, 5, 3, 8], [2, 5, 8, 4]), m);
      same(einsum('...ij,...jk', [2, 5, 3, 8], [2, 5, 8, 4]), m);
      same(einsum('i...j,...jk->i...k', [3, 2, 5, 8], [2, 5, 8, 4]), m); // "..." not leading
    });

    it('broadcasts the ellipsis dims, and accepts one standing for no dims', () => {
      same(einsum('...ij,...jk->...ik', [1, 5, 3, 8], [2, 1, 8, 4]), matmul([1, 5, 3, 8], [2, 1, 8, 4]));
      same(einsum('...ij,...jk', [3, 8], [6, 8, 4]), matmul([3, 8], [6, 8, 4]));
    });

    it('a broadcast operand is the same element along the dims it lacks (Monte-Carlo)', () => {
      // "...j,...j->" with a [1, J], b [E, J]: y = Σ_j a_j·(Σ_e b_ej), not a sum of E·J independent products.
      const E = 6;
      const J = 5;
      const n = 40000;
      const a = gaussians(n * J, 0.6, 1, 21);
      const b = gaussians(n * E * J, 0.5, 0.7, 22);
      const y = new Float64Array(n);
      for (let s = 0; s < n; s++)
        for (let j = 0; j < J; j++) {
          let sb = 0;
          for (let e = 0; e < E; e++) sb += b[(s * E + e) * J + j]!;
          y[s]! += a[s * J + j]! * sb;
        }
      const st = stats(y);
      const pred = fwd({
        op: 'Einsum',
        attrs: { equation: '...j,...j->' },
        inputs: [
          { scale: gaussianScale(0.6, 1), shape: [1, J] },
          { scale: gaussianScale(0.5, 0.7), shape: [E, J] },
        ],
      });
      expect(Math.abs(pred.mean - st.mean)).toBeLessThanOrEqual(5 * st.seMean);
      expect(Math.abs(pred.meanSquare - st.meanSquare)).toBeLessThanOrEqual(5 * st.seMeanSquare);
    });

    it('contracts ellipsis dims missing from the output (Monte-Carlo)', () => {
      // "i...,i...->i": y = Σ_{e1,e2} a_e·b_e, K = 3·4 (the leading i is the sample).
      const n = 30000;
      const K = 12;
      const a = gaussians(n * K, 0.3, 1.1, 23);
      const b = gaussians(n * K, -0.2, 0.6, 24);
      const y = new Float64Array(n);
      for (let s = 0; s < n; s++) for (let k = 0; k < K; k++) y[s]! += a[s * K + k]! * b[s * K + k]!;
      const st = stats(y);
      const pred = einsum('i...,i...->i', [n, 3, 4], [n, 3, 4]);
      expect(Math.abs(pred.mean - st.mean)).toBeLessThanOrEqual(5 * st.seMean);
      expect(Math.abs(pred.meanSquare - st.meanSquare)).toBeLessThanOrEqual(5 * st.seMeanSquare);
    });

    it('is unknown, not a guess, for mismatched ellipsis ranks or an unknown rank', () => {
      expect(einsum('...ij,...jk->...ik', [2, 5, 3, 8], [5, 8, 4]).confidence).toBe('unknown');
      expect(einsum('...ij,...jk->...ik', [3, 8], null).confidence).toBe('unknown');
      expect(einsum('...ijk,jk->i', [3, 8], [8, 4]).confidence).toBe('unknown'); // fewer dims than letters
    });
  });
});

describe('MatMulInteger', () => {
  it('has no float output', () => {
    const out = rules.MatMulInteger!.forward(ruleContext({ op: 'MatMulInteger', inputs: [{ scale: null, dtype: DataType.INT8, shape: [2, 3] }, { scale: null, dtype: DataType.INT8, shape: [3, 4] }] }));
    expect(out[0]).toBeNull();
  });
});

describe('MatMul backward (PRIMER §4)', () => {
  const B = 3000;
  const K = 16;
  const N = 20;
  const w = gaussians(K * N, 0, 0.25, 11);
  const x = gaussians(B * K, 0.3, 1.2, 12);
  const g = gaussians(B * N, 0, 1, 13);
  const spec: NodeSpec = {
    op: 'MatMul',
    inputs: [
      { scale: gaussianScale(0.3, 1.2), shape: [B, K] },
      { scale: scaleOf(w), shape: [K, N], constant: Array.from(w) },
    ],
    outputs: [{ shape: [B, N] }],
  };
  const grads = rules.MatMul!.backward!(backwardContext(spec, [null], [gaussianScale(0, 1)]));

  it('∂x = g·Wᵀ: E[∂x²] = N_out·E[g²]·E[w²]', () => {
    // ∂x[b,k] = Σ_n g[b,n] w[k,n]
    const dx = new Float64Array(B * K);
    for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) dx[b * K + k]! += g[b * N + n]! * w[k * N + n]!;
    const { m2 } = rowStats(dx, B, K);
    expect(Math.abs(grads[0]!.meanSquare - m2.mean)).toBeLessThanOrEqual(5 * m2.seMean);
  });

  it('∂W = xᵀ·g: E[∂W²] = B·E[x²]·E[g²]', () => {
    const dw = new Float64Array(K * N);
    for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) dw[k * N + n]! += x[b * K + k]! * g[b * N + n]!;
    const s = stats(dw);
    // Few samples (K·N = 320 entries): 5 standard errors of their mean square.
    expect(Math.abs(grads[1]!.meanSquare - s.meanSquare)).toBeLessThanOrEqual(5 * s.seMeanSquare);
    expect(grads[1]!.meanSquare).toBeCloseTo(B * (0.3 ** 2 + 1.2 ** 2), 6);
  });
});
