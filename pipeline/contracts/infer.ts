/**
 * The infer stage's contract: its config (built by pipeline/runner/chain.ts) and its outputs under
 * `<infer id>/`:
 *
 *   predictions/<shard>.jsonl.gz   one per unlabeled shard (record format: pipeline/pseudo/records.ts,
 *                                  documented in stages/select/FORMATS.md)
 *   summary.json                   written last, when every shard has its predictions (the commit)
 *
 * (`job.json` and `stats/<shard>.json` are the stage's own working objects: stages/infer/job.ts,
 * stages/infer/layout.ts.)
 */
import { z } from 'zod';
import { modelSection } from '../manifest/sections/model.js';
import { inferSection } from '../manifest/sections/pseudo.js';
import { inferBackendChoices } from '../inference/engine.js';
import type { ObjectStore } from '../store/types.js';
import { readJsonObject } from './json.js';

export const inferStageConfig = z.object({
  iteration: z.number().int().optional(),
  infer: inferSection,
  seed: z.number().int().nonnegative().optional(),
  /** The teacher's model section: a checkpoint of another architecture is refused. */
  model: modelSection.optional(),
  /** The manifest's inferBackend (auto: ONNX Runtime when installed; the chain omits the default). */
  inferBackend: z.enum(inferBackendChoices).default('auto'),
  inputs: z.object({
    /** The import stage whose dataset list names the unlabeled set. */
    data: z.string().optional(),
    /** The train stage whose model labels the unlabeled set. */
    teacher: z.string(),
    /** An unlabeled dataset ref given directly instead of through the import list. */
    unlabeled: z.string().optional(),
  }),
  /**
   * Where the workers run (pseudo.infer executor, slurm, external): passed by the chain beside the
   * config, not part of it (not hashed into the fingerprint), since it never changes the predictions.
   */
  runtime: inferSection.pick({ executor: true, slurm: true, external: true }).optional(),
});
export type InferStageConfig = z.output<typeof inferStageConfig>;
export type InferStageConfigInput = z.input<typeof inferStageConfig>;

export const PREDICTIONS_DIR = 'predictions/';
export const PREDICTION_SUFFIX = '.jsonl.gz';
export const INFER_SUMMARY_KEY = 'summary.json';

/** A shard's prediction object, relative to the stage prefix. */
export function predictionKey(shard: string): string {
  return `${PREDICTIONS_DIR}${shard}${PREDICTION_SUFFIX}`;
}

/** The summary's key relative to the run: `<infer id>/summary.json`. */
export const inferSummaryKey = (inferId: string) => `${inferId}/${INFER_SUMMARY_KEY}`;

export const inferSummarySchema = z.object({
  /** URI of the unlabeled dataset the predictions are of. */
  dataset: z.string(),
  /** Id of the teacher's weights (pipeline/pseudo/load-teacher.ts teacherIdOf; + the model.onnx hash with ONNX Runtime). */
  teacher: z.string(),
  numClasses: z.number().int().positive(),
  classes: z.array(z.string()),
  topK: z.number().int().positive(),
  /** Shard names (without .tar) in dataset order; prediction objects are predictions/<name>.jsonl.gz. */
  shards: z.array(z.string()),
  samples: z.number().int().nonnegative(),
  /** Samples that failed to decode (listed with their reason in the prediction objects). */
  skipped: z.number().int().nonnegative(),
  /** Samples processed by this invocation / its wall time (shards done before a resume excluded). */
  imagesPerSecond: z.number().nullable(),
  wallSeconds: z.number(),
  workers: z.number().int().nonnegative(),
  restarts: z.number().int().nonnegative(),
  /** Top-1 confidence histogram: equal bins over [0, 1] (stages/infer/layout.ts HISTOGRAM_BINS). */
  confidenceHistogram: z.array(z.number().int().nonnegative()),
});
export type InferSummary = z.infer<typeof inferSummarySchema>;

/** The summary of infer stage `inferId` (run-relative); an error naming it when missing or malformed. */
export async function readInferSummary(run: ObjectStore, inferId: string): Promise<InferSummary> {
  return (await readJsonObject(run, inferSummaryKey(inferId), inferSummarySchema, 'an infer summary', 'infer stage not finished?')).value;
}
