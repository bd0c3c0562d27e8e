/**
 * Order-of-magnitude estimates for `selftrain plan`: per stage, the images it processes, the bytes
 * it leaves in the store and its compute (FLOPs), without running anything or reading any image.
 *
 * `estimateStages` is a pure function of the stage chain (each stage's manifest slice) and the
 * dataset sizes. `resolveDatasetSizes` finds those sizes, best source first:
 *   1. the datasets' `dataset.json` (through the import stage's dataset list when it has run, or
 *      at the manifest's dataset URI / store prefix) when the store is reachable;
 *   2. the manifest's `datasets.sizes`;
 *   3. a known import source (fashion-mnist:train 60,000 / test 10,000, split by labeledPerClass);
 *   4. unknown: the dependent numbers print as `?`.
 *
 * The formulas follow the code that does the work, so the estimate moves with it:
 *  - train: the trainer's own step plan (pipeline/train/step-plan.ts: the stratified hold-out
 *    removed, drop-remainder batches, `maxSteps`, the baseline's teacher budget over labeled +
 *    unlabeled), B labeled + round(ratio·B) pseudo-labeled images per student step; compute 3 ×
 *    forward FLOPs per trained image (forward + backward ≈ 2× forward) plus one forward pass over
 *    the hold-out after every epoch, after the last step and for the final record;
 *  - checkpoints: weights incl. BN moving statistics + momentum slots (trainable only) + EMA shadows
 *    (all weights), float32, `checkpoint.keep` of them, plus the final EMA model;
 *  - predictions / pseudo-labels: bytes per sample measured by encoding a synthetic shard in the real
 *    gzip JSON-lines format at the manifest's topK and class count (stages/select/FORMATS.md);
 *  - FLOPs per image from `countResNetRS` (2 × multiply-adds, the paper's convention).
 */
import type { Manifest } from '../manifest/schema.js';
import type { ModelConfig } from '../manifest/sections/model.js';
import type { SelectConfig } from '../manifest/sections/pseudo.js';
import { IMPORT_SOURCE_RE } from '../manifest/sections/datasets.js';
import { readDatasetsList, type DatasetsList } from '../contracts/import.js';
import { resolveModel } from '../model/family.js';
import { countResNetRS } from '../model/count.js';
import { encodeJsonlGz } from '../pseudo/jsonl.js';
import { makeTarget } from '../pseudo/targets.js';
import { isNotFoundError, type ObjectStore } from '../store/types.js';
import { rng } from '../data/rng.js';
import type { ChainStage } from './chain.js';
import { evaluateStageConfig } from '../contracts/evaluate.js';
import { inferStageConfig } from '../contracts/infer.js';
import { selectStageConfig } from '../contracts/select.js';
import { trainStageConfig, type TrainStageConfig } from '../contracts/train.js';
import { trainPlan, type SetCounts, type TrainPlan } from '../train/step-plan.js';

export type DatasetName = 'labeled' | 'unlabeled' | 'eval';
export type SizeOrigin = 'dataset.json' | 'manifest sizes' | 'known source' | 'unknown';

export interface DatasetSize {
  /** Samples; undefined = unknown. */
  samples?: number;
  /** Stored bytes (shards); undefined = unknown. */
  bytes?: number;
  /** Class count when the dataset says so. */
  classes?: number;
  /** Per-class sample counts (labeled datasets): makes the hold-out size exact. */
  classCounts?: number[];
  origin: SizeOrigin;
}

export type DatasetSizes = Record<DatasetName, DatasetSize>;

/**
 * Device throughputs the compute is converted to time with (FLOP/s of one core). Stated, not
 * measured by `plan` (which must stay fast and run no model).
 */
