/**
 * The evaluate stage on a tiny real run (Fashion-MNIST images, small ResNet-RS models on wasm,
 * real infer + select outputs): metrics equal an independent computation from raw model outputs,
 * pseudo-label precision equals a recount from the select objects, the report and its SVG charts
 * exist, a killed evaluate resumes without redoing finished models, and `selftrain report` copies.
 */
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { getTf } from '../../pipeline/backend/select.js';
import { loadModel } from '../../pipeline/model/store-io.js';
import { decodeJsonlGz } from '../../pipeline/pseudo/jsonl.js';
import type { PseudoEvaluation, Report } from '../../pipeline/report/types.js';
import type { StageContext } from '../../pipeline/runner/stage.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import { StoreAccessError, type ObjectStore } from '../../pipeline/store/types.js';
import { runStage } from '../../stages/evaluate/index.js';
import { cliArgv } from '../helpers/cli.js';
import { s3TestEnv, s3TestStore } from '../helpers/s3.js';
import { startFaultProxy } from '../store/fault-proxy.js';
import { S3Store } from '../../pipeline/store/s3-store.js';
import { copyReport } from '../../pipeline/report/copy.js';
import { decodeCorrectness } from '../../pipeline/report/per-image.js';
import { mcnemarExact } from '../../pipeline/report/stats.js';
import { testContext } from '../pseudo/context.js';
import { PREPROCESSING, fashionPngs } from '../pseudo/fixtures.js';
import { evaluateConfig, EVAL_SHARDS, makeRun, UNLABELED_SHARDS } from './fixtures.js';
import { trimUri } from '../../pipeline/store/uri.js';
import { hasExtra, needs } from '../helpers/extras.js';

const NEEDS = needs('fashion-mnist');

const run$ = promisify(execFile);
let dir: string;
let root: FileStore;
let run: ObjectStore;
let evalImages: { png: Buffer; label: number }[];
let report: Report;

/** Ranked classes per image straight from model.predict on hand-normalised pixels (no data layer). */
async function rankedByHand(stage: string, images: { png: Buffer }[]): Promise<number[][]> {
  const tf = getTf();
  const model = await loadModel(run.sub(`${stage}/model`));
  const px = new Float32Array(images.length * 784);
  for (const [i, im] of images.entries()) {
    const raw = await sharp(im.png).greyscale().raw().toBuffer();
    assert.equal(raw.length, 784);
    for (let j = 0; j < 784; j++) px[i * 784 + j] = (raw[j]! - PREPROCESSING.mean[0]!) / PREPROCESSING.std[0]!;
  }
  const probs = tf.tidy(() => (model.predict(tf.tensor4d(px, [images.length, 28, 28, 1])) as ReturnType<typeof tf.tensor2d>).arraySync() as number[][]);
  model.dispose();
  return probs.map((p) => p.map((v, c) => [v, c] as const).sort((a, b) => b[0] - a[0]).map(([, c]) => c));
}

async function jsonl(store: ObjectStore, key: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const { value } of decodeJsonlGz(Readable.from([await store.get(key)]), key)) out.push(value as Record<string, unknown>);
  return out;
}

before(async () => {
  if (NEEDS) return; // every test below skips
  dir = mkdtempSync(join(tmpdir(), 'evaluate-test-'));
  root = new FileStore(dir);
  run = await makeRun(root, 'demo');
  evalImages = await fashionPngs(EVAL_SHARDS.reduce((a, b) => a + b, 0), 1000);
  await runStage({ ...testContext(run, root, 'evaluate/'), backend: 'wasm' }, evaluateConfig({ workers: 2 }));
  report = JSON.parse((await run.get('evaluate/report.json')).toString('utf8')) as Report;
});

after(() => dir && rmSync(dir, { recursive: true, force: true }));

