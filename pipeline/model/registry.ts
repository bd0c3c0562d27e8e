/**
 * The model registry: one named entry per ResNet-RS variant with its complete configuration, as
 * timm registers one function per model (timm/models/resnet.py `@register_model def resnetrs50`).
 * A manifest or `selftrain model info` names an entry; the name is looked up here, never parsed.
 *
 * Sources, per field:
 * - Block layouts, stem, SE ratio, BN ε: tensorflow/tpu models/official/resnet/resnet_model.py
 *   (`resnet()` model_params, `resnet_generator`, `BATCH_NORM_EPSILON = 1e-5`),
 *   https://github.com/tensorflow/tpu/blob/0325bfff2db03ff85b9264bc61c8961056f29b0b/models/official/resnet/resnet_model.py
 * - Resolution, dropout, stochastic depth (`drop_connect_rate`), RandAugment, SE ratio, BN momentum
 *   of the released models: the eleven configs resnetrs<D>_i<S>.yaml in
 *   https://github.com/tensorflow/tpu/tree/f276cd7354c938c748ad772e2f0dd3a617920c42/models/official/resnet/resnet_rs/configs
 * - RS-300 (a depth of the paper's scaling study, arXiv 2103.07579 §6, never released as a
 *   checkpoint): block layout [4, 36, 54, 4] from the TF Model Garden ResNet-RS backbone,
 *   `RESNET_SPECS[300]` in
 *   https://github.com/tensorflow/models/blob/3d081c096b89c21c380f030286712ccac1016198/official/vision/beta/modeling/backbones/resnet.py
 *   No released training config exists for it: its defaults are those of its released neighbours
 *   RS-270 and RS-350 (both i256: dropout 0.25, stochastic depth 0.1, RandAugment 2 @ 15).
 *   The scaling study's RS-400 layout appears in no released code (the paper's appendix table was
 *   the only source), so it is not registered.
 * - Eval preprocessing: tensorflow/tpu models/official/resnet/resnet_preprocessing.py (centre crop
 *   with CROP_PADDING 32 at 224 px = fraction 0.875, ImageNet MEAN_RGB / STDDEV_RGB); grey images
 *   use the mean of the three channels' values.
 */

export type StageBlocks = readonly [number, number, number, number];

/** Per-channel normalisation in 0..255 units: (pixel − mean) / std. */
export interface Normalization {
  mean: readonly number[];
  std: readonly number[];
}

/** ImageNet mean/std (resnet_preprocessing.py MEAN_RGB, STDDEV_RGB); grey: the channels' means. */
export const IMAGENET_NORMALIZATION: { rgb: Normalization; grey: Normalization } = {
  rgb: { mean: [0.485 * 255, 0.456 * 255, 0.406 * 255], std: [0.229 * 255, 0.224 * 255, 0.225 * 255] },
  grey: { mean: [0.449 * 255], std: [0.226 * 255] },
};

/** Where an entry's values come from. */
export type EntryStatus =
  /** A released tensorflow/tpu config: every value is the config's. */
  | 'released'
  /** Block layout from released code, training defaults chosen by this project (stated in `source`). */
  | 'layout-only'
  /** This project's own variant (not in the paper). */
  | 'project';

export interface ModelEntry {
  name: string;
  status: EntryStatus;
  /** Upstream source of the values (repository file, or the project's reason). */
  source: string;
  /** Nominal depth (3 × blocks + 2 for bottleneck networks; RS-270 and RS-420 round it). */
  depth: number;
  /** Bottleneck blocks per stage. */
  blocks: StageBlocks;
  /** Multiplies every conv width, stem included. */
  widthMultiplier: number;
  /**
   * Stem: ResNet-D 3×3 convs 32/32/64 with the max pool replaced by a 3×3 stride-2 conv
   * (`use_resnetd_stem`, `replace_stem_max_pool`). `smallInput` drops the first conv's stride,
   * for 28–32 px images.
   */
  smallInput: boolean;
  seRatio: number;
  bnEpsilon: number;
  /** TF convention (moving = m·moving + (1−m)·batch); the released configs use 0 with a weight EMA. */
  bnMomentum: number;
  /** Default (training) resolution. */
  imageSize: number;
  inputChannels: number;
  classes: number;
  dropoutRate: number;
  /** Base rate; stage i (1-based) drops with rate × (i+1)/5. */
  stochasticDepthRate: number;
  randAugment: { layers: number; magnitude: number };
  /** Eval centre-crop fraction and pixel normalisation. */
  preprocessing: { cropFraction: number; normalization: { rgb: Normalization; grey: Normalization } };
}

