/**
 * Held-back labels of an unlabeled split (`ground-truth.jsonl.gz`, one `{key, shard?, label}` per
 * line, written by the importer). Only the all-labels baseline reads them for training (and the
 * evaluate stage for pseudo-label precision): the teacher and the student never do, or the
 * semi-supervised comparison would be meaningless.
 */
import { decodeJsonlGz } from '../pseudo/jsonl.js';
import { DataError } from '../data/types.js';
import type { ObjectStore } from '../store/types.js';
import { objectUri } from '../store/uri.js';

export interface GroundTruth {
  /** sample key → class index */
  labels: Map<string, number>;
  /** Where the labels came from (for error messages and the metrics record). */
  uri: string;
}

/** Reads `key` of `store` (a ground-truth JSONL gzip); every line checked, errors name line and URI. */
export async function readGroundTruth(store: ObjectStore, key: string, numClasses: number): Promise<GroundTruth> {
  const uri = objectUri(store, key);
  let stream;
  try {
    stream = await store.getStream(key);
  } catch (err) {
    throw new DataError(`cannot read the held-back labels ${uri}: ${(err as Error).message}`, { uri }, { cause: err });
  }
  const labels = new Map<string, number>();
  for await (const { line, value } of decodeJsonlGz(stream, uri)) {
    const v = value as { key?: unknown; label?: unknown } | null;
    if (typeof v?.key !== 'string' || !Number.isInteger(v.label) || (v.label as number) < 0 || (v.label as number) >= numClasses) {
      throw new DataError(`${uri}: line ${line} is not {key, label} with label in 0..${numClasses - 1}: ${JSON.stringify(value).slice(0, 120)}`, { uri });
    }
    if (labels.has(v.key)) throw new DataError(`${uri}: line ${line}: key "${v.key}" appears twice`, { uri, key: v.key });
    labels.set(v.key, v.label as number);
  }
  return { labels, uri };
}
