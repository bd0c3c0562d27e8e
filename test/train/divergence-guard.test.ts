/**
 * The divergence guard in the real training loop, on real Fashion-MNIST images: a deliberately
 * absurd learning rate is detected (not trained through), training goes back to the last good
 * checkpoint with a smaller learning rate, and when that does not help either the stage stops with
 * an error that names the step, the numbers and the manifest setting to change.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { initBackend } from '../../pipeline/backend/select.js';
import type { StageContext } from '../../pipeline/runner/stage.js';
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { completeCheckpoints } from '../../pipeline/train/checkpoint.js';
import { DivergenceError } from '../../pipeline/train/divergence.js';
import { runStage } from '../../stages/train/index.js';
import { needs } from '../helpers/extras.js';
import { stageContext } from '../helpers/stage-context.js';
import { writeFashionDataset } from './make-dataset.js';

const NEEDS = needs('fashion-mnist');
await initBackend((process.env['SELFTRAIN_TEST_TRAIN_BACKEND'] ?? 'wasm') as 'wasm');

const MODEL = { name: 'resnet-rs-26-w0.25-small', imageSize: 16, dropoutRate: 0.1, stochasticDepthRate: 0 };
// 5 per class: 20 held out (2 per class, enough for the chance rule), 30 to train, batch 6 → 5 steps/epoch.
const RECIPE = { epochs: 12, batchSize: 6, holdout: 0.4, randAugment: { enabled: false }, checkpoint: { everySteps: 5, keep: 2 }, ema: { enabled: false }, workers: 1 };

let dir: string;
let run: ObjectStore;
let labeled: string;

before(async () => {
  if (NEEDS) return;
  dir = mkdtempSync(path.join(tmpdir(), 'selftrain-divergence-'));
  run = openStore(`file://${dir}`);
  await writeFashionDataset(run.sub('data/labeled'), { split: 'train', perClass: 5, labeled: true, perShard: 50 });
  labeled = `file://${dir}/data/labeled`;
});

after(async () => {
  if (!dir) return;
  await run.close();
  rmSync(dir, { recursive: true, force: true });
});

function context(prefix: string, warnings: string[]): StageContext {
  return stageContext({ run, outPrefix: prefix, log: { info: () => {}, warn: (m) => void warnings.push(m), error: () => {}, debug: () => {} } });
}

test('an absurd learning rate: detected, two retries from the last good checkpoint at x0.5 and x0.25, then an error naming step, numbers and setting', { skip: NEEDS, timeout: 300_000 }, async () => {
  const warnings: string[] = [];
  // A sane first epoch (warm-up from ~0), then a peak of 2000 x 6/256 = 47: absurd for SGD on this model.
  const train = { ...RECIPE, baseLr: 2000, schedule: { warmupEpochs: 40 } };
  const err = await runStage(context('absurd/', warnings), { role: 'teacher', model: MODEL, train, seed: 3, inputs: { labeled } }).then(
    () => assert.fail('trained through an absurd learning rate'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof DivergenceError, `a DivergenceError, not ${String(err)}`);
  // Detected at the first non-finite loss, after a clean evaluation and its checkpoint.
  assert.match(err.message, /^training diverged at step (\d+) \(epoch \d+\): the training loss is NaN, still after 2 retries from the last good checkpoint/);
  assert.match(err.message, /Lower teacher\.train\.baseLr \(now 2000\)/);
  const retries = warnings.filter((w) => w.startsWith('training diverged'));
  assert.equal(retries.length, 2, warnings.join('\n'));
  const back = Number(/Going back to the checkpoint of step (\d+) and retrying with the learning rate x0\.5 \(retry 1 of 2; teacher\.train\.baseLr is 2000\)/.exec(retries[0]!)?.[1]);
  assert.ok(back > 0 && back % 5 === 0, retries[0]);
  // The second retry restarts from the last good checkpoint too: the same one, or a later one the
  // first retry wrote before it diverged again (which, depends on the float roundings).
  const back2 = Number(/Going back to the checkpoint of step (\d+) and retrying with the learning rate x0\.25 \(retry 2 of 2/.exec(retries[1]!)?.[1]);
  assert.ok(back2 >= back && back2 % 5 === 0, retries[1]);
  // Nothing from the diverged steps survives (a later run would not resume from a diverged state):
  // the checkpoints left are the retry's restart point and good ones written before the last divergence.
  const diverged = Number(/^training diverged at step (\d+)/.exec(err.message)?.[1]);
  const left = await completeCheckpoints(run.sub('absurd/'));
  assert.ok(left.length > 0 && Math.max(...left) >= back2 && left.every((s) => s < diverged), `checkpoints left: ${left}, last divergence at step ${diverged}`);
});

test('with the guard off, the same learning rate stops at the first non-finite loss (the guard is what retried)', { skip: NEEDS, timeout: 300_000 }, async () => {
  const warnings: string[] = [];
  const train = { ...RECIPE, baseLr: 2000, schedule: { warmupEpochs: 40 }, divergence: { enabled: false } };
  await assert.rejects(runStage(context('unguarded/', warnings), { role: 'teacher', model: MODEL, train, seed: 3, inputs: { labeled } }), /training loss is NaN at step \d+/);
  assert.deepEqual(warnings.filter((w) => w.startsWith('training diverged')), []);
});
