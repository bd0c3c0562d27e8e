/**
 * The work description a running infer stage leaves in the run (`<stage>/job.json`) so worker
 * processes — local ones or a Kubernetes Indexed Job — need nothing but the run URI and the stage
 * id: `selftrain worker infer --run <uri> --stage <id> --index i --count N`.
 */
import { z } from 'zod';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { integrityErrorIn, isNotFoundError, NotFoundError, StoreError } from '../../pipeline/store/types.js';
import { formatZodIssues } from '../../pipeline/log/errors.js';
import { objectUri } from '../../pipeline/store/uri.js';

export const JOB_KEY = 'job.json';

const archShape = z.looseObject({
  depth: z.number(),
  blocks: z.array(z.number()),
  widthMultiplier: z.number(),
  imageSize: z.number().int().positive(),
  inputChannels: z.number().int().positive(),
  classes: z.number().int().min(2),
  smallInput: z.boolean(),
});

export const inferJobSchema = z.strictObject({
  version: z.literal(1),
  /** Stage id, e.g. `infer-1`; outputs live under `<run>/<stage>/`. */
  stage: z.string().min(1),
  /** URI of the unlabeled dataset (a prefix holding dataset.json). */
  dataset: z.string().min(1),
  /** URI of the teacher checkpoint prefix (holds model.json + weights; EMA weights for a trained teacher). */
  teacher: z.string().min(1),
  /** Id of the checkpoint's weights when the stage started (teacherIdOf): workers refuse other weights. */
  teacherId: z.string().min(1),
  /** The manifest's teacher architecture: a checkpoint that differs is refused. */
  expectedArch: archShape,
  preprocessing: z.strictObject({
    imageSize: z.number().int().positive(),
    channels: z.union([z.literal(1), z.literal(3)]),
    cropFraction: z.number().positive().max(1),
    mean: z.array(z.number()).min(1),
    std: z.array(z.number().positive()).min(1),
  }),
  topK: z.number().int().positive(),
  batchSize: z.number().int().positive(),
  concurrency: z.number().int().positive(),
  backend: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  /**
   * The engine every worker uses (resolved by the stage from the manifest's inferBackend, so all
   * shards of a stage are predicted alike): 'onnx' runs `<teacher>/<onnx.key>`, whose sha256 is
   * pinned here; 'tfjs' runs the tfjs model on `backend`.
   */
  engine: z.enum(['tfjs', 'onnx']).default('tfjs'),
  onnx: z.strictObject({ key: z.string().min(1), sha256: z.string().regex(/^[0-9a-f]{64}$/) }).optional(),
});
export type InferJob = z.infer<typeof inferJobSchema>;

export function jobKey(stage: string): string {
  return `${stage.replace(/\/+$/, '')}/${JOB_KEY}`;
}

export async function writeJob(run: ObjectStore, job: InferJob): Promise<void> {
  await run.put(jobKey(job.stage), JSON.stringify(job, null, 2) + '\n', { contentType: 'application/json' });
}

/**
 * The job currently in the run: undefined when there is none, 'unreadable' when there is one that
 * cannot be used (damaged, not valid JSON, another shape). Store failures are thrown.
 */
export async function readJobIfAny(run: ObjectStore, stage: string): Promise<InferJob | 'unreadable' | undefined> {
  try {
    return await readJob(run, stage);
  } catch (err) {
    if (isNotFoundError(err)) return undefined;
    if (err instanceof StoreError && !integrityErrorIn(err)) throw err;
    return 'unreadable';
  }
}

export async function readJob(run: ObjectStore, stage: string): Promise<InferJob> {
  const key = jobKey(stage);
  const where = objectUri(run, key);
  let text: string;
  try {
    text = (await run.get(key)).toString('utf8');
  } catch (err) {
    if (err instanceof NotFoundError) throw new Error(`${where}: no infer job (is "${stage}" the id of an infer stage that has started in this run?)`, { cause: err });
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where}: not valid JSON: ${(err as Error).message}`);
  }
  const parsed = inferJobSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${where}: ${formatZodIssues(parsed.error)}`);
  return parsed.data;
}

/** Infer stages (ids starting with "infer") of a run that have a job, for `worker infer` without --stage. */
export async function listJobs(run: ObjectStore): Promise<string[]> {
  const all = await run.list('infer');
  return all.filter((o) => o.key.endsWith(`/${JOB_KEY}`) && o.key.split('/').length === 2).map((o) => o.key.split('/')[0]!);
}
