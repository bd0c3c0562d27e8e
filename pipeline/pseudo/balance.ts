/**
 * Noisy Student class balancing (Xie et al. 2020, "Self-training with Noisy Student", arXiv 1911.04252 §2; as implemented in
 * https://github.com/google-research/noisystudent/blob/aac52bf02448f6e45aee6c418f3e588803e4fa43/filter_unlabel.py):
 * per class, the highest threshold on the 0.01 grid (from 1.00 down to the floor) at which
 * the class still has at least `target` samples, else the floor; each kept sample is then seen
 * target/kept times on average.
 */
import { GRID_STEPS, gridIndex } from './grid.js';

/** Per-class histogram of top-1 confidence on the 0.01 grid: the only state of pass 1. */
export class ConfidenceHistogram {
  readonly counts: Uint32Array[];
  constructor(readonly numClasses: number) {
    this.counts = Array.from({ length: numClasses }, () => new Uint32Array(GRID_STEPS + 1));
  }
  add(cls: number, confidence: number): void {
    this.counts[cls]![gridIndex(confidence)]!++;
  }
  candidates(cls: number): number {
    let n = 0;
    for (const c of this.counts[cls]!) n += c;
    return n;
  }
  total(): number {
    let n = 0;
    for (let c = 0; c < this.numClasses; c++) n += this.candidates(c);
    return n;
  }
}

export interface ClassPlan {
  cls: number;
  /** Samples whose teacher top-1 is this class (any confidence). */
  candidates: number;
  /** Chosen threshold as a grid index (samples with gridIndex(p) >= it are kept). */
  thresholdIndex: number;
  threshold: number;
  kept: number;
  /** target / kept: expected repeats per kept sample (0 when nothing is kept). */
  repeatRate: number;
}

export function planClass(counts: Uint32Array, cls: number, target: number, floorIndex: number): ClassPlan {
  let candidates = 0;
  for (const c of counts) candidates += c;
  // Walk the grid downwards, accumulating the samples at or above each threshold.
  let atOrAbove = 0;
  for (let i = GRID_STEPS; i > floorIndex; i--) {
    atOrAbove += counts[i]!;
    if (atOrAbove >= target) return plan(i, atOrAbove);
  }
  // Not reached above the floor: the floor it is, with whatever the class has there.
  atOrAbove += counts[floorIndex]!;
  return plan(floorIndex, atOrAbove);

  function plan(index: number, kept: number): ClassPlan {
    return {
      cls,
      candidates,
      thresholdIndex: index,
      threshold: index / GRID_STEPS,
      kept,
      repeatRate: kept > 0 ? target / kept : 0,
    };
  }
}

export function planClasses(hist: ConfidenceHistogram, target: number, floorIndex: number): ClassPlan[] {
  return hist.counts.map((counts, cls) => planClass(counts, cls, target, floorIndex));
}
