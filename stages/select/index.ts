/**
 * Runner entry of the select stage: `runStage(ctx, config)` with the config built in
 * pipeline/runner/chain.ts:
 *   { iteration, select: <manifest pseudo.select>, seed, inputs: { data: <import id>, predictions: <infer id> } }
 */
import { z } from 'zod';
import { selectSection } from '../../pipeline/manifest/sections/pseudo.js';
import type { StageContext, StageResult } from '../../pipeline/runner/stage.js';
import { importedRef } from '../infer/index.js';
import { runSelectStage } from './stage.js';
import { formatZodIssues } from '../../pipeline/log/errors.js';

export const selectStageConfig = z.object({
  iteration: z.number().int().optional(),
  select: selectSection,
  seed: z.number().int().nonnegative().default(0),
  inputs: z.object({ data: z.string().optional(), predictions: z.string() }),
});

export async function runStage(ctx: StageContext, raw: unknown): Promise<StageResult> {
  const parsed = selectStageConfig.safeParse(raw);
  if (!parsed.success) throw new Error(`select stage config: ${formatZodIssues(parsed.error)}`);
  const cfg = parsed.data;
  const groundTruthRef = cfg.inputs.data ? await importedRef(ctx, cfg.inputs.data, 'groundTruth').catch(() => undefined) : undefined;
  return runSelectStage(ctx, {
    id: ctx.outPrefix.replace(/\/+$/, ''),
    inferId: cfg.inputs.predictions,
    config: cfg.select,
    seed: cfg.seed,
    groundTruthRef,
  });
}
