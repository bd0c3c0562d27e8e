/**
 * The training step plan, from counts alone: how many images are held out, the batch, steps per
 * epoch, total steps, warm-up and the learning-rate schedule. Pure (no tfjs, no sharp, no store),
 * so the trainer (./trainer.ts), the train stage's baseline budget and `selftrain plan`'s estimates
 * (pipeline/runner/estimate.ts) all use this one plan and cannot drift apart.
 */
import type { TrainConfig } from '../manifest/sections/train.js';
import { scaledPeakLr, type ScheduleConfig } from './schedule.js';

/** What a train stage trains (pipeline/contracts/train.ts lists the same roles). */
export type TrainRole = 'teacher' | 'student' | 'baseline' | 'control';

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

/** Pseudo-labeled images per step of a student with this labeled batch (Noisy Student's ratio r). */
export function pseudoBatchOf(ratio: number, batch: number): number {
  return Math.max(1, Math.round(ratio * batch));
}

/** The trainer's plan for `trainCount` training images (after the hold-out). */
export function planSteps(cfg: TrainConfig, trainCount: number, budget?: StepBudget): StepPlan {
  if (trainCount < 1) throw new Error('no labeled training images left after the hold-out');
  const batch = Math.min(budget?.batch ?? cfg.batchSize, trainCount);
  // An epoch is still a pass over *this* data (data order, per-epoch metrics); only the length of
  // training and of the warm-up come from the budget when one is given.
  const stepsPerEpoch = Math.max(1, Math.floor(trainCount / batch)); // drop_remainder, as the TF input pipeline
  const totalSteps = budget ? budget.totalSteps : (cfg.steps ?? Math.max(1, Math.round(cfg.epochs * stepsPerEpoch)));
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

/**
 * A budget of at least the student's steps and training images, for the labeled-only control and
 * the all-labels bound: they must not lose to the student merely for having trained less. Images
 * alone are not enough: on the demo (1,000 Fashion-MNIST labels, seed 0) the same 256,000 images
 * in 4,000 steps of 64 gave 85.72 % where 2,000 steps of 128 gave 84.68 % (paired McNemar
 * p = 2e-4), so a control with half the student's steps credits pseudo-labels with a point that
 * more updates alone buy. Steps of this recipe's own batch: the student's steps, or more when
 * they would not reach the student's images (its steps times labeled + pseudo-labeled images per
 * step); the warm-up covers the same share of training as the student's.
 */
export function studentBudget(own: TrainConfig, student: TrainConfig, labeled: SetCounts): StepBudget {
  const s = planSteps(student, labeled.samples - heldoutOf(labeled, student.holdout));
  const imagesPerStep = s.batch + pseudoBatchOf(student.student.ratio, s.batch);
  const batch = own.batchSize;
  const totalSteps = Math.max(s.totalSteps, Math.ceil((s.totalSteps * imagesPerStep) / batch));
  const warmupSteps = Math.min(totalSteps, Math.round((s.schedule.warmupSteps / s.totalSteps) * totalSteps));
  return { batch, totalSteps, warmupSteps };
}

/** Steps and images of a training run, in any common unit (absolute, or per pass over one set). */
export interface Amount {
  steps: number;
  images: number;
}

/**
 * Whether a labeled-only model's training covers the student's: at least its steps and at least its
 * images (studentBudget above says why both). The one rule the chain (from the manifest) and the
 * report (from the recorded budgets) apply.
 */
export function coversBudget(control: Amount, student: Amount): boolean {
  return control.steps >= student.steps && control.images >= student.images;
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
 * A train stage's whole plan from dataset counts: what the trainer will do for a teacher, student or
 * labeled-only control (the labeled set) or for the all-labels baseline (labeled + unlabeled), with
 * the student's budget in images when `budgetOf` (the student's recipe) is given, else the
 * baseline's older default, the teacher's steps.
 * Exact when the sets' class counts are known; otherwise the hold-out is rounded overall.
 */
export function trainPlan(o: { cfg: TrainConfig; role: TrainRole; labeled: SetCounts; unlabeled?: SetCounts; budgetOf?: TrainConfig }): TrainPlan {
  const { cfg } = o;
  const budget = o.budgetOf ? studentBudget(cfg, o.budgetOf, o.labeled) : o.role === 'baseline' ? teacherBudget(cfg, o.labeled) : undefined;
  const data = o.role === 'baseline' && o.unlabeled ? union(o.labeled, o.unlabeled) : o.labeled;
  const heldout = heldoutOf(data, cfg.holdout);
  const trainCount = data.samples - heldout;
  const p = planSteps(cfg, trainCount, budget);
  const pseudoBatch = o.role === 'student' ? pseudoBatchOf(cfg.student.ratio, p.batch) : 0;
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
