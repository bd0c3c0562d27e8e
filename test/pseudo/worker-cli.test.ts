import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cliArgv } from '../helpers/cli.js';
import { PassThrough } from 'node:stream';
import { claimsOverStdio, resolveWorkerIndex } from '../../pipeline/cli/commands/worker.js';
import { ShardClaims } from '../../stages/infer/executor.js';
import { ownedShards } from '../../stages/infer/worker.js';

test('worker index: flag first, then JOB_COMPLETION_INDEX, then AWS_BATCH_JOB_ARRAY_INDEX', () => {
  assert.equal(resolveWorkerIndex(3, { JOB_COMPLETION_INDEX: '1' }), 3);
  assert.equal(resolveWorkerIndex(undefined, { JOB_COMPLETION_INDEX: '1', AWS_BATCH_JOB_ARRAY_INDEX: '2' }), 1);
  assert.equal(resolveWorkerIndex(undefined, { AWS_BATCH_JOB_ARRAY_INDEX: '2' }), 2);
  assert.equal(resolveWorkerIndex(undefined, { SLURM_ARRAY_TASK_ID: '5' }), 5);
  assert.equal(resolveWorkerIndex(undefined, { AWS_BATCH_JOB_ARRAY_INDEX: '2', SLURM_ARRAY_TASK_ID: '5' }), 2);
  assert.equal(resolveWorkerIndex(undefined, {}, 1), 0, 'a single worker needs no index');
  assert.throws(() => resolveWorkerIndex(undefined, {}), /no worker index: pass --index/);
  assert.throws(() => resolveWorkerIndex(undefined, {}, 2), /SLURM_ARRAY_TASK_ID/);
  assert.throws(() => resolveWorkerIndex(undefined, { JOB_COMPLETION_INDEX: 'x' }), /JOB_COMPLETION_INDEX="x" is not a worker index/);
});

test('shard ownership is shard mod count', () => {
  assert.deepEqual(ownedShards(7, 0, 3), [0, 3, 6]);
  assert.deepEqual(ownedShards(7, 2, 3), [2, 5]);
  assert.deepEqual(ownedShards(2, 3, 4), []);
  assert.throws(() => ownedShards(7, 3, 3), /bad worker index 3 of 3/);
});

test('shard claims: fresh numbers in order; a dead worker\'s unfinished claims go first to whoever asks next', () => {
  const c = new ShardClaims();
  assert.deepEqual([c.next(0), c.next(1), c.next(0), c.next(1), c.next(0)], [0, 1, 2, 3, 4]);
  c.finished(0, 0);
  c.finished(1, 1);
  // Worker 0 died holding 2 and 4 (0 it finished): they come back, lowest first, before fresh numbers.
  c.release(0, true);
  assert.deepEqual([c.next(1), c.next(1), c.next(1)], [2, 4, 5]);
  // Worker 1 exited normally: what it still held (passed over as done, or past the end) is not handed out again.
  c.release(1, false);
  assert.equal(c.next(0), 6);
  // A worker that died twice gives back only what it holds now.
  c.finished(0, 6);
  c.release(0, true);
  assert.equal(c.next(2), 7);
});

test('--claim protocol: a claim line out, a shard number or "end" in; anything else is an error', async () => {
  const input = new PassThrough();
  const out: string[] = [];
  const claims = claimsOverStdio(input, (l) => out.push(l));
  input.write('3\n7\n');
  assert.equal(await claims.claim(), 3);
  assert.equal(await claims.claim(), 7);
  assert.deepEqual(out.map((l) => JSON.parse(l)), [{ event: 'claim' }, { event: 'claim' }]);
  input.write('seven\n');
  await assert.rejects(claims.claim(), /--claim: the launching process answered "seven", not a shard number or "end"/);
  input.write('end\n');
  assert.equal(await claims.claim(), undefined);
  claims.close();
  assert.ok(input.destroyed, 'close() lets the process exit although the pipe stays open');
  const closed = new PassThrough();
  const atEof = claimsOverStdio(closed, () => undefined);
  closed.end();
  assert.equal(await atEof.claim(), undefined, 'the end of input means no more shards');
});

test('selftrain worker infer: clear errors for a bad index and a run without a job', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'worker-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const run = pathToFileURL(dir).href;
  const [cmd, args] = cliArgv('worker', 'infer', '--run', run, '--count', '2');
  const bad = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, JOB_COMPLETION_INDEX: '5' } });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /worker index 5 is not below --count 2/);
  const none = spawnSync(cmd, [...args, '--index', '1'], { encoding: 'utf8' });
  assert.equal(none.status, 1);
  assert.match(none.stderr, /no infer job in file:\/\/.*\(has the infer stage started\?\)/);
  const noStage = spawnSync(cmd, [...args, '--index', '1', '--stage', 'infer-9'], { encoding: 'utf8' });
  assert.equal(noStage.status, 2);
  assert.match(noStage.stderr, /infer-9\/job\.json: no infer job/);
});
