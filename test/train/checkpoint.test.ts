/** Checkpoint commit protocol on a real file:// store: partial uploads ignored, pruning, corruption named and resumed past. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openStore } from '../../pipeline/store/open.js';
import { checkpointKey, completeCheckpoints, DamagedCheckpointError, loadCheckpoint, loadLatestCheckpoint, pruneCheckpoints, saveCheckpoint } from '../../pipeline/train/checkpoint.js';

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

    // A flipped byte in the newest checkpoint, in place (as disk damage would be): named, with both
    // hashes; resume falls back to the checkpoint before it and deletes the damaged one.
    const file = path.join(dir, 'ckpt/step-000000030/tensors.bin');
    const bytes = readFileSync(file);
    const expected = createHash('sha256').update(bytes).digest('hex');
    bytes[5]! ^= 0x10;
    writeFileSync(file, bytes, { flag: 'r+' });
    const actual = createHash('sha256').update(bytes).digest('hex');
    const named = new RegExp(`checkpoint .*step-000000030/tensors\\.bin is corrupted: expected sha256 ${expected} \\(72 bytes\\), got sha256 ${actual} \\(72 bytes\\)`);
    await assert.rejects(loadCheckpoint(store, 30), (err: Error) => err instanceof DamagedCheckpointError && named.test(err.message));
    const warnings: string[] = [];
    const latest = await loadLatestCheckpoint(store, (m) => warnings.push(m));
    assert.equal(latest?.meta.step, 20, 'resumes from the checkpoint before the damaged one');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, named);
    assert.deepEqual(await completeCheckpoints(store), [20], 'the damaged checkpoint is gone');
    // Nothing usable left: undefined (start over), every damaged one reported.
    writeFileSync(path.join(dir, 'ckpt/step-000000020/COMMIT.json'), 'XXXX', { flag: 'r+' });
    assert.equal(await loadLatestCheckpoint(store, (m) => warnings.push(m)), undefined);
    assert.match(warnings[1]!, /step-000000020\/: cannot read COMMIT\.json/);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
