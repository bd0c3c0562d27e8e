/**
 * Keys of the infer stage's outputs, relative to its prefix (`<run>/<stage>/`):
 *   job.json                         the work description workers read (./job.ts)
 *   predictions/<shard>.jsonl.gz     one per input shard  } what other stages read:
 *   summary.json                     written last         } pipeline/contracts/infer.ts
 *   stats/<shard>.json               per-shard counts, seconds and confidence histogram
 *   errors/<shard>.json              a shard that cannot be processed (data problem) and why, so
 *                                    executors that only see the store (slurm, external) learn it
 *   executor/                        the executor's own records (e.g. the Slurm job ids)
 */
export { INFER_SUMMARY_KEY, predictionKey, PREDICTIONS_DIR } from '../../pipeline/contracts/infer.js';

export const STATS_DIR = 'stats/';
export const ERRORS_DIR = 'errors/';
export const EXECUTOR_DIR = 'executor/';

export function statsKey(shard: string): string {
  return `${STATS_DIR}${shard}.json`;
}

export function errorKey(shard: string): string {
  return `${ERRORS_DIR}${shard}.json`;
}

/** Shard numbers a worker owns: `n % count == index`. */
export function ownedShards(total: number, index: number, count: number): number[] {
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
    throw new Error(`bad worker index ${index} of ${count} (need 0 <= index < count)`);
  }
  const out: number[] = [];
  for (let n = index; n < total; n += count) out.push(n);
  return out;
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
