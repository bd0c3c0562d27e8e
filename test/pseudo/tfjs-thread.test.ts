/**
 * A tfjs teacher on the wasm backend can run its forward passes on a thread of its own
 * (pipeline/inference/tfjs-thread.ts), on real Fashion-MNIST images: the caller's thread stays free
 * while a batch runs (the infer worker's reads and decodes overlap the forward passes), the numbers
 * are bit for bit those of the model on the caller's thread, a failing forward pass names the
 * checkpoint and fails every later call without hanging, and a checkpoint that is not the
 * manifest's model is refused before any thread starts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTeacher } from '../../pipeline/pseudo/load-teacher.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import { assertThreadStaysFree } from '../helpers/event-loop.js';
import { needs } from '../helpers/extras.js';
import { readFashionMnist } from '../helpers/fashion-mnist.js';
import { PREPROCESSING, teacherArch, writeTeacher } from './fixtures.js';

const NEEDS = needs('fashion-mnist');
const N = 64;
let dir: string;
let store: FileStore;
let pixels: Float32Array;

before(async () => {
  if (NEEDS) return;
  dir = mkdtempSync(join(tmpdir(), 'tfjs-thread-test-'));
  store = new FileStore(dir);
  await writeTeacher(store.sub('teacher')); // initialises the wasm backend
  const fm = readFashionMnist('t10k', N);
  pixels = Float32Array.from(fm.images, (v) => (v - PREPROCESSING.mean[0]!) / PREPROCESSING.std[0]!);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the caller's thread keeps running while a batch runs, and the results equal the model on the caller's thread", { skip: NEEDS }, async () => {
  const threaded = await loadTeacher(store.sub('teacher'), teacherArch(), PREPROCESSING, { thread: true });
  const local = await loadTeacher(store.sub('teacher'), teacherArch(), PREPROCESSING);
  try {
    assert.equal(threaded.id, local.id);
    assert.equal(threaded.backend, local.backend, 'predictions record the same backend name');
    await threaded.predictTopK(pixels, N, 5); // warm-up
    // 5 forward passes (wasm computes synchronously on the thread that calls it).
    await assertThreadStaysFree(5, () => threaded.predictTopK(pixels, N, 5));

    // A view into a larger buffer: only the batch is sent, and the buffer may be reused at once.
    const buffer = new Float32Array(pixels.length * 2);
    buffer.set(pixels);
    const pending = threaded.predictTopK(buffer.subarray(0, pixels.length), N, 5);
    buffer.fill(0);
    const a = await pending;
    const b = await local.predictTopK(pixels, N, 5);
    assert.equal(a.k, 5);
    assert.deepEqual(a.classes, b.classes);
    assert.deepEqual(a.probs, b.probs);
  } finally {
    threaded.dispose();
    local.dispose();
  }
});

test('a failing forward pass names the checkpoint; later calls fail too, nothing hangs', { skip: NEEDS }, async () => {
  const teacher = await loadTeacher(store.sub('teacher'), teacherArch(), PREPROCESSING, { thread: true });
  try {
    // 64 images' pixels declared as 80 images: tfjs refuses the tensor in the thread.
    await assert.rejects(teacher.predictTopK(pixels, 80, 5), (err: Error) => {
      assert.match(err.message, /^teacher checkpoint .*teacher: tfjs model thread 1\/1 failed: /);
      return true;
    });
    await assert.rejects(teacher.predictTopK(pixels, N, 5), /tfjs model thread 1\/1 failed/);
  } finally {
    teacher.dispose();
  }
});

test("a checkpoint that is not the manifest's model is refused before a thread starts", { skip: NEEDS }, async () => {
  await assert.rejects(loadTeacher(store.sub('teacher'), teacherArch({ classes: 7 }), PREPROCESSING, { thread: true }), /does not match the manifest's teacher model: classes: checkpoint 10, manifest 7/);
  await assert.rejects(loadTeacher(store.sub('missing'), teacherArch(), PREPROCESSING, { thread: true }), /teacher checkpoint .*missing/);
});
