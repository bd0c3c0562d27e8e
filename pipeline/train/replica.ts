/**
 * One data-parallel replica of the model being trained: its copy of the weights, momentum slots and
 * EMA shadows, and its slice of every global batch. With one worker the trainer runs a single
 * replica in its own thread (exactly the single-threaded recipe); with N it runs one per worker
 * (pipeline/train/replica-worker.ts) and they stay identical step after step:
 *
 *   input     worker r builds positions sliceOf(B, r, N) of the step's labeled batch and
 *             sliceOf(rB, r, N) of its pseudo-labeled batch, with the same per-sample generators
 *             as one worker would (seeded by (seed, step, global position)), so the global batch is
 *             the same whatever N is. Dropout / stochastic-depth masks likewise follow the global
 *             row (model/noise.ts setModelNoiseRows).
 *   gradient  forward + backward on the slice. BN normalises with the slice's batch statistics
 *             (per-replica BN, as the paper's TPU training). The loss of an uneven slice is scaled
 *             so that the mean of the N replica losses is the global batch's loss.
 *   reduce    one vector per replica — gradients, BN moving statistics, loss — averaged over the
 *             replicas in rank order (parallel/reduce.ts): every replica gets the same bits.
 *   update    each replica writes the averaged BN moving statistics, applies the averaged gradient
 *             with momentum SGD and updates its EMA: same inputs, same ops, same result, so the
 *             weights, slots and EMA stay identical on every replica without a broadcast.
 * A non-finite global loss skips the update on every replica (the trainer then stops).
 */
import { createHash } from 'node:crypto';
import type * as tfTypes from '@tensorflow/tfjs';
import { readInto, valuesOf } from '../backend/read-into.js';
import { at } from '../checked.js';
import type { TrainConfig } from '../manifest/sections/train.js';
import { seedModelNoise, setModelNoiseRows } from '../model/noise.js';
import type { NamedArray } from './checkpoint.js';
import { augmentImage, randAugmentOptions } from './augment.js';
import { normalizeInto, type ImageSet } from './data.js';
import { WeightEma } from './ema.js';
import { applyFusedUpdate, heapBackend, type FusedUpdate } from './fused-update.js';
import { smoothLabels, softCrossEntropy, studentLoss } from './loss.js';
import { MomentumSgd } from './optimizer.js';
import type { PseudoSource } from './pseudo.js';
import type { RandAugmentOptions } from './randaugment.js';
import { Sfc32, mix, permutation } from './rng.js';
import { sliceOf, type Slice } from './slices.js';
import { addL2Gradient, selectDecayedWeights, l2Penalty, l2PenaltyOf } from './weight-decay.js';

type Tf = typeof tfTypes;

/** What every replica of a run shares (structured-cloneable: it is sent to worker threads). */
export interface ReplicaPlan {
  cfg: TrainConfig;
  seed: number;
  numClasses: number;
  /** The model's default RandAugment magnitude (used when the manifest sets none). */
  defaultMagnitude: number;
  /** Global labeled batch. */
  batch: number;
  /** Global pseudo-labeled batch (0 for teacher and baseline). */
  pseudoBatch: number;
  ratio: number;
  stepsPerEpoch: number;
}

/** The tensors a checkpoint holds, by group, in model order. */
export interface ReplicaState {
  weights: NamedArray[];
  slots: NamedArray[];
  ema: NamedArray[];
}

export interface StepReport {
  /** The global batch's loss (after the reduction: the same on every replica). */
  loss: number;
  /** Correct top-1 predictions on this replica's labeled images. */
  correct: number;
  labeled: number;
  /** Labeled + pseudo-labeled images of this replica. */
  images: number;
  /** Wall time of the step in this replica, and the part spent in the reduction (incl. waiting for peers). */
  ms: number;
  reduceMs: number;
  /**
   * CPU time of this replica's thread for the step (Node >= 22.19 / 23.9: process.threadCpuUsage),
   * the part other load on the machine does not inflate; undefined where Node cannot tell.
   */
  cpuMs?: number;
}

type CpuUsage = { user: number; system: number };
const threadCpuUsage = (process as unknown as { threadCpuUsage?: () => CpuUsage }).threadCpuUsage?.bind(process);
const threadCpuMs = (): number | undefined => {
  const u = threadCpuUsage?.();
  return u ? (u.user + u.system) / 1000 : undefined;
};

