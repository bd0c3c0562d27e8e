/**
 * Training checkpoints in the object store, under `<stage prefix>/ckpt/step-<NNNNNNNNN>/`:
 *
 *   tensors.bin   every tensor (model weights incl. BN moving stats, momentum slots, EMA shadows),
 *                 float32 little-endian, concatenated
 *   COMMIT.json   the manifest: step, data cursor, RNG/noise state, and per tensor its group, name,
 *                 shape and byte offset, plus the sha256 of tensors.bin
 *
 * COMMIT.json is written last (each put is atomic), so a checkpoint without it is an interrupted
 * upload and is ignored; resume takes the highest step with a COMMIT.json and verifies the blob's
 * hash. Pruning deletes COMMIT.json first, so a half-pruned checkpoint is never taken for complete.
 */
import { createHash } from 'node:crypto';
import { digestMismatch } from '../store/digest.js';
import { integrityErrorIn, NotFoundError, type ObjectStore } from '../store/types.js';
import { objectUri } from '../store/uri.js';

export const CKPT_PREFIX = 'ckpt/';
const COMMIT = 'COMMIT.json';
const TENSORS = 'tensors.bin';

export type TensorGroup = 'weights' | 'slots' | 'ema';

export interface NamedArray {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface CheckpointMeta {
  format: 'selftrain-checkpoint';
  version: 1;
  step: number;
  /** Free-form training state (cursor, RNG, noise counter, metrics so far...). */
  state: Record<string, unknown>;
  tensors: { group: TensorGroup; name: string; shape: number[]; offset: number; length: number }[];
  bytes: number;
  sha256: string;
  createdAt: string;
}

export interface LoadedCheckpoint {
  key: string;
  meta: CheckpointMeta;
  groups: Record<TensorGroup, NamedArray[]>;
}

export function checkpointKey(step: number): string {
  return `${CKPT_PREFIX}step-${String(step).padStart(9, '0')}/`;
}

export async function saveCheckpoint(
  store: ObjectStore,
  step: number,
  groups: Record<TensorGroup, NamedArray[]>,
  state: Record<string, unknown>,
): Promise<string> {
  const entries: CheckpointMeta['tensors'] = [];
  let offset = 0;
  const all: NamedArray[] = [];
  for (const group of ['weights', 'slots', 'ema'] as const) {
    for (const t of groups[group]) {
      entries.push({ group, name: t.name, shape: t.shape, offset, length: t.data.length });
      offset += t.data.byteLength;
      all.push(t);
    }
  }
  const blob = new Uint8Array(offset);
  for (let i = 0; i < all.length; i++) {
    const t = all[i]!;
    blob.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), entries[i]!.offset);
  }
  const key = checkpointKey(step);
  const meta: CheckpointMeta = {
    format: 'selftrain-checkpoint',
    version: 1,
    step,
    state,
    tensors: entries,
    bytes: blob.byteLength,
    sha256: createHash('sha256').update(blob).digest('hex'),
    createdAt: new Date().toISOString(),
  };
  await store.put(key + TENSORS, blob, { contentType: 'application/octet-stream' });
  await store.put(key + COMMIT, JSON.stringify(meta), { contentType: 'application/json' });
  return key;
}

/** Steps of complete checkpoints (those with a COMMIT.json), ascending. */
export async function completeCheckpoints(store: ObjectStore): Promise<number[]> {
  const objs = await store.list(CKPT_PREFIX);
  const steps: number[] = [];
  for (const o of objs) {
    const m = /^ckpt\/step-(\d{9})\/COMMIT\.json$/.exec(o.key);
    if (m) steps.push(Number(m[1]));
  }
  return steps.sort((a, b) => a - b);
}

/** A committed checkpoint that cannot be used: its objects are damaged, missing or not a checkpoint. */
export class DamagedCheckpointError extends Error {
  override name = 'DamagedCheckpointError';
}

