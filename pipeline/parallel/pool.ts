/**
 * A fixed set of workers for data-parallel work, driven by one coordinating thread.
 *
 *   thread   worker_threads, each with its own tfjs engine and wasm instance (the wasm backend is
 *            single-threaded in Node: one engine uses one core). Data and the gradient reduction
 *            live in SharedArrayBuffers.
 *   process  child processes with an IPC channel (Node's 'advanced' serialization keeps typed
 *            arrays typed), one per GPU for tfjs-node-gpu (each gets its own CUDA_VISIBLE_DEVICES);
 *            the coordinator performs the reduction.
 *
 * Workers run `pipeline/parallel/worker-main`, which loads a task module (by URL) exporting
 * `serve(ctx)`. Calls go to one worker or to all; each worker answers one call at a time.
 *
 * Failure is total and never hangs: a worker that exits, is killed, throws an uncaught error or
 * fails a call fails the whole pool. Every pending and later call rejects with one error naming
 * the worker and what happened, the shared barrier is broken (peers waiting in a reduction wake
 * and stop) and the other workers are terminated. The caller's checkpoint logic decides what is
 * kept; the next run resumes from there.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { at } from '../checked.js';
import { Barrier } from './barrier.js';
import type { FromWorker, ReduceSetup, ToWorker, Transport } from './protocol.js';
import { allocateSharedReduce, meanInOrder, type SharedReduceMemory } from './reduce.js';

// Same extension as this file: .ts under tsx, .js from dist.
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const workerMain = new URL(`./worker-main${ext}`, import.meta.url);

export interface PoolOptions {
  /** Names the workers in messages, e.g. "train worker". */
  label: string;
  size: number;
  transport: Transport;
  /** URL (href) of the task module each worker loads; it exports `serve` (see protocol.ts). */
  module: string;
  /** Compute backend each worker initialises (the coordinator's); none for a task without tfjs (ONNX Runtime). */
  backend?: string;
  /** Per-worker init payload (structured-cloned; SharedArrayBuffers are shared, not copied). */
  payload: (rank: number) => unknown;
  /** Length of the vector the workers all-reduce each step, when they do. */
  reduceLength?: number;
  /** Environment of worker processes (e.g. CUDA_VISIBLE_DEVICES); threads share the process's. */
  env?: (rank: number) => NodeJS.ProcessEnv;
  onLog?: (rank: number, level: 'info' | 'warn' | 'error', message: string) => void;
  /** Process transport: called with each spawned child (tests kill them for real). */
  onSpawn?: (rank: number, child: ChildProcess) => void;
}

interface Endpoint {
  send(msg: ToWorker): void;
  stop(): Promise<void>;
}

export class WorkerPoolError extends Error {
  override name = 'WorkerPoolError';
}

export class WorkerPool {
  private readonly endpoints: Endpoint[] = [];
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private readonly hostReduce = new Map<number, Float32Array[]>();
  private shared?: SharedReduceMemory;
  private nextId = 1;
  private failure?: Error;
  private closing = false;

  private constructor(private readonly o: PoolOptions) {}

  get size(): number {
    return this.o.size;
  }

