/** The runner in-process (runStages, planStages) over a real file:// store. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { openStore } from '../../pipeline/store/open.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { runStages } from '../../pipeline/runner/run-stages.js';
import { planStages } from '../../pipeline/runner/plan.js';
import type { StageContext, StageDefinition } from '../../pipeline/runner/stage.js';
import { createLogger } from '../../pipeline/log/logger.js';
import { lineProgressFactory } from '../../pipeline/log/progress.js';
import { canonicalJson, stageFingerprint } from '../../pipeline/runner/fingerprint.js';
import { tempDir } from './helpers.js';

function setup(t: { after(fn: () => void): void }) {
  const dir = tempDir(t, 'inproc');
  const root = openStore(`file://${dir}`);
  const run = root.sub('exp');
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l) });
  return { dir, root, run, lines, log, progress: lineProgressFactory(log, 60_000) };
}

/** A stage writing one output; counts its executions. */
function stage(id: string, deps: string[], config: unknown, counter: Map<string, number>, extra: Partial<StageDefinition> = {}): StageDefinition {
  return {
    id,
    kind: 'test',
    deps,
    config,
    outputs: [`${id}/out.txt`],
    async run(ctx: StageContext) {
      counter.set(id, (counter.get(id) ?? 0) + 1);
      for (const d of deps) await ctx.run.get(`${d}/out.txt`); // inputs must exist
      await ctx.run.put(`${ctx.outPrefix}out.txt`, `${id} ${canonicalJson(config)}`);
      return { summary: { wrote: 1 } };
    },
    ...extra,
  };
}

const ran = (outcome: Awaited<ReturnType<typeof runStages>>) => outcome.stages.filter((s) => s.outcome === 'ran').map((s) => s.id);

test('a deleted output makes its stage and everything downstream run again', async (t) => {
  const { run, root, log, progress } = setup(t);
  const n = new Map<string, number>();
  const chain = () => [stage('a', [], { x: 1 }, n), stage('b', ['a'], { y: 1 }, n), stage('c', [], { z: 1 }, n), stage('d', ['b', 'c'], {}, n)];
  assert.deepEqual(ran(await runStages({ stages: chain(), run, root, log, progress })), ['a', 'b', 'c', 'd']);
  await run.delete('b/out.txt');
  const plan = await planStages(chain(), run);
  assert.deepEqual(
    plan.map((p) => [p.id, p.state, p.reason.replace(/\(.*\)/, '()')]),
    [
      ['a', 'done', 'up to date ()'],
      ['b', 'stale', 'output b/out.txt is missing'],
      ['c', 'done', 'up to date ()'],
      ['d', 'stale', 'upstream b will re-run'],
    ],
  );
  const second = await runStages({ stages: chain(), run, root, log, progress });
  assert.deepEqual(ran(second), ['b', 'd'], 'b re-ran (same fingerprint, new runId) so d is stale too');
  assert.deepEqual(Object.fromEntries(n), { a: 1, b: 2, c: 1, d: 2 });
});

test('fingerprints ignore key order and change with config, code version and upstream', () => {
  const n = new Map<string, number>();
  const a = stageFingerprint(stage('s', [], { p: 1, q: { r: [1, 2] } }, n), {});
  assert.equal(a, stageFingerprint(stage('s', [], { q: { r: [1, 2] }, p: 1 }, n), {}));
  assert.notEqual(a, stageFingerprint(stage('s', [], { p: 2, q: { r: [1, 2] } }, n), {}));
  assert.notEqual(a, stageFingerprint(stage('s', [], { p: 1, q: { r: [1, 2] } }, n, { version: '2' }), {}));
  assert.notEqual(a, stageFingerprint(stage('s', [], { p: 1, q: { r: [1, 2] } }, n), { up: 'f' }));
  assert.throws(() => canonicalJson({ lr: NaN }), /cannot fingerprint \(config\)\.lr: NaN is not a finite number/);
});

test('bad chains are refused before anything runs', async (t) => {
  const { run, root, log, progress } = setup(t);
  const n = new Map<string, number>();
  await assert.rejects(runStages({ stages: [stage('a', ['b'], {}, n), stage('b', [], {}, n)], run, root, log, progress }), /stage "a" depends on "b", which comes after it/);
  await assert.rejects(runStages({ stages: [stage('a', ['zz'], {}, n)], run, root, log, progress }), /depends on "zz", which does not exist/);
  await assert.rejects(runStages({ stages: [stage('a', [], {}, n), stage('a', [], {}, n)], run, root, log, progress }), /duplicate stage id "a"/);
  assert.equal(n.size, 0);
  assert.equal(await run.head('lease'), undefined, 'no lease left behind');
});

test('a stage that finishes without its declared output fails with a clear message', async (t) => {
  const { run, root, log, progress, lines } = setup(t);
  const lazy: StageDefinition = { id: 'lazy', kind: 'test', deps: [], config: {}, outputs: ['lazy/model.json'], run: async () => {} };
  const out = await runStages({ stages: [lazy], run, root, log, progress });
  assert.equal(out.status, 'failed');
  assert.equal(out.error, 'stage finished but its declared output is missing: lazy/model.json');
  assert.ok(lines.some((l) => l.includes('[lazy] error: failed: stage finished but its declared output is missing')));
});

