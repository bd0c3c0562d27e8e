/**
 * How the evaluate stage runs eval shards through a model: in its own thread (one worker), or
 * spread over a pool of workers (evaluate.workers; worker threads on wasm/cpu, processes on
 * tfjs-node-gpu), each loading the model once and taking the next shard as soon as it is free.
 * With ONNX Runtime one session in this process uses every core through its own thread pool, so
 * there is no pool of workers. Results come back in shard order either way.
 */
import { availableParallelism } from 'node:os';
import type { OpenDataset } from '../../pipeline/data/dataset-json.js';
import type { InferEngine } from '../../pipeline/inference/engine.js';
import { ensureOnnx } from '../../pipeline/model/onnx-file.js';
import { WorkerPool } from '../../pipeline/parallel/pool.js';
import type { WorkerPlan } from '../../pipeline/parallel/workers.js';
import { loadTeacher } from '../../pipeline/pseudo/load-teacher.js';
import { loadOnnxTeacher } from '../../pipeline/pseudo/onnx-teacher.js';
import type { Teacher } from '../../pipeline/pseudo/teacher.js';
import type { Logger } from '../../pipeline/runner/stage.js';
import { openStore } from '../../pipeline/store/open.js';
import type { StoreSettings } from '../../pipeline/store/settings.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import type { EvaluatePayload, ShardRequest } from './evaluate-worker.js';
import { predictShard, type ShardPredictions } from './shard-predictions.js';

export type ModelRef = ShardRequest['model'];

export interface ShardPredictor {
  readonly workers: number;
  /** Every listed shard through the model; results in `shards` order. */
  predict(model: ModelRef, shards: number[], k: number, onShard?: (r: ShardPredictions) => void): Promise<ShardPredictions[]>;
  close(): Promise<void>;
}

export interface PredictorOptions {
  eval: OpenDataset;
  batchSize: number;
  concurrency: number;
  plan: WorkerPlan;
  /** Inference engine (resolved by the stage from inferBackend); workers are used with tfjs only. */
  engine: InferEngine;
  backend: string;
  /** How workers reach the run's stores (the eval set, the models). */
  storeSettings: StoreSettings;
  log: Logger;
  signal?: AbortSignal;
}

// Same extension as this file: .ts under tsx, .js from dist.
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const evaluateWorker = new URL(`./evaluate-worker${ext}`, import.meta.url).href;

export async function startPredictor(o: PredictorOptions): Promise<ShardPredictor> {
  const workers = o.engine === 'onnx' ? 1 : Math.min(o.plan.workers, o.eval.index.shards.length);
  if (workers <= 1) return inProcess(o);
  const payload: EvaluatePayload = { eval: o.eval.uri, batchSize: o.batchSize, concurrency: o.concurrency, storeSettings: o.storeSettings };
  const pool = await WorkerPool.start({
    label: 'evaluate worker',
    size: workers,
    transport: o.plan.transport,
    module: evaluateWorker,
    backend: o.backend,
    payload: () => payload,
    env: o.plan.env,
    onLog: (rank, level, message) => o.log[level](`evaluate worker ${rank + 1}/${workers}: ${message}`),
  });
  return {
    workers,
    async predict(model, shards, k, onShard) {
      const results = new Array<ShardPredictions>(shards.length);
      let next = 0;
      // Each worker takes the next shard when it is done with one (shards differ in size).
      await Promise.all(
        Array.from({ length: workers }, async (_, rank) => {
          while (next < shards.length) {
            o.signal?.throwIfAborted();
            const i = next++;
            const request: ShardRequest = { model, shard: shards[i]!, k };
            results[i] = await pool.call<ShardPredictions>(rank, request);
            onShard?.(results[i]!);
            // Stop at the first shard boundary after an abort, as the in-thread path stops at a batch.
            o.signal?.throwIfAborted();
          }
        }),
      );
      return results;
    },
    async close() {
      if (!pool.failed) await pool.all(() => 'close').catch(() => undefined);
      await pool.close();
    },
  };
}

function inProcess(o: PredictorOptions): ShardPredictor {
  return {
    workers: 1,
    async predict(model, shards, k, onShard) {
      const store = openStore(model.uri, o.storeSettings);
      const net = await load(o.engine, store, model).finally(() => store.close());
      try {
        const results: ShardPredictions[] = [];
        for (const shard of shards) {
          const r = await predictShard(net, o.eval, shard, { batchSize: o.batchSize, concurrency: o.concurrency, k, preprocessing: model.preprocessing, signal: o.signal });
          results.push(r);
          onShard?.(r);
          o.signal?.throwIfAborted();
        }
        return results;
      } finally {
        net.dispose();
      }
    },
    async close() {},
  };
}

async function load(engine: InferEngine, store: ObjectStore, model: ModelRef): Promise<Teacher> {
  if (engine === 'tfjs') return loadTeacher(store, model.arch, model.preprocessing);
  await ensureOnnx(store);
  return loadOnnxTeacher(store, model.arch, model.preprocessing, { threads: availableParallelism() });
}