/** Per-batch held-out results of a range of eval batches (summed by the caller in batch order). */
export interface HeldoutPart {
  lossSums: number[];
  correct: number[];
}

export interface ReplicaOptions {
  tf: Tf;
  model: tfTypes.LayersModel;
  plan: ReplicaPlan;
  train: ImageSet;
  heldout: ImageSet;
  pseudo?: PseudoSource;
  rank: number;
  size: number;
  /** The mean over replicas (rank order); required when size > 1. */
  allReduce?: (local: Float32Array) => Promise<Float32Array>;
}

export class Replica {
  private readonly tf: Tf;
  private readonly weights: tfTypes.LayerVariable[];
  private readonly trainable: tfTypes.LayerVariable[];
  private readonly vars: tfTypes.Variable[];
  /** Non-trainable weights (BN moving mean / variance): averaged over replicas every step. */
  private readonly moving: tfTypes.LayerVariable[];
  private readonly decayed: tfTypes.LayerVariable[];
  /** Per trainable variable: in the L2 penalty? (its gradient is added in `pack`, see addL2Gradient) */
  private readonly decayedMask: boolean[];
  /**
   * The L2 penalty's gradient is added to the flat gradient vector (pack) rather than taken by
   * autodiff, wherever the step goes through that vector: the fused update on the wasm heap, or
   * the reduction of several replicas. Elsewhere (one replica on tfjs-node or cpu) it stays on the tape.
   */
  private readonly l2InPack: boolean;
  private readonly opt: MomentumSgd;
  private readonly ema?: WeightEma;
  private readonly ra: RandAugmentOptions;
  private readonly labeled: Slice;
  private readonly pseudoSlice: Slice;
  /** Loss weights that make the mean of the replica losses the global loss (1 for even slices). */
  private readonly lossWeights: { labeled: number; pseudo: number };
  private readonly noiseRows?: { global: Int32Array; total: number };
  private readonly x: Float32Array;
  private readonly labels: Int32Array;
  private permEpoch = -1;
  private perm: Uint32Array = new Uint32Array(0);

  constructor(private readonly o: ReplicaOptions) {
    const { tf, model, plan, rank, size } = o;
    if (size > 1 && !o.allReduce) throw new Error('a replica of a multi-worker run needs allReduce');
    if (plan.batch < size) throw new Error(`global batch ${plan.batch} is smaller than the number of workers (${size}): every worker needs at least one labeled image`);
    this.tf = tf;
    this.weights = model.weights; // all, incl. BN moving stats: what the EMA and checkpoints cover
    this.trainable = model.trainableWeights;
    this.vars = this.trainable.map((w) => w.read() as tfTypes.Variable);
    this.moving = model.nonTrainableWeights;
    this.decayed = selectDecayedWeights(model).decayed;
    const decayedVars = new Set<tfTypes.Tensor>(this.decayed.map((w) => w.read()));
    this.decayedMask = this.vars.map((v) => decayedVars.has(v));
    this.opt = new MomentumSgd(tf, this.vars, plan.cfg.momentum, plan.cfg.nesterov);
    this.ema = plan.cfg.ema.enabled ? new WeightEma(tf, this.weights, plan.cfg.ema.decay, plan.cfg.ema.warmup) : undefined;
    this.ra = randAugmentOptions(plan.cfg, plan.defaultMagnitude, o.train.size);
    this.labeled = sliceOf(plan.batch, rank, size);
    this.pseudoSlice = sliceOf(plan.pseudoBatch, rank, size);
    const nl = this.labeled.to - this.labeled.from;
    const np = this.pseudoSlice.to - this.pseudoSlice.from;
    this.lossWeights = {
      labeled: (nl * size) / plan.batch,
      pseudo: plan.pseudoBatch > 0 ? (np * size) / plan.pseudoBatch : 1,
    };
    if (size > 1) {
      const global = new Int32Array(nl + np);
      for (let r = 0; r < nl; r++) global[r] = this.labeled.from + r;
      for (let r = 0; r < np; r++) global[nl + r] = plan.batch + this.pseudoSlice.from + r;
      this.noiseRows = { global, total: plan.batch + plan.pseudoBatch };
    }
    const per = o.train.size * o.train.size * o.train.channels;
    this.x = new Float32Array((nl + np) * per);
    this.labels = new Int32Array(nl);
    this.heap = heapBackend(tf);
    this.l2InPack = this.heap !== undefined || size > 1;
    this.fused = { vars: this.vars, opt: this.opt, moving: this.moving.map((w) => w.read() as tfTypes.Variable), weights: this.weights.map((w) => w.read() as tfTypes.Variable), ema: this.ema };
  }

