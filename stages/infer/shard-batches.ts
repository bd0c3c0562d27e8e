/**
 * The producer half of an infer worker: the worker's shards, downloaded ahead (bounded), parsed
 * (samplesOfShard validates the tar against dataset.json) and decoded by sharp a bounded window
 * ahead, grouped into batches that never span two shards. Batches are per shard so a shard's batch
 * composition — and so its float results — is the same whatever the number of workers and
 * whether the run was resumed.
 */
import { samplesOfShard, shardMismatch } from '../../pipeline/data/reader.js';
import { integrityErrorIn, type Digest } from '../../pipeline/store/types.js';
import { transformImage } from '../../pipeline/data/preprocess.js';
import { DataError } from '../../pipeline/data/types.js';
import type { OpenDataset } from '../../pipeline/data/dataset-json.js';
import type { TeacherPreprocessing } from '../../pipeline/pseudo/teacher.js';

/**
 * One slot of a batch: a decoded sample (uint8 HWC, normalised by normaliseInto straight into the
 * batch tensor: a quarter of the memory per image in flight, no float copy per image) or a sample
 * that failed to decode (kept in order).
 */
export type Slot = { key: string; pixels: Buffer } | { key: string; error: string };

export type ShardItem =
  | { kind: 'batch'; shard: number; slots: Slot[] }
  /** The shard was read completely; `samples` is its sample count. */
  | { kind: 'end'; shard: number; samples: number }
  /** The shard cannot be used (missing, damaged, not matching dataset.json). */
  /** `damaged`: the shard's bytes are not the ones dataset.json records (the runner can have it remade). */
  | { kind: 'error'; shard: number; error: string; damaged?: DamagedObject };

/**
 * The shards to read, in order: a list, or a function giving the next shard number (undefined when
 * there are no more), called one at a time as the downloads run ahead (the local executor's claims).
 */
export type ShardSource = number[] | (() => Promise<number | undefined>);

export interface ShardBatchOptions {
  ds: OpenDataset;
  shards: ShardSource;
  batchSize: number;
  concurrency: number;
  preprocessing: TeacherPreprocessing;
  /** Shards downloaded ahead of the one being decoded. */
  lookahead?: number;
  signal?: AbortSignal;
}

async function fetchShard(ds: OpenDataset, n: number): Promise<Buffer> {
  const entry = ds.index.shards[n]!;
  const where = `${ds.uri}/${entry.name}`;
  let buf: Buffer;
  try {
    // Checked against dataset.json's digest just below (for shards our importer wrote, the same
    // digest the store recorded).
    buf = await ds.store.get(entry.name, { verify: false });
  } catch (err) {
    throw new DataError(`${where}: shard listed in dataset.json cannot be read: ${(err as Error).message}`, { uri: ds.uri, shard: entry.name }, { cause: err });
  }
  const bad = shardMismatch(ds, entry, buf);
  if (bad) throw bad;
  return buf;
}

/** What a worker reports of a damaged shard, so that the stage can hand it to the runner. */
export interface DamagedObject {
  uri: string;
  expected: Digest;
  actual: Digest;
}

function damagedIn(err: unknown): DamagedObject | undefined {
  const d = integrityErrorIn(err);
  return d && { uri: d.uri, expected: d.expected, actual: d.actual };
}

/**
 * uint8 HWC pixels -> normalised float32 at `out[offset...]`, the model's input convention. Runs on
 * the thread that runs the forward pass, so it is a table lookup: (v - mean) / std computed once
 * per channel and byte value gives the same float32 as per pixel, 2.5x faster (measured).
 */
export function normaliseInto(pixels: Uint8Array, p: TeacherPreprocessing, out: Float32Array, offset: number): void {
  const C = p.channels;
  const table = new Float32Array(256 * C);
  for (let c = 0; c < C; c++) for (let v = 0; v < 256; v++) table[c * 256 + v] = (v - p.mean[c]!) / p.std[c]!;
  if (C === 3) {
    for (let i = 0; i < pixels.length; i += 3) {
      out[offset + i] = table[pixels[i]!]!;
      out[offset + i + 1] = table[256 + pixels[i + 1]!]!;
      out[offset + i + 2] = table[512 + pixels[i + 2]!]!;
    }
    return;
  }
  for (let i = 0; i < pixels.length; i++) out[offset + i] = table[(i % C) * 256 + pixels[i]!]!;
}

