/**
 * A small conv net (conv-BN-relu, max pool, strided conv-BN-relu, 1x1 conv, dense) trains on real
 * Fashion-MNIST images on the wasm backend: every conv gradient goes through the project's kernels
 * (wasm 4.22 alone cannot run this at all) and BN through the replacement gradient.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor, Tensor4D } from '@tensorflow/tfjs';
import { initBackend } from '../../pipeline/backend/select.js';
import { at } from '../../pipeline/checked.js';
import { needs } from '../helpers/extras.js';
import { fashionMnistFloats } from '../helpers/fashion-mnist.js';

test('conv-BN-relu-pool-dense net on Fashion-MNIST: wasm training drives the loss down', { skip: needs('fashion-mnist') }, async () => {
  const { tf } = await initBackend('wasm');
  tf.util.assert(tf.getBackend() === 'wasm', () => 'expected wasm');
  const n = 256;
  const { images, labels, size } = fashionMnistFloats('train', n);
  const x = tf.tensor4d(images, [n, size, size, 1]);
  const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);

  const L = tf.layers;
  const model = tf.sequential({
    layers: [
      L.conv2d({ inputShape: [size, size, 1], filters: 8, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }),
      L.batchNormalization({ epsilon: 1e-5 }),
      L.activation({ activation: 'relu' }),
      L.maxPooling2d({ poolSize: 2, strides: 2 }),
      L.conv2d({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: 2 }) }),
      L.batchNormalization({ epsilon: 1e-5 }),
      L.activation({ activation: 'relu' }),
      L.conv2d({ filters: 16, kernelSize: 1, padding: 'valid', kernelInitializer: tf.initializers.heNormal({ seed: 3 }) }),
      L.flatten(),
      L.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
    ],
  });
  const optimizer = tf.train.adam(0.01);
  const lossOn = (xs: Tensor, ys: Tensor) => tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as Tensor);
  // Batch statistics (training mode) in evaluation too: 24 steps are too few for BN's moving
  // averages (momentum 0.99) to describe the data, and they are not what is under test.
  const logits = () => model.apply(x, { training: true }) as Tensor;
  const evalLoss = () => tf.tidy(() => at(tf.losses.softmaxCrossEntropy(y, logits()).dataSync(), 0, 'loss'));

  const batch = 64;
  const initial = evalLoss();
  let tensorsAfterFirstStep = 0;
  for (let epoch = 0; epoch < 6; epoch++) {
    for (let start = 0; start < n; start += batch) {
      const cost = optimizer.minimize(() => tf.tidy(() => lossOn(tf.slice(x, start, batch) as Tensor4D, tf.slice(y, start, batch))) as never, true);
      assert.ok(Number.isFinite(cost!.dataSync()[0]), `loss is not finite at epoch ${epoch}`);
      cost!.dispose();
      if (!tensorsAfterFirstStep) tensorsAfterFirstStep = tf.memory().numTensors;
    }
  }
  const final = evalLoss();
  const accuracy = tf.tidy(() => at(tf.mean(tf.cast(tf.equal(tf.argMax(logits(), 1), tf.argMax(y, 1)), 'float32')).dataSync(), 0, 'accuracy'));
  assert.equal(tf.memory().numTensors, tensorsAfterFirstStep, 'tensors leak per training step');
  assert.ok(final < 0.5 * initial, `loss went from ${initial.toFixed(3)} to ${final.toFixed(3)}`);
  assert.ok(accuracy > 0.8, `training accuracy ${accuracy}`);
  console.log(`fashion-mnist on wasm: loss ${initial.toFixed(3)} -> ${final.toFixed(3)}, train accuracy ${(accuracy * 100).toFixed(1)}%`);
  tf.dispose([x, y]);
  model.dispose();
});