test('model metrics equal an independent computation from raw model outputs', { skip: NEEDS }, async () => {
  assert.deepEqual(report.models.map((m) => [m.stage, m.role]), [
    ['train-teacher-1', 'teacher'],
    ['train-student-1', 'student'],
    ['train-baseline', 'baseline'],
  ]);
  const n = evalImages.length;
  for (const m of report.models) {
    const ranked = await rankedByHand(m.stage, evalImages);
    const top1 = ranked.filter((r, i) => r[0] === evalImages[i]!.label).length / n;
    const top5 = ranked.filter((r, i) => r.slice(0, 5).includes(evalImages[i]!.label)).length / n;
    assert.equal(m.metrics.samples, n);
    assert.ok(Math.abs(m.metrics.top1 - top1) < 1e-12, `${m.stage} top-1 ${m.metrics.top1} vs ${top1}`);
    assert.equal(m.metrics.topK['1'], m.metrics.top1);
    assert.ok(Math.abs(m.metrics.topK['5']! - top5) < 1e-12, `${m.stage} top-5 ${m.metrics.topK['5']} vs ${top5}`);
    // Confusion matrix cell by cell, and its sums.
    const confusion = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
    ranked.forEach((r, i) => confusion[evalImages[i]!.label]![r[0]!]!++);
    assert.deepEqual(m.metrics.confusion, confusion);
    assert.equal(m.metrics.confusion.flat().reduce((a, b) => a + b, 0), n);
    // Per-image correctness (what the paired tests compare), image by image in eval order.
    assert.deepEqual([...decodeCorrectness(m.perImage, m.stage)], ranked.map((r, i) => (r[0] === evalImages[i]!.label ? 1 : 0)));
    assert.equal(m.perImage.imagesSha256, report.models[0]!.perImage.imagesSha256);
    for (const c of m.metrics.perClass) {
      const truth = evalImages.filter((e) => e.label === c.cls).length;
      assert.equal(c.samples, truth);
      assert.equal(m.metrics.confusion[c.cls]!.reduce((a, b) => a + b, 0), truth);
      assert.equal(c.correct, confusion[c.cls]![c.cls]);
      assert.equal(c.accuracy, truth ? c.correct / truth : null);
    }
  }
  // Briefly trained models predict several classes, so the per-class and confusion checks bite.
  assert.ok(report.models.every((m) => m.metrics.confusion.filter((_, p) => m.metrics.confusion.some((row) => row[p]! > 0)).length >= 3));
  // The models were initialised differently, so the comparison is not trivially one model thrice.
  assert.notDeepEqual(report.models[0]!.metrics.confusion, report.models[1]!.metrics.confusion);
  const [teacher, student, baseline] = report.models.map((m) => m.metrics.top1);
  assert.equal(report.summary.teacherTop1, teacher);
  assert.equal(report.summary.studentTop1, student);
  assert.equal(report.summary.allLabelsTop1, baseline);
  assert.equal(report.summary.studentMinusTeacher, student! - teacher!);
  // The paired test recomputed from the two models' per-image results.
  const paired = mcnemarExact(decodeCorrectness(report.models[0]!.perImage, 't'), decodeCorrectness(report.models[1]!.perImage, 's'));
  assert.equal(report.summary.pValueVsTeacher, paired.pValue);
  assert.ok(report.summary.wallSeconds >= 0);
  assert.deepEqual(Object.keys(report.summary).sort(), ['allLabelsTop1', 'controlTop1', 'pValueVsControl', 'pValueVsTeacher', 'studentMinusControl', 'studentMinusTeacher', 'studentTop1', 'teacherTop1', 'wallSeconds']);
});

test('one worker and two workers (one eval shard each) give the same model metrics', { skip: NEEDS }, async () => {
  // tfjs explicitly: with ONNX Runtime (the default when installed) one session uses every core and
  // there is no pool of workers.
  const withWorkers = async (workers: number): Promise<Report> => {
    const prefix = `evaluate-${workers}w/`;
    await runStage({ ...testContext(run, root, prefix), backend: 'wasm' }, { ...evaluateConfig({ workers }), inferBackend: 'tfjs' });
    return JSON.parse((await run.get(`${prefix}report.json`)).toString('utf8')) as Report;
  };
  const one = await withWorkers(1);
  const two = await withWorkers(2);
  assert.deepEqual(one.models.map((m) => m.metrics), two.models.map((m) => m.metrics));
  assert.deepEqual(one.models.map((m) => m.skipped), two.models.map((m) => m.skipped));
  assert.deepEqual([one.models.map((m) => m.workers), two.models.map((m) => m.workers)], [[1, 1, 1], [2, 2, 2]]);
  // The default run (ONNX Runtime when installed) evaluated the same images.
  assert.deepEqual(two.models.map((m) => m.metrics.samples), report.models.map((m) => m.metrics.samples));
});

