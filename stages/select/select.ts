/**
 * Noisy Student selection over the per-shard prediction objects written by infer. Two streaming
 * passes keep memory at O(classes) plus one shard's output:
 *   1. per-class histogram of top-1 confidence on the 0.01 grid -> per-class threshold and rate;
 *   2. per shard: keep samples at/above their class threshold, give each a repeat count
 *      (seeded stochastic rounding of target/kept), write that shard's pseudo-label object.
 * Shard outputs already present are kept (they are a pure function of the predictions and the
 * config, which the stage fingerprint covers), so a killed select resumes where it stopped.
 */
import type { ObjectStore } from '../../pipeline/store/types.js';
import { ConfidenceHistogram, planClasses, type ClassPlan } from '../../pipeline/pseudo/balance.js';
import { gridIndex, thresholdIndex } from '../../pipeline/pseudo/grid.js';
import { encodeJsonlGz } from '../../pipeline/pseudo/jsonl.js';
import { readPredictions } from '../../pipeline/pseudo/predictions-reader.js';
import { isFailed, type PseudoLabelRecord } from '../../pipeline/pseudo/records.js';
import { sampleUniform, stochasticRound } from '../../pipeline/pseudo/rounding.js';
import { makeTarget, truncatedMass, type LabelKind } from '../../pipeline/pseudo/targets.js';
import { pseudoLabelKey, SELECT_SUMMARY_KEY, type ClassSummary, type SelectSummary } from '../../pipeline/contracts/select.js';

export { PSEUDO_DIR, pseudoLabelKey, SELECT_SUMMARY_KEY, type ClassSummary, type SelectSummary } from '../../pipeline/contracts/select.js';

export interface SelectOptions {
  /** Store rooted at the infer stage's output (holds predictions/). */
  predictions: ObjectStore;
  /** Shards to read, in order (from the infer summary). */
  shards: string[];
  numClasses: number;
  /** Store rooted at this stage's output prefix. */
  out: ObjectStore;
  floor: number;
  /** Per-class target; default total predicted samples / classes. */
  perClass?: number;
  labels: LabelKind;
  temperature: number;
  seed: number;
  /**
   * The unlabeled set's held-back labels when the importer kept them (reporting only): streamed
   * once after pass 2 and matched against the kept index, so it is never held in memory whole.
   */
  groundTruth?: () => AsyncIterable<{ key: string; label: number }>;
  signal?: AbortSignal;
  onShard?: (done: number, total: number) => void;
}

export async function selectPseudoLabels(opts: SelectOptions): Promise<SelectSummary> {
  const { numClasses } = opts;
  const hist = new ConfidenceHistogram(numClasses);
  let failed = 0;
  for (const shard of opts.shards) {
    opts.signal?.throwIfAborted();
    // readPredictions validated every record: classes and probs non-empty, each class < numClasses.
    for await (const r of readPredictions(opts.predictions, shard, numClasses)) {
      if (isFailed(r)) failed++;
      else hist.add(r.classes[0]!, r.probs[0]!);
    }
  }
  const predicted = hist.total();
  const target = opts.perClass ?? Math.max(1, Math.round(predicted / numClasses));
  const plans = planClasses(hist, target, thresholdIndex(opts.floor));

  const acc = plans.map(() => ({ repeats: 0, unique: 0, mass: 0, kept: 0, correct: 0, truth: 0 }));
  const shardSummaries: SelectSummary['shards'] = [];
  // key -> teacher label of every sample in the pseudo-labeled set (only built for accuracy).
  const keptIndex = opts.groundTruth ? new Map<string, number>() : undefined;
  for (const [i, shard] of opts.shards.entries()) {
    opts.signal?.throwIfAborted();
    const records = await selectShard(opts, shard, plans, acc);
    if (keptIndex) for (const r of records) keptIndex.set(r.key, r.label);
    const key = pseudoLabelKey(shard);
    // Counting happened above either way, so the summary is complete after a resume too.
    if (!(await opts.out.head(key))) await opts.out.put(key, encodeJsonlGz(records), { contentType: 'application/gzip' });
    shardSummaries.push({ shard, key, unique: records.length, repeats: records.reduce((a, r) => a + r.repeats, 0) });
    opts.onShard?.(i + 1, opts.shards.length);
  }

  if (opts.groundTruth && keptIndex) {
    for await (const { key, label: truth } of opts.groundTruth()) {
      const label = keptIndex.get(key);
      if (label === undefined) continue;
      acc[label]!.truth++;
      if (truth === label) acc[label]!.correct++;
    }
  }

  const classes: ClassSummary[] = plans.map((p, c) => {
    const a = acc[c]!;
    return {
      cls: c,
      candidates: p.candidates,
      threshold: p.threshold,
      kept: p.kept,
      repeats: a.repeats,
      unique: a.unique,
      meanTruncatedMass: a.kept ? a.mass / a.kept : null,
      accuracy: a.truth ? a.correct / a.truth : null,
      withGroundTruth: a.truth,
    };
  });
  const truth = acc.reduce((s, a) => s + a.truth, 0);
  const summary: SelectSummary = {
    target,
    floor: opts.floor,
    labels: opts.labels,
    temperature: opts.temperature,
    seed: opts.seed,
    predicted,
    failed,
    pseudoLabeled: acc.reduce((s, a) => s + a.repeats, 0),
    unique: acc.reduce((s, a) => s + a.unique, 0),
    accuracy: truth ? acc.reduce((s, a) => s + a.correct, 0) / truth : null,
    shards: shardSummaries,
    classes,
  };
  await opts.out.put(SELECT_SUMMARY_KEY, JSON.stringify(summary, null, 2) + '\n', { contentType: 'application/json' });
  return summary;
}

async function selectShard(
  opts: SelectOptions,
  shard: string,
  plans: ClassPlan[],
  acc: { repeats: number; unique: number; mass: number; kept: number; correct: number; truth: number }[],
): Promise<PseudoLabelRecord[]> {
  const out: PseudoLabelRecord[] = [];
  for await (const r of readPredictions(opts.predictions, shard, opts.numClasses)) {
    if (isFailed(r)) continue;
    const label = r.classes[0]!;
    const confidence = r.probs[0]!;
    const plan = plans[label]!;
    if (gridIndex(confidence) < plan.thresholdIndex) continue;
    const a = acc[label]!;
    a.kept++;
    a.mass += truncatedMass(r.probs);
    const repeats = stochasticRound(plan.repeatRate, sampleUniform(opts.seed, shard, r.key));
    if (repeats === 0) continue;
    a.repeats += repeats;
    a.unique++;
    const target = makeTarget(r.classes, r.probs, opts.labels, opts.temperature);
    out.push({ shard, key: r.key, label, confidence, classes: target.classes, probs: target.probs, repeats });
  }
  return out;
}
