/**
 * The train stage (teacher, student or supervised baseline): the ResNet-RS recipe with exact-resume
 * checkpoints. Called by the runner as `runStage(ctx, config)` with the config built in
 * pipeline/runner/chain.ts:
 *   { role: 'teacher'|'student'|'baseline', iteration, model, train, seed,
 *     inputs: { data: <import stage id>, pseudo?: <select stage id>, teacher?: <train stage id> } }
 * Datasets are found through `<run>/<inputs.data>/datasets.json` (written by the import stage), or
 * given directly as `inputs.labeled` / `inputs.unlabeled` URIs (scripts, tests).
 *
 * Outputs under the stage prefix:
 *   ckpt/step-N/{tensors.bin,COMMIT.json}   resumable checkpoints (last `checkpoint.keep`)
 *   metrics.jsonl                           one line per epoch (loss/acc, held-out loss/acc, img/s)
 *   metrics.json                            the final record (also the stage summary)
 *   model/model.json + weights               the EMA model in tfjs format (written last: the commit)
 */
import { z } from 'zod';
import { initBackend, currentBackend } from '../../pipeline/backend/select.js';
import { modelSection } from '../../pipeline/manifest/sections/model.js';
import { trainSection } from '../../pipeline/manifest/sections/train.js';
import { resolveModel } from '../../pipeline/model/family.js';
import { buildResNetRS, ARCH_METADATA_KEY } from '../../pipeline/model/resnet-rs.js';
import { loadModel, storeModelIO } from '../../pipeline/model/store-io.js';
import type { StageContext, StageResult } from '../../pipeline/runner/stage.js';
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { loadLabeled, normalization } from '../../pipeline/train/data.js';
import { openPseudoSource, type PseudoSource } from '../../pipeline/train/pseudo.js';
import { train, type TrainResult } from '../../pipeline/train/trainer.js';
import { mix, withSeededMathRandom } from '../../pipeline/train/rng.js';

export const trainStageConfig = z.object({
  role: z.enum(['teacher', 'student', 'baseline']),
  iteration: z.number().int().optional(),
  model: modelSection,
  train: trainSection,
  seed: z.number().int().nonnegative(),
  inputs: z.object({
    data: z.string().optional(),
    pseudo: z.string().optional(),
    teacher: z.string().optional(),
    labeled: z.string().optional(),
    unlabeled: z.string().optional(),
  }),
});
export type TrainStageConfig = z.infer<typeof trainStageConfig>;

export const MODEL_DIR = 'model/';
export const METRICS_JSON = 'metrics.json';

/** Opens a dataset reference: a URI, or a prefix relative to the store root (as import writes them). */
function openRef(ctx: Pick<StageContext, 'root'>, ref: string, opened: ObjectStore[]): ObjectStore {
  if (!ref.includes('://')) return ctx.root.sub(ref);
  const store = openStore(ref);
  opened.push(store); // closed at the end: idle S3 sockets would keep the process alive
  return store;
}

async function datasetRefs(ctx: StageContext, cfg: TrainStageConfig): Promise<{ labeled: string; unlabeled?: string }> {
  if (cfg.inputs.labeled) return { labeled: cfg.inputs.labeled, unlabeled: cfg.inputs.unlabeled };
  const id = cfg.inputs.data ?? 'import';
  const key = `${id}/datasets.json`;
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse((await ctx.run.get(key)).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`train: cannot read ${ctx.run.uri.replace(/\/+$/, '')}/${key} (the import stage's dataset list): ${(err as Error).message}`, { cause: err });
  }
  const pick = (name: string): string | undefined => {
    const v = doc[name] ?? (doc['datasets'] as Record<string, unknown> | undefined)?.[name];
    if (typeof v === 'string') return v;
    if (v && typeof v === 'object' && typeof (v as { uri?: unknown }).uri === 'string') return (v as { uri: string }).uri;
    return undefined;
  };
  const labeled = pick('labeled');
  if (!labeled) throw new Error(`train: ${key} names no labeled dataset`);
  return { labeled, unlabeled: pick('unlabeled') };
}

