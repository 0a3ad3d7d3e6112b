/**
 * Seeded randomness for tests: reproducible across runs and machines, no dependencies.
 */

/** Mulberry32, uniform on [0, 1) in steps of 2^-32: the same generator the measure command uses. */
import { mulberry32 } from '../../src/measure/random.js';
export { mulberry32 };

/**
 * Uniform on (0, 1) with 53 random bits, from two draws; never exactly 0, so logs are finite and
 * Gaussian tails are not cut off at the 2^-32 resolution of a single draw (|z| ≈ 6.7).
 */
export function uniform53(rng: () => number): number {
  const hi = Math.floor(rng() * 2 ** 26);
  const lo = Math.floor(rng() * 2 ** 27);
  return (hi * 2 ** 27 + lo + 0.5) / 2 ** 53;
}

/** Standard normal by Box–Muller (the cosine branch only; simple rather than fast). */
export function gaussian(rng: () => number): number {
  const u1 = uniform53(rng);
  const u2 = uniform53(rng);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** Laplace(mean, scale) by inverting its CDF. */
export function laplace(rng: () => number, mean: number, scale: number): number {
  const u = uniform53(rng) - 0.5;
  return mean - scale * Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
}
