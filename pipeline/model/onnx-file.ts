/**
 * `model.onnx` beside a saved tfjs model (store-io.ts): exporting it from the trained weights,
 * and finding out whether the one present is current.
 *
 * The ONNX file records the id of the tfjs model it was exported from (`selftrain.source`, the
 * modelIdOf of its model.json) and the architecture, preprocessing and class names the train stage
 * stored. model.json stays the model's commit point: an ONNX file whose source is not the current
 * model.json (a crash between the two writes, a retrained model, a copy from elsewhere) is stale
 * and is exported again from the weights — the export is deterministic, so that is always safe.
 */
import { createHash } from 'node:crypto';
import type * as TfNamespace from '@tensorflow/tfjs';
import { currentBackend, initBackend } from '../backend/select.js';
import type { ObjectStore } from '../store/types.js';
import { NotFoundError } from '../store/types.js';
import type { ResNetRSArch } from './family.js';
import { exportResNetRSToOnnx, onnxMetadata, type WeightLookup } from './onnx-export.js';
import { archOf, ARCH_METADATA_KEY } from './resnet-rs.js';
import { loadModel, modelIdOf, MODEL_JSON_KEY } from './store-io.js';
import { trimUri } from '../store/uri.js';

export const ONNX_KEY = 'model.onnx';
/** metadata_props keys written into every exported file. */
export const ONNX_META = {
  source: 'selftrain.source',
  arch: 'selftrain.arch',
  preprocessing: 'selftrain.preprocessing',
  classes: 'selftrain.classes',
} as const;

/** The weights of a tf.layers model by `<layer>/<weight>` (tfjs's original variable names). */
export function layersModelWeights(model: TfNamespace.LayersModel): WeightLookup {
  const byName = new Map<string, TfNamespace.LayerVariable>();
  for (const w of model.weights) byName.set(w.originalName, w);
  return (layer, weight) => {
    const v = byName.get(`${layer}/${weight}`);
    if (!v) throw new Error(`onnx export: the model has no weight ${layer}/${weight} (not a ResNet-RS built by selftrain?)`);
    const t = v.read();
    return { shape: [...t.shape], data: t.dataSync() as Float32Array };
  };
}

/** The exported bytes of a loaded model whose model.json has id `sourceId`. */
export function onnxFromLayersModel(model: TfNamespace.LayersModel, sourceId: string): Uint8Array {
  const arch = archOf(model);
  if (!arch) throw new Error(`onnx export of ${sourceId}: the model records no ResNet-RS architecture (userDefinedMetadata.${ARCH_METADATA_KEY})`);
  const meta = (model.getUserDefinedMetadata() ?? {}) as Record<string, unknown>;
  const metadata: Record<string, string> = { [ONNX_META.source]: sourceId, [ONNX_META.arch]: JSON.stringify(arch) };
  if (meta['preprocessing']) metadata[ONNX_META.preprocessing] = JSON.stringify(meta['preprocessing']);
  if (meta['classes']) metadata[ONNX_META.classes] = JSON.stringify(meta['classes']);
  return exportResNetRSToOnnx(arch, layersModelWeights(model), {
    metadata,
    docString: `ResNet-RS ${arch.depth} (width x${arch.widthMultiplier}${arch.smallInput ? ', small-input stem' : ''}), exported by selftrain from ${sourceId}. Input: NHWC float32, normalised; output: logits.`,
  });
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** What an exported file says about itself. */
export interface OnnxInfo {
  source?: string;
  arch?: ResNetRSArch;
}

export function onnxInfo(bytes: Uint8Array): OnnxInfo {
  const meta = onnxMetadata(bytes);
  const arch = meta[ONNX_META.arch];
  return { source: meta[ONNX_META.source], arch: arch ? (JSON.parse(arch) as ResNetRSArch) : undefined };
}

export interface OnnxFile {
  bytes: Uint8Array;
  sha256: string;
  /** Id of the tfjs model it was exported from. */
  source: string;
  /** True when it was exported just now (absent or stale before). */
  exported: boolean;
}

async function getIfAny(store: ObjectStore, key: string): Promise<Buffer | undefined> {
  try {
    return await store.get(key);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/**
 * The current `model.onnx` of the model at `store`: the one present when its source is the current
 * model.json, else exported from the weights (`model` if the caller has them loaded, else loaded
 * with tfjs — the backend must be initialised) and written beside model.json.
 */
export async function ensureOnnx(store: ObjectStore, model?: TfNamespace.LayersModel): Promise<OnnxFile> {
  const where = trimUri(store.uri);
  const json = await store.get(MODEL_JSON_KEY).catch((err: Error) => {
    throw new Error(`model ${where}: ${err.message}`, { cause: err });
  });
  const source = modelIdOf(json);
  const present = await getIfAny(store, ONNX_KEY);
  if (present) {
    let info: OnnxInfo | undefined;
    try {
      info = onnxInfo(present);
    } catch {
      info = undefined; // damaged or foreign: export again
    }
    if (info?.source === source) return { bytes: present, sha256: sha256Hex(present), source, exported: false };
  }
  if (!model && !currentBackend()) await initBackend('auto');
  const loaded = model ?? (await loadModel(store));
  try {
    const bytes = onnxFromLayersModel(loaded, source);
    await store.put(ONNX_KEY, bytes, { contentType: 'application/octet-stream' });
    return { bytes, sha256: sha256Hex(bytes), source, exported: true };
  } finally {
    if (!model) loaded.dispose();
  }
}
