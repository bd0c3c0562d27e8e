/**
 * The select stage's contract: its config (built by pipeline/runner/chain.ts) and its outputs
 * under `<select id>/`:
 *
 *   pseudo/<shard>.jsonl.gz   the pseudo-labeled set, one object per unlabeled shard (record format:
 *                             pipeline/pseudo/records.ts PseudoLabelRecord, stages/select/FORMATS.md)
 *   summary.json              thresholds, counts and per-shard objects, written last (the commit)
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { selectSection } from '../manifest/sections/pseudo.js';
import type { ObjectStore } from '../store/types.js';
import { readJsonObject } from './json.js';

export const selectStageConfig = z.object({
  iteration: z.number().int().optional(),
  select: selectSection,
  seed: z.number().int().nonnegative().default(0),
  inputs: z.object({
    /** The import stage whose dataset list may name the held-back labels. */
    data: z.string().optional(),
    /** The infer stage whose predictions are selected from. */
    predictions: z.string(),
  }),
});
export type SelectStageConfig = z.output<typeof selectStageConfig>;
export type SelectStageConfigInput = z.input<typeof selectStageConfig>;

export const PSEUDO_DIR = 'pseudo/';
export const SELECT_SUMMARY_KEY = 'summary.json';

/** A shard's pseudo-label object, relative to the stage prefix. */
export function pseudoLabelKey(shard: string): string {
  return `${PSEUDO_DIR}${shard}.jsonl.gz`;
}

/** The summary's key relative to the run: `<select id>/summary.json`. */
export const selectSummaryKey = (selectId: string) => `${selectId}/${SELECT_SUMMARY_KEY}`;

const labelKinds = ['soft', 'hard'] as const;

export const classSummarySchema = z.object({
  cls: z.number().int().nonnegative(),
  candidates: z.number().int().nonnegative(),
  threshold: z.number(),
  kept: z.number().int().nonnegative(),
  /** Sum of repeat counts: the class's size in the pseudo-labeled set (~ target). */
  repeats: z.number().int().nonnegative(),
  /** Kept samples that survived rounding (repeats >= 1). */
  unique: z.number().int().nonnegative(),
  meanTruncatedMass: z.number().nullable(),
  /** Share of unique samples whose teacher top-1 equals the held-back label (null: no ground truth). */
  accuracy: z.number().nullable(),
  withGroundTruth: z.number().int().nonnegative(),
});
export type ClassSummary = z.infer<typeof classSummarySchema>;

export const selectSummarySchema = z.object({
  target: z.number().int().nonnegative(),
  floor: z.number(),
  labels: z.enum(labelKinds),
  temperature: z.number(),
  seed: z.number().int(),
  predicted: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  pseudoLabeled: z.number().int().nonnegative(),
  unique: z.number().int().nonnegative(),
  accuracy: z.number().nullable(),
  shards: z.array(z.object({ shard: z.string(), key: z.string(), unique: z.number().int().nonnegative(), repeats: z.number().int().nonnegative() })),
  classes: z.array(classSummarySchema),
});
export type SelectSummary = z.infer<typeof selectSummarySchema>;

/**
 * The summary of select stage `selectId` (run-relative) and a hash of its bytes, which identifies
 * the exact selection (a result computed from it is stale when the hash changes).
 */
export async function readSelectSummary(run: ObjectStore, selectId: string): Promise<{ summary: SelectSummary; hash: string }> {
  const { value, bytes } = await readJsonObject(run, selectSummaryKey(selectId), selectSummarySchema, 'a select summary', 'select stage not finished?');
  return { summary: value, hash: createHash('sha256').update(bytes).digest('hex').slice(0, 16) };
}
