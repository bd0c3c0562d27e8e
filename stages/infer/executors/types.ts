/**
 * What an infer executor is: something that gets `selftrain worker infer --run <uri> --stage <id>
 * --count N` run for every index 0..N-1 until every shard of the unlabeled set has its committed
 * prediction object, then returns. Workers need nothing but the run URI and the stage id (the job
 * description is in the store: ../job.ts), so an executor only decides where they run and how it
 * learns that they are done:
 *   local     child processes of this runner (../executor.ts), progress from their events
 *   slurm     a Slurm job array (sbatch/squeue/scontrol/scancel), progress from the store
 *   external  whatever the user starts (a Kubernetes Indexed Job, an AWS Batch array job, by
 *             hand); it prints what to launch and waits on the store
 */
import type { Logger } from '../../../pipeline/runner/stage.js';
import type { StoreSettings } from '../../../pipeline/store/settings.js';
import type { ObjectStore } from '../../../pipeline/store/types.js';
import type { DamagedObject } from '../shard-batches.js';

export interface ShardRef {
  /** Shard name without `.tar`, as the prediction objects are named. */
  name: string;
  samples: number;
}

export interface ExecutorContext {
  /** URI of the run prefix (workers get it as --run). */
  runUri: string;
  /** The infer stage id (--stage). */
  stage: string;
  /** Every shard of the unlabeled set, in dataset order; shard n belongs to worker n % count. */
  shards: ShardRef[];
  /** Names of the shards already committed when the stage started. */
  done: ReadonlySet<string>;
  /** Store rooted at the stage's prefix (holds predictions/ and errors/). */
  out: ObjectStore;
  /** The workers run ONNX Runtime (they take --threads), not tfjs. */
  onnx: boolean;
  signal: AbortSignal;
  /** Environment of the workers (credentials come from it): passed to local processes, to sbatch. */
  env: NodeJS.ProcessEnv;
  /** The run's store settings (endpoint, region): passed to every worker explicitly. */
  storeSettings: StoreSettings;
  log: Logger;
  /** Samples done so far (absolute, including shards committed before a resume). */
  progress(samples: number): void;
}

export interface ExecutorResult {
  /** Workers (array tasks) the work was divided between. */
  tasks: number;
  /** Worker restarts (local) or task resubmissions (slurm). */
  restarts: number;
  /** Shards that cannot be processed (data problems: retrying does not help). */
  errors: { shard: string; error: string; damaged?: DamagedObject }[];
}

export interface InferExecutor {
  readonly name: 'local' | 'slurm' | 'external';
  run(ctx: ExecutorContext): Promise<ExecutorResult>;
  /**
   * Called before the stage discards outputs made under another job (other teacher weights...):
   * stop anything this executor started for that old job, so it cannot write into the new outputs.
   */
  abandon?(ctx: ExecutorContext): Promise<void>;
}

/** Shard indices worker `index` of `count` owns (the same rule the worker applies). */
export function ownedBy(shards: number, index: number, count: number): number[] {
  const out: number[] = [];
  for (let n = index; n < shards; n += count) out.push(n);
  return out;
}

/** Default number of workers for a cluster executor: one per shard, capped (Slurm's MaxArraySize is 1001 by default). */
export function defaultTasks(shards: number, requested?: number): number {
  return Math.max(1, Math.min(requested ?? Math.min(shards, 1000), shards));
}
