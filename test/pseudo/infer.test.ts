/**
 * The infer stage on real Fashion-MNIST shards with a real (small, untrained) ResNet-RS teacher:
 * identical predictions for 1 and 2 worker processes, for file:// and a real S3 server, and after
 * a worker is SIGKILLed mid-shard and restarted; bad input gives clear errors and no partial output.
 */
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore } from '../../pipeline/store/file-store.js';
import { decodeJsonlGz } from '../../pipeline/pseudo/jsonl.js';
import type { PredictionRecord } from '../../pipeline/pseudo/records.js';
import { buildInferJob, runInferStage, type InferStageOptions } from '../../stages/infer/stage.js';
import { runLocalWorkers } from '../../stages/infer/executor.js';
import { writeJob } from '../../stages/infer/job.js';
import { runInferWorker } from '../../stages/infer/worker.js';
import { predictionKey } from '../../stages/infer/layout.js';
import { readInferSummary } from '../../pipeline/contracts/infer.js';
import { runSelectStage } from '../../stages/select/stage.js';
import type { SelectSummary } from '../../stages/select/select.js';
import { s3TestEnv, s3TestStore } from '../helpers/s3.js';
import { testContext } from './context.js';
import { inferConfig, inferOptions, predictionsOf, referencePredictions, TEACHER_MODEL, teacherArch, writeTeacher, writeUnlabeled } from './fixtures.js';
import { trimUri } from '../../pipeline/store/uri.js';
import { hasExtra, needs } from '../helpers/extras.js';

const NEEDS = needs('fashion-mnist');

const SHARDS = [24, 20, 24, 17];
const NAMES = SHARDS.map((_, i) => `shard-${String(i).padStart(6, '0')}`);
let dir: string;
let root: FileStore;
/** Predictions of the uninterrupted single-worker reference run, per shard. */
const reference = new Map<string, Buffer>();

function options(over: Partial<InferStageOptions> = {}): InferStageOptions {
  return inferOptions(root, over);
}

async function records(body: Buffer): Promise<PredictionRecord[]> {
  const { Readable } = await import('node:stream');
  const out: PredictionRecord[] = [];
  for await (const { value } of decodeJsonlGz(Readable.from([body]), 'test')) out.push(value as PredictionRecord);
  return out;
}

before(async () => {
  if (NEEDS) return; // every test below skips
  dir = mkdtempSync(join(tmpdir(), 'infer-test-'));
  root = new FileStore(dir);
  await writeUnlabeled(root.sub('data/unlabeled'), { shards: SHARDS });
  await writeTeacher(root.sub('teacher/model'));
  // Reference: one worker, in this process, uninterrupted.
  for (const [k, v] of await referencePredictions(root.sub('runs/reference'), options())) reference.set(k, v);
});

after(() => dir && rmSync(dir, { recursive: true, force: true }));

test('reference run: one object per shard, every sample once, top-k and teacher id', { skip: NEEDS }, async () => {
  assert.deepEqual([...reference.keys()], NAMES.map((n) => `${n}.jsonl.gz`));
  for (const [i, name] of NAMES.entries()) {
    const recs = await records(reference.get(`${name}.jsonl.gz`)!);
    assert.equal(recs.length, SHARDS[i]);
    for (const r of recs) {
      assert.equal(r.shard, name);
      assert.ok(!('error' in r));
      if ('classes' in r) {
        assert.equal(r.classes.length, 3);
        assert.equal(new Set(r.classes).size, 3);
        assert.ok(r.probs[0]! >= r.probs[1]! && r.probs[1]! >= r.probs[2]!);
        assert.equal(r.maxProb, r.probs[0]);
        // auto: ONNX Runtime when installed (CI installs it), and the id then covers the file.
        if (hasExtra('onnxruntime-node')) {
          assert.match(r.teacher, /^resnet_rs_26_w0p25_small@[0-9a-f]{16}\+onnx@[0-9a-f]{16}$/);
          assert.match(r.backend ?? '', /^onnxruntime-node \d+\.\d+\.\d+ cpu$/);
        } else {
          assert.match(r.teacher, /^resnet_rs_26_w0p25_small@[0-9a-f]{16}$/);
          assert.equal(r.backend, 'tfjs wasm');
        }
      }
    }
  }
});

