/**
 * Copies a dataset between stores (file:// ↔ s3://, bucket to bucket), as `selftrain dataset cp`:
 *  - each shard is streamed (never held whole) and its sha256 computed on the way; a shard whose
 *    bytes do not match dataset.json is deleted at the destination and the copy fails naming it;
 *  - a verified shard leaves a marker `_copy/<shard>.json` at the destination, so a re-run after a
 *    kill keeps it; a shard present without its marker (killed between the put and the marker) is
 *    re-hashed at the destination and kept only if it matches;
 *  - side indexes and the ground truth are copied whole; `dataset.json` (the same bytes as the
 *    source's) is written last, so the destination never looks complete while a shard is missing.
 * A destination that already holds a different dataset is refused; the same one is a no-op.
 */
import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import PQueue from 'p-queue';
import { openStore } from '../store/open.js';
import type { ObjectStore } from '../store/types.js';
import { DATASET_JSON, openDataset } from './dataset-json.js';
import { DataError, type DatasetIndex, type ShardEntry } from './types.js';

const MARKERS = '_copy/';
const markerKey = (shard: string) => `${MARKERS}${shard}.json`;

export interface CopyOptions {
  /** Shards copied at once (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  onShard?: (done: number, total: number) => void;
}

export interface CopyResult {
  from: string;
  to: string;
  index: DatasetIndex;
  /** Shards copied now, shards found already copied (a resumed copy), bytes moved now. */
  copied: number;
  kept: number;
  bytes: number;
  alreadyComplete: boolean;
}

/** sha256 and length of a stream's bytes. */
async function hashStream(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

export async function copyDataset(fromUri: string, toUri: string, o: CopyOptions = {}): Promise<CopyResult> {
  const src = await openDataset(fromUri);
  const dst = openStore(toUri);
  const to = dst.uri.replace(/\/+$/, '');
  try {
    const sourceJson = await src.store.get(DATASET_JSON);
    const existing = await dst.get(DATASET_JSON).catch(() => undefined);
    if (existing) {
      if (existing.equals(sourceJson)) return { from: src.uri, to, index: src.index, copied: 0, kept: src.index.shards.length, bytes: 0, alreadyComplete: true };
      throw new DataError(`${to} already holds another dataset (its dataset.json differs from ${src.uri}'s); remove it first (selftrain dataset rm) or copy elsewhere`, { uri: to });
    }
    let copied = 0;
    let kept = 0;
    let moved = 0;
    const total = src.index.shards.length;
    const copyShard = async (shard: ShardEntry): Promise<void> => {
      o.signal?.throwIfAborted();
      if (await isCopied(dst, shard)) {
        kept++;
      } else {
        await streamShard(src.store, dst, shard, src.uri);
        copied++;
        moved += shard.bytes;
      }
      await copySmall(src.store, dst, shard.index);
      o.onShard?.(copied + kept, total);
    };
    const queue = new PQueue({ concurrency: o.concurrency ?? 4 });
    const jobs = src.index.shards.map((s) => queue.add(() => copyShard(s)));
    // Wait for every job (no put left running behind a failure), then report the first failure.
    const results = await Promise.allSettled(jobs);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (src.index.groundTruth) await copySmall(src.store, dst, src.index.groundTruth);
    o.signal?.throwIfAborted();
    await dst.put(DATASET_JSON, sourceJson, { contentType: 'application/json' });
    await dst.deletePrefix(MARKERS);
    return { from: src.uri, to, index: src.index, copied, kept, bytes: moved, alreadyComplete: false };
  } finally {
    await src.close();
    await dst.close();
  }
}

/** Whether the destination already holds this exact shard (marker, or a re-hash of what is there). */
async function isCopied(dst: ObjectStore, shard: ShardEntry): Promise<boolean> {
  const head = await dst.head(shard.name);
  if (!head || head.size !== shard.bytes) return false;
  const marker = await dst.get(markerKey(shard.name)).catch(() => undefined);
  if (marker && (JSON.parse(marker.toString('utf8')) as { sha256?: string }).sha256 === shard.sha256) return true;
  // Put but not marked: the copy was killed in between. Trust it only after hashing it.
  const { sha256 } = await hashStream(await dst.getStream(shard.name));
  if (sha256 !== shard.sha256) return false;
  await dst.put(markerKey(shard.name), JSON.stringify({ sha256 }), { contentType: 'application/json' });
  return true;
}

async function streamShard(from: ObjectStore, dst: ObjectStore, shard: ShardEntry, fromUri: string): Promise<void> {
  const source = await from.getStream(shard.name);
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new PassThrough();
  source.on('error', (e) => tap.destroy(e));
  source.on('data', (c: Buffer) => {
    hash.update(c);
    bytes += c.length;
  });
  source.pipe(tap);
  try {
    await dst.put(shard.name, tap, { contentType: 'application/x-tar' });
  } finally {
    source.destroy();
  }
  const sha256 = hash.digest('hex');
  if (sha256 !== shard.sha256 || bytes !== shard.bytes) {
    await dst.delete(shard.name);
    throw new DataError(`${fromUri}/${shard.name}: read ${bytes} bytes with sha256 ${sha256}, but dataset.json lists ${shard.bytes} bytes with ${shard.sha256}: the source shard is corrupt or changed; nothing of it was kept`, {
      uri: fromUri,
      shard: shard.name,
    });
  }
  await dst.put(markerKey(shard.name), JSON.stringify({ sha256 }), { contentType: 'application/json' });
}

/** Side indexes and ground truth: small objects, copied whole (again, on a resume: cheaper than comparing). */
async function copySmall(from: ObjectStore, dst: ObjectStore, key: string): Promise<void> {
  let body: Buffer;
  try {
    body = await from.get(key);
  } catch (err) {
    throw new DataError(`${from.uri.replace(/\/+$/, '')}/${key}: listed in dataset.json but cannot be read: ${(err as Error).message}`, { uri: from.uri }, { cause: err });
  }
  await dst.put(key, body);
}