test('pseudo-label precision and accuracy-vs-threshold equal a recount from the stored objects', { skip: NEEDS }, async () => {
  const truth = new Map<string, number>();
  const unlabeled = await fashionPngs(UNLABELED_SHARDS.reduce((a, b) => a + b, 0), 0);
  unlabeled.forEach((u, i) => truth.set(`u${String(i).padStart(5, '0')}`, u.label));
  const p = report.pseudo[0] as PseudoEvaluation;
  assert.equal(p.stage, 'select-1');
  assert.equal(p.infer, 'infer-1');
  assert.equal(p.groundTruth, true);
  const kept: Record<string, unknown>[] = [];
  for (const o of await run.list('select-1/pseudo/')) kept.push(...(await jsonl(run, o.key)));
  assert.ok(kept.length > 0, 'select kept something');
  const right = kept.filter((r) => truth.get(r.key as string) === r.label).length;
  assert.equal(p.precision, right / kept.length);
  assert.equal(report.pseudoLabelPrecision, p.precision);
  for (const c of p.perClass) {
    const mine = kept.filter((r) => r.label === c.cls);
    assert.equal(c.kept, mine.length);
    assert.equal(c.correct, mine.filter((r) => truth.get(r.key as string) === c.cls).length);
  }
  const preds: Record<string, unknown>[] = [];
  for (const o of await run.list('infer-1/predictions/')) preds.push(...(await jsonl(run, o.key)));
  assert.equal(preds.length, truth.size);
  for (const t of p.thresholdCurve) {
    const above = preds.filter((r) => Math.floor((r.maxProb as number) * 100 + 1e-9) >= Math.round(t.threshold * 100));
    const ok = above.filter((r) => (r.classes as number[])[0] === truth.get(r.key as string)).length;
    assert.equal(t.kept, above.length, `kept at ${t.threshold}`);
    assert.equal(t.accuracy, above.length ? ok / above.length : null);
  }
  assert.equal(p.thresholdCurve[0]!.coverage, 1);
  const summary = JSON.parse((await run.get('select-1/summary.json')).toString('utf8')) as { classes: { threshold: number }[] };
  assert.deepEqual(p.thresholds.map((t) => t.threshold), summary.classes.map((c) => c.threshold));
});

