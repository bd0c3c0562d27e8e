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
 *
 * Data-parallel (`workers` > 1): this function is the coordinator. The step's work — input path,
 * forward/backward, the gradient reduction and the update — runs in the replicas (replica.ts,
 * replicas.ts), each on its slice of the global batch; this loop only sequences steps, metrics,
 * evaluations and checkpoints (read from replica 0: all replicas hold the same state). With one
 * worker the single replica runs in this thread: the numerics are those of the single-threaded
 * recipe. A checkpoint does not depend on the worker count, so a run checkpointed with N workers
 * resumes with M (the following steps' numerics then differ from an N-worker run: the log says so).
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import type * as tfTypes from '@tensorflow/tfjs';
import type { TrainConfig } from '../manifest/sections/train.js';
import type { Transport } from '../parallel/protocol.js';
import type { Logger, Progress } from '../runner/stage.js';
import type { StoreSettings } from '../store/settings.js';
import type { ObjectStore } from '../store/types.js';
import { clearCheckpoints, dropCheckpointsAfter, loadCheckpoint, loadLatestCheckpoint, pruneCheckpoints, saveCheckpoint } from './checkpoint.js';
import { DIVERGENCE_DEFAULTS, DivergenceError, DivergenceMonitor, type DivergenceState, type Verdict } from './divergence.js';
import type { ImageSet, LabeledData } from './data.js';
import type { PseudoSource } from './pseudo.js';
import { combineHeldout, heldoutBatchCount, heldoutBatches, type ReplicaPlan } from './replica.js';
import { startReplicas } from './replicas.js';
import { mix } from './rng.js';
import { learningRate } from './schedule.js';
import { planSteps, pseudoBatchOf, type StepBudget, type TrainRole } from './step-plan.js';

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
  /**
   * Called after each completed step (and its checkpoint, if any) with the step's global-batch loss
   * and, where Node can tell, the CPU time of the slowest replica's thread. Tests and tools use it.
   */
  onStep?: (step: number, info: { checkpointed: boolean; loss: number; cpuMs?: number }) => void;
  /** Names the progress bar (default: student when pseudo-labels are given, else teacher). */
  role?: TrainRole;
  /** A fixed step budget (the control and the all-labels bound: the student's); default from epochs x the data. */
  budget?: StepBudget;
  /** The manifest setting a divergence error asks to lower, and its value (default `train.baseLr` and cfg.baseLr). */
  lrSetting?: { path: string; value: number };
  /** Data-parallel replicas (resolved count; default 1 = this thread only). */
  workers?: number;
  /** How replicas beyond one run: worker threads (wasm/cpu, default) or processes (one per GPU). */
  transport?: Transport;
  /** Process transport: the environment of worker `rank` (its CUDA_VISIBLE_DEVICES). */
  workerEnv?: (rank: number) => NodeJS.ProcessEnv;
  /** How workers reach the run's stores (a student's unlabeled shards); default: the environment's. */
  storeSettings?: StoreSettings;
  /** Process transport: each spawned worker process (tests kill one for real). */
  onWorkerSpawn?: (rank: number, child: ChildProcess) => void;
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
  /** Data-parallel replicas that ran the epoch's steps, and the share of their step time spent in the gradient reduction. */
  workers?: number;
  reduceWaitShare?: number;
}

export interface TrainResult {
  steps: number;
  totalSteps: number;
  stepsPerEpoch: number;
  resumedFrom: number | null;
  epochs: EpochMetrics[];
  imagesPerSec: number;
  final: { heldoutLoss: number | null; heldoutAcc: number | null };
  workers: number;
  /** Mean share of replica step time spent in the gradient reduction (incl. waiting for the slowest replica). */
  reduceWaitShare: number;
  /** Divergence-guard retries taken (each went back to a good checkpoint) and the learning-rate scale they left. */
  divergence: { retries: number; lrScale: number };
}

/** Thrown when the loss stops being a finite number. */
export class NonFiniteLossError extends Error {
  constructor(readonly step: number, readonly epoch: number, value: number) {
    super(`training loss is ${value} at step ${step} (epoch ${epoch}): stopping. Lower the learning rate or check the data; the last checkpoint before it is kept`);
    this.name = 'NonFiniteLossError';
  }
}

export const METRICS_JSONL = 'metrics.jsonl';

/** The per-epoch records and the current epoch's running sums a checkpoint carries (resume, rewind). */
function epochStateOf(state: Record<string, unknown>): { epochs: EpochMetrics[]; sums: [number, number, number, number, number] } {
  const sums = state['epochSums'] as [number, number, number, number, number] | undefined;
  return { epochs: (state['epochs'] as EpochMetrics[] | undefined) ?? [], sums: sums ?? [0, 0, 0, 0, 0] };
}

