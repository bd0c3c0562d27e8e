/**
 * What the external executor tells the user to launch, filled in from the ready-to-apply
 * definitions in infra/ (the same files a person edits by hand, so the two cannot drift apart):
 *   kubernetes  infra/k8s/infer-job.yaml, an Indexed Job (index from JOB_COMPLETION_INDEX)
 *   aws-batch   infra/aws-batch/submit-array.json, an array job of the job definition in
 *               infra/aws-batch/job-definition.json (index from AWS_BATCH_JOB_ARRAY_INDEX)
 *   command     one `selftrain worker infer ... --index i` line per worker
 * Comments of the YAML template are kept; only the fields below are set.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import type { StoreSettings } from '../../../pipeline/store/settings.js';
import { shellQuote, workerArgs } from './command.js';

export interface LaunchSpec {
  runUri: string;
  stage: string;
  count: number;
  /** Job name (Kubernetes: a DNS label; AWS Batch: letters, digits, - and _). */
  name: string;
  image: string;
  gpus: number;
  s3Secret: string;
  jobQueue: string;
  jobDefinition: string;
  /** The run's store settings: the workers get them as flags (Kubernetes, commands) or environment (AWS Batch). */
  storeSettings?: StoreSettings;
}

/** A file of the repository's infra/ directory, found from this module (sources or dist/). */
export function infraFile(rel: string): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'infra', rel);
    if (existsSync(candidate)) return candidate;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`infra/${rel} not found above ${fileURLToPath(import.meta.url)} (is the installation complete?)`);
    dir = up;
  }
}

function need(doc: YAML.Document, at: (string | number)[], file: string): void {
  if (!doc.hasIn(at)) throw new Error(`${file}: no ${at.join('.')} (the template changed: keep the fields the external executor fills in)`);
}

export function renderKubernetesJob(s: LaunchSpec): string {
  const file = infraFile('k8s/infer-job.yaml');
  const doc = YAML.parseDocument(readFileSync(file, 'utf8'));
  const container = ['spec', 'template', 'spec', 'containers', 0];
  for (const at of [['metadata', 'name'], ['spec', 'completions'], ['spec', 'parallelism'], [...container, 'args'], [...container, 'image'], [...container, 'envFrom', 0, 'secretRef', 'name'], [...container, 'resources', 'limits']]) {
    need(doc, at, file);
  }
  doc.setIn(['metadata', 'name'], s.name);
  doc.setIn(['metadata', 'labels', 'selftrain/stage'], s.stage);
  doc.setIn(['spec', 'completions'], s.count);
  doc.setIn(['spec', 'parallelism'], s.count);
  doc.setIn([...container, 'image'], s.image);
  doc.setIn([...container, 'args'], doc.createNode(workerArgs(s.runUri, s.stage, s.count, { storeSettings: s.storeSettings }), { flow: true }));
  doc.setIn([...container, 'envFrom', 0, 'secretRef', 'name'], s.s3Secret);
  doc.setIn([...container, 'resources', 'limits', 'nvidia.com/gpu'], String(s.gpus));
  return doc.toString({ lineWidth: 0 });
}

export interface BatchSubmission {
  jobName: string;
  jobQueue: string;
  jobDefinition: string;
  arrayProperties?: { size: number };
  parameters: { run: string; stage: string; count: string };
  containerOverrides?: { environment: { name: string; value: string }[] };
}

export function renderAwsBatchSubmission(s: LaunchSpec): { input: BatchSubmission; command: string } {
  const file = infraFile('aws-batch/submit-array.json');
  const template = JSON.parse(readFileSync(file, 'utf8')) as Partial<BatchSubmission>;
  if (!template.parameters || !template.arrayProperties) throw new Error(`${file}: no parameters or arrayProperties (the template changed)`);
  const input: BatchSubmission = {
    ...(template as BatchSubmission),
    jobName: s.name,
    jobQueue: s.jobQueue,
    jobDefinition: s.jobDefinition,
    parameters: { run: s.runUri, stage: s.stage, count: String(s.count) },
  };
  // The job definition's command is fixed (Ref::run, Ref::stage, Ref::count): store settings go in as environment.
  const environment = [
    ...(s.storeSettings?.endpoint ? [{ name: 'AWS_ENDPOINT_URL', value: s.storeSettings.endpoint }] : []),
    ...(s.storeSettings?.region ? [{ name: 'AWS_REGION', value: s.storeSettings.region }] : []),
  ];
  if (environment.length > 0) input.containerOverrides = { environment };
  // An array job has 2..10000 children; a single worker is a plain job (the worker then is index 0).
  if (s.count >= 2) input.arrayProperties = { size: s.count };
  else delete input.arrayProperties;
  return { input, command: `aws batch submit-job --cli-input-json ${shellQuote(JSON.stringify(input))}` };
}

export function renderCommands(s: LaunchSpec): string[] {
  return Array.from({ length: s.count }, (_, i) => ['selftrain', ...workerArgs(s.runUri, s.stage, s.count, { index: i, storeSettings: s.storeSettings })].map(shellQuote).join(' '));
}