test('two worker processes give byte-identical predictions and a summary', { skip: NEEDS }, async () => {
  const run = root.sub('runs/two');
  const ctx = testContext(run, root, 'infer-1/');
  // Preprocessing not given: taken from the checkpoint's metadata (as the train stage writes it).
  const res = await runInferStage(ctx, options({ preprocessing: undefined }), 2);
  assert.deepEqual(await predictionsOf(run), reference);
  const summary = await readInferSummary(run, 'infer-1');
  assert.equal(summary.samples, 85);
  assert.equal(summary.skipped, 0);
  assert.equal(summary.workers, 2);
  assert.deepEqual(summary.shards, NAMES);
  assert.equal(summary.confidenceHistogram.reduce((a, b) => a + b, 0), 85);
  assert.ok((summary.imagesPerSecond ?? 0) > 0);
  assert.equal(res.summary.samples, 85);

  // The select stage on these predictions: per-shard pseudo-labels, accuracy from the held-back labels.
  // The teacher is untrained (confidences near 1/10), so the floor is lowered to keep samples.
  await runSelectStage(testContext(run, root, 'select-1/'), { id: 'select-1', inferId: 'infer-1', config: { threshold: 0, perClass: 10, labels: 'soft', temperature: 1 }, seed: 0 });
  const sel = JSON.parse((await run.get('select-1/summary.json')).toString()) as SelectSummary;
  assert.deepEqual(sel.shards.map((x) => x.key), NAMES.map((n) => `pseudo/${n}.jsonl.gz`));
  assert.equal(sel.predicted, 85);
  assert.equal(sel.classes.reduce((a, c) => a + c.withGroundTruth, 0), sel.unique, 'every kept sample has its held-back label');
  assert.ok(sel.unique > 0);
  assert.ok(sel.accuracy !== null && sel.accuracy >= 0 && sel.accuracy <= 1);
});

test('inferBackend tfjs: tfjs-wasm predictions, recorded as such, agree with ONNX Runtime', { skip: NEEDS || needs('onnxruntime-node') }, async () => {
  const run = root.sub('runs/tfjs');
  const lines: string[] = [];
  const res = await runInferStage(testContext(run, root, 'infer-1/', lines), options({ inferBackend: 'tfjs' }), 1);
  assert.equal(res.summary['engine'], 'tfjs');
  assert.ok(lines.some((l) => /infer: inferBackend is tfjs; using tfjs \(wasm\)/.test(l)), lines.join('\n'));
  for (const [name, body] of await predictionsOf(run)) {
    const ours = await records(body);
    const onnx = await records(reference.get(name)!);
    assert.equal(ours.length, onnx.length);
    ours.forEach((r, i) => {
      const o = onnx[i]!;
      assert.equal(r.backend, 'tfjs wasm');
      assert.match(r.teacher, /^resnet_rs_26_w0p25_small@[0-9a-f]{16}$/);
      assert.ok(o.teacher.startsWith(`${r.teacher}+onnx@`), 'the ONNX id extends the weights id');
      if (!('classes' in r) || !('classes' in o)) throw new Error('no failed samples expected');
      assert.equal(r.classes[0], o.classes[0], `top-1 of ${r.key}`);
      r.probs.forEach((p, j) => assert.ok(Math.abs(p - o.probs[j]!) <= 2e-6, `${r.key}: prob ${p} vs ${o.probs[j]}`));
    });
  }
});

test('without onnxruntime-node: auto falls back to tfjs and logs why; onnx is refused', { skip: NEEDS }, async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { fileURLToPath } = await import('node:url');
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const hide = fileURLToPath(new URL(`../helpers/hide-onnxruntime${ext}`, import.meta.url));
  const child = fileURLToPath(new URL(`./fixtures/infer-without-ort${ext}`, import.meta.url));
  const go = async (prefix: string, choice: string) => {
    const argv = [...process.execArgv.filter((a) => !a.startsWith('--test')), '--import', hide, child, dir, prefix, choice];
    const { stdout } = await promisify(execFile)(process.execPath, argv, { encoding: 'utf8' });
    return JSON.parse(stdout.trim().split('\n').pop()!) as { lines: string[]; error?: string };
  };
  const auto = await go('runs/no-ort', 'auto');
  assert.equal(auto.error, undefined);
  assert.ok(auto.lines.some((l) => /^info: infer: ONNX Runtime unavailable \(onnxruntime-node is not installed\); using tfjs \(wasm\)$/.test(l)), auto.lines.join('\n'));
  assert.ok(auto.lines.some((l) => /infer worker 0: .* on tfjs wasm$/.test(l)), auto.lines.join('\n'));
  const recs = await records((await predictionsOf(root.sub('runs/no-ort'))).get(`${NAMES[0]}.jsonl.gz`)!);
  assert.equal(recs[0]!.backend, 'tfjs wasm');
  const forced = await go('runs/no-ort-forced', 'onnx');
  assert.match(forced.error ?? '', /inferBackend 'onnx' was requested but ONNX Runtime cannot be used: onnxruntime-node is not installed/);
});

