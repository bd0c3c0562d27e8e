/**
 * Saving and loading tf.layers models through the project's ObjectStore (file:// or s3://), in the
 * standard tfjs layout: `model.json` + a weights file it names.
 *
 * Crash safety: the weights are written first under a content-addressed name
 * (`weights-<sha256 prefix>.bin`) and `model.json` last, each with an atomic put. A reader therefore
 * sees either the previous complete model or the new complete one — never new weights under an old
 * topology, nor a model.json whose weights are missing. Weight files no longer referenced are
 * deleted after model.json is in place (a reader that fetched the old model.json a moment earlier
 * may then fail to find its weights and must retry; it can never load mixed data).
 *
 * Usage:
 *   await model.save(storeModelIO(store.sub('teacher/model')));
 *   const m = await loadModel(store.sub('teacher/model'));
 *   // or by URI: await saveModelTo(model, 's3://bucket/run/teacher/model'); await loadModelFrom(uri)
 */
import { createHash } from 'node:crypto';
import type * as TfNamespace from '@tensorflow/tfjs';
import { getTf } from '../backend/select.js';
import { openStore } from '../store/open.js';
import { NotFoundError, type ObjectStore } from '../store/types.js';
import { registerModelLayers } from './layers.js';
import { objectUri } from '../store/uri.js';

type io = typeof TfNamespace.io;
type ModelArtifacts = TfNamespace.io.ModelArtifacts;
type ModelJSON = TfNamespace.io.ModelJSON;
type WeightsManifestEntry = TfNamespace.io.WeightsManifestEntry;
type WeightsManifestConfig = TfNamespace.io.WeightsManifestConfig;

export { MODEL_JSON_KEY } from './layout.js';
import { MODEL_JSON_KEY } from './layout.js';
const WEIGHTS_RE = /^weights-[0-9a-f]{16}\.bin$/;

const BYTES_PER: Record<string, number> = { float32: 4, int32: 4, bool: 1, float16: 2, uint8: 1, uint16: 2, complex64: 8 };

function where(store: ObjectStore, key: string): string {
  return objectUri(store, key);
}

/** A tfjs IOHandler whose save/load go to `store` (rooted at the model's directory). */
export function storeModelIO(store: ObjectStore): TfNamespace.io.IOHandler {
  const tf = getTf();
  return {
    save: async (artifacts: ModelArtifacts) => {
      if (!artifacts.modelTopology || artifacts.modelTopology instanceof ArrayBuffer) {
        throw new Error(`saving to ${where(store, MODEL_JSON_KEY)}: only layers models with a JSON topology are supported`);
      }
      const weightSpecs = artifacts.weightSpecs ?? [];
      const data = artifacts.weightData === undefined ? new ArrayBuffer(0) : (tf.io.concatenateArrayBuffers as io['concatenateArrayBuffers'])(artifacts.weightData);
      const bytes = new Uint8Array(data);
      const weightsKey = `weights-${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}.bin`;
      const manifest: WeightsManifestConfig = [{ paths: [weightsKey], weights: weightSpecs }];
      const modelJSON: ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        weightsManifest: manifest,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: artifacts.convertedBy ?? null,
        ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig } : {}),
        ...(artifacts.signature ? { signature: artifacts.signature } : {}),
        ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
        ...(artifacts.modelInitializer ? { modelInitializer: artifacts.modelInitializer } : {}),
      };
      // Order matters: weights, then model.json (the commit point), then cleanup.
      await store.put(weightsKey, bytes, { contentType: 'application/octet-stream' });
      await store.put(MODEL_JSON_KEY, JSON.stringify(modelJSON), { contentType: 'application/json' });
      const stale = (await store.list('weights-')).filter((o) => WEIGHTS_RE.test(o.key) && o.key !== weightsKey);
      await Promise.all(stale.map((o) => store.delete(o.key)));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
    load: async () => {
      const jsonUri = where(store, MODEL_JSON_KEY);
      let text: string;
      try {
        text = (await store.get(MODEL_JSON_KEY)).toString('utf8');
      } catch (err) {
        if (err instanceof NotFoundError) throw new Error(`no saved model at ${jsonUri}`, { cause: err });
        throw err;
      }
      let modelJSON: ModelJSON;
      try {
        modelJSON = JSON.parse(text) as ModelJSON;
      } catch (err) {
        throw new Error(`${jsonUri} is not valid JSON: ${(err as Error).message}`, { cause: err });
      }
      if (typeof modelJSON !== 'object' || modelJSON === null || !modelJSON.modelTopology) {
        throw new Error(`${jsonUri} has no modelTopology: not a tfjs layers model`);
      }
      return tf.io.getModelArtifactsForJSON(modelJSON, (manifest) => readWeights(store, jsonUri, manifest));
    },
  };
}

