import { z } from 'zod';
import { contradictions, resolveModel, type ResolvedModel } from '../../model/family.js';
import { findModel, FASHION_MNIST_MODEL, MODEL_NAMES, unknownModelMessage } from '../../model/registry.js';

/**
 * A ResNet-RS model choice: a registered name (pipeline/model/registry.ts) and optional overrides.
 * The defaults depend on the model, so `resolveModelSection()` applies them rather than zod:
 * - resnet-rs-50 … resnet-rs-420 and their -i<S> variants: the released tensorflow/tpu config of
 *   that name (e.g. resnet-rs-50: 160 px, dropout 0.25, SD 0, RandAugment 2 @ 10; resnet-rs-350-i320:
 *   320 px, 0.4, 0.1, 15), 3 channels, 1000 classes.
 * - resnet-rs-26-w0.25-small, the Fashion-MNIST model: 28 px, 1 channel, 10 classes, dropout 0.1,
 *   SD 0, RandAugment 2 @ 5.
 * `depth`, `widthMultiplier` and `smallInput` are fixed by the name: they may restate it, and a
 * contradiction is an error on that field.
 */
export const modelSection = z
  .strictObject({
    name: z
      .enum(MODEL_NAMES, { error: (iss) => unknownModelMessage(String(iss.input)) })
      .describe(`Registered model (\`selftrain model list\`): released ResNet-RS configs resnet-rs-50 … resnet-rs-420 (-i<S>: other released resolutions), resnet-rs-300 (scaling-study layout), ${FASHION_MNIST_MODEL} (Fashion-MNIST on CPU)`),
    depth: z.number().int().optional().describe("Restates the named model's depth; a different value is an error (the depth is part of the name)"),
    widthMultiplier: z.number().positive().optional().describe("Restates the named model's width multiplier; a different value is an error"),
    imageSize: z.number().int().min(8).max(1024).optional().describe("Input side in pixels; default: the model's released training resolution (resnet-rs-50: 160; the Fashion-MNIST model: 28)"),
    inputChannels: z.number().int().min(1).max(4).optional().describe('Image channels: 3 for RGB, 1 for grey; default 3 (1 for the Fashion-MNIST model)'),
    classes: z.number().int().min(2).optional().describe('Output classes; default 1000 (10 for the Fashion-MNIST model). Usually set from the dataset'),
    smallInput: z.boolean().optional().describe("Restates the named model's stem (no stride in the first stem conv for 28/32-px images); a different value is an error"),
    dropoutRate: z.number().min(0).lt(1).optional().describe('Dropout before the classifier; default per model (0.25; 320-px RS-350/RS-420: 0.4; Fashion-MNIST model: 0.1)'),
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
  .superRefine((cfg, ctx) => {
    const entry = findModel(cfg.name);
    if (!entry) return; // the name's own issue says so
    for (const issue of contradictions(entry, cfg)) ctx.addIssue({ code: 'custom', path: [issue.field], message: issue.message });
  })
  .describe('ResNet-RS model');
export type ModelConfig = z.infer<typeof modelSection>;

/** The manifest's model choice with every per-model default filled in. */
export function resolveModelSection(cfg: ModelConfig): ResolvedModel {
  return resolveModel(cfg);
}
