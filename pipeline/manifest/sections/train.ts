import { z } from 'zod';

/** Training recipe. Refined by the train stage work (issue 5). */
export const trainSection = z
  .strictObject({
    epochs: z.number().int().positive().default(1),
    batchSize: z.number().int().positive().default(128),
  })
  .describe('Training recipe');
export type TrainConfig = z.infer<typeof trainSection>;
