/**
 * Messages between a WorkerPool (coordinating thread) and its workers (worker threads or child
 * processes; both carry the same messages: structured clone, or Node's 'advanced' IPC
 * serialization, which keeps typed arrays typed).
 */
import type { SharedReduceMemory } from './reduce.js';

export type Transport = 'thread' | 'process';

/** How a worker reduces: in shared memory with its peers (threads), or through the coordinator (processes). */
export type ReduceSetup = { kind: 'shared'; memory: SharedReduceMemory } | { kind: 'host'; length: number } | { kind: 'none' };

export type ToWorker =
  | { t: 'init'; rank: number; size: number; backend?: string; module: string; payload: unknown; reduce: ReduceSetup }
  | { t: 'call'; id: number; request: unknown }
  | { t: 'reduced'; seq: number; data: Float32Array }
  | { t: 'close' };

export type FromWorker =
  | { t: 'ready' }
  | { t: 'result'; id: number; value: unknown }
  | { t: 'error'; id?: number; message: string; name: string; stack?: string }
  | { t: 'reduce'; seq: number; data: Float32Array }
  | { t: 'log'; level: 'info' | 'warn' | 'error'; message: string };

/** What a task module's `serve` receives in the worker. */
export interface WorkerContext<P = unknown> {
  rank: number;
  size: number;
  payload: P;
  /** The mean over all workers of each worker's vector (fixed order; see reduce.ts). */
  allReduce: (local: Float32Array) => Promise<Float32Array>;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
}

/** A task module (loaded by URL in each worker) exports `serve`, returning the request handler. */
export type Serve<P = unknown> = (ctx: WorkerContext<P>) => Promise<(request: unknown) => Promise<unknown>>;
