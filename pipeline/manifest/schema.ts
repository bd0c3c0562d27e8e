/**
 * The experiment manifest: one zod schema is the source of the TypeScript types, the defaults,
 * the error messages (with field paths) and the generated manifests/schema.json.
 * Each stage area owns its section under ./sections/.
 */
import { z } from 'zod';
import { datasetsSection } from './sections/datasets.js';
import { modelSection } from './sections/model.js';
import { trainSection } from './sections/train.js';
import { pseudoSection } from './sections/pseudo.js';

export const manifestSchema = z
  .strictObject({
    $schema: z.string().optional().describe('Editor hint; ignored'),
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, 'letters, digits, ".", "_" or "-"').describe('Experiment name; also the run prefix in the store'),
    store: z.string().default('file://./runs').describe('Store root: file://<dir> or s3://<bucket>/<prefix>'),
    seed: z.number().int().nonnegative().default(0),
    iterations: z.number().int().positive().default(1).describe('Noisy Student rounds'),
    datasets: datasetsSection,
    teacher: z.strictObject({ model: modelSection, train: trainSection }),
    student: z.strictObject({ model: modelSection, train: trainSection }),
    pseudo: pseudoSection,
  })
  .describe('selftrain experiment manifest');

export type Manifest = z.infer<typeof manifestSchema>;