test('runner entries: stages/infer and stages/select runStage with the chain configs', { skip: NEEDS }, async () => {
  const run = root.sub('runs/chain');
  await run.put('import/datasets.json', JSON.stringify({ classes: [], labeled: 'data/none', unlabeled: 'data/unlabeled', eval: 'data/none' }));
  for (const o of await root.list('teacher/model/')) await run.put(`train-teacher-1/model/${o.key.slice('teacher/model/'.length)}`, await root.get(o.key));
  const infer = await import('../../stages/infer/index.js');
  const ctx = { ...testContext(run, root, 'infer-1/'), backend: 'wasm' };
  await infer.runStage(ctx, { iteration: 1, infer: inferConfig({ workers: 1 }), seed: 0, model: { name: TEACHER_MODEL }, inputs: { data: 'import', teacher: 'train-teacher-1' } });
  assert.deepEqual(await predictionsOf(run), reference);
  const select = await import('../../stages/select/index.js');
  const res = await select.runStage(testContext(run, root, 'select-1/'), { iteration: 1, select: { threshold: 0, labels: 'hard', temperature: 1 }, seed: 3, inputs: { data: 'import', predictions: 'infer-1' } });
  assert.equal(res.summary?.predicted, 85);
  const sel = JSON.parse((await run.get('select-1/summary.json')).toString()) as SelectSummary;
  assert.equal(sel.labels, 'hard');
  assert.equal(sel.seed, 3);
  assert.ok(sel.unique > 0);
});

test('SIGKILL of a worker mid-shard: restarted, every shard once, identical to an uninterrupted run', { skip: NEEDS }, async () => {
  const run = root.sub('runs/killed');
  await writeJob(run, await buildInferJob(options({ config: inferConfig({ batchSize: 4 }) })));
  // Batch size changes batch composition; compare against its own uninterrupted run below.
  const cleanRun = root.sub('runs/killed-clean');
  await writeJob(cleanRun, await buildInferJob(options({ config: inferConfig({ batchSize: 4 }) })));
  await runInferWorker({ run: cleanRun, stage: 'infer-1', index: 0, count: 1 });
  let killedIn: string | undefined;
  let presentAtKill: boolean | undefined;
  const spawns: number[] = [];
  const result = await runLocalWorkers({
    runUri: run.uri,
    stage: 'infer-1',
    workers: 1,
    maxRestarts: 2,
    onSpawn: (_w, child) => spawns.push(child.pid!),
    onEvent: (_w, e) => {
      // The second shard's first batch is done, the shard is not: kill there.
      if (!killedIn && e.event === 'batch' && e.shard === NAMES[1] && e.done < e.samples) {
        killedIn = e.shard;
        process.kill(spawns[0]!, 'SIGKILL');
        presentAtKill = undefined;
        void run.head(`infer-1/${predictionKey(e.shard)}`).then((h) => (presentAtKill = h !== undefined));
      }
    },
  });
  assert.equal(killedIn, NAMES[1]);
  assert.equal(result.restarts, 1);
  assert.equal(spawns.length, 2);
  assert.equal(presentAtKill, false, 'the shard being processed had no output when the worker was killed');
  const got = await predictionsOf(run);
  assert.deepEqual([...got.keys()], NAMES.map((n) => `${n}.jsonl.gz`), 'every shard exactly once');
  assert.deepEqual(got, await predictionsOf(cleanRun));
  // On disk too: exactly one committed object per shard (a killed put leaves at most a hidden temp file).
  const files = readdirSync(join(dir, 'runs/killed/infer-1/predictions'));
  assert.deepEqual(files.filter((f) => f.endsWith('.jsonl.gz') && !f.startsWith('.selftrain-')).sort(), NAMES.map((n) => `${n}.jsonl.gz`));
});

