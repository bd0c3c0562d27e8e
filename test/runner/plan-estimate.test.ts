/**
 * `selftrain plan` estimates: images processed, storage written and compute per stage.
 *
 *  - The paper's ImageNet manifest (bucket s3://my-bucket, which exists nowhere here): the plan
 *    still prints every stage with its estimates, states `unknown` and one line saying why, exit 0;
 *    the numbers are checked against a hand computation from published counts (RS-152 params,
 *    RS-152@224 = 23.8 GFLOPs: sources at the constants below), once with the endpoint unreachable and once against the real S3
 *    server with the bucket missing.
 *  - A small file:// manifest whose datasets were really imported (Fashion-MNIST test split):
 *    the plan uses the counts from dataset.json, not the manifest's `sizes`.
 *  - Known import sources without data, and a source nobody knows (printed as `?`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cliArgv } from '../helpers/cli.js';
import { S3_SKIP_REASON, s3TestEnv } from '../helpers/s3.js';
import { parseManifest } from '../../pipeline/manifest/load.js';
import { buildChain } from '../../pipeline/runner/chain.js';
import { estimateStages, manifestDatasetSizes } from '../../pipeline/runner/estimate.js';
import { stageContext } from '../helpers/stage-context.js';
import { needs } from '../helpers/extras.js';
import { getOrThrow } from '../../pipeline/checked.js';
import { fashionMnistDir } from '../helpers/fashion-mnist.js';

function repoRoot(): string {
  let d = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(d, 'package.json'))) {
    if (path.dirname(d) === d) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    d = path.dirname(d);
  }
  return d;
}
const IMAGENET = path.join(repoRoot(), 'manifests', 'imagenet-resnet-rs-152.yaml');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  const [cmd, argv] = cliArgv(...args);
  return new Promise((resolve) => {
    execFile(cmd, argv, { env, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A port nothing listens on: connecting fails at once (ECONNREFUSED). */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function envWithout(prefix: string, extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith(prefix)));
  return { ...env, ...extra };
}

interface JsonPlan {
  run: string;
  storeProblem?: string;
  stages: { id: string; state: string; estimate: { images: number | null; storageBytes: number | null; flops: number | null; note: string } }[];
  datasets: Record<string, { samples?: number; bytes?: number; origin: string }>;
  totals: { images: number | null; storageBytes: number | null; flops: number | null; tpuV3CoreSeconds: number | null; localCoreSeconds: number | null };
}

/** Look-up by stage id; a stage missing from the plan fails the test, naming it. */
function stageLookup<T>(entries: readonly (readonly [string, T])[]): (id: string) => T {
  const byId = new Map(entries);
  return (id) => getOrThrow(byId, id, 'stages of the plan');
}

const near = (got: number | null, want: number, tol: number, what: string) => {
  assert.ok(got !== null, `${what}: no estimate`);
  assert.ok(Math.abs(got - want) / want <= tol, `${what}: got ${got}, hand computation ${want} (tolerance ${tol * 100}%)`);
};

// ---- The hand computation for the ImageNet manifest (independent of pipeline/runner/estimate.ts) ----
const LABELED = 1_281_167;
const UNLABELED = 130_000_000;
const EVAL = 50_000;
const GFLOPS_RS152_224 = 23.8e9; // 2 × 11.90 GMACs (pipeline/model/count.ts, test/model/count.test.ts)
const RS152_PARAMS = 86_622_000; // trainable: timm's param_count 86.62M (https://github.com/huggingface/pytorch-image-models/blob/aa4b5850/results/results-imagenet.csv)
// BN moving mean+var: the TF2 Model Garden's 86.8M counts them and a 1001-class head; counted
// exactly that is 86.775M (pipeline/model/count.ts). Minus 86.622M, minus the extra head class
// (2048 weights + 1 bias).
const RS152_BN_STATS = 86_775_000 - 86_622_000 - 2049;
// The trainer holds out 2% (stratified; ~ overall rounding at this size) and drops the last partial batch.
const HELDOUT = Math.round(LABELED * 0.02); // 25,623
const STEPS_PER_EPOCH = Math.floor((LABELED - HELDOUT) / 4096); // 306
const STEPS = 350 * STEPS_PER_EPOCH; // 107,100
const TEACHER_IMAGES = STEPS * 4096;
const STUDENT_IMAGES = STEPS * (4096 + 3 * 4096);
const CKPT = 4 * (3 * RS152_PARAMS + 2 * RS152_BN_STATS); // weights+EMA (incl. BN stats) + momentum
const TRAIN_STORAGE = 3 * CKPT + 4 * (RS152_PARAMS + RS152_BN_STATS);

