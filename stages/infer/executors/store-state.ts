/**
 * What the store says about an infer stage's shards: committed (a prediction object exists) or
 * failed for good (an error object, written by a worker that found a data problem). Executors that
 * do not run the workers themselves (slurm, external) learn progress only from here.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { listPredictedShards } from '../../../pipeline/pseudo/predictions-reader.js';
import type { ObjectStore } from '../../../pipeline/store/types.js';
import { ERRORS_DIR } from '../layout.js';
import type { ShardRef } from './types.js';

export interface ShardState {
  done: Set<string>;
  /** Shard → why it cannot be processed (only shards without predictions). */
  failed: Map<string, string>;
}

export async function shardState(out: ObjectStore): Promise<ShardState> {
  const done = new Set(await listPredictedShards(out));
  const failed = new Map<string, string>();
  for (const o of await out.list(ERRORS_DIR)) {
    const shard = o.key.slice(ERRORS_DIR.length).replace(/\.json$/, '');
    if (done.has(shard)) continue;
    const body = await out.get(o.key).catch(() => undefined);
    let error = 'data problem (no reason recorded)';
    try {
      if (body) error = String((JSON.parse(body.toString('utf8')) as { error?: unknown }).error ?? error);
    } catch {
      /* a partial object cannot exist (puts are atomic); keep the generic reason */
    }
    failed.set(shard, error);
  }
  return { done, failed };
}

export function samplesIn(shards: ShardRef[], names: ReadonlySet<string>): number {
  return shards.reduce((a, s) => a + (names.has(s.name) ? s.samples : 0), 0);
}

/** Waits `ms`, or rejects with the signal's reason as soon as it is aborted. */
export async function pause(ms: number, signal: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal }).catch(() => signal.throwIfAborted());
}
