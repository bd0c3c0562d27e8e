/**
 * Fixtures for the infer tests and bench: an unlabeled dataset of real Fashion-MNIST images
 * (PNG, written with the data layer's DatasetWriter, ground truth held back) and a teacher
 * checkpoint (the project's small ResNet-RS, saved with the model layer's store IO).
 */
import sharp from 'sharp';
import { DatasetWriter } from '../../pipeline/data/dataset-writer.js';
import type { SampleToPack } from '../../pipeline/data/tar.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { initBackend } from '../../pipeline/backend/select.js';
import { buildResNetRS } from '../../pipeline/model/resnet-rs.js';
import { resolveModel, type ResNetRSArch } from '../../pipeline/model/family.js';
import { storeModelIO } from '../../pipeline/model/store-io.js';
import type { TeacherPreprocessing } from '../../pipeline/pseudo/teacher.js';
import type { InferConfig } from '../../pipeline/manifest/sections/pseudo.js';
import { writeJob } from '../../stages/infer/job.js';
import { buildInferJob, type InferStageOptions } from '../../stages/infer/stage.js';
import { runInferWorker } from '../../stages/infer/worker.js';
import { fashionMnistFloats, type Split } from '../helpers/fashion-mnist.js';

export const FMNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
export const TEACHER_MODEL = 'resnet-rs-26-w0.25-small';

export const PREPROCESSING: TeacherPreprocessing = { imageSize: 28, channels: 1, cropFraction: 1, mean: [72.9], std: [90.0] };

export function teacherArch(overrides: Partial<ResNetRSArch> = {}): ResNetRSArch {
  return { ...resolveModel({ name: TEACHER_MODEL }).arch, ...overrides };
}

export function inferConfig(over: Partial<InferConfig> = {}): InferConfig {
  return { topK: 3, batchSize: 8, concurrency: 4, maxRestarts: 2, ...over };
}

/** PNGs of Fashion-MNIST images [offset, offset+n) of `split` (t10k holds 10,000, train 60,000). */
export async function fashionPngs(n: number, offset = 0, split: Split = 't10k'): Promise<{ png: Buffer; label: number }[]> {
  const { images, labels } = fashionMnistFloats(split, offset + n);
  const out: { png: Buffer; label: number }[] = [];
  for (let i = offset; i < offset + n; i++) {
    const raw = Buffer.from(Array.from(images.subarray(i * 784, (i + 1) * 784), (v) => Math.round(v * 255)));
    // Grey PNGs, as the importer writes Fashion-MNIST (sharp would otherwise store RGB).
    out.push({ png: await sharp(raw, { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w').png().toBuffer(), label: labels[i]! });
  }
  return out;
}

export interface DatasetSpec {
  /** Samples per shard. */
  shards: number[];
  /** Sample keys whose image bytes are replaced by garbage (still a `.png` member). */
  corrupt?: string[];
  offset?: number;
  /** The Fashion-MNIST file the images come from (default t10k; benchmarks wanting more than 10,000 take train). */
  split?: Split;
}

/** Writes an unlabeled dataset (ground truth held back) to `store`; keys are `u<global index>`. */
export async function writeUnlabeled(store: ObjectStore, spec: DatasetSpec): Promise<void> {
  const total = spec.shards.reduce((a, b) => a + b, 0);
  const images = await fashionPngs(total, spec.offset ?? 0, spec.split);
  const writer = new DatasetWriter(store, { classes: FMNIST_CLASSES, labeled: false, plan: JSON.stringify(spec), groundTruth: true });
  await writer.begin();
  let i = 0;
  for (const [n, count] of spec.shards.entries()) {
    const samples: SampleToPack[] = [];
    const truth: [string, number][] = [];
    for (let j = 0; j < count; j++, i++) {
      const key = `u${String(i).padStart(5, '0')}`;
      const bad = spec.corrupt?.includes(key);
      samples.push({ key, ext: 'png', image: bad ? Buffer.from('this is not a png image at all') : images[i]!.png });
      truth.push([key, images[i]!.label]);
    }
    await writer.writeShard(n, samples, [], truth);
  }
  await writer.finish(spec.shards.length);
}

/** Saves an untrained teacher (seeded init) of the given architecture to `store`. */
export async function writeTeacher(store: ObjectStore, arch: ResNetRSArch = teacherArch()): Promise<void> {
  const { tf } = await initBackend('wasm');
  tf.setBackend('wasm');
  const model = buildResNetRS(arch);
  // As the train stage does: the checkpoint says how its inputs are prepared.
  const meta = (model.getUserDefinedMetadata() ?? {}) as Record<string, unknown>;
  const { cropFraction, ...rest } = PREPROCESSING;
  model.setUserDefinedMetadata({ ...meta, preprocessing: { ...rest, evalCrop: cropFraction, weights: 'ema' } });
  await model.save(storeModelIO(store));
  model.dispose();
}

/** Infer stage options for a fixture store: `<root>/data/unlabeled` and `<root>/teacher/model`, wasm, fixture config. */
export function inferOptions(root: ObjectStore, over: Partial<InferStageOptions> = {}): InferStageOptions {
  return {
    id: 'infer-1',
    dataset: `${root.uri}/data/unlabeled`,
    teacher: `${root.uri}/teacher/model`,
    expectedArch: teacherArch(),
    preprocessing: PREPROCESSING,
    config: inferConfig(),
    backend: 'wasm',
    ...over,
  };
}

/** Prediction objects of a run's infer stage: object name → bytes. */
export async function predictionsOf(run: ObjectStore, stage = 'infer-1'): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const o of await run.list(`${stage}/predictions/`)) out.set(o.key.slice(`${stage}/predictions/`.length), await run.get(o.key));
  return out;
}

/** Predictions of one uninterrupted in-process worker over `options`' dataset, made in `run`. */
export async function referencePredictions(run: ObjectStore, options: InferStageOptions): Promise<Map<string, Buffer>> {
  await writeJob(run, await buildInferJob(options));
  const result = await runInferWorker({ run, stage: options.id, index: 0, count: 1 });
  if (result.errors.length > 0) throw new Error(`reference run: ${JSON.stringify(result.errors)}`);
  return predictionsOf(run, options.id);
}
