/**
 * ONNX export (pipeline/model/onnx-export.ts) and ONNX Runtime parity:
 * - `selftrain model export` writes a file that the reference checker (onnx.checker.check_model,
 *   full check, from Debian's python3-onnx) accepts, with the recorded metadata;
 * - that file, loaded by onnxruntime-node in another process, gives the tfjs logits within 1e-4
 *   relative (per image, relative to its largest |logit|) and the same top-1 on every image of a
 *   1,000-image eval batch for the demo model with trained weights on Fashion-MNIST test images,
 *   and on RS50_IMAGES images for RS-50 @160 with random weights that make every layer count
 *   (random-weights.ts);
 * - weights of another architecture fail with the variable named; ensureOnnx reuses a current
 *   file and re-exports a stale one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type * as TfNamespace from '@tensorflow/tfjs';
import { getTf, initBackend } from '../../pipeline/backend/select.js';
import { resolveModel } from '../../pipeline/model/family.js';
import { exportResNetRSToOnnx } from '../../pipeline/model/onnx-export.js';
import { ensureOnnx, layersModelWeights, onnxFromLayersModel, onnxInfo, ONNX_KEY } from '../../pipeline/model/onnx-file.js';
import { buildResNetRS } from '../../pipeline/model/resnet-rs.js';
import { loadModel, modelIdOf, MODEL_JSON_KEY } from '../../pipeline/model/store-io.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import { writeTrainedModel } from '../evaluate/fixtures.js';
import { PREPROCESSING } from '../pseudo/fixtures.js';
import { cliArgv } from '../helpers/cli.js';
import { needs, testPython } from '../helpers/extras.js';
import { fashionMnistFloats } from '../helpers/fashion-mnist.js';
import { randomizeWeights } from './random-weights.js';

const run = promisify(execFile);

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const ortChild = fileURLToPath(new URL(`./fixtures/ort-logits${ext}`, import.meta.url));
const PARITY_IMAGES = 1000;
/**
 * RS-50 through tfjs-wasm runs at about 3 images/s per core, so 1,000 images take 5+ minutes on an
 * idle 2-core machine: the suite uses 32, SELFTRAIN_PARITY_RS50_IMAGES=1000 runs the full batch.
 */
const RS50_IMAGES = Number(process.env['SELFTRAIN_PARITY_RS50_IMAGES'] ?? 32);

function tmp(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-onnx-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** onnx.checker.check_model(full_check=True) plus what the file declares, from Python's onnx. */
async function checkWithPython(file: string): Promise<{ ir: number; opset: number; input: (string | number)[]; output: (string | number)[]; meta: Record<string, string> }> {
  const script = `
import json, sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
print(json.dumps({"ir": m.ir_version, "opset": m.opset_import[0].version, "input": dims(m.graph.input[0]), "output": dims(m.graph.output[0]), "meta": {p.key: p.value for p in m.metadata_props}, "onnx": onnx.__version__}))
`;
  const { stdout } = await run(testPython(), ['-c', script, file], { encoding: 'utf8', maxBuffer: 1 << 24 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Awaited<ReturnType<typeof checkWithPython>>;
}

/** Logits from onnxruntime-node in a child process. */
async function ortLogits(dir: string, onnxFile: string, input: Float32Array, n: number, S: number, C: number): Promise<{ logits: Float32Array; description: string }> {
  const inFile = path.join(dir, 'input.bin');
  const outFile = path.join(dir, 'logits.bin');
  writeFileSync(inFile, new Uint8Array(input.buffer, input.byteOffset, input.byteLength));
  const [cmd, argv] = [process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), ortChild, onnxFile, inFile, String(n), String(S), String(C), outFile, '2']];
  const { stdout } = await run(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 20 });
  const info = JSON.parse(stdout.trim().split('\n').pop()!) as { description: string };
  return { logits: new Float32Array(new Uint8Array(readFileSync(outFile)).buffer), description: info.description };
}

function tfjsLogits(model: TfNamespace.LayersModel, input: Float32Array, n: number, S: number, C: number, chunk: number): Float32Array {
  const tf = getTf();
  const parts: Float32Array[] = [];
  for (let i = 0; i < n; i += chunk) {
    const m = Math.min(chunk, n - i);
    parts.push(tf.tidy(() => (model.predict(tf.tensor4d(input.subarray(i * S * S * C, (i + m) * S * S * C), [m, S, S, C])) as TfNamespace.Tensor).dataSync() as Float32Array));
  }
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const argmax = (a: Float32Array) => a.reduce((best, v, i) => (v > a[best]! ? i : best), 0);

/** Per image: max |onnx − tfjs| / max |tfjs|; and the images whose top-1 differs. */
function compare(tfjs: Float32Array, ort: Float32Array, n: number, K: number): { maxRel: number; top1Diff: number[]; minScale: number } {
  assert.equal(ort.length, tfjs.length, 'same number of logits');
  let maxRel = 0;
  let minScale = Infinity;
  const top1Diff: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = tfjs.subarray(i * K, (i + 1) * K);
    const b = ort.subarray(i * K, (i + 1) * K);
    const scale = Math.max(...Array.from(a, Math.abs));
    minScale = Math.min(minScale, scale);
    let d = 0;
    for (let j = 0; j < K; j++) d = Math.max(d, Math.abs(a[j]! - b[j]!));
    maxRel = Math.max(maxRel, d / scale);
    if (argmax(a) !== argmax(b)) top1Diff.push(i);
  }
  return { maxRel, top1Diff, minScale };
}

