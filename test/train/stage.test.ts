/**
 * The train stage on real Fashion-MNIST shards: student mode (labeled + pseudo-labeled batches read
 * from the unlabeled shards by (shard, key)), and bad input — pseudo-labels pointing at missing
 * images, a checkpoint from a different model, a diverging (NaN) loss.
 */
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getTf, initBackend } from '../../pipeline/backend/select.js';
import { onnxInfo } from '../../pipeline/model/onnx-file.js';
import { encodeJsonlGz } from '../../pipeline/pseudo/jsonl.js';
import type { PseudoLabelRecord } from '../../pipeline/pseudo/records.js';
import type { StageContext } from '../../pipeline/runner/stage.js';
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { openPseudoSource } from '../../pipeline/train/pseudo.js';
import { loadCheckpoint } from '../../pipeline/train/checkpoint.js';
import { runStage } from '../../stages/train/index.js';
import { loadModel, modelIdOf } from '../../pipeline/model/store-io.js';
import { writeFashionDataset } from './make-dataset.js';
import { stageContext } from '../helpers/stage-context.js';
import { needs } from '../helpers/extras.js';

const NEEDS = needs('fashion-mnist');

await initBackend((process.env['SELFTRAIN_TEST_TRAIN_BACKEND'] ?? 'wasm') as 'wasm');

let dir: string;
let run: ObjectStore;
let labeled: string, unlabeled: string;
let unlabeledKeys: string[];
const MODEL = { name: 'resnet-rs-26-w0.25-small', imageSize: 16, dropoutRate: 0.1, stochasticDepthRate: 0.1 };
const TRAIN = { epochs: 1, batchSize: 8, holdout: 0.2, schedule: { warmupEpochs: 0 }, randAugment: { scaleWithImage: true }, checkpoint: { everySteps: 1, keep: 2 } };

function context(outPrefix: string, warnings: string[] = []): StageContext {
  return stageContext({ run, outPrefix, log: { info: () => {}, warn: (m) => void warnings.push(m), error: (m) => void warnings.push(m), debug: () => {} } });
}

before(async () => {
  if (NEEDS) return; // every test below skips
  dir = mkdtempSync(path.join(tmpdir(), 'selftrain-train-stage-'));
  run = openStore(`file://${dir}`);
  await writeFashionDataset(run.sub('data/labeled'), { split: 'train', perClass: 3, labeled: true, perShard: 10 });
  unlabeledKeys = (await writeFashionDataset(run.sub('data/unlabeled'), { split: 'train', from: 1000, count: 40, labeled: false, perShard: 20 })).keys;
  labeled = `file://${dir}/data/labeled`;
  unlabeled = `file://${dir}/data/unlabeled`;
  // A select-stage output: soft targets, repeat counts, and two records whose image does not exist.
  const rec = (shard: string, key: string, i: number): PseudoLabelRecord => ({
    shard, key, label: i % 10, confidence: 0.8, classes: [i % 10, (i + 1) % 10], probs: [0.8, 0.2], repeats: 1 + (i % 2),
  });
  const shard0 = unlabeledKeys.slice(0, 20).map((k, i) => rec('shard-000000', k, i));
  shard0.push(rec('shard-000000', 'train-99999', 3));
  const shard1 = unlabeledKeys.slice(20).map((k, i) => rec('shard-000001', k, i + 20));
  shard1.push(rec('shard-000042', unlabeledKeys[0]!, 5));
  await run.put('select-1/pseudo/shard-000000.jsonl.gz', encodeJsonlGz(shard0));
  await run.put('select-1/pseudo/shard-000001.jsonl.gz', encodeJsonlGz(shard1));
  await run.put('select-missing/pseudo/shard-000000.jsonl.gz', encodeJsonlGz([rec('shard-000000', 'nope', 1)]));
});

after(async () => {
  if (!dir) return;
  await run.close();
  rmSync(dir, { recursive: true, force: true });
});

