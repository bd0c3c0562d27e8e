/**
 * The train stage holds its labeled set decoded in memory (4 GiB cap). `validate` and `plan` say
 * so up front, with the numbers and what to change, for a manifest whose set will not fit (the
 * ImageNet manifest); the train stage refuses such a set before reading an image, with the same
 * numbers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { DatasetWriter } from '../../pipeline/data/dataset-writer.js';
import { parseManifest } from '../../pipeline/manifest/load.js';
import { buildChain } from '../../pipeline/runner/chain.js';
import { openStore } from '../../pipeline/store/open.js';
import { loadLabeled } from '../../pipeline/train/data.js';
import { labeledMemoryWarnings, MAX_DECODED_BYTES, overLimit } from '../../pipeline/train/labeled-memory.js';
import { cliArgv } from '../helpers/cli.js';
import { repoRoot } from '../helpers/s3.js';

const manifestPath = (name: string) => path.join(repoRoot(), 'manifests', name);
const load = (name: string) => parseManifest(readFileSync(manifestPath(name), 'utf8'), name);

async function cli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, argv] = cliArgv(...args);
  try {
    const { stdout, stderr } = await promisify(execFile)(cmd, argv, { encoding: 'utf8', env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A port nothing listens on: the ImageNet manifest's S3 datasets are then unreachable at once. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

test('the limit in numbers: 1,281,167 ImageNet images at 224 px RGB are 179.6 GiB; 28,532 fit', () => {
  const msg = overLimit('the labeled set', { samples: 1_281_167, imageSize: 224, channels: 3 });
  assert.match(msg!, /1,281,167 images × 224×224×3 bytes = 179\.6 GiB decoded, over the train stage's 4\.0 GiB in-memory limit/);
  assert.match(msg!, /it fits 28,532 images at 224 px, or these 1,281,167 at 33 px or less/);
  assert.ok(28_532 * 224 * 224 * 3 <= MAX_DECODED_BYTES && 28_533 * 224 * 224 * 3 > MAX_DECODED_BYTES, 'the count that fits is the largest');
  assert.equal(overLimit('fits', { samples: 60_000, imageSize: 28, channels: 1 }), undefined);
});

test('the ImageNet manifest: one warning per train stage; the shipped Fashion-MNIST manifests: none', () => {
  const m = load('imagenet-resnet-rs-152.yaml');
  const warnings = labeledMemoryWarnings(buildChain(m), { labeled: m.datasets.sizes?.labeled, unlabeled: m.datasets.sizes?.unlabeled, labeledRef: m.datasets.labeled });
  assert.equal(warnings.length, 2, warnings.join('\n'));
  assert.match(warnings[0]!, /^`run` will stop at train-teacher-1: the labeled set: 1,281,167 images × 224×224×3 bytes = 179\.6 GiB/);
  assert.match(warnings[0]!, /datasets\.labeled: "webdataset:s3:\/\/my-bucket\/datasets\/imagenet-train" with datasets\.maxSamples\.labeled: 28532/);
  assert.match(warnings[0]!, /or lower teacher\.model\.imageSize/);
  assert.match(warnings[1]!, /^`run` will stop at train-student-1: .*or lower student\.model\.imageSize/);
  for (const name of ['fashion-mnist.yaml', 'fashion-mnist-ci.yaml']) {
    const f = load(name);
    assert.deepEqual(labeledMemoryWarnings(buildChain(f), { labeled: 60_000, unlabeled: 60_000, labeledRef: f.datasets.labeled }), [], name);
  }
});

test('the all-labels baseline counts labeled + unlabeled; an imported source is capped with maxSamples', () => {
  const m = load('fashion-mnist.yaml');
  assert.equal(m.evaluate.baseline, true, 'the demo trains the baseline');
  // 1,000 labeled fit at 224 px grey; 1,000 + 59,000 (2.8 GiB at 224) do not fit at 320 px.
  const bigger = { ...m, teacher: { ...m.teacher, model: { ...m.teacher.model, imageSize: 320 } } };
  const warnings = labeledMemoryWarnings(buildChain(bigger), { labeled: 1_000, unlabeled: 59_000, labeledRef: m.datasets.labeled });
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /^`run` will stop at train-baseline: the all-labels baseline \(labeled \+ unlabeled\): 60,000 images × 320×320×1 bytes = 5\.7 GiB/);
  assert.match(warnings[0]!, /datasets\.maxSamples\.labeled\/\.unlabeled, or evaluate\.baseline: false/);
  const teacher = labeledMemoryWarnings(buildChain(bigger), { labeled: 50_000, unlabeled: 10_000, labeledRef: 'fashion-mnist:train' });
  assert.ok(teacher.some((w) => /train-teacher-1: .*To train now: set datasets\.maxSamples\.labeled: 41943;/.test(w)), teacher.join('\n'));
});

test('validate and plan print the warning for the ImageNet manifest (exit 0: the manifest is valid)', async () => {
  const port = await closedPort();
  const env = { ...process.env, AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_REGION: 'us-east-1' };
  const validate = await cli(['validate', manifestPath('imagenet-resnet-rs-152.yaml')], env);
  assert.equal(validate.code, 0, validate.stderr);
  assert.match(validate.stdout, /^ok: /);
  const warned = validate.stderr.split('\n').filter((l) => l.startsWith('warning: `run` will stop at train-'));
  assert.equal(warned.length, 2, validate.stderr);
  assert.match(warned[0]!, /179\.6 GiB decoded, over the train stage's 4\.0 GiB in-memory limit/);

  const plan = await cli(['plan', manifestPath('imagenet-resnet-rs-152.yaml')], env);
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /\nwarning: `run` will stop at train-teacher-1: the labeled set: 1,281,167 images × 224×224×3 bytes = 179\.6 GiB/);
  const json = await cli(['plan', manifestPath('imagenet-resnet-rs-152.yaml'), '--json'], env);
  const parsed = JSON.parse(json.stdout) as { warnings: string[] };
  assert.equal(parsed.warnings.length, 2);

  const demo = await cli(['validate', manifestPath('fashion-mnist.yaml')]);
  assert.equal(demo.code, 0, demo.stderr);
  assert.doesNotMatch(demo.stderr, /warning/);
});

test('the train stage refuses an oversized set before reading an image, with the same numbers', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'selftrain-labeled-memory-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = openStore(`file://${dir}`);
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#808080' } }).png().toBuffer();
  const w = new DatasetWriter(store, { classes: ['a', 'b'], labeled: true, plan: 'labeled-memory-test' });
  await w.begin();
  await w.writeShard(0, [0, 1, 2, 3].map((i) => ({ key: `k${i}`, ext: 'png', image: png, label: i % 2 })));
  await w.finish(1);
  // 4 images at 20,000 px RGB = 4.5 GiB.
  await assert.rejects(loadLabeled(store, { imageSize: 20_000, channels: 3, holdout: 0, seed: 0 }), (err: Error) => {
    assert.match(err.message, /4 images × 20000×20000×3 bytes = 4\.5 GiB decoded, over the train stage's 4\.0 GiB in-memory limit \(training from streamed shards is not implemented yet\); it fits 3 images at 20000 px/);
    assert.match(err.message, /To train now: cap the set \(manifest datasets\.maxSamples\.labeled: 3, for an imported source\) or lower model\.imageSize/);
    return true;
  });
  // Under the limit the same set loads.
  const ok = await loadLabeled(store, { imageSize: 8, channels: 3, holdout: 0, seed: 0 });
  assert.equal(ok.train.count, 4);
});
