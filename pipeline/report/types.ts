/** The evaluate stage's objects: per-model and per-round metrics, and `report.json` that gathers them. */
import type { ClassificationMetrics } from './metrics.js';
import type { ClassPrecision, ThresholdPoint } from './pseudo-quality.js';

export type ModelRole = 'teacher' | 'student' | 'baseline' | 'model';

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

/** `evaluate/report.json` (written last: the stage's commit object). */
export interface Report {
  format: 1;
  run: string;
  generatedAt: string;
  backend: string | null;
  evalDataset: string;
  classes: string[];
  /** The headline numbers (top-1 on the eval set; precision of the last round's pseudo-labels). */
  summary: {
    teacher: number | null;
    student: number | null;
    baseline: number | null;
    pseudoLabelPrecision: number | null;
  };
  models: ModelEvaluation[];
  pseudo: PseudoEvaluation[];
  stages: StageTiming[];
  charts: ChartRef[];
}
