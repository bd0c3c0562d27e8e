/**
 * The pieces that make a data-parallel step the same global batch whatever the worker count: batch
 * slices, dropout / stochastic-depth draws picked by global row, and the loss weights of uneven
 * slices (the mean of the replicas' losses is the global loss).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as tfTypes from '@tensorflow/tfjs';
import { initBackend } from '../../pipeline/backend/select.js';
import { drawUniforms, seedModelNoise, setModelNoiseRows } from '../../pipeline/model/noise.js';
import { studentLoss } from '../../pipeline/train/loss.js';
import { sliceOf } from '../../pipeline/train/slices.js';

test('slices: contiguous, in rank order, cover the batch once, sizes differ by at most one', () => {
  for (const [count, size] of [[128, 2], [8, 3], [5, 5], [7, 4], [0, 2], [384, 3]] as const) {
    const slices = Array.from({ length: size }, (_, r) => sliceOf(count, r, size));
    assert.equal(slices[0]!.from, 0);
    assert.equal(slices.at(-1)!.to, count);
    for (let r = 1; r < size; r++) assert.equal(slices[r]!.from, slices[r - 1]!.to);
    const sizes = slices.map((s) => s.to - s.from);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `${count} over ${size}: ${sizes}`);
  }
});

test('noise rows: a worker draws exactly its rows of the global batch\'s masks', () => {
  const per = 3, total = 10;
  seedModelNoise(42);
  const global = [drawUniforms(total * per), drawUniforms(total)];
  const rows = Int32Array.from([2, 3, 4, 8, 9]);
  seedModelNoise(42);
  setModelNoiseRows({ global: rows, total });
  try {
    const mine = [drawUniforms(rows.length * per), drawUniforms(rows.length)];
    rows.forEach((g, r) => {
      assert.deepEqual(Array.from(mine[0]!.subarray(r * per, (r + 1) * per)), Array.from(global[0]!.subarray(g * per, (g + 1) * per)));
      assert.equal(mine[1]![r], global[1]![g]);
    });
    assert.throws(() => drawUniforms(7), /7 values do not split into 5 rows/);
  } finally {
    setModelNoiseRows(undefined);
  }
});

test('uneven slices: the mean of the replicas\' weighted losses is the global batch\'s loss', async () => {
  const tf = (await initBackend('cpu')).tf;
  const B = 7, P = 5, K = 4, N = 2;
  const logits = tf.randomNormal([B + P, K], 0, 1, 'float32', 3) as tfTypes.Tensor2D;
  const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1, 2], 'int32'), K).toFloat().mul(0.9).add(0.1 / K) as tfTypes.Tensor2D;
  const pt = tf.softmax(tf.randomNormal([P, K], 0, 1, 'float32', 4)) as tfTypes.Tensor2D;
  const global = studentLoss(tf, logits, ys, pt, 3).dataSync()[0]!;
  let sum = 0;
  for (let r = 0; r < N; r++) {
    const l = sliceOf(B, r, N), p = sliceOf(P, r, N);
    const nl = l.to - l.from, np = p.to - p.from;
    const local = tf.concat([logits.slice([l.from, 0], [nl, K]), logits.slice([B + p.from, 0], [np, K])]) as tfTypes.Tensor2D;
    const weights = { labeled: (nl * N) / B, pseudo: (np * N) / P };
    sum += studentLoss(tf, local, ys.slice([l.from, 0], [nl, K]), pt.slice([p.from, 0], [np, K]), 3, weights).dataSync()[0]!;
  }
  assert.ok(Math.abs(sum / N - global) < 1e-5, `mean of replicas ${sum / N} vs global ${global}`);
  // Even slices need no weights: the loss is computed exactly as with one worker.
  assert.equal(studentLoss(tf, logits, ys, pt, 3, { labeled: 1, pseudo: 1 }).dataSync()[0], global);
});
