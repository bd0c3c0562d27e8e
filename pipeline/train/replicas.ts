/**
 * The trainer's view of its replicas: one in the trainer's own thread (1 worker: exactly the
 * single-threaded recipe, no copies), or N in a WorkerPool (worker threads on wasm/cpu, one process
 * per GPU on tfjs-node-gpu). The trainer loop is the same for both: step, evaluate, state, load.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import type { ChildProcess } from 'node:child_process';
import { at } from '../checked.js';
import { archOf } from '../model/resnet-rs.js';
import { WorkerPool } from '../parallel/pool.js';
import type { Transport } from '../parallel/protocol.js';
import type { Logger } from '../runner/stage.js';
import type { StoreSettings } from '../store/settings.js';
import { sharedPixels, type ImageSet, type LabeledData } from './data.js';
import type { PseudoSource } from './pseudo.js';
import { Replica, combineHeldout, heldoutBatchCount, type HeldoutPart, type ReplicaPlan, type ReplicaState, type StepReport } from './replica.js';
import type { ReplicaPayload, ReplicaRequest } from './replica-worker.js';
import { allSlices } from './slices.js';

type Tf = typeof tfTypes;

/** One step over all replicas. */
export interface StepSummary {
  /** The global batch's loss. */
  loss: number;
  correct: number;
  labeled: number;
  images: number;
  /** Mean over replicas of the share of their step time spent in the reduction (0 with one replica). */
  reduceShare: number;
  /** CPU time of the slowest replica's thread (the step's critical path on idle cores), when known. */
  cpuMs?: number;
}

export interface Replicas {
  readonly size: number;
  readonly transport: Transport | 'in-process';
  load(state: ReplicaState): Promise<void>;
  step(step: number, lr: number): Promise<StepSummary>;
  /** Held-out loss and accuracy with the EMA weights (undefined without a held-out set). */
  evaluate(): Promise<{ loss: number; acc: number } | undefined>;
  /** Weights, slots and EMA shadows (all replicas hold the same; replica 0's are read). */
  state(): Promise<ReplicaState>;
  /** Leaves the trained weights (the EMA when enabled) in the trainer's model. */
  finish(): Promise<void>;
  close(): Promise<void>;
}

export interface ReplicasOptions {
  tf: Tf;
  /** The trainer's model: the single replica itself, or the starting point and export target of N. */
  model: tfTypes.LayersModel;
  plan: ReplicaPlan;
  data: LabeledData;
  pseudo?: PseudoSource;
  workers: number;
  transport: Transport;
  backend: string;
  log: Logger;
  /** How workers reach the run's stores (a student's unlabeled shards). */
  storeSettings?: StoreSettings;
  /** Process transport: environment of worker `rank` (CUDA_VISIBLE_DEVICES). */
  env?: (rank: number) => NodeJS.ProcessEnv;
  onSpawn?: (rank: number, child: ChildProcess) => void;
}

export async function startReplicas(o: ReplicasOptions): Promise<Replicas> {
  return o.workers <= 1 ? new LocalReplicas(o) : PooledReplicas.start(o);
}

function summarise(reports: StepReport[]): StepSummary {
  let correct = 0, labeled = 0, images = 0, share = 0;
  let cpuMs: number | undefined = 0;
  for (const r of reports) {
    correct += r.correct;
    labeled += r.labeled;
    images += r.images;
    share += r.ms > 0 ? r.reduceMs / r.ms : 0;
    cpuMs = r.cpuMs === undefined || cpuMs === undefined ? undefined : Math.max(cpuMs, r.cpuMs);
  }
  return { loss: at(reports, 0, 'replica step reports').loss, correct, labeled, images, reduceShare: share / reports.length, cpuMs };
}

class LocalReplicas implements Replicas {
  readonly size = 1;
  readonly transport = 'in-process' as const;
  private readonly replica: Replica;

  constructor(private readonly o: ReplicasOptions) {
    this.replica = new Replica({ tf: o.tf, model: o.model, plan: o.plan, train: o.data.train, heldout: o.data.heldout, pseudo: o.pseudo, rank: 0, size: 1 });
  }

  async load(state: ReplicaState): Promise<void> {
    this.replica.load(state);
  }

  async step(step: number, lr: number): Promise<StepSummary> {
    return summarise([await this.replica.step(step, lr)]);
  }

  async evaluate(): Promise<{ loss: number; acc: number } | undefined> {
    const set = this.o.data.heldout;
    if (set.count === 0) return undefined;
    return combineHeldout([this.replica.evaluate(0, heldoutBatchCount(set.count, this.o.plan.cfg.evalBatchSize))], set.count);
  }

