/**
 * The ResNet-RS family: block layouts, per-model training defaults and the resolution of a model
 * choice (name + overrides) into a complete architecture description (`ResNetRSArch`).
 *
 * Sources (see /work/shared/resnet-rs-spec.md): block layouts §1.5 (tensorflow/tpu resnet_model.py),
 * per-model dropout / stochastic depth / RandAugment §1.7 (released TF1 configs), resolutions §1.5.
 * Where a model was released at several resolutions, the defaults are the smallest released config.
 */

export type StageBlocks = readonly [number, number, number, number];

/** Block layouts. 50…420 are the released models (tensorflow/tpu `resnet()` depth table). */
export const RELEASED_DEPTHS = [50, 101, 152, 200, 270, 350, 420] as const;
/**
 * Depths of the paper's scaling study (§6: 26, 50, 101, 200, 300, 350, 400). 26, 50, 101, 200, 350
 * are exact (26 = [2,2,2,2], the usual bottleneck ResNet-26; 3·8+2 = 26). The paper's appendix
 * table with the 300 and 400 layouts could not be retrieved (spec §6.9); 300 = [4,36,54,4] (296
 * layers) and 400 = [6,48,72,6] (398 layers) are our choice (recalled from the appendix, UNVERIFIED),
 * nominal in the same way RS-270 (272 layers) and RS-420 (419 layers) are.
 */
export const BLOCK_LAYOUTS: Readonly<Record<number, StageBlocks>> = {
  26: [2, 2, 2, 2],
  50: [3, 4, 6, 3],
  101: [3, 4, 23, 3],
  152: [3, 8, 36, 3],
  200: [3, 24, 36, 3],
  270: [4, 29, 53, 4],
  300: [4, 36, 54, 4],
  350: [4, 36, 72, 4],
  400: [6, 48, 72, 6],
  420: [4, 44, 87, 4],
};
export const SUPPORTED_DEPTHS = Object.keys(BLOCK_LAYOUTS).map(Number);

/** Training-time defaults of a family member (released configs, spec §1.7). */
export interface ModelDefaults {
  imageSize: number;
  dropoutRate: number;
  stochasticDepthRate: number;
  randAugmentLayers: number;
  randAugmentMagnitude: number;
}

/**
 * Per released model, its smallest released training resolution and that config's regularisation
 * (tensorflow/tpu resnet_rs/configs/resnetrs<D>_i<S>.yaml). Other released resolutions are listed in
 * RELEASED_CONFIGS for callers that want them.
 */
export const RELEASED_CONFIGS: ReadonlyArray<{ depth: number } & ModelDefaults> = [
  { depth: 50, imageSize: 160, dropoutRate: 0.25, stochasticDepthRate: 0.0, randAugmentLayers: 2, randAugmentMagnitude: 10 },
  { depth: 101, imageSize: 160, dropoutRate: 0.25, stochasticDepthRate: 0.0, randAugmentLayers: 2, randAugmentMagnitude: 10 },
  { depth: 101, imageSize: 192, dropoutRate: 0.25, stochasticDepthRate: 0.0, randAugmentLayers: 2, randAugmentMagnitude: 15 },
  { depth: 152, imageSize: 192, dropoutRate: 0.25, stochasticDepthRate: 0.0, randAugmentLayers: 2, randAugmentMagnitude: 15 },
  { depth: 152, imageSize: 224, dropoutRate: 0.25, stochasticDepthRate: 0.0, randAugmentLayers: 2, randAugmentMagnitude: 15 },
  { depth: 152, imageSize: 256, dropoutRate: 0.25, stochasticDepthRate: 0.0, randAugmentLayers: 2, randAugmentMagnitude: 15 },
  { depth: 200, imageSize: 256, dropoutRate: 0.25, stochasticDepthRate: 0.1, randAugmentLayers: 2, randAugmentMagnitude: 15 },
  { depth: 270, imageSize: 256, dropoutRate: 0.25, stochasticDepthRate: 0.1, randAugmentLayers: 2, randAugmentMagnitude: 15 },
  { depth: 350, imageSize: 256, dropoutRate: 0.25, stochasticDepthRate: 0.1, randAugmentLayers: 2, randAugmentMagnitude: 15 },
  { depth: 350, imageSize: 320, dropoutRate: 0.4, stochasticDepthRate: 0.1, randAugmentLayers: 2, randAugmentMagnitude: 15 },
  { depth: 420, imageSize: 320, dropoutRate: 0.4, stochasticDepthRate: 0.1, randAugmentLayers: 2, randAugmentMagnitude: 15 },
];

