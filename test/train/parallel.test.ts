/**
 * Data-parallel training on real Fashion-MNIST shards (the train stage's own input path):
 *   - two 2-worker runs give byte-identical weights; the process transport (the one-process-per-GPU
 *     path, wasm standing in for tfjs-node-gpu) gives the same bytes as worker threads;
 *   - 1-worker and 2-worker loss curves agree within a stated tolerance for the same global batch;
 *   - a worker that dies fails the run with a message naming it (no hang), and the next run resumes
 *     from the last checkpoint; a checkpoint written with 2 workers resumes with 1, saying so.
 * The SIGKILL-and-resume of a whole 2-worker run is in resume.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { initBackend } from '../../pipeline/backend/select.js';
import { trainSection } from '../../pipeline/manifest/sections/train.js';
import { resolveModel } from '../../pipeline/model/family.js';
import { buildResNetRS } from '../../pipeline/model/resnet-rs.js';
import type { Logger } from '../../pipeline/runner/stage.js';
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { completeCheckpoints } from '../../pipeline/train/checkpoint.js';
import { loadLabeled, type LabeledData } from '../../pipeline/train/data.js';
import { TEST_EXIT_ENV } from '../../pipeline/train/replica-worker.js';
import { mix, withSeededMathRandom } from '../../pipeline/train/rng.js';
import { train, type TrainerOptions, type TrainResult } from '../../pipeline/train/trainer.js';
import { SMALL_MODEL, SMALL_RECIPE } from './fixtures/small-run.js';
import { writeFashionDataset } from './make-dataset.js';
import { needs } from '../helpers/extras.js';

const NEEDS = needs('fashion-mnist');
const backend = await initBackend((process.env['SELFTRAIN_TEST_TRAIN_BACKEND'] ?? 'wasm') as 'wasm');
const tf = backend.tf;
const SEED = 11;
const { arch, defaults } = resolveModel(SMALL_MODEL);
// 50 labeled images, 10 held out (3 eval batches of 4 over 2 workers): 40 to train on, global batch
// 16 (8 per worker), 2 steps per epoch, 10 steps.
const cfg = trainSection.parse({ ...SMALL_RECIPE, epochs: 5, batchSize: 16, evalBatchSize: 4 });

let dir: string;
let store: ObjectStore;
let data: LabeledData;
const quiet: Logger = { info() {}, warn() {}, error() {}, debug() {} };

before(async () => {
  if (NEEDS) return; // every test below skips
  dir = mkdtempSync(path.join(tmpdir(), 'selftrain-parallel-'));
  store = openStore(`file://${dir}`);
  await writeFashionDataset(store.sub('data/labeled'), { split: 'train', perClass: 5, labeled: true, perShard: 20 });
  data = await loadLabeled(store.sub('data/labeled'), { imageSize: 16, channels: 1, holdout: cfg.holdout, seed: SEED });
});

after(async () => {
  if (NEEDS) return;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  result: TrainResult;
  losses: number[];
  /** The exported weights (EMA), as bytes. */
  weights: Buffer;
}

async function run(prefix: string, o: Partial<TrainerOptions> = {}): Promise<Run> {
  const model = withSeededMathRandom(mix(SEED, 0x1a17), () => buildResNetRS(arch));
  const losses: number[] = [];
  try {
    const result = await train({
      tf, model, cfg, seed: SEED, defaultMagnitude: defaults.randAugmentMagnitude, numClasses: 10, data, store: store.sub(prefix), log: quiet, backend: backend.name,
      onStep: (step, info) => (losses[step] = info.loss),
      ...o,
    });
    const bytes = Buffer.concat(model.weights.map((w) => Buffer.from((w.read().dataSync() as Float32Array).slice().buffer)));
    return { result, losses, weights: bytes };
  } finally {
    model.dispose();
  }
}

let twoA: Run | undefined;
const twoWorkers = async (): Promise<Run> => (twoA ??= await run('two-a/', { workers: 2 }));

test('two 2-worker runs give byte-identical weights; the replicas stay identical', { skip: NEEDS, timeout: 600_000 }, async () => {
  const two = await twoWorkers();
  const twoB = await run('two-b/', { workers: 2 });
  assert.equal(two.result.workers, 2);
  assert.equal(two.result.steps, 10);
  assert.ok(two.weights.length > 10_000);
  assert.ok(two.weights.equals(twoB.weights), 'exported weights are byte-identical');
  assert.deepEqual(two.losses, twoB.losses);
  assert.ok(two.result.final.heldoutAcc !== null);
  // Every checkpoint compared the replicas' sha256 digests (a mismatch would have thrown).
  assert.ok(two.result.reduceWaitShare > 0 && two.result.reduceWaitShare < 1, `reduction share ${two.result.reduceWaitShare}`);
  assert.equal(two.result.epochs.at(-1)!.workers, 2);
});

