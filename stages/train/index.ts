/**
 * The train stage (teacher, student, labeled-only control or all-labels baseline): the ResNet-RS recipe with exact-resume
 * checkpoints. Called by the runner as `runStage(ctx, config)` with the config built in
 * pipeline/runner/chain.ts:
 *   { role: 'teacher'|'student'|'baseline'|'control', iteration, model, train, seed, budget?, budgetOf?,
 *     inputs: { data: <import stage id>, pseudo?: <select stage id>, teacher?: <train stage id> } }
 * Datasets are found through the import stage's list (pipeline/contracts/import.ts), or given
 * directly as `inputs.labeled` / `inputs.unlabeled` URIs (scripts, tests).
 *
 * Outputs under the stage prefix (checkpoints, metrics, and model/ written last):
 * pipeline/contracts/train.ts.
 */
import { initBackend, currentBackend } from '../../pipeline/backend/select.js';
import { readDatasetsList } from '../../pipeline/contracts/import.js';
import { parseStageConfig } from '../../pipeline/contracts/json.js';
import { METRICS_JSON, MODEL_DIR, modelDir, startsFromTeacher, trainStageConfig, type TrainStageConfig, type TrainStageConfigInput } from '../../pipeline/contracts/train.js';
import { openObjectRef, openRef as openDatasetRef } from '../../pipeline/data/dataset-ref.js';
import { resolveModel } from '../../pipeline/model/family.js';
import { buildResNetRS, ARCH_METADATA_KEY } from '../../pipeline/model/resnet-rs.js';
import { loadModel, storeModelIO } from '../../pipeline/model/store-io.js';
import { ensureOnnx, ONNX_KEY } from '../../pipeline/model/onnx-file.js';
import type { StageContext, StageResult } from '../../pipeline/runner/stage.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import { loadLabeled, type LabeledData, type WithGroundTruth } from '../../pipeline/train/data.js';
import { readGroundTruth } from '../../pipeline/train/ground-truth.js';
import { openPseudoSource, type PseudoSource } from '../../pipeline/train/pseudo.js';
import { studentBudget, teacherBudget as planTeacherBudget, type StepBudget } from '../../pipeline/train/step-plan.js';
import { train, type TrainerOptions, type TrainResult } from '../../pipeline/train/trainer.js';
import { resolveWorkers } from '../../pipeline/parallel/workers.js';
import { mix, withSeededMathRandom } from '../../pipeline/train/rng.js';


/** Opens a dataset ref (pipeline/data/dataset-ref.ts); closed at the end: idle S3 sockets would keep the process alive. */
function openRef(ctx: Pick<StageContext, 'root' | 'storeSettings'>, ref: string, opened: (() => Promise<void>)[]): ObjectStore {
  const { store, close } = openDatasetRef(ctx.root, ref, ctx.storeSettings);
  opened.push(close);
  return store;
}

interface DatasetRefs {
  labeled: string;
  unlabeled?: string;
  /** The import's held-back labels of the unlabeled split (when the unlabeled dataset does not name its own). */
  groundTruth?: string;
}

async function datasetRefs(ctx: StageContext, cfg: TrainStageConfig): Promise<DatasetRefs> {
  if (cfg.inputs.labeled) return { labeled: cfg.inputs.labeled, unlabeled: cfg.inputs.unlabeled };
  const list = await readDatasetsList(ctx.run, cfg.inputs.data ?? 'import');
  // Ground truth is only looked up for the baseline: teacher and student never see where it is.
  return { labeled: list.labeled, unlabeled: list.unlabeled, ...(cfg.role === 'baseline' ? { groundTruth: list.groundTruth } : {}) };
}

/**
 * The all-labels baseline's extra data: the unlabeled set with its held-back labels (the dataset's
 * own `groundTruth`, else the import's list entry). Never called for the teacher or the student.
 */
async function unlabeledWithGroundTruth(ctx: StageContext, refs: DatasetRefs, numClasses: number, opened: (() => Promise<void>)[]): Promise<WithGroundTruth> {
  if (!refs.unlabeled) throw new Error('train: the all-labels baseline needs the unlabeled dataset (inputs.unlabeled or the import list)');
  const store = openRef(ctx, refs.unlabeled, opened);
  const ds = await openDataset(store);
  await ds.close(); // only its index is needed here (a no-op for a store we passed in)
  if (ds.index.groundTruth) return { source: store, truth: await readGroundTruth(store, ds.index.groundTruth, numClasses) };
  if (!refs.groundTruth) {
    throw new Error(`train: the all-labels baseline needs the held-back labels of ${ds.uri}, but neither its dataset.json nor the import list names a ground truth (only split imports have one)`);
  }
  const truth = openObjectRef(ctx.root, refs.groundTruth, ctx.storeSettings);
  opened.push(truth.close);
  return { source: store, truth: await readGroundTruth(truth.store, truth.key, numClasses) };
}

