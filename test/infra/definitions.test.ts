/**
 * The ready-to-apply definitions in infra/ (no container engine, Kubernetes or AWS account exists
 * on these machines, so they are checked here instead of applied): each parses, and holds what the
 * workers rely on — the worker command with --run/--stage/--count and no fixed index, the index
 * variable its orchestrator sets, the S3 settings, no retry on the exit codes that mean "a retry
 * cannot help" (the worker's own constants), GPUs where asked. The Dockerfile builds the package
 * on Node 24 and the GPU image on the CUDA/cuDNN that libtensorflow 2.9.1 needs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { INDEX_VARIABLES } from '../../pipeline/cli/commands/worker.js';
import { DATA_ERROR_EXIT, SETUP_ERROR_EXIT } from '../../stages/infer/executor.js';
import { infraFile, renderAwsBatchSubmission, renderKubernetesJob, type LaunchSpec } from '../../stages/infer/executors/render.js';

const read = (rel: string) => readFileSync(infraFile(rel), 'utf8');

/** The worker command after `selftrain`: `worker infer --run R --stage S --count N`, no --index. */
function checkWorkerArgs(args: string[], where: string): { run: string; stage: string; count: string } {
  assert.deepEqual(args.slice(0, 2), ['worker', 'infer'], `${where}: runs the infer worker`);
  const value = (flag: string) => {
    const i = args.indexOf(flag);
    assert.ok(i > 0 && args[i + 1] !== undefined, `${where}: ${flag} <value>`);
    return args[i + 1]!;
  };
  assert.ok(!args.includes('--index'), `${where}: the index comes from the orchestrator, not a fixed --index`);
  return { run: value('--run'), stage: value('--stage'), count: value('--count') };
}

interface K8sJob {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    completionMode: string;
    completions: number;
    parallelism: number;
    backoffLimitPerIndex: number;
    podFailurePolicy: { rules: { action: string; onExitCodes: { containerName: string; operator: string; values: number[] } }[] };
    template: { spec: { restartPolicy: string; containers: { name: string; image: string; args: string[]; envFrom: { secretRef: { name: string } }[]; resources: { limits: Record<string, string> } }[] } };
  };
}

function checkK8sJob(job: K8sJob, where: string): void {
  assert.deepEqual([job.apiVersion, job.kind], ['batch/v1', 'Job'], where);
  // Indexed: Kubernetes sets JOB_COMPLETION_INDEX in each pod, the first variable the worker reads.
  assert.equal(job.spec.completionMode, 'Indexed', where);
  assert.equal(INDEX_VARIABLES[0], 'JOB_COMPLETION_INDEX');
  const c = job.spec.template.spec.containers[0]!;
  const { count } = checkWorkerArgs(c.args, where);
  assert.equal(job.spec.completions, Number(count), `${where}: completions = --count`);
  assert.ok(job.spec.parallelism >= 1 && job.spec.parallelism <= job.spec.completions, `${where}: parallelism`);
  assert.ok(job.spec.backoffLimitPerIndex >= 1, `${where}: per-index retries`);
  assert.equal(job.spec.template.spec.restartPolicy, 'Never', `${where}: backoffLimitPerIndex needs restartPolicy Never`);
  const rule = job.spec.podFailurePolicy.rules.find((r) => r.action === 'FailIndex')!;
  assert.equal(rule.onExitCodes.containerName, c.name);
  assert.deepEqual([...rule.onExitCodes.values].sort(), [SETUP_ERROR_EXIT, DATA_ERROR_EXIT].sort(), `${where}: no retry for exit ${SETUP_ERROR_EXIT} and ${DATA_ERROR_EXIT}`);
  assert.ok(c.envFrom.some((e) => e.secretRef.name), `${where}: S3 settings from a Secret`);
  assert.ok('nvidia.com/gpu' in c.resources.limits, `${where}: a GPU limit`);
}

