/**
 * The import stage's contract: its config (built by pipeline/runner/chain.ts) and its one output,
 * `<import id>/datasets.json` — which datasets the run uses, written last (the commit object):
 *
 *   { "classes": [...], "labeled": ref, "unlabeled": ref, "groundTruth"?: ref, "eval": ref }
 *
 * A ref is a store URI (`s3://…`, `file://…`) or a prefix relative to the store root
 * (pipeline/data/dataset-ref.ts opens it). `groundTruth` is the gzip JSON-lines object holding
 * the unlabeled split's held-back labels (only a split import has one).
 */
import { z } from 'zod';
import { datasetsSection } from '../manifest/sections/datasets.js';
import type { ObjectStore } from '../store/types.js';
import { readJsonObject, writeJsonObject } from './json.js';

export const importStageConfig = z.object({
  /** The manifest's datasets section without `sizes` (plan-only; kept out of the fingerprint). */
  datasets: datasetsSection.omit({ sizes: true }),
  seed: z.number().int().nonnegative().default(0),
});
export type ImportStageConfig = z.input<typeof importStageConfig>;

export const DATASETS_JSON = 'datasets.json';

/** The dataset list's key, relative to the run. */
export const datasetsListKey = (importId: string) => `${importId}/${DATASETS_JSON}`;

export const datasetsListSchema = z.object({
  classes: z.array(z.string()),
  labeled: z.string().min(1),
  unlabeled: z.string().min(1),
  groundTruth: z.string().min(1).optional(),
  eval: z.string().min(1),
});
export type DatasetsList = z.infer<typeof datasetsListSchema>;

const WHAT = "the import stage's dataset list";

/** The run's dataset list (the one reader: train, infer, select, evaluate and plan use it). */
export async function readDatasetsList(run: ObjectStore, importId: string): Promise<DatasetsList> {
  return (await readJsonObject(run, datasetsListKey(importId), datasetsListSchema, WHAT, `has the ${importId} stage finished?`)).value;
}

/** Writes the list (validated; keys in the producer's order). */
export async function writeDatasetsList(run: ObjectStore, importId: string, list: DatasetsList): Promise<void> {
  await writeJsonObject(run, datasetsListKey(importId), datasetsListSchema, list, 1);
}
