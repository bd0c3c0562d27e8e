/**
 * The CI manifest's infer stage on a real Slurm (test/helpers/slurm.ts) and the real S3 server,
 * through the real CLI (`selftrain run`):
 *
 * 1. The manifest as shipped (local executor) runs up to its infer stage: the reference predictions.
 * 2. With `pseudo.infer.executor: slurm` (4 array tasks), after the infer outputs are removed, the
 *    infer stage runs again on Slurm. Its tasks are held at a gate (test/helpers/gate.ts), so every
 *    "while the array runs" below is a state the test waits for, never a race:
 *    - the runner is SIGKILLed while the array runs; the array keeps running;
 *    - a second `selftrain run` attaches to that array instead of submitting another;
 *    - task 1 is cancelled (`scancel <job>_1`) while it runs; the runner resubmits index 1;
 *    - every shard ends with exactly one prediction object, byte-identical to the local executor's.
 * 3. SIGINT to a runner whose array is running cancels the array: squeue is empty when it exits.
 *
 * The executor settings are not part of the infer stage's fingerprint, so switching executor re-runs
 * nothing by itself: the test removes the infer outputs to make the stage run again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { DatasetIndex } from '../../pipeline/data/types.js';
import type { StageRecord } from '../../pipeline/runner/record.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { selftrainCommand } from '../../stages/infer/executors/command.js';
import { squeueByName } from '../../stages/infer/executors/slurm-cli.js';
import { SLURM_RECORD_KEY, slurmJobName, type SlurmRecord } from '../../stages/infer/executors/slurm.js';
import { needs } from '../helpers/extras.js';
import { makeGate } from '../helpers/gate.js';
import { repoRoot, s3TestEnv, s3TestStore, S3_SKIP_REASON } from '../helpers/s3.js';
import { slurmTestEnv, SLURM_SKIP_REASON } from '../helpers/slurm.js';
import { listRelative, readJson, readJsonlGz, startCli, waitUntil, type CliRun } from './helpers.js';

const MANIFEST = path.join(repoRoot(), 'manifests', 'fashion-mnist-ci.yaml');
const NAME = 'fashion-mnist-ci';
const TASKS = 4;
const s3env = await s3TestEnv();
const cluster = await slurmTestEnv();

/** The CI manifest with the infer stage on Slurm (same name: the same run). */
function slurmManifest(work: string, command: string[]): string {
  const text = readFileSync(MANIFEST, 'utf8');
  const line = '  infer: { topK: 5, batchSize: 250 }';
  assert.ok(text.includes(line), `${MANIFEST}: the pseudo.infer line this test edits`);
  const slurm = { tasks: TASKS, cpusPerTask: 1, pollSeconds: 0.5, logDir: path.join(work, 'slurm-logs'), command };
  const file = path.join(work, 'fashion-mnist-ci-slurm.yaml');
  writeFileSync(file, text.replace(line, `  infer: { topK: 5, batchSize: 250, executor: slurm, slurm: ${JSON.stringify(slurm)} }`));
  return file;
}

async function stageDone(run: ObjectStore, id: string): Promise<boolean> {
  return (await readJson<StageRecord>(run, `state/${id}.json`).catch(() => undefined))?.status === 'done';
}

/** Runs until the infer stage is done, then stops the runner (the later stages are not needed here). */
async function untilInferDone(run: ObjectStore, cli: CliRun, what: string): Promise<void> {
  await waitUntil(() => stageDone(run, 'infer-1'), 15 * 60_000, `infer-1 done (${what})`, cli);
  cli.killAll();
  await cli.done;
}

async function removeInferOutputs(run: ObjectStore): Promise<void> {
  for (const prefix of ['infer-1/predictions/', 'infer-1/stats/', 'infer-1/errors/']) await run.deletePrefix(prefix);
  await run.delete('infer-1/summary.json');
}

