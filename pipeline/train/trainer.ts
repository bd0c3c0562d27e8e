/**
 * The training loop shared by teacher and student: a custom loop (not model.fit) so the recipe is
 * exactly the official one and every piece of state can be checkpointed.
 *
 * Per step s (0-based):
 *   batch       labeled indices = permutation(seed, epoch)[pos*B ..], pos = s mod stepsPerEpoch;
 *               each image cropped/flipped/RandAugmented with a generator seeded by (seed, s, i);
 *               student: + r*B pseudo-labeled images from a second seeded stream (pseudo.ts)
 *   noise       model dropout / stochastic-depth generator re-seeded from (seed, s)
 *   loss        CE(labeled, smoothed) [+ r * CE(pseudo, soft targets)] + wd/2 * sum ||v||^2 (non-BN)
 *   update      momentum SGD at lr(s); EMA of all weights with t = s+1 updates
 * so a run resumed from a checkpoint at step k replays steps k.. exactly as an uninterrupted run.
 *
 * BN: model.apply(x, {training: true}) makes tf.layers BatchNormalization normalise with batch
 * statistics AND write its moving mean/variance (moving = m*moving + (1-m)*batch, m = the layer's
 * momentum, 0 in the released configs => last batch); the EMA then averages those like any weight.
 * (Checked by test/train/recipe.test.ts.) Evaluation and export swap the EMA values into the model.
 */
import { createHash } from 'node:crypto';
import type * as tfTypes from '@tensorflow/tfjs';
import type { TrainConfig } from '../manifest/sections/train.js';
import { modelNoiseState, seedModelNoise } from '../model/noise.js';
import type { Logger, Progress } from '../runner/stage.js';
import type { ObjectStore } from '../store/types.js';
import { augmentImage, randAugmentOptions } from './augment.js';
import { clearCheckpoints, loadLatestCheckpoint, pruneCheckpoints, saveCheckpoint, type NamedArray } from './checkpoint.js';
import { normalizeInto, type ImageSet, type LabeledData } from './data.js';
import { WeightEma } from './ema.js';
import { smoothLabels, softCrossEntropy, studentLoss } from './loss.js';
import { MomentumSgd } from './optimizer.js';
import type { PseudoSource } from './pseudo.js';
import { Sfc32, mix, permutation } from './rng.js';
import { learningRate } from './schedule.js';
import { planSteps, type StepBudget } from './step-plan.js';
import { l2Penalty, selectDecayedWeights } from './weight-decay.js';

type Tf = typeof tfTypes;

export interface TrainerOptions {
  tf: Tf;
  model: tfTypes.LayersModel;
  cfg: TrainConfig;
  seed: number;
  /** The model's default RandAugment magnitude (used when the manifest sets none). */
  defaultMagnitude: number;
  numClasses: number;
  data: LabeledData;
  pseudo?: PseudoSource;
  /** The stage's own prefix: checkpoints, metrics, model go below it. */
  store: ObjectStore;
  log: Logger;
  progress?: (label: string, total: number, unit?: string) => Progress;
  signal?: AbortSignal;
  backend: string;
  /** Called after each completed step (and its checkpoint, if any). Tests and tools use it. */
  onStep?: (step: number, info: { checkpointed: boolean }) => void;
  /** Names the progress bar (default: student when pseudo-labels are given, else teacher). */
  role?: 'teacher' | 'student' | 'baseline';
  /** A fixed step budget (the all-labels baseline: the teacher's); default from epochs x the data. */
  budget?: StepBudget;
}

export interface EpochMetrics {
  epoch: number;
  step: number;
  lr: number;
  trainLoss: number;
  trainAcc: number;
  heldoutLoss: number | null;
  heldoutAcc: number | null;
  imagesPerSec: number;
  seconds: number;
}

export interface TrainResult {
  steps: number;
  totalSteps: number;
  stepsPerEpoch: number;
  resumedFrom: number | null;
  epochs: EpochMetrics[];
  imagesPerSec: number;
  final: { heldoutLoss: number | null; heldoutAcc: number | null };
}

/** Thrown when the loss stops being a finite number. */
export class NonFiniteLossError extends Error {
  constructor(readonly step: number, readonly epoch: number, value: number) {
    super(`training loss is ${value} at step ${step} (epoch ${epoch}): stopping. Lower the learning rate or check the data; the last checkpoint before it is kept`);
    this.name = 'NonFiniteLossError';
  }
}

export const METRICS_JSONL = 'metrics.jsonl';

function namedArrays(vars: { name: string; read(): tfTypes.Tensor }[] | tfTypes.Variable[]): NamedArray[] {
  return vars.map((v) => {
    const t = 'read' in v && typeof v.read === 'function' ? v.read() : (v as tfTypes.Variable);
    return { name: v.name, shape: t.shape.slice(), data: t.dataSync() as Float32Array };
  });
}

