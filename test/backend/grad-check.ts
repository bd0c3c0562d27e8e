/**
 * Compares gradients computed on the wasm backend with the same computation on the pure-JS cpu
 * backend (tfjs's reference implementation), and checks that nothing leaks.
 */
import assert from 'node:assert/strict';
import type { Tensor } from '@tensorflow/tfjs';
import type { Tf } from '../../pipeline/backend/select.js';
import { at } from '../../pipeline/checked.js';

/** Max abs difference relative to the reference's largest magnitude (elementwise ratios explode near 0). */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number> | undefined): number {
  assert.ok(expected, 'no reference gradient to compare with');
  assert.equal(actual.length, expected.length, 'gradient sizes differ');
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!; // same length, asserted above
    const e = expected[i]!;
    if (!Number.isFinite(a)) return Infinity;
    diff = Math.max(diff, Math.abs(a - e));
    scale = Math.max(scale, Math.abs(e));
  }
  return scale === 0 ? diff : diff / scale;
}

/**
 * Gradients of `loss(...inputs)` with respect to every input on `backend`, as plain arrays.
 * Inputs are given as data so each backend builds its own tensors.
 */
export async function gradsOn(
  tf: Tf,
  backend: string,
  inputs: { shape: number[]; values: Float32Array }[],
  loss: (...xs: Tensor[]) => Tensor,
): Promise<{ value: number; grads: Float32Array[]; leaked: number }> {
  const previous = tf.getBackend();
  await tf.setBackend(backend);
  try {
    const xs = inputs.map((i) => tf.tensor(i.values, i.shape));
    const before = tf.memory().numTensors;
    const { value, grads } = tf.valueAndGrads((...a: Tensor[]) => loss(...a))(xs);
    const values = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
    const lossValue = at(await value.data(), 0, 'loss value');
    tf.dispose([value, ...grads]);
    const leaked = tf.memory().numTensors - before;
    tf.dispose(xs);
    return { value: lossValue, grads: values, leaked };
  } finally {
    await tf.setBackend(previous);
  }
}

/** Deterministic pseudo-random data (a fixed LCG), so a failure reproduces exactly. */
export function randomData(shape: number[], seed: number): { shape: number[]; values: Float32Array } {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    values[i] = s / 2 ** 31 - 1;
  }
  return { shape, values };
}