test('secrets never reach logs or stage records', async (t) => {
  const { dir, run, root, log, progress, lines } = setup(t);
  const saved = process.env.AWS_SECRET_ACCESS_KEY;
  process.env.AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY';
  t.after(() => {
    if (saved === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    else process.env.AWS_SECRET_ACCESS_KEY = saved;
  });
  const leaky: StageDefinition = {
    id: 'leaky',
    kind: 'test',
    deps: [],
    config: { endpoint: 'http://user:hunter2@example.com', sessionToken: 'tok-123456' },
    outputs: [],
    async run(ctx) {
      ctx.log.info(`using key ${process.env.AWS_SECRET_ACCESS_KEY} and id AKIAIOSFODNN7EXAMPLE`, { password: 'pw-42', nested: { apiKey: 'k-9' } });
      const p = ctx.progress('x', 1);
      p.update(1, { token: 'tok-xyz' });
      p.stop();
      throw new Error(`auth failed for secret ${process.env.AWS_SECRET_ACCESS_KEY}`);
    },
  };
  const out = await runStages({ stages: [leaky], run, root, log, progress });
  assert.equal(out.status, 'failed');
  const record = readFileSync(path.join(dir, 'exp/state/leaky.json'), 'utf8');
  const everything = lines.join('\n') + record + out.error;
  for (const secret of ['wJalrXUtnFEMI', 'AKIAIOSFODNN7EXAMPLE', 'hunter2', 'tok-123456', 'pw-42', 'k-9', 'tok-xyz']) {
    assert.ok(!everything.includes(secret), `leaked ${secret}`);
  }
  assert.match(record, /"error": "auth failed for secret \[redacted\]"/);
  assert.match(record, /"endpoint": "http:\/\/user:\[redacted\]@example.com"/);
});

test('the backend is initialised only when a stage that needs it runs, and recorded', async (t) => {
  const { dir, run, root, log, progress } = setup(t);
  let inits = 0;
  const initBackend = async () => {
    inits++;
    return { name: 'cpu', summary: 'backend cpu (test)' };
  };
  let seen: string | undefined;
  const tf: StageDefinition = {
    id: 'tf',
    kind: 'test',
    deps: [],
    config: {},
    outputs: [],
    needsBackend: true,
    run: async (ctx) => {
      seen = ctx.backend;
    },
  };
  await runStages({ stages: [tf], run, root, log, progress, initBackend });
  assert.equal(inits, 1);
  assert.equal(seen, 'cpu');
  assert.equal(JSON.parse(readFileSync(path.join(dir, 'exp/state/tf.json'), 'utf8')).backend, 'cpu');
  const again = await runStages({ stages: [tf], run, root, log, progress, initBackend });
  assert.ok(again.upToDate);
  assert.equal(inits, 1, 'an up-to-date run does not load the backend');
});

test('an unreadable record is reported and the stage runs again', async (t) => {
  const { run, root, log, progress, lines } = setup(t);
  const n = new Map<string, number>();
  await runStages({ stages: [stage('a', [], {}, n)], run, root, log, progress });
  await (run as ObjectStore).put('state/a.json', '{"format": 1, "stage": "a"');
  const out = await runStages({ stages: [stage('a', [], {}, n)], run, root, log, progress });
  assert.deepEqual(ran(out), ['a']);
  assert.ok(lines.some((l) => l.includes('[a] running: record state/a.json is not valid JSON; running it again')));
});

test("ctx.stageRuns(): the chain's records in chain order, own entry running, other runs' records left out", async (t) => {
  const { run, root, log, progress } = setup(t);
  const n = new Map<string, number>();
  // A record of a stage that is not in this chain (e.g. a round dropped from the manifest).
  await run.put('state/gone.json', JSON.stringify({ format: 1, stage: 'gone', kind: 'test', status: 'done', fingerprint: 'f', version: '1', config: {}, deps: {}, inputs: {}, outputs: [], host: 'h', pid: 1, attempts: 1, startedAt: '2000-01-01T00:00:00.000Z' }));
  let seen: Awaited<ReturnType<StageContext['stageRuns']>> = [];
  const last = stage('c', ['a', 'b'], {}, n, {
    run: async (ctx) => {
      seen = await ctx.stageRuns();
      await ctx.run.put('c/out.txt', 'c');
    },
  });
  const out = await runStages({ stages: [stage('a', [], {}, n), stage('b', ['a'], {}, n), last], run, root, log, progress });
  assert.equal(out.status, 'done');
  assert.deepEqual(seen.map((r) => [r.stage, r.status, r.attempts]), [['a', 'done', 1], ['b', 'done', 1], ['c', 'running', 1]]);
  assert.ok(seen.slice(0, 2).every((r) => typeof r.durationMs === 'number' && typeof r.totalMs === 'number'), 'finished stages carry their times');
  assert.equal(seen[2]!.durationMs, undefined);
});

test("openRun passes the manifest's s3 settings explicitly and leaves process.env alone", async () => {
  const { parseManifest } = await import('../../pipeline/manifest/load.js');
  const { openRun } = await import('../../pipeline/runner/open-run.js');
  const before = { url: process.env.AWS_ENDPOINT_URL, region: process.env.AWS_REGION };
  const m = parseManifest(JSON.stringify({
    name: 'envless',
    store: 's3://some-bucket/runs',
    s3: { endpoint: 'http://127.0.0.1:9', region: 'eu-north-9' },
    datasets: { labeled: 'fashion-mnist:train', unlabeled: 'fashion-mnist:train', eval: 'fashion-mnist:test', split: { labeledPerClass: 1 } },
    teacher: { model: { name: 'resnet-rs-26-w0.25-small' } },
    student: { model: { name: 'resnet-rs-26-w0.25-small' } },
  }), 'envless.json');
  const opened = await openRun(m, undefined);
  try {
    assert.deepEqual(opened.storeSettings, { endpoint: 'http://127.0.0.1:9', region: 'eu-north-9' });
    assert.deepEqual({ url: process.env.AWS_ENDPOINT_URL, region: process.env.AWS_REGION }, before);
  } finally {
    await opened.root.close();
  }
});
