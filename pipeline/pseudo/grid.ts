/**
 * The 0.01 confidence grid of Noisy Student filtering. Thresholds and histogram bins use the
 * same integer index so pass 1 (histogram) and pass 2 (keep or drop) can never disagree, which
 * plain float comparisons (0.57 * 100 = 56.99999...) would allow.
 */
export const GRID_STEPS = 100;

/** Largest t in 0..100 with p >= t/100. */
export function gridIndex(p: number): number {
  if (!(p > 0)) return 0;
  if (p >= 1) return GRID_STEPS;
  let t = Math.floor(p * GRID_STEPS);
  if ((t + 1) / GRID_STEPS <= p) t++;
  else if (t / GRID_STEPS > p) t--;
  return t;
}

/** Grid index of a threshold given as a number (e.g. the manifest floor 0.3 -> 30). */
export function thresholdIndex(threshold: number): number {
  // A threshold is a grid point by construction; round to absorb float noise (0.3 * 100).
  return Math.min(GRID_STEPS, Math.max(0, Math.round(threshold * GRID_STEPS)));
}
