/**
 * A plain reference for backward-rule tests: NCHW / row-major tensors as Float64Array with
 * forward ops and their hand-derived backward (vector–Jacobian products), small enough to run
 * many Monte-Carlo repetitions.
 */

export interface T {
  shape: number[];
  data: Float64Array;
}

export const numel = (s: number[]): number => s.reduce((a, b) => a * b, 1);
export const zeros = (shape: number[]): T => ({ shape, data: new Float64Array(numel(shape)) });
export const meanSquare = (t: T | Float64Array | ArrayLike<number>): number => {
  const d = 'data' in (t as T) ? (t as T).data : (t as ArrayLike<number>);
  let s = 0;
  for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  return s / d.length;
};

export interface ConvOpts {
  group?: number;
  stride?: number;
  pad?: number;
}

/** y[b,m,o] = Σ_{c in group, taps} w[m,c,i,j]·x[b, c, o·s − p + i, …] (2-D, square strides/pads). */
export function conv2d(x: T, w: T, o: ConvOpts = {}): T {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const [M, Cg, KH, KW] = w.shape as [number, number, number, number];
  const g = o.group ?? 1;
  const s = o.stride ?? 1;
  const p = o.pad ?? 0;
  const OH = Math.floor((H + 2 * p - KH) / s) + 1;
  const OW = Math.floor((W + 2 * p - KW) / s) + 1;
  const y = zeros([B, M, OH, OW]);
  const Mg = M / g;
  for (let b = 0; b < B; b++)
    for (let m = 0; m < M; m++) {
      const grp = Math.floor(m / Mg);
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let acc = 0;
          for (let cl = 0; cl < Cg; cl++) {
            const c = grp * Cg + cl;
            for (let i = 0; i < KH; i++) {
              const h = oh * s - p + i;
              if (h < 0 || h >= H) continue;
              for (let j = 0; j < KW; j++) {
                const v = ow * s - p + j;
                if (v < 0 || v >= W) continue;
                acc += w.data[((m * Cg + cl) * KH + i) * KW + j]! * x.data[((b * C + c) * H + h) * W + v]!;
              }
            }
          }
          y.data[((b * M + m) * OH + oh) * OW + ow] = acc;
        }
    }
  return y;
}

/** Backward of conv2d: (∂x, ∂w) from ∂y. */
export function conv2dBackward(x: T, w: T, gy: T, o: ConvOpts = {}): { dx: T; dw: T } {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const [M, Cg, KH, KW] = w.shape as [number, number, number, number];
  const [, , OH, OW] = gy.shape as [number, number, number, number];
  const g = o.group ?? 1;
  const s = o.stride ?? 1;
  const p = o.pad ?? 0;
  const dx = zeros(x.shape);
  const dw = zeros(w.shape);
  const Mg = M / g;
  for (let b = 0; b < B; b++)
    for (let m = 0; m < M; m++) {
      const grp = Math.floor(m / Mg);
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          const gv = gy.data[((b * M + m) * OH + oh) * OW + ow]!;
          if (gv === 0) continue;
          for (let cl = 0; cl < Cg; cl++) {
            const c = grp * Cg + cl;
            for (let i = 0; i < KH; i++) {
              const h = oh * s - p + i;
              if (h < 0 || h >= H) continue;
              for (let j = 0; j < KW; j++) {
                const v = ow * s - p + j;
                if (v < 0 || v >= W) continue;
                const wi = ((m * Cg + cl) * KH + i) * KW + j;
                const xi = ((b * C + c) * H + h) * W + v;
                dw.data[wi]! += gv * x.data[xi]!;
                dx.data[xi]! += gv * w.data[wi]!;
              }
            }
          }
        }
    }
  return { dx, dw };
}

export function map(x: T, f: (v: number) => number): T {
  return { shape: x.shape, data: x.data.map(f) };
}

