/**
 * Conv gradient kernels on wasm: wasm's own Conv2DBackpropInput vs the project's convolution form,
 * and the project's Conv2DBackpropFilter (wasm has none), next to the forward conv, at the layer
 * shapes of the Fashion-MNIST ResNet-RS variant (batch 128). Best of 5, milliseconds. Prints only.
 *
 *   npx tsx bench/step-profile-conv-grads.ts
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels, useNativeWasmKernel } from '../pipeline/backend/wasm-kernels.js';

registerWasmTrainingKernels(tf);
if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to initialise');

type Case = [n: number, h: number, ci: number, co: number, k: number, s: number];
const cases: Case[] = [
  [128, 28, 8, 16, 3, 1],
  [128, 28, 16, 16, 3, 2],
  [128, 14, 16, 16, 3, 1],
  [128, 14, 16, 64, 1, 1],
  [128, 7, 32, 32, 3, 1],
  [128, 14, 32, 32, 3, 2],
  [128, 4, 64, 64, 3, 1],
  [128, 2, 128, 128, 3, 1],
  [128, 2, 128, 512, 1, 1],
  [8, 40, 64, 64, 3, 1],
];

function best(fn: () => tf.Tensor, reps = 5): number {
  fn().dispose();
  let min = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const r = fn();
    r.dataSync();
    r.dispose();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

const rows: string[][] = [];
for (const [n, h, ci, co, k, s] of cases) {
  const x = tf.randomNormal([n, h, h, ci]) as tf.Tensor4D;
  const f = tf.randomNormal([k, k, ci, co]) as tf.Tensor4D;
  const dy = tf.conv2d(x, f, s, 'same');
  rows.push([
    `${n}x${h}x${h}x${ci} ${k}x${k}/${s} -> ${co}`,
    best(() => tf.conv2d(x, f, s, 'same')).toFixed(1),
    best(() => tf.conv2dTranspose(dy, f, x.shape, s, 'same')).toFixed(1),
    best(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: s, pad: 'same', dataFormat: 'NHWC', filterShape: f.shape }) as tf.Tensor).toFixed(1),
  ]);
  tf.dispose([x, f, dy]);
}
useNativeWasmKernel(tf, 'Conv2DBackpropInput');
cases.forEach(([n, h, ci, co, k, s], i) => {
  const x = tf.randomNormal([n, h, h, ci]) as tf.Tensor4D;
  const f = tf.randomNormal([k, k, ci, co]) as tf.Tensor4D;
  const dy = tf.conv2d(x, f, s, 'same');
  rows[i]!.push(best(() => tf.conv2dTranspose(dy, f, x.shape, s, 'same'), 2).toFixed(1)); // one row per case, pushed above
  tf.dispose([x, f, dy]);
});
console.log('layer (input, filter/stride -> out)      forward  input-grad  filter-grad  input-grad(wasm native)   [ms]');
for (const [layer = '', forward = '', inputGrad = '', filterGrad = '', nativeInputGrad = ''] of rows) {
  console.log(`${layer.padEnd(40)} ${forward.padStart(8)} ${inputGrad.padStart(11)} ${filterGrad.padStart(12)} ${nativeInputGrad.padStart(12)}`);
}
