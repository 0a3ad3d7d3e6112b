/**
 * Mask fills: exporters add attention masks filled with a huge negative number (float32's
 * lowest, -1e9, -1e4) so that Softmax gives those positions zero weight. Such elements
 * overflow every low-precision format by design; they are worth naming, and a gate should not
 * confuse them with a scale problem (a saturating cast keeps them a very large negative
 * number, which still masks).
 */
import type { PredictedDistribution } from './scale.js';

/** Below this a value counts as a mask fill. */
export const MASK_FILL = -1e4;

/** Share of elements at a mask fill, and the lowest fill value; null when there are none. */
export function maskShare(d: PredictedDistribution): { share: number; fill: number } | null {
  let share = 0;
  let fill = 0;
  const visit = (w: number, x: PredictedDistribution): void => {
    if (x.kind === 'discrete') {
      const total = x.weights.reduce((a, b) => a + b, 0) || 1;
      x.values.forEach((v, i) => {
        if (v <= MASK_FILL) {
          share += (w * x.weights[i]!) / total;
          fill = Math.min(fill, v);
        }
      });
    } else if (x.kind === 'mixture') for (const p of x.parts) visit(w * p.weight, p.dist);
  };
  visit(1, d);
  return share > 0 ? { share, fill } : null;
}
