/**
 * A tiny real run for the evaluate tests: Fashion-MNIST test images as a labeled eval set and an
 * unlabeled set with held-back labels (data layer's DatasetWriter), small untrained ResNet-RS
 * models saved with store IO where the train stages put them, and real infer + select outputs.
 */
import { getTf, initBackend } from '../../pipeline/backend/select.js';
import { seedModelNoise } from '../../pipeline/model/noise.js';
import { buildResNetRS } from '../../pipeline/model/resnet-rs.js';
import { storeModelIO } from '../../pipeline/model/store-io.js';
import { fashionMnistFloats } from '../helpers/fashion-mnist.js';
import { DatasetWriter } from '../../pipeline/data/dataset-writer.js';
import type { SampleToPack } from '../../pipeline/data/tar.js';
import { selectSection } from '../../pipeline/manifest/sections/pseudo.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import type { FileStore } from '../../pipeline/store/file-store.js';
import { runInferStage } from '../../stages/infer/stage.js';
import { runSelectStage } from '../../stages/select/stage.js';
import { testContext } from '../pseudo/context.js';
import { fashionPngs, FMNIST_CLASSES, inferConfig, PREPROCESSING, teacherArch, writeUnlabeled } from '../pseudo/fixtures.js';
import { objectUri } from '../../pipeline/store/uri.js';

export const EVAL_SHARDS = [50, 40];
export const UNLABELED_SHARDS = [30, 30];
export const MODELS = ['train-teacher-1', 'train-student-1', 'train-baseline'];
/** Training steps per model: different budgets give models of visibly different quality. */
const STEPS: Record<string, number> = { 'train-teacher-1': 5, 'train-student-1': 10, 'train-baseline': 15 };

/**
 * The small Fashion-MNIST ResNet-RS trained briefly (momentum SGD on Fashion-MNIST *train*
 * images, normalised as the checkpoint metadata says) and saved as the train stage saves it.
 */
export async function writeTrainedModel(store: ObjectStore, steps: number, seed = 1): Promise<void> {
  await initBackend('wasm');
  const tf = getTf();
  const batch = 32;
  const data = fashionMnistFloats('train', batch * steps);
  const model = buildResNetRS(teacherArch());
  seedModelNoise(seed);
  const optimizer = tf.train.momentum(0.05, 0.9);
  const m = PREPROCESSING.mean[0]!;
  const sd = PREPROCESSING.std[0]!;
  for (let step = 0; step < steps; step++) {
    const px = data.images.subarray(step * batch * 784, (step + 1) * batch * 784).map((v) => (v * 255 - m) / sd);
    const labels = data.labels.subarray(step * batch, (step + 1) * batch);
    tf.tidy(() => {
      const x = tf.tensor4d(px, [batch, 28, 28, 1]);
      const y = tf.oneHot(tf.tensor1d(Int32Array.from(labels), 'int32'), 10);
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as typeof x));
    });
  }
  optimizer.dispose();
  const meta = (model.getUserDefinedMetadata() ?? {}) as Record<string, unknown>;
  const { cropFraction, ...rest } = PREPROCESSING;
  model.setUserDefinedMetadata({ ...meta, preprocessing: { ...rest, evalCrop: cropFraction, weights: 'ema' } });
  await model.save(storeModelIO(store));
  model.dispose();
}

/** Labeled eval set of t10k images [offset, offset + Σshards); keys `e<index>`. Returns the images. */
export async function writeEvalSet(store: ObjectStore, shards = EVAL_SHARDS, offset = 1000): Promise<{ png: Buffer; label: number }[]> {
  const total = shards.reduce((a, b) => a + b, 0);
  const images = await fashionPngs(total, offset);
  const writer = new DatasetWriter(store, { classes: FMNIST_CLASSES, labeled: true, plan: JSON.stringify({ shards, offset }) });
  await writer.begin();
  let i = 0;
  for (const [n, count] of shards.entries()) {
    const samples: SampleToPack[] = [];
    for (let j = 0; j < count; j++, i++) samples.push({ key: `e${String(i).padStart(5, '0')}`, ext: 'png', image: images[i]!.png, label: images[i]!.label });
    await writer.writeShard(n, samples);
  }
  await writer.finish(shards.length);
  return images;
}

/**
 * A run at `root/runs/<name>` with import/datasets.json, the models, and infer-1 + select-1 done
 * (data under `root/data/`, shared by runs).
 */
export async function makeRun(root: FileStore, name: string): Promise<ObjectStore> {
  const run = root.sub(`runs/${name}`);
  const template = root.sub('runs/template');
  if (await template.head('select-1/summary.json')) {
    // Training is the slow part: every run after the first copies the first one's stages.
    for (const o of await template.list('')) await run.put(o.key, await template.get(o.key));
    return run;
  }
  const made = await buildRun(root, template);
  for (const o of await made.list('')) await run.put(o.key, await made.get(o.key));
  return run;
}

async function buildRun(root: FileStore, run: ObjectStore): Promise<ObjectStore> {
  if (!(await root.head('data/eval/dataset.json'))) {
    await writeEvalSet(root.sub('data/eval'));
    await writeUnlabeled(root.sub('data/unlabeled'), { shards: UNLABELED_SHARDS });
  }
  await run.put('import/datasets.json', JSON.stringify({ labeled: 'data/eval', unlabeled: 'data/unlabeled', eval: 'data/eval', classes: FMNIST_CLASSES }));
  for (const m of MODELS) await writeTrainedModel(run.sub(`${m}/model`), STEPS[m]!);
  await runInferStage(
    testContext(run, root, 'infer-1/'),
    { id: 'infer-1', dataset: `${root.uri}/data/unlabeled`, teacher: objectUri(run, 'train-teacher-1/model'), expectedArch: teacherArch(), config: inferConfig({ topK: 3 }), backend: 'wasm' },
    1,
  );
  await runSelectStage(testContext(run, root, 'select-1/'), { id: 'select-1', inferId: 'infer-1', config: selectSection.parse({ threshold: 0.1 }), seed: 3 });
  return run;
}

export function evaluateConfig(over: Record<string, unknown> = {}) {
  return {
    evaluate: { baseline: true, topK: [1, 5], batchSize: 16, concurrency: 2, ...over },
    seed: 1,
    inputs: { data: 'import', models: MODELS, pseudo: [{ select: 'select-1', infer: 'infer-1' }] },
  };
}
