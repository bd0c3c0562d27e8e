/**
 * The infer stage: writes the job description, has an executor run the workers (local processes,
 * a Slurm job array, or workers started elsewhere: ./executors/), and writes the summary once
 * every shard has its prediction object. Data problems in shards
 * fail the stage with every bad shard named; finished shards stay, so after fixing the data a
 * re-run only does the rest.
 */
import { availableParallelism } from 'node:os';
import { resolveInferEngine, type InferBackendChoice, type InferEngine } from '../../pipeline/inference/engine.js';
import { ensureOnnx, ONNX_KEY } from '../../pipeline/model/onnx-file.js';
import { onnxTeacherId } from '../../pipeline/pseudo/onnx-teacher.js';
import type { StageContext } from '../../pipeline/runner/stage.js';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import type { InferConfig } from '../../pipeline/manifest/sections/pseudo.js';
import type { ExpectedArch } from '../../pipeline/pseudo/load-teacher.js';
import type { TeacherPreprocessing } from '../../pipeline/pseudo/teacher.js';
import { makeExecutor, type ExecutorContext } from './executors/index.js';
import { samplesIn } from './executors/store-state.js';
import { listPredictedShards } from '../../pipeline/pseudo/predictions-reader.js';
import { openStore } from '../../pipeline/store/open.js';
import { readTeacherInfo } from '../../pipeline/pseudo/load-teacher.js';
import { readJobIfAny, writeJob, type InferJob } from './job.js';
import { ERRORS_DIR, INFER_SUMMARY_KEY, PREDICTIONS_DIR, shardBase, STATS_DIR } from './layout.js';
import { summarise } from './summary.js';
import { IntegrityError } from '../../pipeline/store/types.js';
import { trimUri } from '../../pipeline/store/uri.js';
import type { StoreSettings } from '../../pipeline/store/settings.js';

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
  /** The manifest's inferBackend: auto (ONNX Runtime when installed), onnx or tfjs. Default auto. */
  inferBackend?: InferBackendChoice;
  /** Environment of the worker processes (default process.env): S3 endpoint/credentials they need. */
  env?: NodeJS.ProcessEnv;
}

/**
 * The job workers run for these options (reads the teacher checkpoint's id, not its weights). With
 * ONNX Runtime the teacher's model.onnx is made current first (exported from the weights when it
 * is missing or stale) and pinned by its hash; `log` hears why ONNX Runtime is not used.
 */
export async function buildInferJob(o: InferStageOptions, settings: StoreSettings = {}, log?: (line: string) => void): Promise<InferJob> {
  const decision = await resolveInferEngine(o.inferBackend ?? 'auto');
  if (decision.reason) log?.(`infer: ${decision.reason}; using tfjs (${o.backend ?? 'auto'})`);
  const teacherStore = openStore(o.teacher, settings);
  try {
    const info = await readTeacherInfo(teacherStore);
    const preprocessing = o.preprocessing ?? info.preprocessing;
    if (!preprocessing) {
      throw new Error(`teacher checkpoint ${o.teacher} records no preprocessing (userDefinedMetadata.preprocessing) and none was given: cannot prepare its inputs`);
    }
    let teacherId = info.id;
    let onnx: InferJob['onnx'];
    if (decision.engine === 'onnx') {
      const file = await ensureOnnx(teacherStore);
      if (file.exported) log?.(`infer: exported ${trimUri(o.teacher)}/${ONNX_KEY} from ${file.source}`);
      onnx = { key: ONNX_KEY, sha256: file.sha256 };
      teacherId = onnxTeacherId(info.id, file.sha256);
    }
    return {
      version: 1,
      stage: o.id,
      dataset: o.dataset,
      teacher: o.teacher,
      teacherId,
      expectedArch: { ...o.expectedArch, blocks: [...o.expectedArch.blocks] },
      preprocessing,
      topK: o.config.topK,
      batchSize: o.config.batchSize,
      concurrency: o.config.concurrency,
      backend: o.backend ?? 'auto',
      engine: decision.engine,
      ...(onnx ? { onnx } : {}),
    };
  } finally {
    await teacherStore.close();
  }
}

/**
 * Local worker processes × ONNX Runtime threads per worker. tfjs-wasm is single-threaded, so one
 * process per core. ONNX Runtime could fill the cores from one process, but a worker's forward pass
 * blocks its event loop, and small images decode on that same thread: with one single-threaded
 * worker per core one process decodes while another computes. Only on larger machines are a few
 * threads per worker used, to bound the number of model copies in memory (2 from 8 cores, 4 from
 * 16). Given one of the two, the other fills the cores.
 */
