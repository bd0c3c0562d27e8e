import { z } from 'zod';

/**
 * Where the experiment's images come from. Each of labeled/unlabeled/eval is one string:
 *  - an import source, imported once into `<store>/<importPrefix>/…` by the import stage:
 *      `fashion-mnist:train|test`   Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)
 *      `idx:<dir>:train|test`       MNIST-style IDX files in <dir>
 *      `folder:<dir>`               image-folder tree <dir>/<class>/<file> (as the unlabeled set: any
 *                                   tree, its folder names ignored)
 *      `images:<dir or URI>`        images in any layout, e.g. a flat directory or a raw S3 prefix
 *                                   `s3://bucket/raw/` (unlabeled only)
 *      `list:<file or URI>`         a text file naming images, one path or URI per line (unlabeled only)
 *      `webdataset:<dir or URI>`    existing WebDataset tars (with .cls, or without for the unlabeled set)
 *  - or an existing dataset (made by `selftrain dataset import`): `s3://…`, `file://…`, or a
 *    prefix relative to the store root.
 * The unlabeled set is imported without labels whatever its source: the run's label space is the
 * labeled set's. When labeled and unlabeled name the same import source, `split.labeledPerClass` divides it:
 * K images per class are labeled, the rest become the unlabeled set (their labels are kept apart
 * as ground truth for judging pseudo-labels, never used for training).
 */
export const IMPORT_SOURCE_RE = /^(fashion-mnist|idx|folder|images|list|webdataset):(.+)$/;

const datasetRef = (what: string) =>
  z
    .string()
    .min(1)
    .describe(
      `${what}: an import source (fashion-mnist:<split>, idx:<dir>:<split>, folder:<dir>, webdataset:<dir|uri>; for the unlabeled set also images:<dir|uri> and list:<file|uri>) or an existing dataset URI / store-relative prefix`,
    );

export const datasetsSection = z
  .strictObject({
    labeled: datasetRef('Labeled training set'),
    unlabeled: datasetRef('Unlabeled set the teacher pseudo-labels'),
    eval: datasetRef('Evaluation set'),
    split: z
      .strictObject({
        labeledPerClass: z.number().int().positive().describe('Images per class kept labeled when labeled and unlabeled are the same source'),
        seed: z.number().int().nonnegative().optional().describe('Seed of the split (default: the manifest seed)'),
      })
      .optional()
      .describe('Split one import source into a labeled subset and an unlabeled remainder'),
    maxSamples: z
      .strictObject({
        labeled: z.number().int().positive().optional().describe('Keep at most this many labeled samples'),
        unlabeled: z.number().int().positive().optional().describe('Keep at most this many unlabeled samples (after the split)'),
        eval: z.number().int().positive().optional().describe('Keep at most this many evaluation samples'),
      })
      .optional()
      .describe('Cap imported sets at the first N samples of their seeded order (a seeded random subset): for CI and smoke runs. Applies to import sources only, not to existing datasets'),
    samplesPerShard: z.number().int().positive().default(2000).describe('Target samples per shard for imported datasets'),
    shuffleSeed: z.number().int().nonnegative().optional().describe('Shuffle imported samples with this seed before sharding (default: the manifest seed)'),
    importPrefix: z.string().default('datasets').describe('Prefix under the store root where imported datasets are kept (shared between runs, so an import happens once)'),
    maxPixels: z.number().int().positive().optional().describe('Refuse images with more decoded pixels than this (decompression-bomb guard; default 64 Mpx)'),
    sizes: z
      .strictObject({
        labeled: z.number().int().nonnegative().optional().describe('Expected labeled samples'),
        unlabeled: z.number().int().nonnegative().optional().describe('Expected unlabeled samples'),
        eval: z.number().int().nonnegative().optional().describe('Expected evaluation samples'),
        bytesPerImage: z.number().positive().optional().describe('Expected stored bytes per sample (encoded image + shard overhead)'),
      })
      .optional()
      .describe('Expected dataset sizes, used only by `selftrain plan` estimates when the datasets cannot be read (e.g. the bucket is not reachable from here); never by the stages'),
  })
  .describe('Datasets used by the experiment');
export type DatasetsConfig = z.infer<typeof datasetsSection>;