test('two workers taking shards as they go: one SIGKILLed mid-shard, its shard done by a worker, every shard once, identical', { skip: NEEDS }, async () => {
  const config = inferConfig({ batchSize: 4 });
  const cleanRun = root.sub('runs/claims-clean');
  await writeJob(cleanRun, await buildInferJob(options({ config })));
  await runInferWorker({ run: cleanRun, stage: 'infer-1', index: 0, count: 1 });
  const run = root.sub('runs/claims-killed');
  await writeJob(run, await buildInferJob(options({ config })));
  const spawns: { worker: number; pid: number }[] = [];
  const committed: { worker: number; shard: string }[] = [];
  let killed: { worker: number; shard: string } | undefined;
  const result = await runLocalWorkers({
    runUri: run.uri,
    stage: 'infer-1',
    workers: 2,
    maxRestarts: 1,
    onSpawn: (worker, child) => spawns.push({ worker, pid: child.pid! }),
    onEvent: (worker, e) => {
      if (e.event === 'shard') committed.push({ worker, shard: e.shard });
      // The first shard a worker is part-way through: kill that worker there.
      if (!killed && e.event === 'batch' && e.done < e.samples) {
        killed = { worker, shard: e.shard };
        process.kill(spawns.find((s) => s.worker === worker)!.pid, 'SIGKILL');
      }
    },
  });
  assert.ok(killed, 'a worker was killed mid-shard');
  assert.equal(result.restarts, 1);
  assert.deepEqual(committed.map((c) => c.shard).sort(), NAMES, 'every shard committed exactly once, the killed one included');
  assert.deepEqual(await predictionsOf(run), await predictionsOf(cleanRun));
});

test('claims off: the local workers take shard % workers == index, as cluster array tasks, same bytes', { skip: NEEDS }, async () => {
  const run = root.sub('runs/static');
  await writeJob(run, await buildInferJob(options()));
  const byWorker: string[][] = [[], []];
  await runLocalWorkers({ runUri: run.uri, stage: 'infer-1', workers: 2, maxRestarts: 0, claims: false, onEvent: (w, e) => void (e.event === 'shard' && byWorker[w]!.push(e.shard)) });
  assert.deepEqual(byWorker.map((x) => x.sort()), [[NAMES[0], NAMES[2]], [NAMES[1], NAMES[3]]]);
  assert.deepEqual(await predictionsOf(run), reference);
});

test('S3: dataset, teacher and run in a real S3 store give the same predictions as file://, the endpoint passed explicitly', { skip: NEEDS }, async (t) => {
  const s3 = await s3TestStore(t);
  if (!s3) return;
  const env = (await s3TestEnv())!;
  for (const prefix of ['data/unlabeled/', 'teacher/model/']) {
    for (const o of await root.list(prefix)) await s3.put(o.key, await root.get(o.key));
  }
  const base = trimUri(s3.uri);
  const run = s3.sub('runs/s3');
  // No endpoint in the environment: the dataset, the teacher and the worker process can reach the
  // service only through the stage's store settings (the manifest's s3 section).
  const saved = { url: process.env.AWS_ENDPOINT_URL, s3url: process.env.AWS_ENDPOINT_URL_S3 };
  delete process.env.AWS_ENDPOINT_URL;
  delete process.env.AWS_ENDPOINT_URL_S3;
  t.after(() => {
    if (saved.url !== undefined) process.env.AWS_ENDPOINT_URL = saved.url;
    if (saved.s3url !== undefined) process.env.AWS_ENDPOINT_URL_S3 = saved.s3url;
  });
  const ctx = { ...testContext(run, s3, 'infer-1/'), storeSettings: { endpoint: env.endpoint, region: env.region } };
  await runInferStage(ctx, options({ dataset: `${base}/data/unlabeled`, teacher: `${base}/teacher/model` }), 1);
  assert.deepEqual(await predictionsOf(run), reference);
  assert.equal(process.env.AWS_ENDPOINT_URL, undefined, 'nothing wrote the endpoint into the environment');
});

