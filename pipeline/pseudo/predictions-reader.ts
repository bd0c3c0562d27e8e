/**
 * Streams the records of prediction objects, validated, one at a time: select's memory must not
 * grow with the unlabeled set, so nothing here collects a shard's records.
 */
import type { ObjectStore } from '../store/types.js';
import { decodeJsonlGz } from './jsonl.js';
import { predictionRecord, type PredictionRecord } from './records.js';
import { PREDICTIONS_DIR, PREDICTION_SUFFIX, predictionKey } from '../contracts/infer.js';
import { formatZodIssues } from '../log/errors.js';
import { objectUri } from '../store/uri.js';

export { PREDICTIONS_DIR, PREDICTION_SUFFIX, predictionKey } from '../contracts/infer.js';

/** Shard names (without `.tar`) that have a committed prediction object, sorted. */
export async function listPredictedShards(store: ObjectStore): Promise<string[]> {
  const objects = await store.list(PREDICTIONS_DIR);
  return objects
    .map((o) => o.key.slice(PREDICTIONS_DIR.length))
    .filter((k) => k.endsWith(PREDICTION_SUFFIX) && !k.includes('/'))
    .map((k) => k.slice(0, -PREDICTION_SUFFIX.length));
}

export async function* readPredictions(store: ObjectStore, shard: string, numClasses: number): AsyncGenerator<PredictionRecord> {
  const key = predictionKey(shard);
  const where = objectUri(store, key);
  for await (const { line, value } of decodeJsonlGz(await store.getStream(key), where)) {
    const parsed = predictionRecord.safeParse(value);
    if (!parsed.success) {
      throw new Error(`${where}: line ${line} is not a prediction record: ${formatZodIssues(parsed.error, '(record)')}`);
    }
    const r = parsed.data;
    if ('classes' in r) {
      if (r.classes.length !== r.probs.length) throw new Error(`${where}: line ${line}: classes and probs differ in length`);
      const bad = r.classes.find((c) => c >= numClasses);
      if (bad !== undefined) throw new Error(`${where}: line ${line}: class ${bad} out of range (dataset has ${numClasses} classes)`);
    }
    yield r;
  }
}