function fromList(shards: number[]): () => Promise<number | undefined> {
  let i = 0;
  return async () => shards[i++];
}

const decode = (image: Buffer, p: TeacherPreprocessing): Promise<Buffer> => transformImage(image, { channels: p.channels, imageSize: p.imageSize, mode: 'eval', cropFraction: p.cropFraction });

export async function* shardBatches(o: ShardBatchOptions): AsyncGenerator<ShardItem> {
  const lookahead = Math.max(1, o.lookahead ?? 2);
  // Downloads run `lookahead` shards ahead; each is awaited only when its turn comes. Shards are
  // taken from the source one at a time, in order; after the source's first `undefined` it is not
  // asked again.
  const nextShard = typeof o.shards === 'function' ? o.shards : fromList(o.shards);
  type Fetched = { n: number; data: Buffer } | { n: number; error: unknown };
  const pending: Promise<Fetched | undefined>[] = [];
  let taken: Promise<number | undefined> = Promise.resolve(-1);
  let exhausted = false;
  const fill = () => {
    while (!exhausted && pending.length < lookahead) {
      taken = taken.then((last) => (last === undefined ? undefined : nextShard()));
      const p = taken.then((n) => {
        if (n === undefined) {
          exhausted = true;
          return undefined;
        }
        return fetchShard(o.ds, n).then(
          (data) => ({ n, data }),
          (error: unknown) => ({ n, error }),
        );
      });
      p.catch(() => undefined); // a failing source is reported when its turn comes
      pending.push(p);
    }
  };
  for (;;) {
    o.signal?.throwIfAborted();
    fill();
    const head = await pending.shift()!;
    if (!head) break;
    const n = head.n;
    const entry = o.ds.index.shards[n]!;
    const where = `${o.ds.uri}/${entry.name}`;
    if ('error' in head) {
      yield { kind: 'error', shard: n, error: (head.error as Error).message, damaged: damagedIn(head.error) };
      continue;
    }
    const data = head.data;
    fill();
    // Decodes run ahead of batching by a window of one batch plus `concurrency`, all of them handed
    // to sharp at once: libuv's threadpool (UV_THREADPOOL_SIZE, 4 by default) runs them without
    // this thread, so the next batch decodes while a forward pass blocks it. A queue that needs
    // this thread to start its next job (as a p-queue of `concurrency` did) decodes only
    // `concurrency` images per forward pass, and the model then waits for the rest of the batch.
    const window = o.batchSize + o.concurrency;
    const inFlight: { key: string; result: Promise<Buffer> }[] = [];
    let slots: Slot[] = [];
    let samples = 0;
    const settle = async function* () {
      const head = inFlight.shift()!;
      try {
        slots.push({ key: head.key, pixels: await head.result });
      } catch (err) {
        slots.push({ key: head.key, error: `cannot decode image: ${(err as Error).message}` });
      }
      if (slots.length === o.batchSize) {
        yield { kind: 'batch', shard: n, slots } as ShardItem;
        slots = [];
      }
    };
    try {
      for await (const s of samplesOfShard(data, n, o.ds.index, where)) {
        samples++;
        const result = decode(s.image, o.preprocessing);
        result.catch(() => undefined); // settled in order below
        inFlight.push({ key: s.key, result });
        while (inFlight.length >= window) yield* settle();
      }
    } catch (err) {
      // A structural problem (truncated tar, count mismatch): the shard is unusable as a whole.
      await Promise.allSettled(inFlight.map((f) => f.result));
      yield { kind: 'error', shard: n, error: err instanceof DataError ? err.message : `${where}: ${(err as Error).message}` };
      continue;
    }
    while (inFlight.length > 0) yield* settle();
    if (slots.length > 0) yield { kind: 'batch', shard: n, slots };
    yield { kind: 'end', shard: n, samples };
  }
}
