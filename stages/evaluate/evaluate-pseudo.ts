/**
 * Quality of one Noisy Student round's pseudo-labels: the teacher's accuracy vs confidence
 * threshold over every unlabeled prediction, and per-class precision of the set select kept,
 * both against the importer's held-back ground truth. Predictions and pseudo-labels are streamed
 * shard by shard; only the ground truth (key → label) is held in memory.
 */
import { decodeJsonlGz } from '../../pipeline/pseudo/jsonl.js';
import { readPredictions } from '../../pipeline/pseudo/predictions-reader.js';
import type { PseudoLabelRecord } from '../../pipeline/pseudo/records.js';
import { PrecisionAccumulator, ThresholdCurve } from '../../pipeline/report/pseudo-quality.js';
import type { PseudoEvaluation } from '../../pipeline/report/types.js';
import type { ObjectStore } from '../../pipeline/store/types.js';
import { readInferSummary } from '../../pipeline/contracts/infer.js';
import { readSelectSummary } from '../../pipeline/contracts/select.js';
import { objectUri } from '../../pipeline/store/uri.js';

export interface EvaluatePseudoOptions {
  run: ObjectStore;
  select: string;
  infer: string;
  /** Held-back labels of the unlabeled set, or undefined when it has none. */
  groundTruth?: () => AsyncIterable<{ key: string; label: number }>;
  signal?: AbortSignal;
}

export async function loadGroundTruth(lines: AsyncIterable<{ key: string; label: number }>, where: string): Promise<Map<string, number>> {
  const truth = new Map<string, number>();
  for await (const l of lines) {
    if (typeof l?.key !== 'string' || !Number.isInteger(l.label)) throw new Error(`${where}: ground-truth line is not {key, label}: ${JSON.stringify(l).slice(0, 120)}`);
    truth.set(l.key, l.label);
  }
  return truth;
}

export async function evaluatePseudo(o: EvaluatePseudoOptions): Promise<PseudoEvaluation> {
  const { summary, hash } = await readSelectSummary(o.run, o.select);
  const infer = await readInferSummary(o.run, o.infer);
  const classes = infer.classes;
  const truth = o.groundTruth ? await loadGroundTruth(o.groundTruth(), `ground truth of ${infer.dataset}`) : undefined;
  const curve = new ThresholdCurve();
  const precision = new PrecisionAccumulator(classes);
  if (truth) {
    const predictions = o.run.sub(o.infer);
    for (const shard of infer.shards) {
      o.signal?.throwIfAborted();
      for await (const r of readPredictions(predictions, shard, infer.numClasses)) {
        if (!('classes' in r)) continue;
        const t = truth.get(r.key);
        if (t !== undefined) curve.add(r.maxProb, r.classes[0] === t);
      }
    }
    const selected = o.run.sub(o.select);
    for (const s of summary.shards) {
      o.signal?.throwIfAborted();
      const where = objectUri(selected, s.key);
      for await (const { line, value } of decodeJsonlGz(await selected.getStream(s.key), where)) {
        const r = value as PseudoLabelRecord;
        if (typeof r?.key !== 'string' || !Number.isInteger(r.label) || !Number.isInteger(r.repeats)) throw new Error(`${where}: line ${line} is not a pseudo-label record`);
        precision.add(r.label, truth.get(r.key), r.repeats);
      }
    }
  }
  const p = precision.result();
  const iteration = /-(\d+)$/.exec(o.select);
  return {
    format: 1,
    stage: o.select,
    infer: o.infer,
    iteration: iteration ? Number(iteration[1]) : null,
    selectHash: hash,
    floor: summary.floor,
    target: summary.target,
    unique: summary.unique,
    pseudoLabeled: summary.pseudoLabeled,
    thresholds: summary.classes.map((c) => ({ cls: c.cls, name: classes[c.cls] ?? String(c.cls), threshold: c.threshold, candidates: c.candidates, kept: c.kept, unique: c.unique, repeats: c.repeats })),
    confidenceHistogram: infer.confidenceHistogram,
    groundTruth: !!truth,
    precision: truth ? p.precision : null,
    weightedPrecision: truth ? p.weightedPrecision : null,
    perClass: truth ? p.perClass : [],
    missingTruth: p.missingTruth,
    thresholdCurve: truth ? curve.points() : [],
  };
}
