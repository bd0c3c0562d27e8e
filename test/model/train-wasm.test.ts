/**
 * A small ResNet-RS (the Fashion-MNIST variant, with stochastic depth and dropout on) trains on the
 * wasm backend: the training loss on a tiny batch of real Fashion-MNIST images falls clearly.
 * Needs the project's wasm gradient kernels (pipeline/backend), registered by initBackend('wasm').
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getTf, initBackend } from '../../pipeline/backend/select.js';
import { FASHION_MNIST_MODEL } from '../../pipeline/model/family.js';
import { seedModelNoise } from '../../pipeline/model/noise.js';
import { buildModel } from '../../pipeline/model/resnet-rs.js';
import { needs } from '../helpers/extras.js';
import { fashionMnistFloats } from '../helpers/fashion-mnist.js';

test('small RS model on wasm drives the training loss down on real images', { skip: needs('fashion-mnist') }, async (t) => {
  const sel = await initBackend('wasm');
  assert.equal(sel.name, 'wasm');
  const tf = getTf();
  const batch = 32;
  const data = fashionMnistFloats('train', batch);
  const model = buildModel({ name: FASHION_MNIST_MODEL, stochasticDepthRate: 0.1, dropoutRate: 0.1 });
  seedModelNoise(1);
  const x = tf.tensor4d(data.images, [batch, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(data.labels, 'int32'), 10);
  const optimizer = tf.train.momentum(0.05, 0.9);
  const losses: number[] = [];
  for (let step = 0; step < 12; step++) {
    const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as typeof x), true);
    losses.push(loss!.dataSync()[0]!);
    loss!.dispose();
  }
  t.diagnostic(`losses: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  assert.ok(losses.every(Number.isFinite), `finite losses: ${losses.join(', ')}`);
  // Initial loss ≈ ln(10) ≈ 2.30 (zero-γ residuals and a small FC init start near uniform).
  assert.ok(Math.abs(losses[0]! - Math.log(10)) < 0.3, `initial loss ${losses[0]}`);
  const last = losses.slice(-3).reduce((a, b) => a + b, 0) / 3;
  assert.ok(last < 0.6 * losses[0]!, `loss should fall clearly: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  model.dispose();
  optimizer.dispose();
  tf.dispose([x, y]);
});
