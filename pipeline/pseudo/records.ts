/**
 * Record formats of the two pseudo-labeling outputs (documented for users in
 * stages/select/FORMATS.md). zod validates what select reads back, so a foreign or damaged
 * prediction object fails with the object key and line instead of producing wrong labels.
 */
import { z } from 'zod';

/** One line of a prediction object (`<infer>/predictions/<shard>.jsonl.gz`). */
export const predictionRecord = z.union([
  z.strictObject({
    key: z.string(),
    shard: z.string(),
    teacher: z.string(),
    /** The engine that computed it (absent in predictions written before engines were recorded). */
    backend: z.string().optional(),
    classes: z.array(z.number().int().nonnegative()).min(1),
    probs: z.array(z.number().min(0).max(1)).min(1),
    maxProb: z.number().min(0).max(1),
  }),
  z.strictObject({
    key: z.string(),
    shard: z.string(),
    teacher: z.string(),
    backend: z.string().optional(),
    error: z.string(),
  }),
]);
export type PredictionRecord = z.infer<typeof predictionRecord>;
export type PredictedSample = Extract<PredictionRecord, { classes: number[] }>;
export type FailedSample = Extract<PredictionRecord, { error: string }>;

export function isFailed(r: PredictionRecord): r is FailedSample {
  return 'error' in r;
}

/** One line of a pseudo-label object (`<select>/pseudo/<shard>.jsonl.gz`). */
export interface PseudoLabelRecord {
  /** Unlabeled shard (object name without `.tar`) and sample key: the image is read from there. */
  shard: string;
  key: string;
  /** Teacher top-1 class: the class this sample was filtered and balanced under. */
  label: number;
  /** Teacher probability of `label` (before temperature). */
  confidence: number;
  /** Training target: classes and their weights (sum 1). Hard labels: `[label]`, `[1]`. */
  classes: number[];
  probs: number[];
  /** How many times the student sees this sample per pass over the pseudo-labeled set (>= 1). */
  repeats: number;
}

/** Per-shard prediction summary line kept in the infer summary. */
export interface InferShardSummary {
  shard: string;
  samples: number;
  failed: number;
}
