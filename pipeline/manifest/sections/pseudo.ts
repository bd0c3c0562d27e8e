import { z } from 'zod';

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
  })
  .describe('Teacher inference over the unlabeled set');

/** Noisy Student filtering + class balancing (stages/select), spec §4.2. */
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

/** Teacher inference and Noisy Student selection (issue 6). */
export const pseudoSection = z
  .strictObject({
    infer: inferSection.prefault({}),
    select: selectSection.prefault({}),
  })
  .prefault({})
  .describe('Pseudo-labeling: inference and selection');
export type PseudoConfig = z.infer<typeof pseudoSection>;
export type InferConfig = z.infer<typeof inferSection>;
export type SelectConfig = z.infer<typeof selectSection>;