  /** The wasm backend's heap, where the update after the gradients runs as SIMD kernels (fused-update.ts); else tf ops. */
  private readonly heap: ReturnType<typeof heapBackend>;
  private readonly fused: FusedUpdate;

  /** One optimizer step on this replica's slice of step `step`'s global batch. */
  async step(step: number, lr: number): Promise<StepReport> {
    const t0 = performance.now();
    const c0 = threadCpuMs();
    const { tf, o } = this;
    const { plan } = o;
    const { cfg, seed, batch, stepsPerEpoch } = plan;
    const K = plan.numClasses;
    const set = o.train;
    const S = set.size, C = set.channels, per = S * S * C;
    const nl = this.labeled.to - this.labeled.from;
    const np = this.pseudoSlice.to - this.pseudoSlice.from;
    const epoch = Math.floor(step / stepsPerEpoch);
    const pos = step % stepsPerEpoch;
    if (epoch !== this.permEpoch) {
      this.perm = permutation(set.count, new Sfc32(mix(seed, 0xda7a, epoch)));
      this.permEpoch = epoch;
    }
    for (let k = 0; k < nl; k++) {
      const i = this.labeled.from + k;
      const idx = this.perm[pos * batch + i]!;
      this.labels[k] = at(set.labels, idx, 'labeled training images');
      const img = { data: set.pixels.subarray(idx * per, (idx + 1) * per), width: S, height: S, channels: C };
      const aug = augmentImage(img, cfg, this.ra, new Sfc32(mix(seed, 0xa06, step, i)));
      normalizeInto(aug.data, C, this.x, k * per);
    }
    let pseudoTargets: Float32Array | undefined;
    if (o.pseudo && np > 0) {
      const pb = await o.pseudo.batch(
        step,
        plan.pseudoBatch,
        (img, j) => augmentImage(img, cfg, this.ra, new Sfc32(mix(seed, 0x5eed, step, j))),
        this.pseudoSlice.from,
        this.pseudoSlice.to,
      );
      this.x.set(pb.pixels, nl * per);
      pseudoTargets = pb.targets;
    }
    seedModelNoise(mix(seed, 0x9015e, step));
    setModelNoiseRows(this.noiseRows);

    let correct = 0;
    const { value, grads } = tf.tidy(() => {
      const xs = tf.tensor4d(this.x, [nl + np, S, S, C]);
      const ys = smoothLabels(tf, tf.tensor1d(this.labels, 'int32'), K, cfg.labelSmoothing);
      const pt = pseudoTargets ? tf.tensor2d(pseudoTargets, [np, K]) : undefined;
      let logitsLabeled: tfTypes.Tensor2D | undefined;
      const r = tf.variableGrads(() => {
        const logits = o.model.apply(xs, { training: true }) as tfTypes.Tensor2D;
        logitsLabeled = tf.keep(pt ? logits.slice([0, 0], [nl, K]) : logits);
        const data = studentLoss(tf, logits, ys, pt, plan.ratio, this.lossWeights);
        return (this.l2InPack ? data : data.add(l2Penalty(tf, this.decayed, cfg.weightDecay))) as tfTypes.Scalar;
      }, this.vars);
      if (!logitsLabeled) throw new Error('training step: the model was not applied to the batch');
      const pred = logitsLabeled.argMax(-1).dataSync();
      logitsLabeled.dispose();
      for (let i = 0; i < nl; i++) if (pred[i] === this.labels[i]) correct++;
      return r;
    });
    setModelNoiseRows(undefined);
    let loss = (await value.data())[0]!;
    value.dispose();
    let gradList = this.vars.map((v) => {
      const g = grads[v.name];
      if (!g) throw new Error(`training step: no gradient for trainable variable ${v.name}`);
      return g;
    });
    let reduceMs = 0;
    // This replica's [gradients | BN moving statistics | loss], where the L2 penalty goes through
    // it (its loss then includes the penalty, as it does when autodiff takes it).
    const local = this.l2InPack ? this.pack(gradList, loss) : undefined;
    if (local) loss = local[local.length - 1]!;
    // The replicas' average of that vector.
    let mean: Float32Array | undefined;
    if (local && o.allReduce && o.size > 1) {
      tf.dispose(gradList);
      gradList = [];
      const r0 = performance.now();
      mean = await o.allReduce(local);
      reduceMs = performance.now() - r0;
      loss = mean[mean.length - 1]!;
    }
    if (Number.isFinite(loss)) {
      if (this.heap && local) {
        // One replica's own gradients go through the same flat vector (its moving statistics are
        // already in the model: the forward pass wrote them).
        applyFusedUpdate(tf, this.heap, this.fused, mean ?? local, lr, step + 1, mean !== undefined);
      } else {
        if (mean) gradList = this.unpack(mean);
        this.opt.apply(gradList, lr);
        this.ema?.update(step + 1);
      }
    }
    tf.dispose(gradList);
    const c1 = threadCpuMs();
    return { loss, correct, labeled: nl, images: nl + np, ms: performance.now() - t0, reduceMs, cpuMs: c0 !== undefined && c1 !== undefined ? c1 - c0 : undefined };
  }

