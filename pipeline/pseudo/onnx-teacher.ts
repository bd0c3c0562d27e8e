/**
 * The teacher (or any trained model) on ONNX Runtime: the `model.onnx` exported beside the tfjs
 * model (pipeline/model/onnx-file.ts), checked before use — it must come from the current
 * model.json, match the expected architecture and, when the caller pins it (an infer job), have
 * the expected content hash — then run with `threads` intra-op threads, on a thread of its own.
 *
 * Its id is `<tfjs model id>+onnx@<16 hex of sha256(model.onnx)>`: predictions name the exact
 * file that computed them, as well as the weights it was exported from.
 */
import { startOrtThread } from '../inference/ort-thread.js';
import { topKOfLogits } from '../inference/topk.js';
import { onnxInfo, ONNX_KEY, sha256Hex } from '../model/onnx-file.js';
import { ONNX_INPUT, ONNX_OUTPUT } from '../model/onnx-export.js';
import { modelIdOf, MODEL_JSON_KEY } from '../model/store-io.js';
import type { ObjectStore } from '../store/types.js';
import { NotFoundError } from '../store/types.js';
import { archMismatches, type ExpectedArch } from './load-teacher.js';
import type { Teacher, TeacherPreprocessing } from './teacher.js';
import { trimUri } from '../store/uri.js';

export function onnxTeacherId(modelId: string, onnxSha256: string): string {
  return `${modelId}+onnx@${onnxSha256.slice(0, 16)}`;
}

export interface OnnxTeacherOptions {
  threads: number;
  /** The file's sha256 the caller expects (an infer job pins it); another file is refused. */
  sha256?: string;
  /** Try the CUDA provider when it is installed (default true). */
  gpu?: boolean;
}

export async function loadOnnxTeacher(store: ObjectStore, expected: ExpectedArch, preprocessing: TeacherPreprocessing, o: OnnxTeacherOptions): Promise<Teacher> {
  const uri = trimUri(store.uri);
  const json = await store.get(MODEL_JSON_KEY).catch((err: Error) => {
    throw new Error(`teacher checkpoint ${uri}: ${err.message}`, { cause: err });
  });
  const modelId = modelIdOf(json);
  let bytes: Buffer;
  try {
    bytes = await store.get(ONNX_KEY);
  } catch (err) {
    if (err instanceof NotFoundError) throw new Error(`teacher checkpoint ${uri} has no ${ONNX_KEY} (export it: selftrain model export ${uri})`, { cause: err });
    throw err;
  }
  const sha256 = sha256Hex(bytes);
  if (o.sha256 !== undefined && sha256 !== o.sha256) {
    throw new Error(`${uri}/${ONNX_KEY} changed since the stage started (sha256 ${sha256.slice(0, 16)}, expected ${o.sha256.slice(0, 16)}): re-run the stage`);
  }
  let info: ReturnType<typeof onnxInfo>;
  try {
    info = onnxInfo(bytes);
  } catch (err) {
    throw new Error(`${uri}/${ONNX_KEY} is not a readable ONNX model: ${(err as Error).message}`, { cause: err });
  }
  if (info.source !== modelId) {
    throw new Error(`${uri}/${ONNX_KEY} was exported from ${info.source ?? 'an unknown model'}, not from the current ${MODEL_JSON_KEY} (${modelId}): export it again`);
  }
  const arch = info.arch;
  const problems = arch ? archMismatches(arch, expected) : [`${ONNX_KEY} records no ResNet-RS architecture`];
  if (!arch || problems.length > 0) throw new Error(`teacher checkpoint ${uri} does not match the manifest's teacher model: ${problems.join('; ')}`);
  if (preprocessing.imageSize !== arch.imageSize || preprocessing.channels !== arch.inputChannels) {
    throw new Error(`teacher checkpoint ${uri}: preprocessing ${preprocessing.imageSize}px x${preprocessing.channels} does not fit the model input ${arch.imageSize}px x${arch.inputChannels}`);
  }
  // On a thread of its own: the caller's thread keeps feeding it while a batch runs.
  const ort = await startOrtThread({ model: bytes, threads: o.threads, gpu: o.gpu, spin: false, input: ONNX_INPUT, output: ONNX_OUTPUT });
  const S = arch.imageSize;
  const C = arch.inputChannels;
  const K = arch.classes;
  return {
    id: onnxTeacherId(modelId, sha256),
    arch,
    preprocessing,
    backend: ort.description,
    detail: ort.detail,
    async predictTopK(pixels, n, k) {
      const logits = await ort.run(pixels, [n, S, S, C]).catch((err: Error) => {
        throw new Error(`${uri}/${ONNX_KEY}: ${err.message}`, { cause: err });
      });
      return topKOfLogits(logits, n, K, k);
    },
    dispose() {
      void ort.close();
    },
  };
}
