/**
 * Classification metrics of one model on a labeled set, accumulated batch by batch so memory is
 * bounded by the number of classes (a K×K confusion matrix), never by the eval set's size.
 */

export interface PerClassAccuracy {
  cls: number;
  name: string;
  /** Eval samples whose true class is `cls`. */
  samples: number;
  /** Of those, predicted `cls` (top-1). */
  correct: number;
  /** correct / samples; null when the eval set has no sample of the class. */
  accuracy: number | null;
}

export interface ClassificationMetrics {
  samples: number;
  /** top-k accuracy for each requested k (k capped at the number of classes), e.g. { "1": 0.81, "5": 0.99 }. */
  topK: Record<string, number>;
  top1: number;
  perClass: PerClassAccuracy[];
  /** confusion[true][predicted] counts; every row sums to that class's sample count. */
  confusion: number[][];
}

export class MetricsAccumulator {
  private readonly confusion: number[][];
  private readonly hitsAtK: number[];
  private samples = 0;
  readonly maxK: number;

  constructor(
    readonly classes: readonly string[],
    readonly ks: readonly number[],
  ) {
    if (classes.length < 2) throw new RangeError(`metrics need at least 2 classes (got ${classes.length})`);
    if (ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k < 1)) throw new RangeError(`top-k values must be positive integers (got ${JSON.stringify(ks)})`);
    this.confusion = classes.map(() => new Array<number>(classes.length).fill(0));
    this.maxK = Math.min(Math.max(...ks), classes.length);
    this.hitsAtK = new Array<number>(this.maxK + 1).fill(0);
  }

  /**
   * One sample: its true class and the model's classes ranked best first (at least `maxK` of
   * them, or all classes). `ranked` may be a view into a larger row-major batch array.
   */
  add(label: number, ranked: ArrayLike<number>): void {
    const K = this.classes.length;
    if (!Number.isInteger(label) || label < 0 || label >= K) throw new RangeError(`label ${label} is outside the ${K} classes`);
    const top = ranked[0]!;
    if (!Number.isInteger(top) || top < 0 || top >= K) throw new RangeError(`predicted class ${top} is outside the ${K} classes`);
    this.confusion[label]![top]!++;
    this.samples++;
    // hitsAtK[r] counts samples whose true class is at rank r (1-based); top-k = Σ_{r<=k}.
    for (let r = 0; r < Math.min(this.maxK, ranked.length); r++) {
      if (ranked[r] === label) {
        this.hitsAtK[r + 1]!++;
        break;
      }
    }
  }

  result(): ClassificationMetrics {
    const n = this.samples;
    const topK: Record<string, number> = {};
    for (const k of [...new Set(this.ks.map((k) => Math.min(k, this.maxK)))].sort((a, b) => a - b)) {
      let hits = 0;
      for (let r = 1; r <= k; r++) hits += this.hitsAtK[r]!;
      topK[String(k)] = n ? hits / n : 0;
    }
    const perClass = this.classes.map((name, cls) => {
      const row = this.confusion[cls]!;
      const samples = row.reduce((a, b) => a + b, 0);
      const correct = row[cls]!;
      return { cls, name, samples, correct, accuracy: samples ? correct / samples : null };
    });
    const correct = perClass.reduce((a, c) => a + c.correct, 0);
    return { samples: n, topK, top1: n ? correct / n : 0, perClass, confusion: this.confusion.map((r) => [...r]) };
  }
}
