/**
 * Keys of the infer stage's outputs, relative to its prefix (`<run>/<stage>/`):
 *   job.json                         the work description workers read (./job.ts)
 *   predictions/<shard>.jsonl.gz     one per input shard  } what other stages read:
 *   summary.json                     written last         } pipeline/contracts/infer.ts
 *   stats/<shard>.json               per-shard counts, seconds and confidence histogram
 */
export { INFER_SUMMARY_KEY, predictionKey, PREDICTIONS_DIR } from '../../pipeline/contracts/infer.js';

export const STATS_DIR = 'stats/';

export function statsKey(shard: string): string {
  return `${STATS_DIR}${shard}.json`;
}

/** `shard-000123.tar` -> `shard-000123`: the name prediction and pseudo-label objects use. */
export function shardBase(tarName: string): string {
  return tarName.replace(/\.tar$/, '');
}

/** Bins of the confidence (top-1 probability) histogram in stats and summary. */
export const HISTOGRAM_BINS = 20;

export function histogramBin(p: number): number {
  return Math.min(HISTOGRAM_BINS - 1, Math.max(0, Math.floor(p * HISTOGRAM_BINS)));
}

export interface ShardStats {
  shard: string;
  samples: number;
  failed: number;
  seconds: number;
  histogram: number[];
}
