/**
 * Infer-stage benchmark (prints numbers; never a timed test). Against a real S3 store (the
 * endpoint in SELFTRAIN_TEST_S3_ENDPOINT / AWS_ENDPOINT_URL, else a private Swift server):
 *
 *  1. pipeline efficiency: end-to-end infer images/s of one worker (S3 shard reads, tar parsing,
 *     sharp decode, batching, forward pass, gzip, S3 writes) divided by the model-only forward
 *     throughput of the same model and batch size, measured in the same process (target >= 0.9);
 *  2. peak RSS of a worker process over 1x and 4x the number of shards (target: flat);
 *  3. speed-up of 2 worker processes over 1 on the 4x set (wall time of the executor).
 *
 *   npx tsx bench/infer.ts [--shards 8] [--per-shard 128] [--batch 32] [--model resnet-rs-26-w0.25-small]
 */
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { initBackend, getTf } from '../pipeline/backend/select.js';
import { loadTeacher } from '../pipeline/pseudo/load-teacher.js';
import type { ObjectStore } from '../pipeline/store/types.js';
import { runLocalWorkers } from '../stages/infer/executor.js';
import { writeJob, type InferJob } from '../stages/infer/job.js';
import { buildInferJob } from '../stages/infer/stage.js';
import { runInferWorker } from '../stages/infer/worker.js';
import { createTestBucket, deleteTestBucket, s3TestEnv } from '../test/helpers/s3.js';
import { S3Store } from '../pipeline/store/s3-store.js';
import { PREPROCESSING, teacherArch, writeTeacher, writeUnlabeled, fashionPngs } from '../test/pseudo/fixtures.js';
import { trimUri } from '../pipeline/store/uri.js';

const { values: args } = parseArgs({
  options: {
    shards: { type: 'string', default: '8' },
    'per-shard': { type: 'string', default: '128' },
    batch: { type: 'string', default: '32' },
    concurrency: { type: 'string', default: '32' },
  },
});
const shards = Number(args.shards);
const perShard = Number(args['per-shard']);
const batchSize = Number(args.batch);
const concurrency = Number(args.concurrency);