/** ∂x = ∂y · f'(x). */
export function mapBackward(x: T, gy: T, d: (v: number) => number): T {
  const out = zeros(x.shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = gy.data[i]! * d(x.data[i]!);
  return out;
}

export const relu = (v: number): number => Math.max(0, v);
export const reluD = (v: number): number => (v > 0 ? 1 : 0);
export const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
export const sigmoidD = (v: number): number => sigmoid(v) * (1 - sigmoid(v));

/** Mean over H, W of [B, C, H, W] → [B, C, 1, 1]. */
export function gap(x: T): T {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const y = zeros([B, C, 1, 1]);
  for (let bc = 0; bc < B * C; bc++) {
    let s = 0;
    for (let k = 0; k < H * W; k++) s += x.data[bc * H * W + k]!;
    y.data[bc] = s / (H * W);
  }
  return y;
}

export function gapBackward(xShape: number[], gy: T): T {
  const [B, C, H, W] = xShape as [number, number, number, number];
  const dx = zeros(xShape);
  for (let bc = 0; bc < B * C; bc++) for (let k = 0; k < H * W; k++) dx.data[bc * H * W + k] = gy.data[bc]! / (H * W);
  return dx;
}

/** y = x·W for x [R, K] (leading dims flattened) and W [K, N]. */
export function matmul(x: T, w: T): T {
  const K = w.shape[0]!;
  const N = w.shape[1]!;
  const R = x.data.length / K;
  const y = zeros([...x.shape.slice(0, -1), N]);
  for (let r = 0; r < R; r++)
    for (let k = 0; k < K; k++) {
      const xv = x.data[r * K + k]!;
      if (xv === 0) continue;
      for (let n = 0; n < N; n++) y.data[r * N + n]! += xv * w.data[k * N + n]!;
    }
  return y;
}

export function matmulBackward(x: T, w: T, gy: T): { dx: T; dw: T } {
  const K = w.shape[0]!;
  const N = w.shape[1]!;
  const R = x.data.length / K;
  const dx = zeros(x.shape);
  const dw = zeros(w.shape);
  for (let r = 0; r < R; r++)
    for (let n = 0; n < N; n++) {
      const gv = gy.data[r * N + n]!;
      for (let k = 0; k < K; k++) {
        dx.data[r * K + k]! += gv * w.data[k * N + n]!;
        dw.data[k * N + n]! += gv * x.data[r * K + k]!;
      }
    }
  return { dx, dw };
}

/** y = a ⊙ s with s [B, C, 1, 1] broadcast over [B, C, H, W]. */
export function mulChannel(a: T, s: T): T {
  const [B, C, H, W] = a.shape as [number, number, number, number];
  const y = zeros(a.shape);
  for (let bc = 0; bc < B * C; bc++) for (let k = 0; k < H * W; k++) y.data[bc * H * W + k] = a.data[bc * H * W + k]! * s.data[bc]!;
  return y;
}

export function mulChannelBackward(a: T, s: T, gy: T): { da: T; ds: T } {
  const [B, C, H, W] = a.shape as [number, number, number, number];
  const da = zeros(a.shape);
  const ds = zeros(s.shape);
  for (let bc = 0; bc < B * C; bc++)
    for (let k = 0; k < H * W; k++) {
      const i = bc * H * W + k;
      da.data[i] = gy.data[i]! * s.data[bc]!;
      ds.data[bc]! += gy.data[i]! * a.data[i]!;
    }
  return { da, ds };
}

/** x + b with b [C, 1, 1]; backward of b sums over B, H, W. */
export function addBias(x: T, b: Float64Array): T {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const y = zeros(x.shape);
  for (let bb = 0; bb < B; bb++) for (let c = 0; c < C; c++) for (let k = 0; k < H * W; k++) y.data[((bb * C + c) * H * W) + k] = x.data[((bb * C + c) * H * W) + k]! + b[c]!;
  return y;
}

export function biasBackward(gy: T): Float64Array {
  const [B, C, H, W] = gy.shape as [number, number, number, number];
  const db = new Float64Array(C);
  for (let bb = 0; bb < B; bb++) for (let c = 0; c < C; c++) for (let k = 0; k < H * W; k++) db[c]! += gy.data[((bb * C + c) * H * W) + k]!;
  return db;
}

/** 2-D pooling (square kernel k, stride s, pad p; average excludes padding). */
export function pool(x: T, kind: 'avg' | 'max', k: number, s: number, p = 0): { y: T; back: (gy: T) => T } {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const OH = Math.floor((H + 2 * p - k) / s) + 1;
  const OW = Math.floor((W + 2 * p - k) / s) + 1;
  const y = zeros([B, C, OH, OW]);
  const arg = new Int32Array(y.data.length);
  for (let bc = 0; bc < B * C; bc++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        let acc = kind === 'max' ? -Infinity : 0;
        let n = 0;
        let best = -1;
        for (let i = 0; i < k; i++)
          for (let j = 0; j < k; j++) {
            const h = oh * s - p + i;
            const v = ow * s - p + j;
            if (h < 0 || h >= H || v < 0 || v >= W) continue;
            const xi = (bc * H + h) * W + v;
            n++;
            if (kind === 'max') {
              if (x.data[xi]! > acc) {
                acc = x.data[xi]!;
                best = xi;
              }
            } else acc += x.data[xi]!;
          }
        const yi = (bc * OH + oh) * OW + ow;
        y.data[yi] = kind === 'max' ? acc : acc / n;
        arg[yi] = kind === 'max' ? best : n;
      }
  const back = (gy: T): T => {
    const dx = zeros(x.shape);
    for (let bc = 0; bc < B * C; bc++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          const yi = (bc * OH + oh) * OW + ow;
          if (kind === 'max') {
            dx.data[arg[yi]!]! += gy.data[yi]!;
            continue;
          }
          for (let i = 0; i < k; i++)
            for (let j = 0; j < k; j++) {
              const h = oh * s - p + i;
              const v = ow * s - p + j;
              if (h < 0 || h >= H || v < 0 || v >= W) continue;
              dx.data[(bc * H + h) * W + v]! += gy.data[yi]! / arg[yi]!;
            }
        }
    return dx;
  };
  return { y, back };
}
