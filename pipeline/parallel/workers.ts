/**
 * How many data-parallel workers a stage uses, and how they run, for `workers: auto | N`:
 *
 *   wasm, cpu        auto = the number of cores (os.availableParallelism()): each worker thread
 *                    has its own single-threaded engine;
 *   tensorflow       auto = 1: libtensorflow already spreads one engine over the cores; an explicit
 *                    N runs N processes (each its own libtensorflow);
 *   tensorflow-gpu   auto = the number of visible GPUs; one process per GPU, each seeing only its
 *                    own (CUDA_VISIBLE_DEVICES), since tfjs-node-gpu drives one GPU per process.
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { BackendName } from '../backend/select.js';
import type { Transport } from './protocol.js';

export interface WorkerPlan {
  workers: number;
  transport: Transport;
  /** Process transport: the environment of worker `rank`. */
  env?: (rank: number) => NodeJS.ProcessEnv;
  /** One line for the log: what was chosen and why. */
  reason: string;
}

/**
 * GPU ids the process may use: CUDA_VISIBLE_DEVICES when set (an empty value or -1 hides all),
 * else the GPUs `nvidia-smi -L` lists (none when it is missing).
 */
export function visibleGpus(env: NodeJS.ProcessEnv = process.env, list: () => string = nvidiaSmiList): string[] {
  const set = env['CUDA_VISIBLE_DEVICES'];
  if (set !== undefined) return set.split(',').map((s) => s.trim()).filter((s) => s !== '' && !s.startsWith('-'));
  let out: string;
  try {
    out = list();
  } catch {
    return [];
  }
  return out.split('\n').map((l) => /^GPU (\d+):/.exec(l.trim())?.[1]).filter((id): id is string => id !== undefined);
}

function nvidiaSmiList(): string {
  return execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
}

export function resolveWorkers(setting: 'auto' | number, backend: BackendName, o: { cores?: number; gpus?: string[]; env?: NodeJS.ProcessEnv } = {}): WorkerPlan {
  const env = o.env ?? process.env;
  switch (backend) {
    case 'wasm':
    case 'cpu': {
      const cores = o.cores ?? availableParallelism();
      const workers = setting === 'auto' ? cores : setting;
      return { workers, transport: 'thread', reason: setting === 'auto' ? `${workers} worker thread(s), one per core` : `${workers} worker thread(s) (manifest)` };
    }
    case 'tensorflow': {
      const workers = setting === 'auto' ? 1 : setting;
      return { workers, transport: 'process', reason: setting === 'auto' ? '1 worker: libtensorflow threads itself' : `${workers} worker process(es) (manifest)` };
    }
    case 'tensorflow-gpu': {
      const gpus = o.gpus ?? visibleGpus(env);
      const workers = setting === 'auto' ? Math.max(1, gpus.length) : setting;
      const plan: WorkerPlan = {
        workers,
        transport: 'process',
        reason: gpus.length === 0 ? `${workers} worker process(es); no GPU listed (CUDA_VISIBLE_DEVICES / nvidia-smi)` : `${workers} worker process(es) over GPU(s) ${gpus.join(',')}`,
      };
      // Worker r sees one GPU (round-robin when there are more workers than GPUs).
      if (gpus.length > 0) plan.env = (rank) => ({ ...env, CUDA_VISIBLE_DEVICES: gpus[rank % gpus.length]! });
      return plan;
    }
  }
}