function checkImagenetPlan(p: JsonPlan): void {
  const ids = p.stages.map((s) => s.id);
  assert.deepEqual(ids, ['import', 'train-teacher-1', 'infer-1', 'select-1', 'train-student-1', 'evaluate']);
  for (const s of p.stages) assert.equal(s.state, 'unknown', s.id);
  const est = stageLookup(p.stages.map((s) => [s.id, s.estimate] as const));
  for (const id of ids) assert.ok(est(id), id);

  // Teacher: 350 epochs over the labeled set (minus the hold-out, whole batches only).
  assert.equal(est('train-teacher-1').images, TEACHER_IMAGES);
  near(est('train-teacher-1').images, 350 * LABELED, 0.025, 'teacher images vs 350 × 1,281,167');
  near(est('train-teacher-1').flops, 3 * GFLOPS_RS152_224 * TEACHER_IMAGES + GFLOPS_RS152_224 * 350 * HELDOUT, 0.01, 'teacher FLOPs');
  near(est('train-teacher-1').storageBytes, TRAIN_STORAGE, 0.005, 'teacher checkpoints + model');
  // Student: each step B labeled + 3B pseudo-labeled.
  assert.equal(est('train-student-1').images, STUDENT_IMAGES);
  near(est('train-student-1').flops, 3 * GFLOPS_RS152_224 * STUDENT_IMAGES + GFLOPS_RS152_224 * 350 * HELDOUT, 0.01, 'student FLOPs');
  // Inference: one forward pass per unlabeled image; predictions are tens of bytes per sample.
  assert.equal(est('infer-1').images, UNLABELED);
  near(est('infer-1').flops, GFLOPS_RS152_224 * UNLABELED, 0.01, 'infer FLOPs');
  const predPerSample = est('infer-1').storageBytes! / UNLABELED;
  assert.ok(predPerSample > 20 && predPerSample < 300, `prediction bytes/sample ${predPerSample}`);
  // Select reads every prediction and keeps at most 130,000 × 1000 samples.
  assert.equal(est('select-1').images, UNLABELED);
  assert.equal(est('select-1').flops, 0);
  const pseudoPerSample = est('select-1').storageBytes! / Math.min(UNLABELED, 130_000 * 1000);
  assert.ok(pseudoPerSample > 20 && pseudoPerSample < 400, `pseudo-label bytes/sample ${pseudoPerSample}`);
  // Evaluate: teacher and student over the 50,000 val images.
  assert.equal(est('evaluate').images, 2 * EVAL);
  near(est('evaluate').flops, 2 * GFLOPS_RS152_224 * EVAL, 0.01, 'evaluate FLOPs');
  // The datasets already exist in the bucket: import writes nothing.
  assert.equal(est('import').images, 0);
  assert.equal(est('import').storageBytes, 0);

  assert.equal(p.datasets.labeled!.samples, LABELED);
  assert.equal(p.datasets.labeled!.origin, 'manifest sizes');
  assert.equal(p.datasets.unlabeled!.samples, UNLABELED);
  const totalFlops = p.stages.reduce((a, s) => a + s.estimate.flops!, 0);
  near(p.totals.flops, totalFlops, 1e-9, 'total FLOPs');
  near(p.totals.tpuV3CoreSeconds, totalFlops / 61.5e12, 1e-9, 'TPUv3 core seconds');
  const trainFlops = est('train-teacher-1').flops! + est('train-student-1').flops!;
  near(p.totals.localCoreSeconds, trainFlops / 10e9 + (totalFlops - trainFlops) / 23e9, 1e-9, 'local core seconds');
}

test('ImageNet manifest, endpoint unreachable: every stage with images, storage and compute; exit 0', async () => {
  const port = await closedPort();
  const env = envWithout('AWS_', { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: 'plan-test', AWS_SECRET_ACCESS_KEY: 'plan-test-secret', AWS_REGION: 'us-east-1' });

  const text = await cli(['plan', IMAGENET], env);
  assert.equal(text.code, 0, text.stderr);
  const lines = text.stdout.split('\n');
  const note = lines.filter((l) => l.startsWith('note: stage states unknown'));
  assert.equal(note.length, 1, text.stdout);
  assert.match(note[0]!, /cannot reach S3 endpoint .*ECONNREFUSED/);
  const ids = ['import', 'train-teacher-1', 'infer-1', 'select-1', 'train-student-1', 'evaluate'];
  for (const id of ids) assert.ok(lines.some((l) => new RegExp(`^  ${id}\\s+unknown\\s+store not readable$`).test(l)), `${id} state row in:\n${text.stdout}`);
  const estStart = lines.findIndex((l) => l.startsWith('estimates'));
  assert.ok(estStart > 0, text.stdout);
  for (const id of ids) {
    const row = lines.slice(estStart).find((l) => l.startsWith(`  ${id} `));
    assert.ok(row, `${id} estimate row in:\n${text.stdout}`);
    assert.match(row!, /\d (?:[kMGTPE])?B\b/, `${id}: storage column`);
    assert.match(row!, /\d (?:[kMGTPE])?FLOP\b/, `${id}: compute column`);
  }
  assert.match(text.stdout, /\n {2}train-teacher-1\s+439 M\s+3\.47 GB\s+31\.5 EFLOP\s+teacher resnet-rs-152-i224@224: 107,100 steps/);
  assert.match(text.stdout, /TPUv3 core at 61\.5 TFLOP\/s/);
  assert.doesNotMatch(text.stdout + text.stderr, /plan-test-secret/);

  const json = await cli(['plan', IMAGENET, '--json'], env);
  assert.equal(json.code, 0, json.stderr);
  const p = JSON.parse(json.stdout) as JsonPlan;
  assert.match(p.storeProblem ?? '', /ECONNREFUSED/);
  assert.equal(p.run, 's3://my-bucket/selftrain/imagenet-resnet-rs-152');
  checkImagenetPlan(p);
});

