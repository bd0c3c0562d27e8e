/**
 * The datasets under a store prefix (`selftrain dataset ls <store>/datasets/`): every prefix that
 * holds a `dataset.json`, at any depth (a split import has `labeled/` and `unlabeled/`), with what
 * a person with a bucket wants to see: samples, classes or "unlabeled", bytes, when it was made
 * (the time its dataset.json, written last, was stored). The listing is read one page at a time.
 */
import { listInPages, type ObjectStore } from '../store/types.js';
import { DATASET_JSON, parseDatasetJson } from './dataset-json.js';

export interface DatasetListing {
  /** Prefix relative to the listed one ('' when the listed prefix is itself a dataset). */
  name: string;
  uri: string;
  samples?: number;
  /** Number of classes; 0 for an unlabeled set without ground truth. */
  classes?: number;
  labeled?: boolean;
  bytes?: number;
  shards?: number;
  created: Date;
  /** Why the dataset.json could not be read. */
  error?: string;
}

export async function listDatasets(store: ObjectStore): Promise<DatasetListing[]> {
  const found: { name: string; mtimeMs: number }[] = [];
  for await (const page of listInPages(store, '')) {
    for (const o of page) {
      if (o.key === DATASET_JSON) found.push({ name: '', mtimeMs: o.mtimeMs });
      else if (o.key.endsWith(`/${DATASET_JSON}`)) found.push({ name: o.key.slice(0, -DATASET_JSON.length - 1), mtimeMs: o.mtimeMs });
    }
  }
  const base = store.uri.replace(/\/+$/, '');
  const out: DatasetListing[] = [];
  for (const f of found.sort((a, b) => a.name.localeCompare(b.name))) {
    const uri = f.name ? `${base}/${f.name}` : base;
    const entry: DatasetListing = { name: f.name, uri, created: new Date(f.mtimeMs) };
    try {
      const idx = parseDatasetJson((await store.get(f.name ? `${f.name}/${DATASET_JSON}` : DATASET_JSON)).toString('utf8'), uri);
      Object.assign(entry, { samples: idx.samples, classes: idx.classes.length, labeled: idx.labeled, bytes: idx.bytes, shards: idx.shards.length });
    } catch (err) {
      entry.error = (err as Error).message;
    }
    out.push(entry);
  }
  return out;
}
