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
import { NotFoundError, type ObjectStore } from '../store/types.js';
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

export async function loadCheckpoint(store: ObjectStore, step: number): Promise<LoadedCheckpoint> {
  const key = checkpointKey(step);
  const where = objectUri(store, key);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse((await store.get(key + COMMIT)).toString('utf8')) as CheckpointMeta;
  } catch (err) {
    throw new Error(`checkpoint ${where}: cannot read ${COMMIT}: ${(err as Error).message}`, { cause: err });
  }
  if (meta.format !== 'selftrain-checkpoint' || meta.version !== 1 || meta.step !== step) {
    throw new Error(`checkpoint ${where}: ${COMMIT} is not a selftrain checkpoint v1 for step ${step}`);
  }
  let blob: Buffer;
  try {
    blob = await store.get(key + TENSORS);
  } catch (err) {
    if (err instanceof NotFoundError) throw new Error(`checkpoint ${where}: ${TENSORS} is missing although ${COMMIT} exists`, { cause: err });
    throw err;
  }
  const sha = createHash('sha256').update(blob).digest('hex');
  if (blob.byteLength !== meta.bytes || sha !== meta.sha256) {
    throw new Error(`checkpoint ${where}: ${TENSORS} does not match ${COMMIT} (size ${blob.byteLength} vs ${meta.bytes}, sha256 ${sha.slice(0, 12)} vs ${meta.sha256.slice(0, 12)}): corrupted`);
  }
  // Copy into an aligned buffer: a Buffer from the pool may sit at an odd offset.
  const aligned = new Uint8Array(blob.byteLength);
  aligned.set(blob);
  const groups: Record<TensorGroup, NamedArray[]> = { weights: [], slots: [], ema: [] };
  for (const t of meta.tensors) {
    groups[t.group].push({ name: t.name, shape: t.shape, data: new Float32Array(aligned.buffer, t.offset, t.length) });
  }
  return { key: where, meta, groups };
}

/** Deletes all but the newest `keep` complete checkpoints, and any incomplete one older than the newest. */
export async function pruneCheckpoints(store: ObjectStore, keep: number): Promise<void> {
  const steps = await completeCheckpoints(store);
  const newest = steps[steps.length - 1] ?? -1;
  const doomed = new Set(steps.slice(0, Math.max(0, steps.length - keep)));
  const objs = await store.list(CKPT_PREFIX);
  const dirs = new Set<number>();
  for (const o of objs) {
    const m = /^ckpt\/step-(\d{9})\//.exec(o.key);
    if (m) dirs.add(Number(m[1]));
  }
  for (const s of dirs) if (!steps.includes(s) && s < newest) doomed.add(s);
  for (const s of [...doomed].sort((a, b) => a - b)) {
    const key = checkpointKey(s);
    await store.delete(key + COMMIT);
    await store.deletePrefix(key);
  }
}

/** Removes every checkpoint (a fresh start). */
export async function clearCheckpoints(store: ObjectStore): Promise<void> {
  await store.deletePrefix(CKPT_PREFIX);
}
