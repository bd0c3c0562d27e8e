/**
 * The SIMD kernels (pipeline/backend/simd-kernels.ts): the committed wasm bytes are kernels.wat's,
 * and each kernel gives the cpu backend's results at the ResNet-RS shapes without leaking tensors.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type * as TfNamespace from '@tensorflow/tfjs';
import type { Tensor } from '@tensorflow/tfjs';
import { initBackend, type Tf } from '../../pipeline/backend/select.js';
import { assembleKernels, generatedPath, generatedSource } from '../../pipeline/backend/simd/assemble.js';
import { gradsOn, randomData, relativeError } from './grad-check.js';

let tf: Tf;
before(async () => {
  tf = (await initBackend('wasm')).tf;
});

/** The values of `make()` computed on `backend` (inside a tidy), checking that nothing leaks. */
async function valuesOn(backend: string, make: () => Tensor): Promise<Float32Array> {
  await tf.setBackend(backend);
  try {
    const before = tf.memory().numTensors;
    const t = tf.tidy(make);
    const v = (await t.data()) as Float32Array;
    t.dispose();
    assert.equal(tf.memory().numTensors, before, `${backend} leaked tensors`);
    return v;
  } finally {
    await tf.setBackend('wasm');
  }
}

test('the committed kernels-wasm.ts is kernels.wat assembled (npm run build:wasm)', async () => {
  const bytes = await assembleKernels();
  assert.equal(readFileSync(generatedPath, 'utf8'), generatedSource(bytes));
});

// [input shape, pool size, strides, padding]: the ResNet-D shortcut pools (2x2/2 'same' at 14, 7
// and 4 px, the odd one with a padded last window), a valid pool with a remainder, a channel count
// that is not a multiple of 4, and overlapping windows (wasm's own kernel).
const pools: [number[], number, number, 'same' | 'valid'][] = [
  [[4, 14, 14, 64], 2, 2, 'same'],
  [[4, 7, 7, 128], 2, 2, 'same'],
  [[4, 4, 4, 256], 2, 2, 'same'],
  [[3, 5, 5, 8], 2, 2, 'valid'],
  [[2, 7, 7, 3], 2, 2, 'same'],
  [[2, 9, 9, 4], 3, 3, 'same'],
  [[2, 9, 9, 4], 3, 2, 'same'],
];
for (const [shape, size, stride, pad] of pools) {
  test(`AvgPoolGrad ${size}x${size}/${stride} ${pad} on [${shape}] matches cpu`, async () => {
    const x = randomData(shape, 7);
    // A weighted sum, so every output pixel sends a different gradient back.
    const loss = (t: Tensor) => {
      const p = tf.avgPool(t as TfNamespace.Tensor4D, size, stride, pad);
      return tf.sum(tf.mul(p, tf.reshape(tf.range(1, 1 + p.size), p.shape)));
    };
    const w = await gradsOn(tf, 'wasm', [x], loss);
    const c = await gradsOn(tf, 'cpu', [x], loss);
    assert.ok(relativeError(w.grads[0]!, c.grads[0]!) <= 1e-6, `relative error ${relativeError(w.grads[0]!, c.grads[0]!)}`);
    assert.equal(w.leaked, 0);
  });
}

