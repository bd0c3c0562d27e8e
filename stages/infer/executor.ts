/**
 * The local executor: N worker processes (`selftrain worker infer ...`), the same command a
 * Kubernetes Indexed Job runs, so local and cluster runs share one code path; here the workers take
 * shards one at a time as they ask (--claim) rather than fixed shares, so a slowed worker takes
 * fewer and they finish together. A worker that dies (crash, OOM kill, SIGKILL) is restarted a
 * bounded number of times; since finished shards are committed objects, the restart only redoes
 * the shards it had claimed and not finished. A worker that exits with
 * DATA_ERROR_EXIT has reported shards that cannot be processed: retrying would not help.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { selftrainCommand, workerArgs } from './executors/command.js';
import type { WorkerEvent } from './worker.js';
import type { DamagedObject } from './shard-batches.js';
import type { StoreSettings } from '../../pipeline/store/settings.js';

/** Exit code of a worker that finished everything it could and reported bad shards. */
export const DATA_ERROR_EXIT = 3;
/** Exit code of a worker that could not start its work for a reason a retry cannot fix. */
export const SETUP_ERROR_EXIT = 2;

export interface ExecutorOptions {
  runUri: string;
  stage: string;
  workers: number;
  /** How the workers reach the stores (passed as --endpoint/--region: the environment may not say). */
  storeSettings?: StoreSettings;
  /** ONNX Runtime intra-op threads per worker (`--threads`); absent for tfjs. */
  threads?: number;
  maxRestarts: number;
  /**
   * Hand shards out one at a time as workers ask (default), so that a worker slowed by the host
   * takes fewer and the workers finish together; false: `shard % workers == index`, as a cluster's
   * array tasks.
   */
  claims?: boolean;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  onEvent?: (worker: number, e: WorkerEvent) => void;
  onSpawn?: (worker: number, child: ChildProcess, attempt: number) => void;
  /** Worker stderr lines (logs, warnings). */
  onStderr?: (worker: number, line: string) => void;
}

export interface ExecutorResult {
  restarts: number;
  errors: { shard: string; error: string; damaged?: DamagedObject }[];
}

export async function runLocalWorkers(o: ExecutorOptions): Promise<ExecutorResult> {
  let restarts = 0;
  const errors: ExecutorResult['errors'] = [];
  // Only with claims: fixed shares need no book-keeping.
  const handOut = o.claims === false ? undefined : new ShardClaims();
  const runOne = async (index: number): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      o.signal?.throwIfAborted();
      const shardErrors: ExecutorResult['errors'] = [];
      const { code, signal, stderrTail } = await spawnWorker(index, attempt, (e) => {
        if (e.event === 'shard-error') shardErrors.push({ shard: e.shard, error: e.error, damaged: e.damaged });
        if (e.event === 'shard' || e.event === 'shard-error') handOut?.finished(index, e.number);
        o.onEvent?.(index, e);
      });
      // A worker that stopped early leaves its unfinished claims to the next one to ask.
      handOut?.release(index, code !== 0 && code !== DATA_ERROR_EXIT);
      if (code === 0) return;
      if (code === DATA_ERROR_EXIT) {
        errors.push(...shardErrors);
        return;
      }
      if (code === SETUP_ERROR_EXIT) {
        throw new Error(stderrTail.split('\n').filter(Boolean).map((l) => l.replace(/^selftrain worker infer: /, '')).join('\n') || `infer worker ${index} could not start`);
      }
      o.signal?.throwIfAborted();
      const how = signal ? `killed by ${signal}` : `exit code ${code}`;
      if (attempt >= o.maxRestarts) {
        throw new Error(`infer worker ${index}/${o.workers} failed ${attempt + 1} times (last: ${how}); giving up. Last output:\n${stderrTail}`);
      }
      restarts++;
      o.onStderr?.(index, `worker ${index} ${how}; restarting (${attempt + 1}/${o.maxRestarts})`);
    }
  };

  const spawnWorker = (index: number, attempt: number, onEvent: (e: WorkerEvent) => void) =>
    new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderrTail: string }>((resolve, reject) => {
      const [node, ...cli] = selftrainCommand();
      const args = [...cli, ...workerArgs(o.runUri, o.stage, o.workers, { index, storeSettings: o.storeSettings, threads: o.threads }), ...(handOut ? ['--claim'] : [])];
      const child = spawn(node!, args, { stdio: [handOut ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
      // A worker that died can no longer read its answer: its exit is handled below.
      child.stdin?.on('error', () => undefined);
      const tail: string[] = [];
      const onAbort = () => child.kill('SIGTERM');
      o.signal?.addEventListener('abort', onAbort, { once: true });
      o.onSpawn?.(index, child, attempt);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let e: WorkerEvent | undefined;
        try {
          e = JSON.parse(line) as WorkerEvent;
        } catch {
          /* not an event line: treat as log */
        }
        if (e && typeof e === 'object' && 'event' in e) {
          if (e.event === 'claim') child.stdin?.write(`${handOut!.next(index)}\n`); // only workers started with --claim ask
          else onEvent(e);
        }
        else o.onStderr?.(index, line);
      });
      createInterface({ input: child.stderr! }).on('line', (line) => {
        tail.push(line);
        if (tail.length > 20) tail.shift();
        o.onStderr?.(index, line);
      });
      child.on('error', (err) => {
        o.signal?.removeEventListener('abort', onAbort);
        reject(new Error(`cannot start infer worker ${index}: ${err.message}`));
      });
      child.on('close', (code, signal) => {
        o.signal?.removeEventListener('abort', onAbort);
        resolve({ code, signal, stderrTail: tail.join('\n') });
      });
    });

  const results = await Promise.allSettled(Array.from({ length: o.workers }, (_, i) => runOne(i)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  errors.sort((a, b) => a.shard.localeCompare(b.shard));
  return { restarts, errors };
}

/**
 * Shard numbers handed out one at a time: the lowest released one first (a dead worker's unfinished
 * claims), else the next never handed out. It does not know how many shards there are: a worker
 * given a number past the last one stops asking.
 */
export class ShardClaims {
  private fresh = 0;
  private released: number[] = [];
  private held = new Map<number, Set<number>>();

  next(worker: number): number {
    const n = this.released.length > 0 ? this.released.shift()! : this.fresh++;
    const mine = this.held.get(worker) ?? new Set<number>();
    mine.add(n);
    this.held.set(worker, mine);
    return n;
  }

  finished(worker: number, n: number): void {
    this.held.get(worker)?.delete(n);
  }

  /** The worker exited: its unfinished claims go back (when it died) or are dropped (passed over as done, or past the end). */
  release(worker: number, died: boolean): void {
    if (died) {
      this.released.push(...(this.held.get(worker) ?? []));
      this.released.sort((a, b) => a - b);
    }
    this.held.delete(worker);
  }
}
