/** train.workers / evaluate.workers `auto` per backend, and the GPU list tfjs-node-gpu workers are spread over. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveWorkers, visibleGpus } from '../../pipeline/parallel/workers.js';

test('auto: cores on wasm/cpu (threads), 1 on tfjs-node, one process per visible GPU on tfjs-node-gpu', () => {
  assert.deepEqual([resolveWorkers('auto', 'wasm', { cores: 8 }).workers, resolveWorkers('auto', 'wasm', { cores: 8 }).transport], [8, 'thread']);
  assert.equal(resolveWorkers('auto', 'cpu', { cores: 2 }).workers, 2);
  assert.deepEqual([resolveWorkers('auto', 'tensorflow').workers, resolveWorkers('auto', 'tensorflow').transport], [1, 'process']);
  const gpu = resolveWorkers('auto', 'tensorflow-gpu', { gpus: ['0', '2', '5'], env: { PATH: '/bin' } });
  assert.deepEqual([gpu.workers, gpu.transport], [3, 'process']);
  assert.deepEqual([0, 1, 2, 3].map((r) => gpu.env!(r)['CUDA_VISIBLE_DEVICES']), ['0', '2', '5', '0']);
  assert.equal(gpu.env!(1)['PATH'], '/bin', 'the rest of the environment is kept');
  assert.equal(resolveWorkers('auto', 'tensorflow-gpu', { gpus: [] }).workers, 1);
  assert.equal(resolveWorkers(3, 'wasm', { cores: 8 }).workers, 3, 'an explicit count wins');
});

test('visible GPUs: CUDA_VISIBLE_DEVICES when set (empty or -1 hides all), else nvidia-smi -L', () => {
  const smi = () => 'GPU 0: NVIDIA A100 (UUID: GPU-1)\nGPU 1: NVIDIA A100 (UUID: GPU-2)\n';
  assert.deepEqual(visibleGpus({ CUDA_VISIBLE_DEVICES: '3,1' }, smi), ['3', '1']);
  assert.deepEqual(visibleGpus({ CUDA_VISIBLE_DEVICES: '' }, smi), []);
  assert.deepEqual(visibleGpus({ CUDA_VISIBLE_DEVICES: '-1' }, smi), []);
  assert.deepEqual(visibleGpus({}, smi), ['0', '1']);
  assert.deepEqual(visibleGpus({}, () => { throw new Error('nvidia-smi: not found'); }), []);
});

test('the worker count stays out of stage fingerprints (an execution setting), the stages still get it', async () => {
  const { readFileSync } = await import('node:fs');
  const { parseManifest } = await import('../../pipeline/manifest/load.js');
  const { buildChain } = await import('../../pipeline/runner/chain.js');
  const { stageFingerprint } = await import('../../pipeline/runner/fingerprint.js');
  const file = new URL('../../../manifests/fashion-mnist.yaml', import.meta.url);
  const text = readFileSync(file, 'utf8');
  const m1 = parseManifest(text, file.pathname);
  const m2 = parseManifest(text, file.pathname);
  m1.teacher.train.workers = 1;
  m2.teacher.train.workers = 2;
  m2.student.train.workers = 2;
  m2.evaluate.workers = 2;
  const prints = (m: typeof m1) => buildChain(m).map((s) => [s.id, stageFingerprint(s, {})]);
  assert.deepEqual(prints(m1), prints(m2));
  const teacher = buildChain(m2).find((s) => s.id === 'train-teacher-1')!;
  assert.ok(!('workers' in (teacher.config as { train: object }).train));
});
