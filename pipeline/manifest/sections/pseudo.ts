import { z } from 'zod';

/** `pseudo.infer.slurm`: the Slurm job array the `slurm` executor submits (stages/infer/executors/slurm.ts). */
export const slurmSection = z
  .strictObject({
    tasks: z.number().int().positive().max(100_000).optional().describe('Array size N (sbatch --array=0-(N-1)); default one task per shard, at most 1000'),
    partition: z.string().min(1).optional().describe('sbatch --partition'),
    timeLimit: z.string().min(1).optional().describe('sbatch --time per task, e.g. "2:00:00"'),
    cpusPerTask: z.number().int().positive().max(1024).optional().describe('sbatch --cpus-per-task'),
    gpusPerTask: z.number().int().positive().max(64).optional().describe('sbatch --gpus-per-task'),
    memory: z.string().min(1).optional().describe('sbatch --mem per task, e.g. "16G"'),
    extraArgs: z.array(z.string().min(1)).default([]).describe('More sbatch flags as they are, e.g. ["--qos=low", "--account=vision"]'),
    maxResubmits: z.number().int().nonnegative().max(100).default(2).describe('Times one array index whose task ended with shards missing is submitted again'),
    pollSeconds: z.number().positive().max(3600).default(10).describe('Seconds between looks at squeue and the store'),
    command: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe('How a task starts selftrain on the nodes, e.g. ["apptainer", "exec", "selftrain.sif", "selftrain"]; default: this Node binary and this installation (a shared filesystem)'),
    logDir: z.string().min(1).default('slurm-logs').describe('Directory (on the shared filesystem) for the tasks\' output files, relative to the working directory'),
  })
  .describe('Slurm job array for the infer workers');

/** `pseudo.infer.external`: workers started by someone else (Kubernetes, AWS Batch, by hand). */
export const externalSection = z
  .strictObject({
    launcher: z.enum(['kubernetes', 'aws-batch', 'command']).default('kubernetes').describe('What to print: a Kubernetes Indexed Job, an AWS Batch array-job submission, or plain commands'),
    tasks: z.number().int().positive().max(100_000).optional().describe('Number of workers N (completions / array size); default one per shard, at most 1000'),
    image: z.string().min(1).default('selftrain:cpu').describe('Container image (infra/docker) for kubernetes and aws-batch'),
    gpusPerTask: z.number().int().nonnegative().max(64).default(0).describe('GPUs per worker (nvidia.com/gpu, or the Batch GPU resource)'),
    jobQueue: z.string().min(1).default('selftrain').describe('AWS Batch job queue'),
    jobDefinition: z.string().min(1).default('selftrain-infer').describe('AWS Batch job definition (infra/aws-batch/job-definition.json)'),
    s3Secret: z.string().min(1).default('selftrain-s3').describe('Kubernetes Secret holding the S3 settings (infra/k8s/s3-secret.yaml)'),
    pollSeconds: z.number().positive().max(3600).default(10).describe('Seconds between looks at the store'),
  })
  .describe('Workers launched outside selftrain; the stage waits for their outputs');

/** Teacher inference over the unlabeled set (stages/infer). */
export const inferSection = z
  .strictObject({
    topK: z.number().int().min(1).max(1000).default(5).describe('Classes (with probabilities) stored per sample; clipped to the number of classes'),
    batchSize: z.number().int().positive().max(4096).default(32).describe('Images per forward pass'),
    workers: z
      .number()
      .int()
      .positive()
      .max(1024)
      .optional()
      .describe('Worker processes of the local executor; default one per core with tfjs (wasm uses one core per process), with ONNX Runtime as many as fill the cores at `threads` each'),
    threads: z
      .number()
      .int()
      .positive()
      .max(256)
      .optional()
      .describe('ONNX Runtime threads per worker process; default 1 below 8 cores, 2 below 16, else 4 (or cores / workers when workers is set)'),
    concurrency: z
      .number()
      .int()
      .positive()
      .max(1024)
      .default(32)
      .describe('Images queued for decode/resize per worker (sharp via p-queue); at least batchSize lets sharp decode the next batch while the forward pass runs'),
    maxRestarts: z.number().int().nonnegative().max(100).default(3).describe('Times the local executor restarts a worker that died before it finished its shards'),
    // The executor settings have no defaults here on purpose: absent, they stay out of the stage
    // config, and the runner passes them beside it (not hashed): where the workers run does not
    // change what they compute, so switching executor re-runs nothing.
    executor: z.enum(['local', 'slurm', 'external']).optional().describe('Where the workers run: local processes (default), a Slurm job array, or workers started elsewhere (Kubernetes, AWS Batch)'),
    slurm: slurmSection.optional(),
    external: externalSection.optional(),
  })
  .describe('Teacher inference over the unlabeled set');

/**
 * Noisy Student filtering + class balancing (stages/select): Xie et al. 2020, "Self-training with
 * Noisy Student", arXiv 1911.04252 §2, with the defaults of
 * https://github.com/google-research/noisystudent/blob/aac52bf02448f6e45aee6c418f3e588803e4fa43/local_scripts/imagenet/filter_unlabel.sh
 * (--min_threshold=0.3, --num_image=130000).
 */
export const selectSection = z
  .strictObject({
    threshold: z.number().min(0).max(1).default(0.3).describe('Confidence floor: per-class thresholds are searched on a 0.01 grid from 1.00 down to this value'),
    perClass: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Target pseudo-labeled samples per class (Noisy Student: 130000); default: predicted samples / classes'),
    labels: z.enum(['soft', 'hard']).default('soft').describe('soft: teacher probabilities (temperature-sharpened); hard: one-hot top-1'),
    temperature: z.number().positive().max(100).default(1).describe('Soft labels are p^(1/T) renormalised over the stored top-k'),
    seed: z.number().int().nonnegative().optional().describe('Seed of the stochastic rounding of repeat counts; default: the manifest seed'),
  })
  .describe('Confidence filtering and class balancing of pseudo-labels');

/** Teacher inference and Noisy Student selection: the two stages between a teacher and its student. */
export const pseudoSection = z
  .strictObject({
    infer: inferSection.prefault({}),
    select: selectSection.prefault({}),
  })
  .prefault({})
  .describe('Pseudo-labeling: inference and selection');
export type PseudoConfig = z.infer<typeof pseudoSection>;
export type InferConfig = z.infer<typeof inferSection>;
export type SlurmConfig = z.infer<typeof slurmSection>;
export type ExternalConfig = z.infer<typeof externalSection>;
/** The infer settings that only say where workers run: kept out of the stage fingerprint. */
export const INFER_RUNTIME_KEYS = ['executor', 'slurm', 'external'] as const;
export type SelectConfig = z.infer<typeof selectSection>;
