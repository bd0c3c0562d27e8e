/**
 * Images under a prefix, in any layout and carrying no labels: a flat local directory, a tree of
 * any shape, or a raw object-store prefix (`s3://bucket/raw/`, any depth, 100k+ objects). Folder
 * names mean nothing here: the set imports as unlabeled, whatever its sub-directories are called.
 *
 * The prefix is listed one page at a time (S3: ListObjectsV2 pages of up to 1000 keys), keeping
 * only each key and a running hash of the listing; images are fetched with bounded concurrency
 * (p-queue) one shard group at a time, so memory holds the key list and one group of images, never
 * the set. Sample keys are positions in the sorted listing (`img-00000042`); each sample's `.json`
 * keeps where it came from: `{"path": <relative path>}` for a local directory, `{"key": <object
 * key in the bucket>}` for an object store.
 *
 * Candidates are files with an image extension, or none (raw buckets hold hash-named objects);
 * others (captions, parquet, _SUCCESS, ...) are never fetched, and are recorded as skipped. Hidden
 * files and directories (a segment starting with ".") are ignored, as the folder importer does.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULT_LIMIT_INPUT_PIXELS } from '../../pipeline/data/preprocess.js';
import { DataError } from '../../pipeline/data/types.js';
import { parseStoreUri, openStore, type OpenStoreOptions } from '../../pipeline/store/open.js';
import { joinPrefix } from '../../pipeline/store/keys.js';
import { listInPages, type ObjectStore } from '../../pipeline/store/types.js';
import { loadImageFile } from './folder-source.js';
import { loadQueued, type ImportSource, type SourceEntry } from './source.js';

/** Extensions sharp decodes (any other is not fetched). Lower case, without the dot. */
const IMAGE_NAME_EXTENSIONS = new Set(['png', 'jpg', 'jpeg', 'jpe', 'jfif', 'webp', 'gif', 'tif', 'tiff', 'avif', 'heic', 'heif', 'jp2', 'jxl', 'svg']);

export interface TreeOptions {
  concurrency?: number;
  limitInputPixels?: number;
  /** Store options for an s3:// prefix (listPageSize lowers the page size, e.g. to test pagination). */
  store?: OpenStoreOptions;
  /** Called after each listing page with the objects listed so far. */
  onListPage?: (pages: number, objects: number) => void;
}

/** A local path or a URI → the store URI of that prefix. */
export function prefixUri(source: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) return source;
  return pathToFileURL(path.resolve(source)).href;
}

/** Why a listed key is not a candidate image, or undefined when it is one. */
export function notAnImageName(key: string): string | undefined {
  const base = key.slice(key.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  if (dot <= 0) return undefined; // no extension: let the decoder decide
  const ext = base.slice(dot + 1).toLowerCase();
  return IMAGE_NAME_EXTENSIONS.has(ext) ? undefined : `not an image file name (.${ext}): not fetched`;
}

export async function openTreeSource(source: string, o: TreeOptions = {}): Promise<ImportSource> {
  const uri = prefixUri(source);
  const loc = parseStoreUri(uri);
  const store: ObjectStore = loc.kind === 's3' ? openStore(uri, o.store) : openStore(uri);
  const where = store.uri.replace(/\/$/, '');
  try {
    const keys: string[] = [];
    const problems: ImportSource['problems'] = [];
    const listing = createHash('sha256');
    let bytes = 0;
    let pages = 0;
    let objects = 0;
    for await (const page of listInPages(store, '')) {
      pages++;
      for (const obj of page) {
        objects++;
        if (obj.key.split('/').some((seg) => seg.startsWith('.'))) continue; // .DS_Store, .git/, ...
        listing.update(`${obj.key}\t${obj.size}\n`);
        const why = notAnImageName(obj.key);
        if (why) {
          problems.push({ key: obj.key, where: obj.key, reason: why });
          continue;
        }
        keys.push(obj.key);
        bytes += obj.size;
      }
      o.onListPage?.(pages, objects);
    }
    if (keys.length === 0) {
      throw new DataError(`${where}: no image files under this prefix (${objects} object(s) listed${problems.length ? `, e.g. ${problems[0]!.key}` : ''})`, { uri: where });
    }
    const entries: SourceEntry[] = keys.map((_, ref) => ({ key: `img-${String(ref).padStart(8, '0')}`, ref }));
    const limit = o.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
    // Object stores answer each GET after a round trip: more of them in flight hides the latency.
    const concurrency = o.concurrency ?? (loc.kind === 's3' ? 16 : 4);
    const origin = (key: string): Record<string, string> => (loc.kind === 's3' ? { key: joinPrefix(loc.prefix, key) } : { path: key });
    return {
      kind: 'tree',
      classes: [],
      entries,
      identity: { kind: 'tree', uri: where, files: keys.length, bytes, listing: listing.digest('hex'), limitInputPixels: limit },
      bytesPerEntry: Math.max(1024, Math.ceil(bytes / keys.length) * 2),
      problems,
      load: (wanted) =>
        loadQueued(wanted, concurrency, async (entry) => {
          const key = keys[entry.ref]!;
          let data: Buffer;
          try {
            data = await store.get(key);
          } catch (err) {
            return { entry, error: `cannot read: ${(err as Error).message}`, where: key };
          }
          return { entry, json: origin(key), ...(await loadImageFile(data, key, limit)) };
        }),
      close: () => store.close(),
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}