export async function runStage(ctx: StageContext, raw: unknown): Promise<StageResult> {
  const parsed = trainStageConfig.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`train stage config: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const cfg = parsed.data;
  const refs = await datasetRefs(ctx, cfg);

  const opened: ObjectStore[] = [];
  try {
    return await trainWithData(ctx, cfg, refs, opened);
  } finally {
    await Promise.all(opened.map((st) => st.close()));
  }
}

async function trainWithData(ctx: StageContext, cfg: TrainStageConfig, refs: { labeled: string; unlabeled?: string }, opened: ObjectStore[]): Promise<StageResult> {
  const backend = currentBackend() ?? (await initBackend('auto'));
  const tf = backend.tf;
  const out = ctx.run.sub(ctx.outPrefix);
  const { arch, defaults } = resolveModel(cfg.model);
  const seed = cfg.train.seed ?? cfg.seed;
  const channels = arch.inputChannels === 1 ? 1 : 3;
  if (arch.inputChannels !== channels) throw new Error(`train: inputChannels ${arch.inputChannels} not supported (1 or 3)`);
  const labeledStore = openRef(ctx, refs.labeled, opened);
  const data = await loadLabeled(labeledStore, { imageSize: arch.imageSize, channels, holdout: cfg.train.holdout, seed, signal: ctx.signal });
  if (data.classes.length !== arch.classes) {
    throw new Error(`train: the labeled set ${data.uri} has ${data.classes.length} classes but model ${cfg.model.name} has ${arch.classes} (set model.classes)`);
  }
  ctx.log.info(`train ${ctx.outPrefix}: ${data.train.count} training + ${data.heldout.count} held-out images from ${data.uri}; ${backend.summary}`);

  let pseudo: PseudoSource | undefined;
  if (cfg.role === 'student') {
    if (!cfg.inputs.pseudo) throw new Error('train: a student stage needs inputs.pseudo (the select stage id)');
    if (!refs.unlabeled) throw new Error('train: a student stage needs the unlabeled dataset (inputs.unlabeled or the import list)');
    pseudo = await openPseudoSource({
      select: ctx.run.sub(cfg.inputs.pseudo),
      unlabeled: openRef(ctx, refs.unlabeled, opened),
      ratio: cfg.train.student.ratio,
      hard: cfg.train.student.targets === 'hard',
      labelSmoothing: cfg.train.labelSmoothing,
      numClasses: arch.classes,
      imageSize: arch.imageSize,
      channels,
      seed,
      log: ctx.log,
    });
    ctx.log.info(`student: ${pseudo.unique} pseudo-labeled images (${pseudo.size} with repeats, ${pseudo.skipped.length} skipped), ratio ${pseudo.ratio}`);
  }

  // Initial weights from the training seed: same seed, same starting point (and same run).
  const model = withSeededMathRandom(mix(seed, 0x1a17), () => buildResNetRS(arch));
  try {
    if (cfg.role === 'student' && cfg.train.student.init === 'teacher') {
      if (!cfg.inputs.teacher) throw new Error('train: student.init "teacher" needs inputs.teacher');
      await initFromTeacher(model, ctx.run.sub(`${cfg.inputs.teacher}/${MODEL_DIR}`));
    }
    const result = await train({
      tf,
      model,
      cfg: cfg.train,
      seed,
      defaultMagnitude: defaults.randAugmentMagnitude,
      numClasses: arch.classes,
      data,
      pseudo,
      store: out,
      log: ctx.log,
      progress: ctx.progress,
      signal: ctx.signal,
      backend: backend.name,
    });
    const summary = metricsRecord(cfg, result, backend.name, data.uri, pseudo);
    await out.put(METRICS_JSON, JSON.stringify(summary, null, 2), { contentType: 'application/json' });
    // The trained model carries how its inputs must be prepared (infer/evaluate read this).
    const meta = (model.getUserDefinedMetadata() ?? {}) as Record<string, unknown>;
    model.setUserDefinedMetadata({
      ...meta,
      [ARCH_METADATA_KEY]: arch as unknown as Record<string, unknown>,
      preprocessing: { imageSize: arch.imageSize, channels, ...normalization(channels), evalCrop: 0.875, weights: cfg.train.ema.enabled ? 'ema' : 'raw' },
      classes: data.classes,
    });
    await model.save(storeModelIO(out.sub(MODEL_DIR)));
    return { summary };
  } finally {
    model.dispose();
    await pseudo?.close();
  }
}

async function initFromTeacher(model: import('@tensorflow/tfjs').LayersModel, teacherStore: ObjectStore): Promise<void> {
  const teacher = await loadModel(teacherStore);
  try {
    const src = teacher.weights, dst = model.weights;
    const mismatch = src.length !== dst.length ? `${src.length} vs ${dst.length} weights` : dst.findIndex((w, i) => w.shape.join('x') !== src[i]!.shape.join('x'));
    if (mismatch !== -1) {
      throw new Error(`train: cannot initialise the student from ${teacherStore.uri}: architectures differ (${typeof mismatch === 'string' ? mismatch : `weight ${dst[mismatch]!.originalName}`})`);
    }
    dst.forEach((w, i) => w.write(src[i]!.read()));
  } finally {
    teacher.dispose();
  }
}

function metricsRecord(cfg: TrainStageConfig, r: TrainResult, backend: string, labeled: string, pseudo?: PseudoSource): Record<string, unknown> {
  return {
    role: cfg.role,
    model: cfg.model.name,
    backend,
    labeled,
    steps: r.steps,
    totalSteps: r.totalSteps,
    stepsPerEpoch: r.stepsPerEpoch,
    resumedFrom: r.resumedFrom,
    imagesPerSec: Number(r.imagesPerSec.toFixed(2)),
    heldoutLoss: r.final.heldoutLoss,
    heldoutAcc: r.final.heldoutAcc,
    ...(pseudo ? { pseudo: { unique: pseudo.unique, withRepeats: pseudo.size, skipped: pseudo.skipped.length, ratio: pseudo.ratio } } : {}),
    epochs: r.epochs,
  };
}
