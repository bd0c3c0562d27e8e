/**
 * The in-place update on the wasm heap (pipeline/train/fused-update.ts) against the tf-op path it
 * replaces (MomentumSgd.apply, the moving-statistics writes, WeightEma.update): bit for bit, over
 * many steps with changing learning rates, through the EMA warm-up, with and without Nesterov,
 * starting where tfjs shares memory between tensors (each EMA shadow starts as the weight's memory),
 * and with a convolution using the weights between steps (the wasm backend caches XNNPACK operators
 * with packed filters: an update must reach the next forward pass). And the L2 penalty's gradient
 * added to the flat gradient vector against the same gradient taken by autodiff.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as tfTypes from '@tensorflow/tfjs';
import { initBackend } from '../../pipeline/backend/select.js';
import { WeightEma } from '../../pipeline/train/ema.js';
import { applyFusedUpdate, heapBackend } from '../../pipeline/train/fused-update.js';
import { MomentumSgd } from '../../pipeline/train/optimizer.js';
import { Sfc32 } from '../../pipeline/train/rng.js';
import { addL2Gradient, l2Penalty, l2PenaltyOf } from '../../pipeline/train/weight-decay.js';

const { tf } = await initBackend('wasm');

const shapes = [[3, 3, 4, 8], [8], [17], [5, 10]];
const movingShapes = [[8], [8]];

function randomArray(n: number, r: Sfc32, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => (r.next() * 2 - 1) * scale);
}

/** Trainable + moving variables with the same random values in every call (seeded). */
function makeModel() {
  const r = new Sfc32(7);
  const vars = shapes.map((s) => tf.variable(tf.tensor(randomArray(s.reduce((a, b) => a * b), r, 0.5), s)));
  const moving = movingShapes.map((s) => tf.variable(tf.tensor(randomArray(s.reduce((a, b) => a * b), r, 1)), false));
  return { vars, moving, weights: [...vars, ...moving] };
}

const bits = (ts: tfTypes.Tensor[]) => ts.map((t) => Buffer.from((t.dataSync() as Float32Array).buffer).toString('base64'));

for (const nesterov of [true, false]) {
  test(`fused update = tf ops, bit for bit (nesterov ${nesterov}, 40 steps, averaged moving statistics)`, () => {
    const backend = heapBackend(tf);
    assert.ok(backend, 'the wasm backend exposes its heap');
    const a = makeModel();
    const b = makeModel();
    const optA = new MomentumSgd(tf, a.vars, 0.9, nesterov);
    const optB = new MomentumSgd(tf, b.vars, 0.9, nesterov);
    const emaA = new WeightEma(tf, a.weights.map(asLayerVariable), 0.999, true);
    const emaB = new WeightEma(tf, b.weights.map(asLayerVariable), 0.999, true);
    // The EMA shadows start as the weights' own memory: a write in place would change both.
    assert.ok(backend.refCount(b.vars[0]!.dataId) > 1, 'the test starts from shared memory');
    const r = new Sfc32(11);
    const gradSize = shapes.reduce((n, s) => n + s.reduce((x, y) => x * y), 0);
    const movingSize = movingShapes.reduce((n, s) => n + s.reduce((x, y) => x * y), 0);
    const x = tf.tensor4d(randomArray(2 * 6 * 6 * 4, r, 1), [2, 6, 6, 4]);
    const conv = (f: tfTypes.Tensor) => tf.tidy(() => tf.conv2d(x, f as tfTypes.Tensor4D, 1, 'same').dataSync() as Float32Array);
    for (let step = 0; step < 40; step++) {
      // The filter and its EMA, as training and the held-out evaluation use them.
      assert.deepEqual(conv(b.vars[0]!), conv(a.vars[0]!), `step ${step}: convolution with the weights`);
      assert.deepEqual(conv(emaB.shadows[0]!), conv(emaA.shadows[0]!), `step ${step}: convolution with the EMA weights`);
      const lr = 0.1 * (1 - step / 40) + 1e-3 * r.next();
      const flat = randomArray(gradSize + movingSize + 1, r, 3);
      // The tf-op path, as Replica.step ran it: gradient tensors, moving statistics written, SGD, EMA.
      let offset = 0;
      const next = (v: tfTypes.Variable) => {
        offset += v.size;
        return tf.tensor(flat.slice(offset - v.size, offset), v.shape);
      };
      const grads = a.vars.map(next);
      for (const v of a.moving) v.assign(next(v));
      optA.apply(grads, lr);
      emaA.update(step + 1);
      tf.dispose(grads);
      applyFusedUpdate(tf, backend, { vars: b.vars, opt: optB, moving: b.moving, weights: b.weights, ema: emaB }, flat, lr, step + 1, true);
    }
    assert.deepEqual(bits(b.vars), bits(a.vars), 'weights');
    assert.deepEqual(bits(optB.slots), bits(optA.slots), 'momentum slots');
    assert.deepEqual(bits(b.moving), bits(a.moving), 'moving statistics');
    assert.deepEqual(bits(emaB.shadows), bits(emaA.shadows), 'EMA shadows');
    // And the update really moved everything (a no-op on both sides would also be equal).
    const start = makeModel();
    assert.notDeepEqual(bits(b.vars), bits(start.vars));
    assert.notDeepEqual(bits(emaB.shadows), bits(start.weights));
    for (const m of [a, b, start]) tf.dispose(m.weights);
    x.dispose();
    for (const x of [optA, optB, emaA, emaB]) x.dispose();
  });
}

