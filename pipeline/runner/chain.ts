/**
 * The stage chain of a manifest:
 *
 *   import → train-teacher-1 → infer-1 → select-1 → train-student-1 → infer-2 → … → evaluate
 *                                                  (train-control, labeled only, unless the teacher
 *                                                   is the control; train-baseline when
 *                                                   evaluate.baseline: labeled + ground-truth-labeled
 *                                                   unlabeled; both the student's model and images)
 *
 * Round k's teacher is round k-1's student (the Noisy Student loop). Each stage's `config` is
 * exactly the manifest slice it depends on (plus the seed and the ids of the stages it reads), so
 * changing e.g. `student.train` re-runs only the student stages and what follows them.
 *
 * Stage code lives in `stages/<kind>/index.ts`, exporting `runStage(ctx, config)` (StageModule in
 * ./stage.ts); it is imported only when the stage actually runs, so `plan`, `status` and an
 * up-to-date `run` stay fast (no tfjs, no sharp).
 *
 * Declared outputs (what must exist for a done stage to count as done) are the stages' final
 * objects: `import/datasets.json`, `<train-id>/model/model.json`, `<infer-id>/summary.json`,
 * `<select-id>/summary.json`, `evaluate/report.json` — each written LAST by its stage.
 */
import type { Manifest } from '../manifest/schema.js';
import { resolveModel } from '../model/family.js';
import { coversBudget, pseudoBatchOf } from '../train/step-plan.js';
import { datasetsListKey, type ImportStageConfig } from '../contracts/import.js';
import { modelJsonKey, startsFromTeacher, type TrainStageConfigInput } from '../contracts/train.js';
import { inferSummaryKey, type InferStageConfigInput } from '../contracts/infer.js';
import { selectSummaryKey, type SelectStageConfigInput } from '../contracts/select.js';
import { reportKey, type EvaluateStageConfigInput } from '../contracts/evaluate.js';
import { STAGE_CODE_VERSIONS, type StageCodeVersions } from './code-versions.js';
import type { StageContext, StageDefinition, StageModule } from './stage.js';

/** Each stage kind's config, as its contract (pipeline/contracts/<kind>.ts) accepts it. */
export interface StageConfigs {
  import: ImportStageConfig;
  train: TrainStageConfigInput;
  infer: InferStageConfigInput;
  select: SelectStageConfigInput;
  evaluate: EvaluateStageConfigInput;
}
export type Kind = keyof StageConfigs;

/** A stage of the real chain: its kind decides its config's type. */
export type ChainStage = { [K in Kind]: StageDefinition<K, StageConfigs[K]> }[Kind];

export type ChainBuilder = (manifest: Manifest) => ChainStage[];

/** Final objects per stage kind, relative to the run (each stage writes its own LAST). */
export const stageOutputs: { [K in Kind]: (id: string) => string[] } = {
  import: (id) => [datasetsListKey(id)],
  train: (id) => [modelJsonKey(id)],
  infer: (id) => [inferSummaryKey(id)],
  select: (id) => [selectSummaryKey(id)],
  evaluate: (id) => [reportKey(id)],
};

// Same extension as this file: .ts under tsx, .js from dist/.
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

async function loadStageModule<K extends Kind>(kind: K): Promise<StageModule<StageConfigs[K]>> {
  const url = new URL(`../../stages/${kind}/index${ext}`, import.meta.url);
  let mod: Partial<StageModule<StageConfigs[K]>>;
  try {
    mod = (await import(url.href)) as Partial<StageModule<StageConfigs[K]>>;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(`stages/${kind}/index`)) {
      throw new Error(`stage kind "${kind}" is not implemented yet (no stages/${kind}/index${ext})`);
    }
    throw err;
  }
  if (typeof mod.runStage !== 'function') throw new Error(`stages/${kind}/index${ext} does not export runStage(ctx, config)`);
  return mod as StageModule<StageConfigs[K]>;
}

/**
 * The config the fingerprint sees: without `workers` (train, evaluate), which says how much of the
 * machine a stage uses, not what it computes. Changing it re-runs nothing; a training stage records
 * the worker count it ran with (metrics.json), since per-worker BN statistics make the numerics
 * depend on it. The stage itself runs with the full config.
 */
function fingerprinted<C>(config: C): C {
  const out = { ...config } as Record<string, unknown>;
  for (const section of ['train', 'evaluate']) {
    const v = out[section];
    if (v && typeof v === 'object' && 'workers' in v) {
      const { workers: _executionOnly, ...rest } = v as Record<string, unknown>;
      out[section] = rest;
    }
  }
  return out as C;
}

/**
 * `runtime`: settings passed to the stage beside its config but not part of it, so not hashed into
 * its fingerprint: how the work is executed, never what it computes.
 */