const TPU_CONFIGS = 'tensorflow/tpu@f276cd7 models/official/resnet/resnet_rs/configs';
/** What every released config shares (resnetrs*.yaml: se_ratio 0.25, bn_momentum 0, 1000 classes). */
const RS_COMMON = {
  widthMultiplier: 1,
  smallInput: false,
  seRatio: 0.25,
  bnEpsilon: 1e-5,
  bnMomentum: 0,
  inputChannels: 3,
  classes: 1000,
  preprocessing: { cropFraction: 0.875, normalization: IMAGENET_NORMALIZATION },
} as const;

const LAYOUTS = {
  50: [3, 4, 6, 3],
  101: [3, 4, 23, 3],
  152: [3, 8, 36, 3],
  200: [3, 24, 36, 3],
  270: [4, 29, 53, 4],
  300: [4, 36, 54, 4],
  350: [4, 36, 72, 4],
  420: [4, 44, 87, 4],
} as const satisfies Record<number, StageBlocks>;

function released(depth: keyof typeof LAYOUTS, imageSize: number, dropoutRate: number, stochasticDepthRate: number, magnitude: number, named = false): ModelEntry {
  return {
    name: named ? `resnet-rs-${depth}-i${imageSize}` : `resnet-rs-${depth}`,
    status: 'released',
    source: `${TPU_CONFIGS}/resnetrs${depth}_i${imageSize}.yaml`,
    depth,
    blocks: LAYOUTS[depth],
    imageSize,
    dropoutRate,
    stochasticDepthRate,
    randAugment: { layers: 2, magnitude },
    ...RS_COMMON,
  };
}

/**
 * The Fashion-MNIST model for a 2-core CPU: bottleneck [2,2,2,2] (timm's resnet26 layout,
 * huggingface/pytorch-image-models@00c5be7 timm/models/resnet.py), width 0.25 (stem 8/8/16, stage
 * outputs 64/128/256/512), no stride in the first stem conv (28 → 28 → 14; stages at 14/7/4/2),
 * grey 28 px input, 10 classes, light regularisation for 1,000 labels.
 */
export const FASHION_MNIST_MODEL = 'resnet-rs-26-w0.25-small';

/**
 * A plain `resnet-rs-<D>` is the smallest released resolution of that depth; `resnet-rs-<D>-i<S>`
 * the other released configs (the yaml file names).
 */
export const MODEL_REGISTRY: readonly ModelEntry[] = [
  released(50, 160, 0.25, 0, 10),
  released(101, 160, 0.25, 0, 10),
  released(101, 192, 0.25, 0, 15, true),
  released(152, 192, 0.25, 0, 15),
  released(152, 224, 0.25, 0, 15, true),
  released(152, 256, 0.25, 0, 15, true),
  released(200, 256, 0.25, 0.1, 15),
  released(270, 256, 0.25, 0.1, 15),
  {
    ...released(300, 256, 0.25, 0.1, 15),
    status: 'layout-only',
    source:
      'layout: tensorflow/models@3d081c0 official/vision/beta/modeling/backbones/resnet.py RESNET_SPECS[300]; ' +
      'training defaults: those of the released RS-270 and RS-350 i256 configs (no RS-300 config was released)',
  },
  released(350, 256, 0.25, 0.1, 15),
  released(350, 320, 0.4, 0.1, 15, true),
  released(420, 320, 0.4, 0.1, 15),
  {
    name: FASHION_MNIST_MODEL,
    status: 'project',
    source: "this project's Fashion-MNIST model: timm resnet26 layout (pytorch-image-models@00c5be7 timm/models/resnet.py), RS stem/SE/shortcut, width 0.25, stride-1 stem for 28 px",
    depth: 26,
    blocks: [2, 2, 2, 2],
    widthMultiplier: 0.25,
    smallInput: true,
    seRatio: 0.25,
    bnEpsilon: 1e-5,
    bnMomentum: 0,
    imageSize: 28,
    inputChannels: 1,
    classes: 10,
    dropoutRate: 0.1,
    stochasticDepthRate: 0,
    randAugment: { layers: 2, magnitude: 5 },
    preprocessing: { cropFraction: 0.875, normalization: IMAGENET_NORMALIZATION },
  },
];

export const MODEL_NAMES = MODEL_REGISTRY.map((e) => e.name) as [string, ...string[]];

const byName = new Map(MODEL_REGISTRY.map((e) => [e.name, e]));

/** The registered entry of that name, or undefined. */
export function findModel(name: string): ModelEntry | undefined {
  return byName.get(name);
}

/** "unknown model …" with every registered name, for manifest and CLI errors alike. */
export function unknownModelMessage(name: string): string {
  return `unknown model name "${name}": registered models are ${MODEL_NAMES.join(', ')} (\`selftrain model list\` shows them with their configs)`;
}

/** The registered entry of that name; throws naming every registered model when there is none. */
export function lookupModel(name: string): ModelEntry {
  const entry = findModel(name);
  if (!entry) throw new Error(unknownModelMessage(name));
  return entry;
}
