/**
 * The infer summary, written last: its presence means every shard has its prediction object.
 * Per-shard stats come from stats/<shard>.json, or from the prediction object itself when a
 * worker was killed between the two puts.
 */
import { integrityErrorIn, isNotFoundError, type ObjectStore } from '../../pipeline/store/types.js';
import type { DatasetIndex } from '../../pipeline/data/types.js';
import { readPredictions } from '../../pipeline/pseudo/predictions-reader.js';
import type { InferSummary } from '../../pipeline/contracts/infer.js';
import { HISTOGRAM_BINS, histogramBin, INFER_SUMMARY_KEY, predictionKey, shardBase, statsKey, type ShardStats } from './layout.js';

/** A shard's stats object, or undefined when it is absent or damaged (then recounted); store failures are thrown. */
async function readStats(out: ObjectStore, shard: string): Promise<ShardStats | undefined> {
  try {
    return JSON.parse((await out.get(statsKey(shard))).toString('utf8')) as ShardStats;
  } catch (err) {
    if (isNotFoundError(err) || integrityErrorIn(err) || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

async function shardStats(out: ObjectStore, shard: string, numClasses: number): Promise<ShardStats> {
  const stored = await readStats(out, shard);
  if (stored) return stored;
  const s: ShardStats = { shard, samples: 0, failed: 0, seconds: 0, histogram: new Array(HISTOGRAM_BINS).fill(0) };
  for await (const r of readPredictions(out, shard, numClasses)) {
    s.samples++;
    if ('error' in r) s.failed++;
    else s.histogram[histogramBin(r.maxProb)]!++; // histogramBin clamps to 0..HISTOGRAM_BINS-1
  }
  return s;
}

export async function summarise(
  out: ObjectStore,
  index: DatasetIndex,
  fields: {
    dataset: string;
    teacher: string;
    /** The run's label space (the teacher's outputs): never the unlabeled set's own class list. */
    classes: string[];
    topK: number;
    wallSeconds: number;
    processedSamples: number;
    workers: number;
    restarts: number;
  },
): Promise<InferSummary> {
  const shards = index.shards.map((s) => shardBase(s.name));
  const present = new Set((await out.list('predictions/')).map((o) => o.key));
  const missing = shards.filter((s) => !present.has(predictionKey(s)));
  if (missing.length > 0) throw new Error(`infer: ${missing.length} shard(s) have no predictions after all workers finished: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''}`);
  const histogram = new Array(HISTOGRAM_BINS).fill(0);
  let samples = 0;
  let skipped = 0;
  for (const shard of shards) {
    const s = await shardStats(out, shard, fields.classes.length);
    samples += s.samples;
    skipped += s.failed;
    s.histogram.forEach((c, i) => (histogram[i] += c));
  }
  const summary: InferSummary = {
    dataset: fields.dataset,
    teacher: fields.teacher,
    numClasses: fields.classes.length,
    classes: fields.classes,
    topK: fields.topK,
    shards,
    samples,
    skipped,
    imagesPerSecond: fields.wallSeconds > 0 && fields.processedSamples > 0 ? fields.processedSamples / fields.wallSeconds : null,
    wallSeconds: fields.wallSeconds,
    workers: fields.workers,
    restarts: fields.restarts,
    confidenceHistogram: histogram,
  };
  await out.put(INFER_SUMMARY_KEY, JSON.stringify(summary, null, 2) + '\n', { contentType: 'application/json' });
  return summary;
}
