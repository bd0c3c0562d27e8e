/**
 * The experiment manifest: one zod schema is the source of the TypeScript types, the defaults,
 * the error messages (with field paths) and the generated manifests/schema.json.
 * Each stage area owns its section under ./sections/; this file holds the run-wide settings.
 *
 * Every object is strict: an unknown key is an error (a typo must not silently fall back to a
 * default). Nested objects with defaults use `.prefault({})` so their inner defaults apply when
 * the whole block is omitted (zod 4's `.default` would return the literal `{}` unparsed).
 */
import { z } from 'zod';
import { datasetsSection } from './sections/datasets.js';
import { modelSection } from './sections/model.js';
import { trainSection, workersSetting } from './sections/train.js';
import { pseudoSection } from './sections/pseudo.js';
import { storeUri } from './uri.js';
import { inferBackendChoices } from '../inference/engine.js';

export const backendChoices = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof backendChoices)[number];

/**
 * Connection settings for `s3://` stores. Credentials are deliberately NOT manifest fields: they
 * come from the standard AWS chain (env, profile, instance role) so manifests can be committed.
 */
export const s3Section = z
  .strictObject({
    endpoint: z
      .url({ protocol: /^https?$/, error: 'expected an http(s) URL such as "http://127.0.0.1:8080"' })
      .optional()
      .describe('S3-compatible endpoint; overrides AWS_ENDPOINT_URL (path-style addressing is used with an endpoint)'),
    region: z.string().min(1).optional().describe('Overrides AWS_REGION (default us-east-1)'),
  })
  .describe('S3 connection settings (credentials come from the standard AWS chain, never from the manifest)');

/** The evaluate stage: which accuracies to report, the optional all-labels baseline, batching. */
export const evaluateSection = z
  .strictObject({
    baseline: z
      .boolean()
      .default(false)
      .describe(
        "Also train the all-labels bound: the student's model, with the teacher's (supervised) recipe and at least the student's steps and training images, on the labeled set plus the unlabeled set's held-back labels: the upper bound of what pseudo-labels can recover",
      ),
    control: z
      .enum(['auto', 'on', 'off'])
      .default('auto')
      .describe(
        "Labeled-only control: the student's model, the teacher's recipe and at least the student's steps and training images, on the labeled set alone. It separates the gain from pseudo-labels from the gain of more training (the same images in fewer, larger steps train a weaker model). auto: the teacher is the control when it has the student's model and at least the student's steps and images (from `steps`, or epochs x (1 + student.ratio)), else a train-control stage runs; on: always a train-control stage; off: none (the report says so)",
      ),
    topK: z.array(z.number().int().positive()).min(1).default([1, 5]).describe('Top-k accuracies to report'),
    batchSize: z.number().int().positive().default(256).describe('Eval images per forward pass'),
    concurrency: z.number().int().positive().default(4).describe('Parallel image decodes (sharp) while evaluating'),
    workers: workersSetting.describe('Workers the eval set is split over with tfjs (decode + forward pass in each); auto: as train.workers. With ONNX Runtime (inferBackend) one session uses every core instead. The result is the same for any count'),
  })
  .describe('Evaluation of teacher, student (and baseline) on the eval set, and the report');

const roleSection = z.strictObject({ model: modelSection, train: trainSection });

export const manifestSchema = z
  .strictObject({
    $schema: z.string().optional().describe('Editor hint; ignored'),
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]*$/i, 'expected letters, digits, ".", "_" or "-", starting with a letter or digit')
      .max(128)
      .describe('Experiment name; also the run prefix in the store'),
    store: storeUri
      .default('file://./runs')
      .describe('Store root: file://<dir> (relative to the current directory) or s3://<bucket>/<prefix>'),
    s3: s3Section.optional(),
    backend: z
      .enum(backendChoices)
      .default('auto')
      .describe('Compute backend: auto tries tensorflow-gpu, tensorflow, wasm, cpu in that order'),
    inferBackend: z
      .enum(inferBackendChoices)
      .default('auto')
      .describe('Inference engine of the infer and evaluate stages: auto uses ONNX Runtime (onnxruntime-node) when it is installed, else tfjs on `backend`; onnx requires it; tfjs always uses `backend`'),
    seed: z.number().int().nonnegative().default(0).describe('Seed for every random choice of the run'),
    iterations: z.number().int().positive().default(1).describe('Noisy Student rounds (the student of round k teaches round k+1)'),
    datasets: datasetsSection,
    teacher: roleSection.describe('The teacher of round 1, trained on labeled data only'),
    student: roleSection.describe('The noised student, trained on labeled + pseudo-labeled data'),
    pseudo: pseudoSection,
    evaluate: evaluateSection.prefault({}),
  })
  .describe('selftrain experiment manifest');

export type Manifest = z.infer<typeof manifestSchema>;
