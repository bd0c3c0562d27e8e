/**
 * Which runs use a dataset, and removing one that none uses (`selftrain dataset rm`). A run names
 * its datasets in its import stage's `<run>/import/datasets.json` (refs relative to the run's store
 * root, or URIs). Runs are looked for under the store root the dataset belongs to: the prefix above
 * the dataset's `datasets/` segment (where imports go by default), else the dataset's parent; a
 * run elsewhere can only be found by naming its store (`--runs`).
 */
import { openStore } from '../store/open.js';
import { listInPages, type ObjectStore } from '../store/types.js';
import { listDatasets } from './catalog.js';
import { DATASET_JSON } from './dataset-json.js';
import { DataError } from './types.js';

const IMPORT_LIST = '/import/datasets.json';
const REF_FIELDS = ['labeled', 'unlabeled', 'eval', 'groundTruth'] as const;

export interface DatasetReference {
  /** URI of the run prefix. */
  run: string;
  field: (typeof REF_FIELDS)[number];
  ref: string;
}

const trim = (uri: string) => uri.replace(/\/+$/, '');

/** The store root whose runs may use the dataset at `uri`. */
export function runsRootOf(uri: string): string {
  const u = trim(uri);
  const i = u.lastIndexOf('/datasets/');
  if (i > u.indexOf('://') + 2) return u.slice(0, i);
  return u.slice(0, u.lastIndexOf('/'));
}

/** References, from every run under `root`, to the dataset at `uri` or to anything inside it. */
export async function findReferences(root: ObjectStore, uri: string): Promise<DatasetReference[]> {
  const target = trim(uri);
  const base = trim(root.uri);
  const out: DatasetReference[] = [];
  for await (const page of listInPages(root, '')) {
    for (const o of page) {
      if (!o.key.endsWith(IMPORT_LIST)) continue;
      const runPrefix = o.key.slice(0, -IMPORT_LIST.length);
      // Relative refs are relative to the store root the run was started with: the run's parent.
      const storeRoot = runPrefix.includes('/') ? `${base}/${runPrefix.slice(0, runPrefix.lastIndexOf('/'))}` : base;
      let doc: Record<string, unknown>;
      try {
        doc = JSON.parse((await root.get(o.key)).toString('utf8')) as Record<string, unknown>;
      } catch {
        continue; // unreadable: not a list this run could use either
      }
      for (const field of REF_FIELDS) {
        const ref = doc[field];
        if (typeof ref !== 'string') continue;
        const refUri = trim(ref.includes('://') ? ref : `${storeRoot}/${ref}`);
        if (refUri === target || refUri.startsWith(`${target}/`)) out.push({ run: `${base}/${runPrefix}`, field, ref });
      }
    }
  }
  return out;
}

export interface RemoveOptions {
  force?: boolean;
  /** Where to look for runs (default: runsRootOf(uri)). */
  runs?: string;
}

export interface RemoveResult {
  uri: string;
  datasets: number;
  objects: number;
  references: DatasetReference[];
}

export async function removeDataset(uri: string, o: RemoveOptions = {}): Promise<RemoveResult> {
  const store = openStore(uri);
  const runs = openStore(o.runs ?? runsRootOf(uri));
  try {
    const where = trim(store.uri);
    const datasets = await listDatasets(store);
    if (datasets.length === 0) throw new DataError(`${where}: no dataset here (no ${DATASET_JSON} at or below this prefix); nothing removed`, { uri: where });
    const references = await findReferences(runs, where);
    if (references.length > 0 && !o.force) {
      const lines = references.map((r) => `  ${r.run} (${r.field}: ${r.ref})`).join('\n');
      throw new DataError(`${where} is used by ${new Set(references.map((r) => r.run)).size} run(s) in ${trim(runs.uri)}:\n${lines}\nnothing removed; pass --force to remove it anyway`, { uri: where });
    }
    // dataset.json first: from then on readers are told "not a dataset", never handed missing shards.
    for (const d of datasets) await store.delete(d.name ? `${d.name}/${DATASET_JSON}` : DATASET_JSON);
    let objects = datasets.length;
    for await (const page of listInPages(store, '')) objects += page.length;
    await store.deletePrefix('');
    return { uri: where, datasets: datasets.length, objects, references };
  } finally {
    await store.close();
    await runs.close();
  }
}