async function readWeights(
  store: ObjectStore,
  jsonUri: string,
  manifest: WeightsManifestConfig,
): Promise<[WeightsManifestEntry[], ArrayBuffer]> {
  if (!Array.isArray(manifest)) throw new Error(`${jsonUri}: weightsManifest must be an array`);
  const specs: WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const group of manifest) {
    specs.push(...group.weights);
    for (const p of group.paths) {
      // Paths are relative to the model's directory; refuse anything that could escape it.
      if (typeof p !== 'string' || p === '' || p.startsWith('/') || p.includes('..') || p.includes('\\') || /^[a-z]+:/i.test(p)) {
        throw new Error(`${jsonUri}: weights path ${JSON.stringify(p)} must be a plain relative name`);
      }
      try {
        parts.push(await store.get(p));
      } catch (err) {
        if (err instanceof NotFoundError) {
          throw new Error(`${jsonUri} names weights file ${where(store, p)}, which is missing (model overwritten while loading, or a partial copy)`, { cause: err });
        }
        throw err;
      }
    }
  }
  const total = parts.reduce((n, b) => n + b.byteLength, 0);
  const expected = expectedBytes(specs);
  if (expected !== undefined && expected !== total) {
    throw new Error(`${jsonUri}: weights hold ${total} bytes but the manifest describes ${expected} (truncated or mismatched weights file)`);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const b of parts) {
    out.set(b, off);
    off += b.byteLength;
  }
  return [specs, out.buffer];
}

/** Byte size the specs imply, or undefined when quantization/strings make it not simple. */
function expectedBytes(specs: WeightsManifestEntry[]): number | undefined {
  let n = 0;
  for (const s of specs) {
    if (s.quantization || s.dtype === 'string' || BYTES_PER[s.dtype] === undefined) return undefined;
    n += s.shape.reduce((a, b) => a * b, 1) * BYTES_PER[s.dtype]!;
  }
  return n;
}

/**
 * The id of a saved model: `<model name>@<16 hex of sha256(model.json)>`. model.json names the
 * content-addressed weights file, so the hash identifies the exact weights, wherever they are stored.
 */
export function modelIdOf(modelJson: Uint8Array): string {
  let name = 'model';
  try {
    const parsed = JSON.parse(Buffer.from(modelJson).toString('utf8')) as { modelTopology?: { config?: { name?: unknown } } };
    if (typeof parsed.modelTopology?.config?.name === 'string') name = parsed.modelTopology.config.name;
  } catch {
    /* loadModel reports unreadable JSON with a proper message */
  }
  return `${name}@${createHash('sha256').update(modelJson).digest('hex').slice(0, 16)}`;
}

/** Loads a layers model saved with storeModelIO (registers the model's custom layers first). */
export async function loadModel(store: ObjectStore): Promise<TfNamespace.LayersModel> {
  const tf = getTf();
  registerModelLayers(tf);
  return tf.loadLayersModel(storeModelIO(store), { strict: true });
}

/** Saves to a store URI naming the model's directory (file://…, s3://bucket/prefix). */
export async function saveModelTo(model: TfNamespace.LayersModel, uri: string): Promise<void> {
  const store = openStore(uri);
  try {
    await model.save(storeModelIO(store));
  } finally {
    await store.close();
  }
}

export async function loadModelFrom(uri: string): Promise<TfNamespace.LayersModel> {
  const store = openStore(uri);
  try {
    return await loadModel(store);
  } finally {
    await store.close();
  }
}
