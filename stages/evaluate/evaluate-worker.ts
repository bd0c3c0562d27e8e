/**
 * The evaluate task of a pool worker (pipeline/parallel/worker-main.ts loads it): predicts whole
 * eval shards with a model it loads itself (kept while the next request names the same one).
 */
import { openDataset, type OpenDataset } from '../../pipeline/data/dataset-json.js';
import type { WorkerContext } from '../../pipeline/parallel/protocol.js';
import { loadTeacher, type ExpectedArch } from '../../pipeline/pseudo/load-teacher.js';
import type { Teacher, TeacherPreprocessing } from '../../pipeline/pseudo/teacher.js';
import { openStore } from '../../pipeline/store/open.js';
import type { StoreSettings } from '../../pipeline/store/settings.js';
import { predictShard, type ShardPredictions } from './shard-predictions.js';

export interface EvaluatePayload {
  /** URI of the eval dataset. */
  eval: string;
  batchSize: number;
  concurrency: number;
  storeSettings: StoreSettings;
}

export interface ShardRequest {
  /** URI of the model directory, its id (what was read when the stage started) and how to run it. */
  model: { uri: string; id: string; arch: ExpectedArch; preprocessing: TeacherPreprocessing };
  shard: number;
  k: number;
}

export async function serve(ctx: WorkerContext<EvaluatePayload>): Promise<(request: unknown) => Promise<unknown>> {
  const ds: OpenDataset = await openDataset(ctx.payload.eval, ctx.payload.storeSettings);
  let loaded: { key: string; net: Teacher } | undefined;
  return async (raw): Promise<ShardPredictions | null> => {
    if (raw === 'close') {
      loaded?.net.dispose();
      await ds.close();
      return null;
    }
    const r = raw as ShardRequest;
    const key = `${r.model.uri}#${r.model.id}`;
    if (loaded?.key !== key) {
      loaded?.net.dispose();
      loaded = undefined;
      const store = openStore(r.model.uri, ctx.payload.storeSettings);
      try {
        const net = await loadTeacher(store, r.model.arch, r.model.preprocessing);
        if (net.id !== r.model.id) {
          net.dispose();
          throw new Error(`model ${r.model.uri} changed while the evaluate stage ran (now ${net.id}, expected ${r.model.id}): re-run the stage`);
        }
        loaded = { key, net };
      } finally {
        await store.close();
      }
    }
    return predictShard(loaded.net, ds, r.shard, { batchSize: ctx.payload.batchSize, concurrency: ctx.payload.concurrency, k: r.k, preprocessing: r.model.preprocessing });
  };
}