test('without averaged moving statistics (one replica), the moving statistics are left as they are', () => {
  const backend = heapBackend(tf)!;
  const m = makeModel();
  const before = bits(m.moving);
  const opt = new MomentumSgd(tf, m.vars, 0.9, true);
  const flat = randomArray(1000, new Sfc32(3), 1);
  applyFusedUpdate(tf, backend, { vars: m.vars, opt, moving: m.moving, weights: m.weights }, flat, 0.1, 1, false);
  assert.deepEqual(bits(m.moving), before);
  opt.dispose();
  tf.dispose(m.weights);
});

/** WeightEma reads weights through LayerVariable.read(); a plain variable stands in for one. */
function asLayerVariable(v: tfTypes.Variable): tfTypes.LayerVariable {
  return { read: () => v, name: v.name } as unknown as tfTypes.LayerVariable;
}

test('the L2 penalty gradient added to the flat gradients (addL2Gradient) = autodiff of data loss + l2Penalty, bit for bit; its sums of squares give the penalty', () => {
  const r = new Sfc32(11);
  // Weights over many magnitudes, and data gradients both far smaller and far larger than the
  // decay term, so the float32 rounding of the product and of the sum both show.
  const sizes = shapes.map((s) => s.reduce((a, b) => a * b));
  const values = sizes.map((n) => Float32Array.from({ length: n }, () => (r.next() * 2 - 1) * 10 ** Math.floor(r.next() * 8 - 4)));
  const dataGrads = sizes.map((n) => Float32Array.from({ length: n }, () => (r.next() * 2 - 1) * 10 ** Math.floor(r.next() * 10 - 8)));
  const vars = shapes.map((s, i) => tf.variable(tf.tensor(values[i]!, s)));
  const layerVars = vars.map(asLayerVariable);
  for (const wd of [5e-4, 4e-5, 0.1]) {
    // Autodiff: a data term whose gradient is exactly dataGrads (d/dv sum(g·v) = g), plus the penalty.
    const { grads } = tf.variableGrads(
      () => tf.addN(vars.map((v, i) => tf.sum(tf.mul(v, tf.tensor(dataGrads[i]!, v.shape))))).add(l2Penalty(tf, layerVars, wd)) as tfTypes.Scalar,
      vars,
    );
    let squares = 0;
    vars.forEach((v, i) => {
      const flat = Float32Array.from(dataGrads[i]!);
      squares += addL2Gradient(values[i]!, wd, flat, 0);
      const viaTape = grads[v.name]!.dataSync() as Float32Array;
      assert.equal(Buffer.from(flat.buffer).toString('base64'), Buffer.from(viaTape.buffer).toString('base64'), `variable ${i}, wd ${wd}`);
    });
    tf.dispose(Object.values(grads));
    // The penalty the loss reports, from the same loop's sums of squares: l2Penalty's value up to float32 summation.
    const penalty = l2Penalty(tf, layerVars, wd);
    const viaOps = penalty.dataSync()[0]!;
    penalty.dispose();
    assert.ok(viaOps > 0);
    assert.ok(Math.abs(l2PenaltyOf(squares, wd) - viaOps) <= 1e-6 * viaOps, `wd ${wd}: penalty ${l2PenaltyOf(squares, wd)} from the gradient loop, ${viaOps} from l2Penalty`);
  }
  tf.dispose(vars);
});
