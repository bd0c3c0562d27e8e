/**
 * One trained model on the eval set: the saved model is the train stage's EMA export, run with
 * predict() (BN moving statistics, no dropout / stochastic depth) on the eval preprocessing the
 * train stage recorded in the checkpoint — the same loading path infer uses for its teacher.
 */
import { availableParallelism } from 'node:os';
import { batches } from '../../pipeline/data/batches.js';
import type { InferEngine } from '../../pipeline/inference/engine.js';
import { ensureOnnx } from '../../pipeline/model/onnx-file.js';
import { loadOnnxTeacher } from '../../pipeline/pseudo/onnx-teacher.js';
import type { Teacher } from '../../pipeline/pseudo/teacher.js';
import { readDataset } from '../../pipeline/data/reader.js';
import type { OpenDataset } from '../../pipeline/data/dataset-json.js';
import { loadTeacher, readTeacherInfo, recordedArch } from '../../pipeline/pseudo/load-teacher.js';
import { MetricsAccumulator } from '../../pipeline/report/metrics.js';
import { CorrectnessRecorder } from '../../pipeline/report/per-image.js';
import type { ModelEvaluation, ModelRole } from '../../pipeline/report/types.js';
import type { Progress } from '../../pipeline/runner/stage.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { trimUri } from '../../pipeline/store/uri.js';

export interface EvaluateModelOptions {
  /** Train stage id (names the result and the messages). */
  stage: string;
  /** Store rooted at the model prefix (holds model.json + weights). */
  model: ObjectStore;
  eval: OpenDataset;
  topK: number[];
  batchSize: number;
  concurrency: number;
  backend: string | null;
  /** Inference engine (resolved by the stage from inferBackend); default tfjs. */
  engine?: InferEngine;
  /** ONNX Runtime threads (default: all cores). */
  threads?: number;
  signal?: AbortSignal;
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
  let net: Teacher;
  if (o.engine === 'onnx') {
    await ensureOnnx(o.model);
    net = await loadOnnxTeacher(o.model, arch, pre, { threads: o.threads ?? availableParallelism() });
  } else {
    net = await loadTeacher(o.model, arch, pre);
  }
  const numClasses = o.eval.index.classes.length;
  if (net.arch.classes !== numClasses) {
    net.dispose();
    throw new Error(`model ${uri} (${o.stage}) has ${net.arch.classes} outputs but the eval set ${o.eval.uri} has ${numClasses} classes`);
  }
  if (!o.eval.index.labeled) {
    net.dispose();
    throw new Error(`eval set ${o.eval.uri} is not labeled (dataset.json labeled: false): nothing to measure accuracy against`);
  }
  const acc = new MetricsAccumulator(o.eval.index.classes, o.topK);
  // Per-image correctness: what the report's paired tests (McNemar) compare between models.
  const perImage = new CorrectnessRecorder();
  const started = performance.now();
  let skipped = 0;
  let done = 0;
  try {
    const samples = readDataset(o.eval, { signal: o.signal });
    for await (const b of batches(samples, {
      size: o.batchSize,
      channels: pre.channels,
      imageSize: pre.imageSize,
      mode: 'eval',
      cropFraction: pre.cropFraction,
      dtype: 'float32',
      normalize: { mean: pre.mean, std: pre.std },
      concurrency: o.concurrency,
    })) {
      o.signal?.throwIfAborted();
      skipped += b.skipped.length;
      const n = b.keys.length;
      const top = await net.predictTopK(b.pixels as Float32Array, n, acc.maxK);
      for (let i = 0; i < n; i++) {
        const label = b.labels[i]!;
        if (label < 0) throw new Error(`eval set ${o.eval.uri}: sample ${b.keys[i]} (shard ${b.shards[i]}) has no label`);
        acc.add(label, top.classes.subarray(i * top.k, (i + 1) * top.k));
        perImage.add(`${b.shards[i]}/${b.keys[i]}`, top.classes[i * top.k] === label);
      }
      done += n + b.skipped.length;
      o.progress?.update(done);
    }
  } finally {
    net.dispose();
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
    backend: net.backend,
    metrics,
    perImage: perImage.result(),
  };
}
