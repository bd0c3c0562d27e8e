/**
 * What the store says about an infer stage's shards: committed (a prediction object exists) or
 * failed for good (an error object, written by a worker that found a data problem). Executors that
 * do not run the workers themselves (slurm, external) learn progress only from here.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { listPredictedShards } from '../../../pipeline/pseudo/predictions-reader.js';
import { ifPresent, type ObjectStore } from '../../../pipeline/store/types.js';
import type { DamagedObject } from '../shard-batches.js';
import { ERRORS_DIR } from '../layout.js';
import type { ExecutorResult, ShardRef } from './types.js';

export interface ShardState {
  done: Set<string>;
  /** Shard → why it cannot be processed (only shards without predictions). */
  failed: Map<string, string>;
  /** Shard → the damaged input object, when that is why (the runner can have it remade). */
  damaged: Map<string, DamagedObject>;
}

/** The errors an executor reports, from the store's error objects. */
export function shardErrors(state: ShardState): ExecutorResult['errors'] {
  return [...state.failed].map(([shard, error]) => ({ shard, error, damaged: state.damaged.get(shard) })).sort((a, b) => a.shard.localeCompare(b.shard));
}

export async function shardState(out: ObjectStore): Promise<ShardState> {
  const done = new Set(await listPredictedShards(out));
  const failed = new Map<string, string>();
  const damaged = new Map<string, DamagedObject>();
  for (const o of await out.list(ERRORS_DIR)) {
    const shard = o.key.slice(ERRORS_DIR.length).replace(/\.json$/, '');
    if (done.has(shard)) continue;
    // Gone since the listing (a retry cleared it): not failed. Unreadable for another reason: a failure.
    const body = await ifPresent(out.get(o.key));
    if (!body) continue;
    let error = 'data problem (no reason recorded)';
    try {
      const rec = JSON.parse(body.toString('utf8')) as { error?: unknown; damaged?: DamagedObject };
      error = String(rec.error ?? error);
      if (rec.damaged) damaged.set(shard, rec.damaged);
    } catch {
      /* a partial object cannot exist (puts are atomic); keep the generic reason */
    }
    failed.set(shard, error);
  }
  return { done, failed, damaged };
}

export function samplesIn(shards: ShardRef[], names: ReadonlySet<string>): number {
  return shards.reduce((a, s) => a + (names.has(s.name) ? s.samples : 0), 0);
}

/** Waits `ms`, or rejects with the signal's reason as soon as it is aborted. */
export async function pause(ms: number, signal: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal }).catch(() => signal.throwIfAborted());
}
