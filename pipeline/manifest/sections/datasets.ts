import { z } from 'zod';

/** Where the experiment's images come from. Refined by the datasets work (issue 3). */
export const datasetsSection = z
  .strictObject({
    labeled: z.string().describe('URI or import source of the labeled set'),
    unlabeled: z.string().describe('URI or import source of the unlabeled set'),
    eval: z.string().describe('URI or import source of the evaluation set'),
  })
  .describe('Datasets used by the experiment');
export type DatasetsConfig = z.infer<typeof datasetsSection>;
