/**
 * Seeded randomness for generated inputs: reproducible across runs and machines, no
 * dependencies. SplitMix32-style mixing of (seed, stream) picks an independent stream per
 * (run, input), so adding an input or a run never changes the values of the others.
 */

/** Mulberry32: uniform on [0, 1) in steps of 2^-32. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit hash of the integers given (murmur3 finaliser over a running mix). */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** Standard normal samples by Box–Muller, both branches used; 53-bit uniforms (no log(0)). */
export function fillGaussian(out: Float64Array | Float32Array, rng: () => number): void {
  const u53 = (): number => {
    const hi = Math.floor(rng() * 2 ** 26);
    const lo = Math.floor(rng() * 2 ** 27);
    return (hi * 2 ** 27 + lo + 0.5) / 2 ** 53;
  };
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u53()));
    const t = 2 * Math.PI * u53();
    out[i] = r * Math.cos(t);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(t);
  }
}

/** Uniform integer in [lo, hi). */
export function uniformInt(rng: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo));
}