export interface Throughputs {
  /** One TPUv3 core: 123 TFLOP/s bf16 peak per chip, two cores per chip (the paper's hardware). */
  tpuV3Core: number;
  /**
   * One core of this machine's wasm backend, measured with bench/model.ts (2-core box, load ~3.7):
   * RS-50@160 inference 5.1 images per CPU-second × 4.557 GFLOPs = 23 GFLOP/s; a training step
   * of the Fashion-MNIST model 136.9 images per CPU-second × 3 × 0.0244 GFLOPs = 10 GFLOP/s.
   */
  localInfer: number;
  localTrain: number;
}

export const DEFAULT_THROUGHPUTS: Throughputs = { tpuV3Core: 61.5e12, localInfer: 23e9, localTrain: 10e9 };

export interface StageEstimate {
  id: string;
  kind: string;
  /** Images the stage processes (decoded and run through a model, or predictions read); undefined = unknown. */
  images?: number;
  /** Bytes the stage leaves in the store; undefined = unknown. */
  storageBytes?: number;
  /** Floating-point operations; undefined = unknown. */
  flops?: number;
  /** How the numbers were made (one line). */
  note: string;
  /** Train stages: the trainer's step plan the numbers follow. */
  plan?: TrainPlan;
}

export interface EstimateTotals {
  images?: number;
  storageBytes?: number;
  flops?: number;
  /** flops / throughput, in seconds. */
  tpuV3CoreSeconds?: number;
  localCoreSeconds?: number;
}

/** Samples of the known import sources (Debian's dataset-fashion-mnist = the official files). */
const KNOWN_SOURCES: Record<string, { samples: number; classes: number }> = {
  'fashion-mnist:train': { samples: 60_000, classes: 10 },
  'fashion-mnist:test': { samples: 10_000, classes: 10 },
};
/**
 * Stored bytes per Fashion-MNIST sample, measured with `selftrain dataset import` of the 10,000
 * test images (dataset.json `bytes` / `samples`): labeled 2,327 B (PNG + .cls, tar headers and
 * padding), unlabeled part of a split 1,303 B (no .cls in the tar; labels kept in ground-truth).
 */
const FASHION_BYTES = { labeled: 2327, unlabeled: 1303 };

/** Import source refs are imported (written) by the run; anything else is an existing dataset. */
export const isImportSource = (ref: string) => IMPORT_SOURCE_RE.test(ref);

