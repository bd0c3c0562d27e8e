/**
 * The project's wasm conv gradient kernels against the cpu backend's gradients (tfjs's reference
 * implementation), over the shapes a ResNet and its odd corners produce; and the other gradients
 * a ResNet trains through (pooling, mean, BN via moments, sigmoid, relu, dense, softmax) on wasm.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor, Tensor4D } from '@tensorflow/tfjs';
import { initBackend, type Tf } from '../../pipeline/backend/select.js';
import { wasmTrainingKernelNames } from '../../pipeline/backend/wasm-kernels.js';
import { gradsOn, randomData, relativeError } from './grad-check.js';

const TOLERANCE = 1e-4;
let tf: Tf;

before(async () => {
  tf = (await initBackend('wasm')).tf;
});

/** Runs `loss` on wasm and on cpu with the same data; every gradient must agree and nothing leak. */
async function assertMatchesCpu(inputs: { shape: number[]; values: Float32Array }[], loss: (...xs: Tensor[]) => Tensor): Promise<void> {
  const wasm = await gradsOn(tf, 'wasm', inputs, loss);
  const cpu = await gradsOn(tf, 'cpu', inputs, loss);
  assert.equal(wasm.leaked, 0, 'tensors leaked on wasm');
  assert.equal(cpu.leaked, 0, 'tensors leaked on cpu');
  const valueErr = Math.abs(wasm.value - cpu.value) / Math.max(1e-6, Math.abs(cpu.value));
  assert.ok(valueErr <= TOLERANCE, `loss value: wasm ${wasm.value} vs cpu ${cpu.value}`);
  wasm.grads.forEach((g, i) => {
    const err = relativeError(g, cpu.grads[i]);
    assert.ok(err <= TOLERANCE, `gradient of input ${i} [${inputs[i]?.shape}]: relative error ${err.toExponential(2)} > ${TOLERANCE}`);
  });
}

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
type Shape4 = [number, number, number, number];
const convCases: { name: string; x: Shape4; f: Shape4; s: number | [number, number]; pad: Pad }[] = [
  { name: '3x3 stride 1 same', x: [2, 7, 7, 3], f: [3, 3, 3, 4], s: 1, pad: 'same' },
  { name: '3x3 stride 1 valid', x: [2, 7, 9, 3], f: [3, 3, 3, 4], s: 1, pad: 'valid' },
  { name: '3x3 stride 2 same, odd input', x: [2, 7, 7, 3], f: [3, 3, 3, 4], s: 2, pad: 'same' },
  { name: '3x3 stride 2 same, even input (asymmetric pad)', x: [3, 8, 8, 5], f: [3, 3, 5, 6], s: 2, pad: 'same' },
  { name: '3x3 stride 2 valid, odd input', x: [2, 9, 7, 3], f: [3, 3, 3, 4], s: 2, pad: 'valid' },
  { name: '3x3 stride 2 valid, even input (unused last row)', x: [2, 8, 10, 3], f: [3, 3, 3, 4], s: 2, pad: 'valid' },
  { name: '1x1 stride 1', x: [2, 9, 6, 4], f: [1, 1, 4, 8], s: 1, pad: 'same' },
  { name: '1x1 stride 2 valid, odd input', x: [2, 9, 7, 4], f: [1, 1, 4, 8], s: 2, pad: 'valid' },
  { name: '1x1 stride 2 same, even input', x: [2, 8, 8, 4], f: [1, 1, 4, 8], s: 2, pad: 'same' },
  { name: '7x7 stride 2 same (stem)', x: [2, 11, 10, 3], f: [7, 7, 3, 8], s: 2, pad: 'same' },
  { name: '2x2 stride 2 valid (even filter)', x: [2, 10, 9, 3], f: [2, 2, 3, 5], s: 2, pad: 'valid' },
  { name: '3x2 filter, strides [1,2] same', x: [2, 10, 9, 3], f: [3, 2, 3, 5], s: [1, 2], pad: 'same' },
  { name: 'stride 3 same', x: [2, 10, 11, 2], f: [3, 3, 2, 3], s: 3, pad: 'same' },
  { name: 'explicit padding', x: [1, 6, 6, 2], f: [3, 3, 2, 3], s: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { name: 'explicit padding wider than the filter (crops dy)', x: [1, 5, 5, 2], f: [3, 3, 2, 3], s: 2, pad: [[0, 0], [3, 0], [0, 3], [0, 0]] },
  { name: 'larger: batch 4, 16 channels, stride 2', x: [4, 16, 16, 16], f: [3, 3, 16, 16], s: 2, pad: 'same' },
];

describe('wasm conv gradient kernels', () => {
  test('the kernels are registered for wasm', () => {
    for (const name of wasmTrainingKernelNames) assert.ok(tf.getKernel(name, 'wasm'), `${name} not registered for wasm`);
  });

  for (const c of convCases) {
    test(`conv2d gradients match cpu: ${c.name}`, async () => {
      // Weighting the output by a fixed random tensor makes dy non-uniform (a plain sum would not).
      const out = tf.backend_util.computeConv2DInfo(c.x, c.f, c.s, 1, c.pad).outShape;
      const weights = randomData(out, 99);
      await assertMatchesCpu([randomData(c.x, 1), randomData(c.f, 2)], (x, f) =>
        tf.sum(tf.mul(tf.conv2d(x as Tensor4D, f as Tensor4D, c.s, c.pad), tf.tensor(weights.values, out))),
      );
    });
  }

  test('conv kernels called directly release every intermediate', () => {
    const x = tf.tensor(randomData([2, 9, 9, 4], 3).values, [2, 9, 9, 4]) as Tensor4D;
    const f = tf.tensor(randomData([3, 3, 4, 6], 4).values, [3, 3, 4, 6]) as Tensor4D;
    const dy = tf.conv2d(x, f, 2, 'same');
    const tensorsBefore = tf.memory().numTensors;
    const bytesBefore = tf.memory().numBytes;
    for (let i = 0; i < 3; i++) {
      tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 2, pad: 'same', dataFormat: 'NHWC', filterShape: f.shape }) as Tensor;
      tf.conv2dTranspose(dy, f, x.shape, 2, 'same');
    }
    // 3 filter gradients + 3 input gradients were returned; nothing else may remain.
    const returnedBytes = 3 * 4 * (3 * 3 * 4 * 6 + 2 * 9 * 9 * 4);
    assert.equal(tf.memory().numTensors - tensorsBefore, 6);
    assert.equal(tf.memory().numBytes - bytesBefore, returnedBytes);
    tf.disposeVariables();
  });
});

