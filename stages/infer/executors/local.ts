/**
 * The local executor: `workers` child processes on this machine (../executor.ts), each the same
 * `selftrain worker infer` command a cluster runs, restarted a bounded number of times when they
 * die. Progress comes from the workers' events (per batch), not from the store.
 */
import { runLocalWorkers } from '../executor.js';
import { ERRORS_DIR } from '../layout.js';
import { samplesIn } from './store-state.js';
import type { InferExecutor } from './types.js';

export interface LocalSettings {
  workers: number;
  maxRestarts: number;
  /** ONNX Runtime threads per worker (absent for tfjs). */
  threads?: number;
  /** Each worker's compute backend, as it reports it when it starts. */
  onBackend?: (backend: string) => void;
}

export function localExecutor(cfg: LocalSettings): InferExecutor {
  return {
    name: 'local',
    async run(ctx) {
      const remaining = ctx.shards.filter((s) => !ctx.done.has(s.name)).length;
      const processes = Math.max(1, Math.min(cfg.workers, remaining));
      // Workers retry shards that failed before: their old error objects no longer apply.
      await ctx.out.deletePrefix(ERRORS_DIR);
      const base = samplesIn(ctx.shards, ctx.done);
      const inShard = new Map<string, number>();
      let processed = 0;
      const update = () => ctx.progress(base + processed + [...inShard.values()].reduce((a, b) => a + b, 0));
      const result = await runLocalWorkers({
        runUri: ctx.runUri,
        stage: ctx.stage,
        workers: processes,
        maxRestarts: cfg.maxRestarts,
        signal: ctx.signal,
        env: ctx.env,
        storeSettings: ctx.storeSettings,
        threads: cfg.threads,
        onEvent: (w, e) => {
          if (e.event === 'start') {
            cfg.onBackend?.(e.backend);
            ctx.log.info(`infer worker ${w}: ${e.claims ? `takes shards as it goes (${e.todo}/${e.shards} to do in all)` : `${e.todo}/${e.shards} shards to do`} on ${e.backend}`);
          } else if (e.event === 'batch') {
            inShard.set(e.shard, e.done);
            update();
          } else if (e.event === 'shard') {
            inShard.delete(e.shard);
            processed += e.samples;
            update();
          } else if (e.event === 'shard-error') {
            ctx.log.error(`infer: shard ${e.shard}: ${e.error}`);
          }
        },
        onStderr: (w, line) => ctx.log.debug(`infer worker ${w}: ${line}`),
      });
      return { tasks: processes, restarts: result.restarts, errors: result.errors };
    },
  };
}
