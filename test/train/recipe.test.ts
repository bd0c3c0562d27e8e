/**
 * The recipe pieces, each against hand-computed values: LR schedule, weight-decay selection, label
 * smoothing, EMA warm-up, stochastic-depth rates per stage, momentum update, BN moving statistics
 * under the custom training loop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '../../pipeline/backend/select.js';
import { buildResNetRS } from '../../pipeline/model/resnet-rs.js';
import { resolveModel, stageDropRate } from '../../pipeline/model/family.js';
import { learningRate, scaledPeakLr, type ScheduleConfig } from '../../pipeline/train/schedule.js';
import { selectDecayedWeights, l2Penalty } from '../../pipeline/train/weight-decay.js';
import { smoothLabels, softCrossEntropy } from '../../pipeline/train/loss.js';
import * as loss from '../../pipeline/train/loss.js';
import { emaDecay, WeightEma } from '../../pipeline/train/ema.js';
import { MomentumSgd } from '../../pipeline/train/optimizer.js';
import { trainSection } from '../../pipeline/manifest/sections/train.js';

const { tf } = await initBackend('cpu');
const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

function tinyArch(sd = 0) {
  return resolveModel({ name: 'resnet-rs-26-w0.25-small', imageSize: 16, stochasticDepthRate: sd, dropoutRate: 0.1 }).arch;
}

test('manifest defaults are the released configs', () => {
  const c = trainSection.parse({});
  assert.equal(c.epochs, 350);
  assert.equal(c.batchSize, 4096);
  close(scaledPeakLr(c.baseLr, c.batchSize), 1.6);
  assert.equal(c.momentum, 0.9);
  assert.equal(c.weightDecay, 4e-5);
  assert.equal(c.labelSmoothing, 0.1);
  assert.equal(c.ema.decay, 0.9999);
  assert.equal(c.randAugment.layers, 2);
  assert.equal(c.schedule.type, 'cosine');
  assert.throws(() => trainSection.parse({ weightDecay: -1 }), /weightDecay/);
  assert.throws(() => trainSection.parse({ bogus: 1 }), /bogus/);
});

test('cosine schedule with linear warm-up: values at given steps', () => {
  // Model Garden RS config: peak 1.6, 109200 steps, 1560 warm-up steps.
  const cfg: ScheduleConfig = { type: 'cosine', peakLr: 1.6, totalSteps: 109200, warmupSteps: 1560, boundaries: [], stepFactor: 0.1 };
  close(learningRate(cfg, 0), 0);
  close(learningRate(cfg, 780), 0.8);
  close(learningRate(cfg, 1559), (1.6 * 1559) / 1560);
  close(learningRate(cfg, 1560), 0.5 * 1.6 * (1 + Math.cos((Math.PI * 1560) / 109200)));
  close(learningRate(cfg, 54600), 0.8); // half way: cos(pi/2) = 0
  close(learningRate(cfg, 81900), 0.5 * 1.6 * (1 + Math.cos(0.75 * Math.PI))); // 0.2343...
  close(learningRate(cfg, 109200), 0);
  // Monotone decay after warm-up.
  for (let s = 1560; s < 109200; s += 997) assert.ok(learningRate(cfg, s + 1) <= learningRate(cfg, s));
});

test('step schedule: x0.1 at 30/90, 60/90, 80/90 after warm-up', () => {
  const cfg: ScheduleConfig = { type: 'step', peakLr: 0.4, totalSteps: 900, warmupSteps: 50, boundaries: [30 / 90, 60 / 90, 80 / 90], stepFactor: 0.1 };
  close(learningRate(cfg, 25), 0.2);
  close(learningRate(cfg, 299), 0.4);
  close(learningRate(cfg, 300), 0.04);
  close(learningRate(cfg, 600), 0.004);
  close(learningRate(cfg, 899), 0.0004);
});

test('weight decay: every conv/SE/classifier weight incl. biases, no BN gamma/beta', () => {
  const model = buildResNetRS(tinyArch());
  const { decayed, excluded } = selectDecayedWeights(model);
  const cls = (w: { originalName: string }) => model.layers.find((l) => l.trainableWeights.some((t) => t.originalName === w.originalName))!.getClassName();
  assert.ok(excluded.length > 0 && excluded.every((w) => cls(w) === 'BatchNormalization'));
  assert.ok(excluded.every((w) => /\/(gamma|beta)$/.test(w.originalName)));
  assert.ok(decayed.every((w) => ['Conv2D', 'Dense'].includes(cls(w))));
  const names = decayed.map((w) => w.originalName);
  assert.ok(names.some((n) => /_se_reduce\/bias$/.test(n)), 'SE biases decayed');
  assert.ok(names.includes('logits/bias') && names.includes('logits/kernel'), 'classifier weight and bias decayed');
  assert.equal(decayed.length + excluded.length, model.trainableWeights.length);
  // Moving stats are not trainable, so never decayed.
  assert.ok(!names.some((n) => /moving/.test(n)));
  // Penalty = wd/2 * sum v^2.
  const manual = decayed.reduce((s, w) => s + (w.read().square().sum().dataSync()[0] as number), 0);
  close(l2Penalty(tf, decayed, 4e-5).dataSync()[0]!, (4e-5 / 2) * manual, 1e-5);
  model.dispose();
});

test('label smoothing: (1 - eps) onehot + eps/K, and the smoothed cross-entropy', () => {
  const y = smoothLabels(tf, tf.tensor1d([2, 0], 'int32'), 4, 0.1).arraySync();
  const hi = 0.9 + 0.025, lo = 0.025;
  y[0]!.forEach((v, k) => close(v, k === 2 ? hi : lo, 1e-6));
  y[1]!.forEach((v, k) => close(v, k === 0 ? hi : lo, 1e-6));
  const logits = [[1, 2, 3, 4], [0, 0, 0, 0]];
  const lse = (r: number[]) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
  const expected = (-(y[0]!.reduce((s, t, k) => s + t * (logits[0]![k]! - lse(logits[0]!)), 0)) - y[1]!.reduce((s, t, k) => s + t * (logits[1]![k]! - lse(logits[1]!)), 0)) / 2;
  close(softCrossEntropy(tf, tf.tensor2d(logits), tf.tensor2d(y)).dataSync()[0]!, expected, 1e-5);
});

test('EMA warm-up: min(decay, (1+t)/(10+t)) and the shadow update', () => {
  close(emaDecay(0.9999, 0), 0.1);
  close(emaDecay(0.9999, 1), 2 / 11);
  close(emaDecay(0.9999, 90), 91 / 100);
  close(emaDecay(0.9999, 89990), 89991 / 90000);
  close(emaDecay(0.9999, 89991), 0.9999); // (89992/90001) > 0.9999
  close(emaDecay(0.9999, 10 ** 7), 0.9999);
  close(emaDecay(0.9, 5, false), 0.9);
  // One update: shadow = d*shadow + (1-d)*w.
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1], kernelInitializer: 'ones', biasInitializer: 'zeros' })] });
  const ema = new WeightEma(tf, model.weights, 0.9999, true);
  model.weights[0]!.write(tf.tensor2d([[3]]));
  ema.update(1); // d = 2/11
  close(ema.shadows[0]!.dataSync()[0]!, (2 / 11) * 1 + (9 / 11) * 3, 1e-6);
  ema.dispose();
  model.dispose();
});

test('stochastic depth: per-stage rates 0.4/0.6/0.8/1.0 x rate in the built model', () => {
  [1, 2, 3, 4].forEach((s, i) => close(stageDropRate(0.1, s), [0.04, 0.06, 0.08, 0.1][i]!));
  const model = buildResNetRS(tinyArch(0.1));
  const sd = model.layers.filter((l) => l.getClassName() === 'StochasticDepth') as unknown as { name: string; rate: number }[];
  assert.equal(sd.length, 8); // [2,2,2,2] blocks
  const rates = sd.map((l) => Number(l.rate.toFixed(6)));
  assert.deepEqual(rates, [0.04, 0.04, 0.06, 0.06, 0.08, 0.08, 0.1, 0.1]);
  model.dispose();
});

test('momentum SGD: TF formulation, plain and Nesterov', () => {
  for (const nesterov of [false, true]) {
    const v = tf.variable(tf.tensor1d([1, -2]));
    const opt = new MomentumSgd(tf, [v], 0.9, nesterov);
    const g = tf.tensor1d([0.5, 1]);
    opt.apply([g], 0.1);
    opt.apply([g], 0.1);
    // accum: 0.5 -> 0.95 (x1 for first coordinate), var -= lr * (accum or g + m*accum)
    const a1 = 0.5, a2 = 0.9 * 0.5 + 0.5;
    const u1 = nesterov ? 0.5 + 0.9 * a1 : a1, u2 = nesterov ? 0.5 + 0.9 * a2 : a2;
    close(v.dataSync()[0]!, 1 - 0.1 * u1 - 0.1 * u2, 1e-6);
    close(v.dataSync()[1]!, -2 - 0.1 * 2 * u1 - 0.1 * 2 * u2, 1e-6);
    opt.dispose();
    v.dispose();
  }
});

test('BN under model.apply(x, {training: true}) in tf.variableGrads: moving stats = last batch (momentum 0)', () => {
  const model = buildResNetRS(tinyArch());
  const bn = model.getLayer('stem_bn1') ?? model.layers.find((l) => l.getClassName() === 'BatchNormalization')!;
  const vars = model.trainableWeights.map((w) => w.read() as import('@tensorflow/tfjs').Variable);
  const x = tf.randomUniform([4, 16, 16, 1], -1, 1, 'float32', 3);
  // The BN input: the stem conv's output for this batch.
  const conv = model.layers[model.layers.indexOf(bn) - 1]!;
  const sub = tf.model({ inputs: model.inputs, outputs: conv.output as import('@tensorflow/tfjs').SymbolicTensor });
  const pre = sub.predict(x) as import('@tensorflow/tfjs').Tensor;
  const { mean, variance } = tf.moments(pre, [0, 1, 2]);
  const r = tf.variableGrads(() => (model.apply(x, { training: true }) as import('@tensorflow/tfjs').Tensor).square().mean() as import('@tensorflow/tfjs').Scalar, vars);
  tf.dispose(Object.values(r.grads));
  const [mm, mv] = bn.getWeights().slice(2);
  const diff = (a: import('@tensorflow/tfjs').Tensor, b: import('@tensorflow/tfjs').Tensor) => a.sub(b).abs().max().dataSync()[0]!;
  assert.ok(diff(mm!, mean) < 1e-5, 'moving mean = batch mean');
  assert.ok(diff(mv!, variance) < 1e-4, 'moving variance = batch variance');
  assert.ok(mean.abs().max().dataSync()[0]! > 1e-4, 'the batch mean is not trivially zero');
  model.dispose();
});

test('student loss: CE(labeled, smoothed) + r x CE(pseudo, soft targets)', () => {
  const logits = tf.tensor2d([[2, 0, 0], [0, 1, 0], [0.5, 0.5, 3], [1, 2, 3], [0, 0, 0]]);
  const lab = smoothLabels(tf, tf.tensor1d([0, 1], 'int32'), 3, 0.1) as import('@tensorflow/tfjs').Tensor2D;
  const pseudo = tf.tensor2d([[0, 0.2, 0.8], [0.5, 0.5, 0], [1, 0, 0]]);
  const { studentLoss } = loss;
  const got = studentLoss(tf, logits, lab, pseudo, 1.5).dataSync()[0]!;
  const ceLab = softCrossEntropy(tf, logits.slice([0, 0], [2, 3]), lab).dataSync()[0]!;
  const ceUnl = softCrossEntropy(tf, logits.slice([2, 0], [3, 3]), pseudo).dataSync()[0]!;
  close(got, ceLab + 1.5 * ceUnl, 1e-6);
  close(studentLoss(tf, logits.slice([0, 0], [2, 3]), lab, undefined, 3).dataSync()[0]!, ceLab, 1e-6);
});
