/**
 * One infer worker: the shards with `shard % count == index` that have no prediction object
 * yet, or, when the local executor hands shards out one at a time (`claim`), the ones it is
 * given. Producer (download, parse, sharp decode) and consumer (forward pass, encode, write) run
 * concurrently through bounded buffers; each shard's prediction object is written with one
 * atomic put when the shard is complete, so a killed worker leaves finished shards whole and
 * the shard it was in the middle of absent — a restart redoes exactly that one.
 */
import { availableParallelism } from 'node:os';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import { initBackend } from '../../pipeline/backend/select.js';
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { encodeJsonlGz } from '../../pipeline/pseudo/jsonl.js';
import { loadTeacher } from '../../pipeline/pseudo/load-teacher.js';
import { loadOnnxTeacher } from '../../pipeline/pseudo/onnx-teacher.js';
import type { PredictionRecord } from '../../pipeline/pseudo/records.js';
import type { Teacher, TopK } from '../../pipeline/pseudo/teacher.js';
import { prefetch } from '../../pipeline/data/prefetch.js';
import { readJob, type InferJob } from './job.js';
import { errorKey, histogramBin, HISTOGRAM_BINS, ownedShards, predictionKey, shardBase, statsKey, type ShardStats } from './layout.js';

export { ownedShards };
import { normaliseInto, shardBatches, type DamagedObject, type ShardSource, type Slot } from './shard-batches.js';
import type { StoreSettings } from '../../pipeline/store/settings.js';

export type WorkerEvent =
  /** `claims`: shards come one at a time from the launching process; `shards`/`todo` then count the whole set. */
  | { event: 'start'; index: number; count: number; shards: number; todo: number; backend: string; teacher: string; claims?: boolean }
  /** Asks the launching process for the next shard (claim mode; the answer comes on stdin). */
  | { event: 'claim' }
  /** Progress within a shard: its first batch, then at most every PROGRESS_EVERY_MS. */
  | { event: 'batch'; shard: string; done: number; samples: number }
  /** `number`: the shard's position in dataset.json (what a claim hands out). */
  | { event: 'shard'; shard: string; number: number; samples: number; failed: number; seconds: number }
  | { event: 'shard-error'; shard: string; number: number; error: string; damaged?: DamagedObject }
  | {
      event: 'done';
      samples: number;
      seconds: number;
      imagesPerSecond: number;
      failedShards: number;
      maxRssMB: number;
      /** Time inside forward passes: forwardSeconds / seconds near 1 means the model never waited for I/O. */
      forwardSeconds: number;
    };

export interface WorkerOptions {
  run: ObjectStore;
  /** How to reach the job's dataset and teacher stores (the run's settings). */
  storeSettings?: StoreSettings;
  stage: string;
  index: number;
  count: number;
  /** ONNX Runtime intra-op threads (default: this machine's cores). */
  threads?: number;
  /**
   * Takes shards one at a time from here instead of `shard % count == index`: the next shard
   * number, or undefined (or a number past the last shard) when there are no more.
   */
  claim?: () => Promise<number | undefined>;
  signal?: AbortSignal;
  emit?: (e: WorkerEvent) => void;
}

export interface WorkerResult {
  samples: number;
  seconds: number;
  forwardSeconds: number;
  /** Shards that could not be processed, with the reason (data problems: retrying cannot help). */
  errors: { shard: string; error: string; damaged?: DamagedObject }[];
}

/**
 * A problem that retrying cannot fix (no job, no dataset.json, a teacher checkpoint that does not
 * match the manifest): the executor stops instead of restarting the worker.
 */
export class WorkerSetupError extends Error {
  override name = 'WorkerSetupError';
}

async function setup<T>(what: Promise<T>): Promise<T> {
  try {
    return await what;
  } catch (err) {
    throw new WorkerSetupError((err as Error).message, { cause: err });
  }
}

