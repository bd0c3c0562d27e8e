/** The metric accumulators on hand-made cases whose answers are worked out in the comments. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsAccumulator } from '../../pipeline/report/metrics.js';
import { PrecisionAccumulator, ThresholdCurve } from '../../pipeline/report/pseudo-quality.js';

test('top-k, per-class and confusion on a worked example', () => {
  const acc = new MetricsAccumulator(['a', 'b', 'c'], [1, 2, 5]);
  acc.add(0, [0, 1, 2]); // right at rank 1
  acc.add(0, [1, 0, 2]); // rank 2
  acc.add(1, [2, 0, 1]); // rank 3
  acc.add(2, [2, 1, 0]); // rank 1
  const r = acc.result();
  assert.equal(r.samples, 4);
  // k = 5 is capped at the 3 classes: every sample is in its top-3.
  assert.deepEqual(r.topK, { '1': 0.5, '2': 0.75, '3': 1 });
  assert.equal(r.top1, 0.5);
  assert.deepEqual(r.confusion, [
    [1, 1, 0],
    [0, 0, 1],
    [0, 0, 1],
  ]);
  assert.deepEqual(r.perClass.map((c) => [c.samples, c.correct, c.accuracy]), [
    [2, 1, 0.5],
    [1, 0, 0],
    [1, 1, 1],
  ]);
});

test('a class absent from the eval set has accuracy null, not 0; bad classes are refused', () => {
  const acc = new MetricsAccumulator(['a', 'b'], [1]);
  acc.add(0, [0, 1]);
  assert.equal(acc.result().perClass[1]!.accuracy, null);
  assert.throws(() => acc.add(2, [0, 1]), /label 2 is outside the 2 classes/);
  assert.throws(() => acc.add(0, [7, 1]), /predicted class 7 is outside/);
  assert.throws(() => new MetricsAccumulator(['a', 'b'], [0]), /positive integers/);
});

test('threshold curve: cumulative from the top on the 0.01 grid, 0.3 counted at 0.3', () => {
  const c = new ThresholdCurve();
  c.add(0.3, true); // 0.3 is 0.29999… in binary: still in bin 30
  c.add(0.25, false);
  c.add(0.95, true);
  c.add(1, false);
  const pts = c.points(0.05);
  const at = (t: number) => pts.find((p) => Math.abs(p.threshold - t) < 1e-9)!;
  assert.deepEqual([at(0).kept, at(0).accuracy, at(0).coverage], [4, 0.5, 1]);
  assert.deepEqual([at(0.3).kept, at(0.3).accuracy], [3, 2 / 3]);
  assert.deepEqual([at(0.35).kept, at(0.35).accuracy], [2, 0.5]);
  assert.equal(pts.length, 20);
});

test('precision: unique and weighted by repeats; samples without ground truth are counted apart', () => {
  const p = new PrecisionAccumulator(['a', 'b']);
  p.add(0, 0, 3);
  p.add(0, 1, 1);
  p.add(1, undefined, 2);
  const r = p.result();
  assert.equal(r.precision, 0.5);
  assert.equal(r.weightedPrecision, 0.75);
  assert.equal(r.missingTruth, 1);
  assert.equal(r.perClass[1]!.precision, null);
});