/** Sizes from the manifest alone: `datasets.sizes`, else known sources, else unknown. */
export function manifestDatasetSizes(m: Manifest): DatasetSizes {
  const d = m.datasets;
  const sizes = d.sizes;
  const bpi = sizes?.bytesPerImage;
  const out = {} as DatasetSizes;
  const sameSource = d.labeled === d.unlabeled;
  for (const name of ['labeled', 'unlabeled', 'eval'] as const) {
    const given = sizes?.[name];
    if (given !== undefined) {
      out[name] = { samples: given, bytes: bpi !== undefined ? Math.round(given * bpi) : undefined, origin: 'manifest sizes' };
      continue;
    }
    const known = KNOWN_SOURCES[d[name]];
    if (!known) {
      out[name] = { origin: 'unknown' };
      continue;
    }
    let samples = known.samples;
    if (sameSource && name !== 'eval' && d.split) {
      const labeled = Math.min(known.samples, d.split.labeledPerClass * known.classes);
      samples = name === 'labeled' ? labeled : known.samples - labeled;
    }
    // datasets.maxSamples caps what the import keeps (CI-sized runs).
    const cap = d.maxSamples?.[name];
    if (cap !== undefined) samples = Math.min(samples, cap);
    const perSample = bpi ?? (sameSource && name === 'unlabeled' && d.split ? FASHION_BYTES.unlabeled : FASHION_BYTES.labeled);
    out[name] = { samples, bytes: Math.round(samples * perSample), classes: known.classes, origin: 'known source' };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reading dataset.json when the store allows it

export interface ResolvedSizes {
  sizes: DatasetSizes;
  /** One line per dataset that could not be read where it was expected (why the fallback). */
  notes: string[];
}

interface IndexLike {
  samples: number;
  bytes: number;
  classes: string[];
  classCounts?: number[];
}

/**
 * Sizes from dataset.json where readable, else from the manifest. `openRef` opens a dataset ref
 * (a URI or a prefix relative to the store root) as a store; `run` is the run's store (undefined
 * when the store could not be opened). Never throws: a failure becomes a note and a fallback.
 */
export async function resolveDatasetSizes(
  m: Manifest,
  run: ObjectStore | undefined,
  openRef: ((ref: string) => Promise<{ store: ObjectStore; close(): Promise<void> }>) | undefined,
  importId = 'import',
): Promise<ResolvedSizes> {
  const fallback = manifestDatasetSizes(m);
  const notes: string[] = [];
  if (!run || !openRef) return { sizes: fallback, notes };
  const { openDataset } = await import('../data/dataset-json.js');

  // Refs the import stage resolved (import sources → their imported prefix), when it has run.
  let refs: Partial<DatasetsList> = {};
  try {
    refs = await readDatasetsList(run, importId);
  } catch (err) {
    // `plan` works without the store: absent (the import has not run) is silent, anything else a note.
    if (!isNotFoundError(err)) notes.push(`${importId}'s dataset list: ${oneLine(err)}; using the manifest's datasets`);
  }
  const sizes = { ...fallback };
  for (const name of ['labeled', 'unlabeled', 'eval'] as const) {
    const ref = refs[name] ?? (isImportSource(m.datasets[name]) ? undefined : m.datasets[name]);
    if (!ref) continue;
    let opened: { store: ObjectStore; close(): Promise<void> } | undefined;
    try {
      opened = await openRef(ref);
      const { index } = await openDataset(opened.store);
      sizes[name] = fromIndex(index);
    } catch (err) {
      notes.push(`datasets.${name}: ${oneLine(err)}; using ${fallback[name].origin === 'unknown' ? 'no size (unknown)' : `the ${fallback[name].origin}`}`);
    } finally {
      await opened?.close().catch(() => {});
    }
  }
  return { sizes, notes };
}

function fromIndex(index: IndexLike): DatasetSize {
  return { samples: index.samples, bytes: index.bytes, classes: index.classes.length || undefined, classCounts: index.classCounts, origin: 'dataset.json' };
}

export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s+/g, ' ').trim();
}

// ---------------------------------------------------------------------------------------------
// Per-stage estimates

const BYTES_PER_FLOAT = 4;

interface ModelCost {
  forwardFlops: number;
  params: number;
  nonTrainable: number;
  classes: number;
}

function modelCost(model: ModelConfig): ModelCost {
  const { arch } = resolveModel(model);
  const c = countResNetRS(arch);
  return { forwardFlops: c.flops, params: c.params, nonTrainable: c.nonTrainableParams, classes: arch.classes };
}

/** A dataset's counts for the step plan, when its size is known. */
function countsOf(d: DatasetSize): SetCounts | undefined {
  return d.samples === undefined ? undefined : { samples: d.samples, ...(d.classCounts ? { classCounts: d.classCounts } : {}) };
}

/**
 * The trainer's plan for a train stage (pipeline/train/step-plan.ts, the same code the trainer
 * runs), or undefined when a size it needs is unknown. The baseline's hold-out is drawn from
 * labeled + unlabeled; without the unlabeled set's class counts (its dataset.json has none: its
 * labels are held back) it is rounded overall, within a few images of the trainer's.
 */
export function trainStagePlan(t: Pick<TrainStageConfig, 'role' | 'train' | 'budgetOf'>, sizes: DatasetSizes): TrainPlan | undefined {
  const labeled = countsOf(sizes.labeled);
  const unlabeled = countsOf(sizes.unlabeled);
  if (!labeled || (t.role === 'baseline' && !unlabeled)) return undefined;
  return trainPlan({ cfg: t.train, role: t.role, labeled, unlabeled, ...(t.budgetOf ? { budgetOf: t.budgetOf } : {}) });
}

