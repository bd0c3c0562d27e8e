/**
 * Training-mode batch norm as one op on wasm (pipeline/backend/batch-norm-training.ts): a patched
 * tf.layers BatchNormalization gives the stock layer's outputs, moving statistics and gradients on
 * the cpu backend, at the ResNet-RS shapes, deterministically and without leaking tensors; and a
 * whole ResNet-RS training step's gradients on real Fashion-MNIST images match the cpu backend's.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type * as TfNamespace from '@tensorflow/tfjs';
import type { Tensor } from '@tensorflow/tfjs';
import { initBackend, type Tf } from '../../pipeline/backend/select.js';
import { updateMovingStatistic, useFastTrainingBatchNorm } from '../../pipeline/backend/batch-norm-training.js';
import { buildModel } from '../../pipeline/model/resnet-rs.js';
import { FASHION_MNIST_MODEL } from '../../pipeline/model/family.js';
import { withSeededMathRandom } from '../../pipeline/train/rng.js';
import { randomData, relativeError } from './grad-check.js';
import { fashionMnistFloats } from '../helpers/fashion-mnist.js';
import { needs } from '../helpers/extras.js';

let tf: Tf;
before(async () => {
  tf = (await initBackend('wasm')).tf;
});

interface BnRun {
  y: Float32Array;
  movingMean: Float32Array;
  movingVariance: Float32Array;
  /** dx, dγ, dβ */
  grads: Float32Array[];
  kernels: string[];
  leaked: number;
}

/** One training-mode call of a (patched) BN layer on `backend`: outputs, moving stats, gradients. */
async function bnOn(backend: string, shape: number[], seed: number): Promise<BnRun> {
  await tf.setBackend(backend);
  try {
    const c = shape[shape.length - 1]!;
    // Inputs with a channel-dependent offset and scale, as activations have (tests the two-pass variance).
    const x0 = randomData(shape, seed).values.map((v, i) => 3 * v * (1 + (i % c) / c) + (i % c) - c / 2);
    const layer = useFastTrainingBatchNorm(tf, tf.layers.batchNormalization({ axis: -1, momentum: 0.9, epsilon: 1e-5 }));
    const x = tf.variable(tf.tensor(x0, shape));
    layer.build(shape);
    layer.setWeights([
      tf.tensor(randomData([c], seed + 1).values.map((v) => 1 + v / 2)),
      tf.tensor(randomData([c], seed + 2).values),
      tf.tensor(randomData([c], seed + 3).values),
      tf.tensor(randomData([c], seed + 4).values.map((v) => 1 + Math.abs(v))),
    ]);
    const weight = tf.tensor(randomData(shape, seed + 5).values, shape);
    const before = tf.memory().numTensors;
    let y: Float32Array = new Float32Array();
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() =>
        tf.tidy(() => {
          const out = layer.apply(x, { training: true }) as Tensor;
          y = out.dataSync() as Float32Array;
          return tf.sum(tf.mul(out, weight)) as TfNamespace.Scalar;
        }),
      );
      value.dispose();
      const [gamma, beta] = layer.trainableWeights.map((w) => grads[(w.read() as TfNamespace.Variable).name]!);
      const out = [grads[x.name]!, gamma!, beta!];
      return out as never;
    });
    const result = profile.result as unknown as Tensor[];
    const grads = await Promise.all(result.map((g) => g.data() as Promise<Float32Array>));
    tf.dispose(result);
    const leaked = tf.memory().numTensors - before;
    const [, , movingMean, movingVariance] = layer.getWeights().map((w) => w.dataSync() as Float32Array);
    tf.dispose([x, weight]);
    for (const v of layer.weights) v.dispose();
    return { y, movingMean: movingMean!, movingVariance: movingVariance!, grads, kernels: profile.kernelNames, leaked };
  } finally {
    await tf.setBackend('wasm');
  }
}

const shapes = [
  [8, 28, 28, 8], // stem
  [8, 14, 14, 64], // stage 1 block output
  [8, 7, 7, 128],
  [8, 4, 4, 256],
  [16, 2, 2, 512], // stage 4: few rows per channel
  [32, 12], // rank 2
];
for (const [i, shape] of shapes.entries()) {
  test(`training-mode BN on [${shape}]: outputs, moving statistics and gradients match cpu`, async () => {
    const w = await bnOn('wasm', shape, 100 + i);
    const c = await bnOn('cpu', shape, 100 + i);
    assert.ok(w.kernels.includes('SelftrainBatchNormTrain') && w.kernels.includes('SelftrainBatchNormTrainGrad'), `fast path not taken: ${w.kernels}`);
    assert.ok(!c.kernels.includes('SelftrainBatchNormTrain'));
    const checks: [string, Float32Array, Float32Array, number][] = [
      ['y', w.y, c.y, 1e-5],
      ['moving mean', w.movingMean, c.movingMean, 1e-5],
      ['moving variance', w.movingVariance, c.movingVariance, 1e-5],
      ['dx', w.grads[0]!, c.grads[0]!, 1e-4],
      ['dgamma', w.grads[1]!, c.grads[1]!, 1e-4],
      ['dbeta', w.grads[2]!, c.grads[2]!, 1e-5],
    ];
    for (const [name, a, b, tol] of checks) assert.ok(relativeError(a, b) <= tol, `${name}: relative error ${relativeError(a, b)}`);
    assert.equal(w.leaked, 0, 'tensors leaked on wasm');
  });
}

