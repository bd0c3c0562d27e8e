/**
 * Tensors saved for backprop without a kernel call each (pipeline/backend/tape-saves.ts): the demo's
 * ResNet-RS gets bit-identical gradients on real Fashion-MNIST images with the engine's own clone
 * and with the lean one, tfjs's memory accounting ends where it started, the lean path is the one
 * taken, and a higher-order gradient (which needs the engine's clone) is still right.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor, Variable } from '@tensorflow/tfjs';
import { initBackend, type Tf } from '../../pipeline/backend/select.js';
import { installLeanTapeSaves, useEngineTapeSaves } from '../../pipeline/backend/tape-saves.js';
import { buildModel } from '../../pipeline/model/resnet-rs.js';
import { registerModelLayers } from '../../pipeline/model/layers.js';
import { seedModelNoise } from '../../pipeline/model/noise.js';
import { FASHION_MNIST_MODEL } from '../../pipeline/model/family.js';
import { needs } from '../helpers/extras.js';
import { fashionMnistFloats } from '../helpers/fashion-mnist.js';

let tf: Tf;
before(async () => {
  tf = (await initBackend('wasm')).tf;
  registerModelLayers(tf);
});

/** Gradients of one training-mode step, the Identity kernel calls it made, and tfjs's tensor and byte counts before and after. */
async function step(lean: boolean, run: () => { value: Tensor; grads: Record<string, Tensor> }) {
  if (lean) installLeanTapeSaves(tf);
  else useEngineTapeSaves(tf);
  try {
    const before = tf.memory();
    let grads: Float32Array[] = [];
    const profile = await tf.profile(() => {
      const { value, grads: g } = run();
      grads = Object.values(g).map((t) => t.dataSync() as Float32Array);
      tf.dispose([value, ...Object.values(g)]);
    });
    const after = tf.memory();
    return { grads, identities: profile.kernels.filter((k) => k.name === 'Identity').length, before, after };
  } finally {
    installLeanTapeSaves(tf);
  }
}

test('the demo model on Fashion-MNIST: the same gradient bits with lean tape saves, no Identity call per saved tensor, no tensor left behind', { skip: needs('fashion-mnist') }, async () => {
  const n = 8;
  const { images, labels, size } = fashionMnistFloats('train', n);
  // The student's noise (dropout, stochastic depth), drawn from the same seed in both steps.
  const model = buildModel({ name: FASHION_MNIST_MODEL, dropoutRate: 0.3, stochasticDepthRate: 0.2 });
  const vars = model.trainableWeights.map((w) => w.read() as Variable);
  const x = tf.tensor4d(images, [n, size, size, 1]);
  const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
  const run = () => {
    seedModelNoise(7);
    return tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as Tensor) as never, vars);
  };
  try {
    const engine = await step(false, run);
    const lean = await step(true, run);
    assert.equal(lean.grads.length, vars.length);
    lean.grads.forEach((g, i) => {
      const e = engine.grads[i]!;
      assert.ok(Buffer.from(g.buffer, g.byteOffset, g.byteLength).equals(Buffer.from(e.buffer, e.byteOffset, e.byteLength)), `gradient ${i} (${vars[i]!.name}) differs`);
    });
    assert.ok(lean.grads.some((g) => g.some((v) => v !== 0)), 'the gradients are all zero: nothing was compared');
    // The engine's clone runs Identity once per saved tensor (hundreds for this model).
    assert.ok(engine.identities > 200, `the engine's clone made only ${engine.identities} Identity calls`);
    assert.ok(lean.identities < engine.identities / 4, `lean saves still made ${lean.identities} Identity calls (engine: ${engine.identities})`);
    for (const r of [engine, lean]) {
      assert.equal(r.after.numTensors, r.before.numTensors, 'tensors left behind by a step');
      assert.equal(r.after.numBytes, r.before.numBytes, 'bytes left behind by a step');
      assert.equal(r.after.numDataBuffers, r.before.numDataBuffers, 'data buffers left behind by a step');
    }
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
});

test('a second-order gradient is still right with lean tape saves (it takes the engine clone)', () => {
  installLeanTapeSaves(tf);
  // d²/dx² (x³ + sin x) = 6x − sin x
  const f = (x: Tensor) => tf.add(tf.mul(tf.mul(x, x), x), tf.sin(x));
  const xs = [-1.5, 0.25, 2];
  const second = tf.tidy(() => tf.grad((x: Tensor) => tf.grad(f)(x))(tf.tensor1d(xs)).dataSync());
  xs.forEach((x, i) => assert.ok(Math.abs(second[i]! - (6 * x - Math.sin(x))) < 1e-4, `x = ${x}: ${second[i]} instead of ${6 * x - Math.sin(x)}`));
});