export async function train(o: TrainerOptions): Promise<TrainResult> {
  const { tf, model, cfg, seed, data, store, log } = o;
  const plan = planSteps(cfg, data.train.count, o.budget);
  const { batch, stepsPerEpoch, totalSteps, endStep, schedule } = plan;
  const ra = randAugmentOptions(cfg, o.defaultMagnitude, data.train.size);
  const weights = model.weights; // all, incl. BN moving stats: what the EMA and checkpoints cover
  const trainable = model.trainableWeights;
  const vars = trainable.map((w) => w.read() as tfTypes.Variable);
  const { decayed } = selectDecayedWeights(model);
  const opt = new MomentumSgd(tf, vars, cfg.momentum, cfg.nesterov);
  const ema = cfg.ema.enabled ? new WeightEma(tf, weights, cfg.ema.decay, cfg.ema.warmup) : undefined;
  const ratio = o.pseudo ? o.pseudo.ratio : 0;
  const pseudoBatch = o.pseudo ? Math.max(1, Math.round(ratio * batch)) : 0;
  const K = o.numClasses;
  const S = data.train.size, C = data.train.channels, per = S * S * C;

  let epochs: EpochMetrics[] = [];
  // Running sums of the current epoch (checkpointed, so a resumed epoch reports the same averages).
  let epochLoss = 0, epochCorrect = 0, epochSeen = 0, epochSteps = 0, epochImages = 0;
  let start = 0;
  let resumedFrom: number | null = null;

  // ---- resume
  // Checkpoints of a different recipe/seed/data (the runner re-runs a stage whose config changed,
  // into the same prefix) are not resumed from: that run starts over. A different *model* under the
  // same recipe is an error instead (the shape check below), since it usually is a mistake.
  const recipeHash = createHash('sha256')
    .update(JSON.stringify({ cfg: { ...cfg, maxSteps: undefined }, seed, train: data.train.count, heldout: data.heldout.count, pseudo: o.pseudo?.size ?? 0, ratio, ...(o.budget ? { budget: o.budget } : {}) }))
    .digest('hex')
    .slice(0, 16);
  let ck = await loadLatestCheckpoint(store, (m) => log.warn(m));
  if (ck && ck.meta.state['recipe'] !== recipeHash) {
    log.warn(`checkpoints in ${ck.key.replace(/step-\d+\/$/, '')} were made with another recipe/seed/data: starting over`);
    await clearCheckpoints(store);
    ck = undefined;
  }
  if (ck) {
    const check = (group: 'weights' | 'slots' | 'ema', expected: { name: string; shape: number[] }[]) => {
      const got = ck.groups[group];
      if (got.length !== expected.length) {
        throw new Error(`checkpoint ${ck.key} does not match the model: it holds ${got.length} ${group} tensors, the model needs ${expected.length} (model changed between runs? delete the stage output to start over)`);
      }
      expected.forEach((e, i) => {
        const g = got[i]!;
        if (g.shape.join('x') !== e.shape.join('x')) {
          throw new Error(`checkpoint ${ck.key} does not match the model: ${group} tensor ${i} "${g.name}" has shape [${g.shape}] but the model's "${e.name}" is [${e.shape}] (model changed between runs? delete the stage output to start over)`);
        }
      });
    };
    check('weights', weights.map((w) => ({ name: w.originalName, shape: w.shape as number[] })));
    check('slots', trainable.map((w) => ({ name: w.originalName, shape: w.shape as number[] })));
    if (ema) check('ema', weights.map((w) => ({ name: w.originalName, shape: w.shape as number[] })));
    tf.tidy(() => {
      ck.groups.weights.forEach((a, i) => weights[i]!.write(tf.tensor(a.data, a.shape)));
      opt.load(ck.groups.slots.map((a) => tf.tensor(a.data, a.shape)));
      if (ema) ema.load(ck.groups.ema.map((a) => tf.tensor(a.data, a.shape)));
    });
    start = ck.meta.step;
    resumedFrom = start;
    epochs = (ck.meta.state['epochs'] as EpochMetrics[]) ?? [];
    const acc = ck.meta.state['epochSums'] as number[] | undefined;
    if (acc) [epochLoss, epochCorrect, epochSeen, epochSteps, epochImages] = acc as [number, number, number, number, number];
    log.info(`resuming from checkpoint ${ck.key} (step ${start} of ${endStep})`, { step: start });
  } else {
    log.info(`training from step 0: ${endStep} steps (${stepsPerEpoch}/epoch, batch ${batch}${pseudoBatch ? ` + ${pseudoBatch} pseudo-labeled` : ''}, peak lr ${schedule.peakLr.toFixed(4)})`);
  }

  const bar = o.progress?.(`train ${o.role ?? (o.pseudo ? 'student' : 'teacher')}`, endStep, 'steps');
  bar?.update(start);

  const writeMetrics = async () => {
    await store.put(METRICS_JSONL, epochs.map((e) => JSON.stringify(e)).join('\n') + (epochs.length ? '\n' : ''), { contentType: 'application/x-ndjson' });
  };
  const checkpoint = async (step: number) => {
    const groups = {
      weights: namedArrays(weights.map((w) => ({ name: w.originalName, read: () => w.read() }))),
      slots: namedArrays(trainable.map((w, i) => ({ name: w.originalName, read: () => opt.slots[i]! }))),
      ema: ema ? namedArrays(weights.map((w, i) => ({ name: w.originalName, read: () => ema.shadows[i]! }))) : [],
    };
    const key = await saveCheckpoint(store, step, groups, {
      recipe: recipeHash,
      epochs,
      epochSums: [epochLoss, epochCorrect, epochSeen, epochSteps, epochImages],
      // The data cursor and every RNG are functions of (seed, step); recorded for inspection.
      cursor: { epoch: Math.floor(step / stepsPerEpoch), position: step % stepsPerEpoch, stepsPerEpoch },
      seed,
      noise: modelNoiseState(),
    });
    await pruneCheckpoints(store, cfg.checkpoint.keep);
    return key;
  };

  let permEpoch = -1;
  let perm: Uint32Array = new Uint32Array(0);
  let epochStart = performance.now();
  let totalImages = 0, totalMs = 0;
  const x = new Float32Array((batch + pseudoBatch) * per);
  const labels = new Int32Array(batch);

  for (let step = start; step < endStep; step++) {
    if (o.signal?.aborted) {
      await checkpoint(step);
      throw o.signal.reason ?? new Error('aborted');
    }
    const t0 = performance.now();
    const epoch = Math.floor(step / stepsPerEpoch);
    const pos = step % stepsPerEpoch;
    if (epoch !== permEpoch) {
      perm = permutation(data.train.count, new Sfc32(mix(seed, 0xda7a, epoch)));
      permEpoch = epoch;
    }
    for (let i = 0; i < batch; i++) {
      const idx = perm[pos * batch + i]!;
      labels[i] = data.train.labels[idx]!;
      const img = { data: data.train.pixels.subarray(idx * per, (idx + 1) * per), width: S, height: S, channels: C };
      const aug = augmentImage(img, cfg, ra, new Sfc32(mix(seed, 0xa06, step, i)));
      normalizeInto(aug.data, C, x, i * per);
    }
    let pseudoTargets: Float32Array | undefined;
    if (o.pseudo) {
      const pb = await o.pseudo.batch(step, pseudoBatch, (img, j) => augmentImage(img, cfg, ra, new Sfc32(mix(seed, 0x5eed, step, j))));
      x.set(pb.pixels, batch * per);
      pseudoTargets = pb.targets;
    }
    seedModelNoise(mix(seed, 0x9015e, step));
    const lr = learningRate(schedule, step);

    let correct = 0;
    const { value, grads } = tf.tidy(() => {
      const xs = tf.tensor4d(x, [batch + pseudoBatch, S, S, C]);
      const ys = smoothLabels(tf, tf.tensor1d(labels, 'int32'), K, cfg.labelSmoothing);
      const pt = pseudoTargets ? tf.tensor2d(pseudoTargets, [pseudoBatch, K]) : undefined;
      let logitsLabeled: tfTypes.Tensor2D | undefined;
      const r = tf.variableGrads(() => {
        const logits = model.apply(xs, { training: true }) as tfTypes.Tensor2D;
        logitsLabeled = tf.keep(pt ? logits.slice([0, 0], [batch, K]) : logits);
        return studentLoss(tf, logits, ys, pt, ratio).add(l2Penalty(tf, decayed, cfg.weightDecay)) as tfTypes.Scalar;
      }, vars);
      const pred = logitsLabeled!.argMax(-1).dataSync();
      logitsLabeled!.dispose();
      for (let i = 0; i < batch; i++) if (pred[i] === labels[i]) correct++;
      return r;
    });
    const lossValue = (await value.data())[0]!;
    value.dispose();
    if (!Number.isFinite(lossValue)) {
      tf.dispose(Object.values(grads));
      throw new NonFiniteLossError(step, epoch, lossValue);
    }
    opt.apply(vars.map((v) => grads[v.name]!), lr);
    tf.dispose(Object.values(grads));
    ema?.update(step + 1);

    const ms = performance.now() - t0;
    totalMs += ms;
    totalImages += batch + pseudoBatch;
    epochLoss += lossValue;
    epochCorrect += correct;
    epochSeen += batch;
    epochSteps++;
    epochImages += batch + pseudoBatch;
    const done = step + 1;
    const ips = totalImages / (totalMs / 1000);
    bar?.update(done, { epoch: epoch + 1, loss: Number(lossValue.toFixed(4)), acc: Number((correct / batch).toFixed(3)), lr: Number(lr.toFixed(5)), 'img/s': Math.round(ips) });

    if (done % stepsPerEpoch === 0 || done === endStep) {
      const held = evaluate(o, ema);
      const m: EpochMetrics = {
        epoch: epoch + 1,
        step: done,
        lr,
        trainLoss: epochLoss / epochSteps,
        trainAcc: epochCorrect / epochSeen,
        heldoutLoss: held?.loss ?? null,
        heldoutAcc: held?.acc ?? null,
        imagesPerSec: epochImages / ((performance.now() - epochStart) / 1000),
        seconds: (performance.now() - epochStart) / 1000,
      };
      epochs = [...epochs.filter((e) => e.step < done), m];
      log.info(
        `epoch ${m.epoch} step ${done}/${endStep}: loss ${m.trainLoss.toFixed(4)} acc ${m.trainAcc.toFixed(3)}` +
          (held ? ` | held-out loss ${held.loss.toFixed(4)} acc ${held.acc.toFixed(3)}` : '') +
          ` | ${m.imagesPerSec.toFixed(1)} img/s`,
        { ...m },
      );
      await writeMetrics();
      epochLoss = epochCorrect = epochSeen = epochSteps = epochImages = 0;
      epochStart = performance.now();
    }
    const checkpointed = done % cfg.checkpoint.everySteps === 0 || done === endStep;
    if (checkpointed) await checkpoint(done);
    o.onStep?.(step, { checkpointed });
  }
  bar?.stop();
  if (start === endStep && resumedFrom !== null) log.info('all steps were already done; finishing');

  const final = evaluate(o, ema);
  opt.dispose();
  // Leave the EMA weights in the model: that is what gets exported and evaluated.
  if (ema) {
    weights.forEach((w, i) => w.write(ema.shadows[i]!));
    ema.dispose();
  }
  return {
    steps: endStep,
    totalSteps,
    stepsPerEpoch,
    resumedFrom,
    epochs,
    imagesPerSec: totalMs > 0 ? totalImages / (totalMs / 1000) : 0,
    final: { heldoutLoss: final?.loss ?? null, heldoutAcc: final?.acc ?? null },
  };
}

