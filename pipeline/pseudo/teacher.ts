/**
 * The un-noised teacher as infer uses it: a loaded ResNet-RS run in inference mode (predict():
 * BN uses its moving statistics, dropout and stochastic depth are identity) whose logits become
 * softmax probabilities and the top-k of them, computed on the backend so only k numbers per
 * sample cross into JS.
 */
import type * as TfNamespace from '@tensorflow/tfjs';
import { getTf } from '../backend/select.js';
import type { ResNetRSArch } from '../model/family.js';

/** Eval preprocessing the teacher was trained with (applied by infer before the forward pass). */
export interface TeacherPreprocessing {
  imageSize: number;
  channels: 1 | 3;
  /** Eval centre-crop fraction (recipe default 0.875). */
  cropFraction: number;
  /** Per-channel mean and std in 0..255 units. */
  mean: number[];
  std: number[];
}

export interface TopK {
  /** [n * k] class indices, row-major, best first. */
  classes: Int32Array;
  /** [n * k] softmax probabilities matching `classes`. */
  probs: Float32Array;
  k: number;
}

/**
 * A loaded model ready for inference — the seam between the stages and the engines: tfjs
 * (teacherFromModel, below) and ONNX Runtime (onnx-teacher.ts).
 */
export interface Teacher {
  /**
   * Identifies the exact weights (model name + content hash of model.json; with ONNX Runtime also
   * the hash of the exported file); stored with every prediction.
   */
  id: string;
  arch: ResNetRSArch;
  preprocessing: TeacherPreprocessing;
  /** Which engine computes the predictions, e.g. "tfjs wasm" or "onnxruntime-node 1.30.0 cpu, 2 thread(s)". */
  backend: string;
  /** For logs: how it runs (threads, providers), which does not change the results. */
  detail?: string;
  /**
   * pixels: NHWC float32, already normalised. Copied before the call returns: the caller may refill
   * the buffer for the next batch while this one runs.
   */
  predictTopK(pixels: Float32Array, n: number, k: number): Promise<TopK>;
  dispose(): void;
}

export function teacherFromModel(model: TfNamespace.LayersModel, id: string, arch: ResNetRSArch, preprocessing: TeacherPreprocessing): Teacher {
  const tf = getTf();
  const S = arch.imageSize;
  const C = arch.inputChannels;
  return {
    id,
    arch,
    preprocessing,
    backend: `tfjs ${tf.getBackend()}`,
    async predictTopK(pixels, n, k) {
      const kk = Math.min(k, arch.classes);
      const [values, indices] = tf.tidy(() => {
        const x = tf.tensor4d(pixels, [n, S, S, C], 'float32');
        const logits = model.predict(x, { batchSize: n }) as TfNamespace.Tensor2D;
        const { values, indices } = tf.topk(tf.softmax(logits), kk, true);
        return [values, indices] as const;
      });
      try {
        return { probs: values.dataSync() as Float32Array, classes: indices.dataSync() as Int32Array, k: kk };
      } finally {
        values.dispose();
        indices.dispose();
      }
    },
    dispose() {
      model.dispose();
    },
  };
}
