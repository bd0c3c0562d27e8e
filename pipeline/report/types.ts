/** The evaluate stage's objects: per-model and per-round metrics, and `report.json` that gathers them. */
import type { ClassificationMetrics } from './metrics.js';
import type { PerImageCorrectness } from './per-image.js';
import type { ClassPrecision, ThresholdPoint } from './pseudo-quality.js';
import type { Interval, PairedTest } from './stats.js';

export type ModelRole = 'teacher' | 'student' | 'baseline' | 'control' | 'model';

/** `evaluate/models/<train-stage-id>.json`: one model on the eval set (committed per model). */
export interface ModelEvaluation {
  format: 1;
  /** The train stage that produced the model, e.g. `train-student-1`. */
  stage: string;
  role: ModelRole;
  iteration: number | null;
  /** `<model name>@<hash of model.json>`: identifies the exact weights evaluated. */
  modelId: string;
  evalDataset: string;
  preprocessing: { imageSize: number; channels: number; cropFraction: number; mean: number[]; std: number[] };
  /** Eval samples that failed to decode (left out of every metric). */
  skipped: number;
  seconds: number;
  imagesPerSecond: number;
  /** Workers the eval shards were spread over (absent in results written before it was recorded). */
  workers?: number;
  backend: string | null;
  metrics: ClassificationMetrics;
  /** Top-1 right/wrong per eval image (for paired tests between models). */
  perImage: PerImageCorrectness;
}

/** `evaluate/pseudo/<select-stage-id>.json`: quality of one round's pseudo-labels. */
export interface PseudoEvaluation {
  format: 1;
  /** The select stage, e.g. `select-1`, and the infer stage it selected from. */
  stage: string;
  infer: string;
  iteration: number | null;
  /** sha256 (16 hex) of the select summary this was computed from (a re-run select invalidates it). */
  selectHash: string;
  /** Select settings and outcome, copied from its summary. */
  floor: number;
  target: number;
  unique: number;
  pseudoLabeled: number;
  /** Per-class thresholds chosen by select. */
  thresholds: { cls: number; name: string; threshold: number; candidates: number; kept: number; unique: number; repeats: number }[];
  /** Teacher top-1 confidence histogram of all unlabeled samples (infer summary, 20 bins over [0, 1]). */
  confidenceHistogram: number[];
  /** False when the unlabeled set has no held-back labels: the fields below are then null/empty. */
  groundTruth: boolean;
  precision: number | null;
  weightedPrecision: number | null;
  perClass: ClassPrecision[];
  /** Kept samples without a ground-truth entry. */
  missingTruth: number;
  /** Accuracy of the teacher's top-1 vs confidence threshold, over all predicted unlabeled samples. */
  thresholdCurve: ThresholdPoint[];
}

export interface StageTiming {
  stage: string;
  kind: string;
  status: string;
  attempts: number;
  durationMs: number | null;
  totalMs: number | null;
  backend: string | null;
}

export interface ChartRef {
  name: string;
  title: string;
  /** Path relative to the report (e.g. `charts/accuracy.svg`). */
  file: string;
}

/** What a train stage spent: optimizer steps and images through the network (labeled + pseudo-labeled). */
export interface TrainingBudget {
  steps: number;
  imagesPerStep: number;
  /** This stage's own training images (steps × images per step). */
  images: number;
  /**
   * Training images of the weights it started from (a student with student.init, counted down its
   * chain of starting points); absent or 0 from scratch. The control must match images + this (and
   * steps + carriedSteps).
   */
  carriedImages?: number;
  /** The steps that trained those starting weights, likewise. */
  carriedSteps?: number;
}

/** One trained model in the report's summary table. */
export interface ModelRow {
  stage: string;
  label: string;
  role: ModelRole;
  iteration: number | null;
  top1: number;
  /** Wilson 95 % interval of top-1 on the eval images. */
  interval95: Interval;
  samples: number;
  /** From the train stage's record and metrics; null when they cannot be read. */
  budget: TrainingBudget | null;
  /** Final held-out accuracy on the labeled hold-out (train stage), null without a hold-out. */
  heldoutAcc: number | null;
}

/** A paired comparison "second − first" on the same eval images. */
export interface Comparison {
  label: string;
  first: string;
  second: string;
  /** Null when the two models were not scored on the same images (then `note` says why). */
  test: PairedTest | null;
  note?: string;
}

/**
 * The labeled-only control: a separate train stage (role `control`), or the teacher when it has the
 * student's architecture and at least the student's training budget, else none.
 */
export interface ControlInfo {
  kind: 'stage' | 'teacher' | 'none';
  stage: string | null;
  reason: string;
}

/** Held-out accuracy against step for one trained model (its metrics.jsonl). */
export interface LearningCurve {
  stage: string;
  label: string;
  points: { step: number; heldoutAcc: number }[];
}

/** `report.json` `summary`: the headline numbers of the last iteration (fractions; p-values exact McNemar). */
export interface ReportSummary {
  teacherTop1: number | null;
  studentTop1: number | null;
  /** Equal to teacherTop1 when the teacher is the control; null when the run has no valid control. */
  controlTop1: number | null;
  /** Absent when the all-labels bound was not trained. */
  allLabelsTop1?: number;
  /** The first round's teacher, when the run has more than one round (teacherTop1 is then the last round's). */
  firstTeacherTop1?: number;
  studentMinusTeacher: number | null;
  studentMinusControl: number | null;
  pValueVsTeacher: number | null;
  pValueVsControl: number | null;
  /** Wall time of the whole run: every stage's recorded time plus this evaluation's. */
  wallSeconds: number;
}

/** `evaluate/report.json` (written last: the stage's commit object). */
export interface Report {
  format: 2;
  run: string;
  generatedAt: string;
  backend: string | null;
  evalDataset: string;
  classes: string[];
  summary: ReportSummary;
  /** Plain statements shown first in report.md (e.g. a student below its teacher). */
  findings: string[];
  /** Precision of the last round's pseudo-labels against the held-back labels (null without them). */
  pseudoLabelPrecision: number | null;
  control: ControlInfo;
  table: ModelRow[];
  comparisons: Comparison[];
  curves: LearningCurve[];
  models: ModelEvaluation[];
  pseudo: PseudoEvaluation[];
  stages: StageTiming[];
  charts: ChartRef[];
}
