/**
 * Resolving a model choice (a registry name + overrides from a manifest or the CLI) into the
 * architecture that gets built (`ResNetRSArch`), its training defaults and its preprocessing.
 *
 * The name fixes the network's identity: block layout (depth), width and stem. Explicit `depth`,
 * `widthMultiplier` or `smallInput` fields may restate it but never change it: a contradiction is an
 * error naming the field (`{name: resnet-rs-50, depth: 300}`). Everything else is a legitimate
 * override, as timm's `create_model(name, img_size=…, in_chans=…, num_classes=…, drop_rate=…)`:
 * input size and channels, classes, dropout, stochastic depth, BN momentum.
 */
import { findModel, lookupModel, unknownModelMessage, FASHION_MNIST_MODEL, type ModelEntry, type StageBlocks } from './registry.js';

export { FASHION_MNIST_MODEL, type ModelEntry, type StageBlocks };

/** Training-time defaults of a model (its registry entry, with the input size actually used). */
export interface ModelDefaults {
  imageSize: number;
  dropoutRate: number;
  stochasticDepthRate: number;
  randAugmentLayers: number;
  randAugmentMagnitude: number;
}

/** How images are prepared for the model at eval time (infer, evaluate, the hold-out). */
export interface ModelPreprocessing {
  imageSize: number;
  channels: number;
  cropFraction: number;
  /** Per channel, 0..255 units. */
  mean: number[];
  std: number[];
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

/** Fields a manifest or the CLI may set; anything left undefined takes the entry's value. */
export interface ModelOverrides {
  /** Must equal the entry's depth when given. */
  depth?: number;
  /** Must equal the entry's width multiplier when given. */
  widthMultiplier?: number;
  /** Must equal the entry's stem choice when given. */
  smallInput?: boolean;
  imageSize?: number;
  inputChannels?: number;
  classes?: number;
  dropoutRate?: number;
  stochasticDepthRate?: number;
  bnMomentum?: number;
}

export interface ModelChoice extends ModelOverrides {
  name: string;
}

export interface ResolvedModel {
  entry: ModelEntry;
  arch: ResNetRSArch;
  defaults: ModelDefaults;
  preprocessing: ModelPreprocessing;
}

/** A problem with a model choice, with the field it is about (relative to the model section). */
export interface ModelChoiceIssue {
  field: keyof ModelChoice;
  message: string;
}

export class ModelChoiceError extends Error {
  constructor(readonly issues: ModelChoiceIssue[]) {
    super(issues.map((i) => `${i.field}: ${i.message}`).join('; '));
    this.name = 'ModelChoiceError';
  }
}

/** The identity fields: set by the name, restated at most. */
const IDENTITY_FIELDS = ['depth', 'widthMultiplier', 'smallInput'] as const;

/** Every contradiction between a choice's explicit identity fields and its entry (none: []). */
export function contradictions(entry: ModelEntry, o: ModelOverrides): ModelChoiceIssue[] {
  const issues: ModelChoiceIssue[] = [];
  for (const field of IDENTITY_FIELDS) {
    const given = o[field];
    if (given === undefined || given === entry[field]) continue;
    const what = field === 'depth' ? `depth ${entry.depth} (blocks [${entry.blocks.join(', ')}])` : `${field} ${entry[field]}`;
    issues.push({
      field,
      message: `${entry.name} has ${what}, found ${given}: the ${field} is part of the model name; name the model you mean (\`selftrain model list\`) or drop ${field}`,
    });
  }
  return issues;
}

/** Issues of a whole choice: an unknown name, or contradicting identity fields. */
export function modelChoiceIssues(choice: ModelChoice): ModelChoiceIssue[] {
  const entry = findModel(choice.name);
  if (!entry) return [{ field: 'name', message: unknownModelMessage(choice.name) }];
  return contradictions(entry, choice);
}

/** Resolves a registered name + overrides; throws ModelChoiceError naming the field on a bad choice. */
export function resolveModel(choice: ModelChoice): ResolvedModel {
  const issues = modelChoiceIssues(choice);
  if (issues.length > 0) throw new ModelChoiceError(issues);
  return resolveEntry(lookupModel(choice.name), choice);
}

/**
 * An entry (registered, or built by a caller for a custom experiment) + overrides → the network,
 * its defaults and preprocessing. Identity fields are not checked here (see `contradictions`).
 */
export function resolveEntry(entry: ModelEntry, o: ModelOverrides = {}): ResolvedModel {
  const arch: ResNetRSArch = {
    depth: entry.depth,
    blocks: entry.blocks,
    widthMultiplier: entry.widthMultiplier,
    imageSize: o.imageSize ?? entry.imageSize,
    inputChannels: o.inputChannels ?? entry.inputChannels,
    classes: o.classes ?? entry.classes,
    smallInput: entry.smallInput,
    dropoutRate: o.dropoutRate ?? entry.dropoutRate,
    stochasticDepthRate: o.stochasticDepthRate ?? entry.stochasticDepthRate,
    seRatio: entry.seRatio,
    bnMomentum: o.bnMomentum ?? entry.bnMomentum,
    bnEpsilon: entry.bnEpsilon,
  };
  validateArch(arch);
  const defaults: ModelDefaults = {
    imageSize: arch.imageSize,
    dropoutRate: arch.dropoutRate,
    stochasticDepthRate: arch.stochasticDepthRate,
    randAugmentLayers: entry.randAugment.layers,
    randAugmentMagnitude: entry.randAugment.magnitude,
  };
  return { entry, arch, defaults, preprocessing: preprocessingFor(entry, arch) };
}

function preprocessingFor(entry: ModelEntry, arch: ResNetRSArch): ModelPreprocessing {
  const { rgb, grey } = entry.preprocessing.normalization;
  const C = arch.inputChannels;
  // RGB values for 3 channels; any other count repeats the grey value (as a grey image would).
  const norm = C === 3 ? { mean: [...rgb.mean], std: [...rgb.std] } : { mean: Array<number>(C).fill(grey.mean[0]!), std: Array<number>(C).fill(grey.std[0]!) };
  return { imageSize: arch.imageSize, channels: C, cropFraction: entry.preprocessing.cropFraction, ...norm };
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
 * 0.4/0.6/0.8/1.0 × rate, constant within a stage. (timm uses a per-block linear rule instead.)
 */
export function stageDropRate(rate: number, stage: number): number {
  return (rate * (stage + 1)) / 5;
}
