/**
 * One trained model on the eval set: the saved model is the train stage's EMA export, run with
 * predict() (BN moving statistics, no dropout / stochastic depth) on the eval preprocessing the
 * train stage recorded in the checkpoint — the same loading path infer uses for its teacher. The
 * shards go through a ShardPredictor (one thread, or the evaluate workers); the metrics are summed
 * in shard order, so they are the same for any number of workers.
 */
import type { OpenDataset } from '../../pipeline/data/dataset-json.js';
import { readTeacherInfo, recordedArch } from '../../pipeline/pseudo/load-teacher.js';
import { MetricsAccumulator } from '../../pipeline/report/metrics.js';
import { CorrectnessRecorder } from '../../pipeline/report/per-image.js';
import type { ModelEvaluation, ModelRole } from '../../pipeline/report/types.js';
import type { Progress } from '../../pipeline/runner/stage.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { trimUri } from '../../pipeline/store/uri.js';
import type { ShardPredictor } from './predictor.js';

export interface EvaluateModelOptions {
  /** Train stage id (names the result and the messages). */
  stage: string;
  /** Store rooted at the model prefix (holds model.json + weights). */
  model: ObjectStore;
  eval: OpenDataset;
  topK: number[];
  /** Runs the shards through the model: in this thread, or spread over workers. */
  predictor: ShardPredictor;
  backend: string | null;
  progress?: Progress;
}

/** Role and round from the chain's stage ids (`train-teacher-1`, `train-student-2`, `train-baseline`). */
export function roleOf(stage: string): { role: ModelRole; iteration: number | null } {
  const m = /^train-(teacher|student)-(\d+)$/.exec(stage);
  if (m) return { role: m[1] as ModelRole, iteration: Number(m[2]) };
  if (stage === 'train-baseline') return { role: 'baseline', iteration: null };
  if (stage === 'train-control') return { role: 'control', iteration: null };
  return { role: 'model', iteration: null };
}

export async function evaluateModel(o: EvaluateModelOptions): Promise<ModelEvaluation> {
  const uri = trimUri(o.model.uri);
  const info = await readTeacherInfo(o.model);
  if (!info.preprocessing) throw new Error(`model ${uri} (${o.stage}) records no eval preprocessing (userDefinedMetadata.preprocessing): cannot prepare its inputs`);
  const pre = info.preprocessing;
  const arch = await recordedArch(o.model);
  const numClasses = o.eval.index.classes.length;
  if (arch.classes !== numClasses) throw new Error(`model ${uri} (${o.stage}) has ${arch.classes} outputs but the eval set ${o.eval.uri} has ${numClasses} classes`);
  if (!o.eval.index.labeled) throw new Error(`eval set ${o.eval.uri} is not labeled (dataset.json labeled: false): nothing to measure accuracy against`);
  const acc = new MetricsAccumulator(o.eval.index.classes, o.topK);
  // Per-image correctness: what the report's paired tests (McNemar) compare between models.
  const perImage = new CorrectnessRecorder();
  const started = performance.now();
  let skipped = 0;
  let done = 0;
  const shards = o.eval.index.shards.map((_, n) => n);
  const results = await o.predictor.predict({ uri, id: info.id, arch, preprocessing: pre }, shards, acc.maxK, (r) => {
    done += r.labels.length + r.skipped;
    o.progress?.update(done);
  });
  // Shard order, whatever order the workers finished in.
  for (const r of results) {
    skipped += r.skipped;
    for (let i = 0; i < r.labels.length; i++) {
      const ranked = r.classes.subarray(i * r.k, (i + 1) * r.k);
      acc.add(r.labels[i]!, ranked);
      perImage.add(`${r.shard}/${r.keys[i]}`, ranked[0] === r.labels[i]);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const metrics = acc.result();
  const { role, iteration } = roleOf(o.stage);
  return {
    format: 1,
    stage: o.stage,
    role,
    iteration,
    modelId: info.id,
    evalDataset: o.eval.uri,
    preprocessing: { imageSize: pre.imageSize, channels: pre.channels, cropFraction: pre.cropFraction, mean: pre.mean, std: pre.std },
    skipped,
    seconds,
    imagesPerSecond: seconds > 0 ? metrics.samples / seconds : 0,
    workers: o.predictor.workers,
    // What ran the forward passes (tfjs backend, or ONNX Runtime and its execution provider).
    backend: results[0]?.backend ?? o.backend,
    metrics,
    perImage: perImage.result(),
  };
}
