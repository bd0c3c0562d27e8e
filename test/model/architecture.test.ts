/**
 * Structure of the built ResNet-RS graph (Bello et al. 2021, "Revisiting ResNets", arXiv 2103.07579 §4.1, and the released code:
 * https://github.com/tensorflow/tpu/blob/7dc921f846c9e4071f3884b768a7ddf521272a49/models/official/resnet/resnet_model.py) and the behaviour of the custom noise
 * layers (stochastic depth, seeded dropout): per-stage drop rates, masks, determinism from a seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getTf, initBackend } from '../../pipeline/backend/select.js';
import { FASHION_MNIST_MODEL, stageDropRate } from '../../pipeline/model/family.js';
import { registerModelLayers } from '../../pipeline/model/layers.js';
import { modelNoiseState, seedModelNoise, setModelNoiseState } from '../../pipeline/model/noise.js';
import { archOf, buildModel } from '../../pipeline/model/resnet-rs.js';

await initBackend('wasm');
const tf = getTf();

test('graph follows the released ResNet-RS layout', () => {
  const m = buildModel({ name: 'resnet-rs-50', imageSize: 64, stochasticDepthRate: 0.1 });
  try {
    const cfg = (name: string) => m.getLayer(name).getConfig() as Record<string, unknown>;
    const classOf = (name: string) => m.getLayer(name).getClassName();
    // Stem: 3x3 convs 32/32/64, first one stride 2 with fixed padding, then the 3x3 s2 pool conv.
    assert.deepEqual(
      ['stem_conv1', 'stem_conv2', 'stem_conv3', 'stem_pool_conv'].map((n) => [cfg(n).filters, cfg(n).strides, cfg(n).padding]),
      [[32, [2, 2], 'valid'], [32, [1, 1], 'same'], [64, [1, 1], 'same'], [64, [2, 2], 'valid']],
    );
    assert.deepEqual(cfg('stem_conv1_pad').padding, [[1, 1], [1, 1]]);
    assert.ok(!m.layers.some((l) => l.getClassName() === 'MaxPooling2D'), 'no max pool: replaced by a conv');
    // Stride on the 3x3 conv of downsampling blocks; ResNet-D shortcut: avg pool 2x2 s2 -> 1x1 conv -> BN.
    assert.deepEqual(cfg('s2b1_conv1').strides, [1, 1]);
    assert.deepEqual(cfg('s2b1_conv2').strides, [2, 2]);
    assert.deepEqual([cfg('s2b1_short_pool').poolSize, cfg('s2b1_short_pool').strides], [[2, 2], [2, 2]]);
    assert.deepEqual([cfg('s2b1_short_conv').kernelSize, cfg('s2b1_short_conv').strides], [[1, 1], [1, 1]]);
    assert.equal(classOf('s2b1_short_bn'), 'BatchNormalization');
    assert.throws(() => m.getLayer('s1b1_short_pool'), 'stage 1 shortcut has no pool');
    assert.equal(cfg('s1b1_short_conv').filters, 256);
    assert.throws(() => m.getLayer('s1b2_short_conv'), 'identity shortcut after the first block');
    // Biases only on SE convs and the FC; BN eps 1e-5 everywhere.
    for (const l of m.layers) {
      const c = l.getConfig() as Record<string, unknown>;
      if (l.getClassName() === 'Conv2D') assert.equal(c.useBias, /_se_(reduce|expand)$/.test(l.name), `${l.name} useBias`);
      if (l.getClassName() === 'BatchNormalization') assert.equal(c.epsilon, 1e-5, l.name);
    }
    assert.equal(cfg('logits').useBias, true);
    // SE: reduced width = 0.25 x block output (= bottleneck width).
    assert.deepEqual([cfg('s1b1_se_reduce').filters, cfg('s4b3_se_reduce').filters], [64, 512]);
    assert.deepEqual([cfg('s1b1_se_reduce').activation, cfg('s1b1_se_expand').activation], ['relu', 'sigmoid']);
    // Zero-initialised gamma on each block's last BN only.
    const gamma = (name: string) => Array.from(m.getLayer(name).getWeights()[0]!.dataSync());
    assert.ok(gamma('s3b4_bn3').every((v) => v === 0));
    assert.ok(gamma('s3b4_bn2').every((v) => v === 1));
    // Official per-stage stochastic-depth schedule: 0.4/0.6/0.8/1.0 x rate.
    const rates = [1, 2, 3, 4].map((s) => (m.getLayer(`s${s}b1_drop_path`) as unknown as { rate: number }).rate);
    assert.deepEqual(rates.map((r) => +r.toFixed(6)), [0.04, 0.06, 0.08, 0.1]);
    assert.equal(stageDropRate(0.2, 4), 0.2);
    assert.equal(archOf(m)?.depth, 50);
  } finally {
    m.dispose();
  }
});

test('small-input variant keeps 28x28 through the first stem conv', () => {
  const m = buildModel({ name: FASHION_MNIST_MODEL });
  try {
    assert.deepEqual(m.inputs[0]!.shape, [null, 28, 28, 1]);
    assert.deepEqual(m.getLayer('stem_conv1').outputShape, [null, 28, 28, 8]);
    assert.deepEqual(m.getLayer('stem_pool_conv').outputShape, [null, 14, 14, 16]);
    assert.deepEqual(m.getLayer('s4b2_out').outputShape, [null, 2, 2, 512]);
  } finally {
    m.dispose();
  }
});

test('stochastic depth: per-sample keep or drop in training, identity at inference, seeded', () => {
  const { StochasticDepth } = registerModelLayers(tf);
  const layer = new StochasticDepth({ rate: 0.3 });
  const x = tf.ones([400, 2, 2, 3]);
  const before = tf.memory().numTensors;
  const inference = layer.apply(x, { training: false }) as ReturnType<typeof tf.ones>;
  assert.deepEqual(Array.from(inference.dataSync()), Array.from(x.dataSync()));
  seedModelNoise(7);
  const run = () => {
    const y = layer.apply(x, { training: true }) as ReturnType<typeof tf.ones>;
    const v = y.arraySync() as number[][][][];
    y.dispose();
    return v;
  };
  const a = run();
  // Each sample is all 0 or all 1/(1-rate); roughly `rate` of them are dropped.
  let dropped = 0;
  for (const sample of a) {
    const vals = new Set(sample.flat(2));
    assert.equal(vals.size, 1);
    const v = [...vals][0]!;
    assert.ok(v === 0 || Math.abs(v - 1 / 0.7) < 1e-6, `value ${v}`);
    if (v === 0) dropped++;
  }
  assert.ok(dropped > 80 && dropped < 160, `dropped ${dropped}/400 at rate 0.3`);
  // Same seed -> same masks; the next call differs; restoring the state replays it.
  const state = modelNoiseState();
  const b = run();
  assert.notDeepEqual(b, a);
  setModelNoiseState(state);
  assert.deepEqual(run(), b);
  seedModelNoise(7);
  assert.deepEqual(run(), a);
  inference.dispose();
  assert.equal(tf.memory().numTensors, before, 'no leaked tensors');
  x.dispose();
});

test('seeded dropout: inverted dropout masks from the model noise generator', () => {
  const { SeededDropout } = registerModelLayers(tf);
  const layer = new SeededDropout({ rate: 0.25 });
  const x = tf.ones([50, 40]);
  seedModelNoise(3);
  const y1 = Array.from((layer.apply(x, { training: true }) as typeof x).dataSync());
  const zeros = y1.filter((v) => v === 0).length;
  assert.ok(zeros > 0.2 * 2000 && zeros < 0.3 * 2000, `zeros ${zeros}/2000`);
  assert.ok(y1.every((v) => v === 0 || Math.abs(v - 1 / 0.75) < 1e-6));
  seedModelNoise(3);
  assert.deepEqual(Array.from((layer.apply(x, { training: true }) as typeof x).dataSync()), y1);
  assert.deepEqual(Array.from((layer.apply(x) as typeof x).dataSync()), Array.from(x.dataSync()));
  assert.throws(() => new SeededDropout({ rate: 1 }), /rate must be in \[0, 1\)/);
});
