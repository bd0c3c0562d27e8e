/**
 * The project's faster wasm forward kernels (Identity, Cast, Sum, Mean) give the cpu backend's
 * results, and buffer sharing keeps tfjs's memory accounting exact.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor } from '@tensorflow/tfjs';
import { initBackend, type Tf } from '../../pipeline/backend/select.js';
import { randomData, relativeError } from './grad-check.js';

let tf: Tf;
before(async () => {
  tf = (await initBackend('wasm')).tf;
});

async function onBoth(fn: () => Tensor): Promise<[Float32Array | Int32Array, Float32Array | Int32Array, number[], number[]]> {
  const w = fn();
  const wv = (await w.data()) as Float32Array;
  const ws = w.shape;
  w.dispose();
  await tf.setBackend('cpu');
  try {
    const c = fn();
    const cv = (await c.data()) as Float32Array;
    const cs = c.shape;
    c.dispose();
    return [wv, cv, ws, cs];
  } finally {
    await tf.setBackend('wasm');
  }
}

const shape = [3, 5, 4, 6];
const data = randomData(shape, 31);
const cases: { axes: number | number[]; keepDims: boolean }[] = [
  { axes: [0, 1, 2], keepDims: false }, // batch norm statistics / bias gradients
  { axes: [0, 1, 2], keepDims: true },
  { axes: [1, 2], keepDims: false }, // global average pooling
  { axes: [1, 2], keepDims: true },
  { axes: 0, keepDims: false },
  { axes: [0, 1], keepDims: true },
  { axes: [1], keepDims: false },
  { axes: [3], keepDims: false }, // innermost: wasm's own kernel
  { axes: [0, 2], keepDims: false }, // not contiguous: wasm's own kernel
  { axes: [0, 1, 2, 3], keepDims: false },
];

for (const op of ['sum', 'mean'] as const) {
  for (const c of cases) {
    test(`${op} over axes ${JSON.stringify(c.axes)}${c.keepDims ? ' keepDims' : ''} matches cpu`, async () => {
      const before = tf.memory().numTensors;
      const [w, cpu, ws, cs] = await onBoth(() => tf.tidy(() => tf[op](tf.tensor(data.values, shape), c.axes, c.keepDims)));
      assert.deepEqual(ws, cs);
      assert.ok(relativeError(w, cpu) <= 1e-5, `relative error ${relativeError(w, cpu)}`);
      assert.equal(tf.memory().numTensors, before);
    });
  }
}

test('int32 sum and rank-1 mean take the native path and stay correct', async () => {
  const [w, c] = await onBoth(() => tf.tidy(() => tf.sum(tf.tensor([[1, 2], [3, 4]], [2, 2], 'int32'), 0)));
  assert.deepEqual(Array.from(w), Array.from(c));
  const [w2, c2] = await onBoth(() => tf.tidy(() => tf.mean(tf.tensor([1, 2, 3, 4]))));
  assert.deepEqual(Array.from(w2), Array.from(c2));
});

test('clone and same-dtype cast share the buffer; disposing either keeps the other intact', async () => {
  const bytes0 = tf.memory().numBytes;
  const x = tf.tensor([1, 2, 3]);
  const y = tf.clone(x);
  const z = tf.cast(x, 'float32');
  const i = tf.tidy(() => tf.cast(tf.tensor([1.7, -2.2]), 'int32'));
  assert.deepEqual(Array.from(await i.data()), [1, -2], 'a real cast still converts');
  i.dispose();
  x.dispose();
  assert.deepEqual(Array.from(await y.data()), [1, 2, 3]);
  y.dispose();
  assert.deepEqual(Array.from(await z.data()), [1, 2, 3]);
  z.dispose();
  assert.equal(tf.memory().numBytes, bytes0);
});

const tileCases: { shape: number[]; reps: number[] }[] = [
  { shape: [1, 1, 1, 6], reps: [3, 5, 4, 1] }, // broadcasting per-channel values (what BN gradients need)
  { shape: [2, 3], reps: [3, 2] },
  { shape: [2, 1, 3, 20], reps: [1, 4, 2, 3] },
  { shape: [5], reps: [7] },
  { shape: [3, 0, 2], reps: [2, 2, 2] },
  { shape: [6000, 2], reps: [1, 3] }, // short rows: wasm's own kernel
];
for (const c of tileCases) {
  test(`tile [${c.shape}] by [${c.reps}] matches cpu`, async () => {
    const values = randomData(c.shape, 41).values;
    const [w, cpu, ws, cs] = await onBoth(() => tf.tidy(() => tf.tile(tf.tensor(values, c.shape), c.reps)));
    assert.deepEqual(ws, cs);
    assert.deepEqual(Array.from(w), Array.from(cpu));
  });
}

const sliceCases: { shape: number[]; begin: number[]; size: number[] }[] = [
  { shape: [4, 9, 9, 5], begin: [0, 1, 1, 0], size: [4, 7, 7, 5] }, // gradient of a 1-pixel zero padding
  { shape: [4, 9, 9, 5], begin: [1, 0, 2, 1], size: [2, -1, 3, 3] },
  { shape: [4, 9, 9, 5], begin: [2, 0, 0, 0], size: [2, 9, 9, 5] }, // one contiguous block
  { shape: [7, 300], begin: [1, 3], size: [5, 280] }, // long rows
  { shape: [10], begin: [3], size: [4] },
  { shape: [2, 3, 4, 5, 6], begin: [1, 1, 0, 2, 3], size: [1, 2, 4, 2, 3] },
  { shape: [3, 4], begin: [1, 1], size: [0, 2] },
];
for (const c of sliceCases) {
  test(`slice [${c.shape}] at [${c.begin}] size [${c.size}] matches cpu`, async () => {
    const values = randomData(c.shape, 43).values;
    const [w, cpu, ws, cs] = await onBoth(() => tf.tidy(() => tf.slice(tf.tensor(values, c.shape), c.begin, c.size)));
    assert.deepEqual(ws, cs);
    assert.deepEqual(Array.from(w), Array.from(cpu));
  });
}