  /** Length of the vector each replica contributes to the step's reduction. */
  static reduceLength(model: tfTypes.LayersModel): number {
    const count = (ws: tfTypes.LayerVariable[]) => ws.reduce((n, w) => n + w.shape.reduce((a: number, b) => a * (b ?? 1), 1), 0);
    return count(model.trainableWeights) + count(model.nonTrainableWeights) + 1;
  }

  /**
   * [gradients + L2 gradient in variable order | BN moving statistics | data loss + L2 penalty], in
   * a buffer reused every step (the reduction copies it before this replica's next step can write it).
   */
  private pack(grads: tfTypes.Tensor[], dataLoss: number): Float32Array {
    this.packed ??= new Float32Array(Replica.reduceLength(this.o.model));
    const out = this.packed;
    const wd = this.o.plan.cfg.weightDecay;
    let offset = 0;
    let squares = 0;
    grads.forEach((g, i) => {
      readInto(this.tf, g, out, offset);
      // Steps reach `pack` exactly where l2InPack holds (the heap's fused update, several replicas).
      if (wd !== 0 && this.decayedMask[i]) squares += addL2Gradient(valuesOf(this.tf, at(this.vars, i, 'trainable variables')), wd, out, offset);
      offset += g.size;
    });
    for (const w of this.moving) {
      const t = w.read();
      readInto(this.tf, t, out, offset);
      offset += t.size;
    }
    out[offset] = dataLoss + l2PenaltyOf(squares, wd);
    return out;
  }

  private packed?: Float32Array;

  /**
   * Writes the averaged moving statistics; returns the averaged gradients (caller disposes, before
   * the next reduction: on the cpu backend they may alias `mean`).
   */
  private unpack(mean: Float32Array): tfTypes.Tensor[] {
    const { tf } = this;
    let offset = 0;
    const grads = this.vars.map((v) => {
      const t = tf.tensor(mean.subarray(offset, offset + v.size), v.shape);
      offset += v.size;
      return t;
    });
    tf.tidy(() => {
      for (const w of this.moving) {
        const size = w.shape.reduce((a: number, b) => a * (b ?? 1), 1);
        // A copy: `mean` may be the reduction's shared buffer, and the cpu backend keeps the array
        // it is given (a variable must not alias memory the next reduction overwrites).
        w.write(tf.tensor(mean.slice(offset, offset + size), w.shape as number[]));
        offset += size;
      }
    });
    return grads;
  }

  /**
   * Held-out loss sums and correct counts of eval batches [from, to) (batches of `evalBatchSize`),
   * with the EMA weights swapped in (inference mode), as the single-replica evaluation does.
   */
  evaluate(from: number, to: number): HeldoutPart {
    const { tf, weights, ema } = this;
    const saved = ema ? weights.map((w) => w.read().clone()) : [];
    if (ema) weights.forEach((w, i) => w.write(ema.shadows[i]!));
    try {
      return heldoutBatches(tf, this.o.model, this.o.heldout, this.o.plan.cfg.evalBatchSize, this.o.plan.numClasses, from, to);
    } finally {
      if (ema) {
        weights.forEach((w, i) => w.write(saved[i]!));
        tf.dispose(saved);
      }
    }
  }