export function planWorkers(engine: InferEngine, cores: number, workers?: number, threads?: number): { workers: number; threads: number } {
  if (engine === 'tfjs') return { workers: workers ?? cores, threads: 1 };
  if (workers !== undefined && threads !== undefined) return { workers, threads };
  if (threads !== undefined) return { workers: Math.max(1, Math.floor(cores / threads)), threads };
  if (workers !== undefined) return { workers, threads: Math.max(1, Math.floor(cores / workers)) };
  const t = cores >= 16 ? 4 : cores >= 8 ? 2 : 1;
  return { workers: Math.max(1, Math.floor(cores / t)), threads: t };
}

export async function runInferStage(ctx: StageContext, o: InferStageOptions, workers?: number): Promise<{ summary: Record<string, unknown> }> {
  const job = await buildInferJob(o, ctx.storeSettings, (line) => ctx.log.info(line));
  const plan = planWorkers(job.engine, availableParallelism(), workers, o.config.threads);
  const ds = await openDataset(o.dataset, ctx.storeSettings);
  try {
    const out = ctx.run.sub(o.id);
    // Shards done under another job (other teacher weights, topK, preprocessing...) must not be
    // mistaken for done work: the runner re-runs a changed stage into the same prefix.
    const previous = await readJobIfAny(ctx.run, o.id);
    const backends = new Set<string>();
    const executor = makeExecutor(o.config, { workers: plan.workers, maxRestarts: o.config.maxRestarts, threads: job.engine === 'onnx' ? plan.threads : undefined, onBackend: (b) => backends.add(b) });
    const shards = ds.index.shards.map((s) => ({ name: shardBase(s.name), samples: s.samples }));
    const progress = ctx.progress(`infer ${o.id}`, ds.index.samples, 'img');
    const execCtx = (done: ReadonlySet<string>): ExecutorContext => ({
      runUri: ctx.run.uri,
      stage: o.id,
      shards,
      done,
      out,
      onnx: job.engine === 'onnx',
      signal: ctx.signal,
      env: o.env ?? process.env,
      storeSettings: ctx.storeSettings,
      log: ctx.log,
      progress: (samples) => progress.update(samples),
    });
    // A job that cannot be read may be another one: its outputs are not trusted either.
    if (previous === 'unreadable' || (previous && canonical({ ...previous, concurrency: 0 }) !== canonical({ ...job, concurrency: 0 }))) {
      ctx.log.warn(`infer: ${o.id} ran before with ${previous === 'unreadable' ? 'a job description that cannot be read' : 'other settings or teacher weights'}; discarding its outputs`);
      // Workers still running for the old job must not write into the new outputs.
      await executor.abandon?.(execCtx(new Set()));
      for (const prefix of [PREDICTIONS_DIR, STATS_DIR, ERRORS_DIR]) await out.deletePrefix(prefix);
      await out.delete(INFER_SUMMARY_KEY);
    }
    await writeJob(ctx.run, job);
    const present = new Set(await listPredictedShards(out));
    const already = shards.filter((s) => present.has(s.name)).length;
    const remaining = shards.length - already;
    const engine = job.engine === 'onnx' ? `ONNX Runtime${executor.name === 'local' ? `, ${plan.threads} thread(s) each` : ''}` : `tfjs ${job.backend}`;
    const where = executor.name === 'local' ? `${remaining > 0 ? Math.max(1, Math.min(plan.workers, remaining)) : 0} worker process(es)` : `executor ${executor.name}`;
    ctx.log.info(`infer: ${shards.length} shards (${already} already done), ${ds.index.samples} samples, ${where}, ${engine}`, { dataset: o.dataset, teacher: o.teacher });
    // Progress is absolute: samples of shards finished by an earlier (interrupted) run count.
    const base = samplesIn(shards, present);
    progress.update(base);
    const t0 = performance.now();
    const result = remaining <= 0 ? { tasks: 0, restarts: 0, errors: [] } : await executor.run(execCtx(present));
    progress.stop();
    const processed = samplesIn(shards, new Set(await listPredictedShards(out))) - base;
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
      classes: labelSpace(o.classes, o.expectedArch.classes),
      topK: o.config.topK,
      wallSeconds,
      processedSamples: processed,
      workers: result.tasks,
      restarts: result.restarts,
    });
    return { summary: { samples: summary.samples, skipped: summary.skipped, imagesPerSecond: summary.imagesPerSecond, restarts: summary.restarts, teacher: summary.teacher, engine: job.engine, backend: backends.size > 0 ? [...backends].join('; ') : null } };
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
