/**
 * The train stage holds its labeled set decoded in memory (pipeline/train/data.ts), capped at
 * MAX_DECODED_BYTES. This module says, from counts alone (no image read, no tf or sharp loaded),
 * whether a train stage's set fits, and words the limit the same way for `validate`, `plan` and
 * the train stage's own error: the numbers, and what to change to train anyway.
 */
import type { StageDefinition } from '../runner/stage.js';
import { IMPORT_SOURCE_RE } from '../manifest/sections/datasets.js';
import type { ModelConfig } from '../manifest/sections/model.js';
import { resolveModel } from '../model/family.js';

export const MAX_DECODED_BYTES = 4 * 1024 ** 3;

export interface DecodedSet {
  /** Images the stage decodes (labeled, plus the unlabeled set for the all-labels baseline). */
  samples: number;
  imageSize: number;
  /** 1 (grey) or 3 (RGB): what the train stage decodes to. */
  channels: number;
}

export function decodedBytes(s: DecodedSet): number {
  return s.samples * s.imageSize * s.imageSize * s.channels;
}

const fmtInt = (n: number) => n.toLocaleString('en-US');
const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;

/** The largest count of S×S×C images, and the largest side for N images, that fit the limit. */
export function fitWithin(s: DecodedSet): { samples: number; imageSize: number } {
  return {
    samples: Math.floor(MAX_DECODED_BYTES / (s.imageSize * s.imageSize * s.channels)),
    imageSize: Math.floor(Math.sqrt(MAX_DECODED_BYTES / (s.samples * s.channels))),
  };
}

/**
 * "<what>: N images × S×S×C bytes = X GiB decoded, over the train stage's 4.0 GiB in-memory limit
 * (…); it fits M images at S px, or these N at s px or less". Undefined when the set fits.
 */
export function overLimit(what: string, s: DecodedSet): string | undefined {
  const bytes = decodedBytes(s);
  if (bytes <= MAX_DECODED_BYTES) return undefined;
  const fit = fitWithin(s);
  return (
    `${what}: ${fmtInt(s.samples)} images × ${s.imageSize}×${s.imageSize}×${s.channels} bytes = ${gib(bytes)} decoded, ` +
    `over the train stage's ${gib(MAX_DECODED_BYTES)} in-memory limit (training from streamed shards is not implemented yet); ` +
    `it fits ${fmtInt(fit.samples)} images at ${s.imageSize} px, or these ${fmtInt(s.samples)} at ${fit.imageSize} px or less`
  );
}

interface TrainStageSlice {
  role?: 'teacher' | 'student' | 'baseline';
  model?: ModelConfig;
}

/** What a check needs to know of the datasets; an undefined size = unknown (nothing is said then). */
export interface DatasetFacts {
  labeled?: number;
  unlabeled?: number;
  /** The manifest's `datasets.labeled`: an import source can be capped, an existing dataset cannot. */
  labeledRef: string;
}

/** How to make the labeled set smaller: `maxSamples` applies to imported sources only. */
function capAdvice(ref: string, samples: number): string {
  if (IMPORT_SOURCE_RE.test(ref)) return `set datasets.maxSamples.labeled: ${samples}`;
  return `train on a subset: datasets.labeled: "webdataset:${ref}" with datasets.maxSamples.labeled: ${samples} (maxSamples applies to imported sources; an existing dataset is used whole)`;
}

/**
 * One warning per train stage of the chain whose decoded set would exceed the limit: the stage,
 * the numbers, and the manifest fields that would make it fit. Stages whose set size is unknown
 * are not judged.
 */
export function labeledMemoryWarnings(stages: readonly StageDefinition[], sizes: DatasetFacts): string[] {
  const warnings: string[] = [];
  for (const stage of stages) {
    if (stage.kind !== 'train') continue;
    const cfg = stage.config as TrainStageSlice | undefined;
    if (!cfg?.model) continue;
    const baseline = cfg.role === 'baseline';
    const samples = baseline ? (sizes.labeled === undefined || sizes.unlabeled === undefined ? undefined : sizes.labeled + sizes.unlabeled) : sizes.labeled;
    if (samples === undefined) continue;
    const { arch } = resolveModel(cfg.model);
    const set: DecodedSet = { samples, imageSize: arch.imageSize, channels: arch.inputChannels === 1 ? 1 : 3 };
    const what = baseline ? 'the all-labels baseline (labeled + unlabeled)' : 'the labeled set';
    const problem = overLimit(what, set);
    if (!problem) continue;
    const modelField = cfg.role === 'student' ? 'student.model.imageSize' : 'teacher.model.imageSize';
    const cap = baseline ? 'set datasets.maxSamples.labeled/.unlabeled, or evaluate.baseline: false' : capAdvice(sizes.labeledRef, fitWithin(set).samples);
    warnings.push(`\`run\` will stop at ${stage.id}: ${problem}. To train now: ${cap}; or lower ${modelField}. (Import, infer, select and evaluate stream their data: no such limit.)`);
  }
  return warnings;
}