export async function runInferWorker(o: WorkerOptions): Promise<WorkerResult> {
  const emit = o.emit ?? (() => {});
  const job = await setup(readJob(o.run, o.stage));
  const out = o.run.sub(job.stage);
  const ds = await setup(openDataset(job.dataset, o.storeSettings));
  try {
    const total = ds.index.shards.length;
    const owned = o.claim ? Array.from({ length: total }, (_, n) => n) : ownedShards(total, o.index, o.count);
    const done = new Set((await out.list('predictions/')).map((x) => x.key));
    const isDone = (n: number) => done.has(predictionKey(shardBase(ds.index.shards[n]!.name)));
    const todo = owned.filter((n) => !isDone(n));
    const claim = o.claim;
    // Claimed shards that were finished before this worker started are passed over.
    const source = claim
      ? async () => {
          for (;;) {
            const n = await claim();
            if (n === undefined || n >= total) return undefined;
            if (!isDone(n)) return n;
          }
        }
      : todo;
    const teacherStore = openStore(job.teacher, o.storeSettings);
    let teacher: Teacher;
    try {
      if (job.engine === 'onnx') {
        if (!job.onnx) throw new WorkerSetupError(`${job.stage}/job.json: engine onnx but no onnx file named`);
        const threads = o.threads ?? availableParallelism();
        teacher = await setup(loadOnnxTeacher(teacherStore, job.expectedArch, job.preprocessing, { threads, sha256: job.onnx.sha256 }));
      } else {
        await initBackend(job.backend);
        teacher = await setup(loadTeacher(teacherStore, job.expectedArch, job.preprocessing));
      }
    } finally {
      await teacherStore.close();
    }
    if (teacher.id !== job.teacherId) {
      teacher.dispose();
      // Mixing two teachers' predictions in one stage output would be silent corruption.
      throw new WorkerSetupError(`teacher checkpoint ${job.teacher} changed since the infer stage started (now ${teacher.id}, job ${job.teacherId}): re-run the stage`);
    }
    emit({ event: 'start', index: o.index, count: o.count, shards: owned.length, todo: todo.length, backend: teacher.detail ? `${teacher.backend}, ${teacher.detail}` : teacher.backend, teacher: teacher.id, ...(claim ? { claims: true } : {}) });
    try {
      return await processShards(job, out, ds, source, teacher, o.signal, emit);
    } finally {
      teacher.dispose();
    }
  } finally {
    await ds.close();
  }
}

/** Six decimals: plenty for a 0.01 threshold grid, and compact, stable JSON. */
const round6 = (p: number) => Math.round(p * 1e6) / 1e6;

/** Batch progress events: the first of each shard, then no more often than this. */
const PROGRESS_EVERY_MS = 250;

/** Forward passes handed to the teacher before the oldest is collected. */
const BATCHES_IN_FLIGHT = 2;

/** A batch whose forward pass has started; its records are appended when it is collected. */
interface PendingBatch {
  slots: Slot[];
  shard: string;
  /** Samples in the batch's shard (for progress). */
  shardSamples: number;
  top: Promise<TopK | undefined>;
}

