/**
 * Random access to single samples by (shard, key), for the student stage: it reads the
 * pseudo-labeled images straight out of the unlabeled shards (images are never copied). Uses the
 * per-shard side index (member offsets) and one ranged GET per sample.
 *
 *   const f = await SampleFetcher.open('s3://b/ds/unlabeled');
 *   const s = await f.get(3, 'train-012345');   // Sample with the image bytes
 *
 * Shard indexes are cached (an LRU holding every shard of a set of up to 64 by default), so fetching
 * many samples of the same shard costs one index read plus one range read each.
 */
import type { StoreSettings } from '../store/settings.js';
import type { ObjectStore } from '../store/types.js';
import { openDataset, type OpenDataset } from './dataset-json.js';
import { DataError, type SampleLocation, type Sample, type ShardIndexFile } from './types.js';

export class SampleFetcher {
  /**
   * Shard indexes, loaded or being loaded: concurrent reads of one shard share one load (a student
   * batch asks for dozens of samples at once, many from the same shards).
   */
  private cache = new Map<number, Promise<Map<string, SampleLocation>>>();

  private constructor(
    readonly ds: OpenDataset,
    private readonly cacheShards: number,
  ) {}

  /**
   * cacheShards: how many shard indexes stay in memory (about 60 bytes per sample). The default
   * holds every shard of a set of up to 64 shards: a student draws its batches uniformly over all of
   * them, and with fewer it re-read and re-parsed a shard index for most samples (measured with 8
   * of Fashion-MNIST's 30 shards: a fifth of a student step's CPU).
   */
  static async open(source: ObjectStore | string, opts: { cacheShards?: number; settings?: StoreSettings } = {}): Promise<SampleFetcher> {
    return new SampleFetcher(await openDataset(source, opts.settings), opts.cacheShards ?? 64);
  }

  /** Offsets of every sample of shard n (cached). */
  locations(n: number): Promise<Map<string, SampleLocation>> {
    const hit = this.cache.get(n);
    if (hit !== undefined) {
      this.cache.delete(n);
      this.cache.set(n, hit); // LRU: most recent last
      return hit;
    }
    const loading = this.load(n);
    this.cache.set(n, loading);
    // A failed load is not kept: the next read of the shard tries again.
    loading.catch(() => this.cache.get(n) === loading && this.cache.delete(n));
    while (this.cache.size > this.cacheShards) this.cache.delete(this.cache.keys().next().value!);
    return loading;
  }

  private async load(n: number): Promise<Map<string, SampleLocation>> {
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
    return new Map(file.samples.map((l) => [l.key, l]));
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
