/**
 * Runner entry of the infer stage: `runStage(ctx, config)` with the config built in
 * pipeline/runner/chain.ts (shape: pipeline/contracts/infer.ts). The unlabeled set comes from the
 * import stage's list unless `inputs.unlabeled` names it; the teacher is the train stage's exported
 * model (pipeline/contracts/train.ts). With `model`, a checkpoint of another architecture is
 * refused; preprocessing is what the train stage recorded in the checkpoint.
 */
import { readDatasetsList } from '../../pipeline/contracts/import.js';
import { inferStageConfig, type InferStageConfigInput } from '../../pipeline/contracts/infer.js';
import { parseStageConfig } from '../../pipeline/contracts/json.js';
import { modelDir } from '../../pipeline/contracts/train.js';
import { refUri } from '../../pipeline/data/dataset-ref.js';
import { resolveModel } from '../../pipeline/model/family.js';
import { recordedArch, type ExpectedArch } from '../../pipeline/pseudo/load-teacher.js';
import type { StageContext, StageResult } from '../../pipeline/runner/stage.js';
import { objectUri } from '../../pipeline/store/uri.js';
import { runInferStage } from './stage.js';

const BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

export async function runStage(ctx: StageContext, raw: InferStageConfigInput): Promise<StageResult> {
  const cfg = parseStageConfig(inferStageConfig, raw, 'infer');
  // The run's label space is the labeled set's (the import list's classes), never the unlabeled set's.
  const list = cfg.inputs.unlabeled && !cfg.inputs.data ? undefined : await readDatasetsList(ctx.run, cfg.inputs.data ?? 'import');
  const unlabeled = cfg.inputs.unlabeled ?? list!.unlabeled;
  const teacherStore = ctx.run.sub(modelDir(cfg.inputs.teacher));
  const teacher = objectUri(ctx.run, modelDir(cfg.inputs.teacher));
  let expectedArch: ExpectedArch;
  if (cfg.model) {
    expectedArch = resolveModel(cfg.model).arch;
  } else {
    // No model section given: the checkpoint's own architecture is all there is to go by.
    expectedArch = await recordedArch(teacherStore);
    ctx.log.warn('infer: no teacher model section in the stage config; using the architecture recorded in the checkpoint');
  }
  const backend = (BACKENDS as readonly string[]).includes(ctx.backend ?? '') ? (ctx.backend as (typeof BACKENDS)[number]) : 'auto';
  return runInferStage(
    ctx,
    { id: ctx.stageId, dataset: refUri(ctx.root, unlabeled), teacher, expectedArch, config: { ...cfg.infer, ...cfg.runtime }, backend, inferBackend: cfg.inferBackend, ...(list ? { classes: list.classes } : {}) },
    cfg.infer.workers,
  );
}