  /** The error that failed the pool, if any. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /** Spawns the workers and resolves once every one has initialised (or rejects on the first failure). */
  static async start(o: PoolOptions): Promise<WorkerPool> {
    if (!Number.isInteger(o.size) || o.size < 1) throw new Error(`${o.label}s: size must be a positive integer, got ${o.size}`);
    const pool = new WorkerPool(o);
    let reduce: ReduceSetup = { kind: 'none' };
    if (o.reduceLength !== undefined) {
      if (o.transport === 'thread') {
        pool.shared = allocateSharedReduce(o.reduceLength, o.size);
        reduce = { kind: 'shared', memory: pool.shared };
      } else {
        reduce = { kind: 'host', length: o.reduceLength };
      }
    }
    const ready = Array.from({ length: o.size }, (_, rank) => new Promise<void>((resolve, reject) => (pool.readyWaiters[rank] = { resolve, reject })));
    for (let rank = 0; rank < o.size; rank++) {
      const endpoint = o.transport === 'thread' ? pool.spawnThread(rank) : pool.spawnProcess(rank);
      pool.endpoints.push(endpoint);
      endpoint.send({ t: 'init', rank, size: o.size, backend: o.backend, module: o.module, payload: o.payload(rank), reduce });
    }
    try {
      await Promise.all(ready);
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** One call to one worker. */
  call<T>(rank: number, request: unknown): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const endpoint = at(this.endpoints, rank, `${this.o.label} rank`);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      endpoint.send({ t: 'call', id, request });
    });
  }

  /** The same kind of call to every worker (request per rank); results in rank order. */
  all<T>(request: (rank: number) => unknown): Promise<T[]> {
    return Promise.all(this.endpoints.map((_, rank) => this.call<T>(rank, request(rank))));
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.shared) Barrier.break(this.shared.control);
    await Promise.all(this.endpoints.map((e) => e.stop()));
  }

  private who(rank: number): string {
    return `${this.o.label} ${rank + 1}/${this.o.size}`;
  }

  private fail(err: Error): void {
    if (this.failure || this.closing) return;
    this.failure = err;
    if (this.shared) Barrier.break(this.shared.control);
    for (const w of this.readyWaiters) w?.reject(err);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    void this.close();
  }

  private onMessage(rank: number, msg: FromWorker): void {
    switch (msg.t) {
      case 'ready':
        this.readyWaiters[rank]?.resolve();
        return;
      case 'result': {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        p?.resolve(msg.value);
        return;
      }
      case 'error': {
        const what = msg.id === undefined ? 'could not start' : 'failed';
        const err = new WorkerPoolError(`${this.who(rank)} ${what}: ${msg.message}`);
        if (msg.stack) err.stack = `${err.name}: ${err.message}\n    in the worker: ${msg.stack}`;
        this.fail(err);
        return;
      }
      case 'reduce':
        this.reduceOnHost(rank, msg.seq, msg.data);
        return;
      case 'log':
        this.o.onLog?.(rank, msg.level, msg.message);
        return;
    }
  }

  /** Process transport: gather every worker's vector for `seq`, reduce in rank order, send the mean back. */
  private reduceOnHost(rank: number, seq: number, data: Float32Array): void {
    let slices = this.hostReduce.get(seq);
    if (!slices) {
      slices = new Array<Float32Array>(this.o.size);
      this.hostReduce.set(seq, slices);
    }
    slices[rank] = data;
    for (let r = 0; r < this.o.size; r++) if (!slices[r]) return;
    this.hostReduce.delete(seq);
    const out = new Float32Array(data.length);
    meanInOrder(out, slices);
    for (const e of this.endpoints) e.send({ t: 'reduced', seq, data: out });
  }

  private onExit(rank: number, how: string): void {
    if (this.closing) return;
    this.fail(new WorkerPoolError(`${this.who(rank)} ${how}; stopping the other workers`));
  }

  private spawnThread(rank: number): Endpoint {
    // execArgv is inherited (under tsx its loader reaches the worker); passing it explicitly would
    // include per-process flags a worker thread refuses (the test runner's, for one).
    const w = new Worker(workerMain);
    let lastError: Error | undefined;
    w.on('message', (m: FromWorker) => this.onMessage(rank, m));
    w.on('error', (err) => {
      lastError = err;
    });
    w.on('exit', (code) => this.onExit(rank, lastError ? `crashed: ${lastError.message}` : `exited with code ${code}`));
    return {
      send: (m) => w.postMessage(m),
      stop: async () => {
        await w.terminate();
      },
    };
  }

  private spawnProcess(rank: number): Endpoint {
    const child = fork(fileURLToPath(workerMain), [], {
      serialization: 'advanced',
      execArgv: process.execArgv.filter((a) => !a.startsWith('--test')),
      env: this.o.env?.(rank) ?? process.env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.o.onSpawn?.(rank, child);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.on('message', (m: FromWorker) => this.onMessage(rank, m));
    child.on('error', (err) => this.onExit(rank, `could not run: ${err.message}`));
    child.on('exit', (code, signal) => this.onExit(rank, signal ? `was killed by ${signal}` : `exited with code ${code}`));
    return {
      send: (m) => {
        if (child.connected) child.send(m);
      },
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) {
          if (child.connected) child.send({ t: 'close' } satisfies ToWorker);
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(timer);
        }
      },
    };
  }
}
