/**
 * Saving and loading models through the ObjectStore: file:// and a real S3 server (Swift s3api)
 * give bit-identical outputs after a round trip, for a model with stochastic depth, SE and dropout;
 * a save interrupted before model.json is never loaded; damaged saves fail with clear errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { getTf, initBackend } from '../../pipeline/backend/select.js';
import { FASHION_MNIST_MODEL } from '../../pipeline/model/family.js';
import { archOf, buildModel, type LayersModel } from '../../pipeline/model/resnet-rs.js';
import { loadModel, loadModelFrom, MODEL_JSON_KEY, saveModelTo, storeModelIO } from '../../pipeline/model/store-io.js';
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { s3TestStore } from '../helpers/s3.js';
import { needs } from '../helpers/extras.js';
import { fashionMnistFloats } from '../helpers/fashion-mnist.js';

await initBackend('wasm');
const tf = getTf();
const choice = { name: FASHION_MNIST_MODEL, stochasticDepthRate: 0.2, dropoutRate: 0.3 };
const images = () => fashionMnistFloats('t10k', 8);

/** Random weights everywhere (zero-γ residual branches would otherwise hide SE weights). */
function randomize(m: LayersModel, seed: number): void {
  let k = seed;
  for (const layer of m.layers) {
    const ws = layer.getWeights();
    if (!ws.length) continue;
    layer.setWeights(
      ws.map((w, i) => {
        const positive = layer.getClassName() === 'BatchNormalization' && (i === 0 || i === 3); // gamma, moving variance
        return positive ? tf.randomUniform(w.shape, 0.5, 1.5, 'float32', k++) : tf.randomNormal(w.shape, 0, 0.2, 'float32', k++);
      }),
    );
  }
}

function predict(m: LayersModel): Float32Array {
  return tf.tidy(() => (m.predict(tf.tensor4d(images().images, [8, 28, 28, 1])) as ReturnType<typeof tf.zeros>).dataSync() as Float32Array);
}

async function roundTrip(store: ObjectStore): Promise<void> {
  const m = buildModel(choice);
  randomize(m, 1);
  const expected = predict(m);
  await m.save(storeModelIO(store));
  const keys = (await store.list('')).map((o) => o.key);
  assert.equal(keys.length, 2, `model.json + one weights file, got ${keys.join(', ')}`);
  const loaded = await loadModel(store);
  try {
    assert.deepEqual(predict(loaded), expected, 'bit-identical outputs after the round trip');
    const classes = loaded.layers.map((l) => l.getClassName());
    assert.equal(classes.filter((c) => c === 'StochasticDepth').length, 8, 'one drop-path per block');
    assert.ok(classes.includes('SeededDropout'));
    assert.ok(classes.includes('Multiply'), 'SE scale present');
    assert.equal((loaded.getLayer('s4b2_drop_path') as unknown as { rate: number }).rate, 0.2);
    assert.deepEqual(archOf(loaded), archOf(m));
    // Training mode still works on the loaded model (noise layers are live, not just deserialised).
    const y = loaded.apply(tf.zeros([2, 28, 28, 1]), { training: true }) as ReturnType<typeof tf.zeros>;
    assert.deepEqual(y.shape, [2, 10]);
    y.dispose();
  } finally {
    m.dispose();
    loaded.dispose();
  }
}

test('round trip through file:// gives identical outputs', { skip: needs('fashion-mnist') }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-model-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = openStore(pathToFileURL(dir).href).sub('teacher/model');
  await roundTrip(store);
  // The URI helpers reach the same files.
  const viaUri = await loadModelFrom(`${pathToFileURL(dir).href}/teacher/model`);
  viaUri.dispose();
});

test('round trip through S3 gives identical outputs', { skip: needs('fashion-mnist') }, async (t) => {
  const store = await s3TestStore(t);
  if (!store) return;
  await roundTrip(store.sub('runs/x/teacher/model'));
});

test('a save interrupted before model.json is never loaded; stale weights are cleaned up', { skip: needs('fashion-mnist') }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-model-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = openStore(pathToFileURL(dir).href);
  const a = buildModel(choice);
  randomize(a, 10);
  const outA = predict(a);
  await saveModelTo(a, store.uri);
  // Model B's save "crashes" after its weights are written: model.json still names A's weights.
  const b = buildModel(choice);
  randomize(b, 20);
  const crashing: ObjectStore = Object.create(store, {
    put: {
      value: async (key: string, body: Uint8Array | string) => {
        if (key === MODEL_JSON_KEY) throw new Error('simulated crash before model.json');
        return store.put(key, body);
      },
    },
  });
  await assert.rejects(b.save(storeModelIO(crashing)), /simulated crash/);
  assert.equal((await store.list('weights-')).length, 2, 'B weights written, A weights still there');
  const loaded = await loadModel(store);
  assert.deepEqual(predict(loaded), outA, 'still model A');
  loaded.dispose();
  // A complete save of B replaces A and removes the unreferenced weight files.
  await b.save(storeModelIO(store));
  assert.equal((await store.list('weights-')).length, 1);
  const loadedB = await loadModel(store);
  assert.deepEqual(predict(loadedB), predict(b));
  for (const m of [a, b, loadedB]) m.dispose();
});

test('missing, damaged or truncated saves fail with errors naming the object', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-model-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = openStore(pathToFileURL(dir).href);
  await assert.rejects(loadModel(store.sub('nothing')), /no saved model at file:\/\/.*\/nothing\/model\.json/);
  const m = buildModel({ name: FASHION_MNIST_MODEL });
  await m.save(storeModelIO(store.sub('m')));
  m.dispose();
  const [weights] = await store.list('m/weights-');
  const bytes = await store.get(weights!.key);
  await store.put(weights!.key, bytes.subarray(0, bytes.length - 4));
  await assert.rejects(loadModel(store.sub('m')), /model\.json: weights hold \d+ bytes but the manifest describes \d+/);
  await store.delete(weights!.key);
  await assert.rejects(loadModel(store.sub('m')), /names weights file .*weights-[0-9a-f]+\.bin, which is missing/);
  await store.put('m/model.json', '{"modelTopology":');
  await assert.rejects(loadModel(store.sub('m')), /m\/model\.json is not valid JSON/);
});