test('student: labeled + r x pseudo-labeled batches, missing images skipped by name, EMA model exported', { skip: NEEDS, timeout: 300_000 }, async () => {
  const warnings: string[] = [];
  const tensorsBefore = getTf().memory().numTensors;
  const res = await runStage(context('train-student-1/', warnings), {
    role: 'student',
    model: MODEL,
    train: { ...TRAIN, student: { ratio: 2 } },
    seed: 1,
    inputs: { labeled, unlabeled, pseudo: 'select-1' },
  });
  assert.equal(getTf().memory().numTensors, tensorsBefore, 'no tensors leaked by a whole stage run');
  const s = res.summary as { pseudo: { unique: number; withRepeats: number; skipped: number; ratio: number }; steps: number; epochs: unknown[] };
  assert.equal(s.pseudo.unique, 40);
  assert.equal(s.pseudo.withRepeats, 60); // repeats 1 and 2 alternate
  assert.equal(s.pseudo.skipped, 2);
  assert.ok(warnings.some((w) => w.includes('select-1/pseudo/shard-000000.jsonl.gz') && w.includes('train-99999')), warnings.join('\n'));
  assert.ok(warnings.some((w) => w.includes('shard-000042')), warnings.join('\n'));
  assert.equal(s.steps, 2); // 30 labeled - 10 held out (round(0.2 x 3) per class) = 20, batch 8, remainder dropped
  assert.ok(existsSync(path.join(dir, 'train-student-1/model/model.json')));
  // Its ONNX export beside it, from exactly that model.json.
  const onnx = onnxInfo(readFileSync(path.join(dir, 'train-student-1/model/model.onnx')));
  assert.equal(onnx.source, modelIdOf(readFileSync(path.join(dir, 'train-student-1/model/model.json'))));
  assert.equal(onnx.arch?.depth, 26);
  const metrics = readFileSync(path.join(dir, 'train-student-1/metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(metrics.length, 1);
  assert.ok(Number.isFinite(metrics[0].trainLoss) && metrics[0].heldoutAcc !== null);
  const model = JSON.parse(readFileSync(path.join(dir, 'train-student-1/model/model.json'), 'utf8'));
  assert.equal(model.userDefinedMetadata.preprocessing.channels, 1);
  // The export holds the EMA weights (= the final checkpoint's EMA shadows), not the raw ones.
  const ck = await loadCheckpoint(run.sub('train-student-1/'), 2);
  const exported = await loadModel(run.sub('train-student-1/model'));
  const i = exported.weights.findIndex((w) => w.originalName.endsWith('/kernel'));
  const got = exported.weights[i]!.read().dataSync();
  assert.deepEqual(Array.from(got), Array.from(ck.groups.ema[i]!.data));
  assert.notDeepEqual(Array.from(got), Array.from(ck.groups.weights[i]!.data));
  exported.dispose();
});

test('student, 2 workers, stopped after step 2 and resumed: the same weights as an uninterrupted run', { skip: NEEDS, timeout: 300_000 }, async () => {
  // 3 epochs of 2 steps, 16 pseudo-labeled images per step from 60 entries: the permutation's round
  // changes mid-run, and the resumed run starts with empty index and decoded-image caches.
  const cfg = { role: 'student' as const, model: MODEL, train: { ...TRAIN, epochs: 3, workers: 2, student: { ratio: 2 } }, seed: 1, inputs: { labeled, unlabeled, pseudo: 'select-1' } };
  await runStage(context('student-whole/'), cfg);
  const ac = new AbortController();
  const onStep = (step: number) => {
    if (step === 2) ac.abort(new Error('stop requested'));
  };
  await assert.rejects(runStage({ ...context('student-resumed/'), signal: ac.signal }, cfg, { onStep }), /stop requested/);
  const resumed = await runStage(context('student-resumed/'), cfg);
  assert.equal((resumed.summary as { resumedFrom: number | null }).resumedFrom, 3);
  assert.equal((resumed.summary as { steps: number }).steps, 6);
  const weights = (prefix: string) => {
    const model = path.join(dir, prefix, 'model');
    const files = readdirSync(model).filter((f) => f.endsWith('.bin') && !f.startsWith('.')).sort();
    assert.ok(files.length > 0, `weight files in ${model}`);
    return Buffer.concat(files.map((f) => readFileSync(path.join(model, f))));
  };
  assert.ok(weights('student-whole').equals(weights('student-resumed')), 'resumed student = uninterrupted student, byte for byte');
});

test('pseudo-labels none of which point at an image: a clear error', { skip: NEEDS }, async () => {
  await assert.rejects(
    openPseudoSource({
      select: run.sub('select-missing'), unlabeled: run.sub('data/unlabeled'), ratio: 1, hard: false, labelSmoothing: 0.1,
      numClasses: 10, imageSize: 16, channels: 1, seed: 0, log: { info() {}, warn() {}, error() {}, debug() {} },
    }),
    /none of the pseudo-labels point at an image/,
  );
});

test('a checkpoint from a different model is refused, naming the checkpoint and the tensor', { skip: NEEDS, timeout: 300_000 }, async () => {
  await runStage(context('shape/'), { role: 'teacher', model: MODEL, train: { ...TRAIN, maxSteps: 2 }, seed: 1, inputs: { labeled } });
  await assert.rejects(
    runStage(context('shape/'), { role: 'teacher', model: { ...MODEL, inputChannels: 3 }, train: { ...TRAIN, maxSteps: 2 }, seed: 1, inputs: { labeled } }),
    (err: Error) => {
      assert.match(err.message, /checkpoint .*shape\/ckpt\/step-000000002\/ does not match the model/);
      assert.match(err.message, /has shape \[.*\] but the model's ".*" is \[/);
      return true;
    },
  );
});

test('a diverging loss stops with the step named', { skip: NEEDS, timeout: 300_000 }, async () => {
  await assert.rejects(
    runStage(context('nan/'), { role: 'teacher', model: MODEL, train: { ...TRAIN, baseLr: 1e30 }, seed: 1, inputs: { labeled } }),
    // Before any evaluation there is no good checkpoint to go back to: the guard stops at once.
    /^DivergenceError: training diverged at step [1-9]\d* \(epoch 1\): the training loss is (NaN|Infinity|-Infinity) \(no retry: no checkpoint followed by a clean evaluation yet\)\. Lower teacher\.train\.baseLr \(now 1e\+30\)/,
  );
  // Nothing exported from a diverged run.
  assert.ok(!existsSync(path.join(dir, 'nan/model/model.json')));
});

test('student init "teacher": starts from the teacher\'s exported weights', { skip: NEEDS, timeout: 300_000 }, async () => {
  // A teacher to start from (its own short run), then a student that barely moves (lr ~ 0, no EMA).
  await runStage(context('init-teacher/'), { role: 'teacher', model: MODEL, train: { ...TRAIN, maxSteps: 1 }, seed: 2, inputs: { labeled } });
  await runStage(context('init-student/'), {
    role: 'student',
    model: MODEL,
    train: { ...TRAIN, maxSteps: 1, baseLr: 1e-12, ema: { enabled: false }, student: { ratio: 1, init: 'teacher' } },
    seed: 3,
    inputs: { labeled, unlabeled, pseudo: 'select-1', teacher: 'init-teacher' },
  });
  const t = await loadModel(run.sub('init-teacher/model'));
  const s = await loadModel(run.sub('init-student/model'));
  const conv = (m: typeof t) => m.weights.find((w) => w.originalName.endsWith('/kernel'))!.read().dataSync();
  const [a, b] = [conv(t), conv(s)];
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
  assert.ok(maxDiff < 1e-6, `student's first conv differs from the teacher's by ${maxDiff}`);
  t.dispose();
  s.dispose();
});

test('student.continuedLrScale: a student that starts from its teacher trains at that multiple of its peak LR', { skip: NEEDS, timeout: 300_000 }, async () => {
  await runStage(context('lr-teacher/'), { role: 'teacher', model: MODEL, train: { ...TRAIN, maxSteps: 1 }, seed: 2, inputs: { labeled } });
  const student = async (id: string, baseLr: number, continuedLrScale?: number, log: string[] = []) => {
    const ctx = { ...context(id), log: { info: (m: string) => void log.push(m), warn: () => {}, error: () => {}, debug: () => {} } };
    const mode = { ratio: 1, init: 'teacher' as const, ...(continuedLrScale !== undefined ? { continuedLrScale } : {}) };
    await runStage(ctx, { role: 'student', model: MODEL, train: { ...TRAIN, maxSteps: 2, baseLr, ema: { enabled: false }, student: mode }, seed: 3, inputs: { labeled, unlabeled, pseudo: 'select-1', teacher: 'lr-teacher' } });
    const m = await loadModel(run.sub(`${id}model`));
    const bytes = Buffer.concat(m.weights.map((w) => Buffer.from(w.read().dataSync().buffer)));
    m.dispose();
    return bytes;
  };
  const log: string[] = [];
  const scaled = await student('lr-scaled/', 0.4, 0.5, log);
  assert.ok(log.some((m) => /continues its teacher's weights at 0\.5 x the recipe's peak learning rate/.test(m)), log.join('\n'));
  assert.ok(scaled.equals(await student('lr-half/', 0.2)), 'baseLr 0.4 x continuedLrScale 0.5 trains as baseLr 0.2');
  assert.ok(!scaled.equals(await student('lr-full/', 0.4)), 'the scale changes the training');
});

test('abort (SIGINT/SIGTERM from the runner): checkpoint at the next step boundary, then stop', { skip: NEEDS, timeout: 300_000 }, async () => {
  const ac = new AbortController();
  const ctx = { ...context('abort/'), signal: ac.signal };
  const onStep = (step: number) => {
    if (step === 0) ac.abort(new Error('stop requested'));
  };
  await assert.rejects(
    runStage(ctx, { role: 'teacher', model: MODEL, train: { ...TRAIN, epochs: 3, checkpoint: { everySteps: 100, keep: 2 } }, seed: 1, inputs: { labeled } }, { onStep }),
    /stop requested/,
  );
  assert.ok(existsSync(path.join(dir, 'abort/ckpt/step-000000001/COMMIT.json')), 'checkpoint after the one finished step');
  assert.ok(!existsSync(path.join(dir, 'abort/model/model.json')));
});

test('checkpoints of another recipe are not resumed from: the re-run starts over', { skip: NEEDS, timeout: 300_000 }, async () => {
  await runStage(context('recipe/'), { role: 'teacher', model: MODEL, train: { ...TRAIN, maxSteps: 2 }, seed: 1, inputs: { labeled } });
  const same = await runStage(context('recipe/'), { role: 'teacher', model: MODEL, train: { ...TRAIN, maxSteps: 2 }, seed: 1, inputs: { labeled } });
  assert.equal((same.summary as { resumedFrom: number }).resumedFrom, 2, 'same recipe: resumes (here: already complete)');
  const warnings: string[] = [];
  const changed = await runStage(context('recipe/', warnings), { role: 'teacher', model: MODEL, train: { ...TRAIN, maxSteps: 2, labelSmoothing: 0.2 }, seed: 1, inputs: { labeled } });
  assert.equal((changed.summary as { resumedFrom: number | null }).resumedFrom, null);
  assert.ok(warnings.some((w) => /another recipe\/seed\/data: starting over/.test(w)), warnings.join('\n'));
});