test('process transport (one process per GPU on tfjs-node-gpu; wasm stands in): the same bytes as worker threads', { skip: NEEDS, timeout: 600_000 }, async () => {
  const viaProcesses = await run('two-processes/', { workers: 2, transport: 'process' });
  const two = await twoWorkers();
  assert.ok(viaProcesses.weights.equals(two.weights), 'processes and threads reduce in the same order: same weights');
  assert.deepEqual(viaProcesses.losses, two.losses);
});

/**
 * Same global batch (16), same images, same augmentation and noise per sample: the curves differ only
 * by per-worker BN statistics (8 images each instead of 16) and the float32 sum order, and the
 * difference grows as the runs drift apart. Tolerance over the 10 steps (the loss falls by ~0.5):
 * mean absolute per-step gap < 0.1 and every gap < 0.3. Measured on wasm: mean 0.047, max 0.146.
 * The control shows the tolerance catches a broken reduction: summing the workers' gradients instead
 * of averaging them amounts to twice the LR, and a 1-worker run at twice the LR is outside it
 * (measured: mean 0.193, max 0.564).
 */
function gaps(a: number[], b: number[]): { mean: number; max: number } {
  const g = a.map((l, i) => Math.abs(l - b[i]!));
  return { mean: g.reduce((x, y) => x + y, 0) / g.length, max: Math.max(...g) };
}
const within = (g: { mean: number; max: number }) => g.mean < 0.1 && g.max < 0.3;

// A recipe whose loss falls steadily within 10 steps (peak LR 0.05, no RandAugment).
const learning = { ...cfg, baseLr: 0.8, randAugment: { ...cfg.randAugment, enabled: false } };

test('1-worker and 2-worker loss curves agree within tolerance for the same global batch', { skip: NEEDS, timeout: 900_000 }, async () => {
  const two = await run('curve-two/', { workers: 2, cfg: learning });
  const one = await run('curve-one/', { workers: 1, cfg: learning });
  const doubled = await run('curve-one-double-lr/', { workers: 1, cfg: { ...learning, baseLr: 2 * learning.baseLr } });
  assert.equal(one.result.workers, 1);
  const g = gaps(one.losses, two.losses);
  const control = gaps(one.losses, doubled.losses);
  console.log(`loss 1 worker:          ${one.losses.map((l) => l.toFixed(4)).join(' ')}`);
  console.log(`loss 2 workers:         ${two.losses.map((l) => l.toFixed(4)).join(' ')}`);
  console.log(`loss 1 worker, 2x LR:   ${doubled.losses.map((l) => l.toFixed(4)).join(' ')}`);
  console.log(`|gap| 1 vs 2 workers: mean ${g.mean.toFixed(4)} max ${g.max.toFixed(4)}; 1 worker vs 2x LR: mean ${control.mean.toFixed(4)} max ${control.max.toFixed(4)}`);
  assert.equal(one.losses.length, 10);
  assert.ok(one.losses[9]! < one.losses[0]! - 0.3, 'the loss falls over the run');
  assert.ok(within(g), `1 vs 2 workers: mean gap ${g.mean}, max ${g.max}`);
  assert.ok(!within(control), `the tolerance must reject a doubled step (mean ${control.mean}, max ${control.max})`);
  assert.ok(!one.weights.equals(two.weights), 'not the same numerics (per-worker BN)');
});

test('a worker that dies fails the run naming it; the next run resumes from the last checkpoint, and 2-worker checkpoints resume with 1', { skip: NEEDS, timeout: 600_000 }, async () => {
  process.env[TEST_EXIT_ENV] = '1:7'; // worker 2 exits as it starts step 7 (checkpoints after steps 3 and 6)
  try {
    await assert.rejects(run('crash/', { workers: 2 }), /train worker 2\/2 exited with code 70; stopping the other workers/);
  } finally {
    delete process.env[TEST_EXIT_ENV];
  }
  assert.deepEqual(await completeCheckpoints(store.sub('crash/')), [3, 6]);
  const resumed = await run('crash/', { workers: 2 });
  assert.equal(resumed.result.resumedFrom, 6);
  assert.ok(resumed.weights.equals((await twoWorkers()).weights), 'the resumed run ends where an uninterrupted one does');

  // A 2-worker checkpoint resumed with 1 worker: allowed, and the log says the numerics differ.
  process.env[TEST_EXIT_ENV] = '0:4';
  try {
    await assert.rejects(run('switch/', { workers: 2 }), /train worker 1\/2 exited with code 70/);
  } finally {
    delete process.env[TEST_EXIT_ENV];
  }
  const warnings: string[] = [];
  const switched = await run('switch/', { workers: 1, log: { ...quiet, warn: (m) => void warnings.push(m) } });
  assert.equal(switched.result.resumedFrom, 3);
  assert.ok(warnings.some((w) => /written by a 2-worker run; resuming with 1 workers: .*numerics of the remaining steps differ/.test(w)), warnings.join('\n'));
});