/**
 * Defaults for depths without a released config (scaling-study depths, custom builds): the paper
 * says regularisation grows with model size (§6, App. E not retrievable) — we use the RS-50 setting
 * below 200 layers and the RS-200 setting at and above it; RandAugment magnitude by resolution as
 * the paper's EfficientNet-RS rule (§7.2): 10 for ≤224, 15 up to 320, 20 above.
 */
export function defaultsFor(depth: number, imageSize?: number): ModelDefaults {
  const released = RELEASED_CONFIGS.filter((c) => c.depth === depth);
  if (released.length > 0) {
    const match = imageSize === undefined ? released[0]! : released.find((c) => c.imageSize === imageSize);
    if (match) return { ...stripDepth(match) };
    // A released depth at another resolution: nearest released config's regularisation.
    const nearest = [...released].sort((a, b) => Math.abs(a.imageSize - imageSize!) - Math.abs(b.imageSize - imageSize!))[0]!;
    return { ...stripDepth(nearest), imageSize: imageSize!, randAugmentMagnitude: randAugmentMagnitudeFor(imageSize!) };
  }
  const size = imageSize ?? 160;
  const big = depth >= 200;
  return {
    imageSize: size,
    dropoutRate: 0.25,
    stochasticDepthRate: big ? 0.1 : 0.0,
    randAugmentLayers: 2,
    randAugmentMagnitude: randAugmentMagnitudeFor(size),
  };
}

function stripDepth(c: { depth: number } & ModelDefaults): ModelDefaults {
  const { depth: _d, ...rest } = c;
  return rest;
}

/** EfficientNet-RS rule from the paper (§7.2): 10 for res ≤ 224, 15 for 224 < res ≤ 320, 20 above. */
export function randAugmentMagnitudeFor(imageSize: number): number {
  if (imageSize <= 224) return 10;
  if (imageSize <= 320) return 15;
  return 20;
}

/** Everything needed to build (or count) one ResNet-RS network. */
export interface ResNetRSArch {
  /** Nominal depth (26, 50, …) — informational; `blocks` is what is built. */
  depth: number;
  blocks: StageBlocks;
  /** Multiplies every conv width (stem included); 1.0 = the paper's models. */
  widthMultiplier: number;
  imageSize: number;
  inputChannels: number;
  classes: number;
  /** No stride in the first stem conv: for 28x28/32x32 inputs (see resnet-rs.ts). */
  smallInput: boolean;
  dropoutRate: number;
  /** Base drop rate; stage i (1-based) drops with rate × (i+1)/5 (official per-stage schedule). */
  stochasticDepthRate: number;
  seRatio: number;
  /** tf.layers BN momentum (TF convention: moving = m·moving + (1−m)·batch). Released configs: 0. */
  bnMomentum: number;
  bnEpsilon: number;
}

/**
 * The small-input variant used for Fashion-MNIST on a 2-core CPU: depth 26 ([2,2,2,2] bottlenecks),
 * width 0.25 (stem 8/8/16, stage outputs 64/128/256/512), grey input, 10 classes, no stride in the
 * first stem conv (28 → 28 → 14 after the pool-replacement conv; stages at 14/7/4/2).
 */
export const FASHION_MNIST_MODEL = 'resnet-rs-26-w0.25-small';

/**
 * Named models. `resnet-rs-<D>` for every supported depth, plus variants written
 * `resnet-rs-<D>-w<M>[-small]` (width multiplier M, small-input stem). The Fashion-MNIST variant's
 * name follows that pattern and carries its own input defaults (28 px, 1 channel, 10 classes).
 */
const NAME_RE = /^resnet-rs-(\d+)(?:-w(\d+(?:\.\d+)?))?(-small)?$/;

export interface ParsedModelName {
  depth: number;
  widthMultiplier: number;
  smallInput: boolean;
}

export function parseModelName(name: string): ParsedModelName {
  const m = NAME_RE.exec(name);
  if (!m) {
    throw new Error(
      `unknown model name "${name}": expected resnet-rs-<depth>[-w<width>][-small] with depth one of ${SUPPORTED_DEPTHS.join(', ')} (e.g. resnet-rs-50, ${FASHION_MNIST_MODEL})`,
    );
  }
  const depth = Number(m[1]);
  if (!BLOCK_LAYOUTS[depth]) {
    throw new Error(`unknown model depth ${depth} in "${name}": supported depths are ${SUPPORTED_DEPTHS.join(', ')}`);
  }
  const widthMultiplier = m[2] === undefined ? 1 : Number(m[2]);
  if (!(widthMultiplier > 0)) throw new Error(`width multiplier in "${name}" must be > 0`);
  return { depth, widthMultiplier, smallInput: m[3] !== undefined };
}

