/**
 * Random access to single samples by (shard, key), for the student stage: it reads the
 * pseudo-labeled images straight out of the unlabeled shards (images are never copied). Uses the
 * per-shard side index (member offsets) and one ranged GET per sample.
 *
 *   const f = await SampleFetcher.open('s3://b/ds/unlabeled');
 *   const s = await f.get(3, 'train-012345');   // Sample with the image bytes
 *
 * Shard indexes are cached (a small LRU), so fetching many samples of the same shard costs one
 * index read plus one range read each.
 */
import type { StoreSettings } from '../store/settings.js';
import type { ObjectStore } from '../store/types.js';
import { openDataset, type OpenDataset } from './dataset-json.js';
import { DataError, type SampleLocation, type Sample, type ShardIndexFile } from './types.js';

export class SampleFetcher {
  private cache = new Map<number, Map<string, SampleLocation>>();

  private constructor(
    readonly ds: OpenDataset,
    private readonly cacheShards: number,
  ) {}

  static async open(source: ObjectStore | string, opts: { cacheShards?: number; settings?: StoreSettings } = {}): Promise<SampleFetcher> {
    return new SampleFetcher(await openDataset(source, opts.settings), opts.cacheShards ?? 8);
  }

  /** Offsets of every sample of shard n (cached). */
  async locations(n: number): Promise<Map<string, SampleLocation>> {
    const hit = this.cache.get(n);
    if (hit) {
      this.cache.delete(n);
      this.cache.set(n, hit); // LRU: most recent last
      return hit;
    }
    const entry = this.ds.index.shards[n];
    if (!entry) throw new DataError(`${this.ds.uri}: shard ${n} out of range (${this.ds.index.shards.length} shards)`, { uri: this.ds.uri });
    let file: ShardIndexFile;
    try {
      file = JSON.parse((await this.ds.store.get(entry.index)).toString('utf8')) as ShardIndexFile;
    } catch (err) {
      throw new DataError(`${this.ds.uri}/${entry.index}: cannot read shard index: ${(err as Error).message}`, { uri: this.ds.uri, shard: entry.name }, { cause: err });
    }
    if (file.sha256 !== entry.sha256) {
      throw new DataError(`${this.ds.uri}/${entry.index}: index is for a different version of ${entry.name}`, { uri: this.ds.uri, shard: entry.name });
    }
    const map = new Map(file.samples.map((l) => [l.key, l]));
    this.cache.set(n, map);
    while (this.cache.size > this.cacheShards) this.cache.delete(this.cache.keys().next().value!);
    return map;
  }

  async get(n: number, key: string): Promise<Sample> {
    const loc = (await this.locations(n)).get(key);
    const entry = this.ds.index.shards[n]!;
    if (!loc) throw new DataError(`${this.ds.uri}/${entry.name}: no sample "${key}"`, { uri: this.ds.uri, shard: entry.name, key });
    const [off, size] = loc.image;
    const image = await this.ds.store.getRange(entry.name, off, off + size);
    if (image.length !== size) throw new DataError(`${this.ds.uri}/${entry.name}: sample "${key}": short read (${image.length} of ${size} bytes)`, { uri: this.ds.uri, shard: entry.name, key });
    const s: Sample = { key, shard: n, image, ext: loc.ext };
    if (loc.label !== undefined) s.label = loc.label;
    if (loc.json) s.json = JSON.parse((await this.ds.store.getRange(entry.name, loc.json[0], loc.json[0] + loc.json[1])).toString('utf8'));
    return s;
  }

  close(): Promise<void> {
    return this.ds.close();
  }
}