const env = await s3TestEnv();
if (!env) throw new Error('bench/infer needs an S3 endpoint (SELFTRAIN_TEST_S3_ENDPOINT) or Swift installed');
const bucket = await createTestBucket(env);
const store = new S3Store({ bucket, endpoint: env.endpoint, region: env.region, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
const base = trimUri(store.uri);
const line = (k: string, v: string) => console.log(`${k.padEnd(44)} ${v}`);

try {
  console.log(`bench/infer: ${shards} shards x ${perShard} Fashion-MNIST PNGs (4x: ${4 * shards} shards), batch ${batchSize}, decode concurrency ${concurrency}, S3 ${env.endpoint}, ${availableParallelism()} cores`);
  await writeUnlabeled(store.sub('data/1x'), { shards: new Array(shards).fill(perShard) });
  await writeUnlabeled(store.sub('data/4x'), { shards: new Array(4 * shards).fill(perShard) });
  await writeTeacher(store.sub('teacher'));
  const job = (stage: string, data: string): Promise<InferJob> =>
    buildInferJob({
      id: stage,
      dataset: `${base}/${data}`,
      teacher: `${base}/teacher`,
      expectedArch: teacherArch(),
      preprocessing: PREPROCESSING,
      config: { topK: 5, batchSize, concurrency, maxRestarts: 0 },
      backend: 'wasm',
    });

  // 1a. Model-only forward throughput: real images, already normalised, same batch size.
  await initBackend('wasm');
  const tf = getTf();
  const teacher = await loadTeacher(store.sub('teacher'), teacherArch(), PREPROCESSING);
  const pngs = await fashionPngs(batchSize);
  const pixels = new Float32Array(batchSize * 28 * 28);
  const { default: sharp } = await import('sharp');
  for (const [i, p] of pngs.entries()) {
    const raw = await sharp(p.png).greyscale().raw().toBuffer();
    for (let j = 0; j < raw.length; j++) pixels[i * 784 + j] = (raw[j]! - PREPROCESSING.mean[0]!) / PREPROCESSING.std[0]!;
  }
  for (let i = 0; i < 3; i++) teacher.predictTopK(pixels, batchSize, 5);
  let reps = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 4000) {
    teacher.predictTopK(pixels, batchSize, 5);
    reps++;
  }
  const modelOnly = (reps * batchSize) / ((performance.now() - t0) / 1000);
  teacher.dispose();

  // 1b. End-to-end, same process, one worker over the 1x set in S3.
  const run = store.sub('runs/bench');
  await writeJob(run, await job('infer-e2e', 'data/1x'));
  const e2e = await runInferWorker({ run, stage: 'infer-e2e', index: 0, count: 1 });
  const e2eRate = e2e.samples / e2e.seconds;
  // Model-only again after the pipeline run, to bracket drift from other load on the machine.
  const teacher2 = await loadTeacher(store.sub('teacher'), teacherArch(), PREPROCESSING);
  reps = 0;
  const t2 = performance.now();
  while (performance.now() - t2 < 4000) {
    teacher2.predictTopK(pixels, batchSize, 5);
    reps++;
  }
  const modelOnlyAfter = (reps * batchSize) / ((performance.now() - t2) / 1000);
  teacher2.dispose();
  void tf;
  const modelRef = (modelOnly + modelOnlyAfter) / 2;
  line('model-only forward (before / after), img/s', `${modelOnly.toFixed(1)} / ${modelOnlyAfter.toFixed(1)}`);
  line('end-to-end infer, 1 worker, S3, img/s', `${e2eRate.toFixed(1)} (${e2e.samples} images in ${e2e.seconds.toFixed(2)} s)`);
  line('efficiency end-to-end / model-only (>= 0.9)', (e2eRate / modelRef).toFixed(3));
  // Less sensitive to other load drifting between the two measurements: the share of the
  // pipeline's wall time the model spent computing (1.0 = never waiting for data).
  line('forward busy share of pipeline wall time', `${(e2e.forwardSeconds / e2e.seconds).toFixed(3)} (${e2e.forwardSeconds.toFixed(2)} of ${e2e.seconds.toFixed(2)} s)`);

  // 2 + 3. Worker processes through the local executor.
  const viaExecutor = async (stage: string, data: string, workers: number) => {
    const r = store.sub(`runs/${stage}`);
    await writeJob(r, await job(stage, data));
    const done: { imagesPerSecond: number; maxRssMB: number; samples: number; forwardSeconds: number; seconds: number }[] = [];
    const t = performance.now();
    await runLocalWorkers({ runUri: r.uri, stage, workers, maxRestarts: 0, onEvent: (_w, e) => void (e.event === 'done' && done.push(e)) });
    return { wall: (performance.now() - t) / 1000, done };
  };
  const one1x = await viaExecutor('rss-1x', 'data/1x', 1);
  const one4x = await viaExecutor('rss-4x', 'data/4x', 1);
  line(`peak RSS, 1 worker, ${shards} shards, MB`, one1x.done[0]!.maxRssMB.toFixed(0));
  line(`peak RSS, 1 worker, ${4 * shards} shards, MB`, one4x.done[0]!.maxRssMB.toFixed(0));
  const two4x = await viaExecutor('two-4x', 'data/4x', 2);
  line('4x set, 1 worker: wall s / worker img/s', `${one4x.wall.toFixed(2)} / ${one4x.done[0]!.imagesPerSecond.toFixed(1)}`);
  line('4x set, 2 workers: wall s / sum worker img/s', `${two4x.wall.toFixed(2)} / ${two4x.done.reduce((a, d) => a + d.imagesPerSecond, 0).toFixed(1)}`);
  line('2-worker speed-up (wall time incl. start-up)', (one4x.wall / two4x.wall).toFixed(2));
  line('2-worker speed-up (steady-state img/s)', (two4x.done.reduce((a, d) => a + d.imagesPerSecond, 0) / one4x.done[0]!.imagesPerSecond).toFixed(2));
  line('peak RSS, 2 workers on 4x, MB each', two4x.done.map((d) => d.maxRssMB.toFixed(0)).join(' / '));
  line('forward busy share: 1 worker 4x / 2 workers', [one4x, two4x].map((r) => r.done.map((d) => (d.forwardSeconds / d.seconds).toFixed(3)).join(', ')).join(' / '));
} finally {
  await store.close();
  await deleteTestBucket(env, bucket);
}