test('selftrain model export: the onnx checker accepts the file, which records its source and shapes', { skip: needs('onnx', 'fashion-mnist') }, async (t) => {
  const dir = tmp(t);
  const store = new FileStore(path.join(dir, 'model'));
  await writeTrainedModel(store, 2);
  const id = modelIdOf(await store.get(MODEL_JSON_KEY));
  const out = path.join(dir, 'exported', 'demo.onnx');
  const [cmd, argv] = cliArgv('model', 'export', path.join(dir, 'model'), '--format', 'onnx', '--out', out);
  const { stdout } = await run(cmd, argv, { encoding: 'utf8' });
  assert.match(stdout, new RegExp(`wrote .*demo\\.onnx: .* from ${id.replace(/[.@]/g, '\\$&')} \\(opset 13\\)`));
  const info = await checkWithPython(out);
  t.diagnostic(`onnx.checker.check_model(full_check=True) passed (python onnx ${(info as { onnx?: string }).onnx})`);
  assert.equal(info.ir, 7);
  assert.equal(info.opset, 13);
  assert.deepEqual(info.input, ['batch', 28, 28, 1]);
  assert.deepEqual(info.output, ['batch', 10]);
  assert.equal(info.meta['selftrain.source'], id);
  assert.equal(JSON.parse(info.meta['selftrain.arch']!).depth, 26);
  assert.equal(JSON.parse(info.meta['selftrain.preprocessing']!).imageSize, 28);

  // Default --out: model.onnx beside model.json; a bad format or a missing model is an error.
  const [c2, a2] = cliArgv('model', 'export', path.join(dir, 'model'));
  await run(c2, a2, { encoding: 'utf8' });
  assert.deepEqual(readFileSync(path.join(dir, 'model', ONNX_KEY)), readFileSync(out), 'deterministic export');
  const [c3, a3] = cliArgv('model', 'export', path.join(dir, 'nowhere'));
  await assert.rejects(run(c3, a3, { encoding: 'utf8' }), (err: { code: number; stderr: string }) => err.code === 1 && /no model at .*nowhere/.test(err.stderr));
  const [c4, a4] = cliArgv('model', 'export', path.join(dir, 'model'), '--format', 'tflite');
  await assert.rejects(run(c4, a4, { encoding: 'utf8' }), (err: { code: number; stderr: string }) => err.code === 2 && /--format tflite is not supported/.test(err.stderr));
});

test('demo model, trained weights: ONNX Runtime (other process) matches tfjs on 1,000 eval images', { skip: needs('onnx', 'onnxruntime-node', 'fashion-mnist') }, async (t) => {
  const dir = tmp(t);
  const store = new FileStore(path.join(dir, 'model'));
  await writeTrainedModel(store, 30);
  const { bytes } = await ensureOnnx(store);
  const file = path.join(dir, 'model', ONNX_KEY);
  await checkWithPython(file);
  const model = await loadModel(store);
  t.after(() => model.dispose());
  const images = fashionMnistFloats('t10k', PARITY_IMAGES);
  const m = PREPROCESSING.mean[0]!, sd = PREPROCESSING.std[0]!;
  const input = images.images.map((v) => (v * 255 - m) / sd);
  const ref = tfjsLogits(model, input, PARITY_IMAGES, 28, 1, 250);
  const ort = await ortLogits(dir, file, input, PARITY_IMAGES, 28, 1);
  const r = compare(ref, ort.logits, PARITY_IMAGES, 10);
  let correct = 0;
  for (let i = 0; i < PARITY_IMAGES; i++) if (argmax(ref.subarray(i * 10, i * 10 + 10)) === images.labels[i]) correct++;
  t.diagnostic(`${ort.description}; ${bytes.length} bytes; max relative logit difference ${r.maxRel.toExponential(2)}; top-1 differs on ${r.top1Diff.length}/${PARITY_IMAGES}; tfjs accuracy ${(correct / 10).toFixed(1)} %`);
  assert.ok(correct > 150, `the trained model is better than chance (${correct}/1000)`);
  assert.ok(r.minScale > 1e-2, 'non-trivial logits');
  assert.ok(r.maxRel <= 1e-4, `logits differ by ${r.maxRel} relative`);
  assert.deepEqual(r.top1Diff, []);
});

