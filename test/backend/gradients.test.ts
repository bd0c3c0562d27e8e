/**
 * The project's replacement gradients (pipeline/backend/gradients.ts) against autodiff of the
 * unfused formulas, on wasm and on cpu: batch norm (the op tf.layers' BatchNormalization runs)
 * and mean.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor } from '@tensorflow/tfjs';
import { initBackend, type Tf } from '../../pipeline/backend/select.js';
import { at } from '../../pipeline/checked.js';
import { gradsOn, randomData, relativeError } from './grad-check.js';

const TOLERANCE = 1e-4;
let tf: Tf;
before(async () => {
  tf = (await initBackend('wasm')).tf;
});

type Data = { shape: number[]; values: Float32Array };
const positive = (d: Data): Data => ({ shape: d.shape, values: d.values.map((v) => v * v + 0.5) });

/** `fused` (uses the replaced gradient) and `reference` (elementwise ops only) must agree. */
async function assertSameGradients(backend: string, inputs: Data[], fused: (...t: Tensor[]) => Tensor, reference: (...t: Tensor[]) => Tensor) {
  const a = await gradsOn(tf, backend, inputs, fused);
  const b = await gradsOn(tf, backend, inputs, reference);
  assert.equal(a.leaked, 0, 'tensors leaked');
  assert.ok(Math.abs(a.value - b.value) <= TOLERANCE * Math.max(1, Math.abs(b.value)), `loss ${a.value} vs ${b.value}`);
  a.grads.forEach((g, i) => {
    const err = relativeError(g, b.grads[i]);
    assert.ok(err <= TOLERANCE, `${backend}: gradient of input ${i} [${inputs[i]?.shape}]: relative error ${err.toExponential(2)}`);
  });
}

const unfusedBatchNorm = (x: Tensor, mean: Tensor, variance: Tensor, offset: Tensor, scale: Tensor, eps: number) =>
  tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), scale), offset);

for (const backend of ['wasm', 'cpu']) {
  describe(`replacement gradients on ${backend}`, () => {
    const x = randomData([3, 5, 4, 6], 11);
    const weights = randomData([3, 5, 4, 6], 12);
    const w = () => tf.tensor(weights.values, weights.shape);

    test('batch norm with independent per-channel mean/variance/scale/offset', () =>
      assertSameGradients(
        backend,
        [x, randomData([6], 13), positive(randomData([6], 14)), randomData([6], 15), randomData([6], 16)],
        (a, m, v, o, s) => tf.sum(tf.mul(tf.batchNorm(a, m, v, o, s, 1e-3), w())),
        (a, m, v, o, s) => tf.sum(tf.mul(unfusedBatchNorm(a, m, v, o, s, 1e-3), w())),
      ));

    test('batch norm in training mode (statistics from moments, as tf.layers does)', () =>
      assertSameGradients(
        backend,
        [x, randomData([6], 15), randomData([6], 16)],
        (a, o, s) => {
          const { mean, variance } = tf.moments(a, [0, 1, 2]);
          return tf.sum(tf.mul(tf.batchNorm(a, mean, variance, o, s, 1e-5), w()));
        },
        (a, o, s) => {
          const mean = tf.div(tf.sum(a, [0, 1, 2]), 60);
          const variance = tf.div(tf.sum(tf.square(tf.sub(a, mean)), [0, 1, 2]), 60);
          return tf.sum(tf.mul(unfusedBatchNorm(a, mean, variance, o, s, 1e-5), w()));
        },
      ));

    test('batch norm with keep-dims statistics [1,1,1,C]', () =>
      assertSameGradients(
        backend,
        [x, randomData([1, 1, 1, 6], 17), positive(randomData([1, 1, 1, 6], 18)), randomData([1, 1, 1, 6], 15), randomData([1, 1, 1, 6], 16)],
        (a, m, v, o, s) => tf.sum(tf.mul(tf.batchNorm(a, m, v, o, s, 1e-3), w())),
        (a, m, v, o, s) => tf.sum(tf.mul(unfusedBatchNorm(a, m, v, o, s, 1e-3), w())),
      ));

    // A weighted sum, not a sum of squares: Σ BN(x)² is nearly constant in x, so its gradient is
    // float noise around zero and no tolerance would mean anything.
    test('batch norm on a rank-2 (dense) input', () =>
      assertSameGradients(
        backend,
        [randomData([7, 5], 19), randomData([5], 20), randomData([5], 21), randomData([7, 5], 22)],
        (a, o, s, k) => {
          const { mean, variance } = tf.moments(a, [0]);
          return tf.sum(tf.mul(tf.batchNorm(a, mean, variance, o, s, 1e-5), k));
        },
        (a, o, s, k) => {
          const mean = tf.div(tf.sum(a, [0]), 7);
          const variance = tf.div(tf.sum(tf.square(tf.sub(a, mean)), [0]), 7);
          return tf.sum(tf.mul(unfusedBatchNorm(a, mean, variance, o, s, 1e-5), k));
        },
      ));

    for (const axes of [[1, 2], [0, 1, 2], [3], [0, 1, 2, 3]]) {
      test(`mean over axes [${axes}]`, () =>
        assertSameGradients(
          backend,
          [x],
          (a) => tf.sum(tf.square(tf.mean(a, axes))),
          (a) => tf.sum(tf.square(tf.div(tf.sum(a, axes), axes.reduce((n, i) => n * x.shape[i]!, 1)))), // axes within x's rank
        ));
    }

    for (const axes of [[1, 2], [0, 1, 2], [3], [0, 2]]) {
      test(`sum over axes [${axes}]: the gradient is the upstream gradient broadcast back`, async () => {
        const reduced = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
        const up = randomData(reduced, 23);
        const got = await gradsOn(tf, backend, [x], (a) => tf.sum(tf.mul(tf.sum(a, axes, true), tf.tensor(up.values, reduced))));
        assert.equal(got.leaked, 0);
        const expected = tf.tidy(() => tf.mul(tf.tensor(up.values, reduced), tf.ones(x.shape)).dataSync());
        assert.ok(relativeError(at(got.grads, 0, 'gradient of x'), expected) <= 1e-6);
      });
    }
  });
}
