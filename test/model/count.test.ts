/**
 * Parameter counts and FLOPs of the ResNet-RS family. The analytic counts (the code path of
 * `selftrain model info`) are checked against the exact released numbers for every model, and
 * against tf.layers models built for real (RS-50, RS-420 and the small variants), so the builder
 * and the counter cannot drift apart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '../../pipeline/backend/select.js';
import { countResNetRS } from '../../pipeline/model/count.js';
import { FASHION_MNIST_MODEL, resolveEntry, resolveModel } from '../../pipeline/model/family.js';
import { lookupModel } from '../../pipeline/model/registry.js';
import { buildModel, buildResNetRS, type LayersModel } from '../../pipeline/model/resnet-rs.js';

// Trainable parameters, 1000 classes, 3 channels, counted from the released architecture; timm's
// param_count of the ported weights agrees to the 0.01M it prints (RS-50 35.69M:
// https://github.com/huggingface/pytorch-image-models/blob/aa4b5850/results/results-imagenet.csv).
const EXACT_PARAMS: Record<string, number> = {
  'resnet-rs-50': 35_691_912,
  'resnet-rs-101': 63_618_696,
  'resnet-rs-152': 86_621_576,
  'resnet-rs-200': 93_209_992,
  'resnet-rs-270': 129_861_448,
  'resnet-rs-350': 163_956_168,
  'resnet-rs-420': 191_891_656,
};

// Published FLOPs (2 x multiply-adds): RS-50@160 4.6 G (2 x timm's 2.29 GMACs,
// https://github.com/huggingface/pytorch-image-models/blob/aa4b5850/results/benchmark-infer-amp-nchw-pt240-cu124-rtx3090.csv),
// RS-350@256 69 G and RS-420@320 128 G (Bello et al. 2021, "Revisiting ResNets", arXiv 2103.07579
// Table 3), RS-152@256 31 G (Dai et al. 2021, CoAtNet, arXiv 2106.04803, its ImageNet-1K table).
const PAPER_GFLOPS: Array<[string, number, number]> = [
  ['resnet-rs-50', 160, 4.6],
  ['resnet-rs-152', 256, 31],
  ['resnet-rs-350', 256, 69],
  ['resnet-rs-420', 320, 128],
];

function trainableOf(m: LayersModel): number {
  return m.trainableWeights.reduce((n, w) => n + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1), 0);
}

test('analytic parameter counts equal the released models exactly', () => {
  for (const [name, exact] of Object.entries(EXACT_PARAMS)) {
    const { arch } = resolveModel({ name, classes: 1000, inputChannels: 3 });
    assert.equal(countResNetRS(arch).params, exact, name);
  }
});

test('FLOPs are within 1% of the paper table', () => {
  for (const [name, size, gflops] of PAPER_GFLOPS) {
    const { arch } = resolveModel({ name, imageSize: size });
    const got = countResNetRS(arch).flops / 1e9;
    assert.ok(Math.abs(got - gflops) / gflops < 0.01, `${name}@${size}: ${got.toFixed(2)} GFLOPs vs paper ${gflops}`);
  }
  // Feature maps at 160: 40 after the stem, stages 40/20/10/5 (timm's pool_size (5, 5) for RS-50 at 160).
  assert.deepEqual(countResNetRS(resolveModel({ name: 'resnet-rs-50' }).arch).featureSizes, [40, 20, 10, 5]);
});

test('built tf.layers models have exactly the analytic parameter counts', async (t) => {
  await initBackend('wasm');
  // Registered models, and custom entries (other widths and stems) built from registered ones.
  const archs = [
    resolveModel({ name: 'resnet-rs-50' }).arch,
    resolveModel({ name: FASHION_MNIST_MODEL }).arch,
    resolveEntry({ ...lookupModel(FASHION_MNIST_MODEL), widthMultiplier: 0.5, smallInput: false }, { imageSize: 64, inputChannels: 1, classes: 7 }).arch,
    resolveEntry({ ...lookupModel('resnet-rs-50'), widthMultiplier: 0.25, smallInput: true }, { imageSize: 32, stochasticDepthRate: 0.2 }).arch,
  ];
  for (const arch of archs) {
    const counts = countResNetRS(arch);
    const m = buildResNetRS(arch);
    const label = `[${arch.blocks.join(',')}] w${arch.widthMultiplier}${arch.smallInput ? ' small' : ''}`;
    try {
      assert.equal(trainableOf(m), counts.params, `${label} trainable`);
      assert.equal(m.countParams(), counts.params + counts.nonTrainableParams, `${label} total`);
      assert.deepEqual(m.outputs[0]!.shape, [null, arch.classes]);
    } finally {
      m.dispose();
    }
  }
  await t.test('RS-420 built for real: 191,891,656 trainable parameters', () => {
    const m = buildModel({ name: 'resnet-rs-420' });
    try {
      assert.equal(trainableOf(m), EXACT_PARAMS['resnet-rs-420']);
      assert.deepEqual(m.inputs[0]!.shape, [null, 320, 320, 3]);
    } finally {
      m.dispose();
    }
  });
});
