/**
 * The infer stage: writes the job description, has an executor run the workers (local processes,
 * a Slurm job array, or workers started elsewhere: ./executors/), and writes the summary once
 * every shard has its prediction object. Data problems in shards
 * fail the stage with every bad shard named; finished shards stay, so after fixing the data a
 * re-run only does the rest.
 */
import type { StageContext } from '../../pipeline/runner/stage.js';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import type { InferConfig } from '../../pipeline/manifest/sections/pseudo.js';
import type { ExpectedArch } from '../../pipeline/pseudo/load-teacher.js';
import type { TeacherPreprocessing } from '../../pipeline/pseudo/teacher.js';
import { makeExecutor, type ExecutorContext } from './executors/index.js';
import { localExecutor } from './executors/local.js';
import { samplesIn } from './executors/store-state.js';
import { listPredictedShards } from '../../pipeline/pseudo/predictions-reader.js';
import { openStore } from '../../pipeline/store/open.js';
import { readTeacherInfo } from '../../pipeline/pseudo/load-teacher.js';
import { readJobIfAny, writeJob, type InferJob } from './job.js';
import { ERRORS_DIR, INFER_SUMMARY_KEY, PREDICTIONS_DIR, shardBase, STATS_DIR } from './layout.js';
import { summarise } from './summary.js';
import { type StoreSettings } from '../../pipeline/store/settings.js';

export interface InferStageOptions {
  id: string;
  /** URI of the unlabeled dataset prefix. */
  dataset: string;
  /** URI of the teacher checkpoint directory (model.json + weights; the EMA weights). */
  teacher: string;
  expectedArch: ExpectedArch;
  /** Eval preprocessing; default: what the train stage recorded in the checkpoint's metadata. */
  preprocessing?: TeacherPreprocessing;
  config: InferConfig;
  /** Names of the teacher's classes (the labeled set's); default "0".."K-1". */
  classes?: string[];
  backend?: InferJob['backend'];
  /** Environment of the worker processes (default process.env): S3 endpoint/credentials they need. */
  env?: NodeJS.ProcessEnv;
}

/** The job workers run for these options (reads the teacher checkpoint's id, not its weights). */
export async function buildInferJob(o: InferStageOptions, settings: StoreSettings = {}): Promise<InferJob> {
  const teacherStore = openStore(o.teacher, settings);
  const info = await readTeacherInfo(teacherStore).finally(() => teacherStore.close());
  const preprocessing = o.preprocessing ?? info.preprocessing;
  if (!preprocessing) {
    throw new Error(`teacher checkpoint ${o.teacher} records no preprocessing (userDefinedMetadata.preprocessing) and none was given: cannot prepare its inputs`);
  }
  return {
    version: 1,
    stage: o.id,
    dataset: o.dataset,
    teacher: o.teacher,
    teacherId: info.id,
    expectedArch: { ...o.expectedArch, blocks: [...o.expectedArch.blocks] },
    preprocessing,
    topK: o.config.topK,
    batchSize: o.config.batchSize,
    concurrency: o.config.concurrency,
    backend: o.backend ?? 'auto',
  };
}

export async function runInferStage(ctx: StageContext, o: InferStageOptions, workers: number): Promise<{ summary: Record<string, unknown> }> {
  const job = await buildInferJob(o, ctx.storeSettings);
  const ds = await openDataset(o.dataset, ctx.storeSettings);
  try {
    const out = ctx.run.sub(o.id);
    // Shards done under another job (other teacher weights, topK, preprocessing...) must not be
    // mistaken for done work: the runner re-runs a changed stage into the same prefix.
    const previous = await readJobIfAny(ctx.run, o.id);
    const executor = !o.config.executor || o.config.executor === 'local' ? localExecutor({ workers, maxRestarts: o.config.maxRestarts }) : makeExecutor(o.config);
    const shards = ds.index.shards.map((s) => ({ name: shardBase(s.name), samples: s.samples }));
    const progress = ctx.progress(`infer ${o.id}`, ds.index.samples, 'img');
    const execCtx = (done: ReadonlySet<string>): ExecutorContext => ({
      runUri: ctx.run.uri,
      stage: o.id,
      shards,
      done,
      out,
      signal: ctx.signal,
      env: o.env ?? process.env,
      storeSettings: ctx.storeSettings,
      log: ctx.log,
      progress: (samples) => progress.update(samples),
    });
    if (previous && canonical({ ...previous, concurrency: 0 }) !== canonical({ ...job, concurrency: 0 })) {
      ctx.log.warn(`infer: ${o.id} ran before with other settings or teacher weights; discarding its outputs`);
      // Workers still running for the old job must not write into the new outputs.
      await executor.abandon?.(execCtx(new Set()));
      for (const prefix of [PREDICTIONS_DIR, STATS_DIR, ERRORS_DIR]) await out.deletePrefix(prefix);
      await out.delete(INFER_SUMMARY_KEY);
    }
    await writeJob(ctx.run, job);
    const present = new Set(await listPredictedShards(out));
    const already = shards.filter((s) => present.has(s.name)).length;
    const remaining = shards.length - already;
    ctx.log.info(`infer: ${shards.length} shards (${already} already done), ${ds.index.samples} samples, executor ${executor.name}`, { dataset: o.dataset, teacher: o.teacher });
    // Progress is absolute: samples of shards finished by an earlier (interrupted) run count.
    const base = samplesIn(shards, present);
    progress.update(base);
    const t0 = performance.now();
    const result = remaining <= 0 ? { tasks: 0, restarts: 0, errors: [] } : await executor.run(execCtx(present));
    progress.stop();
    const processed = samplesIn(shards, new Set(await listPredictedShards(out))) - base;
    if (result.errors.length > 0) {
      throw new Error(`infer: ${result.errors.length} shard(s) of ${o.dataset} cannot be processed:\n${result.errors.map((e) => `  ${e.shard}: ${e.error}`).join('\n')}`);
    }
    const wallSeconds = (performance.now() - t0) / 1000;
    const summary = await summarise(out, ds.index, {
      dataset: o.dataset,
      teacher: job.teacherId,
      classes: labelSpace(o.classes, o.expectedArch.classes),
      topK: o.config.topK,
      wallSeconds,
      processedSamples: processed,
      workers: result.tasks,
      restarts: result.restarts,
    });
    return { summary: { samples: summary.samples, skipped: summary.skipped, imagesPerSecond: summary.imagesPerSecond, restarts: summary.restarts, teacher: summary.teacher } };
  } finally {
    await ds.close();
  }
}

/**
 * The class names predictions index into: the teacher's outputs, named by the labeled set when its
 * list has that length (an unlabeled set has no say in it).
 */
export function labelSpace(names: string[] | undefined, outputs: number): string[] {
  return names && names.length === outputs ? names : Array.from({ length: outputs }, (_, i) => String(i));
}

/** JSON with sorted keys, so equal jobs compare equal whatever order their fields were written in. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}