test('ReLU gradient is dy·step(x) bit for bit (signed zeros, NaN, odd sizes)', async () => {
  for (const n of [1, 3, 4, 5, 64 * 7 * 7 + 3]) {
    const x = randomData([n], 11 + n).values;
    const dy = randomData([n], 13 + n).values;
    if (n >= 4) {
      x[0] = NaN;
      x[1] = 0;
      x[2] = -0;
      dy[3] = -dy[3]!;
    }
    const run = (backend: string) => valuesOn(backend, () => tf.grad((t: Tensor) => tf.relu(t))(tf.tensor(x), tf.tensor(dy)));
    const w = await run('wasm');
    const c = await run('cpu');
    assert.deepEqual(new Uint8Array(w.buffer, w.byteOffset, w.byteLength), new Uint8Array(c.buffer, c.byteOffset, c.byteLength), `n=${n}`);
  }
});

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
// The direct Conv2DBackpropFilter (in channels % 4 == 0, out channels % 8 == 0) and
// Conv2DBackpropInput (in channels % 8 == 0; out channels >= 32 unless strided): the ResNet-RS layer shapes (stem, the padded
// stride-2 convs, 1x1 expand/reduce, SE on 1x1 maps, stage 4 at 2x2), then strides, paddings,
// filters and sizes a ResNet does not use.
const filterGradCases: [string, Shape4, Shape4, number | [number, number], Pad][] = [
  ['stem 3x3/1 same', [2, 28, 28, 8], [3, 3, 8, 16], 1, 'same'],
  ['stem pool conv 3x3/2 valid on the padded input', [2, 30, 30, 16], [3, 3, 16, 16], 2, 'valid'],
  ['1x1 expand', [2, 14, 14, 16], [1, 1, 16, 64], 1, 'same'],
  ['1x1 reduce', [2, 14, 14, 64], [1, 1, 64, 16], 1, 'same'],
  ['stage-2 3x3/2 valid', [2, 16, 16, 32], [3, 3, 32, 32], 2, 'valid'],
  ['3x3/1 at 4x4', [4, 4, 4, 64], [3, 3, 64, 64], 1, 'same'],
  ['3x3/1 at 2x2', [3, 2, 2, 128], [3, 3, 128, 128], 1, 'same'],
  ['SE 1x1 on 1x1 maps', [8, 1, 1, 64], [1, 1, 64, 16], 1, 'same'],
  ['1x1 with N·H·W not a multiple of 4', [1, 3, 3, 8], [1, 1, 8, 16], 1, 'same'],
  ['3x3/2 valid, even input (unused last row)', [2, 8, 10, 8], [3, 3, 8, 16], 2, 'valid'],
  ['3x3/2 same, odd input', [2, 9, 7, 8], [3, 3, 8, 8], 2, 'same'],
  ['3x3 strides [1,2] same', [2, 8, 10, 8], [3, 3, 8, 8], [1, 2], 'same'],
  ['1x1/2 valid, odd input', [2, 9, 7, 8], [1, 1, 8, 8], 2, 'valid'],
  ['7x7/2 same', [2, 11, 10, 8], [7, 7, 8, 8], 2, 'same'],
  ['explicit padding', [1, 6, 6, 8], [3, 3, 8, 8], 1, [[0, 0], [1, 2], [0, 1], [0, 0]]],
  ['explicit padding wider than the filter', [1, 5, 5, 8], [3, 3, 8, 8], 2, [[0, 0], [3, 0], [0, 3], [0, 0]]],
  // 16 channels at 14x14: the stage-1 3x3 conv, the shallowest that takes the direct forward.
  ['3x3/1 same, 16 channels at 14x14', [2, 14, 14, 16], [3, 3, 16, 16], 1, 'same'],
  // 32 channels: deep enough per tap for the direct forward and stride-1 input gradient.
  ['explicit padding, 32 channels', [1, 6, 6, 32], [3, 3, 32, 32], 1, [[0, 0], [1, 2], [0, 1], [0, 0]]],
  ['3x3/2 same, odd input, 32 channels', [2, 9, 7, 32], [3, 3, 32, 32], 2, 'same'],
  ['3x3 strides [1,2] same, 32 channels', [1, 8, 10, 32], [3, 3, 32, 32], [1, 2], 'same'],
  ['5x5/1 valid, 32 channels', [1, 9, 8, 32], [5, 5, 32, 32], 1, 'valid'],
];
for (const [name, xShape, fShape, strides, pad] of filterGradCases) {
  test(`conv gradients, ${name}: x [${xShape}], filter [${fShape}] match cpu`, async () => {
    const loss = (x: Tensor, f: Tensor) => {
      const y = tf.conv2d(x as TfNamespace.Tensor4D, f as TfNamespace.Tensor4D, strides, pad as never);
      return tf.sum(tf.mul(y, tf.reshape(tf.sin(tf.range(0, y.size)), y.shape)));
    };
    const inputs = [randomData(xShape, 21), randomData(fShape, 22)];
    const w = await gradsOn(tf, 'wasm', inputs, loss);
    const c = await gradsOn(tf, 'cpu', inputs, loss);
    for (const i of [0, 1]) {
      const e = relativeError(w.grads[i]!, c.grads[i]!);
      assert.ok(e <= 1e-4, `gradient ${i ? 'filter' : 'input'}: relative error ${e}`);
    }
    assert.equal(w.leaked, 0);
  });
}

// The direct forward conv (out channels % 8 == 0, in channels >= 16 (32 for 1x1), maps up to 16x16, no bias/activation:
// FusedConv2D as tf.layers runs the model's convs; XNNPACK's otherwise), at the same shapes plus
// the grey-input stem conv (1 input channel).
for (const [name, xShape, fShape, strides, pad] of [...filterGradCases, ['grey stem 3x3/1 same', [2, 28, 28, 1], [3, 3, 1, 8], 1, 'same'] as const]) {
  test(`conv forward, ${name}: x [${xShape}], filter [${fShape}] matches cpu`, async () => {
    const run = (backend: string) =>
      valuesOn(backend, () =>
        tf.fused.conv2d({ x: tf.tensor4d(randomData([...xShape], 31).values, [...xShape] as Shape4), filter: tf.tensor4d(randomData([...fShape], 32).values, [...fShape] as Shape4), strides, pad: pad as never }),
      );
    const w = await run('wasm');
    const c = await run('cpu');
    assert.ok(relativeError(w, c) <= 1e-5, `relative error ${relativeError(w, c)}`);
  });
}

// The matmuls multiply-add with relaxed SIMD's f32x4.relaxed_madd: one rounding on a CPU with a
// fused multiply-add (x86-64 with FMA3, every ARM64), two without. A 1x1 conv summing
// -1·1 + (1+2⁻²³)(1-2⁻²³) over its 32 input channels (the rest zero) gives -2⁻⁴⁶ fused, 0 not.
test('the conv matmuls round once per multiply-add where the CPU fuses (relaxed SIMD)', async (t) => {
  if (process.arch === 'x64' && !existsSync('/proc/cpuinfo')) return t.skip('no /proc/cpuinfo to tell whether this CPU has FMA3');
  const ci = 32;
  const x = new Float32Array(ci);
  const f = new Float32Array(ci * 8);
  [x[0], f[0]] = [-1, 1];
  [x[1], f[8]] = [1 + 2 ** -23, 1 - 2 ** -23];
  const y = await valuesOn('wasm', () => tf.fused.conv2d({ x: tf.tensor4d(x, [1, 1, 1, ci]), filter: tf.tensor4d(f, [1, 1, ci, 8]), strides: 1, pad: 'valid' }));
  const fuses = process.arch === 'arm64' || (process.arch === 'x64' && /^flags\s*:.*\bfma\b/m.test(readFileSync('/proc/cpuinfo', 'utf8')));
  assert.equal(y[0], fuses ? -(2 ** -46) : 0);
  assert.deepEqual([...y.subarray(1)], new Array(7).fill(0));
});
