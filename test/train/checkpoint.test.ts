/** Checkpoint commit protocol on a real file:// store: partial uploads ignored, pruning, corruption. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openStore } from '../../pipeline/store/open.js';
import { checkpointKey, completeCheckpoints, loadCheckpoint, pruneCheckpoints, saveCheckpoint } from '../../pipeline/train/checkpoint.js';

const groups = (v: number) => ({
  weights: [{ name: 'a/kernel', shape: [2, 3], data: Float32Array.from({ length: 6 }, (_, i) => i * v) }],
  slots: [{ name: 'a/kernel', shape: [2, 3], data: new Float32Array(6).fill(v) }],
  ema: [{ name: 'a/kernel', shape: [2, 3], data: new Float32Array(6).fill(-v) }],
});

test('only checkpoints with COMMIT.json count; round trip; prune keeps the newest K; corruption is named', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-ckpt-'));
  const store = openStore(`file://${dir}`);
  try {
    for (const step of [10, 20, 30]) await saveCheckpoint(store, step, groups(step), { step, cursor: step });
    // An interrupted upload: the blob of step 40 is there, its COMMIT.json is not.
    await store.put(checkpointKey(40) + 'tensors.bin', new Uint8Array(8));
    assert.deepEqual(await completeCheckpoints(store), [10, 20, 30]);
    const ck = await loadCheckpoint(store, 30);
    assert.equal(ck.meta.step, 30);
    assert.deepEqual(ck.meta.state, { step: 30, cursor: 30 });
    assert.deepEqual(Array.from(ck.groups.weights[0]!.data), [0, 30, 60, 90, 120, 150]);
    assert.deepEqual(Array.from(ck.groups.ema[0]!.data), new Array(6).fill(-30));
    assert.deepEqual(ck.groups.slots[0]!.shape, [2, 3]);

    await pruneCheckpoints(store, 2);
    assert.deepEqual(await completeCheckpoints(store), [20, 30]);
    const left = (await store.list('ckpt/')).map((o) => o.key);
    assert.ok(!left.some((k) => k.includes('step-000000010')), 'pruned checkpoint fully deleted');
    // The incomplete step-40 directory is newer than every complete one: kept (it may be in flight).
    assert.ok(left.some((k) => k.includes('step-000000040')));

    writeFileSync(path.join(dir, 'ckpt/step-000000030/tensors.bin'), Buffer.alloc(6 * 3 * 4, 1));
    await assert.rejects(loadCheckpoint(store, 30), /checkpoint .*step-000000030\/: tensors\.bin does not match COMMIT\.json .*corrupted/);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