async function processShards(
  job: InferJob,
  out: ObjectStore,
  ds: Awaited<ReturnType<typeof openDataset>>,
  todo: ShardSource,
  teacher: Teacher,
  signal: AbortSignal | undefined,
  emit: (e: WorkerEvent) => void,
): Promise<WorkerResult> {
  const t0 = performance.now();
  const { imageSize: S, channels: C } = job.preprocessing;
  const pixelsPer = S * S * C;
  const batchPixels = new Float32Array(job.batchSize * pixelsPer);
  const errors: WorkerResult['errors'] = [];
  let total = 0;
  let forwardSeconds = 0;
  // Records of the shard being assembled (batches of one shard arrive in order, shards in order).
  let records: PredictionRecord[] = [];
  let shardStart = performance.now();
  // At most one write in flight: the next shard's forward passes overlap the previous upload.
  let writing: Promise<void> = Promise.resolve();
  const inFlight: PendingBatch[] = [];
  let lastFinished = 0;
  let lastProgress = 0;

  const items = prefetch(
    // Claimed shards: one downloaded ahead, not two, so that a worker holds fewer claims when the
    // others run out (a download takes a fraction of a shard's decode and forward time).
    shardBatches({ ds, shards: todo, batchSize: job.batchSize, concurrency: job.concurrency, preprocessing: job.preprocessing, lookahead: Array.isArray(todo) ? undefined : 1, signal }),
    2,
  );
  try {
    await consume();
  } finally {
    // Interrupted or failed: still let an upload in flight finish (it is atomic either way).
    await writing.catch(() => undefined);
  }
  await writing;
  const seconds = (performance.now() - t0) / 1000;
  const maxRssMB = process.resourceUsage().maxRSS / 1024;
  emit({ event: 'done', samples: total, seconds, imagesPerSecond: seconds > 0 ? total / seconds : 0, failedShards: errors.length, maxRssMB, forwardSeconds });
  return { samples: total, seconds, forwardSeconds, errors };

  async function consume(): Promise<void> {
    for await (const item of items) {
      signal?.throwIfAborted();
      const name = shardBase(ds.index.shards[item.shard]!.name);
      if (item.kind === 'batch') {
        // The forward pass blocks this thread (wasm/cpu run synchronously). Yield once first, so
        // finished decodes are collected and new ones handed to sharp's thread pool: they then
        // run during the forward pass instead of after it.
        await new Promise((resolve) => setImmediate(resolve));
        inFlight.push(dispatch(item.slots, name, ds.index.shards[item.shard]!.samples));
        // An engine on its own thread (ONNX Runtime) runs this batch while the one before it is
        // collected and the next one prepared: without a second batch queued, it idles between batches.
        await collectUntil(BATCHES_IN_FLIGHT - 1);
        continue;
      }
      // A shard's records are complete only once its last batches are collected.
      await collectUntil(0);
      if (item.kind === 'error') {
        records = [];
        errors.push({ shard: name, error: item.error, damaged: item.damaged });
        // In the store too: an executor that cannot see this process's events (slurm, external)
        // learns from it that the shard will never get predictions.
        await out.put(errorKey(name), JSON.stringify({ shard: name, error: item.error, damaged: item.damaged }) + '\n', { contentType: 'application/json' });
        emit({ event: 'shard-error', shard: name, number: item.shard, error: item.error, damaged: item.damaged });
        shardStart = performance.now();
      } else {
        const shardRecords = records;
        records = [];
        const stats: ShardStats = { shard: name, samples: item.samples, failed: 0, seconds: (performance.now() - shardStart) / 1000, histogram: new Array(HISTOGRAM_BINS).fill(0) };
        for (const r of shardRecords) {
          if ('error' in r) stats.failed++;
          else stats.histogram[histogramBin(r.maxProb)]!++; // histogramBin clamps to 0..HISTOGRAM_BINS-1
        }
        total += item.samples;
        shardStart = performance.now();
        await writing;
        writing = (async () => {
          // Stats first, predictions last: the prediction object is the commit point (a shard is done
          // when it exists), so a kill between the two puts redoes the shard instead of leaving it
          // committed without its stats.
          await out.put(statsKey(name), JSON.stringify(stats) + '\n', { contentType: 'application/json' });
          await out.put(predictionKey(name), encodeJsonlGz(shardRecords), { contentType: 'application/gzip' });
          emit({ event: 'shard', shard: name, number: item.shard, samples: stats.samples, failed: stats.failed, seconds: stats.seconds });
        })();
        // Observed here so a failed upload is not an unhandled rejection; the next await rethrows it.
        writing.catch(() => undefined);
      }
    }
  }

  /** Normalises a batch into the input buffer and starts its forward pass. */
  function dispatch(slots: Slot[], shard: string, shardSamples: number): PendingBatch {
    const ok = slots.filter((s): s is Extract<Slot, { pixels: Buffer }> => 'pixels' in s);
    let top: Promise<TopK | undefined> = Promise.resolve(undefined);
    if (ok.length > 0) {
      ok.forEach((s, i) => normaliseInto(s.pixels, job.preprocessing, batchPixels, i * pixelsPer));
      // Teachers copy their input before predictTopK returns, so the buffer is free for the next batch.
      const started = performance.now();
      top = teacher.predictTopK(batchPixels.subarray(0, ok.length * pixelsPer), ok.length, job.topK).then((t) => {
        // Batches run one after another on the engine: a batch's busy time starts when it was
        // handed over or when the one before it finished, whichever is later.
        const finished = performance.now();
        forwardSeconds += (finished - Math.max(started, lastFinished)) / 1000;
        lastFinished = finished;
        return t;
      });
      top.catch(() => undefined); // observed when collected, in order
    }
    return { slots, shard, shardSamples, top };
  }

  /** Collects the oldest batches in flight until at most `left` remain. */
  async function collectUntil(left: number): Promise<void> {
    while (inFlight.length > left) await collect(inFlight.shift()!);
  }

  /** Waits for a batch's predictions and appends its records, in batch order. */
  async function collect(batch: PendingBatch): Promise<void> {
    const top = await batch.top;
    let i = 0;
    for (const s of batch.slots) {
      if ('error' in s) {
        records.push({ key: s.key, shard: batch.shard, teacher: teacher.id, backend: teacher.backend, error: s.error });
        continue;
      }
      const k = top!.k;
      const classes = Array.from(top!.classes.subarray(i * k, (i + 1) * k));
      const probs = Array.from(top!.probs.subarray(i * k, (i + 1) * k), round6);
      records.push({ key: s.key, shard: batch.shard, teacher: teacher.id, backend: teacher.backend, classes, probs, maxProb: probs[0]! });
      i++;
    }
    // Progress: a shard's first batch, then at most every PROGRESS_EVERY_MS. One event per batch
    // cost this thread a blocking pipe write each (~0.5 ms, measured): CPU the engine would use.
    const now = performance.now();
    if (records.length === batch.slots.length || now - lastProgress >= PROGRESS_EVERY_MS) {
      lastProgress = now;
      emit({ event: 'batch', shard: batch.shard, done: records.length, samples: batch.shardSamples });
    }
  }
}