export async function loadCheckpoint(store: ObjectStore, step: number): Promise<LoadedCheckpoint> {
  const key = checkpointKey(step);
  const where = objectUri(store, key);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse((await store.get(key + COMMIT)).toString('utf8')) as CheckpointMeta;
  } catch (err) {
    const message = `checkpoint ${where}: cannot read ${COMMIT}: ${(err as Error).message}`;
    if (err instanceof SyntaxError || integrityErrorIn(err)) throw new DamagedCheckpointError(message, { cause: err });
    throw new Error(message, { cause: err });
  }
  if (meta.format !== 'selftrain-checkpoint' || meta.version !== 1 || meta.step !== step) {
    throw new DamagedCheckpointError(`checkpoint ${where}: ${COMMIT} is not a selftrain checkpoint v1 for step ${step}`);
  }
  let blob: Buffer;
  try {
    // Checked against COMMIT.json's digest below (the same one the store recorded).
    blob = await store.get(key + TENSORS, { verify: false });
  } catch (err) {
    if (err instanceof NotFoundError) throw new DamagedCheckpointError(`checkpoint ${where}: ${TENSORS} is missing although ${COMMIT} exists`, { cause: err });
    throw err;
  }
  const bad = digestMismatch(objectUri(store, key + TENSORS), { sha256: meta.sha256, size: meta.bytes }, blob);
  if (bad) throw new DamagedCheckpointError(`checkpoint ${bad.message} (the digest ${COMMIT} records)`, { cause: bad });
  // Copy into an aligned buffer: a Buffer from the pool may sit at an odd offset.
  const aligned = new Uint8Array(blob.byteLength);
  aligned.set(blob);
  const groups: Record<TensorGroup, NamedArray[]> = { weights: [], slots: [], ema: [] };
  for (const t of meta.tensors) {
    groups[t.group].push({ name: t.name, shape: t.shape, data: new Float32Array(aligned.buffer, t.offset, t.length) });
  }
  return { key: where, meta, groups };
}

/**
 * The newest checkpoint that loads. A damaged one (corrupted or truncated objects, a COMMIT.json
 * that is not one) is reported through `warn`, naming the object and the expected and actual
 * sha256, deleted, and the next older one tried: training then redoes the steps since that one
 * (resume is exact, so the result is the same). Undefined when none is left: start over. Any other
 * failure (the store cannot be read) is thrown.
 */
export async function loadLatestCheckpoint(store: ObjectStore, warn: (message: string) => void): Promise<LoadedCheckpoint | undefined> {
  const steps = await completeCheckpoints(store);
  for (const step of steps.reverse()) {
    try {
      return await loadCheckpoint(store, step);
    } catch (err) {
      if (!(err instanceof DamagedCheckpointError)) throw err;
      warn(`${err.message}; deleting it and resuming from the checkpoint before it`);
      await deleteCheckpoint(store, step);
    }
  }
  return undefined;
}

/**
 * Deletes all but the newest `keep` complete checkpoints, and any incomplete one older than the
 * newest. `protect`: a step whose checkpoint stays whatever its age (the divergence guard's last
 * good one).
 */
export async function pruneCheckpoints(store: ObjectStore, keep: number, protect?: number): Promise<void> {
  const steps = await completeCheckpoints(store);
  const newest = steps[steps.length - 1] ?? -1;
  const doomed = new Set(steps.slice(0, Math.max(0, steps.length - keep)));
  if (protect !== undefined) doomed.delete(protect);
  const objs = await store.list(CKPT_PREFIX);
  const dirs = new Set<number>();
  for (const o of objs) {
    const m = /^ckpt\/step-(\d{9})\//.exec(o.key);
    if (m) dirs.add(Number(m[1]));
  }
  for (const s of dirs) if (!steps.includes(s) && s < newest) doomed.add(s);
  for (const s of [...doomed].sort((a, b) => a - b)) await deleteCheckpoint(store, s);
}

/** Removes every checkpoint (a fresh start). */
export async function clearCheckpoints(store: ObjectStore): Promise<void> {
  await store.deletePrefix(CKPT_PREFIX);
}

/** Deletes the complete checkpoints after `step` (a rewind: they belong to a run that diverged). */
export async function dropCheckpointsAfter(store: ObjectStore, step: number): Promise<void> {
  for (const s of (await completeCheckpoints(store)).filter((x) => x > step).reverse()) await deleteCheckpoint(store, s);
}

/** Deletes one checkpoint, its commit object first (so a half-deleted one is never "complete"). */
async function deleteCheckpoint(store: ObjectStore, step: number): Promise<void> {
  const key = checkpointKey(step);
  await store.delete(key + COMMIT);
  await store.deletePrefix(key);
}
