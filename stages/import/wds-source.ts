/**
 * An existing WebDataset: `*.tar` files in a local directory or under a store prefix (e.g. made
 * by img2dataset or a webdataset writer). Indexing streams every tar once, pairing members by
 * key and recording each sample's image offset; then load() reads single images with ranged
 * GETs, so the source is never held in memory. Class names come from, in order: --classes, a
 * `dataset.json` beside the tars (our own format), or "0".."K-1" for the largest index seen.
 * Bad samples — no image member, no `.cls` while others have one, class index out of range,
 * an undecodable/empty/oversized image, the rest of a truncated tar — are recorded naming the
 * tar and key, and skipped. A tar holding a link, a device or a member whose name is absolute or
 * climbs out with `..` is refused (HostileMemberError): the import stops naming tar and member.
 */
import { DATASET_JSON } from '../../pipeline/data/dataset-json.js';
import { DEFAULT_LIMIT_INPUT_PIXELS } from '../../pipeline/data/preprocess.js';
import { checkGroup } from '../../pipeline/data/sample-members.js';
import { groupMembers, HostileMemberError, readTarMembers } from '../../pipeline/data/tar.js';
import { DataError, type ImageExt } from '../../pipeline/data/types.js';
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { loadImageFile } from './folder-source.js';
import { loadQueued, type ImportSource, type LoadedSample, type SourceEntry } from './source.js';
import { trimUri } from '../../pipeline/store/uri.js';
import type { StoreSettings } from '../../pipeline/store/settings.js';

interface Located {
  tar: string;
  ext: ImageExt;
  image: [number, number];
  json?: [number, number];
}

export interface WdsOptions {
  classes?: string[];
  concurrency?: number;
  limitInputPixels?: number;
  storeSettings?: StoreSettings;
}

export async function openWebDatasetSource(uri: string, o: WdsOptions = {}): Promise<ImportSource> {
  const store: ObjectStore = openStore(uri, o.storeSettings);
  const where = trimUri(store.uri);
  const objects = await store.list('');
  const tars = objects.filter((x) => x.key.endsWith('.tar'));
  if (tars.length === 0) {
    await store.close();
    throw new DataError(`${where}: no .tar files (expected WebDataset shards)`, { uri: where });
  }
  let classes = o.classes;
  if (!classes && objects.some((x) => x.key === DATASET_JSON)) {
    const text = (await store.get(DATASET_JSON)).toString('utf8'); // a store failure is a failure
    try {
      const j = JSON.parse(text) as { classes?: unknown };
      if (Array.isArray(j.classes) && j.classes.every((c) => typeof c === 'string')) classes = j.classes as string[];
    } catch {
      /* not JSON, so not ours: fall back to numeric class names */
    }
  }
  const problems: ImportSource['problems'] = [];
  const found: { key: string; label?: number; at: Located }[] = [];
  const seen = new Set<string>();
  for (const t of tars) {
    const tarWhere = `${where}/${t.key}`;
    try {
      for await (const g of groupMembers(readTarMembers(await store.getStream(t.key), tarWhere), tarWhere)) {
        try {
          const { location } = checkGroup(g, { shardName: tarWhere, shard: 0, labeled: false, numClasses: classes?.length });
          if (seen.has(g.key)) {
            problems.push({ key: g.key, where: tarWhere, reason: `${tarWhere}: sample "${g.key}": key already used in an earlier tar` });
            continue;
          }
          seen.add(g.key);
          const at: Located = { tar: t.key, ext: location.ext, image: location.image };
          if (location.json) at.json = location.json;
          found.push({ key: g.key, label: location.label, at });
        } catch (err) {
          problems.push({ key: g.key, where: tarWhere, reason: (err as Error).message });
        }
      }
    } catch (err) {
      if (err instanceof HostileMemberError) {
        await store.close();
        throw err; // a tar with links or escaping names is refused whole, not partly imported
      }
      problems.push({ key: '', where: tarWhere, reason: (err as Error).message });
    }
  }
  const withLabel = found.filter((f) => f.label !== undefined).length;
  const labeled = withLabel > 0;
  const entries: SourceEntry[] = [];
  const locs: Located[] = [];
  for (const f of found) {
    if (labeled && f.label === undefined) {
      problems.push({ key: f.key, where: `${where}/${f.at.tar}`, reason: `${where}/${f.at.tar}: sample "${f.key}": no .cls member (other samples have one)` });
      continue;
    }
    const e: SourceEntry = { key: f.key.replace(/[^A-Za-z0-9_-]/g, '_'), ref: locs.length };
    if (f.label !== undefined) e.label = f.label;
    entries.push(e);
    locs.push(f.at);
  }
  if (!classes) {
    const max = entries.reduce((m, e) => Math.max(m, e.label ?? -1), -1);
    classes = Array.from({ length: max + 1 }, (_, i) => String(i));
  }
  const keys = new Set<string>();
  for (const e of entries) {
    if (keys.has(e.key)) throw new DataError(`${where}: keys collide after replacing characters other than A-Z a-z 0-9 _ - ("${e.key}")`, { uri: where, key: e.key });
    keys.add(e.key);
  }
  const limit = o.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  const concurrency = o.concurrency ?? 8;
  const avg = Math.ceil(tars.reduce((a, t) => a + t.size, 0) / Math.max(1, entries.length));
  return {
    kind: 'webdataset',
    classes,
    entries,
    identity: { kind: 'webdataset', uri: where, tars: tars.map((t) => [t.key, t.size]), classes, limitInputPixels: limit },
    bytesPerEntry: Math.max(1024, avg * 2),
    problems,
    load: (wanted) =>
      loadQueued(wanted, concurrency, async (entry) => {
        const at = locs[entry.ref]!;
        const w = `${where}/${at.tar} key "${entry.key}"`;
        let bytes: Buffer;
        try {
          bytes = await store.getRange(at.tar, at.image[0], at.image[0] + at.image[1]);
        } catch (err) {
          return { entry, error: `cannot read: ${(err as Error).message}`, where: w };
        }
        const r = await loadImageFile(bytes, w, limit);
        let json: unknown;
        if (at.json) json = JSON.parse((await store.getRange(at.tar, at.json[0], at.json[0] + at.json[1])).toString('utf8'));
        const out: LoadedSample = { entry, ...r };
        if (r.error) out.error = `${w}: ${r.error}`;
        if (json !== undefined) out.json = json;
        return out;
      }),
    close: () => store.close(),
  };
}
