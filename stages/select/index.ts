/**
 * Runner entry of the select stage: `runStage(ctx, config)` with the config built in
 * pipeline/runner/chain.ts (shape: pipeline/contracts/select.ts).
 */
import { readDatasetsList } from '../../pipeline/contracts/import.js';
import { parseStageConfig } from '../../pipeline/contracts/json.js';
import { selectStageConfig, type SelectStageConfigInput } from '../../pipeline/contracts/select.js';
import type { StageContext, StageResult } from '../../pipeline/runner/stage.js';
import { ifPresent } from '../../pipeline/store/types.js';
import { runSelectStage } from './stage.js';

export async function runStage(ctx: StageContext, raw: SelectStageConfigInput): Promise<StageResult> {
  const cfg = parseStageConfig(selectStageConfig, raw, 'select');
  // Held-back labels are optional (reporting only); the list being unreadable is not "no labels".
  const groundTruthRef = cfg.inputs.data ? (await ifPresent(readDatasetsList(ctx.run, cfg.inputs.data)))?.groundTruth : undefined;
  return runSelectStage(ctx, {
    id: ctx.stageId,
    inferId: cfg.inputs.predictions,
    config: cfg.select,
    seed: cfg.seed,
    groundTruthRef,
  });
}