test('k8s: the Indexed Job template and the S3 Secret it reads', () => {
  const job = YAML.parse(read('k8s/infer-job.yaml')) as K8sJob;
  checkK8sJob(job, 'infra/k8s/infer-job.yaml');
  const secret = YAML.parse(read('k8s/s3-secret.yaml')) as { kind: string; metadata: { name: string }; stringData: Record<string, string> };
  assert.equal(secret.kind, 'Secret');
  assert.equal(secret.metadata.name, job.spec.template.spec.containers[0]!.envFrom[0]!.secretRef.name);
  for (const k of ['AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) assert.ok(k in secret.stringData, `secret holds ${k}`);
});

const spec: LaunchSpec = { runUri: 's3://b/runs/x', stage: 'infer-2', count: 12, name: 'selftrain-infer-2-0a1b2c3d', image: 'selftrain:gpu', gpus: 1, s3Secret: 'my-s3', jobQueue: 'q', jobDefinition: 'selftrain-infer-gpu' };

test('k8s: the Job the external executor prints is the template filled in, comments kept', () => {
  const text = renderKubernetesJob(spec);
  assert.match(text, /# The infer stage's workers as a Kubernetes Indexed Job/);
  const job = YAML.parse(text) as K8sJob;
  checkK8sJob(job, 'rendered Job');
  assert.deepEqual(checkWorkerArgs(job.spec.template.spec.containers[0]!.args, 'rendered'), { run: 's3://b/runs/x', stage: 'infer-2', count: '12' });
  assert.deepEqual([job.metadata.name, job.spec.completions, job.spec.parallelism], ['selftrain-infer-2-0a1b2c3d', 12, 12]);
  assert.equal(job.spec.template.spec.containers[0]!.resources.limits['nvidia.com/gpu'], '1');
  assert.equal(job.spec.template.spec.containers[0]!.envFrom[0]!.secretRef.name, 'my-s3');
});

interface BatchDefinition {
  jobDefinitionName: string;
  type: string;
  parameters: Record<string, string>;
  retryStrategy: { attempts: number; evaluateOnExit: { onExitCode: string; action: string }[] };
  containerProperties: { image: string; command: string[]; resourceRequirements: { type: string; value: string }[]; environment: { name: string; value: string }[]; jobRoleArn: string };
}

test('aws-batch: job definitions (CPU, GPU) and the array submission', () => {
  const submit = JSON.parse(read('aws-batch/submit-array.json')) as { jobDefinition: string; arrayProperties: { size: number }; parameters: Record<string, string> };
  for (const [file, gpu] of [['aws-batch/job-definition.json', false], ['aws-batch/job-definition-gpu.json', true]] as const) {
    const def = JSON.parse(read(file)) as BatchDefinition;
    assert.equal(def.type, 'container', file);
    // Batch fills Ref::<name> from the submission's parameters; every one needs a default here.
    const args = def.containerProperties.command.map((w) => {
      if (!w.startsWith('Ref::')) return w;
      assert.ok(w.slice(5) in def.parameters, `${file}: parameter ${w.slice(5)} has a default`);
      assert.ok(w.slice(5) in submit.parameters, `${file}: the submission sets ${w.slice(5)}`);
      return submit.parameters[w.slice(5)]!;
    });
    const { count } = checkWorkerArgs(args, file);
    assert.equal(submit.arrayProperties.size, Number(count), 'array size = --count');
    // Array children get AWS_BATCH_JOB_ARRAY_INDEX, which the worker reads.
    assert.ok((INDEX_VARIABLES as readonly string[]).includes('AWS_BATCH_JOB_ARRAY_INDEX'));
    const exits = Object.fromEntries(def.retryStrategy.evaluateOnExit.map((e) => [e.onExitCode, e.action]));
    assert.equal(exits[String(SETUP_ERROR_EXIT)], 'EXIT', `${file}: no retry on ${SETUP_ERROR_EXIT}`);
    assert.equal(exits[String(DATA_ERROR_EXIT)], 'EXIT', `${file}: no retry on ${DATA_ERROR_EXIT}`);
    assert.equal(exits['*'], 'RETRY', `${file}: other failures are retried`);
    assert.ok(def.containerProperties.environment.some((e) => e.name === 'AWS_REGION'), `${file}: AWS_REGION`);
    assert.match(def.containerProperties.jobRoleArn, /^arn:aws:iam::\d{12}:role\//, `${file}: S3 access through the job role`);
    const resources = Object.fromEntries(def.containerProperties.resourceRequirements.map((r) => [r.type, r.value]));
    assert.equal('GPU' in resources, gpu, `${file}: GPU resource`);
    assert.match(def.containerProperties.image, gpu ? /:gpu$/ : /:cpu$/);
  }
  const rendered = renderAwsBatchSubmission(spec).input;
  assert.deepEqual([rendered.jobDefinition, rendered.arrayProperties?.size, rendered.parameters], ['selftrain-infer-gpu', 12, { run: 's3://b/runs/x', stage: 'infer-2', count: '12' }]);
  assert.equal(renderAwsBatchSubmission({ ...spec, count: 1 }).input.arrayProperties, undefined, 'an array job needs 2+ children: one worker is a plain job');
});

test('docker: Node 24 for the package, CUDA 11.2 + cuDNN 8 for tfjs-node-gpu 4.22, selftrain as entrypoint', () => {
  const text = read('docker/Dockerfile');
  const stages = new Map([...text.matchAll(/^FROM (\S+)(?: AS (\w+))?$/gm)].map((m) => [m[2] ?? '', m[1]!]));
  assert.deepEqual([...stages.keys()], ['build', 'app', 'cpu', 'gpu']);
  const node = /^ARG NODE_VERSION=(\S+)$/m.exec(text)?.[1];
  assert.match(node ?? '', /^24\./);
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's ARG reference, verbatim
  const nodeImage = 'node:${NODE_VERSION}-bookworm-slim';
  assert.equal(stages.get('build'), nodeImage);
  assert.equal(stages.get('cpu'), nodeImage);
  assert.match(stages.get('gpu')!, /^nvidia\/cuda:11\.2\.\d+-cudnn8-runtime-/);
  assert.match(text, /npm rebuild @tensorflow\/tfjs-node-gpu/);
  const pkg = JSON.parse(readFileSync(infraFile('../package.json'), 'utf8')) as { optionalDependencies: Record<string, string>; bin: Record<string, string> };
  assert.match(pkg.optionalDependencies['@tensorflow/tfjs-node-gpu']!, /^\^?4\.22\./);
  assert.equal((text.match(/^ENTRYPOINT \["selftrain"\]$/gm) ?? []).length, 2, 'cpu and gpu run selftrain');
  assert.ok(text.includes(`ln -s /opt/selftrain/${pkg.bin.selftrain} /usr/local/bin/selftrain`), 'the package\'s bin is what selftrain runs');
});