/** Bytes of one complete checkpoint: weights (incl. BN moving stats), momentum slots, EMA shadows. */
export function checkpointBytes(c: Pick<ModelCost, 'params' | 'nonTrainable'>): number {
  return BYTES_PER_FLOAT * (2 * (c.params + c.nonTrainable) + c.params);
}

/** The final EMA model (tfjs weights; model.json is small). */
export function modelBytes(c: Pick<ModelCost, 'params' | 'nonTrainable'>): number {
  return BYTES_PER_FLOAT * (c.params + c.nonTrainable);
}


const round6 = (x: number) => Math.round(x * 1e6) / 1e6;
const SAMPLE_LINES = 2000;
const lineBytesCache = new Map<string, { predictions: number; pseudo: number }>();

/**
 * Gzip bytes per sample of a prediction line and of a pseudo-label line, measured by encoding
 * SAMPLE_LINES synthetic samples in the exact on-store format (same fields, 6-decimal prediction
 * probabilities, unrounded soft targets, WebDataset-style keys). Probabilities imitate a trained
 * classifier: a confident top-1 and a geometric tail over random distinct classes.
 */
export function measuredLineBytes(topK: number, classes: number, select: Pick<SelectConfig, 'labels' | 'temperature'>): { predictions: number; pseudo: number } {
  const k = Math.min(topK, classes);
  const cacheKey = `${k}/${classes}/${select.labels}/${select.temperature}`;
  const hit = lineBytesCache.get(cacheKey);
  if (hit) return hit;
  const rand = rng(0x5e1f7a);
  const teacher = `resnet_rs_152@${'0123456789abcdef'}`;
  const predictions: unknown[] = [];
  const pseudo: unknown[] = [];
  for (let i = 0; i < SAMPLE_LINES; i++) {
    const chosen = new Set<number>();
    while (chosen.size < k) chosen.add(Math.floor(rand() * classes));
    const top1 = 0.3 + 0.69 * rand();
    let rest = 1 - top1;
    const probs = [top1];
    for (let j = 1; j < k; j++) {
      const p = rest * (0.3 + 0.4 * rand());
      probs.push(p);
      rest -= p;
    }
    probs.sort((a, b) => b - a);
    const p6 = probs.map(round6);
    const cls = [...chosen];
    const key = `n${String(1_000_000 + i * 7919).padStart(8, '0')}`;
    const shard = 'shard-000123';
    predictions.push({ key, shard, teacher, classes: cls, probs: p6, maxProb: p6[0] });
    const target = makeTarget(cls, p6, select.labels, select.temperature);
    pseudo.push({ shard, key, label: cls[0], confidence: p6[0], classes: target.classes, probs: target.probs, repeats: 1 + Math.floor(rand() * 3) });
  }
  const out = {
    predictions: encodeJsonlGz(predictions).byteLength / SAMPLE_LINES,
    pseudo: encodeJsonlGz(pseudo).byteLength / SAMPLE_LINES,
  };
  lineBytesCache.set(cacheKey, out);
  return out;
}

const mul = (...xs: (number | undefined)[]) => (xs.some((x) => x === undefined) ? undefined : xs.reduce<number>((a, x) => a * x!, 1));
const add = (...xs: (number | undefined)[]) => (xs.some((x) => x === undefined) ? undefined : xs.reduce<number>((a, x) => a + x!, 0));

