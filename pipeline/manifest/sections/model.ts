import { z } from 'zod';

/** A ResNet-RS model choice. Refined by the model work (issue 4). */
export const modelSection = z
  .strictObject({
    name: z.string().describe('Model family member, e.g. resnet-rs-50'),
  })
  .describe('ResNet-RS model');
export type ModelConfig = z.infer<typeof modelSection>;
