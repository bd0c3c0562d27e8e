/**
 * Streaming dataset reader used by train, infer and evaluate.
 *
 *   for await (const s of readDataset('s3://bucket/ds/fmnist-train', {
 *     shards: { index: workerIndex, count: workers },   // shard n is read when n % count == index
 *     shuffleBuffer: 2048, seed: 1, epoch,               // seeded: same order on every run
 *     prefetch: { shards: 2, bytes: 256 << 20 },
 *   })) { use(s.key, s.shard, s.image, s.label); }    // image: encoded bytes; label: undefined if unlabeled
 *
 * Shards are downloaded whole (they are small by design) up to `prefetch.shards` at a time and
 * `prefetch.bytes` in total, ahead of the consumer. Nothing is fetched unless the consumer pulls
 * (an async generator only runs when asked), so a slow consumer never makes memory grow past
 * prefetch + shuffle buffer + the shard being parsed. Each shard's sha256 is checked against
 * dataset.json by default; structural problems (truncated tar, missing .cls, label out of range)
 * throw a DataError naming the shard and key. Undecodable images are NOT detected here; the
 * preprocessing layer (batches.ts) records and skips them.
 */
import { digestMismatch } from '../store/digest.js';
import type { ObjectStore } from '../store/types.js';
import { openDataset, type OpenDataset } from './dataset-json.js';
import { rng, seedFrom, shuffleInPlace } from './rng.js';
import { checkGroup } from './sample-members.js';
import { groupMembers, readTarMembers } from './tar.js';
import { DataError, type DatasetIndex, type ReadOptions, type Sample, type ShardEntry } from './types.js';

const DEFAULT_PREFETCH = { shards: 2, bytes: 256 * 1024 * 1024 };

/** Which shard numbers a reader with these options visits, in visiting order. */
export function planShards(index: DatasetIndex, opts: ReadOptions = {}): number[] {
  let list: number[];
  if (opts.shardList) {
    for (const n of opts.shardList) {
      if (!Number.isInteger(n) || n < 0 || n >= index.shards.length) throw new DataError(`shard ${n} out of range (dataset has ${index.shards.length} shards)`);
    }
    list = [...opts.shardList];
  } else {
    const { index: i, count } = opts.shards ?? { index: 0, count: 1 };
    if (!Number.isInteger(count) || count < 1 || !Number.isInteger(i) || i < 0 || i >= count) {
      throw new DataError(`bad shard subset index=${i} count=${count} (need 0 <= index < count)`);
    }
    list = index.shards.map((_, n) => n).filter((n) => n % count === i);
  }
  const shuffle = opts.shuffleShards ?? (opts.shuffleBuffer ?? 0) > 0;
  if (shuffle) shuffleInPlace(list, rng(seedFrom('shards', opts.seed ?? 0, opts.epoch ?? 0)));
  return list;
}

/**
 * The DataError for shard bytes that are not the ones dataset.json records (its cause is the
 * IntegrityError naming shard, expected and actual digest), or undefined. The length is always
 * checked (free); the sha256 when `hash`.
 */
export function shardMismatch(ds: Pick<OpenDataset, 'uri'>, entry: ShardEntry, bytes: Uint8Array, hash = true): DataError | undefined {
  if (bytes.byteLength === entry.bytes && !hash) return undefined;
  const where = `${ds.uri}/${entry.name}`;
  const bad = digestMismatch(where, { sha256: entry.sha256, size: entry.bytes }, bytes);
  if (!bad) return undefined;
  return new DataError(`${bad.message} (the digest dataset.json records)`, { uri: ds.uri, shard: entry.name }, { cause: bad });
}

/** Downloads shards ahead of use, bounded by count and bytes; hands them out in plan order. */
class Prefetcher {
  private next = 0;
  private inFlight: { n: number; bytes: number; data: Promise<Buffer> }[] = [];
  private heldBytes = 0;

  constructor(
    private ds: OpenDataset,
    private plan: number[],
    private limits: { shards: number; bytes: number },
    private verify: boolean,
  ) {}

