import { z } from 'zod';
import { FASHION_MNIST_MODEL, parseModelName, resolveModel, SUPPORTED_DEPTHS, type ModelDefaults, type ResNetRSArch } from '../../model/family.js';

/**
 * A ResNet-RS model choice (issue 4). Only `name` is required; every other field overrides the
 * named model's default, and the defaults depend on the model (released configs, spec §1.5/§1.7),
 * so they are applied by `resolveModelSection()` (pipeline/model/family.ts) rather than by zod:
 * - resnet-rs-50…420: 3 channels, 1000 classes, smallest released resolution and its dropout,
 *   stochastic depth and RandAugment magnitude (e.g. RS-50: 160 px, dropout 0.25, SD 0, RA 10;
 *   RS-350: 256 px, 0.25, 0.1, 15).
 * - `*-small` variants (e.g. resnet-rs-26-w0.25-small, the Fashion-MNIST model): 28 px, 1 channel,
 *   10 classes, dropout 0.1, SD 0, RA magnitude 5.
 */
export const modelSection = z
  .strictObject({
    name: z
      .string()
      .superRefine((name, ctx) => {
        try {
          parseModelName(name);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      })
      .describe(
        `Family member: resnet-rs-<depth>[-w<width>][-small], depth one of ${SUPPORTED_DEPTHS.join(', ')} (released: 50, 101, 152, 200, 270, 350, 420; ` +
          `scaling study: 26, 300, 400). -w<M> multiplies every conv width; -small removes the stem stride for 28/32-px images. Fashion-MNIST on CPU: ${FASHION_MNIST_MODEL}`,
      ),
    depth: z
      .number()
      .int()
      .refine((d) => SUPPORTED_DEPTHS.includes(d), { message: `expected one of ${SUPPORTED_DEPTHS.join(', ')}` })
      .optional()
      .describe('Overrides the depth in the name (block layout from the scaling study)'),
    widthMultiplier: z.number().positive().max(8).optional().describe('Multiplies every conv width, stem included (paper grid: 0.25, 0.5, 1, 1.5, 2); default from the name (1)'),
    imageSize: z.number().int().min(8).max(1024).optional().describe('Input side in pixels; default: the model\'s released training resolution (RS-50: 160) or 28 for -small'),
    inputChannels: z.number().int().min(1).max(4).optional().describe('Image channels: 3 for RGB, 1 for grey; default 3 (1 for -small)'),
    classes: z.number().int().min(2).optional().describe('Output classes; default 1000 (10 for -small). Usually set from the dataset'),
    smallInput: z.boolean().optional().describe('No stride in the first stem conv (for 28x28/32x32 images); default from the name'),
    dropoutRate: z.number().min(0).lt(1).optional().describe('Dropout before the classifier; default per model (0.25; RS-350@320/RS-420: 0.4; -small: 0.1)'),
    stochasticDepthRate: z
      .number()
      .min(0)
      .lt(1)
      .optional()
      .describe('Stochastic-depth base rate; stage i drops with rate x (i+1)/5 (official schedule); default per model (0 up to RS-152, 0.1 from RS-200)'),
    bnMomentum: z
      .number()
      .min(0)
      .lt(1)
      .optional()
      .describe('BatchNorm moving-average momentum (TF convention). Default 0 as the released configs, which rely on the EMA of weights over BN statistics'),
  })
  .describe('ResNet-RS model');
export type ModelConfig = z.infer<typeof modelSection>;

/** The manifest's model choice with every per-model default filled in. */
export function resolveModelSection(cfg: ModelConfig): { arch: ResNetRSArch; defaults: ModelDefaults } {
  return resolveModel(cfg);
}