test('CI manifest, executor slurm: attach after a kill, a cancelled task resubmitted, same predictions as local; SIGINT cancels the array', { skip: needs('fashion-mnist') || (!s3env ? S3_SKIP_REASON : !cluster ? SLURM_SKIP_REASON : false), timeout: 25 * 60_000 }, async (t) => {
  const s3 = await s3TestStore(t);
  if (!s3) return;
  const bucket = /^s3:\/\/([^/]+)/.exec(s3.uri)![1]!;
  const store = `s3://${bucket}/runs`;
  const run = s3.sub(`runs/${NAME}/`);
  const work = mkdtempSync(path.join(tmpdir(), 'selftrain-slurm-e2e-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const name = slurmJobName(run.uri, 'infer-1');
  const squeue = () => squeueByName(name, process.env);
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;

  // 1. The local executor's predictions.
  const local = startCli(work, ['run', MANIFEST, '--store', store]);
  t.after(() => local.killAll());
  await untilInferDone(run, local, 'local executor');
  const unlabeled = await readJson<DatasetIndex>(s3.sub(`runs/${(await readJson<Record<string, string>>(run, 'import/datasets.json')).unlabeled}/`), 'dataset.json');
  const shardNames = unlabeled.shards.map((s) => s.name.replace(/\.tar$/, '')).sort();
  const reference = new Map<string, Buffer>();
  for (const key of await listRelative(run, 'infer-1/predictions/')) reference.set(key, await run.get(`infer-1/predictions/${key}`));
  assert.deepEqual([...reference.keys()], shardNames.map((s) => `${s}.jsonl.gz`));
  console.log(`local executor: ${shardNames.length} shards predicted after ${elapsed()}`);

  // 2. Slurm, with the tasks held at a gate.
  await removeInferOutputs(run);
  const gate = makeGate(path.join(work, 'gate'));
  const manifest = slurmManifest(work, [...gate.command, ...selftrainCommand()]);
  const first = startCli(work, ['run', manifest, '--store', store]);
  t.after(() => first.killAll());
  await waitUntil(async () => (await squeue()).filter((x) => x.state === 'RUNNING').length >= 1, 10 * 60_000, 'array tasks running', first);
  const submitted = await readJson<SlurmRecord>(run, `infer-1/${SLURM_RECORD_KEY}`);
  assert.equal(submitted.count, TASKS);
  assert.equal(submitted.submissions.length, 1);
  const jobId = submitted.submissions[0]!.jobId;
  assert.deepEqual(submitted.submissions[0]!.indices, [0, 1, 2, 3]);
  first.killAll();
  assert.equal((await first.done).signal, 'SIGKILL');
  assert.equal((await squeue()).length, TASKS, 'the array outlives its runner');

  // The second run attaches.
  const second = startCli(work, ['run', manifest, '--store', store]);
  t.after(() => second.killAll());
  await waitUntil(() => second.stderr().includes(`slurm: attaching to job(s) ${jobId}`), 5 * 60_000, 'the second run to attach', second);
  // Task 1, running at the gate, is cancelled.
  await waitUntil(async () => (await squeue()).some((x) => x.index === 1 && x.state === 'RUNNING'), 5 * 60_000, 'task 1 running', second);
  execFileSync('scancel', [`${jobId}_1`]);
  await waitUntil(async () => !(await squeue()).some((x) => x.jobId === jobId && x.index === 1), 60_000, `${jobId}_1 gone from squeue`, second);
  gate.open();
  await untilInferDone(run, second, 'slurm executor');
  console.log(`slurm executor: infer-1 done after ${elapsed()}`);
  assert.match(second.stderr(), new RegExp(`slurm: task ${jobId}_1 ended \\(CANCELLED, exit code 0, signal 15\\) with \\d+ shard\\(s\\) missing; resubmitting index 1 \\(1/2\\)`));
  const final = await readJson<SlurmRecord>(run, `infer-1/${SLURM_RECORD_KEY}`);
  assert.deepEqual(
    final.submissions.map((s) => s.indices),
    [[0, 1, 2, 3], [1]],
    'one array, plus index 1 resubmitted: the second run submitted no array of its own',
  );
  // Every shard exactly once, every sample once, bytes equal to the local executor's.
  assert.deepEqual(await listRelative(run, 'infer-1/predictions/'), shardNames.map((s) => `${s}.jsonl.gz`));
  const seen = new Set<string>();
  for (const shard of unlabeled.shards) {
    const key = `${shard.name.replace(/\.tar$/, '')}.jsonl.gz`;
    const lines = await readJsonlGz<{ key: string }>(run, `infer-1/predictions/${key}`);
    assert.equal(lines.length, shard.samples, key);
    for (const l of lines) {
      assert.ok(!seen.has(l.key), `${l.key} predicted twice`);
      seen.add(l.key);
    }
    assert.ok(gunzipSync(await run.get(`infer-1/predictions/${key}`)).equals(gunzipSync(reference.get(key)!)), `${key}: slurm and local differ`);
  }
  assert.equal(seen.size, unlabeled.samples);
  const summary = await readJson<{ workers: number; restarts: number; samples: number }>(run, 'infer-1/summary.json');
  assert.deepEqual([summary.workers, summary.restarts, summary.samples], [TASKS, 1, unlabeled.samples]);
  assert.deepEqual(await squeue(), []);

  // 3. SIGINT cancels the array.
  await removeInferOutputs(run);
  gate.close();
  const third = startCli(work, ['run', manifest, '--store', store]);
  t.after(() => third.killAll());
  await waitUntil(async () => (await squeue()).some((x) => x.state === 'RUNNING'), 5 * 60_000, 'the new array running', third);
  third.child.kill('SIGINT');
  const stopped = await third.done;
  assert.equal(stopped.code, 130, stopped.stderr.slice(-3000));
  assert.match(stopped.stderr, /slurm: stopping: cancelling the tasks of selftrain-infer-1-/);
  assert.equal(execFileSync('squeue', ['--me', '--noheader']).toString().trim(), '', 'squeue is empty after the runner exits');
  console.log(`SIGINT: array cancelled, squeue empty, after ${elapsed()}`);
});