/** Overrides a manifest or the CLI may set; anything left undefined takes the model's default. */
export interface ModelChoice {
  name: string;
  depth?: number;
  widthMultiplier?: number;
  imageSize?: number;
  inputChannels?: number;
  classes?: number;
  smallInput?: boolean;
  dropoutRate?: number;
  stochasticDepthRate?: number;
  bnMomentum?: number;
}

/** Resolves a model choice into a full architecture plus its training defaults. */
export function resolveModel(choice: ModelChoice): { arch: ResNetRSArch; defaults: ModelDefaults } {
  const parsed = parseModelName(choice.name);
  const depth = choice.depth ?? parsed.depth;
  const blocks = BLOCK_LAYOUTS[depth];
  if (!blocks) throw new Error(`unknown model depth ${depth}: supported depths are ${SUPPORTED_DEPTHS.join(', ')}`);
  const smallInput = choice.smallInput ?? parsed.smallInput;
  // Small-input variants are meant for 28x28 grey images with 10 classes (Fashion-MNIST / MNIST).
  const base = defaultsFor(depth, choice.imageSize ?? (smallInput ? 28 : undefined));
  const defaults: ModelDefaults = smallInput ? { ...base, dropoutRate: 0.1, stochasticDepthRate: 0.0, randAugmentMagnitude: 5 } : base;
  const arch: ResNetRSArch = {
    depth,
    blocks,
    widthMultiplier: choice.widthMultiplier ?? parsed.widthMultiplier,
    imageSize: choice.imageSize ?? defaults.imageSize,
    inputChannels: choice.inputChannels ?? (smallInput ? 1 : 3),
    classes: choice.classes ?? (smallInput ? 10 : 1000),
    smallInput,
    dropoutRate: choice.dropoutRate ?? defaults.dropoutRate,
    stochasticDepthRate: choice.stochasticDepthRate ?? defaults.stochasticDepthRate,
    seRatio: 0.25,
    bnMomentum: choice.bnMomentum ?? 0,
    bnEpsilon: 1e-5,
  };
  validateArch(arch);
  return { arch, defaults: { ...defaults, imageSize: arch.imageSize, dropoutRate: arch.dropoutRate, stochasticDepthRate: arch.stochasticDepthRate } };
}

export function validateArch(a: ResNetRSArch): void {
  const bad = (what: string) => {
    throw new Error(`invalid model: ${what}`);
  };
  if (!Number.isInteger(a.imageSize) || a.imageSize < 8) bad(`imageSize ${a.imageSize} must be an integer >= 8`);
  if (!Number.isInteger(a.inputChannels) || a.inputChannels < 1) bad(`inputChannels ${a.inputChannels} must be an integer >= 1`);
  if (!Number.isInteger(a.classes) || a.classes < 2) bad(`classes ${a.classes} must be an integer >= 2`);
  if (!(a.widthMultiplier > 0)) bad(`widthMultiplier ${a.widthMultiplier} must be > 0`);
  if (!(a.dropoutRate >= 0 && a.dropoutRate < 1)) bad(`dropoutRate ${a.dropoutRate} must be in [0, 1)`);
  if (!(a.stochasticDepthRate >= 0 && a.stochasticDepthRate < 1)) bad(`stochasticDepthRate ${a.stochasticDepthRate} must be in [0, 1)`);
  if (!(a.bnMomentum >= 0 && a.bnMomentum < 1)) bad(`bnMomentum ${a.bnMomentum} must be in [0, 1)`);
}

/** Conv width scaled by the width multiplier (at least 1 channel). */
export function scaledWidth(base: number, multiplier: number): number {
  return Math.max(1, Math.round(base * multiplier));
}

/**
 * Official per-stage stochastic-depth schedule (tensorflow/tpu resnet_model.py:
 * `get_drop_connect_rate(rate, block_num, total_blocks=5)` with block_num 2…5 for stages 1…4), i.e.
 * 0.4/0.6/0.8/1.0 × rate, constant within a stage. (timm uses a per-block linear rule instead, §6.4.)
 */
export function stageDropRate(rate: number, stage: number): number {
  return (rate * (stage + 1)) / 5;
}
