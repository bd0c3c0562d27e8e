/**
 * Picks and opens the importer for a source: `idx` (MNIST/Fashion-MNIST files), `folder`
 * (root/<class>/<file>) or `webdataset` (*.tar shards, local or in a store). `auto` looks at
 * the source: a URI with a scheme or a directory of .tar files → webdataset; IDX files → idx;
 * otherwise an image-folder tree.
 */
import * as fs from 'node:fs/promises';
import { DataError } from '../../pipeline/data/types.js';
import { openFolderSource } from './folder-source.js';
import { isIdxDir, openIdxSource } from './idx-source.js';
import type { ImportSource } from './source.js';
import { openWebDatasetSource } from './wds-source.js';
import { type StoreSettings } from '../../pipeline/store/settings.js';

export type SourceFormat = 'auto' | 'idx' | 'folder' | 'webdataset';

export interface SourceOptions {
  format?: SourceFormat;
  /** IDX: which files (train-* or t10k-*). */
  split?: 'train' | 'test';
  classes?: string[];
  limitInputPixels?: number;
  concurrency?: number;
  /** How to reach a source given as a store URI (webdataset:s3://…). */
  storeSettings?: StoreSettings;
}

export async function detectFormat(source: string): Promise<Exclude<SourceFormat, 'auto'>> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) && !source.startsWith('file://')) return 'webdataset';
  const dir = source.startsWith('file://') ? new URL(source).pathname : source;
  let names: string[];
  try {
    const st = await fs.stat(dir);
    if (!st.isDirectory()) throw new DataError(`${source}: not a directory`, { uri: source });
    names = await fs.readdir(dir);
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(`${source}: cannot read import source: ${(err as Error).message}`, { uri: source });
  }
  if (await isIdxDir(dir)) return 'idx';
  if (names.some((n) => n.endsWith('.tar'))) return 'webdataset';
  return 'folder';
}

export async function openImportSource(source: string, o: SourceOptions = {}): Promise<ImportSource> {
  const format = !o.format || o.format === 'auto' ? await detectFormat(source) : o.format;
  const local = source.startsWith('file://') ? new URL(source).pathname : source;
  switch (format) {
    case 'idx':
      return openIdxSource(local, { split: o.split ?? 'train', classes: o.classes });
    case 'folder':
      return openFolderSource(local, { limitInputPixels: o.limitInputPixels, concurrency: o.concurrency });
    case 'webdataset':
      return openWebDatasetSource(source, { classes: o.classes, limitInputPixels: o.limitInputPixels, concurrency: o.concurrency, storeSettings: o.storeSettings });
  }
}