/** What callers other than the runner may observe (tests, tools): each completed step. */
export interface TrainStageHooks {
  onStep?: TrainerOptions['onStep'];
}

export async function runStage(ctx: StageContext, raw: TrainStageConfigInput, hooks: TrainStageHooks = {}): Promise<StageResult> {
  const cfg = parseStageConfig(trainStageConfig, raw, 'train');
  const refs = await datasetRefs(ctx, cfg);

  const opened: (() => Promise<void>)[] = [];
  try {
    return await trainWithData(ctx, cfg, refs, opened, hooks);
  } finally {
    await Promise.all(opened.map((close) => close()));
  }
}

async function trainWithData(ctx: StageContext, cfg: TrainStageConfig, refs: DatasetRefs, opened: (() => Promise<void>)[], hooks: TrainStageHooks): Promise<StageResult> {
  const backend = currentBackend() ?? (await initBackend('auto'));
  const tf = backend.tf;
  const out = ctx.run.sub(ctx.outPrefix);
  const { arch, defaults, preprocessing } = resolveModel(cfg.model);
  const seed = cfg.train.seed ?? cfg.seed;
  const channels = arch.inputChannels === 1 ? 1 : 3;
  if (arch.inputChannels !== channels) throw new Error(`train: inputChannels ${arch.inputChannels} not supported (1 or 3)`);
  const labeledStore = openRef(ctx, refs.labeled, opened);
  const extra = cfg.role === 'baseline' ? await unlabeledWithGroundTruth(ctx, refs, arch.classes, opened) : undefined;
  const data = await loadLabeled(labeledStore, { imageSize: arch.imageSize, channels, holdout: cfg.train.holdout, seed, signal: ctx.signal }, extra);
  if (data.classes.length !== arch.classes) {
    throw new Error(`train: the labeled set ${data.uri} has ${data.classes.length} classes but model ${cfg.model.name} has ${arch.classes} (set model.classes)`);
  }
  ctx.log.info(`train ${ctx.outPrefix}: ${data.train.count} training + ${data.heldout.count} held-out images from ${data.uri}; ${backend.summary}`);
  const budget = stageBudget(cfg, data);
  if (budget) {
    const whose = cfg.budget === 'teacher-steps' ? "the teacher's" : "at least the student's images:";
    ctx.log.info(`budget: ${whose} ${budget.totalSteps} steps of ${budget.batch} images (${budget.warmupSteps} warm-up), on ${data.train.count} training images`);
  }

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

  const parallel = resolveWorkers(cfg.train.workers, backend.name);
  ctx.log.info(`train ${ctx.outPrefix}: ${parallel.reason}`, { workers: parallel.workers });

  // Initial weights from the training seed: same seed, same starting point (and same run).
  const model = withSeededMathRandom(mix(seed, 0x1a17), () => buildResNetRS(arch));
  try {
    if (startsFromTeacher(cfg)) {
      if (!cfg.inputs.teacher) throw new Error(`train: student.init "${cfg.train.student.init}" needs inputs.teacher`);
      await initFromTeacher(model, ctx.run.sub(modelDir(cfg.inputs.teacher)));
    }
    const recipe = recipeOf(cfg);
    if (recipe.train !== cfg.train) ctx.log.info(`student: continues its teacher's weights at ${recipe.lrSetting.value} x the recipe's peak learning rate (${recipe.lrSetting.path})`);
    const result = await train({
      tf,
      model,
      cfg: recipe.train,
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
      role: cfg.role,
      budget,
      workers: parallel.workers,
      transport: parallel.transport,
      workerEnv: parallel.env,
      storeSettings: ctx.storeSettings,
      lrSetting: recipe.lrSetting,
      onStep: hooks.onStep,
    });
    const summary = { ...metricsRecord(cfg, result, backend.name, data, pseudo, budget), ...(await versusTeacher(ctx, cfg, result)) };
    await out.put(METRICS_JSON, JSON.stringify(summary, null, 2), { contentType: 'application/json' });
    // The trained model carries how its inputs must be prepared (infer/evaluate read this).
    const meta = (model.getUserDefinedMetadata() ?? {}) as Record<string, unknown>;
    model.setUserDefinedMetadata({
      ...meta,
      [ARCH_METADATA_KEY]: arch as unknown as Record<string, unknown>,
      preprocessing: { imageSize: arch.imageSize, channels, mean: preprocessing.mean, std: preprocessing.std, evalCrop: preprocessing.cropFraction, weights: cfg.train.ema.enabled ? 'ema' : 'raw' },
      classes: data.classes,
    });
    await model.save(storeModelIO(out.sub(MODEL_DIR)));
    // The ONNX export beside it, for ONNX Runtime inference. After model.json (the commit): a crash
    // in between leaves no or a stale model.onnx, which infer/evaluate detect and export again.
    const onnx = await ensureOnnx(out.sub(MODEL_DIR), model);
    ctx.log.info(`train ${ctx.outPrefix}: wrote ${MODEL_DIR}/model.json and ${MODEL_DIR}/${ONNX_KEY} (${(onnx.bytes.length / 1e6).toFixed(1)} MB)`);
    return { summary };
  } finally {
    model.dispose();
    await pseudo?.close();
  }
}