test('report: report.md with the tables and chart links, SVG charts that parse', { skip: NEEDS }, async () => {
  const files = (await run.list('evaluate/')).map((o) => o.key.slice('evaluate/'.length)).sort();
  for (const f of ['report.json', 'report.md', 'models/train-teacher-1.json', 'pseudo/select-1.json']) assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
  const names = report.charts.map((c) => c.name);
  // No learning curves: these models were not trained by a train stage (no metrics.jsonl).
  assert.deepEqual(names, ['accuracy', 'per-class', 'confidence-select-1', 'threshold-accuracy', 'confusion']);
  const md = (await run.get('evaluate/report.md')).toString('utf8');
  for (const c of report.charts) {
    assert.ok(md.includes(`](${c.file})`), `report.md links ${c.file}`);
    const svg = await run.get(`evaluate/${c.file}`);
    assert.match(svg.toString('utf8', 0, 200), /^<svg /);
    const meta = await sharp(svg).metadata();
    assert.equal(meta.format, 'svg');
    assert.ok(meta.width! > 100 && meta.height! > 100, `${c.file} is ${meta.width}x${meta.height}`);
  }
  assert.match(md, /\| teacher 1 \| `train-teacher-1` \| \d+\.\d\d % \| \d+\.\d\d % – \d+\.\d\d % \|/);
  assert.match(md, /\| All-labels bound top-1 \| \d+\.\d\d % \|/);
  assert.match(md, /\| student 1 − its teacher \(teacher 1\) \| [+−]\d+\.\d\d points \| \d+ \| \d+ \| [\d.e+-]+ \|/);
  assert.match(md, /\| Pseudo-label precision \(last round\) \| \d+\.\d\d % \|/);
  assert.match(md, /## Stage wall times/);
  assert.match(md, /on backend \*\*wasm\*\*/);
  // The models ran on the inference engine (ONNX Runtime when installed), and the report says so.
  assert.match(md, new RegExp(`models evaluated with \\*\\*${hasExtra('onnxruntime-node') ? 'onnxruntime-node [0-9.]+ cpu' : 'tfjs wasm'}\\*\\*`));
  assert.equal(report.backend, 'wasm');
  // The confusion chart is of the final student and draws one cell per (true, predicted) pair.
  const confusion = (await run.get('evaluate/charts/confusion.svg')).toString('utf8');
  assert.match(confusion, /student 1/);
});

test('resume: a kill mid-evaluate keeps finished models; the re-run evaluates only the rest', { skip: NEEDS }, async () => {
  const r2 = await makeRun(root, 'resume');
  const started: string[] = [];
  const ac = new AbortController();
  const ctx: StageContext = {
    ...testContext(r2, root, 'evaluate/'),
    signal: ac.signal,
    progress: (label) => {
      started.push(label);
      // Killed while the second model is being evaluated.
      return { update: () => (label.endsWith('train-student-1') ? ac.abort(new Error('killed')) : undefined), setTotal() {}, stop() {} };
    },
  };
  await assert.rejects(runStage(ctx, evaluateConfig()), /killed|abort/i);
  assert.deepEqual(started, ['evaluate train-teacher-1', 'evaluate train-student-1']);
  assert.ok(await r2.head('evaluate/models/train-teacher-1.json'));
  assert.equal(await r2.head('evaluate/models/train-student-1.json'), undefined);
  assert.equal(await r2.head('evaluate/report.json'), undefined);
  const first = await r2.get('evaluate/models/train-teacher-1.json');

  started.length = 0;
  const progress: StageContext['progress'] = (label) => {
    started.push(label);
    return { update() {}, setTotal() {}, stop() {} };
  };
  const again: StageContext = { ...testContext(r2, root, 'evaluate/'), progress };
  await runStage(again, evaluateConfig());
  assert.deepEqual(started, ['evaluate train-student-1', 'evaluate train-baseline']);
  assert.deepEqual(await r2.get('evaluate/models/train-teacher-1.json'), first, 'finished model not redone');
  assert.ok(await r2.head('evaluate/report.json'));

  // New weights for a model (its train stage re-ran): that model is evaluated again, the others not.
  const { writeTeacher } = await import('../pseudo/fixtures.js');
  await writeTeacher(r2.sub('train-student-1/model'));
  started.length = 0;
  await runStage(again, evaluateConfig());
  assert.deepEqual(started, ['evaluate train-student-1']);
});

test('bad input: an unlabeled eval set and a missing model are refused with the URI', { skip: NEEDS }, async () => {
  const r3 = root.sub('runs/bad');
  // A dataset list of another shape is refused by its one reader, naming the object and the field.
  await r3.put('import/datasets.json', JSON.stringify({ eval: 'data/unlabeled' }));
  await assert.rejects(runStage(testContext(r3, root, 'evaluate/'), evaluateConfig()), /runs\/bad\/import\/datasets\.json is not the import stage's dataset list: classes: .*; labeled: /);
  await r3.put('import/datasets.json', JSON.stringify({ classes: [], labeled: 'data/unlabeled', unlabeled: 'data/unlabeled', eval: 'data/unlabeled' }));
  await assert.rejects(runStage(testContext(r3, root, 'evaluate/'), evaluateConfig()), /train-teacher-1\/model\/model\.json/);
  const { writeTeacher } = await import('../pseudo/fixtures.js');
  await writeTeacher(r3.sub('train-teacher-1/model'));
  await assert.rejects(runStage(testContext(r3, root, 'evaluate/'), { ...evaluateConfig(), inputs: { data: 'import', models: ['train-teacher-1'] } }), /data\/unlabeled.*not labeled/);
  await assert.rejects(runStage(testContext(r3, root, 'evaluate/'), { evaluate: { topK: [0] }, inputs: { models: ['x'] } }), /evaluate stage config: evaluate\.topK\.0/);
});

test('selftrain report copies report.md/json and charts; a run without a report is a clear error', { skip: NEEDS }, async () => {
  const out = join(dir, 'copied');
  const [cmd, args] = cliArgv('report', run.uri, '--out', out);
  const { stdout } = await run$(cmd, args);
  assert.match(stdout, /copied 7 files/);
  assert.deepEqual(readdirSync(join(out, 'charts')).sort(), report.charts.map((c) => c.file.slice('charts/'.length)).sort());
  assert.deepEqual(readFileSync(join(out, 'report.md')), await run.get('evaluate/report.md'));
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')), report);

  const [cmd2, args2] = cliArgv('report', `${root.uri}/runs/none`, '--out', join(dir, 'none'));
  const err = await run$(cmd2, args2).then(
    () => assert.fail('should exit non-zero'),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(err.code, 1);
  assert.match(err.stderr, /no report at .*runs\/none\/evaluate\/report\.json: the run's evaluate stage has not finished/);
});

test('S3: the same run in a real S3 store gives the same metrics, and its report copies locally', { skip: NEEDS }, async (t) => {
  const s3 = await s3TestStore(t);
  if (!s3) return;
  for (const prefix of ['data/', 'runs/demo/']) {
    for (const o of await root.list(prefix)) if (!o.key.startsWith('runs/demo/evaluate/')) await s3.put(o.key, await root.get(o.key));
  }
  // The infer summary names the unlabeled set by URI: point it at the S3 copy.
  const s3run = s3.sub('runs/demo');
  const summary = JSON.parse((await s3run.get('infer-1/summary.json')).toString('utf8')) as { dataset: string };
  summary.dataset = `${trimUri(s3.uri)}/data/unlabeled`;
  await s3run.put('infer-1/summary.json', JSON.stringify(summary));
  await runStage({ ...testContext(s3run, s3, 'evaluate/'), backend: 'wasm' }, evaluateConfig());
  const got = JSON.parse((await s3run.get('evaluate/report.json')).toString('utf8')) as Report;
  assert.deepEqual(got.models.map((m) => m.metrics), report.models.map((m) => m.metrics));
  assert.deepEqual(got.pseudo.map((p) => [p.precision, p.perClass, p.thresholdCurve]), report.pseudo.map((p) => [p.precision, p.perClass, p.thresholdCurve]));
  const out = join(dir, 'from-s3');
  const files = await copyReport(s3run, out);
  assert.equal(files.length, 2 + got.charts.length);
  assert.match(readFileSync(join(out, 'charts', 'confusion.svg'), 'utf8'), /^<svg /);

  // The held-back labels are optional (pseudo-label precision is reported only when they exist),
  // but a store that refuses them (403) is not "no labels": the stage fails naming the object,
  // rather than dropping the precision section. Through a proxy answering 403 for that object.
  const env = (await s3TestEnv())!;
  const proxy = await startFaultProxy(env.endpoint);
  t.after(() => proxy.close());
  const bucket = /^s3:\/\/([^/]+)/.exec(s3.uri)![1]!;
  const denied = new S3Store({ bucket, endpoint: proxy.endpoint, region: env.region, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
  t.after(() => denied.close());
  const deniedRun = denied.sub('runs/demo');
  await deniedRun.deletePrefix('evaluate/');
  proxy.failNext(100, '403', (r) => r.url.includes('/data/unlabeled/dataset.json'));
  await assert.rejects(
    runStage({ ...testContext(deniedRun, denied, 'evaluate/'), storeSettings: { endpoint: proxy.endpoint }, backend: 'wasm' }, evaluateConfig()),
    (err: Error) => err instanceof StoreAccessError && /refused the credentials for get s3:\/\/[^ ]+\/data\/unlabeled\/dataset\.json: AccessDenied/.test(err.message),
  );
  assert.ok(proxy.injected['403'] > 0, 'the 403 was served');
  assert.equal(await deniedRun.head('evaluate/report.json'), undefined, 'no report without the section');
});
