/**
 * A text file listing images, one per line: a local path (absolute, or relative to the list's own
 * directory), a `file://` URI, or an object URI (`s3://bucket/key`); blank lines and lines starting
 * with `#` are ignored. The list itself may be a local file or an object (`s3://bucket/list.txt`,
 * whose relative lines are keys beside it). It carries no labels: it imports as an unlabeled set.
 * Sample keys are line positions (`img-00000042`); each sample's `.json` keeps the line as written
 * (`{"path": ...}` for a path, `{"uri": ...}` for a URI). One store is opened per bucket (or one
 * for local files) and images are fetched with bounded concurrency.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { DEFAULT_LIMIT_INPUT_PIXELS } from '../../pipeline/data/preprocess.js';
import { DataError } from '../../pipeline/data/types.js';
import { openStore, parseStoreUri } from '../../pipeline/store/open.js';
import type { StoreSettings } from '../../pipeline/store/settings.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { loadImageFile } from './folder-source.js';
import { loadQueued, type ImportSource, type SourceEntry } from './source.js';

const URI_RE = /^[a-z][a-z0-9+.-]*:\/\//i;

export interface ListOptions {
  concurrency?: number;
  limitInputPixels?: number;
  /** How to reach object URIs (the list itself, and the images it names). */
  storeSettings?: StoreSettings;
}

interface Target {
  /** Store root URI (`file:///` or `s3://bucket`). */
  root: string;
  /** Key in that store. */
  key: string;
  /** The line as written, for the sample's .json and messages. */
  line: string;
}

/** Reads the list from a local path or a URI; returns its text and the base relative lines resolve against. */
async function readList(source: string, settings: StoreSettings): Promise<{ text: string; base: { local: string } | { uri: string } }> {
  if (URI_RE.test(source) && !source.startsWith('file://')) {
    const slash = source.lastIndexOf('/');
    const dir = openStore(source.slice(0, slash), settings);
    try {
      return { text: (await dir.get(source.slice(slash + 1))).toString('utf8'), base: { uri: source.slice(0, slash) } };
    } catch (err) {
      throw new DataError(`${source}: cannot read the list: ${(err as Error).message}`, { uri: source });
    } finally {
      await dir.close();
    }
  }
  const file = source.startsWith('file://') ? new URL(source).pathname : source;
  try {
    return { text: await fs.readFile(file, 'utf8'), base: { local: path.dirname(path.resolve(file)) } };
  } catch (err) {
    throw new DataError(`${source}: cannot read the list: ${(err as Error).message}`, { uri: source });
  }
}

/** One line → where the image is; throws a one-line reason when the line cannot name an image. */
function resolveLine(line: string, base: { local: string } | { uri: string }): Target {
  let uri: string;
  if (URI_RE.test(line)) uri = line;
  else if ('local' in base) uri = `file://${path.resolve(base.local, line)}`;
  else uri = `${base.uri.replace(/\/+$/, '')}/${line.replace(/^\/+/, '')}`;
  const loc = parseStoreUri(uri);
  if (loc.kind === 'file') {
    const key = loc.path.replace(/^\/+/, '');
    if (!key) throw new Error('names a directory, not a file');
    return { root: 'file:///', key, line };
  }
  if (!loc.prefix) throw new Error('names a bucket, not an object');
  return { root: `s3://${loc.bucket}`, key: loc.prefix, line };
}

export async function openListSource(source: string, o: ListOptions = {}): Promise<ImportSource> {
  const settings = o.storeSettings ?? {};
  const { text, base } = await readList(source, settings);
  const targets: Target[] = [];
  const problems: ImportSource['problems'] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    try {
      targets.push(resolveLine(line, base));
    } catch (err) {
      problems.push({ key: `line ${i + 1}`, where: `${source}:${i + 1}`, reason: `${source}:${i + 1}: "${line}": ${(err as Error).message}` });
    }
  });
  if (targets.length === 0) throw new DataError(`${source}: the list names no images (${problems.length} unusable line(s))`, { uri: source });
  const stores = new Map<string, ObjectStore>();
  const storeOf = (root: string): ObjectStore => {
    let s = stores.get(root);
    if (!s) {
      s = openStore(root, settings);
      stores.set(root, s);
    }
    return s;
  };
  // Local files: their sizes size the memory budget. Objects: not HEADed (100k round trips), a guess.
  let localBytes = 0;
  let local = 0;
  for (const t of targets) {
    if (t.root !== 'file:///') continue;
    local++;
    localBytes += (await fs.stat(`/${t.key}`).catch(() => ({ size: 0 }))).size;
  }
  const perEntry = local > 0 ? Math.ceil(localBytes / local) * 2 : 512 * 1024;
  const limit = o.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  const concurrency = o.concurrency ?? (local === targets.length ? 4 : 16);
  const entries: SourceEntry[] = targets.map((_, ref) => ({ key: `img-${String(ref).padStart(8, '0')}`, ref }));
  return {
    kind: 'list',
    classes: [],
    entries,
    identity: { kind: 'list', list: source, lines: targets.length, sha256: createHash('sha256').update(text).digest('hex'), limitInputPixels: limit },
    bytesPerEntry: Math.max(1024, perEntry),
    problems,
    load: (wanted) =>
      loadQueued(wanted, concurrency, async (entry) => {
        const t = targets[entry.ref]!;
        let data: Buffer;
        try {
          data = await storeOf(t.root).get(t.key);
        } catch (err) {
          return { entry, error: `cannot read: ${(err as Error).message}`, where: t.line };
        }
        return { entry, json: URI_RE.test(t.line) ? { uri: t.line } : { path: t.line }, ...(await loadImageFile(data, t.line, limit)) };
      }),
    close: async () => {
      await Promise.all([...stores.values()].map((s) => s.close()));
    },
  };
}
