/**
 * Pseudo-label quality against held-back ground truth: how often the teacher's top-1 is right
 * as a function of its confidence (from the infer predictions, before any filtering), and the
 * per-class precision of what select actually kept. Both are streaming accumulators: memory is
 * one counter per grid point / class plus the ground-truth map the caller holds.
 */

/** Confidence grid of select (0.00 … 1.00 in steps of 0.01): a sample is in bin floor(100·p). */
const GRID = 100;

function bin(p: number): number {
  // The epsilon keeps e.g. 0.3 (0.29999… in binary) in bin 30, as select counts it.
  return Math.min(GRID, Math.max(0, Math.floor(p * GRID + 1e-9)));
}

export interface ThresholdPoint {
  threshold: number;
  /** Predicted samples with confidence >= threshold (that have ground truth). */
  kept: number;
  /** kept / all predicted samples with ground truth. */
  coverage: number;
  /** Share of kept samples whose top-1 equals the ground truth; null when none are kept. */
  accuracy: number | null;
}

export class ThresholdCurve {
  private readonly total = new Array<number>(GRID + 1).fill(0);
  private readonly correct = new Array<number>(GRID + 1).fill(0);

  add(confidence: number, isCorrect: boolean): void {
    const b = bin(confidence);
    this.total[b]!++;
    if (isCorrect) this.correct[b]!++;
  }

  /** Accuracy and coverage at thresholds `step`, 2·step, … (on the 0.01 grid), from 0. */
  points(step = 0.05): ThresholdPoint[] {
    const all = this.total.reduce((a, b) => a + b, 0);
    const out: ThresholdPoint[] = [];
    const stride = Math.max(1, Math.round(step * GRID));
    for (let t = 0; t < GRID; t += stride) {
      let kept = 0;
      let right = 0;
      for (let b = t; b <= GRID; b++) {
        kept += this.total[b]!;
        right += this.correct[b]!;
      }
      out.push({ threshold: t / GRID, kept, coverage: all ? kept / all : 0, accuracy: kept ? right / kept : null });
    }
    return out;
  }
}

export interface ClassPrecision {
  cls: number;
  name: string;
  /** Unique kept pseudo-labels of this class that have ground truth. */
  kept: number;
  /** Of those, labels equal to the ground truth. */
  correct: number;
  /** correct / kept; null when nothing of the class was kept. */
  precision: number | null;
  /** The same weighted by repeats: precision of the pseudo-labeled set the student trains on. */
  weightedPrecision: number | null;
}

export class PrecisionAccumulator {
  private readonly kept: number[];
  private readonly correct: number[];
  private readonly keptW: number[];
  private readonly correctW: number[];
  /** Kept samples for which the ground truth has no entry (reported, never silently dropped). */
  missingTruth = 0;

  constructor(readonly classes: readonly string[]) {
    this.kept = classes.map(() => 0);
    this.correct = classes.map(() => 0);
    this.keptW = classes.map(() => 0);
    this.correctW = classes.map(() => 0);
  }

  add(label: number, truth: number | undefined, repeats: number): void {
    if (!Number.isInteger(label) || label < 0 || label >= this.classes.length) throw new RangeError(`pseudo-label class ${label} is outside the ${this.classes.length} classes`);
    if (truth === undefined) {
      this.missingTruth++;
      return;
    }
    this.kept[label]!++;
    this.keptW[label]! += repeats;
    if (truth === label) {
      this.correct[label]!++;
      this.correctW[label]! += repeats;
    }
  }

  result(): { perClass: ClassPrecision[]; precision: number | null; weightedPrecision: number | null; kept: number; missingTruth: number } {
    const perClass = this.classes.map((name, cls) => ({
      cls,
      name,
      kept: this.kept[cls]!,
      correct: this.correct[cls]!,
      precision: this.kept[cls]! ? this.correct[cls]! / this.kept[cls]! : null,
      weightedPrecision: this.keptW[cls]! ? this.correctW[cls]! / this.keptW[cls]! : null,
    }));
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    const kept = sum(this.kept);
    const keptW = sum(this.keptW);
    return {
      perClass,
      kept,
      precision: kept ? sum(this.correct) / kept : null,
      weightedPrecision: keptW ? sum(this.correctW) / keptW : null,
      missingTruth: this.missingTruth,
    };
  }
}
