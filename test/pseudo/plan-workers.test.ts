/** The local executor's workers x threads for each engine (stages/infer/stage.ts planWorkers). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planWorkers } from '../../stages/infer/stage.js';

test('tfjs: one single-threaded worker per core, or the workers asked for', () => {
  assert.deepEqual(planWorkers('tfjs', 2), { workers: 2, threads: 1 });
  assert.deepEqual(planWorkers('tfjs', 8, 3, 4), { workers: 3, threads: 1 });
});

test('onnx: workers x threads fill the cores; threads only on larger machines; either setting fixes the other', () => {
  assert.deepEqual(planWorkers('onnx', 2), { workers: 2, threads: 1 });
  assert.deepEqual(planWorkers('onnx', 4), { workers: 4, threads: 1 });
  assert.deepEqual(planWorkers('onnx', 8), { workers: 4, threads: 2 });
  assert.deepEqual(planWorkers('onnx', 32), { workers: 8, threads: 4 });
  assert.deepEqual(planWorkers('onnx', 8, 2), { workers: 2, threads: 4 });
  assert.deepEqual(planWorkers('onnx', 8, undefined, 8), { workers: 1, threads: 8 });
  assert.deepEqual(planWorkers('onnx', 2, undefined, 4), { workers: 1, threads: 4 });
  assert.deepEqual(planWorkers('onnx', 2, 5), { workers: 5, threads: 1 });
  assert.deepEqual(planWorkers('onnx', 4, 2, 3), { workers: 2, threads: 3 });
});