function defineStage<K extends Kind>(
  versions: StageCodeVersions,
  kind: K,
  id: string,
  deps: string[],
  config: StageConfigs[K],
  needsBackend: boolean,
  runtime?: Partial<StageConfigs[K]>,
): StageDefinition<K, StageConfigs[K]> {
  return {
    id,
    kind,
    deps,
    config: fingerprinted(config),
    outputs: stageOutputs[kind](id),
    // Hashed into the fingerprint: new code that changes a kind's outputs re-runs its stages.
    version: String(versions[kind]),
    needsBackend,
    run: async (ctx: StageContext) => (await loadStageModule(kind)).runStage(ctx, runtime ? { ...config, ...runtime } : config),
  };
}

/**
 * The inference engine choice of infer and evaluate, only when it is not the default: runs made
 * before the setting existed keep their fingerprints (and so their finished stages).
 */
function engine(m: Manifest): { inferBackend?: Manifest['inferBackend'] } {
  return m.inferBackend === 'auto' ? {} : { inferBackend: m.inferBackend };
}

/**
 * The last student's recipe, lengthened to the training images its weights carry: its own, plus
 * those of the weights it started from (student.init). From scratch that is its own recipe; with
 * 'previous-student' every round's student continues the one before, so the last carries all
 * `iterations` rounds; with 'teacher' also the first teacher's images (counted in the student's
 * steps or epochs when both recipes use the same unit; otherwise left out, and the report's check of
 * the recorded budgets says the control falls short). The labeled-only control and the all-labels
 * bound train on that many images, so "more training" stays separated from "pseudo-labels". Its
 * steps then count the teacher's images in student steps, more than the teacher's own steps when
 * the teacher's batch is larger: erring toward a longer control, never a shorter one.
 */
function carriedStudentRecipe(m: Manifest): Manifest['student']['train'] {
  // The continued rounds' learning rate changes no image count: left out, so that tuning it does
  // not re-run the control and the bound.
  const s = withoutContinuedLr(m.student.train), t = m.teacher.train;
  const init = s.student.init;
  if (init === 'scratch') return s;
  const rounds = m.iterations;
  const perStep = imagesPerStep(s, true);
  if (s.steps !== undefined) {
    const fromTeacher = init === 'teacher' && t.steps !== undefined ? Math.ceil((t.steps * imagesPerStep(t, false)) / perStep) : 0;
    return { ...s, steps: rounds * s.steps + fromTeacher };
  }
  // Epochs over the same labeled set: the teacher's images in student epochs (images per epoch scale with images per step / batch).
  const fromTeacher = init === 'teacher' && t.steps === undefined ? t.epochs * (s.batchSize / perStep) : 0;
  return { ...s, epochs: rounds * s.epochs + fromTeacher };
}

/**
 * Round k's student recipe: continuedLrScale only where the student starts from trained weights
 * (startsFromTeacher), so that setting it does not re-run students it does not change.
 */
function studentRecipe(m: Manifest, k: number): Manifest['student']['train'] {
  const s = m.student.train;
  return startsFromTeacher({ role: 'student', iteration: k, train: s }) ? s : withoutContinuedLr(s);
}

/** A student recipe without student.continuedLrScale (absent stays absent: the same object). */
function withoutContinuedLr(s: Manifest['student']['train']): Manifest['student']['train'] {
  if (s.student.continuedLrScale === undefined) return s;
  const { continuedLrScale: _lrOnly, ...studentMode } = s.student;
  return { ...s, student: studentMode };
}

/** Training images per step of a recipe: its batch, plus the pseudo-labeled batch for a student. */
function imagesPerStep(t: Manifest['student']['train'], student: boolean): number {
  return t.batchSize + (student ? pseudoBatchOf(t.student.ratio, t.batchSize) : 0);
}

/**
 * A model's shape: its resolved architecture without the noise settings (dropout, stochastic depth),
 * which Noisy Student gives the student alone; the evaluate stage compares the same way.
 */
function shapeOf(model: Manifest['student']['model']): string {
  const { dropoutRate: _d, stochasticDepthRate: _sd, ...shape } = resolveModel(model).arch;
  return JSON.stringify(shape);
}

/**
 * Whether the teacher can serve as the labeled-only control (evaluate.control 'auto'): the student's
 * model (up to its noise), and at least the steps and the training images behind the last student's
 * weights (its own and, with student.init, those it carried over; step-plan.ts's studentBudget says
 * why steps count too). Decided from the manifest alone (the chain is built before any data is
 * counted): exactly when both recipes give `steps`; from epochs when both give epochs (an epoch is
 * a pass over the same labeled set, whose size then cancels out). The report checks the recorded
 * budgets again and says when the teacher falls short.
 */