/** Estimates for every stage of the chain. Pure: same inputs, same numbers. */
export function estimateStages(m: Manifest, stages: ChainStage[], sizes: DatasetSizes): StageEstimate[] {
  const byId = new Map(stages.map((s) => [s.id, s]));
  const costs = new Map<string, ModelCost>();
  const costOf = (model: ModelConfig) => {
    const key = JSON.stringify(model);
    const known = costs.get(key);
    if (known) return known;
    const c = modelCost(model);
    costs.set(key, c);
    return c;
  };
  const unlabeled = sizes.unlabeled.samples;
  const numClasses = sizes.labeled.classes ?? sizes.eval.classes ?? costOf(m.teacher.model).classes;
  // Unique pseudo-labeled samples per round: the select target per class times the classes,
  // capped by the unlabeled set (a class short of its target is filled by repeats, not new lines).
  const selectTarget = (s: SelectConfig) => (s.perClass !== undefined ? s.perClass : unlabeled !== undefined ? Math.max(1, Math.round(unlabeled / numClasses)) : undefined);

  // Whole bytes: measured per-sample sizes are fractional.
  return stages.map((stage) => safely(stage)).map((e) => (e.storageBytes === undefined ? e : { ...e, storageBytes: Math.round(e.storageBytes) }));

  // An estimate is advice: a config it cannot follow gives a row of `?`, never a failed plan.
  function safely(stage: ChainStage): StageEstimate {
    try {
      return estimateOne(stage);
    } catch (err) {
      return { id: stage.id, kind: stage.kind, note: `no estimate: ${oneLine(err)}` };
    }
  }

  // Each config is read through its stage's contract, so the estimate sees what the stage will.
  function estimateOne(stage: ChainStage): StageEstimate {
    const base = { id: stage.id, kind: stage.kind };
    switch (stage.kind) {
      case 'import': {
        // Import sources are written by this run (labeled + unlabeled from one source: one import,
        // split in two); existing datasets are only checked.
        const names = (['labeled', 'unlabeled', 'eval'] as const).filter((n) => isImportSource(m.datasets[n]));
        if (names.length === 0) return { ...base, images: 0, storageBytes: 0, flops: 0, note: 'existing datasets: nothing to import (datasets.json only)' };
        return {
          ...base,
          images: add(...names.map((n) => sizes[n].samples)),
          storageBytes: add(...names.map((n) => sizes[n].bytes)),
          flops: 0,
          note: `imports ${names.join(', ')} as shards (decode/encode only, no model)`,
        };
      }
      case 'train': {
        const t = trainStageConfig.parse(stage.config);
        const student = t.role === 'student';
        const cost = costOf(t.model);
        const plan = trainStagePlan(t, sizes);
        const images = plan ? plan.steps * (plan.batch + plan.pseudoBatch) : undefined;
        const heldoutImages = plan ? plan.evaluations * plan.heldout : undefined;
        const flops = add(mul(3, cost.forwardFlops, images), mul(cost.forwardFlops, heldoutImages));
        const nCkpt = plan ? Math.ceil(plan.steps / t.train.checkpoint.everySteps) : undefined;
        const kept = nCkpt === undefined ? undefined : Math.min(t.train.checkpoint.keep, nCkpt);
        const storageBytes = add(mul(kept, checkpointBytes(cost)), modelBytes(cost));
        const gflops = (cost.forwardFlops / 1e9).toFixed(2);
        const stepsText = plan ? `${plan.steps.toLocaleString('en-US')} steps × (${plan.batch}${student ? ` + ${plan.pseudoBatch} pseudo` : ''})` : '? steps (labeled size unknown)';
        return {
          ...base,
          images,
          storageBytes,
          flops,
          ...(plan ? { plan } : {}),
          note: `${t.role} ${t.model.name}@${resolveModel(t.model).arch.imageSize}: ${stepsText}; 3 × ${gflops} GFLOPs/image + hold-out evals; ${kept ?? '?'} of ${nCkpt ?? '?'} checkpoints kept`,
        };
      }
      case 'infer': {
        const cfg = inferStageConfig.parse(stage.config);
        const cost = costOf(cfg.model ?? m.teacher.model);
        const infer = cfg.infer;
        const line = measuredLineBytes(infer.topK, cost.classes, m.pseudo.select);
        return {
          ...base,
          images: unlabeled,
          storageBytes: mul(unlabeled, line.predictions),
          flops: mul(cost.forwardFlops, unlabeled),
          note: `forward passes over the unlabeled set; predictions ${line.predictions.toFixed(0)} B/sample (top-${Math.min(infer.topK, cost.classes)} gzip JSONL)`,
        };
      }
      case 'select': {
        const sel = selectStageConfig.parse(stage.config).select;
        const line = measuredLineBytes(m.pseudo.infer.topK, numClasses, sel);
        const target = selectTarget(sel);
        const lines = target === undefined ? undefined : unlabeled === undefined ? target * numClasses : Math.min(unlabeled, target * numClasses);
        return {
          ...base,
          images: unlabeled,
          storageBytes: mul(lines, line.pseudo),
          flops: 0,
          note: `reads every prediction; keeps ≤ ${lines?.toLocaleString('en-US') ?? '?'} unique samples (${target?.toLocaleString('en-US') ?? '?'}/class × ${numClasses}), ${line.pseudo.toFixed(0)} B/sample`,
        };
      }
      case 'evaluate': {
        const trainIds = evaluateStageConfig.parse(stage.config).inputs.models;
        const models = trainIds.flatMap((id) => {
          const s = byId.get(id);
          return s?.kind === 'train' ? [trainStageConfig.parse(s.config).model] : [];
        });
        const evalN = sizes.eval.samples;
        const flops = add(...models.map((mc) => mul(costOf(mc).forwardFlops, evalN)));
        // report.json: per model a K×K confusion matrix (~3 B per cell as JSON) and per-class rows,
        // plus a few charts; small next to everything else.
        const storageBytes = models.length * (numClasses * numClasses * 3 + numClasses * 200) + 200_000;
        return { ...base, images: mul(evalN, models.length), storageBytes, flops, note: `${models.length} models × the eval set (EMA weights); report and charts` };
      }
      default:
        return { ...base, note: `no estimate for stage kind "${base.kind}"` };
    }
  }
}

