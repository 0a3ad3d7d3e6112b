/** The fan-in sum kernel (src/analysis/slice-kernel.ts) against plain float64 loops. */
import { describe, expect, it } from 'vitest';
import { MAX_COLUMNS, SliceKernel } from '../../src/analysis/slice-kernel.js';
import { mulberry32 } from '../helpers/random.js';

const k = SliceKernel.create();

function data(n: number, seed: number): Float32Array {
  const rnd = mulberry32(seed);
  const v = new Float32Array(n).map(() => (rnd() - 0.5) * 2 ** Math.floor(rnd() * 40 - 20));
  v[3] = NaN;
  v[n - 2] = -Infinity;
  v[n >> 1] = Infinity;
  v[7] = -0;
  return v;
}

const ref = (v: ArrayLike<number>) => {
  let s = 0;
  let a = 0;
  let q = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (!Number.isFinite(x)) continue;
    s += x;
    a += Math.abs(x);
    q += x * x;
  }
  return [s, a, q];
};

const close = (x: number, y: number) => expect(Math.abs(x - y)).toBeLessThanOrEqual(1e-12 * Math.max(1e-300, Math.abs(y)) + 1e-300);

describe.runIf(k !== null)('SliceKernel', () => {
  it('rows: Σ, Σ|x|, Σx² of any run (tails of 0–3), non-finite skipped', () => {
    const v = data(1003, 1);
    k!.load(v);
    for (const [i, n] of [
      [0, 1003],
      [5, 0],
      [5, 1],
      [5, 2],
      [5, 3],
      [1, 998],
      [400, 13],
    ]) {
      const got = k!.rows(i!, n!);
      const want = ref(v.subarray(i!, i! + n!));
      for (let t = 0; t < 3; t++) close(got[t]!, want[t]!);
    }
  });

  it('cols: rows added into columns at any offset, accumulated across calls', () => {
    const inner = 37;
    const rows = 29;
    const v = data(inner * rows, 2);
    k!.load(v);
    k!.clearColumns(inner + 5);
    // Start mid-row: element 11 is column 11 of row 0; place the window at offset 5.
    for (let i = 11; i < v.length; ) {
      const col = i % inner;
      const len = Math.min(v.length - i, inner - col);
      k!.cols(i, len, 5 + col);
      i += len;
    }
    const c = k!.columns(inner + 5);
    for (let col = 0; col < inner; col++) {
      const column: number[] = [];
      for (let r = 0; r < rows; r++) if (r * inner + col >= 11) column.push(v[r * inner + col]!);
      const [s, a, q] = ref(column);
      close(c.S[5 + col]!, s!);
      close(c.A[5 + col]!, a!);
      close(c.Q[5 + col]!, q!);
    }
    for (const j of [0, 1, 2, 3, 4]) expect(c.S[j]).toBe(0);
    expect(MAX_COLUMNS).toBeGreaterThanOrEqual(1 << 15);
  });
});
