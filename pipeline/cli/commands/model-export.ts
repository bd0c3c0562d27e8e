/**
 * The work of `selftrain model export`: load a saved tfjs model from a store, export it as ONNX
 * (pipeline/model/onnx-file.ts) and write the file to a path or store URI.
 */
import { initBackend, type BackendPreference } from '../../backend/select.js';
import { onnxFromLayersModel, ONNX_KEY, sha256Hex } from '../../model/onnx-file.js';
import { ONNX_OPSET } from '../../model/onnx-export.js';
import { loadModel, modelIdOf, MODEL_JSON_KEY } from '../../model/store-io.js';
import { openStore } from '../../store/open.js';
import type { ObjectStore } from '../../store/types.js';
import { objectUri, trimUri } from '../../store/uri.js';

export interface ExportResult {
  out: string;
  bytes: number;
  sha256: string;
  /** Id of the exported tfjs model (`<name>@<16 hex of sha256(model.json)>`). */
  source: string;
  opset: number;
}

/** `dir/name.onnx`, `file:///dir/name.onnx`, `s3://bucket/prefix/name.onnx` → the directory store's URI and the key. */
export function splitFileUri(out: string): { dir: string; key: string } {
  const slash = out.lastIndexOf('/');
  const key = out.slice(slash + 1);
  if (key === '' || key === '.' || key === '..') throw new Error(`--out ${out}: expected a file name at the end (e.g. ${out.replace(/\/*$/, '')}/${ONNX_KEY})`);
  if (slash < 0) return { dir: '.', key };
  const dir = out.slice(0, slash);
  if (/^[a-z0-9+.-]+:\/?$/i.test(dir)) throw new Error(`--out ${out}: expected <scheme>://<location>/<file name>`);
  return { dir: dir === '' ? '/' : dir, key };
}

export async function exportModelCommand(modelUri: string, out: string | undefined, backend: string): Promise<ExportResult> {
  const target = out === undefined ? undefined : splitFileUri(out);
  const opened: ObjectStore[] = [];
  try {
    const model = openStore(modelUri);
    opened.push(model);
    const where = trimUri(model.uri);
    const json = await model.get(MODEL_JSON_KEY).catch((err: Error) => {
      throw new Error(`no model at ${where} (${MODEL_JSON_KEY}): ${err.message}`, { cause: err });
    });
    const source = modelIdOf(json);
    await initBackend(backend as BackendPreference);
    const layers = await loadModel(model);
    let bytes: Uint8Array;
    try {
      bytes = onnxFromLayersModel(layers, source);
    } finally {
      layers.dispose();
    }
    let dest = model;
    let key = ONNX_KEY;
    if (target) {
      dest = openStore(target.dir);
      opened.push(dest);
      key = target.key;
    }
    await dest.put(key, bytes, { contentType: 'application/octet-stream' });
    return { out: objectUri(dest, key), bytes: bytes.length, sha256: sha256Hex(bytes), source, opset: ONNX_OPSET };
  } finally {
    await Promise.all(opened.map((s) => s.close()));
  }
}
