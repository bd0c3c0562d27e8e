/**
 * Picks and opens the importer for a source: `idx` (MNIST/Fashion-MNIST files), `folder`
 * (root/<class>/<file>, labeled by folder), `webdataset` (*.tar shards, local or in a store),
 * `tree` (images under a directory or object prefix in any layout, unlabeled) or `list` (a text
 * file naming images, unlabeled). `auto` looks at the source: a local file → list; a directory with
 * IDX files → idx; with .tar files → webdataset; with sub-directories → folder; with files only →
 * tree (a flat pool). An object prefix whose first listing page holds .tar files → webdataset, else
 * tree.
 */
import * as fs from 'node:fs/promises';
import { DataError } from '../../pipeline/data/types.js';
import { openStore } from '../../pipeline/store/open.js';
import { listInPages } from '../../pipeline/store/types.js';
import { openFolderSource } from './folder-source.js';
import { isIdxDir, openIdxSource } from './idx-source.js';
import { openListSource } from './list-source.js';
import type { ImportSource } from './source.js';
import { openTreeSource, type TreeOptions } from './tree-source.js';
import { openWebDatasetSource } from './wds-source.js';
import type { StoreSettings } from '../../pipeline/store/settings.js';

export type SourceFormat = 'auto' | 'idx' | 'folder' | 'webdataset' | 'tree' | 'list';

/** Formats whose samples carry no labels. */
export const UNLABELED_FORMATS: readonly SourceFormat[] = ['tree', 'list'];

export interface SourceOptions {
  format?: SourceFormat;
  /** IDX: which files (train-* or t10k-*). */
  split?: 'train' | 'test';
  classes?: string[];
  limitInputPixels?: number;
  concurrency?: number;
  /** How to reach a source given as a store URI (webdataset:s3://…, images:s3://…, list:s3://…). */
  storeSettings?: StoreSettings;
  /** Object-store options of a tree source (e.g. its listing page size). */
  tree?: TreeOptions;
}

/** The first listing page of a store prefix: enough to tell tars from raw images. */
async function firstPage(uri: string, settings: StoreSettings = {}): Promise<string[]> {
  const store = openStore(uri, settings);
  try {
    for await (const page of listInPages(store, '')) return page.map((o) => o.key);
    return [];
  } finally {
    await store.close();
  }
}

export async function detectFormat(source: string, settings: StoreSettings = {}): Promise<Exclude<SourceFormat, 'auto'>> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) && !source.startsWith('file://')) {
    const keys = await firstPage(source, settings);
    return keys.some((k) => k.endsWith('.tar')) ? 'webdataset' : 'tree';
  }
  const dir = source.startsWith('file://') ? new URL(source).pathname : source;
  let entries;
  try {
    const st = await fs.stat(dir);
    if (st.isFile()) return 'list';
    if (!st.isDirectory()) throw new DataError(`${source}: not a directory or a list file`, { uri: source });
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(`${source}: cannot read import source: ${(err as Error).message}`, { uri: source });
  }
  if (await isIdxDir(dir)) return 'idx';
  if (entries.some((d) => d.name.endsWith('.tar'))) return 'webdataset';
  return entries.some((d) => d.isDirectory() && !d.name.startsWith('.')) ? 'folder' : 'tree';
}

export async function openImportSource(source: string, o: SourceOptions = {}): Promise<ImportSource> {
  const format = !o.format || o.format === 'auto' ? await detectFormat(source, o.storeSettings) : o.format;
  const local = source.startsWith('file://') ? new URL(source).pathname : source;
  switch (format) {
    case 'idx':
      return openIdxSource(local, { split: o.split ?? 'train', classes: o.classes });
    case 'folder':
      return openFolderSource(local, { limitInputPixels: o.limitInputPixels, concurrency: o.concurrency });
    case 'webdataset':
      return openWebDatasetSource(source, { classes: o.classes, limitInputPixels: o.limitInputPixels, concurrency: o.concurrency, storeSettings: o.storeSettings });
    case 'tree':
      return openTreeSource(source, { ...o.tree, store: { ...o.storeSettings, ...o.tree?.store }, limitInputPixels: o.limitInputPixels, concurrency: o.concurrency });
    case 'list':
      return openListSource(source, { limitInputPixels: o.limitInputPixels, concurrency: o.concurrency, storeSettings: o.storeSettings });
  }
}
