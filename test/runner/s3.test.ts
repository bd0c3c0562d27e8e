/**
 * The runner against the real S3-compatible endpoint (local Swift, see test/helpers/s3.ts): a run
 * killed with SIGKILL mid-stage resumes and commits every unit exactly once, and a second run
 * of the finished manifest does nothing. Skips loudly without Swift; fails under CI=true.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { s3TestEnv, s3TestStore } from '../helpers/s3.js';
import { readJournal, runToy, tempDir, toyManifest, writeManifest } from './helpers.js';

const stageIds = ['import', 'train-teacher-1', 'infer-1', 'select-1', 'train-student-1', 'evaluate'];

test('on S3: SIGKILL mid-stage, resume, every unit committed once; then up to date', async (t) => {
  const store = await s3TestStore(t);
  if (!store) return;
  const env = (await s3TestEnv())!;
  const bucket = /^s3:\/\/([^/]+)/.exec(store.uri)![1]!;
  const dir = tempDir(t, 'runner-s3');
  const journal = path.join(dir, 'journal.log');
  // The endpoint comes from the manifest's s3 block; keys from the standard AWS environment.
  const manifest = writeManifest(dir, toyManifest({ store: `s3://${bucket}/runs`, s3: { endpoint: env.endpoint, region: env.region } }));
  const units = 6;

  // kill -9 right after train-teacher-1's second unit is committed to S3: mid-stage, deterministically.
  const killed = await runToy(dir, ['run', manifest], { units, journal, killAfterPut: '**/train-teacher-1/unit-0001.json' });
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  assert.ok(await store.head('runs/toy/lease'), 'the killed runner left its lease');
  assert.deepEqual((await store.list('runs/toy/train-teacher-1/unit-')).map((o) => o.key.slice(-14)), ['unit-0000.json', 'unit-0001.json']);

  const second = await runToy(dir, ['run', manifest], { units, unitMs: 1, journal });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /\[train-teacher-1\] resuming: interrupted while running/);
  assert.doesNotMatch(second.stderr, /testing/, 'the secret key never appears in logs');

  const all = readJournal(journal);
  for (const id of stageIds) {
    const objs: string[] = (await store.list(`runs/toy/${id}/unit-`)).map((o) => o.key);
    assert.equal(objs.length, units, `${id}: ${objs.join(', ')}`);
    for (const key of objs) {
      const { unit, execId } = JSON.parse((await store.get(key)).toString()) as { unit: number; execId: string };
      assert.ok(all.some((e) => e.event === 'start' && e.stage === id && e.unit === unit && e.execId === execId));
    }
    const dones = all.filter((e) => e.event === 'done' && e.stage === id).map((e) => e.unit);
    assert.equal(new Set(dones).size, dones.length, `${id}: a unit was committed twice`);
    assert.equal(JSON.parse((await store.get(`runs/toy/state/${id}.json`)).toString()).status, 'done');
  }
  assert.equal(await store.head('runs/toy/lease'), undefined, 'lease released');

  const third = await runToy(dir, ['run', manifest], { units, journal });
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stderr, /everything is up to date: 6 stages, nothing to do/);
  t.diagnostic(`up-to-date rerun on S3: ${third.ms} ms`);
  if (process.env.SHOW_RUNNER_OUTPUT) console.log(second.stderr, second.ms, third.stderr);

  const status = await runToy(dir, ['status', `s3://${bucket}/runs/toy`, '--endpoint', env.endpoint]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /train-teacher-1\s+done\s+2 /);
});