test('bad input: corrupt images are listed with the reason, an empty shard gives an empty object', { skip: NEEDS }, async () => {
  const data = root.sub('data/bad-images');
  await writeUnlabeled(data, { shards: [6, 0, 5], corrupt: ['u00002', 'u00007'] });
  const run = root.sub('runs/bad-images');
  await runInferStage(testContext(run, root, 'infer-1/'), options({ dataset: `${root.uri}/data/bad-images` }), 1);
  const got = await predictionsOf(run);
  assert.deepEqual([...got.keys()], ['shard-000000.jsonl.gz', 'shard-000001.jsonl.gz', 'shard-000002.jsonl.gz']);
  const s0 = await records(got.get('shard-000000.jsonl.gz')!);
  assert.equal(s0.length, 6);
  const failed = s0.filter((r) => 'error' in r);
  assert.deepEqual(failed.map((r) => r.key), ['u00002']);
  assert.match((failed[0] as { error: string }).error, /cannot decode image: /);
  assert.equal((await records(got.get('shard-000001.jsonl.gz')!)).length, 0);
  assert.deepEqual((await records(got.get('shard-000002.jsonl.gz')!)).filter((r) => 'error' in r).map((r) => r.key), ['u00007']);
  const summary = await readInferSummary(run, 'infer-1');
  assert.deepEqual([summary.samples, summary.skipped], [11, 2]);
});

test('re-run: the same job skips finished shards; other teacher weights discard the old outputs', { skip: NEEDS }, async () => {
  const run = root.sub('runs/bad-images');
  const before = await run.list('infer-1/predictions/');
  await runInferStage(testContext(run, root, 'infer-1/'), options({ dataset: `${root.uri}/data/bad-images` }), 1);
  assert.deepEqual(await run.list('infer-1/predictions/'), before, 'nothing rewritten');
  await writeTeacher(root.sub('teacher/model2'));
  const lines: string[] = [];
  await runInferStage(testContext(run, root, 'infer-1/', lines), options({ dataset: `${root.uri}/data/bad-images`, teacher: `${root.uri}/teacher/model2` }), 1);
  assert.ok(lines.some((l) => /ran before with other settings or teacher weights; discarding its outputs/.test(l)));
  const ids = new Set<string>();
  for (const body of (await predictionsOf(run)).values()) for (const r of await records(body)) ids.add(r.teacher);
  const summary = await readInferSummary(run, 'infer-1');
  assert.deepEqual([...ids], [summary.teacher]);
  assert.notEqual(summary.teacher, (await records(reference.get('shard-000000.jsonl.gz')!))[0]!.teacher);
});

test('bad input: a shard listed in dataset.json but missing fails the stage naming it; the rest is kept, no summary', { skip: NEEDS }, async () => {
  const data = root.sub('data/missing');
  await writeUnlabeled(data, { shards: [5, 5, 5] });
  await data.delete('shard-000001.tar');
  const run = root.sub('runs/missing');
  await assert.rejects(
    runInferStage(testContext(run, root, 'infer-1/'), options({ dataset: `${root.uri}/data/missing` }), 2),
    (err: Error) => {
      assert.match(err.message, /1 shard\(s\) of .*data\/missing cannot be processed/);
      assert.match(err.message, /shard-000001: .*data\/missing\/shard-000001\.tar: shard listed in dataset\.json cannot be read: not found/);
      return true;
    },
  );
  assert.deepEqual([...(await predictionsOf(run)).keys()], ['shard-000000.jsonl.gz', 'shard-000002.jsonl.gz']);
  assert.equal(await run.head('infer-1/summary.json'), undefined);
});

test('bad input: a teacher checkpoint that does not match the manifest model is refused, nothing written', { skip: NEEDS }, async () => {
  await writeTeacher(root.sub('teacher/other'), teacherArch({ classes: 5, blocks: [1, 1, 1, 1] }));
  const run = root.sub('runs/mismatch');
  await assert.rejects(
    runInferStage(testContext(run, root, 'infer-1/'), options({ teacher: `${root.uri}/teacher/other` }), 2),
    /teacher checkpoint .*teacher\/other does not match the manifest's teacher model: blocks: checkpoint \[1,1,1,1\], manifest \[2,2,2,2\]; classes: checkpoint 5, manifest 10/,
  );
  assert.deepEqual(await run.list('infer-1/predictions/'), []);
  assert.equal(await run.head('infer-1/summary.json'), undefined);
  await assert.rejects(
    runInferStage(testContext(run, root, 'infer-1/'), options({ teacher: `${root.uri}/teacher/nothing-here` }), 1),
    /teacher checkpoint .*teacher\/nothing-here: not found/,
  );
});
