/**
 * The slurm executor against a real Slurm (test/helpers/slurm.ts), on the infer fixtures (real
 * Fashion-MNIST shards, a small ResNet-RS teacher): a 3-task array gives predictions byte-identical
 * to a single in-process worker; a task that cannot start stops the stage with its output and
 * leaves nothing queued. (The CI-manifest test in test/e2e/slurm-ci.test.ts covers cancelled tasks,
 * SIGINT and attaching.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { slurmSection, type SlurmConfig } from '../../pipeline/manifest/sections/pseudo.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import { selftrainCommand } from '../../stages/infer/executors/command.js';
import { arraySpec, squeueByName } from '../../stages/infer/executors/slurm-cli.js';
import { sbatchFlags, SLURM_RECORD_KEY, slurmJobName, slurmScript, type SlurmRecord } from '../../stages/infer/executors/slurm.js';
import { runInferStage, type InferStageOptions } from '../../stages/infer/stage.js';
import { readInferSummary } from '../../pipeline/contracts/infer.js';
import { needs } from '../helpers/extras.js';
import { makeGate } from '../helpers/gate.js';
import { slurmTestEnv, SLURM_SKIP_REASON } from '../helpers/slurm.js';
import { testContext } from './context.js';
import { inferConfig, inferOptions, predictionsOf, referencePredictions, writeTeacher, writeUnlabeled } from './fixtures.js';

const cluster = await slurmTestEnv();
const skip = needs('fashion-mnist') || (cluster ? false : SLURM_SKIP_REASON);
let dir: string;
let root: FileStore;
const reference = new Map<string, Buffer>();

function slurm(over: Partial<SlurmConfig> = {}): SlurmConfig {
  return { ...slurmSection.parse({ pollSeconds: 0.3, logDir: join(dir, 'slurm-logs') }), ...over };
}

function options(over: Partial<InferStageOptions> = {}): InferStageOptions {
  return inferOptions(root, { config: inferConfig({ executor: 'slurm', slurm: slurm() }), ...over });
}

async function waitFor(what: string, pred: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'slurm-executor-'));
  root = new FileStore(dir);
  await writeUnlabeled(root.sub('data/unlabeled'), { shards: [24, 20, 24, 17, 9] });
  await writeTeacher(root.sub('teacher/model'));
  for (const [k, v] of await referencePredictions(root.sub('runs/reference'), options())) reference.set(k, v);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('sbatch arguments: array specs, manifest flags, the task script', () => {
  assert.equal(arraySpec([0, 1, 2, 3]), '0-3');
  assert.equal(arraySpec([7, 0, 2, 1, 5, 8]), '0-2,5,7-8');
  assert.equal(arraySpec([4]), '4');
  assert.deepEqual(
    sbatchFlags(slurmSection.parse({ partition: 'gpu', timeLimit: '2:00:00', cpusPerTask: 4, gpusPerTask: 1, memory: '16G', extraArgs: ['--qos=low'] })),
    ['--partition=gpu', '--time=2:00:00', '--cpus-per-task=4', '--gpus-per-task=1', '--mem=16G', '--qos=low'],
  );
  const script = slurmScript(['/opt/node/bin/node', '/opt/my app/cli.js'], 's3://b/runs/x', 'infer-1', 8);
  assert.match(script, /^#!\/bin\/sh\n/);
  assert.match(script, /\nexec \/opt\/node\/bin\/node '\/opt\/my app\/cli\.js' worker infer --run s3:\/\/b\/runs\/x --stage infer-1 --count 8\n$/);
});

test('slurm: a 3-task array gives the same predictions as one in-process worker; nothing left queued', { skip }, async () => {
  const run = root.sub('runs/array');
  const lines: string[] = [];
  await runInferStage(testContext(run, root, 'infer-1/', lines), options({ config: inferConfig({ executor: 'slurm', slurm: slurm({ tasks: 3 }) }) }), 1);
  assert.deepEqual(await predictionsOf(run), reference);
  const summary = await readInferSummary(run, 'infer-1');
  assert.deepEqual([summary.samples, summary.workers, summary.restarts], [94, 3, 0]);
  const rec = JSON.parse((await run.get(`infer-1/${SLURM_RECORD_KEY}`)).toString()) as SlurmRecord;
  assert.equal(rec.count, 3);
  assert.deepEqual(rec.submissions.map((s) => s.indices), [[0, 1, 2]]);
  assert.ok(lines.some((l) => new RegExp(`slurm: submitted job ${rec.submissions[0]!.jobId}: array 0-2 of 3 task`).test(l)), lines.join('\n'));
  assert.deepEqual(await squeueByName(slurmJobName(run.uri, 'infer-1'), process.env), []);
});

test('slurm: a task that cannot start (its dataset vanished) stops the stage with its output; nothing left queued', { skip }, async () => {
  await writeUnlabeled(root.sub('data/vanishing'), { shards: [5, 5] });
  const run = root.sub('runs/vanishing');
  const gate = makeGate(join(dir, 'gate-vanishing'));
  const name = slurmJobName(run.uri, 'infer-1');
  const stage = runInferStage(
    testContext(run, root, 'infer-1/'),
    options({ dataset: `${root.uri}/data/vanishing`, config: inferConfig({ executor: 'slurm', slurm: slurm({ tasks: 2, command: [...gate.command, ...selftrainCommand()] }) }) }),
    1,
  );
  stage.catch(() => undefined);
  // The tasks are submitted and held at the gate; then the dataset goes away under them.
  await waitFor('both tasks queued', async () => (await squeueByName(name, process.env)).length === 2);
  await root.delete('data/vanishing/dataset.json');
  gate.open();
  await assert.rejects(stage, (err: Error) => {
    assert.match(err.message, /slurm: task \d+_\d ended \(FAILED, exit code 2\) with 1 shard\(s\) missing: the worker cannot start, a retry would not help/);
    assert.match(err.message, /no dataset\.json/);
    return true;
  });
  assert.deepEqual(await squeueByName(name, process.env), []);
});