export function teacherIsControl(m: Manifest): boolean {
  const t = m.teacher.train, s = carriedStudentRecipe(m);
  if (shapeOf(m.teacher.model) !== shapeOf(m.student.model)) return false;
  const perStep = imagesPerStep(s, true);
  if (t.steps !== undefined && s.steps !== undefined) {
    return coversBudget({ steps: t.steps, images: t.steps * imagesPerStep(t, false) }, { steps: s.steps, images: s.steps * perStep });
  }
  // In units of one pass over the labeled set (N images): steps N / batch, images N (teacher) or
  // N x perStep / batch (student); N cancels out.
  if (t.steps === undefined && s.steps === undefined) {
    return coversBudget({ steps: t.epochs / t.batchSize, images: t.epochs }, { steps: s.epochs / s.batchSize, images: s.epochs * (perStep / s.batchSize) });
  }
  return false;
}

/** The chain of a manifest; `versions` (the stage kinds' code versions) is for tests of upgrades. */
export function buildChain(m: Manifest, versions: StageCodeVersions = STAGE_CODE_VERSIONS): ChainStage[] {
  const define = <K extends Kind>(kind: K, id: string, deps: string[], config: StageConfigs[K], needsBackend: boolean, runtime?: Partial<StageConfigs[K]>) =>
    defineStage(versions, kind, id, deps, config, needsBackend, runtime);
  const seed = m.seed;
  // `sizes` only feeds `plan`'s estimates: kept out of the fingerprint so editing it re-runs nothing.
  const { sizes: _planOnly, ...datasets } = m.datasets;
  const stages: ChainStage[] = [define('import', 'import', [], { datasets, seed }, false)];
  stages.push(
    define('train', 'train-teacher-1', ['import'], { role: 'teacher', iteration: 1, model: m.teacher.model, train: m.teacher.train, seed, inputs: { data: 'import' } }, true),
  );
  let teacher = 'train-teacher-1';
  const trained = [teacher];
  // Each round's select stage and the infer stage it selects from: evaluate judges these pairs.
  const rounds: { select: string; infer: string }[] = [];
  for (let k = 1; k <= m.iterations; k++) {
    const infer = `infer-${k}`;
    const select = `select-${k}`;
    const student = `train-student-${k}`;
    // Where the workers run (executor, slurm, external) does not change what they compute: passed
    // beside the config, so switching executor re-runs nothing.
    const { executor, slurm, external, ...inferSettings } = m.pseudo.infer;
    const runtime = executor || slurm || external ? { runtime: { executor, slurm, external } } : undefined;
    stages.push(
      define('infer', infer, ['import', teacher], { iteration: k, model: k === 1 ? m.teacher.model : m.student.model, infer: inferSettings, ...engine(m), seed, inputs: { data: 'import', teacher } }, true, runtime),
    );
    stages.push(define('select', select, ['import', infer], { iteration: k, select: m.pseudo.select, seed, inputs: { data: 'import', predictions: infer } }, false));
    stages.push(
      define(
        'train',
        student,
        ['import', select, teacher],
        { role: 'student', iteration: k, model: m.student.model, train: studentRecipe(m, k), seed, inputs: { data: 'import', pseudo: select, teacher } },
        true,
      ),
    );
    trained.push(student);
    rounds.push({ select, infer });
    teacher = student;
  }
  // The control and the bound answer "what would the student's model have reached without
  // pseudo-labels / with every label?": the student's model, the supervised (teacher's) recipe and
  // at least the student's steps and training images (budget 'student-budget'), not the same epochs
  // (an epoch over a 60x larger set would be a 60x larger budget).
  const studentBudget = { model: m.student.model, train: m.teacher.train, budget: 'student-budget', budgetOf: carriedStudentRecipe(m), seed, inputs: { data: 'import' } } as const;
  if (m.evaluate.control === 'on' || (m.evaluate.control === 'auto' && !teacherIsControl(m))) {
    stages.push(define('train', 'train-control', ['import'], { role: 'control', ...studentBudget }, true));
    trained.push('train-control');
  }
  if (m.evaluate.baseline) {
    // The all-labels bound: the labeled set PLUS the unlabeled set with its held-back ground-truth
    // labels (role 'baseline' is the only train role that reads ground truth).
    stages.push(define('train', 'train-baseline', ['import'], { role: 'baseline', ...studentBudget }, true));
    trained.push('train-baseline');
  }
  stages.push(
    define(
      'evaluate',
      'evaluate',
      ['import', ...trained, ...rounds.map((r) => r.select)],
      { evaluate: m.evaluate, ...engine(m), seed, inputs: { data: 'import', models: trained, pseudo: rounds } },
      true,
    ),
  );
  return stages;
}
