import { z } from 'zod';

/** Teacher inference and Noisy Student selection. Refined by the pseudo-labeling work (issue 6). */
export const pseudoSection = z
  .strictObject({
    threshold: z.number().min(0).max(1).default(0.3),
    perClass: z.number().int().positive().optional(),
  })
  .describe('Pseudo-labeling: inference and selection');
export type PseudoConfig = z.infer<typeof pseudoSection>;
