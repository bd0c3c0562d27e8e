/**
 * Runner entry of the infer stage: `runStage(ctx, config)` with the config built in
 * pipeline/runner/chain.ts:
 *   { iteration, infer: <manifest pseudo.infer>, seed, model?: <teacher's model section>,
 *     inputs: { data: <import stage id>, teacher: <train stage id>, unlabeled?: <dataset ref> } }
 * The unlabeled set comes from `<run>/<inputs.data>/datasets.json` (the import stage's list) unless
 * `inputs.unlabeled` names it; the teacher is `<run>/<inputs.teacher>/model/` (the train stage's EMA
 * model). With `model`, a checkpoint of another architecture is refused; preprocessing is what the
 * train stage recorded in the checkpoint.
 */
import { z } from 'zod';
import { inferBackendChoices } from '../../pipeline/inference/engine.js';
import { inferSection } from '../../pipeline/manifest/sections/pseudo.js';
import { modelSection } from '../../pipeline/manifest/sections/model.js';
import { resolveModel } from '../../pipeline/model/family.js';
import { ARCH_METADATA_KEY } from '../../pipeline/model/resnet-rs.js';
import type { StageContext, StageResult } from '../../pipeline/runner/stage.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { MODEL_JSON_KEY } from '../../pipeline/model/store-io.js';
import type { ExpectedArch } from '../../pipeline/pseudo/load-teacher.js';
import { runInferStage } from './stage.js';

export const inferStageConfig = z.object({
  iteration: z.number().int().optional(),
  infer: inferSection,
  seed: z.number().int().nonnegative().optional(),
  model: modelSection.optional(),
  /** The manifest's inferBackend (auto: ONNX Runtime when installed). */
  inferBackend: z.enum(inferBackendChoices).default('auto'),
  inputs: z.object({
    data: z.string().optional(),
    teacher: z.string(),
    unlabeled: z.string().optional(),
  }),
});
export type InferStageConfig = z.infer<typeof inferStageConfig>;

const TEACHER_MODEL_DIR = 'model';
const BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

/** A dataset ref (URI, or a prefix relative to the store root) as a URI workers can open. */
export function refToUri(root: ObjectStore, ref: string): string {
  return ref.includes('://') ? ref : `${root.uri.replace(/\/+$/, '')}/${ref.replace(/^\/+/, '')}`;
}

/** A field of the import stage's `datasets.json`: a ref string or `{ uri }`. */
export async function importedRef(ctx: StageContext, importId: string, name: string): Promise<string | undefined> {
  const key = `${importId}/datasets.json`;
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse((await ctx.run.get(key)).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`cannot read ${ctx.run.uri.replace(/\/+$/, '')}/${key} (the import stage's dataset list): ${(err as Error).message}`, { cause: err });
  }
  const v = doc[name] ?? (doc['datasets'] as Record<string, unknown> | undefined)?.[name];
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { uri?: unknown }).uri === 'string') return (v as { uri: string }).uri;
  return undefined;
}

export async function runStage(ctx: StageContext, raw: unknown): Promise<StageResult> {
  const parsed = inferStageConfig.safeParse(raw);
  if (!parsed.success) throw new Error(`infer stage config: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const cfg = parsed.data;
  const id = ctx.outPrefix.replace(/\/+$/, '');
  const unlabeled = cfg.inputs.unlabeled ?? (await importedRef(ctx, cfg.inputs.data ?? 'import', 'unlabeled'));
  if (!unlabeled) throw new Error(`infer: ${cfg.inputs.data ?? 'import'}/datasets.json names no unlabeled dataset`);
  const teacherKey = `${cfg.inputs.teacher}/${TEACHER_MODEL_DIR}`;
  const teacher = `${ctx.run.uri.replace(/\/+$/, '')}/${teacherKey}`;
  let expectedArch: ExpectedArch;
  if (cfg.model) {
    expectedArch = resolveModel(cfg.model).arch;
  } else {
    // No model section given: the checkpoint's own architecture is all there is to go by.
    const json = JSON.parse((await ctx.run.get(`${teacherKey}/${MODEL_JSON_KEY}`)).toString('utf8')) as { userDefinedMetadata?: Record<string, unknown> };
    const arch = json.userDefinedMetadata?.[ARCH_METADATA_KEY] as ExpectedArch | undefined;
    if (!arch) throw new Error(`infer: teacher checkpoint ${teacher} records no ResNet-RS architecture`);
    ctx.log.warn('infer: no teacher model section in the stage config; using the architecture recorded in the checkpoint');
    expectedArch = arch;
  }
  const backend = (BACKENDS as readonly string[]).includes(ctx.backend ?? '') ? (ctx.backend as (typeof BACKENDS)[number]) : 'auto';
  return runInferStage(
    ctx,
    { id, deps: [], dataset: refToUri(ctx.root, unlabeled), teacher, expectedArch, config: cfg.infer, backend, inferBackend: cfg.inferBackend },
    cfg.infer.workers,
  );
}