  async state(): Promise<ReplicaState> {
    return this.replica.state();
  }

  async finish(): Promise<void> {
    this.replica.finish();
    this.finished = true;
  }

  async close(): Promise<void> {
    // finish() already released the optimizer and EMA; after a failure, release them here.
    if (!this.finished) this.replica.dispose();
  }

  private finished = false;
}

// Same extension as this file: .ts under tsx, .js from dist.
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const replicaWorker = new URL(`./replica-worker${ext}`, import.meta.url).href;

class PooledReplicas implements Replicas {
  private constructor(
    private readonly o: ReplicasOptions,
    private readonly pool: WorkerPool,
  ) {}

  get size(): number {
    return this.pool.size;
  }

  get transport(): Transport {
    return this.o.transport;
  }

  static async start(o: ReplicasOptions): Promise<PooledReplicas> {
    const arch = archOf(o.model);
    if (!arch) throw new Error('data-parallel training needs a ResNet-RS model built by selftrain (its architecture is not recorded in the model)');
    const weights = o.model.weights.map((w) => {
      const t = w.read();
      return { name: w.originalName, shape: t.shape.slice(), data: t.dataSync() as Float32Array };
    });
    // Threads share the decoded images (SharedArrayBuffer); processes get a copy each.
    const images = (set: ImageSet) => (o.transport === 'thread' ? sharedPixels(set) : set.pixels);
    const train = { ...o.data.train, pixels: images(o.data.train), keys: [] };
    const heldout = { ...o.data.heldout, pixels: images(o.data.heldout), keys: [] };
    const payload: ReplicaPayload = { arch, plan: o.plan, train, heldout, pseudo: o.pseudo?.index, weights, storeSettings: o.storeSettings ?? {} };
    const pool = await WorkerPool.start({
      label: 'train worker',
      size: o.workers,
      transport: o.transport,
      module: replicaWorker,
      backend: o.backend,
      payload: () => payload,
      reduceLength: Replica.reduceLength(o.model),
      env: o.env,
      onSpawn: o.onSpawn,
      onLog: (rank, level, message) => o.log[level](`train worker ${rank + 1}/${o.workers}: ${message}`),
    });
    return new PooledReplicas(o, pool);
  }

  private all<T>(request: (rank: number) => ReplicaRequest): Promise<T[]> {
    return this.pool.all<T>(request);
  }

  async load(state: ReplicaState): Promise<void> {
    await this.all(() => ({ kind: 'load', state }));
  }

  async step(step: number, lr: number): Promise<StepSummary> {
    return summarise(await this.all<StepReport>(() => ({ kind: 'step', step, lr })));
  }

  async evaluate(): Promise<{ loss: number; acc: number } | undefined> {
    const set = this.o.data.heldout;
    if (set.count === 0) return undefined;
    const ranges = allSlices(heldoutBatchCount(set.count, this.o.plan.cfg.evalBatchSize), this.size);
    return combineHeldout(await this.all<HeldoutPart>((rank) => ({ kind: 'evaluate', ...at(ranges, rank, 'held-out batch ranges') })), set.count);
  }

  /**
   * Replica 0's state, after checking that every replica holds the same (sha256 of all tensors):
   * they apply identical updates, so a difference is a bug, and saving one copy would hide it.
   */
  async state(): Promise<ReplicaState> {
    const [state, digests] = await Promise.all([this.pool.call<ReplicaState>(0, { kind: 'state' } satisfies ReplicaRequest), this.all<string>(() => ({ kind: 'digest' }))]);
    const odd = digests.findIndex((d) => d !== digests[0]);
    if (odd > 0) throw new Error(`train workers disagree: worker ${odd + 1}/${this.size} holds other weights than worker 1 (sha256 ${digests[odd]!.slice(0, 12)} vs ${digests[0]!.slice(0, 12)}); replicas must stay identical — this is a bug`);
    return state;
  }

  async finish(): Promise<void> {
    const s = await this.state();
    const src = s.ema.length > 0 ? s.ema : s.weights;
    const { tf, model } = this.o;
    tf.tidy(() =>
      model.weights.forEach((w, i) => {
        const a = at(src, i, 'replica state tensors');
        w.write(tf.tensor(a.data, a.shape));
      }),
    );
  }

  async close(): Promise<void> {
    if (!this.pool.failed) await this.all(() => ({ kind: 'close' })).catch(() => undefined);
    await this.pool.close();
  }
}
