/**
 * The gradient reduction of synchronous data-parallel training, and the one arithmetic every
 * transport uses for it.
 *
 *   meanInOrder   out[k] = (((s_0[k] + s_1[k]) + s_2[k]) + ... + s_{N-1}[k]) / N, every partial
 *                 sum rounded to float32, slices added in rank order. The same slices give the same
 *                 bits whichever transport runs it and whichever worker computes which elements, so
 *                 a run is deterministic for a given worker count (and the thread and process
 *                 transports agree bit for bit).
 *   SharedAllReduce  worker_threads: the N slices and the result live in one SharedArrayBuffer.
 *                 Each worker writes its slice, then (barrier) reduces its 1/N chunk of the elements
 *                 into the result (reduce-scatter: the summing is spread over the workers), then
 *                 (barrier) every worker reads the whole result. Two barriers per reduction, no
 *                 message to the coordinating thread.
 *
 * Processes (one per GPU) have no shared memory: there the coordinator gathers the slices over IPC,
 * runs `meanInOrder` over all elements and sends the result back (pipeline/parallel/pool.ts).
 */
import { Barrier, type BarrierControl } from './barrier.js';

/** What a worker calls once per step with its local vector; resolves to the mean over all workers. */
export type AllReduce = (local: Float32Array) => Promise<Float32Array>;

export function meanInOrder(out: Float32Array, slices: readonly Float32Array[], from = 0, to = out.length): void {
  const n = slices.length;
  const first = slices[0];
  if (!first) throw new Error('meanInOrder: no slices');
  for (let k = from; k < to; k++) out[k] = first[k]!;
  for (let r = 1; r < n; r++) {
    const s = slices[r]!;
    for (let k = from; k < to; k++) out[k] = out[k]! + s[k]!;
  }
  if (n > 1) for (let k = from; k < to; k++) out[k] = out[k]! / n;
}

/** Elements [from, to) of a vector of `length` that worker `rank` of `size` reduces. */
export function chunkOf(length: number, rank: number, size: number): { from: number; to: number } {
  const per = Math.ceil(length / size);
  return { from: Math.min(length, rank * per), to: Math.min(length, (rank + 1) * per) };
}

/** The shared memory of one SharedAllReduce: made by the coordinator, handed to every worker. */
export interface SharedReduceMemory {
  /** size slices of `length` floats, then the result (`length` floats). */
  data: SharedArrayBuffer;
  control: BarrierControl;
  length: number;
  size: number;
}

export function allocateSharedReduce(length: number, size: number): SharedReduceMemory {
  return { data: new SharedArrayBuffer(4 * length * (size + 1)), control: Barrier.allocate(), length, size };
}

export class SharedAllReduce {
  private readonly slices: Float32Array[];
  private readonly result: Float32Array;
  private readonly barrier: Barrier;

  constructor(
    private readonly mem: SharedReduceMemory,
    private readonly rank: number,
  ) {
    const { data, length, size } = mem;
    this.slices = Array.from({ length: size }, (_, r) => new Float32Array(data, 4 * length * r, length));
    this.result = new Float32Array(data, 4 * length * size, length);
    this.barrier = new Barrier(mem.control, size);
  }

  /**
   * Blocks this worker's thread at the barriers (workers only: the main thread may not wait).
   * Returns a view of the shared result, valid until this worker's next `reduce`: every worker must
   * pass the next call's first barrier before any worker writes the result again.
   */
  reduce(local: Float32Array): Float32Array {
    const { length, size } = this.mem;
    if (local.length !== length) throw new Error(`all-reduce: worker ${this.rank} sent ${local.length} values, expected ${length}`);
    this.slices[this.rank]!.set(local);
    this.barrier.wait();
    const { from, to } = chunkOf(length, this.rank, size);
    meanInOrder(this.result, this.slices, from, to);
    this.barrier.wait();
    // No copy: a copy per step per worker (megabytes) kept V8's garbage collector busy.
    return this.result;
  }
}