/** Held-out loss (plain CE) and accuracy with the EMA weights swapped in (inference mode). */
function evaluate(o: TrainerOptions, ema: WeightEma | undefined): { loss: number; acc: number } | undefined {
  const set = o.data.heldout;
  if (set.count === 0) return undefined;
  const { tf, model } = o;
  const weights = model.weights;
  const saved = ema ? weights.map((w) => w.read().clone()) : [];
  if (ema) weights.forEach((w, i) => w.write(ema.shadows[i]!));
  try {
    return evaluateSet(tf, model, set, o.cfg.evalBatchSize, o.numClasses);
  } finally {
    if (ema) {
      weights.forEach((w, i) => w.write(saved[i]!));
      tf.dispose(saved);
    }
  }
}

export function evaluateSet(tf: Tf, model: tfTypes.LayersModel, set: ImageSet, batchSize: number, numClasses: number): { loss: number; acc: number } {
  const per = set.size * set.size * set.channels;
  let lossSum = 0, correct = 0;
  for (let b = 0; b < set.count; b += batchSize) {
    const n = Math.min(batchSize, set.count - b);
    const x = new Float32Array(n * per);
    for (let i = 0; i < n; i++) normalizeInto(set.pixels.subarray((b + i) * per, (b + i + 1) * per), set.channels, x, i * per);
    const labels = set.labels.subarray(b, b + n);
    const [l, pred] = tf.tidy(() => {
      const logits = model.apply(tf.tensor4d(x, [n, set.size, set.size, set.channels]), { training: false }) as tfTypes.Tensor2D;
      const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses).toFloat() as tfTypes.Tensor2D;
      return [softCrossEntropy(tf, logits, ys).mul(n).dataSync()[0]!, logits.argMax(-1).dataSync()];
    });
    lossSum += l;
    for (let i = 0; i < n; i++) if (pred[i] === labels[i]) correct++;
  }
  return { loss: lossSum / set.count, acc: correct / set.count };
}
