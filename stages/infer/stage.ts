/**
 * The infer stage: writes the job description, runs the local executor (N worker processes),
 * and writes the summary once every shard has its prediction object. Data problems in shards
 * fail the stage with every bad shard named; finished shards stay, so after fixing the data a
 * re-run only does the rest.
 */
import type { StageContext } from '../../pipeline/runner/stage.js';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import type { InferConfig } from '../../pipeline/manifest/sections/pseudo.js';
import type { ExpectedArch } from '../../pipeline/pseudo/load-teacher.js';
import type { TeacherPreprocessing } from '../../pipeline/pseudo/teacher.js';
import { runLocalWorkers } from './executor.js';
import { openStore } from '../../pipeline/store/open.js';
import { readTeacherInfo } from '../../pipeline/pseudo/load-teacher.js';
import { readJobIfAny, writeJob, type InferJob } from './job.js';
import { INFER_SUMMARY_KEY, predictionKey, PREDICTIONS_DIR, shardBase, STATS_DIR } from './layout.js';
import { summarise } from './summary.js';
import { IntegrityError } from '../../pipeline/store/types.js';
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
    // A job that cannot be read may be another one: its outputs are not trusted either.
    if (previous === 'unreadable' || (previous && canonical({ ...previous, concurrency: 0 }) !== canonical({ ...job, concurrency: 0 }))) {
      ctx.log.warn(`infer: ${o.id} ran before with ${previous === 'unreadable' ? 'a job description that cannot be read' : 'other settings or teacher weights'}; discarding its outputs`);
      for (const prefix of [PREDICTIONS_DIR, STATS_DIR]) await out.deletePrefix(prefix);
      await out.delete(INFER_SUMMARY_KEY);
    }
    await writeJob(ctx.run, job);
    const total = ds.index.samples;
    const present = new Set((await out.list(PREDICTIONS_DIR)).map((x) => x.key));
    const already = ds.index.shards.filter((s) => present.has(predictionKey(shardBase(s.name)))).length;
    const remaining = ds.index.shards.length - already;
    const processes = Math.max(1, Math.min(workers, remaining));
    const progress = ctx.progress(`infer ${o.id}`, total, 'img');
    ctx.log.info(`infer: ${ds.index.shards.length} shards (${already} already done), ${total} samples, ${remaining > 0 ? processes : 0} worker process(es)`, { dataset: o.dataset, teacher: o.teacher });
    const doneByShard = new Map<string, number>();
    let processed = 0;
    // Progress is absolute: samples of shards finished by an earlier (interrupted) run count.
    const base = ds.index.shards.filter((s) => present.has(predictionKey(shardBase(s.name)))).reduce((a, s) => a + s.samples, 0);
    progress.update(base);
    const t0 = performance.now();
    const result = remaining <= 0 ? { restarts: 0, errors: [] } : await runLocalWorkers({
      runUri: ctx.run.uri,
      stage: o.id,
      workers: processes,
      storeSettings: ctx.storeSettings,
      maxRestarts: o.config.maxRestarts,
      signal: ctx.signal,
      env: o.env,
      onEvent: (w, e) => {
        if (e.event === 'start') {
          ctx.log.info(`infer worker ${w}: ${e.todo}/${e.shards} shards to do on ${e.backend}`);
        } else if (e.event === 'batch') {
          doneByShard.set(e.shard, e.done);
          progress.update(base + [...doneByShard.values()].reduce((a, b) => a + b, 0) + processed);
        } else if (e.event === 'shard') {
          doneByShard.delete(e.shard);
          processed += e.samples;
          progress.update(base + [...doneByShard.values()].reduce((a, b) => a + b, 0) + processed);
        } else if (e.event === 'shard-error') {
          ctx.log.error(`infer: shard ${e.shard}: ${e.error}`);
        }
      },
      onStderr: (w, line) => ctx.log.debug(`infer worker ${w}: ${line}`),
    });
    progress.stop();
    if (result.errors.length > 0) {
      // A damaged input shard (its bytes are not the ones dataset.json records) is carried as the
      // cause: the runner then has the import remake it and runs this stage again.
      const damaged = result.errors.find((e) => e.damaged)?.damaged;
      const cause = damaged && new IntegrityError(damaged.uri, damaged.expected, damaged.actual);
      throw new Error(`infer: ${result.errors.length} shard(s) of ${o.dataset} cannot be processed:\n${result.errors.map((e) => `  ${e.shard}: ${e.error}`).join('\n')}`, { cause });
    }
    const wallSeconds = (performance.now() - t0) / 1000;
    const summary = await summarise(out, ds.index, {
      dataset: o.dataset,
      teacher: job.teacherId,
      topK: o.config.topK,
      wallSeconds,
      processedSamples: processed,
      workers: remaining > 0 ? processes : 0,
      restarts: result.restarts,
    });
    return { summary: { samples: summary.samples, skipped: summary.skipped, imagesPerSecond: summary.imagesPerSecond, restarts: summary.restarts, teacher: summary.teacher } };
  } finally {
    await ds.close();
  }
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