  private fill(): void {
    while (this.next < this.plan.length && this.inFlight.length < this.limits.shards) {
      const n = this.plan[this.next]!;
      const entry = this.ds.index.shards[n]!;
      // Always allow one shard, even when it alone exceeds the byte budget.
      if (this.inFlight.length > 0 && this.heldBytes + entry.bytes > this.limits.bytes) break;
      this.next++;
      this.heldBytes += entry.bytes;
      const data = this.fetch(n);
      data.catch(() => undefined); // surfaced when taken; avoid unhandled rejections meanwhile
      this.inFlight.push({ n, bytes: entry.bytes, data });
    }
  }

  private async fetch(n: number): Promise<Buffer> {
    const entry = this.ds.index.shards[n]!;
    const where = `${this.ds.uri}/${entry.name}`;
    let buf: Buffer;
    try {
      // dataset.json holds the shard's digest: checked here rather than twice (the store's own
      // record is the same digest for shards our importer wrote).
      buf = await this.ds.store.get(entry.name, { verify: !this.verify });
    } catch (err) {
      throw new DataError(`${where}: cannot read shard: ${(err as Error).message}`, { uri: this.ds.uri, shard: entry.name }, { cause: err });
    }
    const bad = shardMismatch(this.ds, entry, buf, this.verify);
    if (bad) throw bad;
    return buf;
  }

  /** The next shard's bytes, or undefined at the end. The caller must call release() when done. */
  async take(): Promise<{ n: number; data: Buffer; bytes: number } | undefined> {
    this.fill();
    const head = this.inFlight.shift();
    if (!head) return undefined;
    const data = await head.data;
    return { n: head.n, data, bytes: head.bytes };
  }

  release(bytes: number): void {
    this.heldBytes -= bytes;
  }
}

/** Samples of one shard buffer, validated. */
export async function* samplesOfShard(data: Buffer, n: number, index: DatasetIndex, where: string): AsyncGenerator<Sample> {
  const entry = index.shards[n]!;
  let count = 0;
  for await (const g of groupMembers(readTarMembers(data, where), where)) {
    yield checkGroup(g, { shardName: where, shard: n, labeled: index.labeled, numClasses: index.classes.length }).sample;
    count++;
  }
  if (count !== entry.samples) throw new DataError(`${where}: holds ${count} samples, dataset.json says ${entry.samples}`, { shard: entry.name });
}

/** Streams the samples of a dataset (a store rooted at its prefix, or its URI). */
export async function* readDataset(source: ObjectStore | string | OpenDataset, opts: ReadOptions = {}): AsyncGenerator<Sample> {
  const ds = typeof source === 'object' && 'index' in source ? source : await openDataset(source);
  const ownsDs = ds !== source;
  try {
    const plan = planShards(ds.index, opts);
    const limits = { ...DEFAULT_PREFETCH, ...opts.prefetch };
    if (limits.shards < 1) throw new DataError(`prefetch.shards must be >= 1 (got ${limits.shards})`);
    const pre = new Prefetcher(ds, plan, limits, opts.verifyHashes ?? true);
    const bufSize = opts.shuffleBuffer ?? 0;
    const random = rng(seedFrom('samples', opts.seed ?? 0, opts.epoch ?? 0));
    const buffer: Sample[] = [];
    for (;;) {
      opts.signal?.throwIfAborted();
      const shard = await pre.take();
      if (!shard) break;
      const where = `${ds.uri}/${ds.index.shards[shard.n]!.name}`;
      try {
        for await (const s of samplesOfShard(shard.data, shard.n, ds.index, where)) {
          if (bufSize <= 0) {
            yield s;
            continue;
          }
          if (buffer.length < bufSize) {
            buffer.push(s);
            continue;
          }
          // Classic shuffle buffer: emit a random held sample, keep the new one in its place.
          const j = Math.floor(random() * buffer.length);
          const out = buffer[j]!;
          buffer[j] = s;
          yield out;
        }
      } finally {
        pre.release(shard.bytes);
      }
    }
    shuffleInPlace(buffer, random);
    yield* buffer;
  } finally {
    if (ownsDs) await ds.close();
  }
}