/**
 * The recipe a stage trains with, and the setting a divergence error asks to lower. A student that
 * starts from trained weights runs at its recipe's peak LR x student.continuedLrScale when that is
 * set. The control and the bound train with the teacher's recipe (pipeline/runner/chain.ts).
 */
function recipeOf(cfg: TrainStageConfig): { train: TrainStageConfig['train']; lrSetting: { path: string; value: number } } {
  const scale = startsFromTeacher(cfg) ? cfg.train.student.continuedLrScale : undefined;
  if (scale === undefined) return { train: cfg.train, lrSetting: { path: `${cfg.role === 'student' ? 'student' : 'teacher'}.train.baseLr`, value: cfg.train.baseLr } };
  return { train: { ...cfg.train, baseLr: cfg.train.baseLr * scale }, lrSetting: { path: 'student.train.student.continuedLrScale', value: scale } };
}

/**
 * A student that ends below its teacher on the held-out labeled images (the same images: same
 * labeled set and seed) is flagged in its summary and the log, so it is not mistaken for a success.
 */
async function versusTeacher(ctx: StageContext, cfg: TrainStageConfig, r: TrainResult): Promise<Record<string, unknown>> {
  if (cfg.role !== 'student' || !cfg.inputs.teacher || r.final.heldoutAcc === null) return {};
  const teacher = JSON.parse((await ctx.run.sub(cfg.inputs.teacher).get(METRICS_JSON)).toString('utf8')) as { heldoutAcc?: number | null; heldoutImages?: number };
  if (typeof teacher.heldoutAcc !== 'number' || teacher.heldoutAcc <= r.final.heldoutAcc) return {};
  ctx.log.warn(
    `the student ends BELOW its teacher on the held-out labeled images: ${(r.final.heldoutAcc * 100).toFixed(1)}% vs ${(teacher.heldoutAcc * 100).toFixed(1)}% ` +
      `(${teacher.heldoutImages ?? '?'} images; the evaluate stage's test set decides, but check the student's recipe)`,
  );
  return { belowTeacherOnHeldout: { student: r.final.heldoutAcc, teacher: teacher.heldoutAcc, teacherStage: cfg.inputs.teacher } };
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

/**
 * The stage's budget when it is not its own epochs: 'teacher-steps', the step plan of this recipe on
 * the labeled part alone (the first part); 'student-budget', at least the student's steps and images.
 */
function stageBudget(cfg: TrainStageConfig, data: LabeledData): StepBudget | undefined {
  if (cfg.budget === 'epochs') return undefined;
  const labeled = data.parts?.[0];
  if (!labeled) throw new Error(`train: budget "${cfg.budget}" needs the per-part counts of the loaded data`);
  if (cfg.budget === 'teacher-steps') return planTeacherBudget(cfg.train, labeled);
  if (!cfg.budgetOf) throw new Error('train: budget "student-budget" needs budgetOf (the student\'s train recipe)');
  return studentBudget(cfg.train, cfg.budgetOf, labeled);
}

function metricsRecord(cfg: TrainStageConfig, r: TrainResult, backend: string, data: LabeledData, pseudo?: PseudoSource, budget?: StepBudget): Record<string, unknown> {
  return {
    role: cfg.role,
    model: cfg.model.name,
    backend,
    labeled: data.uri,
    trainImages: data.train.count,
    heldoutImages: data.heldout.count,
    sources: data.parts,
    ...(budget ? { budget: { kind: cfg.budget, ...budget } } : {}),
    steps: r.steps,
    totalSteps: r.totalSteps,
    stepsPerEpoch: r.stepsPerEpoch,
    resumedFrom: r.resumedFrom,
    imagesPerSec: Number(r.imagesPerSec.toFixed(2)),
    workers: r.workers,
    reduceWaitShare: Number(r.reduceWaitShare.toFixed(4)),
    heldoutLoss: r.final.heldoutLoss,
    heldoutAcc: r.final.heldoutAcc,
    ...(r.divergence.retries > 0 ? { divergence: r.divergence } : {}),
    ...(pseudo ? { pseudo: { unique: pseudo.unique, withRepeats: pseudo.size, skipped: pseudo.skipped.length, ratio: pseudo.ratio } } : {}),
    epochs: r.epochs,
  };
}