const depthwiseCases: { name: string; x: Shape4; f: Shape4; s: number; pad: 'same' | 'valid' }[] = [
  { name: '3x3 stride 1 same', x: [2, 7, 7, 3], f: [3, 3, 3, 1], s: 1, pad: 'same' },
  { name: '3x3 stride 2 same, channel multiplier 2', x: [2, 8, 7, 3], f: [3, 3, 3, 2], s: 2, pad: 'same' },
  { name: '5x5 stride 2 valid', x: [2, 11, 9, 4], f: [5, 5, 4, 1], s: 2, pad: 'valid' },
];

describe('wasm depthwise conv gradient kernels (not in wasm 4.22)', () => {
  for (const c of depthwiseCases) {
    test(`depthwiseConv2d gradients match cpu: ${c.name}`, async () => {
      const out = tf.backend_util.computeConv2DInfo(c.x, c.f, c.s, 1, c.pad, undefined, true).outShape;
      const weights = randomData(out, 98);
      await assertMatchesCpu([randomData(c.x, 3), randomData(c.f, 4)], (x, f) =>
        tf.sum(tf.mul(tf.depthwiseConv2d(x as Tensor4D, f as Tensor4D, c.s, c.pad), tf.tensor(weights.values, out))),
      );
    });
  }
});

describe('other ResNet gradients on wasm match cpu', () => {
  const x = randomData([2, 8, 8, 4], 5);
  const w = randomData([4 * 4 * 4, 10], 6);
  const labels = new Float32Array(20).map((_, i) => (i % 10 === (i >> 1) % 10 ? 1 : 0));

  test('avgPool 2x2 stride 2 (ResNet-D shortcut)', () =>
    assertMatchesCpu([x], (a) => tf.sum(tf.square(tf.avgPool(a as Tensor4D, 2, 2, 'same')))));
  test('avgPool 3x3 stride 2 same, odd input', () =>
    assertMatchesCpu([randomData([2, 7, 7, 3], 7)], (a) => tf.sum(tf.square(tf.avgPool(a as Tensor4D, 3, 2, 'same')))));
  test('maxPool 3x3 stride 2', () =>
    assertMatchesCpu([x], (a) => tf.sum(tf.square(tf.maxPool(a as Tensor4D, 3, 2, 'same')))));
  // wasm's own MaxPoolGrad got windows whose values are all negative wrong (see wasm-kernels.ts).
  test('maxPool 2x2 stride 2 over all-negative windows', () =>
    assertMatchesCpu([{ shape: [1, 2, 4, 1], values: Float32Array.from([-3, -1, -2, -4, -5, -6, -0.5, -7]) }], (a) =>
      tf.sum(tf.mul(tf.maxPool(a as Tensor4D, 2, 2, 'valid'), tf.tensor([[[[1], [2]]]])))));
  test('global mean + sigmoid gating (squeeze-and-excitation)', () =>
    assertMatchesCpu([x], (a) => tf.sum(tf.square(tf.mul(a, tf.sigmoid(tf.mean(a, [1, 2], true)))))));
  test('relu and sum', () => assertMatchesCpu([x], (a) => tf.sum(tf.mul(tf.relu(a), tf.relu(tf.neg(tf.sub(a, 0.3)))))));
  test('batch norm over moments (training mode)', () =>
    assertMatchesCpu([x, randomData([4], 8), randomData([4], 9)], (a, gamma, beta) => {
      const { mean, variance } = tf.moments(a, [0, 1, 2]);
      return tf.sum(tf.square(tf.relu(tf.batchNorm(a, mean, variance, beta, gamma, 1e-5))));
    }));
  test('dense + softmax cross-entropy', () =>
    assertMatchesCpu([x, w], (a, k) =>
      tf.losses.softmaxCrossEntropy(tf.tensor(labels, [2, 10]), tf.matMul(tf.reshape(tf.avgPool(a as Tensor4D, 2, 2, 'same'), [2, -1]), k))));
});
