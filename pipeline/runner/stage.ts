/**
 * The contract between the runner and the stages. A stage is pure data (id, deps, config,
 * outputs) plus a run function; the runner hashes config + upstream fingerprints into the
 * stage's fingerprint, skips stages that are done with an unchanged fingerprint and existing
 * outputs, and re-runs a changed stage and everything downstream.
 *
 * Stages must be resumable from inside: they commit their work in units (one output object per
 * input shard, one checkpoint every N steps) and skip committed units when started again, so a
 * kill -9 at any moment loses at most one unit.
 */
import type { StoreSettings } from '../store/settings.js';
import type { ObjectStore } from '../store/types.js';

export type LogFields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
}

/** A live progress display: a bar with rate and ETA on a TTY, periodic lines otherwise. */
export interface Progress {
  /** Absolute position (units done so far, including units done before a resume). */
  update(done: number, fields?: LogFields): void;
  /** Changes the total when it becomes known. */
  setTotal(total: number): void;
  stop(): void;
}

export interface StageContext {
  /** The store rooted at the run prefix (`<store root>/<manifest name>`). */
  run: ObjectStore;
  /** The store root itself, for datasets that live outside the run. */
  root: ObjectStore;
  /**
   * How to reach the run's stores (the manifest's `s3` section): pass it to every store a stage
   * opens by URI (datasets, import sources, the teacher's model) and to worker processes.
   */
  storeSettings: StoreSettings;
  /** This stage's own output prefix inside the run, e.g. `train-teacher-1/`. */
  outPrefix: string;
  log: Logger;
  /** Aborted on SIGINT/SIGTERM: stop at the next safe point (after committing the current unit). */
  signal: AbortSignal;
  progress(label: string, total: number, unit?: string): Progress;
  /** Name of the compute backend selected for this run (e.g. 'wasm'), once chosen. */
  backend?: string;
  /** This stage's id (same as the definition's), for messages and output naming. */
  stageId: string;
  /**
   * The run's stages as the runner has recorded them so far, in chain order (this stage's own
   * entry says `running`). For reports; stages never read runner state themselves.
   */
  stageRuns(): Promise<StageRun[]>;
}

/** One stage of the run as its runner record stands (pipeline/runner/record.ts). */
export interface StageRun {
  stage: string;
  kind: string;
  status: 'running' | 'done' | 'failed' | 'interrupted';
  attempts: number;
  startedAt: string;
  /** Wall time of the latest attempt, once it ended. */
  durationMs?: number;
  /** Wall time over all attempts, once the latest ended. */
  totalMs?: number;
  backend?: string;
}

export interface StageResult {
  /** Small JSON summary stored in the stage record (counts, metrics, chosen settings). */
  summary?: Record<string, unknown>;
}

/**
 * A stage of a chain. `K` and `C` type the kind and its config: the real chain's stages are
 * `ChainStage` (pipeline/runner/chain.ts), each kind with its contract's config type
 * (pipeline/contracts/<kind>.ts); the runner itself only needs the defaults.
 */
export interface StageDefinition<K extends string = string, C = unknown> {
  /** Unique in a run, e.g. `import`, `train-teacher-1`, `infer-1`. */
  id: string;
  /** Stage kind: `import` | `train` | `infer` | `select` | `evaluate` | test kinds. */
  kind: K;
  /** ids of the stages whose outputs this one reads. */
  deps: string[];
  /** Resolved settings; hashed (canonical JSON) into the fingerprint. */
  config: C;
  /** Keys relative to the run prefix that must exist for the stage to count as done. */
  outputs: string[];
  run(ctx: StageContext): Promise<StageResult | void>;
  /**
   * Version of the stage's code, hashed into the fingerprint: bump it when a change to the stage
   * makes earlier outputs wrong, so existing runs re-run it. Default '1'.
   */
  version?: string;
  /**
   * True when the stage uses TensorFlow.js: the runner then initialises the compute backend (lazily,
   * only when such a stage actually runs) and records its name in the stage record.
   */
  needsBackend?: boolean;
}

/**
 * What a stage module `stages/<kind>/index.ts` exports for the real chain
 * (pipeline/runner/chain.ts): the chain's definitions import it lazily when the stage runs, so
 * `plan`, `status` and an up-to-date `run` never load tfjs or sharp.
 */
export interface StageModule<C = unknown> {
  runStage(ctx: StageContext, config: C): Promise<StageResult | void>;
}
