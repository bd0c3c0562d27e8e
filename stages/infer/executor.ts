/**
 * The local executor: N worker processes (`selftrain worker infer ...`), the same command a
 * Kubernetes Indexed Job runs, so local and cluster runs share one code path. A worker that dies
 * (crash, OOM kill, SIGKILL) is restarted a bounded number of times; since finished shards are
 * committed objects, the restart only redoes the shard it was in. A worker that exits with
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
  const runOne = async (index: number): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      o.signal?.throwIfAborted();
      const shardErrors: ExecutorResult['errors'] = [];
      const { code, signal, stderrTail } = await spawnWorker(index, attempt, (e) => {
        if (e.event === 'shard-error') shardErrors.push({ shard: e.shard, error: e.error, damaged: e.damaged });
        o.onEvent?.(index, e);
      });
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
      const args = [...cli, ...workerArgs(o.runUri, o.stage, o.workers, { index, storeSettings: o.storeSettings, threads: o.threads })];
      const child = spawn(node!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
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
        if (e && typeof e === 'object' && 'event' in e) onEvent(e);
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
