/**
 * One eval shard through a model: decode + eval preprocessing + forward pass, the top-k classes of
 * every sample that decodes. The unit the evaluate stage hands to its workers (one shard per call);
 * the same function runs in the stage's own thread when it uses one worker, so results do not depend
 * on the worker count (batches never span shards).
 */
import { batches } from '../../pipeline/data/batches.js';
import { prefetch } from '../../pipeline/data/prefetch.js';
import type { OpenDataset } from '../../pipeline/data/dataset-json.js';
import { readDataset } from '../../pipeline/data/reader.js';
import type { Teacher, TeacherPreprocessing } from '../../pipeline/pseudo/teacher.js';

export interface ShardPredictions {
  shard: number;
  /** Key of each predicted sample, in shard order. */
  keys: string[];
  /** True class of each predicted sample. */
  labels: Int32Array;
  /** `k` ranked classes per sample, row-major. */
  classes: Int32Array;
  k: number;
  /** Samples that could not be decoded (left out). */
  skipped: number;
  /** What ran the forward passes (the teacher's backend description). */
  backend: string;
}

export interface ShardOptions {
  batchSize: number;
  concurrency: number;
  k: number;
  preprocessing: TeacherPreprocessing;
  signal?: AbortSignal;
}

export async function predictShard(net: Teacher, ds: OpenDataset, shard: number, o: ShardOptions): Promise<ShardPredictions> {
  const pre = o.preprocessing;
  const keys: string[] = [];
  const labels: number[] = [];
  const classes: number[] = [];
  let skipped = 0;
  let k = o.k;
  const samples = readDataset(ds, { shardList: [shard], signal: o.signal });
  const prepared = batches(samples, {
    size: o.batchSize,
    channels: pre.channels,
    imageSize: pre.imageSize,
    mode: 'eval',
    cropFraction: pre.cropFraction,
    dtype: 'float32',
    normalize: { mean: pre.mean, std: pre.std },
    concurrency: o.concurrency,
  });
  // Two batches prepared ahead: with ONNX Runtime on its own thread, reading and decoding overlap
  // the forward pass (a fresh buffer per batch, so one prepared ahead never overwrites one in use).
  for await (const b of prefetch(prepared, 2)) {
    o.signal?.throwIfAborted();
    skipped += b.skipped.length;
    const n = b.keys.length;
    const top = await net.predictTopK(b.pixels as Float32Array, n, o.k);
    k = top.k;
    for (let i = 0; i < n; i++) {
      const label = b.labels[i]!;
      if (label < 0) throw new Error(`eval set ${ds.uri}: sample ${b.keys[i]} (shard ${b.shards[i]}) has no label`);
      keys.push(b.keys[i]!);
      labels.push(label);
      for (let j = 0; j < top.k; j++) classes.push(top.classes[i * top.k + j]!);
    }
  }
  return { shard, keys, labels: Int32Array.from(labels), classes: Int32Array.from(classes), k, skipped, backend: net.backend };
}