export async function train(o: TrainerOptions): Promise<TrainResult> {
  const { tf, model, cfg, seed, data, store, log } = o;
  const plan = planSteps(cfg, data.train.count, o.budget);
  const { batch, stepsPerEpoch, totalSteps, endStep, schedule } = plan;
  const ratio = o.pseudo ? o.pseudo.ratio : 0;
  const pseudoBatch = o.pseudo ? pseudoBatchOf(ratio, batch) : 0;
  const weights = model.weights; // all, incl. BN moving stats: what the EMA and checkpoints cover
  const trainable = model.trainableWeights;
  const workers = Math.max(1, Math.min(o.workers ?? 1, batch));
  if (workers < (o.workers ?? 1)) log.warn(`${o.workers} workers requested but the batch holds ${batch} images: using ${workers}`);

  let epochs: EpochMetrics[] = [];
  // Running sums of the current epoch (checkpointed, so a resumed epoch reports the same averages).
  let epochLoss = 0, epochCorrect = 0, epochSeen = 0, epochSteps = 0, epochImages = 0;
  let start = 0;
  let resumedFrom: number | null = null;

  // ---- resume
  // Checkpoints of a different recipe/seed/data (the runner re-runs a stage whose config changed,
  // into the same prefix) are not resumed from: that run starts over. A different *model* under the
  // same recipe is an error instead (the shape check below), since it usually is a mistake. The
  // worker count is not part of the recipe: a checkpoint resumes with any number of workers.
  const recipeHash = createHash('sha256')
    .update(JSON.stringify({ cfg: { ...cfg, maxSteps: undefined, workers: undefined }, seed, train: data.train.count, heldout: data.heldout.count, pseudo: o.pseudo?.size ?? 0, ratio, ...(o.budget ? { budget: o.budget } : {}) }))
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
    if (cfg.ema.enabled) check('ema', weights.map((w) => ({ name: w.originalName, shape: w.shape as number[] })));
  }

  // ---- divergence guard: judges every held-out evaluation (pipeline/train/divergence.ts); on a
  // verdict, training goes back to the last good checkpoint with a smaller learning rate, or stops
  // with an error naming the step, the numbers and the setting. Its state rides in the checkpoints.
  const guardCfg = cfg.divergence;
  const guard = guardCfg?.enabled === false ? undefined : new DivergenceMonitor(o.numClasses, { ...DIVERGENCE_DEFAULTS, ...(guardCfg ?? {}) });
  let lrScale = 1;
  /** The newest checkpoint followed by a clean evaluation (no strikes): where a retry goes back to. */
  let goodCheckpoint: number | undefined;
  let lastCheckpoint: number | undefined;

  const replicaPlan: ReplicaPlan = { cfg, seed, numClasses: o.numClasses, defaultMagnitude: o.defaultMagnitude, batch, pseudoBatch, ratio, stepsPerEpoch };
  const replicas = await startReplicas({
    tf, model, plan: replicaPlan, data, pseudo: o.pseudo, workers, transport: o.transport ?? 'thread', backend: o.backend, log, storeSettings: o.storeSettings, env: o.workerEnv, onSpawn: o.onWorkerSpawn,
  });
  try {
    if (ck) {
      await replicas.load(ck.groups);
      start = ck.meta.step;
      resumedFrom = start;
      ({ epochs, sums: [epochLoss, epochCorrect, epochSeen, epochSteps, epochImages] } = epochStateOf(ck.meta.state));
      log.info(`resuming from checkpoint ${ck.key} (step ${start} of ${endStep})`, { step: start });
      lrScale = (ck.meta.state['lrScale'] as number | undefined) ?? 1;
      const guardState = ck.meta.state['divergence'] as DivergenceState | undefined;
      if (guard && guardState) guard.load(guardState);
      goodCheckpoint = ck.meta.state['goodCheckpoint'] as number | undefined;
      lastCheckpoint = start;
      if (lrScale !== 1) log.info(`the learning rate runs at x${lrScale} since a divergence retry before this checkpoint`);
      const ckWorkers = (ck.meta.state['workers'] as number | undefined) ?? 1;
      if (ckWorkers !== workers) {
        log.warn(
          `checkpoint ${ck.key} was written by a ${ckWorkers}-worker run; resuming with ${workers} workers: training continues from its exact state, ` +
            `but the numerics of the remaining steps differ from an uninterrupted ${ckWorkers}-worker run (BN batch statistics are per worker and the gradient sum order depends on the worker count)`,
          { checkpointWorkers: ckWorkers, workers },
        );
      }
    } else {
      log.info(`training from step 0: ${endStep} steps (${stepsPerEpoch}/epoch, batch ${batch}${pseudoBatch ? ` + ${pseudoBatch} pseudo-labeled` : ''}, peak lr ${schedule.peakLr.toFixed(4)})`);
    }
    if (workers > 1) log.info(`data-parallel: ${workers} workers (${replicas.transport}s), ${Math.floor(batch / workers)}-${Math.ceil(batch / workers)} labeled images each per step, BN statistics per worker`, { workers });

    const bar = o.progress?.(`train ${o.role ?? (o.pseudo ? 'student' : 'teacher')}`, endStep, 'steps');
    bar?.update(start);

    const writeMetrics = async () => {
      await store.put(METRICS_JSONL, epochs.map((e) => JSON.stringify(e)).join('\n') + (epochs.length ? '\n' : ''), { contentType: 'application/x-ndjson' });
    };
    const checkpoint = async (step: number) => {
      const key = await saveCheckpoint(store, step, await replicas.state(), {
        recipe: recipeHash,
        epochs,
        epochSums: [epochLoss, epochCorrect, epochSeen, epochSteps, epochImages],
        // The data cursor and every RNG are functions of (seed, step); recorded for inspection.
        cursor: { epoch: Math.floor(step / stepsPerEpoch), position: step % stepsPerEpoch, stepsPerEpoch },
        seed,
        noise: { seed: mix(seed, 0x9015e, step), counter: 0 },
        workers,
        ...(lrScale !== 1 ? { lrScale } : {}),
        ...(guard ? { divergence: guard.state(), ...(goodCheckpoint !== undefined ? { goodCheckpoint } : {}) } : {}),
      });
      lastCheckpoint = step;
      await pruneCheckpoints(store, cfg.checkpoint.keep, goodCheckpoint);
      return key;
    };
    const lrSetting = o.lrSetting ?? { path: 'train.baseLr', value: cfg.baseLr };
    /** After a divergence verdict: the step to continue from (a good checkpoint's), or a DivergenceError. */
    const rewind = async (verdict: Extract<Verdict, { kind: 'diverged' }>): Promise<number> => {
      const g = guard!;
      const scale = g.retry();
      if (scale === null) throw new DivergenceError(verdict, lrSetting, g.retries);
      if (goodCheckpoint === undefined) throw new DivergenceError(verdict, lrSetting, g.retries - 1, 'no checkpoint followed by a clean evaluation yet');
      log.warn(
        `training diverged at step ${verdict.step} (epoch ${verdict.epoch}): ${verdict.reason}. Going back to the checkpoint of step ${goodCheckpoint} ` +
          `and retrying with the learning rate x${scale} (retry ${g.retries} of ${g.settings.maxRetries}; ${lrSetting.path} is ${lrSetting.value})`,
        { step: verdict.step, trainLoss: verdict.trainLoss, runningMin: verdict.runningMin, heldoutAcc: verdict.heldoutAcc, lrScale: scale, backTo: goodCheckpoint },
      );
      const back = await loadCheckpoint(store, goodCheckpoint);
      await replicas.load(back.groups);
      await dropCheckpointsAfter(store, goodCheckpoint);
      lastCheckpoint = goodCheckpoint;
      lrScale = scale;
      ({ epochs, sums: [epochLoss, epochCorrect, epochSeen, epochSteps, epochImages] } = epochStateOf(back.meta.state));
      epochWait = 0;
      epochStart = performance.now();
      await writeMetrics();
      return goodCheckpoint;
    };

    let epochStart = performance.now();
    let clean = false;
    let totalImages = 0, totalMs = 0, epochWait = 0, totalWait = 0, waitSteps = 0;

    for (let step = start; step < endStep; step++) {
      if (o.signal?.aborted) {
        await checkpoint(step);
        throw o.signal.reason ?? new Error('aborted');
      }
      const epoch = Math.floor(step / stepsPerEpoch);
      const lr = learningRate(schedule, step) * lrScale;

      // ---- the step: input, forward/backward, reduction and update, in the replicas
      const t0 = performance.now();
      const r = await replicas.step(step, lr);
      const ms = performance.now() - t0;
      if (!Number.isFinite(r.loss)) {
        if (!guard) throw new NonFiniteLossError(step, epoch, r.loss);
        const verdict = guard.observe({ step: step + 1, epoch: epoch + 1, trainLoss: r.loss, heldoutAcc: null, warm: true });
        if (verdict.kind === 'diverged') {
          step = (await rewind(verdict)) - 1; // the loop's step++ continues at the checkpoint's step
          continue;
        }
      }

      // ---- after the step: metrics, progress, evaluation, checkpoint, observers
      totalMs += ms;
      totalImages += r.images;
      totalWait += r.reduceShare;
      waitSteps++;
      epochWait += r.reduceShare;
      epochLoss += r.loss;
      epochCorrect += r.correct;
      epochSeen += r.labeled;
      epochSteps++;
      epochImages += r.images;
      const done = step + 1;
      const ips = totalImages / (totalMs / 1000);
      bar?.update(done, {
        epoch: epoch + 1,
        loss: Number(r.loss.toFixed(4)),
        acc: Number((r.correct / r.labeled).toFixed(3)),
        lr: Number(lr.toFixed(5)),
        'img/s': Math.round(ips),
        ...(workers > 1 ? { workers, 'reduce wait': `${(r.reduceShare * 100).toFixed(1)}%` } : {}),
      });

      if (done % stepsPerEpoch === 0 || done === endStep) {
        const held = await replicas.evaluate();
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
          workers,
          reduceWaitShare: epochWait / epochSteps,
        };
        epochs = [...epochs.filter((e) => e.step < done), m];
        log.info(
          `epoch ${m.epoch} step ${done}/${endStep}: loss ${m.trainLoss.toFixed(4)} acc ${m.trainAcc.toFixed(3)}` +
            (held ? ` | held-out loss ${held.loss.toFixed(4)} acc ${held.acc.toFixed(3)}` : '') +
            ` | ${m.imagesPerSec.toFixed(1)} img/s` +
            (workers > 1 ? ` on ${workers} workers, ${((m.reduceWaitShare ?? 0) * 100).toFixed(1)}% of step time in the gradient reduction` : ''),
          { ...m },
        );
        await writeMetrics();
        epochLoss = epochCorrect = epochSeen = epochSteps = epochImages = epochWait = 0;
        epochStart = performance.now();
        if (guard) {
          // The chance rule needs a hold-out that can tell chance from a weak model: 2 images per class at least.
          const heldoutAcc = data.heldout.count >= 2 * o.numClasses ? m.heldoutAcc : null;
          const verdict = guard.observe({ step: done, epoch: m.epoch, trainLoss: m.trainLoss, heldoutAcc, warm: done > schedule.warmupSteps });
          if (verdict.kind === 'diverged') {
            step = (await rewind(verdict)) - 1;
            continue;
          }
          const g = guard.state();
          clean = g.lossStrikes === 0 && g.chanceStrikes === 0;
        }
      }
      const checkpointed = done % cfg.checkpoint.everySteps === 0 || done === endStep;
      // A clean evaluation vouches for the newest checkpoint (this step's, when one is written now).
      if (clean) {
        if (checkpointed) goodCheckpoint = done;
        else if (lastCheckpoint !== undefined) goodCheckpoint = lastCheckpoint;
        clean = false;
      }
      if (checkpointed) await checkpoint(done);
      o.onStep?.(step, { checkpointed, loss: r.loss, ...(r.cpuMs !== undefined ? { cpuMs: r.cpuMs } : {}) });
    }
    bar?.stop();
    if (start === endStep && resumedFrom !== null) log.info('all steps were already done; finishing');

    const final = await replicas.evaluate();
    // Leave the EMA weights in the model: that is what gets exported and evaluated.
    await replicas.finish();
    return {
      steps: endStep,
      totalSteps,
      stepsPerEpoch,
      resumedFrom,
      epochs,
      imagesPerSec: totalMs > 0 ? totalImages / (totalMs / 1000) : 0,
      final: { heldoutLoss: final?.loss ?? null, heldoutAcc: final?.acc ?? null },
      workers,
      reduceWaitShare: waitSteps > 0 ? totalWait / waitSteps : 0,
      divergence: { retries: guard?.retries ?? 0, lrScale },
    };
  } finally {
    await replicas.close();
  }
}

/** Held-out loss (plain CE) and accuracy of `model` as it is (inference mode), in one thread. */
export function evaluateSet(tf: Tf, model: tfTypes.LayersModel, set: ImageSet, batchSize: number, numClasses: number): { loss: number; acc: number } {
  return combineHeldout([heldoutBatches(tf, model, set, batchSize, numClasses, 0, heldoutBatchCount(set.count, batchSize))], set.count);
}
