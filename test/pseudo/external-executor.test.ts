/**
 * The external executor, on the infer fixtures: the stage stores (and prints) what to launch and
 * waits on the store. The test then launches exactly that, locally: the Kubernetes Job's container
 * args with JOB_COMPLETION_INDEX = 0..completions-1, the AWS Batch job definition's command with the
 * submission's parameters and AWS_BATCH_JOB_ARRAY_INDEX = 0..size-1, and the plain commands; the
 * stage then completes with predictions byte-identical to one in-process worker. A shard with a
 * data problem ends the wait with the shard named (from its error object), not a hang.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { externalSection, type ExternalConfig } from '../../pipeline/manifest/sections/pseudo.js';
import { FileStore } from '../../pipeline/store/file-store.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { infraFile, type BatchSubmission } from '../../stages/infer/executors/render.js';
import { runInferStage, type InferStageOptions } from '../../stages/infer/stage.js';
import { cliArgv } from '../helpers/cli.js';
import { needs } from '../helpers/extras.js';
import { testContext } from './context.js';
import { inferConfig, inferOptions, predictionsOf, referencePredictions, writeTeacher, writeUnlabeled } from './fixtures.js';

const NEEDS = needs('fashion-mnist');
let dir: string;
let root: FileStore;
const reference = new Map<string, Buffer>();

function options(external: Partial<ExternalConfig>, over: Partial<InferStageOptions> = {}): InferStageOptions {
  return inferOptions(root, { config: inferConfig({ executor: 'external', external: { ...externalSection.parse({ pollSeconds: 0.2 }), ...external } }), ...over });
}

/** Waits for an object the stage writes, and returns it. */
async function stored(run: ObjectStore, key: string): Promise<string> {
  const end = Date.now() + 60_000;
  for (;;) {
    const body = await run.get(key).catch(() => undefined);
    if (body) return body.toString('utf8');
    if (Date.now() > end) throw new Error(`timed out waiting for ${key}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `selftrain <args>` (the image's entrypoint + args) with extra environment; resolves with its exit code. */
function selftrain(args: string[], env: Record<string, string>): Promise<number | null> {
  const [cmd, argv] = cliArgv(...args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', resolve);
  });
}

/** Words of a line written with POSIX single-quote quoting (what the executor prints). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]!));
}

before(async () => {
  if (NEEDS) return; // every test below skips
  dir = mkdtempSync(join(tmpdir(), 'external-executor-'));
  root = new FileStore(dir);
  await writeUnlabeled(root.sub('data/unlabeled'), { shards: [24, 20, 24, 17, 9] });
  await writeTeacher(root.sub('teacher/model'));
  for (const [k, v] of await referencePredictions(root.sub('runs/reference'), options({}))) reference.set(k, v);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('external, kubernetes: the printed Indexed Job, run pod by pod with JOB_COMPLETION_INDEX, completes the stage', { skip: NEEDS }, async () => {
  const run = root.sub('runs/k8s');
  const lines: string[] = [];
  const stage = runInferStage(testContext(run, root, 'infer-1/', lines), options({ launcher: 'kubernetes', tasks: 3, image: 'registry.example.org/selftrain:gpu', gpusPerTask: 1 }), 1);
  stage.catch(() => undefined);
  const job = YAML.parse(await stored(run, 'infer-1/executor/kubernetes-job.yaml')) as {
    metadata: { name: string };
    spec: { completionMode: string; completions: number; parallelism: number; backoffLimitPerIndex: number; template: { spec: { restartPolicy: string; containers: { image: string; args: string[]; envFrom: { secretRef: { name: string } }[]; resources: { limits: Record<string, string> } }[] } } };
  };
  assert.ok(lines.some((l) => l.includes('apply this Kubernetes Job') && l.includes(job.metadata.name)), 'the Job is printed');
  assert.match(job.metadata.name, /^selftrain-infer-1-[0-9a-f]{8}$/);
  assert.deepEqual([job.spec.completionMode, job.spec.completions, job.spec.parallelism], ['Indexed', 3, 3]);
  assert.equal(job.spec.template.spec.restartPolicy, 'Never');
  const c = job.spec.template.spec.containers[0]!;
  assert.equal(c.image, 'registry.example.org/selftrain:gpu');
  assert.equal(c.resources.limits['nvidia.com/gpu'], '1');
  assert.equal(c.envFrom[0]!.secretRef.name, 'selftrain-s3');
  assert.deepEqual(c.args, ['worker', 'infer', '--run', run.uri, '--stage', 'infer-1', '--count', '3']);
  // The pods, one by one (as a Job with parallelism 1 would run them).
  for (let i = 0; i < job.spec.completions; i++) assert.equal(await selftrain(c.args, { JOB_COMPLETION_INDEX: String(i) }), 0, `pod ${i}`);
  await stage;
  assert.deepEqual(await predictionsOf(run), reference);
});

test('external, aws-batch: the printed submission + the job definition\'s command, with AWS_BATCH_JOB_ARRAY_INDEX, complete the stage', { skip: NEEDS }, async () => {
  const run = root.sub('runs/batch');
  const stage = runInferStage(testContext(run, root, 'infer-1/'), options({ launcher: 'aws-batch', tasks: 2, jobQueue: 'gpu-queue' }), 1);
  stage.catch(() => undefined);
  const script = await stored(run, 'infer-1/executor/aws-batch-submit.sh');
  const words = shellWords(script.split('\n').find((l) => l.startsWith('aws batch submit-job'))!);
  const input = JSON.parse(words[words.indexOf('--cli-input-json') + 1]!) as BatchSubmission;
  assert.deepEqual([input.jobQueue, input.jobDefinition, input.arrayProperties?.size], ['gpu-queue', 'selftrain-infer', 2]);
  const definition = JSON.parse(readFileSync(infraFile('aws-batch/job-definition.json'), 'utf8')) as { jobDefinitionName: string; containerProperties: { command: string[] } };
  assert.equal(definition.jobDefinitionName, input.jobDefinition);
  // AWS Batch substitutes Ref::<name> in the command with the submission's parameters.
  const params = input.parameters as unknown as Record<string, string>;
  const command = definition.containerProperties.command.map((w) => (w.startsWith('Ref::') ? params[w.slice(5)]! : w));
  for (let i = 0; i < input.arrayProperties!.size; i++) assert.equal(await selftrain(command, { AWS_BATCH_JOB_ARRAY_INDEX: String(i) }), 0, `child ${i}`);
  await stage;
  assert.deepEqual(await predictionsOf(run), reference);
});

test('external, commands: a shard with a data problem ends the wait naming it', { skip: NEEDS }, async () => {
  await writeUnlabeled(root.sub('data/holed'), { shards: [5, 5, 5] });
  await root.delete('data/holed/shard-000001.tar');
  const run = root.sub('runs/holed');
  const stage = runInferStage(testContext(run, root, 'infer-1/'), options({ launcher: 'command', tasks: 2 }, { dataset: `${root.uri}/data/holed` }), 1);
  stage.catch(() => undefined);
  const script = await stored(run, 'infer-1/executor/workers.sh');
  const workers = script.split('\n').filter((l) => l.startsWith('selftrain '));
  assert.equal(workers.length, 2);
  const codes = await Promise.all(workers.map((l) => selftrain(shellWords(l.replace(/ &$/, '')).slice(1), {})));
  assert.deepEqual(codes.sort(), [0, 3], 'the worker with the bad shard exits 3');
  await assert.rejects(stage, /1 shard\(s\) of .*data\/holed cannot be processed:\n {2}shard-000001: .*shard-000001\.tar: shard listed in dataset\.json cannot be read/);
});