test('training-mode BN on wasm is deterministic (same inputs, same bytes)', async () => {
  const a = await bnOn('wasm', [8, 14, 14, 64], 7);
  const b = await bnOn('wasm', [8, 14, 14, 64], 7);
  for (const [x, y] of [[a.y, b.y], ...a.grads.map((g, i) => [g, b.grads[i]!])] as [Float32Array, Float32Array][]) {
    assert.deepEqual(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), new Uint8Array(y.buffer, y.byteOffset, y.byteLength));
  }
});

test("the moving-average update on the heap gives tf.layers' three tf ops bit for bit, with no kernel call", async () => {
  for (const momentum of [0, 0.9, 0.99, 0.1]) {
    for (const [i, c] of [8, 64, 512, 12].entries()) {
      // Statistics over several magnitudes, so the rounding of each op shows.
      const moving = randomData([c], 40 + i).values.map((v, k) => v * 10 ** ((k % 7) - 3));
      const batch = randomData([c], 50 + i).values.map((v, k) => v * 10 ** ((k % 5) - 2));
      const viaOps = tf.tidy(() => {
        const m = tf.tensor1d(moving);
        return tf.sub(m, tf.mul(tf.sub(m, tf.tensor1d(batch)), 1 - momentum)).dataSync() as Float32Array;
      });
      const v = tf.variable(tf.tensor1d(moving));
      const b = tf.tensor1d(batch);
      const before = tf.memory().numTensors;
      const profile = await tf.profile(() => updateMovingStatistic(tf, v, b, momentum));
      assert.deepEqual(profile.kernelNames, [], `kernels run: ${profile.kernelNames}`);
      assert.equal(tf.memory().numTensors, before);
      const got = v.dataSync() as Float32Array;
      assert.deepEqual(new Uint8Array(got.buffer, got.byteOffset, got.byteLength), new Uint8Array(viaOps.buffer, viaOps.byteOffset, viaOps.byteLength), `momentum ${momentum}, ${c} channels`);
      tf.dispose([v, b]);
    }
  }
});

test('channels not a multiple of 4 and inference take the stock path', async () => {
  const w = await bnOn('wasm', [4, 5, 5, 6], 3);
  assert.ok(!w.kernels.includes('SelftrainBatchNormTrain'));
  const layer = useFastTrainingBatchNorm(tf, tf.layers.batchNormalization({}));
  const x = tf.ones([2, 3, 3, 8]);
  const profile = await tf.profile(() => layer.apply(x, { training: false }) as Tensor);
  assert.ok(!profile.kernelNames.includes('SelftrainBatchNormTrain'));
  tf.dispose([x, profile.result as Tensor]);
  for (const v of layer.weights) v.dispose();
});

/** Gradients of a ResNet-RS training step (softmax CE on real images) w.r.t. every trainable weight. */
async function modelGradsOn(backend: string, weights: Float32Array[] | undefined, n: number) {
  await tf.setBackend(backend);
  try {
    // No dropout: its masks would differ between the runs. A seeded initialisation: both backends
    // get the same weights anyway (below), but a random draw can put a pre-activation within
    // rounding of 0, where the two backends' ReLU masks may differ and one gradient term with them.
    const model = withSeededMathRandom(7, () => buildModel({ name: FASHION_MNIST_MODEL, dropoutRate: 0, stochasticDepthRate: 0 }));
    if (weights) model.setWeights(model.weights.map((w, i) => tf.tensor(weights[i]!, w.shape as number[])));
    const { images, labels, size } = fashionMnistFloats('train', n);
    const x = tf.tensor4d(images, [n, size, size, 1]);
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
    const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as Tensor) as TfNamespace.Scalar);
    const names = model.trainableWeights.map((w) => (w.read() as TfNamespace.Variable).name);
    const out = { loss: value.dataSync()[0]!, grads: names.map((k) => grads[k]!.dataSync() as Float32Array), names, weights: model.weights.map((w) => w.read().dataSync() as Float32Array) };
    tf.dispose([value, ...Object.values(grads), x, y]);
    model.dispose();
    return out;
  } finally {
    await tf.setBackend('wasm');
  }
}

test('a ResNet-RS training step on Fashion-MNIST: every weight gradient matches cpu', { skip: needs('fashion-mnist') }, async () => {
  const n = 4; // the cpu backend needs ~6 s per image here
  const first = await modelGradsOn('wasm', undefined, n);
  // No zero weights: the zero-initialised γ of each block's last BN would zero its residual
  // branch's gradients, leaving most of the network untested.
  const weights = first.weights.map((w) => w.map((v) => (v === 0 ? 0.5 : v)));
  const w = await modelGradsOn('wasm', weights, n);
  const c = await modelGradsOn('cpu', weights, n);
  assert.ok(Math.abs(w.loss - c.loss) <= 1e-5 * Math.abs(c.loss), `loss ${w.loss} vs ${c.loss}`);
  let worst = 0;
  for (let i = 0; i < w.grads.length; i++) {
    const e = relativeError(w.grads[i]!, c.grads[i]!);
    worst = Math.max(worst, e);
    assert.ok(e <= 1e-3, `${w.names[i]}: relative error ${e}`);
  }
  console.log(`worst per-weight relative gradient error over ${w.grads.length} weights: ${worst.toExponential(2)}`);
});

test('a ResNet-RS training step on wasm is deterministic: the same gradients, byte for byte', { skip: needs('fashion-mnist') }, async () => {
  const first = await modelGradsOn('wasm', undefined, 8);
  const again = await modelGradsOn('wasm', first.weights, 8);
  const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  first.grads.forEach((g, i) => assert.deepEqual(bytes(again.grads[i]!), bytes(g), first.names[i]));
});
