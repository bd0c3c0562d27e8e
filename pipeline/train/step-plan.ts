/**
 * The training step plan, from counts alone: how many images are held out, the batch, steps per
 * epoch, total steps, warm-up and the learning-rate schedule. Pure (no tfjs, no sharp, no store),
 * so the trainer (./trainer.ts), the train stage's baseline budget and `selftrain plan`'s estimates
 * (pipeline/runner/estimate.ts) all use this one plan and cannot drift apart.
 */
import type { TrainConfig } from '../manifest/sections/train.js';
import { scaledPeakLr, type ScheduleConfig } from './schedule.js';

/**
 * A training budget in optimizer steps rather than epochs: the all-labels baseline gets the teacher's
 * (same batch size, same number of steps, same warm-up steps), because epochs over a 60x larger set
 * would be a 60x larger budget and the comparison would no longer be "same model, same budget".
 */
export interface StepBudget {
  batch: number;
  totalSteps: number;
  warmupSteps: number;
}

export interface StepPlan {
  batch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  /** The last step actually run: totalSteps capped by `maxSteps`. */
  endStep: number;
  schedule: ScheduleConfig;
}

/** How many images `stratifiedHoldout` (./data.ts) holds out of a set with these class counts (same rounding). */
export function holdoutSize(classCounts: readonly number[], fraction: number): number {
  return classCounts.reduce((sum, n) => sum + Math.round(n * fraction), 0);
}

/** The trainer's plan for `trainCount` training images (after the hold-out). */
export function planSteps(cfg: TrainConfig, trainCount: number, budget?: StepBudget): StepPlan {
  if (trainCount < 1) throw new Error('no labeled training images left after the hold-out');
  const batch = Math.min(budget?.batch ?? cfg.batchSize, trainCount);
  // An epoch is still a pass over *this* data (data order, per-epoch metrics); only the length of
  // training and of the warm-up come from the budget when one is given.
  const stepsPerEpoch = Math.max(1, Math.floor(trainCount / batch)); // drop_remainder, as the TF input pipeline
  const totalSteps = budget ? budget.totalSteps : Math.max(1, Math.round(cfg.epochs * stepsPerEpoch));
  const endStep = Math.min(totalSteps, cfg.maxSteps ?? Infinity);
  const schedule: ScheduleConfig = {
    type: cfg.schedule.type,
    peakLr: scaledPeakLr(cfg.baseLr, batch),
    totalSteps,
    warmupSteps: Math.min(totalSteps, budget ? budget.warmupSteps : Math.round(cfg.schedule.warmupEpochs * stepsPerEpoch)),
    boundaries: cfg.schedule.boundaries,
    stepFactor: cfg.schedule.stepFactor,
  };
  return { batch, stepsPerEpoch, totalSteps, endStep, schedule };
}

/** Per-class counts of a set when known (a labeled dataset.json has them), else only its size. */
export interface SetCounts {
  samples: number;
  classCounts?: readonly number[];
}

/** Held-out images of a set: exact with class counts (stratified rounding), else rounded overall. */
export function heldoutOf(set: SetCounts, fraction: number): number {
  return set.classCounts?.length ? holdoutSize(set.classCounts, fraction) : Math.round(set.samples * fraction);
}

/**
 * The teacher's budget under this recipe: the plan the trainer makes on the labeled set alone
 * (its hold-out removed). The all-labels baseline trains with it.
 */
export function teacherBudget(cfg: TrainConfig, labeled: SetCounts): StepBudget {
  const p = planSteps(cfg, labeled.samples - heldoutOf(labeled, cfg.holdout));
  return { batch: p.batch, totalSteps: p.totalSteps, warmupSteps: p.schedule.warmupSteps };
}

/** The union of two sets (the baseline's labeled + ground-truth-labeled unlabeled images). */
function union(a: SetCounts, b: SetCounts): SetCounts {
  const both = a.classCounts?.length && b.classCounts?.length && a.classCounts.length === b.classCounts.length;
  return { samples: a.samples + b.samples, ...(both ? { classCounts: a.classCounts!.map((n, c) => n + b.classCounts![c]!) } : {}) };
}

export interface TrainPlan {
  /** Training images (after the hold-out) and held-out images. */
  trainCount: number;
  heldout: number;
  batch: number;
  /** Pseudo-labeled images per step (students: round(ratio x batch)). */
  pseudoBatch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  /** Steps run (maxSteps applied). */
  steps: number;
  warmupSteps: number;
  /** Hold-out evaluations: after every epoch, after the last step, and the final one. */
  evaluations: number;
  /** The baseline's budget (the teacher's plan), when it has one. */
  budget?: StepBudget;
}

/**
 * A train stage's whole plan from dataset counts: what the trainer will do for a teacher or student
 * (the labeled set) or for the all-labels baseline (labeled + unlabeled, the teacher's budget).
 * Exact when the sets' class counts are known; otherwise the hold-out is rounded overall.
 */
export function trainPlan(o: { cfg: TrainConfig; role: 'teacher' | 'student' | 'baseline'; labeled: SetCounts; unlabeled?: SetCounts }): TrainPlan {
  const { cfg } = o;
  const budget = o.role === 'baseline' ? teacherBudget(cfg, o.labeled) : undefined;
  const data = o.role === 'baseline' && o.unlabeled ? union(o.labeled, o.unlabeled) : o.labeled;
  const heldout = heldoutOf(data, cfg.holdout);
  const trainCount = data.samples - heldout;
  const p = planSteps(cfg, trainCount, budget);
  const pseudoBatch = o.role === 'student' ? Math.max(1, Math.round(cfg.student.ratio * p.batch)) : 0;
  // The trainer evaluates at every epoch end and at the last step (once when they coincide), then
  // once more for the final record.
  const evaluations = heldout === 0 ? 0 : Math.floor(p.endStep / p.stepsPerEpoch) + (p.endStep % p.stepsPerEpoch ? 1 : 0) + 1;
  return {
    trainCount,
    heldout,
    batch: p.batch,
    pseudoBatch,
    stepsPerEpoch: p.stepsPerEpoch,
    totalSteps: p.totalSteps,
    steps: p.endStep,
    warmupSteps: p.schedule.warmupSteps,
    evaluations,
    ...(budget ? { budget } : {}),
  };
}