test('ImageNet manifest against the real S3 server, bucket missing: estimates and the bucket error', async (t) => {
  const s3 = await s3TestEnv();
  if (!s3) return t.skip(S3_SKIP_REASON);
  const env = { ...process.env, AWS_ENDPOINT_URL: s3.endpoint, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_REGION: s3.region };
  const r = await cli(['plan', IMAGENET, '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  const p = JSON.parse(r.stdout) as JsonPlan;
  assert.match(p.storeProblem ?? '', /bucket "my-bucket" does not exist/);
  checkImagenetPlan(p);
});

function tempDir(t: { after(fn: () => void): void }, name: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const smallManifest = (name: string, store: string, datasets: Record<string, unknown>, train: Record<string, unknown>) =>
  JSON.stringify({
    name,
    store,
    datasets,
    teacher: { model: { name: 'resnet-rs-26-w0.25-small' }, train },
    student: { model: { name: 'resnet-rs-26-w0.25-small' }, train: { ...train, student: { ratio: 2 } } },
    pseudo: { infer: { topK: 3 }, select: { threshold: 0.3 } },
    evaluate: { baseline: true },
  });

test('file:// manifest after the data exists: counts come from dataset.json, not from sizes', { skip: needs('fashion-mnist') }, async (t) => {
  const dir = tempDir(t, 'plan-estimate');
  const pool = pathToFileURL(path.join(dir, 'data', 'pool')).href;
  const evalUri = pathToFileURL(path.join(dir, 'data', 'eval')).href;
  // Real imports of the Fashion-MNIST test split: 20 labeled per class + 9,800 unlabeled, and all 10,000 for eval.
  const [a, b] = await Promise.all([
    cli(['dataset', 'import', fashionMnistDir(), '--split', 'test', '--labeled-per-class', '20', '--to', pool]),
    cli(['dataset', 'import', fashionMnistDir(), '--split', 'test', '--to', evalUri]),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const labeledIndex = JSON.parse(readFileSync(path.join(dir, 'data', 'pool', 'labeled', 'dataset.json'), 'utf8')) as { samples: number; bytes: number };

  const file = path.join(dir, 'small.json');
  writeFileSync(
    file,
    smallManifest(
      'small',
      pathToFileURL(path.join(dir, 'runs')).href,
      // sizes deliberately wrong: dataset.json must win.
      { labeled: `${pool}/labeled`, unlabeled: `${pool}/unlabeled`, eval: evalUri, sizes: { labeled: 1, unlabeled: 2, eval: 3 } },
      { epochs: 2, batchSize: 64, checkpoint: { everySteps: 4, keep: 1 } },
    ),
  );
  const r = await cli(['plan', file, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const p = JSON.parse(r.stdout) as JsonPlan;
  assert.equal(p.storeProblem, undefined);
  assert.deepEqual(
    Object.fromEntries(Object.entries(p.datasets).map(([k, v]) => [k, [v.samples, v.origin]])),
    { labeled: [200, 'dataset.json'], unlabeled: [9800, 'dataset.json'], eval: [10000, 'dataset.json'] },
  );
  assert.equal(p.datasets.labeled!.bytes, labeledIndex.bytes);
  for (const s of p.stages) assert.equal(s.state, 'pending', s.id);
  const est = stageLookup(p.stages.map((s) => [s.id, s.estimate] as const));
  // 20 per class × 2% rounds to 0 held out per class: 200 train images, batch 64 → 3 steps/epoch, 2 epochs.
  assert.equal(est('train-teacher-1').images, 6 * 64);
  assert.equal(est('train-student-1').images, 6 * (64 + 128));
  assert.equal(est('train-baseline').images, 6 * 64);
  assert.equal(est('infer-1').images, 9800);
  assert.equal(est('evaluate').images, 3 * 10000); // teacher, student, baseline
  assert.equal(est('import').storageBytes, 0, 'existing datasets are not imported again');

  const text = await cli(['plan', file]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /labeled 200 \(\d+(\.\d+)? kB\) \[dataset\.json\]/);
  assert.match(text.stdout, /7 of 7 stages would run/);
});

test('without data: known import sources give sizes, an unknown source prints ? and never crashes', async (t) => {
  const fm = parseManifest(
    smallManifest('fm', 'file://./runs', { labeled: 'fashion-mnist:train', unlabeled: 'fashion-mnist:train', eval: 'fashion-mnist:test', split: { labeledPerClass: 100 } }, { epochs: 1, batchSize: 100 }),
    'fm.json',
  );
  const sizes = manifestDatasetSizes(fm);
  assert.deepEqual([sizes.labeled.samples, sizes.unlabeled.samples, sizes.eval.samples], [1000, 59000, 10000]);
  const est = stageLookup(estimateStages(fm, buildChain(fm), sizes).map((e) => [e.id, e] as const));
  // 1000 labeled − 2% held out = 980 → 9 steps of 100.
  assert.equal(est('train-teacher-1').images, 900);
  assert.equal(est('infer-1').images, 59000);
  assert.ok(est('import').storageBytes! > 60_000 * 1000, 'imports write the shards');

  const dir = tempDir(t, 'plan-unknown');
  const file = path.join(dir, 'unknown.json');
  writeFileSync(
    file,
    smallManifest('unk', pathToFileURL(path.join(dir, 'runs')).href, { labeled: 'folder:/nonexistent/labeled', unlabeled: 'folder:/nonexistent/pool', eval: 'folder:/nonexistent/eval' }, { epochs: 1, batchSize: 8 }),
  );
  const r = await cli(['plan', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\n {2}train-teacher-1\s+\?\s+\?\s+\?\s+teacher/);
  assert.match(r.stdout, /datasets: labeled \? \[unknown\]/);
});

test('after the import stage ran: sizes of the imported sources come from their dataset.json via import/datasets.json', { skip: needs('fashion-mnist') }, async (t) => {
  const dir = tempDir(t, 'plan-imported');
  const storeUri = pathToFileURL(path.join(dir, 'runs')).href;
  const file = path.join(dir, 'imported.json');
  writeFileSync(
    file,
    smallManifest(
      'imported',
      storeUri,
      { labeled: 'fashion-mnist:test', unlabeled: 'fashion-mnist:test', eval: 'fashion-mnist:test', split: { labeledPerClass: 30 } },
      { epochs: 1, batchSize: 50 },
    ),
  );
  // Before: the known source's sizes (10,000 test images split 300 / 9,700).
  const before = JSON.parse((await cli(['plan', file, '--json'])).stdout) as JsonPlan;
  assert.deepEqual([before.datasets.labeled!.samples, before.datasets.unlabeled!.samples, before.datasets.labeled!.origin], [300, 9700, 'known source']);

  // The real import stage, run directly (the rest of the chain would train models).
  const { openStore } = await import('../../pipeline/store/open.js');
  const { runStage } = await import('../../stages/import/index.js');
  const manifest = parseManifest(readFileSync(file, 'utf8'), file);
  const importStage = buildChain(manifest).find((s) => s.id === 'import');
  assert.ok(importStage?.kind === 'import');
  const root = openStore(storeUri);
  await runStage(stageContext({ run: root.sub('imported'), root, outPrefix: 'import/' }), importStage.config);
  const refs = JSON.parse((await root.get('imported/import/datasets.json')).toString()) as Record<string, string>;
  const index = async (ref: string) => JSON.parse((await root.get(`${ref}/dataset.json`)).toString()) as { samples: number; bytes: number };
  const [lab, unl, ev] = await Promise.all([index(refs.labeled!), index(refs.unlabeled!), index(refs.eval!)]);
  await root.close();

  const after = JSON.parse((await cli(['plan', file, '--json'])).stdout) as JsonPlan;
  assert.deepEqual(
    Object.fromEntries(Object.entries(after.datasets).map(([k, v]) => [k, [v.samples, v.bytes, v.origin]])),
    { labeled: [300, lab.bytes, 'dataset.json'], unlabeled: [9700, unl.bytes, 'dataset.json'], eval: [10000, ev.bytes, 'dataset.json'] },
  );
  assert.equal(lab.samples + unl.samples, 10000);
  const est = stageLookup(after.stages.map((s) => [s.id, s.estimate] as const));
  assert.equal(est('import').storageBytes, lab.bytes + unl.bytes + ev.bytes, 'import writes the shards of its sources');
  // The known-source guess was within 10% of what the import really wrote.
  const guessed = before.stages.find((s) => s.id === 'import')!.estimate.storageBytes!;
  near(guessed, lab.bytes + unl.bytes + ev.bytes, 0.1, 'known-source import bytes');
});