test(`RS-50 @160: ONNX Runtime (other process) matches tfjs on ${RS50_IMAGES} images`, { skip: needs('onnx', 'onnxruntime-node', 'fashion-mnist') }, async (t) => {
  await initBackend('wasm');
  const tf = getTf();
  const dir = tmp(t);
  const { arch } = resolveModel({ name: 'resnet-rs-50' });
  const model = buildResNetRS(arch);
  t.after(() => model.dispose());
  randomizeWeights(model, 500);
  const file = path.join(dir, 'rs50.onnx');
  writeFileSync(file, onnxFromLayersModel(model, 'rs50-test'));
  await checkWithPython(file);
  // Real images: Fashion-MNIST test images, bilinear to 160x160, grey to RGB, normalised.
  const n = RS50_IMAGES;
  const S = 160;
  const fm = fashionMnistFloats('t10k', n);
  const input = new Float32Array(n * S * S * 3);
  for (let i = 0; i < n; i += 100) {
    const m = Math.min(100, n - i);
    const x = tf.tidy(() => {
      const g = tf.image.resizeBilinear(tf.tensor4d(fm.images.subarray(i * 784, (i + m) * 784), [m, 28, 28, 1]), [S, S]);
      return tf.tile(g, [1, 1, 1, 3]).sub(0.286).div(0.353);
    });
    input.set(x.dataSync() as Float32Array, i * S * S * 3);
    x.dispose();
  }
  const started = performance.now();
  const ref = tfjsLogits(model, input, n, S, 3, 8);
  const tfjsSeconds = (performance.now() - started) / 1000;
  const ort = await ortLogits(dir, file, input, n, S, 3);
  const r = compare(ref, ort.logits, n, 1000);
  const distinct = new Set(Array.from({ length: n }, (_, i) => argmax(ref.subarray(i * 1000, (i + 1) * 1000)))).size;
  t.diagnostic(`${ort.description}; max relative logit difference ${r.maxRel.toExponential(2)}; top-1 differs on ${r.top1Diff.length}/${n}; ${distinct} distinct top-1 classes (random weights); tfjs ${tfjsSeconds.toFixed(0)} s`);
  assert.ok(r.minScale > 1e-2, 'non-trivial logits');
  assert.ok(r.maxRel <= 1e-4, `logits differ by ${r.maxRel} relative`);
  assert.deepEqual(r.top1Diff, []);
});

test('odd feature sizes (ResNet-D pool padding) export exactly; wrong weights fail with the variable named', { skip: needs('onnxruntime-node') }, async (t) => {
  await initBackend('wasm');
  const tf = getTf();
  const dir = tmp(t);
  // The demo layout (RS-26, width 0.25) with the standard stride-2 stem, 3 channels, 36 px:
  // 18 → 9 → 5 → 3 (the pools see 9 and 5) — and 7 classes.
  const demo = resolveModel({ name: 'resnet-rs-26-w0.25-small' }).arch;
  const arch = { ...demo, smallInput: false, imageSize: 36, inputChannels: 3, classes: 7 };
  const model = buildResNetRS(arch);
  t.after(() => model.dispose());
  randomizeWeights(model, 7);
  const file = path.join(dir, 'odd.onnx');
  writeFileSync(file, onnxFromLayersModel(model, 'odd-test'));
  const n = 16;
  const input = tf.tidy(() => tf.randomNormal([n, 36, 36, 3], 0, 1, 'float32', 3).dataSync() as Float32Array);
  const r = compare(tfjsLogits(model, input, n, 36, 3, n), (await ortLogits(dir, file, input, n, 36, 3)).logits, n, 7);
  assert.ok(r.maxRel <= 1e-4, `logits differ by ${r.maxRel} relative`);

  const other = buildResNetRS({ ...arch, widthMultiplier: 0.5 });
  t.after(() => other.dispose());
  assert.throws(() => exportResNetRSToOnnx(arch, layersModelWeights(other)), /onnx export: stem_conv1\/kernel has shape \[3, 3, 3, 16\], the architecture needs \[3, 3, 3, 8\]/);
});

test('ensureOnnx: exports when absent, reuses a current file, re-exports a stale one', { skip: needs('fashion-mnist') }, async (t) => {
  const dir = tmp(t);
  const store = new FileStore(path.join(dir, 'model'));
  await writeTrainedModel(store, 1);
  const first = await ensureOnnx(store);
  assert.equal(first.exported, true);
  assert.equal(onnxInfo(await store.get(ONNX_KEY)).source, modelIdOf(await store.get(MODEL_JSON_KEY)));
  const again = await ensureOnnx(store);
  assert.equal(again.exported, false);
  assert.equal(again.sha256, first.sha256);
  // A new model.json (retrained) makes the file stale; so does a damaged file.
  await writeTrainedModel(store, 2);
  const third = await ensureOnnx(store);
  assert.equal(third.exported, true);
  assert.notEqual(third.sha256, first.sha256);
  assert.equal(third.source, modelIdOf(await store.get(MODEL_JSON_KEY)));
  await store.put(ONNX_KEY, 'not protobuf');
  assert.equal((await ensureOnnx(store)).exported, true);
  // The in-memory model of the caller is used as it is (the train stage passes its own).
  const model = await loadModel(store);
  t.after(() => model.dispose());
  await store.put(ONNX_KEY, 'x');
  assert.equal((await ensureOnnx(store, model)).sha256, third.sha256);
});
