/**
 * The ONNX teacher runs its session on a thread of its own (pipeline/inference/ort-thread.ts), on
 * real Fashion-MNIST images: the caller's thread stays free while a batch runs (the infer worker's
 * reads and decodes overlap the forward passes), the numbers are those of a session on the
 * caller's thread, and a failing forward pass fails with the model's file named, then every later
 * call too, without hanging.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOrtSession } from '../../pipeline/inference/onnxruntime.js';
import { ensureOnnx } from '../../pipeline/model/onnx-file.js';
import { ONNX_INPUT, ONNX_OUTPUT } from '../../pipeline/model/onnx-export.js';
import { loadOnnxTeacher } from '../../pipeline/pseudo/onnx-teacher.js';
import { topKOfLogits } from '../../pipeline/inference/topk.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import { needs } from '../helpers/extras.js';
import { readFashionMnist } from '../helpers/fashion-mnist.js';
import { PREPROCESSING, teacherArch, writeTeacher } from './fixtures.js';

const NEEDS = needs('fashion-mnist') || needs('onnxruntime-node');
const N = 256;
let dir: string;
let store: FileStore;
let pixels: Float32Array;

before(async () => {
  if (NEEDS) return;
  dir = mkdtempSync(join(tmpdir(), 'onnx-thread-test-'));
  store = new FileStore(dir);
  await writeTeacher(store.sub('teacher'));
  await ensureOnnx(store.sub('teacher'));
  const fm = readFashionMnist('t10k', N);
  pixels = Float32Array.from(fm.images, (v) => (v - PREPROCESSING.mean[0]!) / PREPROCESSING.std[0]!);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the caller\'s thread keeps running while a batch runs, and the results equal a session on the caller\'s thread', { skip: NEEDS }, async () => {
  const teacher = await loadOnnxTeacher(store.sub('teacher'), teacherArch(), PREPROCESSING, { threads: 1 });
  try {
    await teacher.predictTopK(pixels, N, 5); // warm-up
    // Event-loop turns of this thread during 5 forward passes of 256 images. A session run on this
    // thread blocks it for the whole pass (onnxruntime-node runs synchronously), leaving one or two
    // turns per pass; on its own thread the loop turns freely meanwhile.
    let turns = 0;
    let running = true;
    const spin = () => {
      turns++;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    const passes = 5;
    const t0 = performance.now();
    for (let i = 0; i < passes; i++) await teacher.predictTopK(pixels, N, 5);
    const ms = performance.now() - t0;
    running = false;
    assert.ok(turns > 20 * passes, `${turns} event-loop turns during ${passes} forward passes (${ms.toFixed(0)} ms): the caller's thread was blocked`);

    const threaded = await teacher.predictTopK(pixels, N, 5);
    const bytes = await store.sub('teacher').get('model.onnx');
    const direct = await createOrtSession(bytes, { threads: 1, gpu: false, spin: false });
    try {
      const out = await direct.session.run({ [ONNX_INPUT]: new direct.runtime.ort.Tensor('float32', pixels, [N, 28, 28, 1]) });
      const ref = topKOfLogits(out[ONNX_OUTPUT]!.data as Float32Array, N, 10, 5);
      assert.deepEqual(threaded.classes, ref.classes);
      assert.deepEqual(threaded.probs, ref.probs);
    } finally {
      await direct.session.release();
    }
  } finally {
    teacher.dispose();
  }
});

test('a failing forward pass names the model file; later calls fail too, nothing hangs', { skip: NEEDS }, async () => {
  const teacher = await loadOnnxTeacher(store.sub('teacher'), teacherArch(), PREPROCESSING, { threads: 1 });
  try {
    // 256 images' pixels declared as 300 images: ONNX Runtime refuses the tensor in the thread.
    await assert.rejects(teacher.predictTopK(pixels, 300, 5), (err: Error) => {
      assert.match(err.message, /teacher\/model\.onnx: ONNX Runtime thread 1\/1 failed: /);
      return true;
    });
    await assert.rejects(teacher.predictTopK(pixels, N, 5), /ONNX Runtime thread 1\/1 failed/);
  } finally {
    teacher.dispose();
  }
});