  state(): ReplicaState {
    const named = (list: { name: string; t: tfTypes.Tensor }[]): NamedArray[] => list.map(({ name, t }) => ({ name, shape: t.shape.slice(), data: t.dataSync() as Float32Array }));
    return {
      weights: named(this.weights.map((w) => ({ name: w.originalName, t: w.read() }))),
      slots: named(this.trainable.map((w, i) => ({ name: w.originalName, t: this.opt.slots[i]! }))),
      ema: this.ema ? named(this.weights.map((w, i) => ({ name: w.originalName, t: this.ema!.shadows[i]! }))) : [],
    };
  }

  /** sha256 of weights, slots and EMA shadows: equal on every replica while they agree. */
  digest(): string {
    const h = createHash('sha256');
    const s = this.state();
    for (const a of [...s.weights, ...s.slots, ...s.ema]) h.update(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength));
    return h.digest('hex');
  }

  /** Restores weights, slots and EMA shadows (a checkpoint, or the coordinator's starting point). */
  load(s: Partial<ReplicaState>): void {
    const { tf } = this;
    tf.tidy(() => {
      s.weights?.forEach((a, i) => at(this.weights, i, 'model weights (restoring a replica state)').write(tf.tensor(a.data, a.shape)));
      if (s.slots) this.opt.load(s.slots.map((a) => tf.tensor(a.data, a.shape)));
      if (s.ema && this.ema) this.ema.load(s.ema.map((a) => tf.tensor(a.data, a.shape)));
    });
  }

  /** Leaves the EMA weights (when enabled) in the model, what is exported, and frees the rest. */
  finish(): void {
    this.opt.dispose();
    if (this.ema) {
      this.weights.forEach((w, i) => w.write(this.ema!.shadows[i]!));
      this.ema.dispose();
    }
  }

  /** Frees the optimizer and EMA without touching the model's weights. */
  dispose(): void {
    this.opt.dispose();
    this.ema?.dispose();
  }
}

/** Number of eval batches of `batchSize` over `count` images. */
export function heldoutBatchCount(count: number, batchSize: number): number {
  return Math.ceil(count / batchSize);
}

/** Plain CE loss sum (n x mean) and correct count of each eval batch in [from, to). */
export function heldoutBatches(tf: Tf, model: tfTypes.LayersModel, set: ImageSet, batchSize: number, numClasses: number, from: number, to: number): HeldoutPart {
  const per = set.size * set.size * set.channels;
  const out: HeldoutPart = { lossSums: [], correct: [] };
  for (let k = from; k < to; k++) {
    const b = k * batchSize;
    const n = Math.min(batchSize, set.count - b);
    const x = new Float32Array(n * per);
    for (let i = 0; i < n; i++) normalizeInto(set.pixels.subarray((b + i) * per, (b + i + 1) * per), set.channels, x, i * per);
    const labels = set.labels.subarray(b, b + n);
    const [l, pred] = tf.tidy(() => {
      const logits = model.apply(tf.tensor4d(x, [n, set.size, set.size, set.channels]), { training: false }) as tfTypes.Tensor2D;
      const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses).toFloat() as tfTypes.Tensor2D;
      return [softCrossEntropy(tf, logits, ys).mul(n).dataSync()[0]!, logits.argMax(-1).dataSync()];
    });
    let correct = 0;
    for (let i = 0; i < n; i++) if (pred[i] === labels[i]) correct++;
    out.lossSums.push(l);
    out.correct.push(correct);
  }
  return out;
}

/** Held-out loss and accuracy from the per-batch parts of all replicas (rank order = batch order). */
export function combineHeldout(parts: HeldoutPart[], count: number): { loss: number; acc: number } {
  let lossSum = 0, correct = 0;
  for (const p of parts) {
    for (const l of p.lossSums) lossSum += l;
    for (const c of p.correct) correct += c;
  }
  return { loss: lossSum / count, acc: correct / count };
}
