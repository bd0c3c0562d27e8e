/**
 * `dataset.json`: the zod schema (validation with field paths) and loading a dataset's index
 * from a store or URI. Written last by the importer, so its presence means every shard exists.
 */
import { z } from 'zod';
import { openStore } from '../store/open.js';
import { NotFoundError, type ObjectStore } from '../store/types.js';
import { DataError, type DatasetIndex } from './types.js';
import { formatZodIssues } from '../log/errors.js';
import { trimUri } from '../store/uri.js';
import type { StoreSettings } from '../store/settings.js';

export const DATASET_JSON = 'dataset.json';

export const shardName = (n: number) => `shard-${String(n).padStart(6, '0')}.tar`;
export const shardIndexName = (n: number) => `shard-${String(n).padStart(6, '0')}.idx.json`;

const shardEntrySchema = z.strictObject({
  name: z.string().regex(/^[^/]+\.tar$/, 'a .tar object name without "/"'),
  samples: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'hex sha256'),
  index: z.string(),
});

export const datasetIndexSchema = z.strictObject({
  format: z.literal('selftrain-webdataset'),
  version: z.literal(1),
  classes: z.array(z.string()),
  labeled: z.boolean(),
  samples: z.number().int().nonnegative(),
  classCounts: z.array(z.number().int().nonnegative()).optional(),
  bytes: z.number().int().nonnegative(),
  shards: z.array(shardEntrySchema),
  groundTruth: z.string().optional(),
  source: z.record(z.string(), z.unknown()).optional(),
  plan: z.string().optional(),
  skipped: z.array(z.strictObject({ key: z.string(), where: z.string(), reason: z.string(), detail: z.string().optional() })).optional(),
});

/** A dataset opened for reading: its store (rooted at the dataset prefix) and its index. */
export interface OpenDataset {
  store: ObjectStore;
  index: DatasetIndex;
  /** URI for messages. */
  uri: string;
  /** Closes the store when this call opened it from a URI. */
  close(): Promise<void>;
}

export function parseDatasetJson(text: string, uri: string): DatasetIndex {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DataError(`${uri}/${DATASET_JSON}: not valid JSON: ${(err as Error).message}`, { uri });
  }
  const r = datasetIndexSchema.safeParse(raw);
  if (!r.success) {
    const issues = formatZodIssues(r.error);
    throw new DataError(`${uri}/${DATASET_JSON}: ${issues}`, { uri });
  }
  const idx = r.data as DatasetIndex;
  const sum = idx.shards.reduce((a, s) => a + s.samples, 0);
  if (sum !== idx.samples) throw new DataError(`${uri}/${DATASET_JSON}: samples is ${idx.samples} but the shards hold ${sum}`, { uri });
  return idx;
}

/** Opens a dataset from an ObjectStore rooted at its prefix, or from a URI (opened with `settings`). */
export async function openDataset(source: ObjectStore | string, settings: StoreSettings = {}): Promise<OpenDataset> {
  const store = typeof source === 'string' ? openStore(source, settings) : source;
  const owned = typeof source === 'string';
  const uri = trimUri(store.uri);
  try {
    let text: string;
    try {
      text = (await store.get(DATASET_JSON)).toString('utf8');
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new DataError(`${uri}: no ${DATASET_JSON} (not a dataset, or its import has not finished)`, { uri }, { cause: err });
      }
      throw err;
    }
    const index = parseDatasetJson(text, uri);
    return { store, index, uri, close: async () => (owned ? store.close() : undefined) };
  } catch (err) {
    if (owned) await store.close();
    throw err;
  }
}
