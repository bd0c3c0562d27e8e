/**
 * Index an existing WebDataset where it is, without copying: writes `dataset.json` and a side
 * index per tar beside the tars, so the reader, verify and random access work on them as they
 * are (at 130M images, copying would double storage and take hours). Only for clean tars: every
 * sample must pair up (one image; `.cls` on all or none; labels in range), every image must
 * decode (unless `decode: false`), keys must be unique. Otherwise nothing is written and a
 * DataError lists the problems (each naming tar and key) — use a copying import instead, which
 * skips bad samples.
 */
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import PQueue from 'p-queue';
import { DATASET_JSON } from '../../pipeline/data/dataset-json.js';
import { DEFAULT_LIMIT_INPUT_PIXELS } from '../../pipeline/data/preprocess.js';
import { checkGroup } from '../../pipeline/data/sample-members.js';
import { groupMembers, HostileMemberError, readTarMembers } from '../../pipeline/data/tar.js';
import { DataError, type DatasetIndex, type SampleLocation, type ShardEntry, type ShardIndexFile } from '../../pipeline/data/types.js';
import { checkDecodable } from '../../pipeline/data/verify.js';
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { trimUri } from '../../pipeline/store/uri.js';

export interface InPlaceOptions {
  classes?: string[];
  decode?: boolean;
  limitInputPixels?: number;
  concurrency?: number;
  onShard?: (done: number, total: number) => void;
}

export async function indexWebDatasetInPlace(target: ObjectStore | string, o: InPlaceOptions = {}): Promise<DatasetIndex> {
  const store = typeof target === 'string' ? openStore(target) : target;
  const where = trimUri(store.uri);
  try {
    if (await store.head(DATASET_JSON)) throw new DataError(`${where} already has a ${DATASET_JSON}`, { uri: where });
    const tars = (await store.list('')).filter((x) => x.key.endsWith('.tar') && !x.key.includes('/'));
    if (tars.length === 0) throw new DataError(`${where}: no .tar files at the top of the prefix`, { uri: where });
    const problems: string[] = [];
    const limit = o.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
    const queue = new PQueue({ concurrency: o.concurrency ?? 4 });
    const keys = new Set<string>();
    const shards: { entry: ShardEntry; file: ShardIndexFile }[] = [];
    let maxLabel = -1;
    let withLabel = 0;
    let total = 0;
    for (const [n, t] of tars.entries()) {
      const tarWhere = `${where}/${t.key}`;
      const hash = createHash('sha256');
      const tap = new PassThrough();
      tap.on('data', (c: Buffer) => hash.update(c));
      (await store.getStream(t.key)).on('error', (e) => tap.destroy(e)).pipe(tap);
      const locations: SampleLocation[] = [];
      try {
        for await (const g of groupMembers(readTarMembers(tap, tarWhere), tarWhere)) {
          try {
            const { sample, location } = checkGroup(g, { shardName: tarWhere, shard: n, labeled: false, numClasses: o.classes?.length });
            if (keys.has(sample.key)) problems.push(`${tarWhere}: sample "${sample.key}": key already used in an earlier tar`);
            keys.add(sample.key);
            if (sample.label !== undefined) {
              withLabel++;
              maxLabel = Math.max(maxLabel, sample.label);
            }
            locations.push(location);
            if (o.decode !== false) {
              while (queue.size > 64) await queue.onSizeLessThan(32);
              void queue.add(async () => {
                const why = await checkDecodable(sample.image, limit);
                if (why) problems.push(`${tarWhere}: sample "${sample.key}" (.${sample.ext}): ${why}`);
              });
            }
          } catch (err) {
            problems.push((err as Error).message);
          }
        }
      } catch (err) {
        if (err instanceof HostileMemberError) throw err;
        problems.push((err as Error).message);
      }
      await queue.onIdle();
      total += locations.length;
      const sha256 = hash.digest('hex');
      const index = t.key.replace(/\.tar$/, '.idx.json');
      shards.push({ entry: { name: t.key, samples: locations.length, bytes: t.size, sha256, index }, file: { shard: t.key, sha256, samples: locations } });
      o.onShard?.(n + 1, tars.length);
    }
    const labeled = withLabel > 0;
    if (labeled && withLabel !== total) problems.push(`${where}: ${total - withLabel} of ${total} samples have no .cls member while the others do`);
    if (problems.length) {
      throw new DataError(`${where}: cannot index in place (${problems.length} problem(s); a copying import skips bad samples):\n  ${problems.slice(0, 50).join('\n  ')}`, { uri: where });
    }
    const classes = o.classes ?? Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
    const classCounts = new Array<number>(classes.length).fill(0);
    for (const s of shards) for (const l of s.file.samples) if (l.label !== undefined) classCounts[l.label]!++;
    for (const s of shards) await store.put(s.entry.index, JSON.stringify(s.file), { contentType: 'application/json' });
    const idx: DatasetIndex = {
      format: 'selftrain-webdataset',
      version: 1,
      classes,
      labeled,
      samples: total,
      bytes: shards.reduce((a, s) => a + s.entry.bytes, 0),
      shards: shards.map((s) => s.entry),
      source: { importer: 'webdataset-in-place', uri: where },
    };
    if (labeled) idx.classCounts = classCounts;
    await store.put(DATASET_JSON, JSON.stringify(idx, null, 1) + '\n', { contentType: 'application/json' });
    return idx;
  } finally {
    if (typeof target === 'string') await store.close();
  }
}
