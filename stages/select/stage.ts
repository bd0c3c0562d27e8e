/**
 * The select stage: Noisy Student filtering + balancing of an infer stage's predictions into the
 * pseudo-labeled set the student trains on (`<id>/pseudo/<shard>.jsonl.gz` + `<id>/summary.json`).
 */
import type { StageContext, StageResult } from '../../pipeline/runner/stage.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import type { SelectConfig } from '../../pipeline/manifest/sections/pseudo.js';
import { openDataset } from '../../pipeline/data/dataset-json.js';
import { decodeJsonlGz } from '../../pipeline/pseudo/jsonl.js';
import { readInferSummary } from '../../pipeline/contracts/infer.js';
import { openObjectRef } from '../../pipeline/data/dataset-ref.js';
import { selectPseudoLabels } from './select.js';
import type { StoreSettings } from '../../pipeline/store/settings.js';

export interface SelectStageOptions {
  id: string;
  /** The infer stage whose predictions are selected from. */
  inferId: string;
  config: SelectConfig;
  /** Manifest seed, used when the select section sets none. */
  seed: number;
  /** Held-back labels (gzip JSON lines ref) when the unlabeled dataset itself has none. */
  groundTruthRef?: string;
}

/** Reads a gzip JSON-lines object by ref: a URI, or a key relative to the store root. */
async function* groundTruthLines(root: ObjectStore, ref: string, settings: StoreSettings): AsyncGenerator<{ key: string; label: number }> {
  const { store, key, close } = openObjectRef(root, ref, settings);
  try {
    for await (const { value } of decodeJsonlGz(await store.getStream(key), ref)) yield value as { key: string; label: number };
  } finally {
    await close();
  }
}

export async function runSelectStage(ctx: StageContext, o: SelectStageOptions): Promise<StageResult> {
  const seed = o.config.seed ?? o.seed;
  const predictions = ctx.run.sub(o.inferId);
  const infer = await readInferSummary(ctx.run, o.inferId);
  const progress = ctx.progress(`select ${o.id}`, infer.shards.length, 'shards');
  const ds = await openDataset(infer.dataset, ctx.storeSettings);
  try {
    // Held-back labels: the unlabeled dataset's own, else the import stage's list (a split).
    const truthKey = ds.index.groundTruth;
    const truth = truthKey
      ? async function* () {
          for await (const { value } of decodeJsonlGz(await ds.store.getStream(truthKey), `${ds.uri}/${truthKey}`)) {
            yield value as { key: string; label: number };
          }
        }
      : o.groundTruthRef
        ? () => groundTruthLines(ctx.root, o.groundTruthRef!, ctx.storeSettings)
        : undefined;
    const summary = await selectPseudoLabels({
      predictions,
      shards: infer.shards,
      numClasses: infer.numClasses,
      out: ctx.run.sub(o.id),
      floor: o.config.threshold,
      perClass: o.config.perClass,
      labels: o.config.labels,
      temperature: o.config.temperature,
      seed,
      signal: ctx.signal,
      onShard: (done) => progress.update(done),
      groundTruth: truth,
    });
    progress.stop();
    ctx.log.info(`select: ${summary.unique} unique samples, ${summary.pseudoLabeled} with repeats (target ${summary.target}/class)`, {
      accuracy: summary.accuracy,
    });
    return {
      summary: { target: summary.target, predicted: summary.predicted, unique: summary.unique, pseudoLabeled: summary.pseudoLabeled, accuracy: summary.accuracy },
    };
  } finally {
    await ds.close();
  }
}