export function totalEstimates(rows: StageEstimate[], tp: Throughputs = DEFAULT_THROUGHPUTS): EstimateTotals {
  const images = add(...rows.map((r) => r.images));
  const storageBytes = add(...rows.map((r) => r.storageBytes));
  const flops = add(...rows.map((r) => r.flops));
  const local = add(...rows.map((r) => (r.flops === undefined ? undefined : r.flops / (r.kind === 'train' ? tp.localTrain : tp.localInfer))));
  return {
    images,
    storageBytes,
    flops,
    tpuV3CoreSeconds: flops === undefined ? undefined : flops / tp.tpuV3Core,
    localCoreSeconds: local,
  };
}

// ---------------------------------------------------------------------------------------------
// Formatting

const SI = ['', 'k', 'M', 'G', 'T', 'P', 'E', 'Z'];

function si(x: number, unit: string, base = 1000): string {
  if (x === 0) return `0 ${unit}`;
  let i = 0;
  while (Math.abs(x) >= base && i < SI.length - 1) {
    x /= base;
    i++;
  }
  const digits = Math.abs(x) >= 100 || i === 0 ? 0 : Math.abs(x) >= 10 ? 1 : 2;
  return `${x.toFixed(digits)} ${SI[i]}${unit}`;
}

export const fmtImages = (n: number | undefined) => (n === undefined ? '?' : n < 1e4 ? n.toLocaleString('en-US') : si(n, '').trim());
export const fmtBytes = (n: number | undefined) => (n === undefined ? '?' : si(n, 'B'));
export const fmtFlops = (n: number | undefined) => (n === undefined ? '?' : si(n, 'FLOP'));

export function fmtDuration(seconds: number | undefined): string {
  if (seconds === undefined) return '?';
  const units: [number, string][] = [
    [365.25 * 86400, 'years'],
    [86400, 'days'],
    [3600, 'hours'],
    [60, 'minutes'],
  ];
  const two = (x: number) => Number(x.toPrecision(2)).toLocaleString('en-US');
  for (const [s, name] of units) if (seconds >= s) return `${two(seconds / s)} ${name}`;
  return `${two(seconds)} seconds`;
}
