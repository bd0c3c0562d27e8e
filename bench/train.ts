/**
 * Training throughput of the Fashion-MNIST model: the full recipe (the train stage's own loop:
 * crop + flip + RandAugment on raw pixels, label smoothing, L2 on non-BN weights, momentum SGD with
 * the LR schedule, EMA of all weights, seeded noise, per-step loss read-back) versus the bare step
 * (forward + backward + SGD update on a fixed batch, what bench/model measures). Same model, batch
 * and backend, measured alternately; medians of the repeats. Prints numbers only.
 *
 *   npx tsx bench/train.ts [--batch 128] [--steps 8] [--repeats 3] [--backend auto]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type * as tfTypes from '@tensorflow/tfjs';
import { initBackend } from '../pipeline/backend/select.js';
import { trainSection } from '../pipeline/manifest/sections/train.js';
import { FASHION_MNIST_MODEL, resolveModel } from '../pipeline/model/family.js';
import { buildResNetRS } from '../pipeline/model/resnet-rs.js';
import { openStore } from '../pipeline/store/open.js';
import { augmentImage, randAugmentOptions } from '../pipeline/train/augment.js';
import { normalizeInto, type LabeledData } from '../pipeline/train/data.js';
import { softCrossEntropy } from '../pipeline/train/loss.js';
import { MomentumSgd } from '../pipeline/train/optimizer.js';
import { Sfc32 } from '../pipeline/train/rng.js';
import { train } from '../pipeline/train/trainer.js';
import { readFashionMnist } from '../test/helpers/fashion-mnist.js';

const { values: a } = parseArgs({
  options: {
    batch: { type: 'string', default: '128' },
    steps: { type: 'string', default: '8' },
    repeats: { type: 'string', default: '3' },
    backend: { type: 'string', default: 'auto' },
  },
});
const B = Number(a.batch), STEPS = Number(a.steps), REPEATS = Number(a.repeats);
const backend = await initBackend(a.backend as 'auto');
const tf = backend.tf;
const { arch, defaults } = resolveModel({ name: FASHION_MNIST_MODEL });
const fm = readFashionMnist('train', 1000);
const data: LabeledData = {
  train: { count: 1000, size: 28, channels: 1, pixels: fm.images.slice(), labels: Int32Array.from(fm.labels), keys: [] },
  heldout: { count: 0, size: 28, channels: 1, pixels: new Uint8Array(0), labels: new Int32Array(0), keys: [] },
  classes: Array.from({ length: 10 }, (_, i) => String(i)),
  uri: 'memory',
};
const cfg = trainSection.parse({ epochs: 1000, batchSize: B, maxSteps: STEPS + 2, checkpoint: { everySteps: 1_000_000 }, randAugment: { scaleWithImage: true } });
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

function bare(): number {
  const model = buildResNetRS(arch);
  const vars = model.trainableWeights.map((w) => w.read() as tfTypes.Variable);
  const opt = new MomentumSgd(tf, vars, 0.9, false);
  const x = new Float32Array(B * 784);
  for (let i = 0; i < B; i++) normalizeInto(data.train.pixels.subarray(i * 784, (i + 1) * 784), 1, x, i * 784);
  const xs = tf.tensor4d(x, [B, 28, 28, 1]);
  const ys = tf.oneHot(tf.tensor1d(data.train.labels.subarray(0, B), 'int32'), 10).toFloat() as tfTypes.Tensor2D;
  let t0 = 0;
  for (let s = 0; s <= STEPS; s++) {
    if (s === 1) t0 = performance.now(); // step 0 is warm-up
    const { value, grads } = tf.variableGrads(() => softCrossEntropy(tf, model.apply(xs, { training: true }) as tfTypes.Tensor2D, ys), vars);
    value.dataSync();
    opt.apply(vars.map((v) => grads[v.name]!), 0.05);
    tf.dispose([value, ...Object.values(grads)]);
  }
  const ips = (STEPS * B) / ((performance.now() - t0) / 1000);
  tf.dispose([xs, ys]);
  opt.dispose();
  model.dispose();
  return ips;
}

async function full(): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-bench-train-'));
  const store = openStore(`file://${dir}`);
  const model = buildResNetRS(arch);
  let t0 = 0, t1 = 0;
  await train({
    tf, model, cfg, seed: 0, defaultMagnitude: defaults.randAugmentMagnitude, numClasses: 10, data, store, log: quiet, backend: backend.name,
    onStep: (step) => {
      if (step === 0) t0 = performance.now();
      if (step === STEPS) t1 = performance.now(); // before the final step, which also writes the end checkpoint
    },
  });
  model.dispose();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return (STEPS * B) / ((t1 - t0) / 1000);
}

function augmentOnly(): number {
  const ra = randAugmentOptions(cfg, defaults.randAugmentMagnitude, 28);
  const x = new Float32Array(B * 784);
  const t0 = performance.now();
  for (let s = 0; s < STEPS; s++) {
    for (let i = 0; i < B; i++) {
      const img = { data: data.train.pixels.subarray(i * 784, (i + 1) * 784), width: 28, height: 28, channels: 1 };
      normalizeInto(augmentImage(img, cfg, ra, new Sfc32(s * B + i)).data, 1, x, i * 784);
    }
  }
  return (STEPS * B) / ((performance.now() - t0) / 1000);
}

console.log(`${backend.summary}; model ${FASHION_MNIST_MODEL}, batch ${B}, ${STEPS} timed steps x ${REPEATS} repeats`);
const bares: number[] = [], fulls: number[] = [], augs: number[] = [];
for (let r = 0; r < REPEATS; r++) {
  bares.push(bare());
  fulls.push(await full());
  augs.push(augmentOnly());
  console.log(`repeat ${r + 1}: bare ${bares[r]!.toFixed(1)} img/s, full recipe ${fulls[r]!.toFixed(1)} img/s, augmentation alone ${augs[r]!.toFixed(0)} img/s`);
}
const mb = median(bares), mf = median(fulls);
console.log(`bare step (fwd+bwd+SGD):           ${mb.toFixed(1)} img/s (median)`);
console.log(`full recipe (train stage loop):    ${mf.toFixed(1)} img/s (median)`);
console.log(`input path alone (crop+flip+RA):   ${median(augs).toFixed(0)} img/s (median, one core)`);
console.log(`full / bare ratio:                 ${(mf / mb).toFixed(3)}  (recipe + data path cost ${((1 - mf / mb) * 100).toFixed(1)}%)`);
