/**
 * The Fashion-MNIST teacher, end to end through the real train stage: 1,000 labeled training images
 * (100 per class, the first of each class in the train split) as a WebDataset in a file:// store,
 * the small-input RS variant, the full recipe, on the selected backend (wasm here); then the exported
 * EMA model is evaluated on the 10,000-image test split with the eval preprocessing. Prints numbers.
 *
 *   npx tsx bench/train-fashion-teacher.ts [--epochs 60] [--batch 128] [--lr 0.1] [--wd 4e-5] [--warmup 5]
 *     [--magnitude 5] [--min-area 0.35] [--backend wasm] [--seed 0] [--keep]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { initBackend } from '../pipeline/backend/select.js';
import { transformImage } from '../pipeline/data/preprocess.js';
import { FASHION_MNIST_MODEL } from '../pipeline/model/family.js';
import { loadModel } from '../pipeline/model/store-io.js';
import type { StageContext } from '../pipeline/runner/stage.js';
import { openStore } from '../pipeline/store/open.js';
import type { ImageSet } from '../pipeline/train/data.js';
import { evaluateSet } from '../pipeline/train/trainer.js';
import { runStage } from '../stages/train/index.js';
import { readFashionMnist } from '../test/helpers/fashion-mnist.js';
import { writeFashionDataset } from '../test/train/make-dataset.js';

const { values: a } = parseArgs({
  options: {
    epochs: { type: 'string', default: '60' },
    batch: { type: 'string', default: '128' },
    lr: { type: 'string', default: '0.1' },
    wd: { type: 'string', default: '4e-5' },
    magnitude: { type: 'string', default: '5' },
    'min-area': { type: 'string', default: '0.35' },
    warmup: { type: 'string', default: '5' },
    backend: { type: 'string', default: 'wasm' },
    seed: { type: 'string', default: '0' },
    keep: { type: 'boolean', default: false },
  },
});
const backend = await initBackend(a.backend as 'wasm');
console.log(backend.summary);
const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-fmnist-teacher-'));
const run = openStore(`file://${dir}`);
await writeFashionDataset(run.sub('data/labeled'), { split: 'train', perClass: 100, labeled: true, perShard: 500 });

const t0 = performance.now();
let last = 0;
const ctx: StageContext = {
  run,
  root: run,
  outPrefix: 'train-teacher-1/',
  stageId: 'train-teacher-1',
  storeSettings: {},
  stageRuns: async () => [],
  log: { info: (m) => console.log(m), warn: (m) => console.warn(m), error: (m) => console.error(m), debug: () => {} },
  signal: new AbortController().signal,
  progress: (label, total) => ({
    update: (done, f) => {
      if (performance.now() - last > 15000) {
        last = performance.now();
        console.log(`${label} ${done}/${total} ${JSON.stringify(f ?? {})}`);
      }
    },
    setTotal: () => {},
    stop: () => {},
  }),
};
const res = await runStage(ctx, {
  role: 'teacher',
  model: { name: FASHION_MNIST_MODEL },
  train: {
    epochs: Number(a.epochs),
    batchSize: Number(a.batch),
    baseLr: Number(a.lr),
    weightDecay: Number(a.wd),
    randAugment: { magnitude: Number(a.magnitude), scaleWithImage: true },
    crop: { minArea: Number(a['min-area']) },
    schedule: { warmupEpochs: Number(a.warmup) },
    checkpoint: { everySteps: 100 },
  },
  seed: Number(a.seed),
  inputs: { labeled: `file://${dir}/data/labeled` },
});
const trainSeconds = (performance.now() - t0) / 1000;
const summary = res.summary as { imagesPerSec: number; heldoutAcc: number; steps: number };

// Test split with the eval preprocessing (the same transformImage the infer stage uses).
const fm = readFashionMnist('t10k');
const test: ImageSet = { count: fm.count, size: 28, channels: 1, pixels: new Uint8Array(fm.count * 784), labels: Int32Array.from(fm.labels), keys: [] };
for (let i = 0; i < fm.count; i++) {
  const png = await sharp(Buffer.from(fm.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
  test.pixels.set(await transformImage(png, { mode: 'eval', channels: 1, imageSize: 28 }), i * 784);
}
const model = await loadModel(run.sub('train-teacher-1/model'));
const { acc, loss } = evaluateSet(backend.tf, model, test, 500, 10);
console.log(
  `RESULT teacher ${FASHION_MNIST_MODEL} backend=${backend.name} labeled=1000 epochs=${a.epochs} steps=${summary.steps} ` +
    `train_seconds=${trainSeconds.toFixed(0)} img/s=${summary.imagesPerSec} heldout_acc=${summary.heldoutAcc?.toFixed(3)} ` +
    `test_acc=${acc.toFixed(4)} test_loss=${loss.toFixed(4)}`,
);
await run.close();
if (!a.keep) rmSync(dir, { recursive: true, force: true });
else console.log(`kept ${dir}`);
